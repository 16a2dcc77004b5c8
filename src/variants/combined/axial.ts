/**
 * `axial`: the m positions index a row-major `rows × cols` grid (position x is cell
 * `(floor(x / cols), x mod cols)`); a query attends the keys of its grid row (`'row'`), its
 * grid column (`'column'`), or either (`'both'`, one softmax over the union). Needs
 * `m == rows·cols`; the queries are the last n of those positions (n <= m).
 *
 * ```
 *   shape [3, 4], axes 'both': the query at cell (1, 2) = position 6 sees
 *   . . x .
 *   x x x x
 *   . . x .
 * ```
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
import type { SparseKernelPlan } from '../../../kernels/flash/sparse_attend.js';
import { keyLattice, keyRange, positionBlockGroups, residueGroups, type PartDef } from '../../../kernels/flash/parts.js';
import { SEEK_END, type ElementRule } from '../../../kernels/flash/layout.js';
import { AttentionError, show } from '../../core/errors.js';
import { checkInt } from '../../core/validate.js';
import { checkPatternConfig, i32, mod, PatternAttention, type PatternBaseConfig } from '../pattern.js';

/** Config of {@link axialAttention}. */
export interface AxialConfig extends PatternBaseConfig {
  /** Grid shape `[rows, cols]`, integers >= 1; m must equal rows·cols. Required. */
  shape: [number, number];
  /** `'row'`, `'column'` or `'both'` (default). */
  axes?: 'row' | 'column' | 'both';
}

type Resolved = AxialConfig & { axes: 'row' | 'column' | 'both' };

function axialRule(cols: number, axes: 'row' | 'column' | 'both'): ElementRule {
  const C = i32(cols);
  const rowW = `j / ${C} == p / ${C}`;
  const colW = `(p - j) % ${C} == 0`;
  const rowSeek = `rowSeek(p, j)`;
  const colSeek = `j + (((p - j) % ${C}) + ${C}) % ${C}`;
  const cond = axes === 'row' ? rowW : axes === 'column' ? colW : `${rowW} || ${colW}`;
  const seek = axes === 'row' ? rowSeek : axes === 'column' ? colSeek : `min(${rowSeek}, ${colSeek})`;
  const tsRow = (p: number, j: number) => {
    const rs = Math.floor(p / cols) * cols;
    return j < rs ? rs : j < rs + cols ? j : SEEK_END;
  };
  const tsCol = (p: number, j: number) => j + mod(p - j, cols);
  return {
    key: `axial:${cols}:${axes}`,
    wgsl: `
  fn rowSeek(p : i32, j : i32) -> i32 {
    let rs = (p / ${C}) * ${C};
    if (j < rs) { return rs; }
    if (j < rs + ${C}) { return j; }
    return ${SEEK_END};
  }
  fn ruleWeight(p : i32, j : i32, h : i32) -> f32 {
    if (${cond}) { return 1.0; }
    return 0.0;
  }
  fn ruleSeek(p : i32, j : i32, h : i32) -> i32 {
    return ${seek};
  }`,
    params: null,
    weight: (p, j) => {
      const row = Math.floor(j / cols) === Math.floor(p / cols);
      const col = mod(p - j, cols) === 0;
      return (axes === 'row' ? row : axes === 'column' ? col : row || col) ? 1 : 0;
    },
    seeks: true,
    seek: (p, j) => (axes === 'row' ? tsRow(p, j) : axes === 'column' ? tsCol(p, j) : Math.min(tsRow(p, j), tsCol(p, j))),
  };
}

/** Axial attention; see the module doc. */
export class AxialAttention extends PatternAttention<Resolved> {
  protected weight(p: number, j: number): number {
    const [, cols] = this.config.shape;
    const axes = this.config.axes;
    const row = Math.floor(j / cols) === Math.floor(p / cols);
    const col = p % cols === j % cols;
    return (axes === 'row' ? row : axes === 'column' ? col : row || col) ? 1 : 0;
  }

  protected override checkSizes(n: number, m: number): void {
    const [rows, cols] = this.config.shape;
    if (m !== rows * cols) {
      throw new AttentionError('k', `m = rows·cols = ${rows}·${cols} = ${rows * cols} keys (config.shape indexes the m positions as a grid)`, `m = ${m}`);
    }
    super.checkSizes(n, m);
  }

  protected kernelPlan(): SparseKernelPlan {
    return { layout: null, rule: axialRule(this.config.shape[1], this.config.axes) };
  }

  protected partDefs(n: number, m: number): PartDef[] {
    const { shape: [, cols], axes, causal } = this.config;
    const off = m - n;
    const lastP = (rows: number[]) => rows[rows.length - 1] + off;
    const parts: PartDef[] = [];
    if (axes !== 'column') {
      parts.push({
        groups: () => positionBlockGroups(n, off, cols, 128),
        keys: (rows) => {
          const start = Math.floor((rows[0] + off) / cols) * cols;
          return keyRange(start, causal ? lastP(rows) : start + cols - 1, m);
        },
        weight: (p, j) => (Math.floor(j / cols) === Math.floor(p / cols) ? 1 : 0),
      });
    }
    if (axes !== 'row') {
      parts.push({
        groups: () => residueGroups(n, cols, 64),
        keys: (rows) => keyLattice(rows[0] + off, cols, 0, causal ? lastP(rows) : m - 1, m),
        // With both axes the query's own cell is already in the row part.
        weight: (p, j) => (p % cols === j % cols && (axes === 'column' || j !== p) ? 1 : 0),
      });
    }
    return parts;
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
  const base = checkPatternConfig('axial', config, ['shape', 'axes']);
  const shape = config.shape;
  if (!Array.isArray(shape) || shape.length !== 2) throw new AttentionError('config.shape', '[rows, cols], two integers >= 1', show(shape));
  const rows = checkInt('config.shape[0]', shape[0], 1);
  const cols = checkInt('config.shape[1]', shape[1], 1);
  const axes = config.axes === undefined ? 'both' : config.axes;
  if (axes !== 'row' && axes !== 'column' && axes !== 'both') throw new AttentionError('config.axes', "'row', 'column' or 'both'", show(axes));
  return new AxialAttention('axial', 'combined', Object.freeze({ ...base, shape: Object.freeze([rows, cols]) as unknown as [number, number], axes }), {
    time: 'O(n·(rows + cols)·d)',
    memory: 'O(n·(rows + cols))',
  });
}
