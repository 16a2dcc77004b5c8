/**
 * The catalog metadata of `local`, written once: the variant module (`local.ts`) re-exports it
 * and builds its instances from it, `src/index.ts` lists it, test/coverage.test.ts checks every
 * other place that names the entry against it. No imports but the type, so that the catalog
 * never loads a kernel.
 *
 * @module
 */
import type { EntryMeta } from '../../core/catalog-types.js';

/** `local`'s catalog metadata. */
export const meta = {
  id: 'local',
  family: 'fixed',
  factories: ['localAttention'],
  paper: { title: 'Longformer: The Long-Document Transformer', year: 2020, url: 'https://arxiv.org/abs/2004.05150' },
  complexity: { time: 'O(n·w·d)', memory: 'O(n·w); decode state O(w)' },
  module: 'variants/fixed/local',
  exactSoftmax: true,
  capabilities: { fused: true, fusedBackward: true, causal: true, decode: true, pattern: true, learned: [] },
} as const satisfies EntryMeta;
