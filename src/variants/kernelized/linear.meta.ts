/**
 * The catalog metadata of `linear`, written once: the variant module (`linear.ts`) re-exports it
 * and builds its instances from it, `src/index.ts` lists it, test/coverage.test.ts checks every
 * other place that names the entry against it. No imports but the type, so that the catalog
 * never loads a kernel.
 *
 * @module
 */
import type { EntryMeta } from '../../core/catalog-types.js';

/** `linear`'s catalog metadata. */
export const meta = {
  id: 'linear',
  family: 'kernelized',
  factories: ['linearAttention'],
  paper: { title: 'Transformers are RNNs: Fast Autoregressive Transformers with Linear Attention', year: 2020, url: 'https://arxiv.org/abs/2006.16236' },
  complexity: { time: 'O(n·d·dv)', memory: 'O(n·d + d·dv); decode state O(d·dv)' },
  module: 'variants/kernelized/linear',
  exactSoftmax: false,
  capabilities: { fused: true, fusedBackward: true, causal: true, decode: true, pattern: false, learned: [] },
} as const satisfies EntryMeta;
