/**
 * The catalog metadata of `etc`, written once: the variant module (`etc.ts`) re-exports it
 * and builds its instances from it, `src/index.ts` lists it, test/coverage.test.ts checks every
 * other place that names the entry against it. No imports but the type, so that the catalog
 * never loads a kernel.
 *
 * @module
 */
import type { EntryMeta } from '../../core/catalog-types.js';

/** `etc`'s catalog metadata. */
export const meta = {
  id: 'etc',
  family: 'side memory',
  factories: ['etcAttention'],
  paper: { title: 'ETC: Encoding Long and Structured Inputs in Transformers', year: 2020, url: 'https://arxiv.org/abs/2004.08483' },
  complexity: { time: 'O(n·(r + g)·d)', memory: 'O(n·(r + g))' },
  module: 'variants/side-memory/etc',
  exactSoftmax: true,
  capabilities: { fused: true, fusedBackward: true, causal: true, decode: false, pattern: true, learned: [] },
} as const satisfies EntryMeta;
