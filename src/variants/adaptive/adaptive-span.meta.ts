/**
 * The catalog metadata of `adaptive-span`, written once: the variant module (`adaptive-span.ts`) re-exports it
 * and builds its instances from it, `src/index.ts` lists it, test/coverage.test.ts checks every
 * other place that names the entry against it. No imports but the type, so that the catalog
 * never loads a kernel.
 *
 * @module
 */
import type { EntryMeta } from '../../core/catalog-types.js';

/** `adaptive-span`'s catalog metadata. */
export const meta = {
  id: 'adaptive-span',
  family: 'adaptive',
  factories: ['adaptiveSpanAttention'],
  paper: { title: 'Adaptive Attention Span in Transformers', year: 2019, url: 'https://arxiv.org/abs/1905.07799' },
  complexity: { time: 'O(n·(z+R)·d)', memory: 'O(n·(z+R))' },
  module: 'variants/adaptive/adaptive-span',
  exactSoftmax: true,
  capabilities: { fused: true, fusedBackward: false, causal: true, decode: false, pattern: false, learned: ['z'] },
} as const satisfies EntryMeta;
