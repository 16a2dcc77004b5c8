/**
 * The catalog metadata of `performer`, written once: the variant module (`performer.ts`) re-exports it
 * and builds its instances from it, `src/index.ts` lists it, test/coverage.test.ts checks every
 * other place that names the entry against it. No imports but the type, so that the catalog
 * never loads a kernel.
 *
 * @module
 */
import type { EntryMeta } from '../../core/catalog-types.js';

/** `performer`'s catalog metadata. */
export const meta = {
  id: 'performer',
  family: 'kernelized',
  factories: ['performerAttention'],
  paper: { title: 'Rethinking Attention with Performers', year: 2020, url: 'https://arxiv.org/abs/2009.14794' },
  complexity: { time: 'O(n·M·(d + dv))', memory: 'O(n·M + M·dv); decode state O(M·dv)' },
  module: 'variants/kernelized/performer',
  exactSoftmax: false,
  capabilities: { fused: true, fusedBackward: false, causal: true, decode: true, pattern: false, learned: [] },
} as const satisfies EntryMeta;
