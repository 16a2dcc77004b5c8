/**
 * `big-bird`: BigBird's block-sparse pattern. Positions are cut into blocks of `block` b;
 * query block qb (the block of `p_i`) attends key block kb when
 * - `qb < g`: the first g blocks are global and see every block;
 * - `kb < g`: every block sees the global blocks;
 * - `|qb − kb| <= floor(w / 2)`: a sliding window of w blocks;
 * - kb is one of qb's r random blocks, chosen with the seeded generator among the blocks qb
 *   does not already see (or given explicitly as `randomLayout`).
 *
 * Complexity: time O(n·b·(w + g + r)·d), memory O(n·b·(w + g + r)) (plus the g global query
 * blocks over all m keys). Fused kernel: its layout lists exactly these blocks (no element
 * rule); composite: a part for the non-global blocks (each gathers its w + g + r key blocks)
 * and one for the global rows.
 *
 * Paper: Zaheer et al., "Big Bird: Transformers for Longer Sequences", 2020,
 * https://arxiv.org/abs/2007.14062 .
 *
 * @module
 */
import { add, blockMember, div, J, keyIn, lt, mul, or, P, param, sub, type ParamValues, type RuleDecl } from '../../../kernels/flash/rule.js';
import { Tensor } from '@tensorflow/tfjs-core';
import { AttentionError, show } from '../../core/errors.js';
import { DEFAULT_SEED, SeededRandom } from '../../core/rng.js';
import { checkInt } from '../../core/validate.js';
import { checkPatternConfig, kernelBlockFor, PatternAttention, type PatternBaseConfig } from '../pattern.js';
import { meta } from './big-bird.meta.js';

export { meta };

/** Config of {@link bigBirdAttention}. */
export interface BigBirdConfig extends PatternBaseConfig {
  /** Block size b in positions. Integer >= 1. Default 64. */
  block?: number;
  /** Window w in blocks: `|qb − kb| <= floor(w / 2)`. Integer >= 1. Default 3. */
  windowBlocks?: number;
  /** Global blocks g (the first g blocks). Integer >= 0. Default 2. */
  globalBlocks?: number;
  /** Random blocks r per query block. Integer >= 0. Default 3 (or the row width of `randomLayout`). */
  randomBlocks?: number;
  /** Seed of the random blocks. Default the library's fixed seed. */
  seed?: number;
  /**
   * Explicit random blocks: for each of the `ceil(m / b)` query blocks, its random key blocks
   * (at most `randomBlocks` distinct integers in `[0, ceil(m / b))`). A `number[][]` or an int32
   * `tf.Tensor2D` of shape `[ceil(m / b), r]`. Fixes m's block count. Default: drawn from `seed`.
   */
  randomLayout?: number[][] | Tensor;
}

type Resolved = BigBirdConfig & { block: number; windowBlocks: number; globalBlocks: number; randomBlocks: number; seed: number; randomLayout?: number[][] };

/**
 * The seeded random blocks of BigBird for `numBlocks` blocks: for each query block qb, up to r
 * distinct blocks among those it does not already see (global or window), ascending. Global
 * query blocks (which see everything) get none. Drawn in query-block order from one
 * {@link SeededRandom}, so the same seed gives the same layout everywhere.
 */
export function bigBirdRandomLayout(numBlocks: number, windowBlocks: number, globalBlocks: number, randomBlocks: number, seed: number): number[][] {
  const rng = new SeededRandom(seed);
  const half = Math.floor(windowBlocks / 2);
  const out: number[][] = [];
  for (let qb = 0; qb < numBlocks; qb++) {
    if (qb < globalBlocks) {
      out.push([]);
      continue;
    }
    const candidates: number[] = [];
    for (let kb = 0; kb < numBlocks; kb++) if (kb >= globalBlocks && Math.abs(qb - kb) > half) candidates.push(kb);
    out.push(rng.sample(candidates.length, randomBlocks).map((i) => candidates[i]).sort((a, b) => a - b));
  }
  return out;
}

const b = param('b');
const queryBlock = div(P, b);
/**
 * The pattern, stated once, in blocks of b positions: a global query block (qb < g), a global
 * key block (j < g·b), the window `|qb − kb| <= floor(w / 2)`, or one of the query block's r
 * random key blocks (a table of r entries per query block).
 */
export const BIG_BIRD_RULE: RuleDecl = {
  allow: or(
    lt(queryBlock, param('g')),
    keyIn(0, sub(mul(param('g'), b), 1)),
    keyIn(mul(sub(queryBlock, param('half')), b), sub(mul(add(add(queryBlock, param('half')), 1), b), 1)),
    blockMember('random', queryBlock, div(J, b), param('r')),
  ),
};

/** BigBird attention; see the module doc. */
export class BigBirdAttention extends PatternAttention<Resolved> {
  private readonly randomCache = new Map<number, { rows: number[][]; sets: Set<number>[] }>();

  /** The random blocks of each query block for `numBlocks` blocks (explicit or seeded). */
  randomBlocksFor(numBlocks: number): number[][] {
    this.checkLive();
    checkInt('numBlocks', numBlocks, 1);
    return this.random(numBlocks).rows.map((r) => r.slice());
  }

  private random(numBlocks: number): { rows: number[][]; sets: Set<number>[] } {
    let entry = this.randomCache.get(numBlocks);
    if (!entry) {
      const { windowBlocks: w, globalBlocks: g, randomBlocks: r, seed, randomLayout } = this.config;
      const rows = randomLayout ?? bigBirdRandomLayout(numBlocks, w, g, r, seed);
      entry = { rows, sets: rows.map((x) => new Set(x)) };
      if (this.randomCache.size > 8) this.randomCache.clear();
      this.randomCache.set(numBlocks, entry);
    }
    return entry;
  }

  protected get rule(): RuleDecl {
    return BIG_BIRD_RULE;
  }

  protected params(_n: number, m: number): ParamValues {
    const { block: b, windowBlocks: w, globalBlocks: g, randomBlocks: r } = this.config;
    const rows = this.random(Math.ceil(m / b)).rows;
    const random = new Int32Array(rows.length * r).fill(-1);
    rows.forEach((row, qb) => random.set(row, qb * r));
    return { b, g, half: Math.floor(w / 2), r, random };
  }

  protected override block(): number {
    // Kernel blocks that divide the pattern's blocks make every visited run full.
    const B = kernelBlockFor(this.config.block);
    return B >= 16 || B === this.config.block ? B : 64;
  }

  protected override checkSizes(n: number, m: number): void {
    super.checkSizes(n, m);
    const layout = this.config.randomLayout;
    if (layout) {
      const numBlocks = Math.ceil(m / this.config.block);
      if (layout.length !== numBlocks) {
        throw new AttentionError(
          'config.randomLayout',
          `one row per query block: ceil(m / block) = ceil(${m} / ${this.config.block}) = ${numBlocks} rows`,
          `${layout.length} rows`,
        );
      }
      layout.forEach((row, qb) =>
        row.forEach((kb, s) => {
          if (kb >= numBlocks) throw new AttentionError(`config.randomLayout[${qb}][${s}]`, `a block index in [0, ${numBlocks})`, `${kb}`);
        }),
      );
    }
  }
}

function checkRandomLayout(value: unknown): number[][] {
  const name = 'config.randomLayout';
  let rows: unknown;
  if (value instanceof Tensor) {
    if (value.isDisposed) throw new AttentionError(name, 'a live tensor', 'a disposed tensor');
    if (value.rank !== 2 || value.dtype !== 'int32') throw new AttentionError(name, 'an int32 tensor of shape [numBlocks, r]', show(value));
    rows = value.arraySync();
  } else {
    rows = value;
  }
  if (!Array.isArray(rows) || rows.length === 0 || !rows.every(Array.isArray)) {
    throw new AttentionError(name, 'a non-empty number[][] (per query block, its random key blocks) or an int32 Tensor2D', show(value));
  }
  return (rows as unknown[][]).map((row, qb) => {
    const out = row.map((kb, s) => checkInt(`${name}[${qb}][${s}]`, kb, 0));
    if (new Set(out).size !== out.length) throw new AttentionError(`${name}[${qb}]`, 'distinct key blocks', show(out));
    return out.sort((a, b) => a - b);
  });
}

/**
 * Builds BigBird block-sparse attention.
 *
 * @param config - `block` (64), `windowBlocks` (3), `globalBlocks` (2), `randomBlocks` (3), `seed` or `randomLayout`, `causal` (false), `scale` (1/sqrt(d)).
 * @throws AttentionError for a bad config; at apply, when `randomLayout` does not have ceil(m / block) rows.
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import { bigBirdAttention } from 'attention-catalog/big-bird';
 * const q = tf.randomNormal([1, 4, 4096, 64]) as tf.Tensor4D;
 * const attn = bigBirdAttention({ block: 64, seed: 7 });
 * const out = attn.apply(q, q, q);             // [1, 4, 4096, 64]
 * attn.randomBlocksFor(64)[10];                // the 3 random key blocks of query block 10
 * ```
 */
export function bigBirdAttention(config: BigBirdConfig = {}): BigBirdAttention {
  const base = checkPatternConfig(meta.id, config, ['block', 'windowBlocks', 'globalBlocks', 'randomBlocks', 'seed', 'randomLayout']);
  const block = config.block === undefined ? 64 : checkInt('config.block', config.block, 1);
  const windowBlocks = config.windowBlocks === undefined ? 3 : checkInt('config.windowBlocks', config.windowBlocks, 1);
  const globalBlocks = config.globalBlocks === undefined ? 2 : checkInt('config.globalBlocks', config.globalBlocks, 0);
  if (config.seed !== undefined && config.randomLayout !== undefined) {
    throw new AttentionError('config.seed', 'either seed or randomLayout, not both', 'both', 'The random blocks come from one of them.');
  }
  const seed = config.seed === undefined ? DEFAULT_SEED : checkInt('config.seed', config.seed, 0);
  const randomLayout = config.randomLayout === undefined ? undefined : checkRandomLayout(config.randomLayout);
  const width = randomLayout ? Math.max(0, ...randomLayout.map((r) => r.length)) : 3;
  const randomBlocks = config.randomBlocks === undefined ? width : checkInt('config.randomBlocks', config.randomBlocks, 0);
  if (randomLayout && width > randomBlocks) {
    throw new AttentionError('config.randomLayout', `rows of at most randomBlocks = ${randomBlocks} blocks`, `a row of ${width}`);
  }
  const resolved: Resolved & { causal: boolean } = { ...base, block, windowBlocks, globalBlocks, randomBlocks, seed };
  if (randomLayout) resolved.randomLayout = randomLayout;
  return new BigBirdAttention(meta.id, meta.family, Object.freeze(resolved), meta.complexity);
}
