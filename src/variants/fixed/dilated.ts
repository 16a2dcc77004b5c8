/**
 * `dilated`: a sliding window with holes. Query i attends `j = p_i + u·r` for every integer u
 * with `|u| <= w` (causal: `−w <= u <= 0`); the dilation r may differ per query head (heads
 * with small r see near context, heads with large r far context).
 *
 * ```
 *   window w = 2, dilation r = 2, n = m = 10
 *   q4  x . x . x . x . x .        keys 0, 2, 4, 6, 8
 *   q5  . x . x . x . x . x        keys 1, 3, 5, 7, 9
 * ```
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
import type { SparseKernelPlan } from '../../../kernels/flash/sparse_attend.js';
import { keyLattice, residueGroups, range, type PartDef } from '../../../kernels/flash/parts.js';
import { buildLayout, SEEK_END, type ElementRule } from '../../../kernels/flash/layout.js';
import { AttentionError } from '../../core/errors.js';
import { checkInt } from '../../core/validate.js';
import { checkDilation, checkDilationHeads, checkPatternConfig, dilationOf, i32, PatternAttention, pow2Clamp, type PatternBaseConfig, mod } from '../pattern.js';

/** Config of {@link dilatedAttention}. */
export interface DilatedConfig extends PatternBaseConfig {
  /** Window w in dilated steps: `|u| <= w`. Integer >= 0. Default 64. */
  window?: number;
  /** Dilation r >= 1, or one per query head (an array of length `heads`). Default 2. */
  dilation?: number | number[];
}

/**
 * The WGSL rule of a dilated band `|p − j| <= w·r, (p − j) mod r == 0` with r per head (read
 * from `params[h]`) or fixed, seeking along the lattice.
 */
export function dilatedBandRule(w: number, dilation: number | number[]): ElementRule {
  const perHead = Array.isArray(dilation);
  const r = perHead ? 'i32(params[h])' : i32(dilation);
  return {
    key: `dilated:${w}:${perHead ? 'perHead' : dilation}`,
    wgsl: `
  fn ruleWeight(p : i32, j : i32, h : i32) -> f32 {
    let r = ${r};
    let d = p - j;
    if (abs(d) <= ${i32(w)} * r && d % r == 0) { return 1.0; }
    return 0.0;
  }
  fn ruleSeek(p : i32, j : i32, h : i32) -> i32 {
    let r = ${r};
    if (j > p + ${i32(w)} * r) { return ${SEEK_END}; }
    let j1 = max(j, p - ${i32(w)} * r);
    return j1 + (((p - j1) % r) + r) % r;
  }`,
    params: perHead ? Float32Array.from(dilation) : null,
    weight: (p, j, h) => {
      const rh = dilationOf(dilation, h);
      return Math.abs(p - j) <= w * rh && mod(p - j, rh) === 0 ? 1 : 0;
    },
    seeks: true,
    seek: (p, j, h) => {
      const rh = dilationOf(dilation, h);
      if (j > p + w * rh) return SEEK_END;
      const j1 = Math.max(j, p - w * rh);
      return j1 + mod(p - j1, rh);
    },
  };
}

/** Dilated sliding-window attention; see the module doc. */
export class DilatedAttention extends PatternAttention<DilatedConfig & { window: number; dilation: number | number[] }> {
  protected weight(p: number, j: number, h: number): number {
    const { window: w, dilation } = this.config;
    const r = dilationOf(dilation, h);
    return Math.abs(p - j) <= w * r && mod(p - j, r) === 0 ? 1 : 0;
  }

  protected override checkHeads(heads: number): void {
    checkDilationHeads('config.dilation', this.config.dilation, heads);
  }

  protected override checkHead(head: number): void {
    const d = this.config.dilation;
    if (Array.isArray(d) && head >= d.length) throw new AttentionError('head', `a query head below ${d.length} (entries of config.dilation)`, `${head}`);
  }

  protected kernelPlan(n: number, m: number, heads: number): SparseKernelPlan {
    const { window: w, dilation, causal } = this.config;
    const perHead = Array.isArray(dilation);
    const rMax = perHead ? Math.max(...dilation) : dilation;
    const B = pow2Clamp(w * rMax, 8, 64);
    const off = m - n;
    const layout = buildLayout({
      n, m, blockQ: B, blockK: B, layoutHeads: perHead ? heads : 1,
      visit: (qb, h) => {
        const span = w * dilationOf(dilation, h);
        const pLo = qb * B + off;
        const pHi = Math.min(pLo + B - 1, m - 1);
        return range(Math.floor(Math.max(0, pLo - span) / B), Math.floor(Math.min(m - 1, causal ? pHi : pHi + span) / B));
      },
    });
    return { layout, rule: dilatedBandRule(w, dilation) };
  }

  protected partDefs(n: number, m: number): PartDef[] {
    const { window: w, dilation, causal } = this.config;
    const off = m - n;
    return [
      {
        perHead: Array.isArray(dilation),
        groups: (h) => residueGroups(n, dilationOf(dilation, h), pow2Clamp(w, 8, 64)),
        keys: (rows, h) => {
          const r = dilationOf(dilation, h);
          const first = rows[0] + off;
          const last = rows[rows.length - 1] + off;
          return keyLattice(first, r, first - w * r, causal ? last : last + w * r, m);
        },
        weight: (p, j, h) => this.weight(p, j, h),
      },
    ];
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
  const base = checkPatternConfig('dilated', config, ['window', 'dilation']);
  const window = config.window === undefined ? 64 : checkInt('config.window', config.window, 0);
  const dilation = config.dilation === undefined ? 2 : checkDilation('config.dilation', config.dilation);
  return new DilatedAttention('dilated', 'fixed', Object.freeze({ ...base, window, dilation: Array.isArray(dilation) ? Object.freeze([...dilation]) as number[] : dilation }), {
    time: 'O(n·w·d)',
    memory: 'O(n·w)',
  });
}
