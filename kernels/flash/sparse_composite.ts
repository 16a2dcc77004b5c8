/**
 * The block-sparse composite: one implementation, from tfjs ops, for every pattern variant on
 * every backend without the fused kernel (and the kernel's oracle on webgpu).
 *
 * For each part (see `parts.ts`): gather the part's query rows and, per group, its keys and
 * values into `[batch, heads, groups, keys, d]`; score `s·q·kᵀ` per group; add the part's
 * precomputed bias (0 allowed, DISALLOWED_SCORE = −1e9 not: the rule, causal and padding) and, with `keyLength`,
 * DISALLOWED_SCORE for keys past each batch element's length; softmax; multiply by the gathered values;
 * scatter rows back. Several parts are merged with their log-sum-exp (one softmax over the
 * union). Memory is O(rows · keys per group), never an n×m matrix.
 *
 * Grouped heads: with a shared layout, K and V are gathered once per kv head and the `group`
 * query heads of a kv head are stacked as extra rows of its groups (no repeated K/V); with a
 * per-head layout each query head gathers its own keys from its kv head.
 *
 * The composite is written once against a tiny executor ({@link Exec}) that either runs the
 * ops or only adds up the bytes each op allocates, so {@link blockSparseCompositeBytes} follows
 * the code exactly: an upper bound on every backend (on webgpu every intermediate of a call
 * can be alive at once, released at the next queue submission).
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { constantOf, gatherDifferentiable } from '../../src/core/grad.js';
import { matMulBT } from '../shared/matmul.js';
import type { Dims } from '../../src/core/types.js';
import type { GatherPart } from './parts.js';
import { DISALLOWED_SCORE } from '../shared/masking.js';
import { whereCopies } from '../shared/finite.js';


/** Bytes counted per op for its uniforms and other small per-dispatch buffers (webgpu). */
export const OP_OVERHEAD_BYTES = 256;

type DType = 'float32' | 'int32' | 'bool';
/** A tensor of the executor: real (`t`) or only its shape (counting). */
export interface Val {
  shape: number[];
  t: tf.Tensor | null;
  /** Whether this handle is ours to dispose (inputs are not). */
  owned: boolean;
  /** Bytes the engine counts for this handle while it lives (counting mode; 0 for inputs). */
  bytes?: number;
}

const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

/**
 * Runs ops, or only counts the bytes they would allocate: code written against it gets its
 * own exact memory bound. Each op's output shape is stated (and checked when running).
 */
export class Exec {
  /** Sum of every allocation: the bound where nothing is released before the call ends (webgpu). */
  bytes = 0;
  /**
   * Peak of the bytes alive, freeing at each dispose: the bound on cpu, wasm, tensorflow. As
   * the tfjs engine counts them: every live handle its full size, a reshape's too.
   */
  peak = 0;
  private live = 0;
  largest = 0;
  constructor(readonly real: boolean) {}

  input(t: tf.Tensor | null, shape: number[]): Val {
    return { shape, t, owned: false };
  }

  /** An op allocating one tensor of `shape` (4 bytes per element: webgpu stores bools as 4 bytes). */
  op(shape: number[], make: () => tf.Tensor, copies = 1): Val {
    const bytes = size(shape) * 4;
    this.bytes += bytes * copies + OP_OVERHEAD_BYTES;
    this.largest = Math.max(this.largest, bytes);
    // `copies - 1` temporaries live only while the op runs (freed by its tidy).
    this.live += bytes * copies;
    this.peak = Math.max(this.peak, this.live);
    this.live -= bytes * (copies - 1);
    if (!this.real) return { shape, t: null, owned: true, bytes };
    const t = tf.tidy(make);
    if (t.shape.length !== shape.length || t.shape.some((x, i) => x !== shape[i])) {
      t.dispose();
      throw new Error(`internal: block-sparse composite expected shape [${shape}], got [${t.shape}]`);
    }
    return { shape, t, owned: true };
  }

  /** Host data uploaded as a tensor (webgpu may stage it through a second buffer of the same size). */
  upload(data: Float32Array | Int32Array, shape: number[], dtype: DType): Val {
    return this.op(shape, () => tf.tensor(data, shape, dtype), 2);
  }

  /** A reshape: no new data; consumes `x`'s handle when owned. */
  reshape(x: Val, shape: number[]): Val {
    if (!this.real) {
      // The new handle exists before the old one is disposed.
      const bytes = size(shape) * 4;
      this.live += bytes;
      this.peak = Math.max(this.peak, this.live);
      if (x.owned) this.live -= x.bytes ?? 0;
      x.bytes = 0;
      return { shape, t: null, owned: true, bytes };
    }
    const t = tf.reshape(x.t!, shape);
    if (x.owned) x.t!.dispose();
    return { shape, t, owned: true };
  }

  /** A reshape that leaves `x` alive (a new handle of the same data). */
  view(x: Val, shape: number[]): Val {
    return this.reshape({ ...x, owned: false, bytes: 0 }, shape);
  }

  free(...xs: Val[]): void {
    if (!this.real) {
      for (const x of xs) {
        if (x.owned) this.live -= x.bytes ?? 0;
        x.bytes = 0;
      }
      return;
    }
    for (const x of xs) if (x.owned) x.t!.dispose();
  }
}

/** Options of {@link blockSparseComposite}. */
export interface CompositeOptions {
  scale: number;
  keyLength: number[] | tf.Tensor1D | null;
}

interface PartOut {
  /** `[batch, heads, n, dv]`: normalized output (single part) or unnormalized accumulator. */
  acc: Val;
  /** Row max and row sum `[batch, heads, n, 1]` (multi-part only). */
  max: Val | null;
  sum: Val | null;
}

function runPart(ex: Exec, qs: Val, k: Val, v: Val, poison: Val, kl: Val | null, dims: Dims, part: GatherPart, single: boolean): PartOut {
  const { batch: B, heads: H, kvHeads: KH, group, n, m, d, dv } = dims;
  const { layoutHeads: LH, groupSize: G, numGroups: NG, width: V } = part;
  const perHead = LH > 1;
  const KHp = perHead ? H : KH; // heads of the score tensor
  const Gp = perHead ? 1 : group; // query heads stacked per kv head
  const R = NG * G;

  // 1. Query rows → [B·KHp·NG, Gp·G, d].
  let qa: Val;
  if (part.rows === null) {
    // qs is shared by every part: alias it without taking ownership.
    qa = R === n ? { shape: qs.shape, t: qs.t, owned: false } : ex.op([B, H, R, d], () => tf.pad(qs.t!, [[0, 0], [0, 0], [0, R - n], [0, 0]]));
  } else if (!perHead) {
    const idx = ex.upload(Int32Array.from(part.rows, (r) => Math.max(r, 0)), [R], 'int32');
    qa = ex.op([B, H, R, d], () => gatherDifferentiable(qs.t!, idx.t!, 2));
    ex.free(idx);
  } else {
    const flat = new Int32Array(H * R);
    for (let h = 0; h < H; h++) for (let s = 0; s < R; s++) flat[h * R + s] = h * n + Math.max(part.rows[h * R + s], 0);
    const idx = ex.upload(flat, [H * R], 'int32');
    const qf = ex.view(qs, [B, H * n, d]);
    const g = ex.op([B, H * R, d], () => gatherDifferentiable(qf.t!, idx.t!, 1));
    ex.free(idx, qf);
    qa = ex.reshape(g, [B, H, R, d]);
  }
  if (Gp > 1) {
    const t = ex.reshape(qa, [B * KH, Gp, NG, G * d]);
    qa = ex.op([B * KH, NG, Gp, G * d], () => tf.transpose(t.t!, [0, 2, 1, 3]));
    ex.free(t);
  }
  const qm = ex.reshape(qa, [B * KHp * NG, Gp * G, d]);

  // 2. Keys and values → [B·KHp·NG, V, d | dv].
  // (K and V are the finite copies shared by every part; `poison` marks the keys that were not.)
  let km: Val;
  let vm: Val;
  let pm: Val;
  if (part.keys === null) {
    km = ex.view(k, [B * KH, m, d]);
    vm = ex.view(v, [B * KH, m, dv]);
    pm = ex.view(poison, [B * KH, m, 1]);
  } else if (!perHead) {
    const idx = ex.upload(Int32Array.from(part.keys, (j) => Math.max(j, 0)), [NG * V], 'int32');
    const kg = ex.op([B, KH, NG * V, d], () => gatherDifferentiable(k.t!, idx.t!, 2));
    const vg = ex.op([B, KH, NG * V, dv], () => gatherDifferentiable(v.t!, idx.t!, 2));
    const pg = ex.op([B, KH, NG * V, 1], () => gatherDifferentiable(poison.t!, idx.t!, 2));
    ex.free(idx);
    km = ex.reshape(kg, [B * KH * NG, V, d]);
    vm = ex.reshape(vg, [B * KH * NG, V, dv]);
    pm = ex.reshape(pg, [B * KH * NG, V, 1]);
  } else {
    const flat = new Int32Array(H * NG * V);
    for (let h = 0; h < H; h++) {
      const base = Math.floor(h / group) * m;
      for (let s = 0; s < NG * V; s++) flat[h * NG * V + s] = base + Math.max(part.keys[h * NG * V + s], 0);
    }
    const idx = ex.upload(flat, [H * NG * V], 'int32');
    const kf = ex.view(k, [B, KH * m, d]);
    const vf = ex.view(v, [B, KH * m, dv]);
    const pf = ex.view(poison, [B, KH * m, 1]);
    const kg = ex.op([B, H * NG * V, d], () => gatherDifferentiable(kf.t!, idx.t!, 1));
    const vg = ex.op([B, H * NG * V, dv], () => gatherDifferentiable(vf.t!, idx.t!, 1));
    const pg = ex.op([B, H * NG * V, 1], () => gatherDifferentiable(pf.t!, idx.t!, 1));
    ex.free(idx, kf, vf, pf);
    km = ex.reshape(kg, [B * H * NG, V, d]);
    vm = ex.reshape(vg, [B * H * NG, V, dv]);
    pm = ex.reshape(pg, [B * H * NG, V, 1]);
  }

  // 3. Scores, bias (rule, causal, padding; keyLength), softmax.
  const s = ex.op([B * KHp * NG, Gp * G, V], () => matMulBT(qm.t!, km.t!));
  ex.free(qm, km);
  const s6 = ex.reshape(s, [B, KHp, NG, Gp, G, V]);
  const bias0 = ex.upload(part.bias, [1, LH, NG, 1, G, V], 'float32');
  let bias = bias0;
  if (kl) {
    const kidx =
      part.keys === null
        ? ex.op([1, 1, 1, 1, 1, m], () => tf.reshape(tf.range(0, m, 1, 'int32'), [1, 1, 1, 1, 1, m]), 2) // host values: an upload
        : ex.upload(Int32Array.from(part.keys, (j) => (j < 0 ? m : j)), [1, LH, NG, 1, 1, V], 'int32');
    const past = ex.op([B, LH, NG, 1, 1, V], () => tf.greaterEqual(kidx.t!, kl.t!));
    ex.free(kidx);
    const pastF = ex.op([B, LH, NG, 1, 1, V], () => tf.cast(past.t!, 'float32'));
    ex.free(past);
    const klBias = ex.op([B, LH, NG, 1, 1, V], () => tf.mul(pastF.t!, DISALLOWED_SCORE));
    ex.free(pastF);
    bias = ex.op([B, LH, NG, 1, G, V], () => tf.add(bias0.t!, klBias.t!));
    ex.free(bias0, klBias);
  }
  const s3 = ex.op([B, KHp, NG, Gp, G, V], () => tf.add(s6.t!, bias.t!));
  ex.free(s6);

  ex.free(bias);
  // The row max, clamped: a row whose keys are all disallowed (max ≈ DISALLOWED_SCORE) then has
  // every weight exactly 0 — its sum and accumulator are 0, and it outputs 0 — with no product
  // by a validity mask.
  // (A shift of the exponent: a constant of the gradient.)
  const mx = ex.op([B, KHp, NG, Gp, G, 1], () => constantOf([s3.t!], (x) => tf.maximum(tf.max(x, -1, true), DISALLOWED_SCORE / 2)), 2);
  const sh = ex.op([B, KHp, NG, Gp, G, V], () => tf.sub(s3.t!, mx.t!));
  ex.free(s3);
  const e = ex.op([B, KHp, NG, Gp, G, V], () => tf.exp(sh.t!));
  ex.free(sh);
  const l = ex.op([B, KHp, NG, Gp, G, 1], () => tf.sum(e.t!, -1, true));
  const em = ex.reshape(e, [B * KHp * NG, Gp * G, V]);
  const a0 = weighValues(ex, em, vm, pm);
  ex.free(em);
  if (single) {
    ex.free(mx);
    // A row's sum is >= 1 (its max contributes e^0) or 0: no allowed key, and the row is selected
    // to 0 (on webgl such rows were measured to come out NaN without this selection).
    const l3 = ex.reshape(l, [B * KHp * NG, Gp * G, 1]);
    const o = ex.op([B * KHp * NG, Gp * G, dv], () => tf.where(constantOf([l3.t!], (x) => tf.greater(x, 0)), tf.div(a0.t!, tf.maximum(l3.t!, 1)), tf.zerosLike(a0.t!)), 3 + whereCopies());
    ex.free(a0, l3);
    return { acc: scatterBack(ex, ex.reshape(o, [B, KHp, NG, Gp, G, dv]), dims, part, dv, 0), max: null, sum: null };
  }
  const a = ex.reshape(a0, [B, KHp, NG, Gp, G, dv]);
  return {
    acc: scatterBack(ex, a, dims, part, dv, 0),
    max: scatterBack(ex, mx, dims, part, 1, DISALLOWED_SCORE),
    sum: scatterBack(ex, l, dims, part, 1, 0),
  };
}

/**
 * `w·v` for weights `w [X, rows, V]` (non-negative) over the gathered finite values `v [X, V, dv]`,
 * with NaN in the rows that weigh a poisoned key (`poison [X, V, 1]`); consumes `v` and `poison`.
 */
function weighValues(ex: Exec, w: Val, v: Val, poison: Val): Val {
  const [X, rows] = w.shape;
  const dv = v.shape[2];
  // The marks first, so that the weights' second product does not overlap the output's lifetime
  // (a backend's matMul may hold extra handles of its operands while it runs).
  const seen = ex.op([X, rows, 1], () => tf.matMul(w.t!, poison.t!));
  ex.free(poison);
  // NaN (or 0) per row, added: x + 0 is x exactly, x + NaN is NaN.
  const mark = ex.op([X, rows, 1], () => constantOf([seen.t!], (x) => tf.where(tf.greater(x, 0), tf.fill([X, rows, 1], Number.NaN), tf.zeros([X, rows, 1]))), 3 + whereCopies());
  ex.free(seen);
  const o = ex.op([X, rows, dv], () => tf.matMul(w.t!, v.t!));
  ex.free(v);
  const out = ex.op([X, rows, dv], () => tf.add(o.t!, mark.t!));
  ex.free(o, mark);
  return out;
}

/** `[B, KHp, NG, Gp, G, X]` in group order → `[B, H, n, X]` in row order (rows not in the part: `fill`). */
function scatterBack(ex: Exec, x: Val, dims: Dims, part: GatherPart, X: number, fill: number): Val {
  const { batch: B, heads: H, kvHeads: KH, group, n } = dims;
  const { layoutHeads: LH, groupSize: G, numGroups: NG } = part;
  const perHead = LH > 1;
  const KHp = perHead ? H : KH;
  const Gp = perHead ? 1 : group;
  const R = NG * G;
  let t = ex.reshape(x, [B * KHp, NG, Gp, G * X]);
  if (Gp > 1) {
    const tt = ex.op([B * KHp, Gp, NG, G * X], () => tf.transpose(t.t!, [0, 2, 1, 3]));
    ex.free(t);
    t = tt;
  }
  t = ex.reshape(t, [B, H, R, X]);
  if (part.rows === null || part.inverse === null) {
    if (R === n) return t;
    const out = ex.op([B, H, n, X], () => tf.slice(t.t!, [0, 0, 0, 0], [B, H, n, X]));
    ex.free(t);
    return out;
  }
  let slots = R;
  if (!part.coversAllRows) {
    const withSentinel = ex.op([B, H, R + 1, X], () => tf.concat([t.t!, tf.fill([B, H, 1, X], fill)], 2), 2);
    ex.free(t);
    t = withSentinel;
    slots = R + 1;
  }
  let out: Val;
  if (!perHead) {
    const idx = ex.upload(part.inverse, [n], 'int32');
    out = ex.op([B, H, n, X], () => gatherDifferentiable(t.t!, idx.t!, 2));
    ex.free(idx, t);
  } else {
    const flat = new Int32Array(H * n);
    for (let h = 0; h < H; h++) for (let i = 0; i < n; i++) flat[h * n + i] = h * slots + part.inverse[h * n + i];
    const idx = ex.upload(flat, [H * n], 'int32');
    const tf3 = ex.reshape(t, [B, H * slots, X]);
    const g = ex.op([B, H * n, X], () => gatherDifferentiable(tf3.t!, idx.t!, 1));
    ex.free(idx, tf3);
    out = ex.reshape(g, [B, H, n, X]);
  }
  return out;
}

function run(ex: Exec, q: tf.Tensor4D | null, k: tf.Tensor4D | null, v: tf.Tensor4D | null, dims: Dims, opts: CompositeOptions, parts: GatherPart[]): Val {
  const { batch: B, heads: H, kvHeads: KH, n, m, d, dv } = dims;
  const qv = ex.input(q, [B, H, n, d]);
  const kv = ex.input(k, [B, KH, m, d]);
  const vv = ex.input(v, [B, KH, m, dv]);
  if (parts.length === 0) return ex.op([B, H, n, dv], () => tf.zeros([B, H, n, dv]));
  const qs = ex.op([B, H, n, d], () => tf.mul(qv.t!, opts.scale));
  // Finite copies of K and V, and per key whether it had a non-finite entry (see kernels/shared/finite.ts).
  const finite = (x: Val, dim: number): { clean: Val; bad: Val } => {
    // The tests are constants of the gradient; x reaches the result through the selection only.
    const ok = ex.op([B, KH, m, dim], () => constantOf([x.t!], tf.isFinite));
    // (tf.where holds a broadcast handle of each operand while it runs: whereCopies().)
    const clean = ex.op([B, KH, m, dim], () => tf.where(ok.t!, x.t!, tf.zerosLike(x.t!)), 2 + whereCopies());
    const badAll = ex.op([B, KH, m, dim], () => constantOf([ok.t!], (o) => tf.cast(tf.logicalNot(o), 'float32')), 2);
    ex.free(ok);
    const bad = ex.op([B, KH, m, 1], () => constantOf([badAll.t!], (b) => tf.max(b, -1, true)));
    ex.free(badAll);
    return { clean, bad };
  };
  const { clean: kc, bad: pk } = finite(kv, d);
  const { clean: vc, bad: pv } = finite(vv, dv);
  const poison = ex.op([B, KH, m, 1], () => tf.maximum(pk.t!, pv.t!));
  ex.free(pk, pv);
  let kl: Val | null = null;
  if (opts.keyLength !== null) {
    const src = opts.keyLength;
    kl = src instanceof tf.Tensor ? ex.reshape(ex.input(src, [B]), [B, 1, 1, 1, 1, 1]) : ex.upload(Int32Array.from(src), [B, 1, 1, 1, 1, 1], 'int32');
  }
  const single = parts.length === 1;
  const outs = parts.map((p) => runPart(ex, qs, kc, vc, poison, kl, dims, p, single));
  ex.free(qs, kc, vc, poison);
  if (kl) ex.free(kl);
  if (single) return outs[0].acc;
  // Merge: o = Σ_p e^{M_p − M} A_p / Σ_p e^{M_p − M} L_p, M = max_p M_p (0 where no part allows a key).
  let M = outs[0].max!;
  for (const o of outs.slice(1)) {
    const next = ex.op([B, H, n, 1], () => tf.maximum(M.t!, o.max!.t!));
    if (M !== outs[0].max) ex.free(M);
    M = next;
  }
  let num: Val | null = null;
  let den: Val | null = null;
  for (const o of outs) {
    const c = ex.op([B, H, n, 1], () => tf.exp(tf.sub(o.max!.t!, M.t!)), 2);
    const ca = ex.op([B, H, n, dv], () => tf.mul(o.acc.t!, c.t!));
    const cl = ex.op([B, H, n, 1], () => tf.mul(o.sum!.t!, c.t!));
    ex.free(c, o.acc, o.sum!);
    if (num && den) {
      const n2 = ex.op([B, H, n, dv], () => tf.add(num!.t!, ca.t!));
      const d2 = ex.op([B, H, n, 1], () => tf.add(den!.t!, cl.t!));
      ex.free(num, den, ca, cl);
      num = n2;
      den = d2;
    } else {
      num = ca;
      den = cl;
    }
  }
  for (const o of outs) if (o.max !== M) ex.free(o.max!);
  ex.free(M);
  // The part holding the row max contributes at least e^0 = 1 to the sum, so a row's sum is
  // >= 1 or exactly 0 (no allowed key, and then its accumulator is 0 too).
  const out = ex.op([B, H, n, dv], () => tf.where(constantOf([den!.t!], (x) => tf.greater(x, 0)), tf.div(num!.t!, tf.maximum(den!.t!, 1)), tf.zerosLike(num!.t!)), 4 + whereCopies());
  ex.free(num!, den!);
  return out;
}

/**
 * Runs the composite. `parts` must come from `buildPart` for these dims (n, m, heads).
 * @returns `[batch, heads, n, dv]`
 */
export function blockSparseComposite(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, dims: Dims, opts: CompositeOptions, parts: GatherPart[]): tf.Tensor4D {
  const ex = new Exec(true);
  return run(ex, q, k, v, dims, opts, parts).t as tf.Tensor4D;
}

/**
 * Intermediate bytes of {@link blockSparseComposite} (output excluded): `bytes`, every
 * allocation (webgpu, where released buffers return at the next submission), `peak`, the most
 * alive at once (backends that free on dispose), and its largest single tensor.
 */
export function blockSparseCompositeBytes(dims: Dims, parts: GatherPart[], keyLength: boolean): { bytes: number; peak: number; largest: number } {
  const ex = new Exec(false);
  const kl = keyLength ? new Array(dims.batch).fill(dims.m) : null;
  run(ex, null, null, null, dims, { scale: 1, keyLength: kl }, parts);
  const out = dims.batch * dims.heads * dims.n * dims.dv * 4;
  return { bytes: ex.bytes - out, peak: ex.peak - out, largest: ex.largest };
}

/** Whether the active backend frees a tensor's memory when it is disposed (all but webgpu, which defers to the next submission). */
export function freesOnDispose(): boolean {
  return tf.getBackend() !== 'webgpu';
}
