/**
 * `etc`: Extended Transformer Construction's global-local attention on one sequence. The
 * first g positions are the global input: a pair is allowed when either position is global
 * (`p_i < g` or `j < g`) or the two are within the radius (`|p_i − j| <= r`).
 *
 * Complexity: time O(n·(r + g)·d), memory O(n·(r + g)) plus the g global queries over all m
 * keys. Fused kernel: query blocks visit their band's key blocks and the global block(s); the
 * rule seeks to the band. Composite: global keys, band and global queries as three parts
 * merged by log-sum-exp.
 *
 * Paper: Ainslie et al., "ETC: Encoding Long and Structured Inputs in Transformers", 2020,
 * https://arxiv.org/abs/2004.08483 .
 *
 * @module
 */
import { add, keyIn, lt, or, P, param, sub, type ParamValues, type RuleDecl } from '../../../kernels/flash/rule.js';
import { checkInt } from '../../core/validate.js';
import { checkPatternConfig, PatternAttention, pow2Clamp, type PatternBaseConfig } from '../pattern.js';
import { meta } from './etc.meta.js';

export { meta };

/** Config of {@link etcAttention}. */
export interface EtcConfig extends PatternBaseConfig {
  /** g: positions 0 … g − 1 are global. Integer >= 0. Default 16. */
  globalTokens?: number;
  /** Radius r of the local band: `|p − j| <= r`. Integer >= 0. Default 128. */
  radius?: number;
}

type Resolved = EtcConfig & { globalTokens: number; radius: number };

const g = param('g');
/** The pattern, stated once: a global key, or a global query, or the band `|p − j| <= r`. */
export const ETC_RULE: RuleDecl = { allow: or(keyIn(0, sub(g, 1)), lt(P, g), keyIn(sub(P, param('r')), add(P, param('r')))) };

/** ETC global-local attention; see the module doc. */
export class EtcAttention extends PatternAttention<Resolved> {
  protected get rule(): RuleDecl {
    return ETC_RULE;
  }

  protected params(): ParamValues {
    return { g: this.config.globalTokens, r: this.config.radius };
  }

  protected override block(): number {
    return pow2Clamp(this.config.radius, 8, 64);
  }
}

/**
 * Builds ETC global-local attention.
 *
 * @param config - `globalTokens` (default 16), `radius` (default 128), `causal` (default false), `scale` (default 1/sqrt(d)).
 * @throws AttentionError for a bad config.
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import { etcAttention } from 'attention-catalog/etc';
 * const x = tf.randomNormal([1, 4, 4096 + 16, 64]) as tf.Tensor4D;    // 16 global tokens, then the long input
 * const out = etcAttention({ globalTokens: 16, radius: 128 }).apply(x, x, x);
 * etcAttention({ globalTokens: 2, radius: 1 }).pattern(8).rows[4];    // [0, 1, 3, 4, 5]
 * ```
 */
export function etcAttention(config: EtcConfig = {}): EtcAttention {
  const base = checkPatternConfig(meta.id, config, ['globalTokens', 'radius']);
  const globalTokens = config.globalTokens === undefined ? 16 : checkInt('config.globalTokens', config.globalTokens, 0);
  const radius = config.radius === undefined ? 128 : checkInt('config.radius', config.radius, 0);
  return new EtcAttention(meta.id, meta.family, Object.freeze({ ...base, globalTokens, radius }), meta.complexity);
}
