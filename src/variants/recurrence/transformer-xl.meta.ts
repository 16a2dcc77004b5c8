/**
 * The catalog metadata of `transformer-xl`, written once: the variant module re-exports it and
 * builds its instances from it, `src/index.ts` lists it, test/coverage.test.ts checks every other
 * place that names the entry against it. No imports but the type.
 *
 * @module
 */
import type { EntryMeta } from '../../core/catalog-types.js';

/** `transformer-xl`'s catalog metadata. */
export const meta = {
  id: 'transformer-xl',
  family: 'recurrence',
  factories: ['transformerXLAttention'],
  paper: { title: 'Transformer-XL: Attentive Language Models Beyond a Fixed-Length Context', year: 2019, url: 'https://arxiv.org/abs/1901.02860' },
  complexity: { time: 'O(n·(n + L)·d) per segment', memory: 'O(n·(n + L)) per segment (fused: O(n + (n + L)·d)); state O(L·d)' },
  module: 'variants/recurrence/transformer-xl',
  exactSoftmax: true,
  capabilities: { fused: true, fusedBackward: false, causal: true, decode: false, pattern: false, learned: ['u', 'v', 'wR'] },
} as const satisfies EntryMeta;
