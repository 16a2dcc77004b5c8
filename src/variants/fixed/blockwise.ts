/**
 * `blockwise`: local attention over blocks of positions (Image Transformer's local 1D). The
 * sequence is cut into blocks of `block` positions; a query in block `B(p) = floor(p / b)`
 * attends every key of its own block and of the `lookback` blocks before it:
 * `B(p_i) − L <= B(j) <= B(p_i)` — look-back only, also when not causal; `causal` additionally
 * keeps `j <= p_i` inside the own block.
 *
 * ```
 *   block b = 2, lookback L = 1, n = m = 8
 *   q0 q1   x x . . . . . .
 *   q2 q3   x x x x . . . .
 *   q4 q5   . . x x x x . .
 *   q6 q7   . . . . x x x x
 * ```
 *
 * Complexity: time O(n·b·(L+1)·d), memory O(n·b·(L+1)) (composite: each block of queries
 * gathers its L + 1 key blocks; fused kernel: O(n), its layout lists exactly those blocks).
 *
 * Paper: Parmar et al., "Image Transformer", 2018, https://arxiv.org/abs/1802.05751 .
 *
 * @module
 */
import type { SparseKernelPlan } from '../../../kernels/flash/sparse_attend.js';
import { keyRange, positionBlockGroups, range, type PartDef } from '../../../kernels/flash/parts.js';
import { buildLayout, SEEK_END, type ElementRule } from '../../../kernels/flash/layout.js';
import { checkInt } from '../../core/validate.js';
import { checkPatternConfig, i32, kernelBlockFor, PatternAttention, type PatternBaseConfig } from '../pattern.js';

/** Config of {@link blockwiseAttention}. */
export interface BlockwiseConfig extends PatternBaseConfig {
  /** Block size b in positions. Integer >= 1. Default 64. */
  block?: number;
  /** Look-back L: how many previous blocks each block also attends. Integer >= 0. Default 0. */
  lookback?: number;
}

/** Blockwise local attention; see the module doc. */
export class BlockwiseAttention extends PatternAttention<BlockwiseConfig & { block: number; lookback: number }> {
  protected weight(p: number, j: number): number {
    const { block: b, lookback: L } = this.config;
    const bp = Math.floor(p / b);
    const bj = Math.floor(j / b);
    return bj >= bp - L && bj <= bp ? 1 : 0;
  }

  protected kernelPlan(n: number, m: number): SparseKernelPlan {
    const { block: b, lookback: L } = this.config;
    const off = m - n;
    const B = kernelBlockFor(b);
    if (B >= 16 || B === b) {
      // Kernel blocks divide pattern blocks and start at block boundaries of positions: the
      // layout is exact and needs no element rule.
      const rowOffset = off % B;
      const layout = buildLayout({
        n, m, blockQ: B, blockK: B, rowOffset,
        visit: (qb) => {
          const P = Math.floor((qb * B - rowOffset + off) / b);
          const lo = Math.max(0, (P - L) * b);
          const hi = Math.min(m - 1, P * b + b - 1);
          return range(Math.floor(lo / B), Math.floor(hi / B));
        },
      });
      return { layout, rule: null };
    }
    // A large block without a good divisor: 64-blocks covering the span, and the exact rule.
    const K = 64;
    const layout = buildLayout({
      n, m, blockQ: K, blockK: K,
      visit: (qb) => {
        const pLo = qb * K + off;
        const pHi = Math.min(pLo + K - 1, m - 1);
        const lo = Math.max(0, (Math.floor(pLo / b) - L) * b);
        const hi = Math.min(m - 1, Math.floor(pHi / b) * b + b - 1);
        return range(Math.floor(lo / K), Math.floor(hi / K));
      },
    });
    const rule: ElementRule = {
      key: `blockwise:${b}:${L}`,
      wgsl: `
  fn ruleWeight(p : i32, j : i32, h : i32) -> f32 {
    let bp = p / ${i32(b)};
    let bj = j / ${i32(b)};
    if (bj >= bp - ${i32(L)} && bj <= bp) { return 1.0; }
    return 0.0;
  }
  fn ruleSeek(p : i32, j : i32, h : i32) -> i32 {
    let bp = p / ${i32(b)};
    if (j >= (bp + 1) * ${i32(b)}) { return ${SEEK_END}; }
    return max(j, (bp - ${i32(L)}) * ${i32(b)});
  }`,
      params: null,
      weight: (p, j) => this.weight(p, j),
      seeks: true,
      seek: (p, j) => {
        const bp = Math.floor(p / b);
        return j >= (bp + 1) * b ? SEEK_END : Math.max(j, (bp - L) * b);
      },
    };
    return { layout, rule };
  }

  protected partDefs(n: number, m: number): PartDef[] {
    const { block: b, lookback: L, causal } = this.config;
    const off = m - n;
    return [
      {
        groups: () => positionBlockGroups(n, off, b, 128),
        keys: (rows) => {
          const P = Math.floor((rows[0] + off) / b);
          return keyRange((P - L) * b, causal ? rows[rows.length - 1] + off : P * b + b - 1, m);
        },
        weight: (p, j) => this.weight(p, j),
      },
    ];
  }
}

/**
 * Builds blockwise local attention.
 *
 * @param config - `block` (default 64), `lookback` (default 0), `causal` (default false), `scale` (default 1/sqrt(d)).
 * @throws AttentionError for a bad config.
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import { blockwiseAttention } from 'attention-catalog/blockwise';
 * const q = tf.randomNormal([1, 4, 4096, 64]) as tf.Tensor4D;
 * const out = blockwiseAttention({ block: 128, lookback: 1 }).apply(q, q, q); // [1, 4, 4096, 64]
 * blockwiseAttention({ block: 2, lookback: 1 }).pattern(6).rows[4];         // [2, 3, 4, 5]
 * ```
 */
export function blockwiseAttention(config: BlockwiseConfig = {}): BlockwiseAttention {
  const base = checkPatternConfig('blockwise', config, ['block', 'lookback']);
  const block = config.block === undefined ? 64 : checkInt('config.block', config.block, 1);
  const lookback = config.lookback === undefined ? 0 : checkInt('config.lookback', config.lookback, 0);
  return new BlockwiseAttention('blockwise', 'fixed', Object.freeze({ ...base, block, lookback }), {
    time: 'O(n·b·(L+1)·d)',
    memory: 'O(n·b·(L+1))',
  });
}
