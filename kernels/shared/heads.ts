/**
 * Grouped heads (query head h = kvh·group + g) between per-query-head and per-K/V-head tensors,
 * without repeating anything on the K/V side of a forward pass: the backward passes' sums over a
 * group and their per-query-head copies of K/V-side rows.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';

/** Sums `[B, H, r, c]` per query head over each K/V head's group: `[B, KH, r, c]`. */
export function sumGroups(x: tf.Tensor, kvHeads: number): tf.Tensor {
  const [B, H, r, c] = x.shape;
  return H === kvHeads ? x : tf.sum(tf.reshape(x, [B, kvHeads, H / kvHeads, r, c]), 2);
}

/** Repeats `[B, KH, r, c]` for each query head of its group: `[B, H, r, c]`. */
export function perQueryHead(x: tf.Tensor, heads: number): tf.Tensor {
  const [B, KH, r, c] = x.shape;
  if (heads === KH) return x;
  // (Rank 3: webgpu tiles rank 5 on the cpu, with a synchronous read.)
  return tf.reshape(tf.tile(tf.reshape(x, [B * KH, 1, r * c]), [1, heads / KH, 1]), [B, heads, r, c]);
}
