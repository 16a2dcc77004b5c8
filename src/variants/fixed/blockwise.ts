/**
 * `blockwise`: local attention over blocks of positions (Image Transformer's local 1D). The
 * sequence is cut into blocks of `block` positions; a query in block `B(p) = floor(p / b)`
 * attends every key of its own block and of the `lookback` blocks before it:
 * `B(p_i) − L <= B(j) <= B(p_i)` — look-back only, also when not causal; `causal` additionally
 * keeps `j <= p_i` inside the own block.
 *
 * Complexity: time O(n·b·(L+1)·d), memory O(n·b·(L+1)) (composite: each block of queries
 * gathers its L + 1 key blocks; fused kernel: O(n), its layout lists exactly those blocks).
 *
 * Paper: Parmar et al., "Image Transformer", 2018, https://arxiv.org/abs/1802.05751 .
 *
 * @module
 */
import { add, div, keyIn, mul, P, param, sub, type ParamValues, type RuleDecl } from '../../../kernels/flash/rule.js';
import { checkInt } from '../../core/validate.js';
import { checkPatternConfig, kernelBlockFor, PatternAttention, type PatternBaseConfig } from '../pattern.js';
import { meta } from './blockwise.meta.js';

export { meta };

/** Config of {@link blockwiseAttention}. */
export interface BlockwiseConfig extends PatternBaseConfig {
  /** Block size b in positions. Integer >= 1. Default 64. */
  block?: number;
  /** Look-back L: how many previous blocks each block also attends. Integer >= 0. Default 0. */
  lookback?: number;
}

const ownBlock = div(P, param('b'));
/** The pattern, stated once: keys of the query's block and the L blocks before it. */
export const BLOCKWISE_RULE: RuleDecl = {
  allow: keyIn(mul(sub(ownBlock, param('L')), param('b')), sub(mul(add(ownBlock, 1), param('b')), 1)),
};

/** Blockwise local attention; see the module doc. */
export class BlockwiseAttention extends PatternAttention<BlockwiseConfig & { block: number; lookback: number }> {
  protected get rule(): RuleDecl {
    return BLOCKWISE_RULE;
  }

  protected params(): ParamValues {
    return { b: this.config.block, L: this.config.lookback };
  }

  protected override block(): number {
    // Kernel blocks that divide the pattern's blocks make every visited run full.
    const B = kernelBlockFor(this.config.block);
    return B >= 16 || B === this.config.block ? B : 64;
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
  const base = checkPatternConfig(meta.id, config, ['block', 'lookback']);
  const block = config.block === undefined ? 64 : checkInt('config.block', config.block, 1);
  const lookback = config.lookback === undefined ? 0 : checkInt('config.lookback', config.lookback, 0);
  return new BlockwiseAttention(meta.id, meta.family, Object.freeze({ ...base, block, lookback }), meta.complexity);
}
