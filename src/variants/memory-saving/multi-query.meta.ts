/**
 * The catalog metadata of `multi-query`, written once: the variant module (`multi-query.ts`) re-exports it
 * and builds its instances from it, `src/index.ts` lists it, test/coverage.test.ts checks every
 * other place that names the entry against it. No imports but the type, so that the catalog
 * never loads a kernel.
 *
 * @module
 */
import type { EntryMeta } from '../../core/catalog-types.js';

/** `multi-query`'s catalog metadata. */
export const meta = {
  id: 'multi-query',
  family: 'memory saving',
  factories: ['multiQueryAttention', 'groupedQueryAttention'],
  paper: { title: 'Fast Transformer Decoding: One Write-Head is All You Need', year: 2019, url: 'https://arxiv.org/abs/1911.02150' },
  complexity: { time: 'O(n·m·d)', memory: 'O(n) fused; O(n·m) composite; decode cache O(m·kvHeads·d)' },
  module: 'variants/memory-saving/multi-query',
  exactSoftmax: true,
  capabilities: { fused: true, fusedBackward: true, causal: true, decode: true, pattern: false, learned: [] },
} as const satisfies EntryMeta;
