/**
 * The one "disallowed score" of every composite, and its differentiable "divide unless empty".
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { constantOf } from '../../src/core/grad.js';

/**
 * The additive score bias of a pair that is not allowed: exp of it (minus any real row max)
 * underflows to exactly 0, so a disallowed pair never takes softmax mass. It must stay above
 * −1e20: tfjs-backend-webgl's max reduction starts from −1e20, so a row whose every entry is
 * below that reads back as −1e20 and would pass the "has an allowed key" test
 * (`max > DISALLOWED_SCORE / 10`). Real scores are many orders of magnitude smaller than 1e8.
 */
export const DISALLOWED_SCORE = -1e9;

/**
 * `x / den` where `den > 0`, else 0 (`den` broadcast against `x`): a row with no allowed key
 * (weight sum 0, numerator 0) outputs 0. Unlike `tf.divNoNan` it is differentiable: the test
 * `den > 0` is a constant of the gradient and the division a selection.
 */
export function divOrZero(x: tf.Tensor, den: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const ok = constantOf([den], (d) => tf.greater(d, 0));
    return tf.div(x, tf.where(ok, den, tf.onesLike(den)));
  });
}
