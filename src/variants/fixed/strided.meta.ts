/**
 * The catalog metadata of `strided`, written once: the variant module (`strided.ts`) re-exports it
 * and builds its instances from it, `src/index.ts` lists it, test/coverage.test.ts checks every
 * other place that names the entry against it. No imports but the type, so that the catalog
 * never loads a kernel.
 *
 * @module
 */
import type { EntryMeta } from '../../core/catalog-types.js';

/** `strided`'s catalog metadata. */
export const meta = {
  id: 'strided',
  family: 'fixed',
  factories: ['stridedAttention'],
  paper: { title: 'Generating Long Sequences with Sparse Transformers', year: 2019, url: 'https://arxiv.org/abs/1904.10509' },
  complexity: { time: 'O(n·m/t·d)', memory: 'O(n·m/t)' },
  module: 'variants/fixed/strided',
  exactSoftmax: true,
  capabilities: { fused: true, fusedBackward: true, causal: true, decode: false, pattern: true, learned: [] },
} as const satisfies EntryMeta;
