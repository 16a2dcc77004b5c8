/**
 * `longformer`: a (dilated) sliding window plus global positions. Query i attends key j when
 * j is global, or `p_i` is global, or `|p_i − j| <= w·r` and `(p_i − j) mod r == 0` (r = 1: a
 * plain window; r may differ per query head). Global positions are absolute positions in
 * `[0, m)` (e.g. a [CLS] token at 0, question tokens): they see everything and everything
 * sees them.
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
import { add, and, headParam, inTable, keyFlag, keyIn, keyLattice, mul, or, P, param, sub, type ParamValues, type RuleDecl } from '../../../kernels/flash/rule.js';
import { AttentionError, show } from '../../core/errors.js';
import { checkInt } from '../../core/validate.js';
import { checkDilation, checkPatternConfig, dilatedBandBlock, dilationHeads, type HeadArray, PatternAttention, type PatternBaseConfig } from '../pattern.js';
import { meta } from './longformer.meta.js';

export { meta };

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

const reach = mul(param('w'), headParam('r'));
/**
 * The pattern, stated once: a global key, or a global query (flags in a per-position table),
 * or the dilated band `|p − j| <= w·r_h` on the lattice `j ≡ p (mod r_h)`.
 */
export const LONGFORMER_RULE: RuleDecl = {
  allow: or(keyFlag('global'), inTable('global', P), and(keyIn(sub(P, reach), add(P, reach)), keyLattice(P, headParam('r')))),
};
/** The same without dilation (r = 1 on every head, the default): a plain band, and an exact seek. */
export const LONGFORMER_UNDILATED_RULE: RuleDecl = {
  allow: or(keyFlag('global'), inTable('global', P), keyIn(sub(P, param('w')), add(P, param('w')))),
};

/** Longformer attention; see the module doc. */
export class LongformerAttention extends PatternAttention<Resolved> {
  protected get rule(): RuleDecl {
    const d = this.config.dilation;
    return (Array.isArray(d) ? d.every((r) => r === 1) : d === 1) ? LONGFORMER_UNDILATED_RULE : LONGFORMER_RULE;
  }

  protected params(_n: number, m: number): ParamValues {
    const flags = new Int32Array(m);
    for (const x of this.config.global) if (x < m) flags[x] = 1;
    return { w: this.config.window, r: this.config.dilation, global: flags };
  }

  protected override headArray(): HeadArray | null {
    return dilationHeads(this.config.dilation);
  }

  protected override block(): number {
    return dilatedBandBlock(this.config.window, this.config.dilation);
  }

  protected override checkSizes(n: number, m: number): void {
    super.checkSizes(n, m);
    this.config.global.forEach((x, s) => {
      if (x >= m) throw new AttentionError(`config.global[${s}]`, `a position in [0, m = ${m})`, `${x}`);
    });
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
  const base = checkPatternConfig(meta.id, config, ['window', 'dilation', 'global']);
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
    meta.id,
    meta.family,
    Object.freeze({ ...base, window, dilation: Array.isArray(dilation) ? (Object.freeze([...dilation]) as number[]) : dilation, global: Object.freeze(global) as number[] }),
    meta.complexity,
  );
}
