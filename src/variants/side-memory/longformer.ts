/**
 * `longformer`: a (dilated) sliding window plus global positions. Query i attends key j when
 * j is global, or `p_i` is global, or `|p_i − j| <= w·r` and `(p_i − j) mod r == 0` (r = 1: a
 * plain window; r may differ per query head). Global positions are absolute positions in
 * `[0, m)` (e.g. a [CLS] token at 0, question tokens): they see everything and everything
 * sees them.
 *
 * ```
 *   window w = 1, global [0], n = m = 8
 *   q0  x x x x x x x x      (global)
 *   q1  x x x . . . . .
 *   q4  x . . x x x . .
 *   q7  x . . . . . x x
 * ```
 *
 * Complexity: time O(n·(w + g)·d), memory O(n·(w + g)) plus the g global queries over all m
 * keys. Fused kernel: query blocks visit their band's key blocks and the global keys' blocks
 * (blocks holding a global query visit all); the rule looks the global flags up in a table and
 * seeks to the next global or band key. Composite: global keys, band and global queries as
 * three parts merged by log-sum-exp.
 *
 * Paper: Beltagy et al., "Longformer: The Long-Document Transformer", 2020,
 * https://arxiv.org/abs/2004.05150 .
 *
 * @module
 */
import type { SparseKernelPlan } from '../../../kernels/flash/sparse_attend.js';
import type { PartDef } from '../../../kernels/flash/parts.js';
import { SEEK_END, type ElementRule } from '../../../kernels/flash/layout.js';
import { AttentionError, show } from '../../core/errors.js';
import { checkInt } from '../../core/validate.js';
import { checkDilation, checkDilationHeads, checkPatternConfig, dilationOf, i32, mod, PatternAttention, type PatternBaseConfig } from '../pattern.js';
import { globalBandLayout, globalBandParts, type GlobalBand } from '../global-band.js';

/** Config of {@link longformerAttention}. */
export interface LongformerConfig extends PatternBaseConfig {
  /** Window w (in dilated steps): `|p − j| <= w·r`. Integer >= 0. Default 128. */
  window?: number;
  /** Dilation r >= 1, or one per query head. Default 1. */
  dilation?: number | number[];
  /** Global positions: distinct integers in `[0, m)`. Default `[]`. */
  global?: number[];
}

type Resolved = LongformerConfig & { window: number; dilation: number | number[]; global: number[] };

/** The largest m whose positions the kernel's f32 rule tables hold exactly. */
const MAX_TABLE_M = 1 << 24;

/** Longformer attention; see the module doc. */
export class LongformerAttention extends PatternAttention<Resolved> {
  private readonly globalSet: Set<number>;

  constructor(...args: ConstructorParameters<typeof PatternAttention<Resolved>>) {
    super(...args);
    this.globalSet = new Set(this.config.global);
  }

  private band(n: number, m: number, heads: number): GlobalBand {
    return {
      n, m, heads,
      causal: this.config.causal,
      window: this.config.window,
      dilation: this.config.dilation,
      globals: this.config.global,
      isGlobal: (x) => this.globalSet.has(x),
    };
  }

  protected weight(p: number, j: number, h: number): number {
    if (this.globalSet.has(j) || this.globalSet.has(p)) return 1;
    const r = dilationOf(this.config.dilation, h);
    return Math.abs(p - j) <= this.config.window * r && (p - j) % r === 0 ? 1 : 0;
  }

  protected override checkSizes(n: number, m: number): void {
    super.checkSizes(n, m);
    this.config.global.forEach((x, s) => {
      if (x >= m) throw new AttentionError(`config.global[${s}]`, `a position in [0, m = ${m})`, `${x}`);
    });
  }

  protected override checkHeads(heads: number): void {
    checkDilationHeads('config.dilation', this.config.dilation, heads);
  }

  protected override checkHead(head: number): void {
    const d = this.config.dilation;
    if (Array.isArray(d) && head >= d.length) throw new AttentionError('head', `a query head below ${d.length} (entries of config.dilation)`, `${head}`);
  }

  protected kernelPlan(n: number, m: number, heads: number): SparseKernelPlan {
    if (m > MAX_TABLE_M) throw new AttentionError('k', `at most ${MAX_TABLE_M} keys for longformer's fused kernel`, `m = ${m}`, "Use implementation 'composite'.");
    const { window: w, dilation, global } = this.config;
    const perHead = Array.isArray(dilation);
    // params: [offset of isGlobal, offset of nextGlobal, dilation per head…, isGlobal[m], nextGlobal[m + 1]].
    const dil = perHead ? dilation : [];
    const gOff = 2 + dil.length;
    const nOff = gOff + m;
    const params = new Float32Array(nOff + m + 1);
    params[0] = gOff;
    params[1] = nOff;
    params.set(dil, 2);
    for (const x of global) params[gOff + x] = 1;
    let next = SEEK_END;
    for (let x = m; x >= 0; x--) {
      if (x < m && this.globalSet.has(x)) next = x;
      params[nOff + x] = next;
    }
    const r = perHead ? 'i32(params[2 + h])' : i32(dilation);
    const W = i32(w);
    const rule: ElementRule = {
      key: `longformer:${w}:${perHead ? 'perHead' : dilation}`,
      wgsl: `
  fn isGlobal(x : i32) -> bool { return params[i32(params[0]) + x] > 0.5; }
  fn ruleWeight(p : i32, j : i32, h : i32) -> f32 {
    if (isGlobal(j) || isGlobal(p)) { return 1.0; }
    let r = ${r};
    let d = p - j;
    if (abs(d) <= ${W} * r && d % r == 0) { return 1.0; }
    return 0.0;
  }
  fn ruleSeek(p : i32, j : i32, h : i32) -> i32 {
    if (isGlobal(p)) { return j; }
    let nextGlobal = i32(params[i32(params[1]) + j]);
    let r = ${r};
    var band = ${SEEK_END};
    if (j <= p + ${W} * r) {
      let j1 = max(j, p - ${W} * r);
      band = j1 + (((p - j1) % r) + r) % r;
    }
    return min(nextGlobal, band);
  }`,
      params,
      weight: (p, j, h) => this.weight(p, j, h),
      seeks: true,
      seek: (p, j, h) => {
        if (this.globalSet.has(p)) return j;
        const rh = dilationOf(dilation, h);
        let band = SEEK_END;
        if (j <= p + w * rh) {
          const j1 = Math.max(j, p - w * rh);
          band = j1 + mod(p - j1, rh);
        }
        return Math.min(params[nOff + j], band);
      },
    };
    return { layout: globalBandLayout(this.band(n, m, heads)), rule };
  }

  protected partDefs(n: number, m: number, heads: number): PartDef[] {
    return globalBandParts(this.band(n, m, heads));
  }
}

/**
 * Builds Longformer attention.
 *
 * @param config - `window` (default 128), `dilation` (default 1; a number or one per query head), `global` (default []), `causal` (default false), `scale` (default 1/sqrt(d)).
 * @throws AttentionError for a bad config (e.g. duplicate or negative global positions); at apply, for a global position >= m.
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import { longformerAttention } from 'attention-catalog/longformer';
 * const q = tf.randomNormal([1, 4, 4096, 64]) as tf.Tensor4D;
 * const attn = longformerAttention({ window: 128, global: [0, 1, 2, 3] });
 * const out = attn.apply(q, q, q);                                     // [1, 4, 4096, 64]
 * longformerAttention({ window: 1, global: [0] }).pattern(8).rows[4];  // [0, 3, 4, 5]
 * ```
 */
export function longformerAttention(config: LongformerConfig = {}): LongformerAttention {
  const base = checkPatternConfig('longformer', config, ['window', 'dilation', 'global']);
  const window = config.window === undefined ? 128 : checkInt('config.window', config.window, 0);
  const dilation = config.dilation === undefined ? 1 : checkDilation('config.dilation', config.dilation);
  const given = config.global === undefined ? [] : config.global;
  if (!Array.isArray(given)) throw new AttentionError('config.global', 'an array of distinct positions (integers >= 0)', show(given));
  const global = given.map((x, s) => checkInt(`config.global[${s}]`, x, 0));
  const seen = new Set<number>();
  global.forEach((x, s) => {
    if (seen.has(x)) throw new AttentionError(`config.global[${s}]`, 'distinct positions', `${x} a second time`, 'Remove the duplicate.');
    seen.add(x);
  });
  global.sort((a, b) => a - b);
  return new LongformerAttention(
    'longformer',
    'side memory',
    Object.freeze({ ...base, window, dilation: Array.isArray(dilation) ? (Object.freeze([...dilation]) as number[]) : dilation, global: Object.freeze(global) as number[] }),
    { time: 'O(n·(w + g)·d)', memory: 'O(n·(w + g))' },
  );
}
