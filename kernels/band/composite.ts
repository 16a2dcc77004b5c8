/**
 * Banded attention with soft weights, from tfjs ops: every query attends only the keys within
 * `reach` positions of it, `o_i = Σ_j w_h(p_i − j) e^{s q_i·k_j} v_j / Σ_j w_h(p_i − j) e^{s q_i·k_j}`,
 * with w_h a per-head weight of the signed offset x = p_i − j that the caller builds from tfjs
 * ops — so the result is differentiable with respect to whatever w depends on (adaptive span's
 * learnable z). Memory O(n·(reach + b)), never n·m.
 *
 * Queries are cut into blocks of b rows; a block's keys are one window of `b + 2·reach`
 * (causal: `b + reach`) consecutive positions, gathered once per kv head. Inside a window the
 * offset x depends only on (row in block, window column), so the weights are one
 * `[heads, b, window]` tensor shared by every block. Keys outside [0, m) or at or past
 * `keyLength[b]` get weight 0; a row with no allowed key outputs zeros.
 *
 * Every op on the path from the weights to the output has a gradient in tfjs (the allowed-set
 * mask uses `step`, the normalization avoids `divNoNan`).
 *
 * @module
 */
import { finiteKV, finiteKVBytes } from '../shared/finite.js';
import { DISALLOWED_SCORE } from '../shared/masking.js';
import * as tf from '@tensorflow/tfjs-core';
import { constantOf, gatherDifferentiable } from '../../src/core/grad.js';
import { matMulBT } from '../shared/matmul.js';
import type { Dims } from '../../src/core/types.js';

/** Options of {@link bandComposite}. */
export interface BandOptions {
  causal: boolean;
  scale: number;
  keyLength: number[] | tf.Tensor1D | null;
  /** Largest |p − j| that can have a nonzero weight (>= 0). */
  reach: number;
  /**
   * Weights for signed offsets: receives x = p − j as a float32 `[1, b, window]` tensor and
   * returns `[heads or 1, b, window]` weights in [0, 1] (0: not allowed). Causal offsets x < 0 are
   * zeroed by the composite.
   */
  weight: (x: tf.Tensor3D) => tf.Tensor;
}

/** Query rows per block for a band of `reach`. */
export function bandBlock(reach: number): number {
  return Math.min(64, Math.max(8, reach));
}

/** Window length (keys gathered per query block). */
export function bandWindow(reach: number, causal: boolean): number {
  return bandBlock(reach) + (causal ? reach : 2 * reach);
}

/** Host-side window geometry of a band: gather indices, positions, in-range flags, offsets. */
interface BandGeometry {
  bq: number;
  nQB: number;
  Lw: number;
  idx: Int32Array;
  pos: Int32Array;
  inRange: Float32Array;
  xs: Float32Array;
}

function geometry(dims: Dims, reach: number, causal: boolean): BandGeometry {
  const { n, m } = dims;
  const bq = bandBlock(reach);
  const nQB = Math.ceil(n / bq);
  const Lw = bandWindow(reach, causal);
  const off = m - n;
  const idx = new Int32Array(nQB * Lw);
  const pos = new Int32Array(nQB * Lw);
  const inRange = new Float32Array(nQB * Lw);
  for (let qb = 0; qb < nQB; qb++)
    for (let w = 0; w < Lw; w++) {
      const j = qb * bq + off - reach + w;
      pos[qb * Lw + w] = j;
      idx[qb * Lw + w] = Math.min(Math.max(j, 0), m - 1);
      inRange[qb * Lw + w] = j >= 0 && j < m ? 1 : 0;
    }
  const xs = new Float32Array(bq * Lw);
  for (let r = 0; r < bq; r++) for (let w = 0; w < Lw; w++) xs[r * Lw + w] = r + reach - w;
  return { bq, nQB, Lw, idx, pos, inRange, xs };
}

/** The offsets x = p − j of a band's window, `[1, b, window]` (float32), e.g. for weights built outside. */
export function bandOffsets(dims: Dims, reach: number, causal: boolean): tf.Tensor3D {
  const g = geometry(dims, reach, causal);
  return tf.tensor3d(g.xs, [1, g.bq, g.Lw]);
}

/** `[B, H, rows, c]` ↔ `[B, KH, nQB, G·bq, c]` (head h = kvh·G + g). */
function toBlocks(t: tf.Tensor, dims: Dims, g: BandGeometry): tf.Tensor {
  const { batch, kvHeads, group, n } = dims;
  const c = t.shape[3] as number;
  const tp = n === g.nQB * g.bq ? t : tf.pad(t, [[0, 0], [0, 0], [0, g.nQB * g.bq - n], [0, 0]]);
  return tf.reshape(tf.transpose(tf.reshape(tp, [batch * kvHeads, group, g.nQB, g.bq, c]), [0, 2, 1, 3, 4]), [batch, kvHeads, g.nQB, group * g.bq, c]);
}

function fromBlocks(t: tf.Tensor, dims: Dims, g: BandGeometry): tf.Tensor {
  const { batch, heads, kvHeads, group, n } = dims;
  const c = t.shape[4] as number;
  const out = tf.reshape(tf.transpose(tf.reshape(t, [batch * kvHeads, g.nQB, group, g.bq, c]), [0, 2, 1, 3, 4]), [batch, heads, g.nQB * g.bq, c]);
  return g.nQB * g.bq === n ? out : tf.slice(out, [0, 0, 0, 0], [-1, -1, n, -1]);
}

/** Validity `[B or 1, 1, nQB, 1, Lw]` of the window keys (in range, below keyLength). */
function validity(dims: Dims, g: BandGeometry, keyLength: BandOptions['keyLength']): tf.Tensor {
  let valid: tf.Tensor = tf.tensor3d(g.inRange, [1, g.nQB, g.Lw]);
  if (keyLength) {
    const kl = tf.reshape(keyLength instanceof tf.Tensor ? keyLength : tf.tensor1d(keyLength, 'int32'), [dims.batch, 1, 1]);
    valid = tf.mul(valid, tf.cast(tf.less(tf.tensor3d(g.pos, [1, g.nQB, g.Lw], 'int32'), kl), 'float32'));
  }
  return tf.reshape(valid, [valid.shape[0], 1, g.nQB, 1, g.Lw]);
}

/** Per-head weights `[1, KH, 1, G·bq, Lw]` from the caller's `[heads or 1, bq, Lw]` (causal: x < 0 zeroed). */
function headWeights(w: tf.Tensor, x: tf.Tensor, dims: Dims, g: BandGeometry, causal: boolean): tf.Tensor {
  let wgt = tf.broadcastTo(w, [dims.heads, g.bq, g.Lw]);
  if (causal) wgt = tf.mul(wgt, tf.cast(tf.greaterEqual(x, 0), 'float32'));
  return tf.reshape(wgt, [1, dims.kvHeads, 1, dims.group * g.bq, g.Lw]);
}

interface BandForward {
  /** Normalized weights a = w·e / Σ w·e, `[B, KH, nQB, G·bq, Lw]`. */
  p: tf.Tensor;
  /** e / Σ w·e (unweighted, allowed keys only), when asked for (the backward pass needs it). */
  eOverD: tf.Tensor | null;
  /** Output blocks `[B, KH, nQB, G·bq, dv]`. */
  o: tf.Tensor;
  qb: tf.Tensor;
  kw: tf.Tensor;
  vw: tf.Tensor;
}

/**
 * The forward pass on blocks, with the weights as two broadcast factors: per head `wh`
 * `[1, KH, 1, G·bq, Lw]` and per window key `valid` `[B|1, 1, nQB, 1, Lw]`. Disallowed keys get a
 * {@link DISALLOWED_SCORE} penalty (so the row max ignores them and their exp is 0) and weight 0; `step`
 * keeps the penalty's gradient 0. About 8 score-sized tensors.
 */
function forwardBlocks(q: tf.Tensor4D, kIn: tf.Tensor4D, vIn: tf.Tensor4D, dims: Dims, g: BandGeometry, wh: tf.Tensor, valid: tf.Tensor, scale: number, withEOverD: boolean): BandForward {
  const { batch, kvHeads, d, dv } = dims;
  // Finite copies of K and V; queries that weigh a key with a non-finite entry get NaN (below).
  const { k, v, poison } = finiteKV(kIn, vIn);
  const qb = toBlocks(tf.mul(q, scale), dims, g);
  const gidx = tf.tensor1d(g.idx, 'int32');
  const kw = tf.reshape(gatherDifferentiable(k, gidx, 2), [batch, kvHeads, g.nQB, g.Lw, d]);
  const vw = tf.reshape(gatherDifferentiable(v, gidx, 2), [batch, kvHeads, g.nQB, g.Lw, dv]);
  const penalty = (t: tf.Tensor) => tf.mul(tf.sub(tf.step(t), 1), -DISALLOWED_SCORE);
  const sm = tf.add(tf.add(matMulBT(qb, kw), penalty(wh)), penalty(valid));
  const e = tf.exp(tf.sub(sm, constantOf([sm], (x) => tf.max(x, -1, true)))); // the shift is a constant of the gradient
  const we = tf.mul(tf.mul(e, wh), valid);
  const sum = tf.sum(we, -1, true);
  const safe = tf.add(sum, tf.sub(1, tf.step(sum))); // a row with nothing allowed: 0 / 1
  const p = tf.div(we, safe);
  const pw = tf.reshape(gatherDifferentiable(poison, gidx, 2), [batch, kvHeads, g.nQB, g.Lw, 1]);
  const seen = tf.reshape(tf.matMul(p, pw), [batch * kvHeads, g.nQB, -1, 1]); // rank 4: webgpu's select
  const mark = tf.reshape(constantOf([seen], (x) => tf.where(tf.greater(x, 0), tf.fill(x.shape, Number.NaN), tf.zerosLike(x))), [batch, kvHeads, g.nQB, -1, 1]);
  const o = tf.add(tf.matMul(p, vw), mark); // x + 0 is x exactly, x + NaN is NaN
  return { p, eOverD: withEOverD ? tf.div(e, safe) : null, o, qb, kw, vw };
}

/**
 * Banded soft-weight attention (see the module comment). Differentiable through tfjs's own
 * gradient functions where they are registered; see {@link bandCompositeWithGrad} for a
 * self-contained gradient.
 * @returns `[batch, heads, n, dv]`
 */
export function bandComposite(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, dims: Dims, opts: BandOptions): tf.Tensor4D {
  const g = geometry(dims, opts.reach, opts.causal);
  return tf.tidy(() => {
    const x = tf.tensor3d(g.xs, [1, g.bq, g.Lw]);
    const wh = headWeights(opts.weight(x), x, dims, g, opts.causal);
    const f = forwardBlocks(q, k, v, dims, g, wh, validity(dims, g, opts.keyLength), opts.scale, false);
    return fromBlocks(f.o, dims, g) as tf.Tensor4D;
  });
}

/** Options of {@link bandCompositeWithGrad}: the weights are a function of a parameter tensor θ. */
export interface BandGradOptions extends Omit<BandOptions, 'weight'> {
  /** Weights `[heads or 1, b, window]` from θ and the offsets x `[1, b, window]`. */
  weight: (theta: tf.Tensor, x: tf.Tensor3D) => tf.Tensor;
  /** dL/dθ from θ, x and dL/dw `[heads, b, window]` (summed over batch and blocks, causal and validity applied). */
  weightGrad: (theta: tf.Tensor, x: tf.Tensor3D, dw: tf.Tensor3D) => tf.Tensor;
}

/**
 * {@link bandComposite} with its gradient written out (a `tf.customGrad`), with respect to θ
 * (the weights' parameters, e.g. adaptive span's z), q, k and v — so training works with
 * tfjs-core alone, whose gradient registry is empty unless `@tensorflow/tfjs` is loaded.
 *
 * Backward, with P the normalized weights, O the output, dO the incoming gradient:
 * `dP = dO·Vᵀ`, `δ = rowsum(dO ⊙ O)`, `dS = P ⊙ (dP − δ)`; `dq = s·dS·K`, `dK = s·dSᵀ·q`,
 * `dV = Pᵀ·dO` (windows scattered back to positions by segment sums); `dL/dw = (e/Σwe)·(dP − δ)`.
 */
export function bandCompositeWithGrad(theta: tf.Tensor, q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, dims: Dims, opts: BandGradOptions): tf.Tensor4D {
  const g = geometry(dims, opts.reach, opts.causal);
  const { batch, heads, kvHeads, m, d, dv } = dims;
  const f = tf.customGrad(((th: tf.Tensor, qq: tf.Tensor4D, kk: tf.Tensor4D, vv: tf.Tensor4D, save: tf.GradSaveFunc) => {
    const x = tf.tensor3d(g.xs, [1, g.bq, g.Lw]);
    const valid = validity(dims, g, opts.keyLength);
    const wh = headWeights(opts.weight(th, x), x, dims, g, opts.causal);
    const fw = forwardBlocks(qq, kk, vv, dims, g, wh, valid, opts.scale, true);
    save([th, fw.p, fw.eOverD!, fw.o, fw.qb, fw.kw, fw.vw, valid]);
    return {
      value: fromBlocks(fw.o, dims, g) as tf.Tensor4D,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [th2, p, eOverD, o, qb, kw, vw, valid2] = saved;
        const dO = toBlocks(dy, dims, g);
        const dP = matMulBT(dO, vw);
        const delta = tf.sum(tf.mul(dO, o), -1, true);
        const dPd = tf.sub(dP, delta);
        const dS = tf.mul(p, dPd);
        const dq = fromBlocks(tf.mul(tf.matMul(dS, kw), opts.scale), dims, g); // scores = (s·q)·k
        // Window gradients [B, KH, nQB, Lw, c] scattered back to key positions.
        // (scatterND sums duplicate indices; it exists on every backend, unlike unsortedSegmentSum.)
        const scatter = (t: tf.Tensor, c: number) => {
          const flat = tf.reshape(tf.transpose(tf.reshape(t, [batch, kvHeads, g.nQB * g.Lw, c]), [2, 0, 1, 3]), [g.nQB * g.Lw, batch * kvHeads * c]);
          const summed = tf.scatterND(tf.tensor2d(g.idx, [g.nQB * g.Lw, 1], 'int32'), flat, [m, batch * kvHeads * c]);
          return tf.transpose(tf.reshape(summed, [m, batch, kvHeads, c]), [1, 2, 0, 3]);
        };
        const dk = scatter(tf.matMul(dS, qb, true, false), d); // qb already carries the scale
        const dv_ = scatter(tf.matMul(p, dO, true, false), dv);
        // dL/dw per (head, row, column): summed over batch and blocks, validity applied.
        const dwFull = tf.mul(tf.mul(eOverD, dPd), valid2); // [B, KH, nQB, G·bq, Lw]
        let dw: tf.Tensor = tf.reshape(tf.sum(dwFull, [0, 2]), [heads, g.bq, g.Lw]);
        const x = tf.tensor3d(g.xs, [1, g.bq, g.Lw]);
        if (opts.causal) dw = tf.mul(dw, tf.cast(tf.greaterEqual(x, 0), 'float32'));
        const dth = opts.weightGrad(th2, x, dw as tf.Tensor3D);
        return [dth, dq, dk, dv_];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(theta, q, k, v) as tf.Tensor4D;
}

/**
 * Upper bound of {@link bandComposite}'s intermediate bytes (every temporary alive at once, as
 * on webgpu before a submit): the gathered windows, about eight `[B, H, n, window]` score-sized
 * tensors, and the row tensors, with a 15% margin for backend copies.
 */
export function bandCompositeBytes(dims: Dims, reach: number, causal: boolean): number {
  const { batch, heads, kvHeads, n, d, dv } = dims;
  const bq = bandBlock(reach);
  const nQB = Math.ceil(n / bq);
  const Lw = bandWindow(reach, causal);
  const rows = nQB * bq;
  const scores = batch * heads * rows * Lw * 4;
  // The gathered windows, and a transposed copy a backend's matMul(q, kᵀ) may make.
  const windows = batch * kvHeads * nQB * Lw * (2 * d + dv) * 4;
  const rowTensors = batch * heads * rows * (4 * d + 4 * dv + 6) * 4;
  const small = (heads * bq * Lw * 8 + batch * nQB * Lw * 8) * 4;
  // finiteKV's copies and flags (see kernels/shared/finite.ts), the gathered flags, the row marks.
  const m = dims.m;
  const finite = finiteKVBytes(batch * kvHeads, m, d, dv) + (batch * kvHeads * nQB * Lw + 6 * batch * heads * rows + batch * heads * rows * dv) * 4;
  return Math.ceil((8 * scores + windows + rowTensors + small + finite) * 1.15) + 8192;
}
