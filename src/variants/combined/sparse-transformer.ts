/**
 * `sparse-transformer`: the Sparse Transformer's two factorized patterns, each as one softmax
 * over the union of its two heads' sets (causal keeps `j <= p_i` of the union).
 *
 * - `'strided'`: `|p_i − j| < t` (the previous/next t − 1 positions) or `(p_i − j) mod t == 0`
 *   (every t-th position).
 * - `'fixed'`: `floor(j / t) == floor(p_i / t)` (the own block of t) or `j mod t >= t − c`
 *   (the last c "summary" positions of every block).
 *
 * ```
 *   strided, t = 3, n = m = 9          fixed, t = 3, c = 1
 *   q4  x . x x x x x x .              q4  . . x x x x . . x
 * ```
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
import type { SparseKernelPlan } from '../../../kernels/flash/sparse_attend.js';
import { contiguousGroups, keyLattice, keyRange, positionBlockGroups, residueGroups, type PartDef } from '../../../kernels/flash/parts.js';
import type { ElementRule } from '../../../kernels/flash/layout.js';
import { AttentionError, show } from '../../core/errors.js';
import { checkInt } from '../../core/validate.js';
import { checkPatternConfig, i32, mod, PatternAttention, type PatternBaseConfig } from '../pattern.js';

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

function stridedUnionRule(t: number): ElementRule {
  const T = i32(t);
  return {
    key: `st-strided:${t}`,
    wgsl: `
  fn ruleWeight(p : i32, j : i32, h : i32) -> f32 {
    let d = p - j;
    if (abs(d) < ${T} || d % ${T} == 0) { return 1.0; }
    return 0.0;
  }
  fn ruleSeek(p : i32, j : i32, h : i32) -> i32 {
    if (j > p - ${T} && j < p + ${T}) { return j; }
    let lattice = j + (((p - j) % ${T}) + ${T}) % ${T};
    if (j <= p - ${T}) { return min(lattice, p - ${T} + 1); }
    return lattice;
  }`,
    params: null,
    weight: (p, j) => (Math.abs(p - j) < t || mod(p - j, t) === 0 ? 1 : 0),
    seeks: true,
    seek: (p, j) => {
      if (j > p - t && j < p + t) return j;
      const lattice = j + mod(p - j, t);
      return j <= p - t ? Math.min(lattice, p - t + 1) : lattice;
    },
  };
}

function fixedUnionRule(t: number, c: number): ElementRule {
  const T = i32(t);
  const C = i32(c);
  return {
    key: `st-fixed:${t}:${c}`,
    wgsl: `
  fn ruleWeight(p : i32, j : i32, h : i32) -> f32 {
    if (j / ${T} == p / ${T} || j % ${T} >= ${T} - ${C}) { return 1.0; }
    return 0.0;
  }
  fn ruleSeek(p : i32, j : i32, h : i32) -> i32 {
    if (j / ${T} == p / ${T} || j % ${T} >= ${T} - ${C}) { return j; }
    let summary = (j / ${T}) * ${T} + ${T} - ${C};
    let own = (p / ${T}) * ${T};
    if (own > j) { return min(own, summary); }
    return summary;
  }`,
    params: null,
    weight: (p, j) => (Math.floor(j / t) === Math.floor(p / t) || j % t >= t - c ? 1 : 0),
    seeks: true,
    seek: (p, j) => {
      if (Math.floor(j / t) === Math.floor(p / t) || j % t >= t - c) return j;
      const summary = Math.floor(j / t) * t + t - c;
      const own = Math.floor(p / t) * t;
      return own > j ? Math.min(own, summary) : summary;
    },
  };
}

/** Sparse Transformer attention; see the module doc. */
export class SparseTransformerAttention extends PatternAttention<Resolved> {
  protected weight(p: number, j: number): number {
    const { stride: t, pattern, summary: c } = this.config;
    if (pattern === 'strided') return Math.abs(p - j) < t || mod(p - j, t) === 0 ? 1 : 0;
    return Math.floor(j / t) === Math.floor(p / t) || j % t >= t - c ? 1 : 0;
  }

  protected kernelPlan(): SparseKernelPlan {
    const { stride: t, pattern, summary: c } = this.config;
    return { layout: null, rule: pattern === 'strided' ? stridedUnionRule(t) : fixedUnionRule(t, c) };
  }

  protected partDefs(n: number, m: number): PartDef[] {
    const { stride: t, pattern, summary: c, causal } = this.config;
    const off = m - n;
    const lastP = (rows: number[]) => rows[rows.length - 1] + off;
    if (pattern === 'strided') {
      return [
        {
          groups: () => contiguousGroups(n, Math.min(64, Math.max(8, t))),
          keys: (rows) => keyRange(rows[0] + off - t + 1, causal ? lastP(rows) : lastP(rows) + t - 1, m),
          weight: (p, j) => (Math.abs(p - j) < t ? 1 : 0),
        },
        {
          groups: () => residueGroups(n, t, 64),
          keys: (rows) => keyLattice(rows[0] + off, t, 0, causal ? lastP(rows) : m - 1, m),
          weight: (p, j) => (Math.abs(p - j) >= t && mod(p - j, t) === 0 ? 1 : 0),
        },
      ];
    }
    return [
      {
        groups: () => positionBlockGroups(n, off, t, 128),
        keys: (rows) => {
          const P = Math.floor((rows[0] + off) / t);
          return keyRange(P * t, causal ? lastP(rows) : P * t + t - 1, m);
        },
        weight: (p, j) => (Math.floor(j / t) === Math.floor(p / t) ? 1 : 0),
      },
      {
        groups: () => contiguousGroups(n, 64),
        keys: (rows) => {
          const hi = causal ? lastP(rows) : m - 1;
          const out: number[] = [];
          for (let j0 = 0; j0 <= hi; j0 += t) for (let j = j0 + t - c; j < j0 + t && j <= hi; j++) out.push(j);
          return out;
        },
        weight: (p, j) => (j % t >= t - c && Math.floor(j / t) !== Math.floor(p / t) ? 1 : 0),
      },
    ];
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
  const base = checkPatternConfig('sparse-transformer', config, ['stride', 'pattern', 'summary']);
  const stride = config.stride === undefined ? 128 : checkInt('config.stride', config.stride, 1);
  const pattern = config.pattern === undefined ? 'strided' : config.pattern;
  if (pattern !== 'strided' && pattern !== 'fixed') throw new AttentionError('config.pattern', "'strided' or 'fixed'", show(pattern));
  const summary = config.summary === undefined ? 1 : checkInt('config.summary', config.summary, 1, stride);
  return new SparseTransformerAttention('sparse-transformer', 'combined', Object.freeze({ ...base, stride, pattern, summary }), {
    time: 'O(n·(t + m/t)·d)',
    memory: 'O(n·(t + m/t))',
  });
}
