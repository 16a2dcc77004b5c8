/**
 * `sparse-transformer`: the Sparse Transformer's two factorized patterns, each as one softmax
 * over the union of its two heads' sets (causal keeps `j <= p_i` of the union).
 *
 * - `'strided'`: `|p_i − j| < t` (the previous/next t − 1 positions) or `(p_i − j) mod t == 0`
 *   (every t-th position).
 * - `'fixed'`: `floor(j / t) == floor(p_i / t)` (the own block of t) or `j mod t >= t − c`
 *   (the last c "summary" positions of every block).
 *
 * Complexity: time O(n·(t + m/t)·d), memory O(n·(t + m/t)); with t ≈ sqrt(n), O(n·sqrt(n)).
 * Composite: two parts merged by their log-sum-exp — a band (or own block) gathered per group
 * of consecutive queries, and the lattice (or summary columns) gathered per residue class;
 * fused kernel: O(n), each query seeks along its union (band, then lattice keys).
 *
 * Paper: Child et al., "Generating Long Sequences with Sparse Transformers", 2019,
 * https://arxiv.org/abs/1904.10509 .
 *
 * @module
 */
import { add, div, keyIn, keyLattice, keyResidue, mul, or, P, param, sub, type ParamValues, type RuleDecl } from '../../../kernels/flash/rule.js';
import { AttentionError, show } from '../../core/errors.js';
import { checkInt } from '../../core/validate.js';
import { checkPatternConfig, PatternAttention, pow2Clamp, type PatternBaseConfig } from '../pattern.js';
import { meta } from './sparse-transformer.meta.js';

export { meta };

/** Config of {@link sparseTransformerAttention}. */
export interface SparseTransformerConfig extends PatternBaseConfig {
  /** Stride t (also the block size of `'fixed'`). Integer >= 1. Default 128. */
  stride?: number;
  /** `'strided'` (default) or `'fixed'`. */
  pattern?: 'strided' | 'fixed';
  /** Summary positions c per block of the `'fixed'` pattern. Integer in [1, t]. Default 1. */
  summary?: number;
}

type Resolved = SparseTransformerConfig & { stride: number; pattern: 'strided' | 'fixed'; summary: number };

const t = param('t');
const ownStart = mul(div(P, t), t);
/** The 'strided' pattern, stated once: the band `|p − j| < t`, or the lattice `j ≡ p (mod t)`. */
export const SPARSE_STRIDED_RULE: RuleDecl = { allow: or(keyIn(add(sub(P, t), 1), sub(add(P, t), 1)), keyLattice(P, t)) };
/** The 'fixed' pattern, stated once: the query's own block of t, or the last c positions of every block. */
export const SPARSE_FIXED_RULE: RuleDecl = { allow: or(keyIn(ownStart, sub(add(ownStart, t), 1)), keyResidue(t, sub(t, param('c')), sub(t, 1))) };

/** Sparse Transformer attention; see the module doc. */
export class SparseTransformerAttention extends PatternAttention<Resolved> {
  protected get rule(): RuleDecl {
    return this.config.pattern === 'strided' ? SPARSE_STRIDED_RULE : SPARSE_FIXED_RULE;
  }

  protected params(): ParamValues {
    return this.config.pattern === 'strided' ? { t: this.config.stride } : { t: this.config.stride, c: this.config.summary };
  }

  protected override block(): number {
    return pow2Clamp(this.config.stride, 8, 64);
  }
}

/**
 * Builds Sparse Transformer attention (strided or fixed factorization, one softmax over the union).
 *
 * @param config - `stride` (default 128), `pattern` ('strided' default | 'fixed'), `summary` (default 1), `causal` (default false), `scale` (default 1/sqrt(d)).
 * @throws AttentionError for a bad config (e.g. `summary` outside [1, stride]).
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import { sparseTransformerAttention } from 'attention-catalog/sparse-transformer';
 * const q = tf.randomNormal([1, 4, 4096, 64]) as tf.Tensor4D;
 * const attn = sparseTransformerAttention({ stride: 64, pattern: 'fixed', summary: 8, causal: true });
 * const out = attn.apply(q, q, q);                                            // [1, 4, 4096, 64]
 * sparseTransformerAttention({ stride: 3 }).pattern(9).rows[4];               // [1, 2, 3, 4, 5, 6, 7]
 * ```
 */
export function sparseTransformerAttention(config: SparseTransformerConfig = {}): SparseTransformerAttention {
  const base = checkPatternConfig(meta.id, config, ['stride', 'pattern', 'summary']);
  const stride = config.stride === undefined ? 128 : checkInt('config.stride', config.stride, 1);
  const pattern = config.pattern === undefined ? 'strided' : config.pattern;
  if (pattern !== 'strided' && pattern !== 'fixed') throw new AttentionError('config.pattern', "'strided' or 'fixed'", show(pattern));
  const summary = config.summary === undefined ? 1 : checkInt('config.summary', config.summary, 1, stride);
  return new SparseTransformerAttention(meta.id, meta.family, Object.freeze({ ...base, stride, pattern, summary }), meta.complexity);
}
