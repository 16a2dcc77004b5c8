/**
 * `linear`: linear attention (Katharopoulos et al., "Transformers are RNNs"). The softmax is
 * replaced by a feature map φ, and the sums over keys are shared by all queries:
 *
 * ```text
 * o_i = φ(q_i)ᵀ · Σ_j φ(k_j) v_jᵀ  /  φ(q_i)ᵀ · Σ_j φ(k_j)       over allowed j
 * ```
 *
 * allowed = keys below `keyLength[b]` (and `j <= p_i = i + (m − n)` when causal); where the
 * denominator is 0 the output is 0. `featureMap` is `'elu+1'` (elu(x) + 1, the paper's choice)
 * or `'relu'`. No scale: φ is applied to q and k as given.
 *
 * On webgpu one fused kernel (shared with `performer`) runs it: non-causal, a reduction of
 * `S = Σ φ(k)vᵀ` and `z = Σ φ(k)` split over the keys, then one pass over the queries; causal, a
 * chunked prefix scan that carries one d×dv state from chunk to chunk (never an n×d×dv tensor),
 * each query adding the causal part of its own chunk. Elsewhere the composite does the same
 * with tfjs ops. Memory O(n·d + d·dv); time O(n·d·dv).
 *
 * Causal instances also decode incrementally ({@link KernelizedAttention.decode}): the state is
 * `S` and `z`, O(d·dv) per kv head, the same size after every step.
 *
 * Paper: Katharopoulos et al., "Transformers are RNNs: Fast Autoregressive Transformers with
 * Linear Attention", 2020, https://arxiv.org/abs/2006.16236 .
 *
 * @module
 */
import { AttentionError, show } from '../../core/errors.js';
import type { Complexity } from '../../core/types.js';
import { checkBool, checkConfigKeys } from '../../core/validate.js';
import type { FeatureKind } from '../../../kernels/linear/feature_maps.js';
import { meta } from './linear.meta.js';
import { KernelizedAttention, type FeatureSetup } from '../kernelized-base.js';

export type { KernelizedDecodeResult, KernelizedDecodeState } from '../kernelized-base.js';

export { meta };

/** Config of {@link linearAttention}. */
export interface LinearConfig {
  /** `'elu+1'` (default) or `'relu'`. */
  featureMap?: 'elu+1' | 'relu';
  /** Key j is allowed only if `j <= i + (m − n)`. Default `false`. */
  causal?: boolean;
}

class LinearAttention extends KernelizedAttention<LinearConfig> {
  readonly id = meta.id;
  readonly family = meta.family;
  readonly complexity: Complexity = meta.complexity;

  constructor(private readonly cfg: Readonly<Required<LinearConfig>>) {
    super();
  }

  get config(): Readonly<Required<LinearConfig>> {
    return this.cfg;
  }

  protected featureShape(d: number) {
    return { kind: this.cfg.featureMap as FeatureKind, features: d };
  }

  protected setup(d: number): FeatureSetup {
    return { kind: this.cfg.featureMap, features: d, omega: null, ownsOmega: false, xscale: 1 };
  }
}

/**
 * Builds linear attention.
 *
 * @param config - `featureMap` ('elu+1' default | 'relu'), `causal` (default false).
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import { initBackend } from 'attention-catalog/backend';
 * import { linearAttention } from 'attention-catalog/linear';
 * await initBackend();
 * const q = tf.randomNormal([1, 8, 4096, 64]) as tf.Tensor4D;
 * const out = linearAttention({ causal: true }).apply(q, q, q); // [1, 8, 4096, 64], O(n) memory
 * ```
 */
export function linearAttention(config: LinearConfig = {}): KernelizedAttention<LinearConfig> {
  if (typeof config !== 'object' || config === null) throw new AttentionError('config', 'an object', show(config));
  checkConfigKeys(meta.id, config, ['featureMap', 'causal']);
  const featureMap = config.featureMap === undefined ? 'elu+1' : config.featureMap;
  if (featureMap !== 'elu+1' && featureMap !== 'relu') throw new AttentionError('config.featureMap', "'elu+1' or 'relu'", show(featureMap));
  const causal = config.causal === undefined ? false : checkBool('config.causal', config.causal);
  return new LinearAttention(Object.freeze({ featureMap, causal }));
}
