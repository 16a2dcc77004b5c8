/**
 * Values with no gradient path: masks, row maxima, poison marks and sort orders computed from
 * tensors that are themselves on a gradient path. tfjs's autodiff needs a gradient for every
 * recorded op between the differentiated inputs and the result, and comparison, sort and index
 * ops (`Equal`, `Greater`, `IsFinite`, `TopK`, …) have none (a gather's index input even gets an
 * int32 "gradient" that the engine rejects). Such values are computed with the tape paused, so
 * they are constants of the gradient and reach the result only through selections (`where`,
 * gathers) — DESIGN.md's "masks are selections".
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';

/** The engine state this module reads (tfjs-core 4.22: `isTapeOn()` is `gradientDepth > 0 && kernelDepth === 0`). */
interface EngineState {
  kernelDepth: number;
}

/**
 * `f(...inputs)` computed as a constant of the gradient: while tfjs records gradients the ops of
 * `f` are not recorded (the tape is paused as tfjs pauses it inside a kernel), so nothing in the
 * result depends on `inputs` for autodiff; outside a recording it is just `f(...inputs)`. Any
 * result shape (one tensor, several, an object of tensors).
 *
 * @example
 * ```ts
 * // A mask from a tensor on the gradient path, used only as a selection:
 * const ok = constantOf([sum], (s) => tf.greater(s, 0));
 * const out = tf.div(x, tf.where(ok, sum, tf.onesLike(sum)));
 * ```
 */
export function constantOf<T>(inputs: tf.Tensor[], f: (...xs: tf.Tensor[]) => T): T {
  const state = (tf.engine() as unknown as { state: EngineState }).state;
  state.kernelDepth++;
  try {
    return f(...inputs);
  } finally {
    state.kernelDepth--;
  }
}

/**
 * `tf.gather(x, indices, axis)` (int32 `indices` of any shape, a constant of the gradient),
 * differentiable in `x` on every backend: tfjs's gather gradient is an `UnsortedSegmentSum`,
 * which the wasm backend does not register and the cpu backend computes one masked sum per
 * segment; on those two the gradient here is the same sum as a scatter-add (`ScatterNd`).
 * Elsewhere it is plain `tf.gather`.
 */
export function gatherDifferentiable<T extends tf.Tensor>(x: T, indices: tf.Tensor, axis = 0): T {
  // tfjs's gather gradient is an UnsortedSegmentSum: missing on wasm, and on cpu one masked sum
  // per segment (O(segments · size): minutes for a 4096-row backward). There the scatter-add below.
  const backend = tf.getBackend();
  if (backend !== 'cpu' && tf.getKernel('UnsortedSegmentSum', backend) !== undefined) return tf.gather(x, indices, axis) as T;
  const shape = x.shape.slice();
  const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const len = shape[axis];
  const gather = tf.customGrad(((xs: tf.Tensor, save: tf.GradSaveFunc) => {
    // Saved: the caller's tidy may free `indices` before the backward pass runs.
    save([indices]);
    return {
      value: tf.gather(xs, indices, axis),
      gradFunc: (dy: tf.Tensor, [idx]: tf.Tensor[]) =>
        tf.tidy(() => {
          const count = idx.size;
          if (count === 0) return tf.zeros(shape);
          // dy [...before, ...indices.shape, ...after] as [count, outer·inner] rows, summed into [len, outer·inner].
          const rows = tf.reshape(tf.transpose(tf.reshape(dy, [outer, count, inner]), [1, 0, 2]), [count, outer * inner]);
          const summed = tf.scatterND(tf.reshape(idx, [count, 1]), rows, [len, outer * inner]);
          return tf.reshape(tf.transpose(tf.reshape(summed, [len, outer, inner]), [1, 0, 2]), shape);
        }),
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return gather(x) as T;
}
