/**
 * The composite twin of the fused dense kernel: scaled dot-product attention from tfjs ops.
 * Runs on every backend (cpu, wasm, webgl, tensorflow) and is the kernel's test oracle.
 *
 * Grouped / multi-query heads are handled by reshaping `q [b, heads, n, d]` to
 * `[b, kvHeads, group·n, d]`, so K and V are never repeated. Intermediates are freed as soon
 * as they are used: on cpu the peak is about two `[b, heads, n, m]` float32 matrices plus the
 * `[b, n, m]` mask when one is needed (see {@link denseCompositeBytes} for webgpu).
 *
 * @module
 */
import { DISALLOWED_SCORE, divOrZero } from '../shared/masking.js';
import { constantOf } from '../../src/core/grad.js';
import { finiteKV, finiteKVBytes, poisonRows } from '../shared/finite.js';
import * as tf from '@tensorflow/tfjs-core';
import { matMulBT } from '../shared/matmul.js';
import type { Dims } from '../../src/core/types.js';

/** Options of {@link denseComposite}. */
export interface DenseCompositeOptions {
  causal: boolean;
  scale: number;
  /** Per-batch valid key counts (numbers or an int32 tensor), or null. */
  keyLength: number[] | tf.Tensor1D | null;
}

/** Runs `f(x)` and disposes `x` unless it is one of `keep`. */
function step<T extends tf.Tensor>(x: tf.Tensor, f: (x: tf.Tensor) => T, keep: tf.Tensor[] = []): T {
  const y = f(x);
  if (!keep.includes(x) && y !== x) x.dispose();
  return y;
}

/** 0/1 float mask `[batch, 1, n, m]` of allowed (query, key) pairs, or null when all are allowed. */
export function denseMask(dims: Dims, causal: boolean, keyLength: number[] | tf.Tensor1D | null): tf.Tensor | null {
  const { n, m, batch } = dims;
  const needsLength = keyLength !== null && (keyLength instanceof tf.Tensor || keyLength.some((l) => l < m));
  if (!causal && !needsLength) return null;
  return tf.tidy(() => {
    const j = tf.reshape(tf.range(0, m, 1, 'int32'), [1, 1, 1, m]);
    let allowed: tf.Tensor = tf.cast(tf.onesLike(j), 'bool');
    if (causal) {
      const p = tf.reshape(tf.range(m - n, m, 1, 'int32'), [1, 1, n, 1]);
      allowed = tf.logicalAnd(allowed, tf.lessEqual(j, p));
    }
    if (needsLength) {
      const kl = tf.reshape((keyLength instanceof tf.Tensor ? keyLength : tf.tensor1d(keyLength, 'int32')), [batch, 1, 1, 1]);
      allowed = tf.logicalAnd(allowed, tf.less(j, kl));
    }
    return tf.cast(allowed, 'float32');
  });
}

/**
 * Dense attention from tfjs ops: `softmax(s·q·kᵀ over allowed keys)·v`, zeros for a query
 * with no allowed key.
 *
 * @param q - `[batch, heads, n, d]`
 * @param k - `[batch, kvHeads, m, d]`
 * @param v - `[batch, kvHeads, m, dv]`
 * @returns `[batch, heads, n, dv]`
 */
export function denseComposite(q: tf.Tensor4D, kIn: tf.Tensor4D, vIn: tf.Tensor4D, dims: Dims, opts: DenseCompositeOptions): tf.Tensor4D {
  const { batch, heads, kvHeads, group, n, m, d, dv } = dims;
  // Non-finite keys and values are zeroed and marked: a query that does not attend them is exact.
  const { k, v, poison } = finiteKV(kIn, vIn) as { k: tf.Tensor4D; v: tf.Tensor4D; poison: tf.Tensor };
  const mask = denseMask(dims, opts.causal, opts.keyLength);
  const qs = tf.tidy(() => tf.reshape(tf.mul(q, tf.scalar(opts.scale)), [batch, kvHeads, group * n, d]));
  let s: tf.Tensor = step(qs, (x) => matMulBT(x as tf.Tensor4D, k)); // [b, kvH, g·n, m]
  k.dispose();
  s = step(s, (x) => tf.reshape(x, [batch, heads, n, m])); // head h = kvh·group + g
  if (mask) {
    // Disallowed scores get DISALLOWED_SCORE so the row max ignores them; the 0/1 mask then zeroes
    // them exactly, and a row with no allowed key sums to 0 and outputs 0 (divOrZero).
    const bias = tf.tidy(() => tf.mul(tf.sub(mask, 1), -DISALLOWED_SCORE));
    s = step(s, (x) => tf.add(x, bias));
    bias.dispose();
  }
  // The row max only shifts the exponent (softmax is invariant to it): a constant of the gradient.
  const mx = constantOf([s], (x) => tf.max(x, -1, true));
  s = step(s, (x) => tf.sub(x, mx));
  mx.dispose();
  s = step(s, (x) => tf.exp(x));
  if (mask) s = step(s, (x) => tf.mul(x, mask));
  mask?.dispose();
  const sum = tf.sum(s, -1, true);
  s = step(s, (x) => tf.reshape(x, [batch * kvHeads, group * n, m]));
  const v3 = step(v, (x) => tf.reshape(x, [batch * kvHeads, m, dv]));
  const p3 = step(poison, (x) => tf.reshape(x, [batch * kvHeads, m, 1]));
  let o: tf.Tensor = tf.matMul(s as tf.Tensor3D, v3 as tf.Tensor3D); // [b·kvH, g·n, dv]
  v3.dispose();
  o = step(o, (x) => poisonRows(x, s, p3));
  s.dispose();
  p3.dispose();
  o = step(o, (x) => tf.reshape(x, [batch, heads, n, dv]));
  o = step(o, (x) => divOrZero(x, sum));
  sum.dispose();
  return o as tf.Tensor4D;
}

/**
 * Upper bound of the composite's intermediate bytes, valid on every backend. On webgpu, tfjs
 * releases a disposed tensor's buffer only when its command batch is submitted, so every
 * intermediate of the call can be alive at once: the bound counts them all — 3 (unmasked; 2
 * where disposal is immediate) or 5 (masked) `[batch, heads, n, m]` float32 matrices, the mask's 7 `[batch, n, m]` tensors
 * (bools are 4-byte on webgpu), the O(m·(d + dv)) finite copies of K and V and the O(n·(d + dv))
 * row and operand tensors.
 */
export function denseCompositeBytes(dims: Dims, masked: boolean): number {
  const { batch, heads, n, m, d, dv } = dims;
  const scores = batch * heads * n * m * 4;
  const mask = masked ? 7 * batch * n * m * 4 + 2 * m * 4 : 0;
  // Row tensors (scaled q, row max and sum, p·v, divOrZero's quotient) and the operand
  // copies a backend's matMul may make of K and V.
  const rows = batch * heads * n * (2 * d + 2 * dv + 8) * 4 + batch * dims.kvHeads * m * (d + dv) * 4;
  // finiteKVBytes (K and V made finite); poisonRows: the row counts, their test, a NaN and a zero column, the selected
  // column, and the sum.
  const finite = finiteKVBytes(batch * dims.kvHeads, m, d, dv) + batch * heads * n * (dv + 5) * 4;
  // Unmasked, at most two score matrices are alive at once where disposal is immediate (cpu, wasm,
  // tensorflow); three on webgpu, whose deferred releases keep the exponent's input alive too.
  const unmasked = tf.getBackend() === 'webgpu' ? 3 : 2;
  return (masked ? 5 : unmasked) * scores + mask + rows + finite + 8192;
}
