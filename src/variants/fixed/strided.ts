/**
 * `strided`: each query attends every t-th key counted from its own position:
 * `(p_i − j) mod t == 0` (both directions; causal keeps `j <= p_i`).
 *
 * ```
 *   stride t = 3, n = m = 8
 *   q0  x . . x . . x .
 *   q1  . x . . x . . x
 *   q2  . . x . . x . .
 *   q3  x . . x . . x .
 *   …   the keys of the query's residue class mod t
 * ```
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
import type { SparseKernelPlan } from '../../../kernels/flash/sparse_attend.js';
import { keyLattice, residueGroups, type PartDef } from '../../../kernels/flash/parts.js';
import type { ElementRule } from '../../../kernels/flash/layout.js';
import { checkInt } from '../../core/validate.js';
import { checkPatternConfig, i32, mod, PatternAttention, type PatternBaseConfig } from '../pattern.js';

/** Config of {@link stridedAttention}. */
export interface StridedConfig extends PatternBaseConfig {
  /** Stride t. Integer >= 1 (1: every key, dense). Default 128. */
  stride?: number;
}

/** The WGSL rule of the lattice `(p − j) mod t == 0`, seeking from one lattice key to the next. */
export function latticeRule(t: number): ElementRule {
  return {
    key: `lattice:${t}`,
    wgsl: `
  fn ruleWeight(p : i32, j : i32, h : i32) -> f32 {
    if ((p - j) % ${i32(t)} == 0) { return 1.0; }
    return 0.0;
  }
  fn ruleSeek(p : i32, j : i32, h : i32) -> i32 {
    return j + (((p - j) % ${i32(t)}) + ${i32(t)}) % ${i32(t)};
  }`,
    params: null,
    weight: (p, j) => (mod(p - j, t) === 0 ? 1 : 0),
    seeks: true,
    seek: (p, j) => j + mod(p - j, t),
  };
}

/** Strided attention; see the module doc. */
export class StridedAttention extends PatternAttention<StridedConfig & { stride: number }> {
  protected weight(p: number, j: number): number {
    return mod(p - j, this.config.stride) === 0 ? 1 : 0;
  }

  protected kernelPlan(): SparseKernelPlan {
    // Every key block holds keys of every class when t is small: no layout, the rule seeks.
    return { layout: null, rule: latticeRule(this.config.stride) };
  }

  protected partDefs(n: number, m: number): PartDef[] {
    const { stride: t, causal } = this.config;
    const off = m - n;
    return [
      {
        groups: () => residueGroups(n, t, 64),
        keys: (rows) => keyLattice(rows[0] + off, t, 0, causal ? rows[rows.length - 1] + off : m - 1, m),
        weight: (p, j) => this.weight(p, j),
      },
    ];
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
  const base = checkPatternConfig('strided', config, ['stride']);
  const stride = config.stride === undefined ? 128 : checkInt('config.stride', config.stride, 1);
  return new StridedAttention('strided', 'fixed', Object.freeze({ ...base, stride }), { time: 'O(n·m/t·d)', memory: 'O(n·m/t)' });
}
