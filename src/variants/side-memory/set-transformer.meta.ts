/**
 * The catalog metadata of `set-transformer`, written once: the variant module (`set-transformer.ts`)
 * re-exports it and builds its instances from it, `src/index.ts` lists it, test/coverage.test.ts
 * checks every other place that names the entry against it. No imports but the type, so that the
 * catalog never loads a kernel.
 *
 * `exactSoftmax` is false: both steps are exact softmax attentions, but the output is not softmax
 * attention of q over any allowed set of the given keys — the queries only see the mi induced
 * rows H = attn(I, K, V), a rank-mi bottleneck of dense attention (like Linformer's projections),
 * so an error against dense attention is what measures it. Non-causal (`causal: false`): every
 * induced row summarizes the whole key set.
 *
 * @module
 */
import type { EntryMeta } from '../../core/catalog-types.js';

/** `set-transformer`'s catalog metadata. */
export const meta = {
  id: 'set-transformer',
  family: 'side memory',
  factories: ['setTransformerAttention'],
  paper: {
    title: 'Set Transformer: A Framework for Attention-based Permutation-Invariant Neural Networks',
    year: 2019,
    url: 'https://arxiv.org/abs/1810.00825',
  },
  complexity: { time: 'O((n + m)·mi·d)', memory: 'O(n·mi)' },
  module: 'variants/side-memory/set-transformer',
  exactSoftmax: false,
  capabilities: { fused: true, fusedBackward: true, causal: false, decode: false, pattern: false, learned: ['inducing'] },
} as const satisfies EntryMeta;
