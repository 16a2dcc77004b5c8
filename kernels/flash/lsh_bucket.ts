/**
 * Reformer's bucketing step, on the active backend (the device on webgpu: nothing is read back):
 * angular LSH hashes of every real position, a stable sort of the positions by (bucket,
 * position) per round, and the inverse permutation. Shared by the fused path and the composite.
 *
 * - Hash of round r: `argmax([x·R_r ; −x·R_r])` over the `nb` candidates (first maximum),
 *   computed over chunks of at most {@link HASH_CHUNK} rotations (a top-1 over the chunk's
 *   ±projections) with a running max, so no `[n, nb]` tensor exists (nb grows with m: that
 *   tensor would be O(n²/c)). Candidates are visited chunk by chunk (+a, then −a, per chunk): the
 *   first maximum in that order, which differs from the first in `[x·R ; −x·R]` order only for
 *   exactly equal values of a +a and a −b in different chunks.
 * - Padding positions (at or past `keyLength[b]`) are not hashed: they get the sentinel bucket
 *   `nb`, which sorts them after every real position, so the real positions are cut into chunks
 *   from 0 exactly as if the padding were absent.
 * - The sort is `tf.topk` of the negated key `bucket·n + position` (exact in float32 while
 *   (nb + 1)·n <= 2^24), or of the negated bucket alone past that, relying on topk's documented
 *   tie order (the lower index first), which the tests check on every backend.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';

/**
 * Rotations per matMul of the hash: bounds the largest hashing tensor to n·2·HASH_CHUNK. Measured
 * (webgpu, bucket 64, 2 heads, d = 64): with 32, lsh's bytes grew 5.3× from n = 1024 to 4096 (the
 * chunk width itself grows until nb/2 reaches it); with 16, 4.3×, at 920 ms instead of 595 ms of
 * hashing at n = 16384.
 */
export const HASH_CHUNK = 16;

/** Largest integer every float32 holds exactly. */
const EXACT_F32 = 1 << 24;

/** The bucketing of one call: per round, `[nh, rows, n]` with rows = batch·heads. */
export interface LshBucketing {
  /** `bucket[r, row, pos]`: the bucket of position pos (nb for a padding position). int32. */
  bucket: tf.Tensor3D;
  /** `perm[r, row, s]`: the position at sorted index s. int32. */
  perm: tf.Tensor3D;
  /** `rank[r, row, pos]`: the sorted index of position pos (the inverse of perm). int32. */
  rank: tf.Tensor3D;
  dispose(): void;
}

/**
 * Whether each position is real: `[batch, 1, n]` bool, or null when every position is.
 */
export function realPositions(batch: number, n: number, keyLength: number[] | tf.Tensor1D | null): tf.Tensor3D | null {
  if (keyLength === null || (!(keyLength instanceof tf.Tensor) && keyLength.every((l) => l >= n))) return null;
  return tf.tidy(() => {
    const kl = tf.reshape(keyLength instanceof tf.Tensor ? keyLength : tf.tensor1d(keyLength, 'int32'), [batch, 1, 1]);
    return tf.less(tf.reshape(tf.range(0, n, 1, 'int32'), [1, 1, n]), kl) as tf.Tensor3D;
  });
}

/**
 * Buckets of every (round, batch·head, position): `[nh, rows, n]` int32.
 *
 * @param x - `[rows, n, d]` the hashed vectors (the queries)
 * @param rotations - `[nh, d, nb/2]`
 * @param real - `[rows, n]` bool (null: every position is real)
 */
export function hashBuckets(x: tf.Tensor3D, rotations: tf.Tensor3D, real: tf.Tensor2D | null): tf.Tensor3D {
  const [rows, n, d] = x.shape;
  const [nh, , half] = rotations.shape;
  const nb = 2 * half;
  return tf.tidy(() => {
    const flat = tf.reshape(x, [rows * n, d]) as tf.Tensor2D;
    const rounds: tf.Tensor1D[] = [];
    for (let r = 0; r < nh; r++) {
      const rot = tf.reshape(tf.slice(rotations, [r, 0, 0], [1, d, half]), [d, half]) as tf.Tensor2D;
      let best: tf.Tensor1D | null = null;
      let idx: tf.Tensor1D | null = null;
      const consider = (value: tf.Tensor1D, index: tf.Tensor1D) => {
        if (best === null || idx === null) {
          best = value;
          idx = index;
          return;
        }
        // Strictly greater: the first maximum wins (candidates are visited in index order within
        // each half; +a before −a).
        const better = tf.greater(value, best);
        best = tf.where(better, value, best);
        idx = tf.where(better, index, idx);
      };
      for (let a0 = 0; a0 < half; a0 += HASH_CHUNK) {
        // One scope per chunk: only the running pair outlives it (else the chunks' projections
        // would all stay alive until the end: n·nb/2 again).
        const prev = [best, idx] as (tf.Tensor1D | null)[];
        const kept = tf.tidy(() => {
          const w = Math.min(HASH_CHUNK, half - a0);
          const proj = tf.matMul(flat, w === half ? rot : tf.slice(rot, [0, a0], [d, w]));
          // The chunk's 2w candidates (+a then −a) in one top-1: topk keeps the lower index on
          // ties, so this is the chunk's first maximum (one op where max/argMax/min/argMin were four).
          const top = tf.topk(tf.concat([proj, tf.neg(proj)], 1), 1);
          const local = tf.reshape(top.indices, [rows * n]);
          const int = (x: number) => tf.scalar(x, 'int32');
          const index = tf.where(tf.less(local, int(w)), tf.add(local, int(a0)), tf.add(local, int(half + a0 - w)));
          consider(tf.reshape(top.values, [rows * n]) as tf.Tensor1D, index as tf.Tensor1D);
          return [best!, idx!];
        });
        for (const t of prev) t?.dispose();
        [best, idx] = kept as [tf.Tensor1D, tf.Tensor1D];
      }
      let b = tf.reshape(idx!, [rows, n]) as tf.Tensor2D;
      // A NaN or ±Inf row (only padding may hold one) must not leave a bucket behind: padding gets nb.
      if (real) b = tf.where(real, b, tf.fill([rows, n], nb, 'int32')) as tf.Tensor2D;
      rounds.push(tf.reshape(b, [rows * n]) as tf.Tensor1D);
    }
    return tf.cast(tf.reshape(tf.stack(rounds), [nh, rows, n]), 'int32') as tf.Tensor3D;
  });
}

/**
 * Sorts the positions of every (round, row) by (bucket, position) and inverts the permutation.
 * `bucket` is `[nh, rows, n]` int32 with values in [0, nb].
 */
export function sortBuckets(bucket: tf.Tensor3D, nb: number): LshBucketing {
  const [nh, rows, n] = bucket.shape;
  const [perm, rank] = tf.tidy(() => {
    const pos = tf.reshape(tf.range(0, n, 1, 'float32'), [1, 1, n]);
    const key = (nb + 1) * n <= EXACT_F32 ? tf.add(tf.mul(tf.cast(bucket, 'float32'), n), pos) : tf.cast(bucket, 'float32');
    const { indices } = tf.topk(tf.neg(key), n);
    const perm = tf.cast(indices, 'int32') as tf.Tensor3D;
    // rank[perm[s]] = s, as one scatter over the flattened (round, row, position) index.
    const rowBase = tf.reshape(tf.mul(tf.range(0, nh * rows, 1, 'int32'), tf.scalar(n, 'int32')), [nh, rows, 1]);
    const flatIdx = tf.reshape(tf.add(perm, rowBase), [nh * rows * n, 1]);
    const sIdx = tf.reshape(tf.tile(tf.reshape(tf.range(0, n, 1, 'int32'), [1, n]), [nh * rows, 1]), [nh * rows * n]);
    const rank = tf.reshape(tf.scatterND(flatIdx, sIdx, [nh * rows * n]), [nh, rows, n]) as tf.Tensor3D;
    return [perm, rank];
  });
  return { bucket, perm, rank, dispose: () => [bucket, perm, rank].forEach((t) => t.dispose()) };
}

/** Bytes of the bucketing's tensors and its largest transients (an upper bound, for memoryBytes). */
export function bucketingBytes(rows: number, n: number, d: number, nh: number, nb: number): number {
  const chunk = Math.min(HASH_CHUNK, nb / 2);
  // Hashing: one chunk's projections, their negation and concatenation, top-1's index buffers
  // (two alive per step, over the power-of-two padded width) and the running pair; per round.
  const hash = rows * n * 4 * (8 * chunk + 16) + nh * rows * n * 4 * 3;
  // Sorting: keys, topk's values/indices (padded to a power of two) and the scatter's operands.
  const pow2 = 2 ** Math.ceil(Math.log2(Math.max(2, n)));
  const sort = nh * rows * 4 * (3 * n + 4 * pow2 + 5 * n);
  return hash + sort;
}
