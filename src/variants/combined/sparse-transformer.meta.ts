/**
 * The catalog metadata of `sparse-transformer`, written once: the variant module (`sparse-transformer.ts`) re-exports it
 * and builds its instances from it, `src/index.ts` lists it, test/coverage.test.ts checks every
 * other place that names the entry against it. No imports but the type, so that the catalog
 * never loads a kernel.
 *
 * @module
 */
import type { EntryMeta } from '../../core/catalog-types.js';

/** `sparse-transformer`'s catalog metadata. */
export const meta = {
  id: 'sparse-transformer',
  family: 'combined',
  factories: ['sparseTransformerAttention'],
  paper: { title: 'Generating Long Sequences with Sparse Transformers', year: 2019, url: 'https://arxiv.org/abs/1904.10509' },
  complexity: { time: 'O(n·(t + m/t)·d)', memory: 'O(n·(t + m/t))' },
  module: 'variants/combined/sparse-transformer',
  exactSoftmax: true,
  capabilities: { fused: true, fusedBackward: true, causal: true, decode: false, pattern: true, learned: [] },
} as const satisfies EntryMeta;
