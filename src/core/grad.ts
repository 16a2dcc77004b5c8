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
