/**
 * The catalog metadata of `linformer`, written once: the variant module (`linformer.ts`) re-exports it
 * and builds its instances from it, `src/index.ts` lists it, test/coverage.test.ts checks every
 * other place that names the entry against it. No imports but the type, so that the catalog
 * never loads a kernel.
 *
 * @module
 */
import type { EntryMeta } from '../../core/catalog-types.js';

/** `linformer`'s catalog metadata. */
export const meta = {
  id: 'linformer',
  family: 'memory saving',
  factories: ['linformerAttention'],
  paper: { title: 'Linformer: Self-Attention with Linear Complexity', year: 2020, url: 'https://arxiv.org/abs/2006.04768' },
  complexity: { time: 'O(n·k·d + m·k·d)', memory: 'O(n·k)' },
  module: 'variants/memory-saving/linformer',
  exactSoftmax: false,
  capabilities: { fused: true, fusedBackward: true, causal: false, decode: false, pattern: false, learned: ['e', 'f'] },
} as const satisfies EntryMeta;
