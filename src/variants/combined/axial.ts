/**
 * `axial`: the m positions index a row-major `rows × cols` grid (position x is cell
 * `(floor(x / cols), x mod cols)`); a query attends the keys of its grid row (`'row'`), its
 * grid column (`'column'`), or either (`'both'`, one softmax over the union). Needs
 * `m == rows·cols`; the queries are the last n of those positions (n <= m).
 *
 * Complexity: time O(n·(rows + cols)·d), memory O(n·(rows + cols)); O(n·sqrt(n)) for a
 * square grid. Composite: a row part (queries of a grid row gather that row) and a column
 * part (queries of a grid column gather that column) merged by log-sum-exp; fused kernel:
 * O(n), each query seeks along its row and column.
 *
 * Paper: Ho et al., "Axial Attention in Multidimensional Transformers", 2019,
 * https://arxiv.org/abs/1912.12180 .
 *
 * @module
 */
import { add, div, keyIn, keyLattice, mul, or, P, param, sub, type ParamValues, type RuleDecl } from '../../../kernels/flash/rule.js';
import { AttentionError, show } from '../../core/errors.js';
import { checkInt } from '../../core/validate.js';
import { checkPatternConfig, PatternAttention, type PatternBaseConfig } from '../pattern.js';
import { meta } from './axial.meta.js';

export { meta };

/** Config of {@link axialAttention}. */
export interface AxialConfig extends PatternBaseConfig {
  /** Grid shape `[rows, cols]`, integers >= 1; m must equal rows·cols. Required. */
  shape: [number, number];
  /** `'row'`, `'column'` or `'both'` (default). */
  axes?: 'row' | 'column' | 'both';
}

type Resolved = AxialConfig & { axes: 'row' | 'column' | 'both' };

const cols = param('cols');
const rowStart = mul(div(P, cols), cols);
const row = keyIn(rowStart, sub(add(rowStart, cols), 1));
const column = keyLattice(P, cols);
/** The patterns, stated once: the query's row of the grid, its column, or either. */
export const AXIAL_RULES: Readonly<Record<'row' | 'column' | 'both', RuleDecl>> = {
  row: { allow: row },
  column: { allow: column },
  both: { allow: or(row, column) },
};

/** Axial attention; see the module doc. */
export class AxialAttention extends PatternAttention<Resolved> {
  protected get rule(): RuleDecl {
    return AXIAL_RULES[this.config.axes];
  }

  protected params(): ParamValues {
    return { cols: this.config.shape[1] };
  }

  /**
   * 'auto' runs the per-row strategy: the column part (a lattice of stride cols) is as large as
   * the row band, and a tile's four rows walk the union of their four column lattices; rows took
   * 0.86–0.89 of tiled's time at n = 1024 and 4096 (bench/results/strategies.md), tiled 1.33–1.57×
   * the pre-v2 per-row kernel (bench/results/patterns-before-after.md).
   */
  protected override get rowsPreferred(): boolean {
    return true;
  }

  protected override block(): number {
    const c = this.config.shape[1];
    return c >= 8 && c <= 128 ? c : 64;
  }

  protected override checkSizes(n: number, m: number): void {
    const [rows, cols] = this.config.shape;
    if (m !== rows * cols) {
      throw new AttentionError('k', `m = rows·cols = ${rows}·${cols} = ${rows * cols} keys (config.shape indexes the m positions as a grid)`, `m = ${m}`);
    }
    super.checkSizes(n, m);
  }
}

/**
 * Builds axial attention over a `rows × cols` grid of positions.
 *
 * @param config - `shape` [rows, cols] (required), `axes` ('both' default | 'row' | 'column'), `causal` (default false), `scale` (default 1/sqrt(d)).
 * @throws AttentionError for a bad config; at apply, when m != rows·cols or n > m.
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import { axialAttention } from 'attention-catalog/axial';
 * const q = tf.randomNormal([1, 4, 64 * 64, 32]) as tf.Tensor4D;        // a 64×64 image, flattened
 * const out = axialAttention({ shape: [64, 64] }).apply(q, q, q);       // row and column of each pixel
 * axialAttention({ shape: [3, 4] }).pattern(12).rows[6];                // [2, 4, 5, 6, 7, 10]
 * ```
 */
export function axialAttention(config: AxialConfig): AxialAttention {
  const base = checkPatternConfig(meta.id, config, ['shape', 'axes']);
  const shape = config.shape;
  if (!Array.isArray(shape) || shape.length !== 2) throw new AttentionError('config.shape', '[rows, cols], two integers >= 1', show(shape));
  const rows = checkInt('config.shape[0]', shape[0], 1);
  const cols = checkInt('config.shape[1]', shape[1], 1);
  const axes = config.axes === undefined ? 'both' : config.axes;
  if (axes !== 'row' && axes !== 'column' && axes !== 'both') throw new AttentionError('config.axes', "'row', 'column' or 'both'", show(axes));
  return new AxialAttention(meta.id, meta.family, Object.freeze({ ...base, shape: Object.freeze([rows, cols]) as unknown as [number, number], axes }), meta.complexity);
}
