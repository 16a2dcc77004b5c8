/**
 * The catalog metadata of `dense`, written once: the variant module (`dense.ts`) re-exports it
 * and builds its instances from it, `src/index.ts` lists it, test/coverage.test.ts checks every
 * other place that names the entry against it. No imports but the type, so that the catalog
 * never loads a kernel.
 *
 * @module
 */
import type { EntryMeta } from '../../core/catalog-types.js';

/** `dense`'s catalog metadata. */
export const meta = {
  id: 'dense',
  family: 'baseline',
  factories: ['denseAttention'],
  paper: { title: 'Attention Is All You Need', year: 2017, url: 'https://arxiv.org/abs/1706.03762' },
  complexity: { time: 'O(n·m·d)', memory: 'O(n) fused; O(n·m) composite; decode cache O(m·kvHeads·d)' },
  module: 'variants/baseline/dense',
  exactSoftmax: true,
  capabilities: { fused: true, fusedBackward: true, causal: true, decode: true, pattern: false, learned: [] },
} as const satisfies EntryMeta;
