/**
 * The catalog metadata of `axial`, written once: the variant module (`axial.ts`) re-exports it
 * and builds its instances from it, `src/index.ts` lists it, test/coverage.test.ts checks every
 * other place that names the entry against it. No imports but the type, so that the catalog
 * never loads a kernel.
 *
 * @module
 */
import type { EntryMeta } from '../../core/catalog-types.js';

/** `axial`'s catalog metadata. */
export const meta = {
  id: 'axial',
  family: 'combined',
  factories: ['axialAttention'],
  paper: { title: 'Axial Attention in Multidimensional Transformers', year: 2019, url: 'https://arxiv.org/abs/1912.12180' },
  complexity: { time: 'O(n·(rows + cols)·d)', memory: 'O(n·(rows + cols))' },
  module: 'variants/combined/axial',
  exactSoftmax: true,
  capabilities: { fused: true, fusedBackward: true, causal: true, decode: false, pattern: true, learned: [] },
} as const satisfies EntryMeta;
