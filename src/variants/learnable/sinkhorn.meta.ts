/**
 * The catalog metadata of `sinkhorn`, written once: the variant module (`sinkhorn.ts`) re-exports it
 * and builds its instances from it, `src/index.ts` lists it, test/coverage.test.ts checks every
 * other place that names the entry against it. No imports but the type, so that the catalog
 * never loads a kernel.
 *
 * @module
 */
import type { EntryMeta } from '../../core/catalog-types.js';

/** `sinkhorn`'s catalog metadata. */
export const meta = {
  id: 'sinkhorn',
  family: 'learnable',
  factories: ['sinkhornAttention'],
  paper: { title: 'Sparse Sinkhorn Attention', year: 2020, url: 'https://arxiv.org/abs/2002.11296' },
  complexity: { time: 'O(n·b·d + m·(m/b)·d + T·(m/b)²)', memory: 'O(n·b + (m/b)²)' },
  module: 'variants/learnable/sinkhorn',
  exactSoftmax: true,
  capabilities: { fused: true, fusedBackward: false, causal: false, decode: false, pattern: false, learned: ['sortWeights'] },
} as const satisfies EntryMeta;
