/**
 * `etc`: Extended Transformer Construction's global-local attention on one sequence. The
 * first g positions are the global input: a pair is allowed when either position is global
 * (`p_i < g` or `j < g`) or the two are within the radius (`|p_i − j| <= r`).
 *
 * ```
 *   globalTokens g = 2, radius r = 1, n = m = 8
 *   q0  x x x x x x x x      (global)
 *   q1  x x x x x x x x      (global)
 *   q4  x x . x x x . .
 *   q7  x x . . . . x x
 * ```
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
import type { SparseKernelPlan } from '../../../kernels/flash/sparse_attend.js';
import { range, type PartDef } from '../../../kernels/flash/parts.js';
import { SEEK_END, type ElementRule } from '../../../kernels/flash/layout.js';
import { checkInt } from '../../core/validate.js';
import { checkPatternConfig, i32, PatternAttention, type PatternBaseConfig } from '../pattern.js';
import { globalBandLayout, globalBandParts, type GlobalBand } from '../global-band.js';

/** Config of {@link etcAttention}. */
export interface EtcConfig extends PatternBaseConfig {
  /** g: positions 0 … g − 1 are global. Integer >= 0. Default 16. */
  globalTokens?: number;
  /** Radius r of the local band: `|p − j| <= r`. Integer >= 0. Default 128. */
  radius?: number;
}

type Resolved = EtcConfig & { globalTokens: number; radius: number };

/** ETC global-local attention; see the module doc. */
export class EtcAttention extends PatternAttention<Resolved> {
  protected weight(p: number, j: number): number {
    const { globalTokens: g, radius: r } = this.config;
    return p < g || j < g || Math.abs(p - j) <= r ? 1 : 0;
  }

  private band(n: number, m: number, heads: number): GlobalBand {
    const g = this.config.globalTokens;
    return {
      n, m, heads,
      causal: this.config.causal,
      window: this.config.radius,
      dilation: 1,
      globals: range(0, Math.min(g, m) - 1),
      isGlobal: (x) => x < g,
    };
  }

  protected kernelPlan(n: number, m: number, heads: number): SparseKernelPlan {
    const { globalTokens: g, radius: r } = this.config;
    const G = i32(g);
    const R = i32(r);
    const rule: ElementRule = {
      key: `etc:${g}:${r}`,
      wgsl: `
  fn ruleWeight(p : i32, j : i32, h : i32) -> f32 {
    if (p < ${G} || j < ${G} || abs(p - j) <= ${R}) { return 1.0; }
    return 0.0;
  }
  fn ruleSeek(p : i32, j : i32, h : i32) -> i32 {
    if (p < ${G} || j < ${G}) { return j; }
    if (j > p + ${R}) { return ${SEEK_END}; }
    return max(j, p - ${R});
  }`,
      params: null,
      weight: (p, j) => this.weight(p, j),
      seeks: true,
      seek: (p, j) => (p < g || j < g ? j : j > p + r ? SEEK_END : Math.max(j, p - r)),
    };
    return { layout: globalBandLayout(this.band(n, m, heads)), rule };
  }

  protected partDefs(n: number, m: number, heads: number): PartDef[] {
    return globalBandParts(this.band(n, m, heads));
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
  const base = checkPatternConfig('etc', config, ['globalTokens', 'radius']);
  const globalTokens = config.globalTokens === undefined ? 16 : checkInt('config.globalTokens', config.globalTokens, 0);
  const radius = config.radius === undefined ? 128 : checkInt('config.radius', config.radius, 0);
  return new EtcAttention('etc', 'side memory', Object.freeze({ ...base, globalTokens, radius }), { time: 'O(n·(r + g)·d)', memory: 'O(n·(r + g))' });
}
