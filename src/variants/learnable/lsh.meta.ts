/**
 * The catalog metadata of `lsh`, written once: the variant module (`lsh.ts`) re-exports it and
 * builds its instances from it, `src/index.ts` lists it, test/coverage.test.ts checks every other
 * place that names the entry against it. No imports but the type, so that the catalog never
 * loads a kernel.
 *
 * @module
 */
import type { EntryMeta } from '../../core/catalog-types.js';

/** `lsh`'s catalog metadata. */
export const meta = {
  id: 'lsh',
  family: 'learnable',
  factories: ['lshAttention'],
  paper: { title: 'Reformer: The Efficient Transformer', year: 2020, url: 'https://arxiv.org/abs/2001.04451' },
  complexity: { time: 'O(nh·n·(c·d + log² n))', memory: 'O(n·c·nh)' },
  module: 'variants/learnable/lsh',
  exactSoftmax: true,
  capabilities: { fused: true, fusedBackward: false, causal: true, decode: false, pattern: false, learned: [] },
} as const satisfies EntryMeta;
