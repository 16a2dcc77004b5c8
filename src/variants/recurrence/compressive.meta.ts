/**
 * The catalog metadata of `compressive`, written once: the variant module (`compressive.ts`)
 * re-exports it and builds its instances from it, `src/index.ts` lists it, test/coverage.test.ts
 * checks every other place that names the entry against it. No imports but the type, so that
 * the catalog never loads a kernel.
 *
 * @module
 */
import type { EntryMeta } from '../../core/catalog-types.js';

/** `compressive`'s catalog metadata. */
export const meta = {
  id: 'compressive',
  family: 'recurrence',
  factories: ['compressiveAttention'],
  paper: { title: 'Compressive Transformers for Long-Range Sequence Modelling', year: 2020, url: 'https://arxiv.org/abs/1911.05507' },
  complexity: {
    time: 'O(n·(n + L + Lc)·d) per segment',
    memory: 'O(n·(n + L + Lc)) per segment (fused: O(n + (n + L + Lc)·d)); state O((L + Lc + n)·d)',
  },
  module: 'variants/recurrence/compressive',
  exactSoftmax: true,
  capabilities: { fused: true, fusedBackward: false, causal: true, decode: false, pattern: false, learned: ['convK', 'convV'] },
} as const satisfies EntryMeta;
