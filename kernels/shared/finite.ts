/**
 * Keys that are not attended are left out *exactly*, also when they hold NaN or ±Inf: a zero
 * weight times NaN is NaN, so composites never multiply a masked key by zero. They run on K and V
 * with their non-finite entries zeroed, and mark the keys that had one (`poison`); a query that
 * gives such a key a nonzero weight outputs NaN (as the definition does for a non-finite key or
 * value it attends), every other query is exactly what it would be with finite values there.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { constantOf } from '../../src/core/grad.js';

/**
 * K and V (`[..., m, d]`, `[..., m, dv]`) with non-finite entries replaced by 0, and `poison`
 * `[..., m, 1]`: 1 where key j's k or v had a non-finite entry, else 0.
 */
export function finiteKV(k: tf.Tensor, v: tf.Tensor): { k: tf.Tensor; v: tf.Tensor; poison: tf.Tensor } {
  return tf.tidy(() => {
    // The tests are constants of the gradient; K and V reach the result through selections only.
    const fk = constantOf([k], tf.isFinite);
    const fv = constantOf([v], tf.isFinite);
    const poison = constantOf([fk, fv], (a, b) => {
      const bad = (f: tf.Tensor) => tf.cast(tf.any(tf.logicalNot(f), -1, true), 'float32');
      return tf.maximum(bad(a), bad(b));
    });
    return {
      k: tf.where(fk, k, tf.zerosLike(k)),
      v: tf.where(fv, v, tf.zerosLike(v)),
      poison,
    };
  });
}

/**
 * `o [..., rows, dv]` with NaN in every row whose weights `e [..., rows, m]` (non-negative) give a
 * poisoned key (`poison [..., m, 1]`) a nonzero weight.
 */
export function poisonRows(o: tf.Tensor, e: tf.Tensor, poison: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.add(o, poisonMarks(e, poison)));
}

/**
 * NaN (or 0) per row of `e [..., rows, m]`: NaN where the row gives a poisoned key (`poison
 * [..., m, 1]`) a nonzero weight; added to a row, x + 0 is x exactly and x + NaN is NaN. A
 * constant of the gradient.
 */
export function poisonMarks(e: tf.Tensor, poison: tf.Tensor): tf.Tensor {
  return constantOf([e, poison], (a, p) => {
    const seen = tf.matMul(a as tf.Tensor3D, p as tf.Tensor3D);
    return tf.where(tf.greater(seen, 0), tf.fill(seen.shape, Number.NaN), tf.zerosLike(seen));
  });
}

/**
 * Extra handles `tf.where` holds while it runs: it broadcasts its condition and both operands to
 * the output's shape, new handles even when the shapes already agree, which the engine counts
 * (cpu, wasm, tensorflow) but which share their buffers (webgpu's buffer manager sees none).
 */
export function whereCopies(): number {
  return tf.getBackend() === 'webgpu' ? 0 : 3;
}

/**
 * Upper bound of {@link finiteKV}'s bytes for `bk` (batch·kvHeads) key sets of m keys: per K and
 * V an isFinite, a zerosLike, where's broadcast handles and the finite copy, and the per-key flags.
 */
export function finiteKVBytes(bk: number, m: number, d: number, dv: number): number {
  return ((3 + whereCopies()) * bk * m * (d + dv) + 8 * bk * m) * 4;
}
