/**
 * The catalog metadata of `big-bird`, written once: the variant module (`big-bird.ts`) re-exports it
 * and builds its instances from it, `src/index.ts` lists it, test/coverage.test.ts checks every
 * other place that names the entry against it. No imports but the type, so that the catalog
 * never loads a kernel.
 *
 * @module
 */
import type { EntryMeta } from '../../core/catalog-types.js';

/** `big-bird`'s catalog metadata. */
export const meta = {
  id: 'big-bird',
  family: 'combined',
  factories: ['bigBirdAttention'],
  paper: { title: 'Big Bird: Transformers for Longer Sequences', year: 2020, url: 'https://arxiv.org/abs/2007.14062' },
  complexity: { time: 'O(n·b·(w + g + r)·d)', memory: 'O(n·b·(w + g + r))' },
  module: 'variants/combined/big-bird',
  exactSoftmax: true,
  capabilities: { fused: true, fusedBackward: true, causal: true, decode: false, pattern: true, learned: [] },
} as const satisfies EntryMeta;
