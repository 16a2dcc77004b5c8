/**
 * `strided`: each query attends every t-th key counted from its own position:
 * `(p_i − j) mod t == 0` (both directions; causal keeps `j <= p_i`).
 *
 * Complexity: time O(n·m/t·d), memory O(n·m/t). Composite: queries are grouped by residue
 * class (p mod t) and each group gathers its class's m/t keys; fused kernel: O(n), each
 * query walks its lattice of keys (the rule seeks from one key of the class to the next).
 *
 * Paper: Child et al., "Generating Long Sequences with Sparse Transformers", 2019 (the strided
 * head), https://arxiv.org/abs/1904.10509 .
 *
 * @module
 */
import { keyLattice, P, param, type ParamValues, type RuleDecl } from '../../../kernels/flash/rule.js';
import { checkInt } from '../../core/validate.js';
import { checkPatternConfig, PatternAttention, type PatternBaseConfig } from '../pattern.js';
import { meta } from './strided.meta.js';

export { meta };

/** Config of {@link stridedAttention}. */
export interface StridedConfig extends PatternBaseConfig {
  /** Stride t. Integer >= 1 (1: every key, dense). Default 128. */
  stride?: number;
}

/** The pattern, stated once: the lattice of keys `j ≡ p (mod t)`. */
export const STRIDED_RULE: RuleDecl = { allow: keyLattice(P, param('t')) };

/** Strided attention; see the module doc. */
export class StridedAttention extends PatternAttention<StridedConfig & { stride: number }> {
  protected get rule(): RuleDecl {
    return STRIDED_RULE;
  }

  protected params(): ParamValues {
    return { t: this.config.stride };
  }
}

/**
 * Builds strided attention.
 *
 * @param config - `stride` (default 128), `causal` (default false), `scale` (default 1/sqrt(d)).
 * @throws AttentionError for a bad config (a stride below 1 or fractional).
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import { stridedAttention } from 'attention-catalog/strided';
 * const q = tf.randomNormal([1, 4, 4096, 64]) as tf.Tensor4D;
 * const out = stridedAttention({ stride: 64, causal: true }).apply(q, q, q); // 64 keys per query at most
 * stridedAttention({ stride: 3 }).pattern(8).rows[4];                        // [1, 4, 7]
 * ```
 */
export function stridedAttention(config: StridedConfig = {}): StridedAttention {
  const base = checkPatternConfig(meta.id, config, ['stride']);
  const stride = config.stride === undefined ? 128 : checkInt('config.stride', config.stride, 1);
  return new StridedAttention(meta.id, meta.family, Object.freeze({ ...base, stride }), meta.complexity);
}
