/**
 * Reformer LSH attention over a bucketing (`lsh_bucket.ts`), on both paths. Per round r the
 * positions are taken in sorted order and cut into chunks of c; sorted query chunk C attends
 * sorted key chunks C − 1 and C, keeping the keys of the same bucket. Over the rounds each key
 * is counted once: round r drops the keys an earlier round already attends (P_i^{r'} for
 * r' < r), so the rounds cover disjoint key sets whose log-sum-exp merge is one softmax over the
 * union (the paper's `log N_ij` correction, exactly). A query's own position is dropped
 * everywhere; a real query with no other key left attends itself alone (output v_i).
 *
 * - **Fused (webgpu):** per round one flash call over the permuted q, normalized keys and v
 *   (gathered by the round's permutation: `[1, batch·heads, n, ·]`, batch folded into heads so the
 *   rule can index per-row tables), with the static chunk layout (query block C visits key
 *   blocks C − 1, C) and one element rule reading device tables — the original position at
 *   each sorted index, and every round's bucket and chunk of each position — through a params
 *   buffer spliced on the device. The call returns unmerged partial rows (`partials`), which are
 *   gathered back to the original positions and merged across rounds by the flash merge
 *   kernel. No n×n tensor, nothing read back.
 * - **Composite:** the same rounds with tfjs ops: chunk scores `[rows, n/c, c, 2c]` per round.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { constantOf, gatherDifferentiable } from '../../src/core/grad.js';
import type { Dims, KernelStrategy } from '../../src/core/types.js';
import { mergeFlashPartials, planFor, runFlash } from './kernel.js';
import { buildLayoutFromEntries, type BlockLayout, type ElementRule } from './layout.js';
import type { FlashPlan } from './plan.js';
import { add, and, bindRule, compileRule, eq, H, J, le, lit, lt, mul, ne, not, or, P, param, sub, table, ge, type Cond, type Int, type RuleDecl } from './rule.js';
import { deviceParams } from './device_params.js';
import type { LshBucketing } from './lsh_bucket.js';
import { finiteKV, poisonRows } from '../shared/finite.js';

/** What both paths need besides the tensors. */
export interface LshOptions {
  bucketSize: number;
  hashes: number;
  buckets: number;
  causal: boolean;
  scale: number;
  strategy?: KernelStrategy;
}

// ---------------------------------------------------------------------------------------------
// The element rule (one declaration per (hashes, causal); every size is a parameter).

/** Table `name`'s entry for (round r, folded row H, index x): `name[(r·rows + H)·n + x]`. */
const at = (name: string, r: Int, x: Int) => table(name, add(mul(add(mul(r, param('rows')), H), param('n')), x));

/** Whether, in round r (a literal), key position kj is in query position pi's candidate set P^r. */
function inRound(r: number, pi: Int, pj: Int): Cond {
  const cq = at('chunk', lit(r), pi);
  const ck = at('chunk', lit(r), pj);
  return and(eq(at('bucket', lit(r), pi), at('bucket', lit(r), pj)), or(eq(ck, cq), eq(ck, sub(cq, 1))));
}

const declCache = new Map<string, RuleDecl>();

/**
 * The rule of round `param('round')` in that round's sorted coordinates (P, J sorted indices):
 * same bucket as the query (the layout already keeps the chunk and the one before), a real
 * query (bucket < nb), not the query itself, causal on the original positions, and not a key
 * an earlier round already attends.
 */
export function lshRule(hashes: number, causal: boolean): RuleDecl {
  const key = `${hashes}:${causal}`;
  let decl = declCache.get(key);
  if (!decl) {
    const round = param('round');
    const pi = at('pos', round, P);
    const pj = at('pos', round, J);
    const conds: Cond[] = [
      eq(at('bucket', round, pi), at('bucket', round, pj)),
      lt(at('bucket', round, pi), param('nb')),
      ne(pj, pi),
    ];
    if (causal) conds.push(le(pj, pi));
    for (let r = 0; r + 1 < hashes; r++) conds.push(or(ge(lit(r), round), not(inRound(r, pi, pj))));
    decl = { allow: and(...conds) };
    declCache.set(key, decl);
  }
  return decl;
}

/** The chunk layout over sorted indices: query block C visits key blocks C − 1 and C (one partial run). */
export function chunkLayout(n: number, c: number): BlockLayout {
  const numQBlocks = Math.ceil(n / c);
  const rows = Array.from({ length: numQBlocks }, (_, qb) => [{ start: Math.max(0, qb - 1), blocks: qb === 0 ? 1 : 2, full: false }]);
  return buildLayoutFromEntries({ blockQ: c, blockK: c, rowOffset: 0, numQBlocks, layoutHeads: 1, rows });
}

/** The folded problem one round's flash call runs: batch·heads rows, no kv grouping, n = m. */
export function foldedDims(dims: Dims): Dims {
  const rows = dims.batch * dims.heads;
  return { batch: 1, heads: rows, kvHeads: rows, group: 1, n: dims.n, m: dims.n, d: dims.d, dv: dims.dv };
}

/**
 * LSH runs the per-row strategy: in headless Chromium (SwiftShader) the tiled program with the
 * multi-round rule (2 or more hashes: nested device-table reads per lane) loses the WebGPU
 * instance; on llvmpipe both strategies take the same time for LSH (n = 8192, c = 64, 2 hashes:
 * about 0.42–0.45 s each).
 */
const LSH_ROWS_ONLY = 'lsh runs one query row per invocation';

/** Plans the fused rounds (checks every device limit before anything is dispatched). */
export function planLsh(dims: Dims, o: LshOptions): { plan: FlashPlan; layout: BlockLayout } {
  const layout = chunkLayout(dims.n, o.bucketSize);
  const rule = kernelRule(dims, o, 0, null);
  return { plan: planFor(foldedDims(dims), { layout, rule, strategy: o.strategy, rowsOnly: LSH_ROWS_ONLY }), layout };
}

/** Every table the rule reads lives on the device, `len` entries each. */
const deviceTableLengths = (compiled: ReturnType<typeof compileRule>, len: number) => Object.fromEntries(compiled.schema.tables.map((t) => [t, len]));

function kernelRule(dims: Dims, o: LshOptions, round: number, params: tf.Tensor1D | null): ElementRule {
  const compiled = compileRule(lshRule(o.hashes, o.causal));
  const rows = dims.batch * dims.heads;
  const len = o.hashes * rows * dims.n;
  const bound = bindRule(compiled, { round, rows, n: dims.n, nb: o.buckets }, rows, {}, deviceTableLengths(compiled, len));
  return {
    key: compiled.key,
    wgsl: compiled.wgsl,
    params: params ? null : bound.params,
    paramsTensor: params,
    weight: () => {
      throw new Error('internal: the LSH rule reads device tables; it has no host evaluator');
    },
    init: true,
    // Only the layout's chunk bound is structural; the rule is data: every key of a run is checked.
    seeks: false,
    seek: (_p, j) => j,
  };
}

/** The params buffer of round `round` on the device: the host header with the three tables spliced in. */
function roundParams(dims: Dims, o: LshOptions, round: number, tables: { pos: tf.Tensor; bucket: tf.Tensor; chunk: tf.Tensor }): tf.Tensor1D {
  const compiled = compileRule(lshRule(o.hashes, o.causal));
  const rows = dims.batch * dims.heads;
  const len = o.hashes * rows * dims.n;
  const bound = bindRule(compiled, { round, rows, n: dims.n, nb: o.buckets }, rows, {}, deviceTableLengths(compiled, len));
  // One round has no earlier round: its rule reads no chunk table.
  const used = Object.fromEntries(Object.entries(tables).filter(([name]) => compiled.schema.tables.includes(name)));
  return deviceParams(bound, { tables: used });
}

/**
 * Gathers `x [rows, n, w]` by `index [rows, n]` along the sequence: `out[r, s] = x[r, index[r, s]]`.
 */
export function gatherRows(x: tf.Tensor3D, index: tf.Tensor2D): tf.Tensor3D {
  // One flat gather (row·n + index): tfjs-backend-wasm's gather with batchDims reads wrong rows
  // when the gathered axis has length 1.
  return tf.tidy(() => {
    const [rows, n, w] = x.shape;
    const k = index.shape[1];
    const base = tf.reshape(tf.mul(tf.range(0, rows, 1, 'int32'), tf.scalar(n, 'int32')), [rows, 1]);
    const flat = tf.reshape(tf.add(index, base), [rows * k]);
    return tf.reshape(gatherDifferentiable(tf.reshape(x, [rows * n, w]), flat), [rows, k, w]) as tf.Tensor3D;
  });
}

/**
 * The fused path (webgpu): see the module comment.
 *
 * @param q - `[batch, heads, n, d]` the queries (also the keys, before normalization)
 * @param qn - `[batch, heads, n, d]` the normalized keys q_j/‖q_j‖
 * @param v - `[batch, heads, n, dv]`
 * @param real - `[batch·heads, n]` bool, or null
 * @returns the merged output and whether each row had any key: `{ out [batch, heads, n, dv], any [batch·heads, n] bool }`
 */
export function lshKernel(
  q: tf.Tensor4D,
  qn: tf.Tensor4D,
  v: tf.Tensor4D,
  dims: Dims,
  o: LshOptions,
  bk: LshBucketing,
  planned: { plan: FlashPlan; layout: BlockLayout },
): { out: tf.Tensor4D; any: tf.Tensor2D } {
  const { batch, heads, n, d, dv } = dims;
  const rows = batch * heads;
  const fd = foldedDims(dims);
  return tf.tidy(() => {
    const chunk = tf.floorDiv(bk.rank, tf.scalar(o.bucketSize, 'int32'));
    const tables = { pos: bk.perm, bucket: bk.bucket, chunk };
    const q3 = tf.reshape(q, [rows, n, d]) as tf.Tensor3D;
    const k3 = tf.reshape(qn, [rows, n, d]) as tf.Tensor3D;
    const v3 = tf.reshape(v, [rows, n, dv]) as tf.Tensor3D;
    const parts: tf.Tensor4D[] = [];
    for (let r = 0; r < o.hashes; r++) parts.push(tf.tidy(() => {
      const perm = tf.reshape(tf.slice(bk.perm, [r, 0, 0], [1, rows, n]), [rows, n]) as tf.Tensor2D;
      const rank = tf.reshape(tf.slice(bk.rank, [r, 0, 0], [1, rows, n]), [rows, n]) as tf.Tensor2D;
      const fold = (x: tf.Tensor3D, w: number) => tf.reshape(gatherRows(x, perm), [1, rows, n, w]) as tf.Tensor4D;
      const params = roundParams(dims, o, r, tables);
      const rule = kernelRule(dims, o, r, params);
      const partial = runFlash(fold(q3, d), fold(k3, d), fold(v3, dv), fd, { causal: false, scale: o.scale, keyLength: null, layout: planned.layout, rule, partials: true }, planned.plan);
      // Back to the original positions: row pos of the result is sorted row rank[pos].
      const [, splits, , width] = partial.shape;
      const flat = tf.reshape(tf.transpose(partial, [0, 2, 1, 3]), [rows, n, splits * width]) as tf.Tensor3D;
      const back = tf.reshape(gatherRows(flat, rank), [rows, n, splits, width]);
      return tf.transpose(back, [0, 2, 1, 3]) as tf.Tensor4D;
    }));
    const all = parts.length === 1 ? parts[0] : (tf.concat(parts, 1) as tf.Tensor4D);
    const width = all.shape[3];
    const sums = tf.slice(all, [0, 0, 0, width - 3], [-1, -1, -1, 1]);
    const any = tf.reshape(tf.greater(tf.max(sums, 1), 0), [rows, n]) as tf.Tensor2D;
    const out = tf.reshape(mergeFlashPartials(all, batch, heads, dv), [batch, heads, n, dv]) as tf.Tensor4D;
    return { out, any };
  });
}

/**
 * The composite path: see the module comment. Arguments as {@link lshKernel}.
 */
export function lshComposite(
  q: tf.Tensor4D,
  qn: tf.Tensor4D,
  v: tf.Tensor4D,
  dims: Dims,
  o: LshOptions,
  bk: LshBucketing,
): { out: tf.Tensor4D; any: tf.Tensor2D } {
  const { batch, heads, n, d, dv } = dims;
  const rows = batch * heads;
  const c = o.bucketSize;
  const nC = Math.ceil(n / c);
  const padded = nC * c;
  return tf.tidy(() => {
    const chunkOf = tf.floorDiv(bk.rank, tf.scalar(c, 'int32'));
    const q3 = tf.reshape(q, [rows, n, d]) as tf.Tensor3D;
    // Finite copies of the keys and values and, per position, whether it had a non-finite entry:
    // a masked key never reaches a row through 0·NaN (kernels/shared/finite.ts).
    const fin = finiteKV(tf.reshape(qn, [rows, n, d]), tf.reshape(v, [rows, n, dv]));
    const k3 = fin.k as tf.Tensor3D;
    const v3 = fin.v as tf.Tensor3D;
    const poison = fin.poison as tf.Tensor3D;
    // Per round: the row max, sum and unnormalized accumulator of every original position.
    const stats: { mx: tf.Tensor2D; sum: tf.Tensor2D; acc: tf.Tensor3D }[] = [];
    const roundSlice = (t: tf.Tensor3D, r: number) => tf.reshape(tf.slice(t, [r, 0, 0], [1, rows, n]), [rows, n]) as tf.Tensor2D;
    for (let r = 0; r < o.hashes; r++) stats.push(tf.tidy(() => {
      const perm = roundSlice(bk.perm, r);
      const rank = roundSlice(bk.rank, r);
      // Sorted sequences, padded to whole chunks; sorted index s >= n holds no position (-1).
      const padSeq = (x: tf.Tensor3D) => (padded === n ? x : tf.pad(x, [[0, 0], [0, padded - n], [0, 0]]));
      const chunked = (x: tf.Tensor3D, w: number) => tf.reshape(padSeq(gatherRows(x, perm)), [rows, nC, c, w]);
      // Keys of chunk C: chunk C − 1 (none for C = 0) then chunk C.
      const withPrev = (x: tf.Tensor, fill: number) => {
        const prev = tf.pad(tf.slice(x, [0, 0], [-1, nC - 1]), [[0, 0], [1, 0], ...Array.from({ length: x.rank - 2 }, () => [0, 0] as [number, number])], fill);
        return tf.concat([prev, x], 2);
      };
      const qc = chunked(q3, d);
      const kc = withPrev(chunked(k3, d), 0);
      const vc = withPrev(chunked(v3, dv), 0);
      const posS = tf.reshape(padded === n ? perm : tf.pad(perm, [[0, 0], [0, padded - n]], -1), [rows, nC, c]);
      const qp = posS;
      const kp = withPrev(posS, -1);
      // Per-position values of round r' at the query's and the key's position (-1: no position).
      const lookup = (t: tf.Tensor3D, rr: number, p: tf.Tensor, shape: number[]) =>
        tf.where(
          tf.greaterEqual(p, tf.scalar(0, 'int32')),
          tf.reshape(gatherRows(tf.expandDims(roundSlice(t, rr), 2) as tf.Tensor3D, tf.reshape(tf.maximum(p, tf.scalar(0, 'int32')), [rows, -1]) as tf.Tensor2D), shape),
          tf.fill(shape, -2, 'int32'),
        );
      const qShape = [rows, nC, c];
      const kShape = [rows, nC, 2 * c];
      const qb = lookup(bk.bucket, r, qp, qShape);
      const kb = lookup(bk.bucket, r, kp, kShape);
      const qp4 = tf.expandDims(qp, 3);
      const kp4 = tf.expandDims(kp, 2);
      let mask = tf.logicalAnd(tf.equal(tf.expandDims(qb, 3), tf.expandDims(kb, 2)), tf.expandDims(tf.logicalAnd(tf.less(qb, o.buckets), tf.greaterEqual(qb, 0)), 3));
      mask = tf.logicalAnd(mask, tf.logicalAnd(tf.notEqual(kp4, qp4), tf.greaterEqual(kp4, 0)));
      if (o.causal) mask = tf.logicalAnd(mask, tf.lessEqual(kp4, qp4));
      for (let rr = 0; rr < r; rr++) {
        const b1 = tf.expandDims(lookup(bk.bucket, rr, qp, qShape), 3);
        const b2 = tf.expandDims(lookup(bk.bucket, rr, kp, kShape), 2);
        const c1 = tf.expandDims(lookup(chunkOf as tf.Tensor3D, rr, qp, qShape), 3);
        const c2 = tf.expandDims(lookup(chunkOf as tf.Tensor3D, rr, kp, kShape), 2);
        const seen = tf.logicalAnd(tf.equal(b1, b2), tf.logicalOr(tf.equal(c2, c1), tf.equal(c2, tf.sub(c1, tf.scalar(1, 'int32')))));
        mask = tf.logicalAnd(mask, tf.logicalNot(seen));
      }
      const scores = tf.mul(tf.matMul(qc, kc, false, true), o.scale);
      const masked = tf.where(mask, scores, tf.fill(scores.shape, -1e9));
      const mx = constantOf([masked], (x) => tf.max(x, 3, true)); // a shift: a constant of the gradient
      const e = tf.where(mask, tf.exp(tf.sub(masked, mx)), tf.zerosLike(masked));
      const sum = tf.sum(e, 3);
      // Where e is 0 the value never enters (a select, not 0·v: padding may hold NaN or ±Inf).
      const pc = withPrev(chunked(poison, 1), 0);
      const acc = tf.reshape(
        poisonRows(tf.reshape(tf.matMul(e, vc), [rows * nC, c, dv]), tf.reshape(e, [rows * nC, c, 2 * c]), tf.reshape(pc, [rows * nC, 2 * c, 1])),
        [rows, nC, c, dv],
      );
      const unsort = (x: tf.Tensor, w: number) => gatherRows(tf.reshape(x, [rows, padded, w]) as tf.Tensor3D, rank);
      const row = (x: tf.Tensor) => tf.reshape(unsort(x, 1), [rows, n]) as tf.Tensor2D;
      return { mx: row(mx), sum: row(sum), acc: unsort(acc, dv) };
    }));
    // Log-sum-exp merge over the rounds (disjoint key sets).
    const has = stats.map((s) => constantOf([s.sum], (x) => tf.greater(x, 0)));
    let gMax: tf.Tensor2D = tf.fill([rows, n], -3e38) as tf.Tensor2D;
    stats.forEach((s, r) => (gMax = tf.where(has[r], tf.maximum(gMax, s.mx), gMax) as tf.Tensor2D));
    let total: tf.Tensor = tf.zeros([rows, n]);
    let acc: tf.Tensor = tf.zeros([rows, n, dv]);
    stats.forEach((s, r) => {
      const w = tf.where(has[r], tf.exp(tf.sub(s.mx, gMax)), tf.zeros([rows, n]));
      total = tf.add(total, tf.mul(w, s.sum));
      acc = tf.add(acc, tf.mul(tf.expandDims(w, 2), s.acc));
    });
    const any = constantOf([total], (x) => tf.greater(x, 0)) as tf.Tensor2D;
    const inv = tf.where(any, tf.div(1, tf.where(any, total, tf.onesLike(total))), tf.zerosLike(total));
    const out = tf.reshape(tf.mul(acc, tf.expandDims(inv, 2)), [batch, heads, n, dv]) as tf.Tensor4D;
    return { out, any };
  });
}
