/**
 * The catalog metadata of `dilated`, written once: the variant module (`dilated.ts`) re-exports it
 * and builds its instances from it, `src/index.ts` lists it, test/coverage.test.ts checks every
 * other place that names the entry against it. No imports but the type, so that the catalog
 * never loads a kernel.
 *
 * @module
 */
import type { EntryMeta } from '../../core/catalog-types.js';

/** `dilated`'s catalog metadata. */
export const meta = {
  id: 'dilated',
  family: 'fixed',
  factories: ['dilatedAttention'],
  paper: { title: 'Longformer: The Long-Document Transformer', year: 2020, url: 'https://arxiv.org/abs/2004.05150' },
  complexity: { time: 'O(n·w·d)', memory: 'O(n·w)' },
  module: 'variants/fixed/dilated',
  exactSoftmax: true,
  capabilities: { fused: true, fusedBackward: true, causal: true, decode: false, pattern: true, learned: [] },
} as const satisfies EntryMeta;
