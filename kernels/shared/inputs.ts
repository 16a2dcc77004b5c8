/**
 * The inputs every fused kernel prepares the same way: head dims zero-padded to a multiple of 4
 * (vec4 loads) and the key lengths as an int32 tensor. Call inside a `tf.tidy`.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Dims } from '../../src/core/types.js';

/** q, k and v with their last dim zero-padded to `dPad` (q, k) and `dvPad` (v), plus the key lengths. */
export function kernelInputs(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  dims: Dims,
  keyLength: number[] | tf.Tensor1D | null,
  dPad: number,
  dvPad: number,
): { q: tf.Tensor4D; k: tf.Tensor4D; v: tf.Tensor4D; keyLength: tf.Tensor1D } {
  const padLast = (t: tf.Tensor4D, to: number): tf.Tensor4D => (t.shape[3] === to ? t : tf.pad(t, [[0, 0], [0, 0], [0, 0], [0, to - t.shape[3]]]));
  return {
    q: padLast(q, dPad),
    k: padLast(k, dPad),
    v: padLast(v, dvPad),
    keyLength: keyLength instanceof tf.Tensor ? keyLength : tf.tensor1d(keyLength ?? new Array(dims.batch).fill(dims.m), 'int32'),
  };
}
