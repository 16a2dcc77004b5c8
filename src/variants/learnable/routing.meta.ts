/**
 * The catalog metadata of `routing`, written once: the variant module (`routing.ts`) re-exports it
 * and builds its instances from it, `src/index.ts` lists it, test/coverage.test.ts checks every
 * other place that names the entry against it. No imports but the type, so that the catalog
 * never loads a kernel.
 *
 * @module
 */
import type { EntryMeta } from '../../core/catalog-types.js';

/** `routing`'s catalog metadata. */
export const meta = {
  id: 'routing',
  family: 'learnable',
  factories: ['routingAttention'],
  paper: { title: 'Efficient Content-Based Sparse Attention with Routing Transformers', year: 2021, url: 'https://arxiv.org/abs/2003.05997' },
  complexity: { time: 'O(n·kc·d + n·w·d)', memory: 'O(n·w)' },
  module: 'variants/learnable/routing',
  exactSoftmax: true,
  capabilities: { fused: true, fusedBackward: false, causal: true, decode: false, pattern: false, learned: [] },
} as const satisfies EntryMeta;
