/**
 * `dense`: exact scaled dot-product attention, the catalog's baseline.
 *
 * On webgpu it runs the fused flash-style kernel (online softmax, split-KV with a merge of
 * partial (output, logsumexp) pairs): intermediate memory O(n), never an n×m matrix. On every
 * other backend it runs the composite of tfjs ops (O(n·m) memory).
 *
 * Definition: `o_i = Σ_j softmax_j(s · q_i·k_j over allowed j) · v_j`, allowed = all keys below
 * `keyLength[b]`, and `j <= p_i = i + (m − n)` when causal (queries are the last n positions).
 *
 * Paper: Vaswani et al., "Attention Is All You Need", 2017, https://arxiv.org/abs/1706.03762 ;
 * fused form: Dao et al., "FlashAttention", 2022, https://arxiv.org/abs/2205.14135 .
 *
 * @module
 */
import { checkBaseConfig } from '../../core/validate.js';
import { DenseAttention, type DenseConfig } from '../dense-base.js';
import { meta } from './dense.meta.js';

export { DenseAttention, type DecodeResult, type DenseConfig } from '../dense-base.js';
export { meta };

/**
 * Builds exact dense attention.
 *
 * @param config - `causal` (default false), `scale` (default 1/sqrt(d)).
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import { initBackend } from 'attention-catalog/backend';
 * import { denseAttention } from 'attention-catalog/dense';
 * await initBackend();
 * const q = tf.randomNormal([1, 8, 1024, 64]) as tf.Tensor4D;
 * const attn = denseAttention({ causal: true });
 * const out = attn.apply(q, q, q);   // [1, 8, 1024, 64]
 * ```
 */
export function denseAttention(config: DenseConfig = {}): DenseAttention {
  const checked = checkBaseConfig(meta.id, config);
  return new DenseAttention(meta.id, meta.family, Object.freeze({ ...checked }), meta.complexity);
}
