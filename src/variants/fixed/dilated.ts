/**
 * `dilated`: a sliding window with holes. Query i attends `j = p_i + u·r` for every integer u
 * with `|u| <= w` (causal: `−w <= u <= 0`); the dilation r may differ per query head (heads
 * with small r see near context, heads with large r far context).
 *
 * Complexity: time O(n·w·d), memory O(n·w). Composite: queries are grouped by residue class
 * modulo r (per head), so a group of G queries `p0, p0 + r, …` needs only G + 2w keys; fused
 * kernel: O(n), a query block visits the key blocks of its span and the rule seeks from one
 * key of the lattice to the next.
 *
 * Paper: Beltagy et al., "Longformer: The Long-Document Transformer", 2020 (dilated sliding
 * window), https://arxiv.org/abs/2004.05150 .
 *
 * @module
 */
import { add, and, headParam, keyIn, keyLattice, mul, P, param, sub, type ParamValues, type RuleDecl } from '../../../kernels/flash/rule.js';
import { checkInt } from '../../core/validate.js';
import { checkDilation, checkPatternConfig, dilatedBandBlock, dilationHeads, type HeadArray, PatternAttention, type PatternBaseConfig } from '../pattern.js';
import { meta } from './dilated.meta.js';

export { meta };

/** Config of {@link dilatedAttention}. */
export interface DilatedConfig extends PatternBaseConfig {
  /** Window w in dilated steps: `|u| <= w`. Integer >= 0. Default 64. */
  window?: number;
  /** Dilation r >= 1, or one per query head (an array of length `heads`). Default 2. */
  dilation?: number | number[];
}

const reach = mul(param('w'), headParam('r'));
/** The pattern, stated once: the band `|p − j| <= w·r_h` on the lattice `j ≡ p (mod r_h)`. */
export const DILATED_RULE: RuleDecl = { allow: and(keyIn(sub(P, reach), add(P, reach)), keyLattice(P, headParam('r'))) };

/** Dilated sliding-window attention; see the module doc. */
export class DilatedAttention extends PatternAttention<DilatedConfig & { window: number; dilation: number | number[] }> {
  protected get rule(): RuleDecl {
    return DILATED_RULE;
  }

  protected params(): ParamValues {
    return { w: this.config.window, r: this.config.dilation };
  }

  protected override headArray(): HeadArray | null {
    return dilationHeads(this.config.dilation);
  }

  protected override block(): number {
    return dilatedBandBlock(this.config.window, this.config.dilation);
  }
}

/**
 * Builds dilated sliding-window attention.
 *
 * @param config - `window` (default 64), `dilation` (default 2; a number or one per query head), `causal` (default false), `scale` (default 1/sqrt(d)).
 * @throws AttentionError for a bad config; at apply, when a per-head dilation does not have one entry per query head.
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import { dilatedAttention } from 'attention-catalog/dilated';
 * const q = tf.randomNormal([1, 4, 4096, 64]) as tf.Tensor4D;
 * const attn = dilatedAttention({ window: 32, dilation: [1, 2, 4, 8] }); // one dilation per head
 * const out = attn.apply(q, q, q);                                       // [1, 4, 4096, 64]
 * dilatedAttention({ window: 1, dilation: 3 }).pattern(10).rows[5];      // [2, 5, 8]
 * ```
 */
export function dilatedAttention(config: DilatedConfig = {}): DilatedAttention {
  const base = checkPatternConfig(meta.id, config, ['window', 'dilation']);
  const window = config.window === undefined ? 64 : checkInt('config.window', config.window, 0);
  const dilation = config.dilation === undefined ? 2 : checkDilation('config.dilation', config.dilation);
  return new DilatedAttention(meta.id, meta.family, Object.freeze({ ...base, window, dilation: Array.isArray(dilation) ? Object.freeze([...dilation]) as number[] : dilation }), meta.complexity);
}
