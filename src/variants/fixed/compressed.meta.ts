/**
 * The catalog metadata of `compressed`, written once: the variant module (`compressed.ts`) re-exports it
 * and builds its instances from it, `src/index.ts` lists it, test/coverage.test.ts checks every
 * other place that names the entry against it. No imports but the type, so that the catalog
 * never loads a kernel.
 *
 * @module
 */
import type { EntryMeta } from '../../core/catalog-types.js';

/** `compressed`'s catalog metadata. */
export const meta = {
  id: 'compressed',
  family: 'fixed',
  factories: ['compressedAttention'],
  paper: { title: 'Generating Wikipedia by Summarizing Long Sequences', year: 2018, url: 'https://arxiv.org/abs/1801.10198' },
  complexity: { time: 'O(n·m/t·d + m·d)', memory: 'O(n·m/t)' },
  module: 'variants/fixed/compressed',
  exactSoftmax: true,
  capabilities: { fused: true, fusedBackward: true, causal: true, decode: false, pattern: false, learned: [] },
} as const satisfies EntryMeta;
