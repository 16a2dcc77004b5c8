/**
 * The variables a variant owns (its learned parameters, DESIGN.md "Training").
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';

/**
 * A `tf.Variable` (trainable or not) holding `init`'s data; `init` is consumed (the variable
 * keeps its own reference to the data, so disposing `init` frees nothing it needs).
 *
 * @example
 * ```ts
 * const z = ownedVariable(tf.tensor1d([8, 8]), true); // the tensor1d is disposed, z holds its data
 * ```
 */
export function ownedVariable<R extends tf.Rank>(init: tf.Tensor<R>, trainable: boolean): tf.Variable<R> {
  const variable = tf.variable(init, trainable);
  init.dispose();
  return variable;
}
