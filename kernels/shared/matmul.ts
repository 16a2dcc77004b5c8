/**
 * `a · bᵀ` as the composites need it, working around a tfjs-backend-webgpu 4.22 bug.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';

/**
 * Inner dims from which tfjs-backend-webgpu picks its split-K matMul for one batch with few
 * output tiles (`innerShapeB >= 2000` in its BatchMatMul_impl).
 */
export const WEBGPU_SPLIT_K_INNER = 2000;

/**
 * `a · bᵀ` over the last two axes (`tf.matMul(a, b, false, true)`).
 *
 * On webgpu, for an inner dim of at least {@link WEBGPU_SPLIT_K_INNER}, the transpose is made
 * explicit. tfjs-backend-webgpu 4.22's split-K program returns wrong values with
 * `transposeB`: at K = 2048 and M = N = 64, errors as large as the result itself, which broke
 * the causal performer composite from 2048 features. The same product without `transposeB` is
 * right.
 *
 * @example
 * ```ts
 * const scores = matMulBT(q, k); // [b, h, n, d] · [b, h, m, d]ᵀ → [b, h, n, m]
 * ```
 */
export function matMulBT<T extends tf.Tensor>(a: T, b: T): T {
  const inner = a.shape[a.rank - 1];
  if (tf.getBackend() !== 'webgpu' || inner < WEBGPU_SPLIT_K_INNER) return tf.matMul(a as never, b as never, false, true) as unknown as T;
  return tf.tidy(() => {
    const perm = [...Array(b.rank).keys()];
    [perm[b.rank - 2], perm[b.rank - 1]] = [perm[b.rank - 1], perm[b.rank - 2]];
    return tf.matMul(a as never, tf.transpose(b, perm) as never) as unknown as T;
  });
}
