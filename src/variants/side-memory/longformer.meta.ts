/**
 * The catalog metadata of `longformer`, written once: the variant module (`longformer.ts`) re-exports it
 * and builds its instances from it, `src/index.ts` lists it, test/coverage.test.ts checks every
 * other place that names the entry against it. No imports but the type, so that the catalog
 * never loads a kernel.
 *
 * @module
 */
import type { EntryMeta } from '../../core/catalog-types.js';

/** `longformer`'s catalog metadata. */
export const meta = {
  id: 'longformer',
  family: 'side memory',
  factories: ['longformerAttention'],
  paper: { title: 'Longformer: The Long-Document Transformer', year: 2020, url: 'https://arxiv.org/abs/2004.05150' },
  complexity: { time: 'O(n·(w + g)·d)', memory: 'O(n·(w + g))' },
  module: 'variants/side-memory/longformer',
  exactSoftmax: true,
  capabilities: { fused: true, fusedBackward: true, causal: true, decode: false, pattern: true, learned: [] },
} as const satisfies EntryMeta;
