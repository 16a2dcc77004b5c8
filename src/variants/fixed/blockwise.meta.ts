/**
 * The catalog metadata of `blockwise`, written once: the variant module (`blockwise.ts`) re-exports it
 * and builds its instances from it, `src/index.ts` lists it, test/coverage.test.ts checks every
 * other place that names the entry against it. No imports but the type, so that the catalog
 * never loads a kernel.
 *
 * @module
 */
import type { EntryMeta } from '../../core/catalog-types.js';

/** `blockwise`'s catalog metadata. */
export const meta = {
  id: 'blockwise',
  family: 'fixed',
  factories: ['blockwiseAttention'],
  paper: { title: 'Image Transformer', year: 2018, url: 'https://arxiv.org/abs/1802.05751' },
  complexity: { time: 'O(n·b·(L+1)·d)', memory: 'O(n·b·(L+1))' },
  module: 'variants/fixed/blockwise',
  exactSoftmax: true,
  capabilities: { fused: true, fusedBackward: true, causal: true, decode: false, pattern: true, learned: [] },
} as const satisfies EntryMeta;
