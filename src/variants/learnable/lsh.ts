/**
 * `lsh`: Reformer's LSH attention (Kitaev, Kaiser and Levskaya, "Reformer: The Efficient
 * Transformer"). Queries and keys are shared (`k` must be the same tensor as `q`); keys are the
 * normalized queries. Each of `hashes` rounds hashes every real position with random rotations
 * R_r (`h_r(x) = argmax([x·R_r ; −x·R_r])`, one of `buckets` buckets), sorts the positions by
 * (bucket, position), cuts the sorted order into chunks of `bucketSize` c, and lets each query
 * attend the keys of its bucket in its own chunk and the chunk before:
 *
 * ```text
 * positions   0 1 2 3 4 5 6 7 8 9 …        round r: bucket of each position
 * bucket      3 0 3 1 0 2 3 1 0 2
 * sorted      1 4 8 | 3 7 5 | 9 0 2 | 6     (bucket, position) order, chunks of c = 3
 *             └ C0 ┘ └ C1 ┘ └ C2 ┘
 * query 9 (chunk C2, bucket 2) attends its bucket's keys in C1 and C2: 5 (and itself only if
 * nothing else is allowed)
 * ```
 *
 * Over the rounds the allowed keys are the union of every round's set, each key counted once
 * (the paper's `log N_ij` correction), in one softmax, with scores `s·q_i·(q_j/‖q_j‖)` (q_i
 * itself not normalized). A query's own position is allowed only when no other key passes every
 * condition (bucket and chunk, causal, padding): causal first, then the self rule. With
 * `keyLength`, only real positions are hashed, sorted and cut into chunks; a query at a padding
 * position has no allowed key and outputs zeros.
 *
 * On webgpu the whole call stays on the device: hashing (matMuls over chunks of rotations and a
 * running argmax), the sort (`tf.topk`) and its inverse (a scatter), then per round one fused
 * flash call over the permuted sequence with a chunk layout (sorted query chunk C visits key
 * chunks C − 1, C) and one element rule reading the rounds' bucket and chunk tables on the
 * device; the rounds' partial rows are merged by log-sum-exp back at the original positions.
 * Elsewhere the composite computes the same rounds with `[n/c, c, 2c]` chunk scores. Memory is
 * O(n·c·nh) on both paths (never an n×n or n×buckets tensor).
 *
 * The rotations are fixed (never trained): seeded, one `[nh, d, nb/2]` set per (d, nb) the
 * instance meets, or given as `rotations` (which fixes d and nb).
 *
 * Paper: Kitaev, Kaiser, Levskaya, "Reformer: The Efficient Transformer", ICLR 2020,
 * https://arxiv.org/abs/2001.04451 .
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkHostBudget } from '../../core/budget.js';
import { forwardOnlyKernel, resolveImplementation } from '../../core/dispatch.js';
import { constantOf } from '../../core/grad.js';
import { AttentionError, show } from '../../core/errors.js';
import { Lifetime } from '../../core/lifecycle.js';
import { DEFAULT_SEED, SeededRandom } from '../../core/rng.js';
import type { ApplyOptions, Attention, Complexity, Dims, Problem } from '../../core/types.js';
import { checkBaseConfig, checkInt, problemDims, problemPath, validateCall } from '../../core/validate.js';
import { bucketingBytes, hashBuckets, realPositions, sortBuckets } from '../../../kernels/flash/lsh_bucket.js';
import { padCopyBytes, planningLimits, DISPATCH_OVERHEAD_BYTES } from '../../../kernels/shared/limits.js';
import { planFor } from '../../../kernels/flash/kernel.js';
import { chunkLayout, foldedDims, lshComposite, lshKernel, planLsh, type LshOptions } from '../../../kernels/flash/lsh.js';
import { meta } from './lsh.meta.js';

export { meta };

/** Config of {@link lshAttention}. */
export interface LshConfig {
  /** Chunk length c of the sorted order. Default 64. */
  bucketSize?: number;
  /** Hash rounds nh. Default 2 (or the rotations' first dimension). */
  hashes?: number;
  /** Buckets nb (even). Default 2·ceil(m/c) (or twice the rotations' last dimension). */
  buckets?: number;
  /** Causal: key j allowed only if j <= i. Default false. */
  causal?: boolean;
  /** Explicit rotations `[nh, d, nb/2]` (fixes d and nb). */
  rotations?: tf.Tensor3D | number[][][];
  /** Seed of the rotations (standard normal entries). Default: the catalog's fixed seed. */
  seed?: number;
  /** Score scale. Default `1 / sqrt(d)`. */
  scale?: number;
}

/** The resolved config. */
export interface ResolvedLshConfig {
  bucketSize: number;
  hashes: number;
  /** Null: 2·ceil(m/c) for each m. */
  buckets: number | null;
  causal: boolean;
  seed: number;
  scale?: number;
  /** `'explicit'` when rotations were given, else `'seeded'`. */
  rotations: 'explicit' | 'seeded';
}

/** The default bucket count for m keys and chunk c: 2·ceil(m/c) (even). */
export const defaultBuckets = (m: number, c: number) => 2 * Math.ceil(m / c);

/**
 * The seeded rotations `[nh, d, nb/2]` row-major, standard normal entries drawn in that order from
 * the catalog's generator.
 */
export function lshRotations(hashes: number, d: number, buckets: number, seed: number): Float32Array {
  return new SeededRandom(seed).normals(hashes * d * (buckets / 2));
}

/** Largest keys · rounds the fused path handles: its tables are read as float32 (exact to 2^24). */
const MAX_TABLE = 1 << 24;

/** LSH attention; see the module comment. */
export class LshAttention implements Attention<ResolvedLshConfig> {
  readonly id = meta.id;
  readonly family = meta.family;
  readonly complexity: Complexity = meta.complexity;
  private readonly lifetime = new Lifetime();
  /** Seeded rotations per `${d}x${nb}`, on the host (uploaded inside each call, so a call leaves no tensor behind). */
  private readonly seeded = new Map<string, Float32Array>();

  constructor(
    readonly config: Readonly<ResolvedLshConfig>,
    private explicit: tf.Tensor3D | null,
  ) {}

  private bucketsFor(m: number): number {
    return this.config.buckets ?? defaultBuckets(m, this.config.bucketSize);
  }

  /** Checks what the rotations fix (d, nb) against a problem; throws AttentionError. */
  private checkDims(dims: Dims): void {
    if (this.explicit) {
      const [, d] = this.explicit.shape;
      if (dims.d !== d) throw new AttentionError('q', `head dim d = ${d} (the rotations' second dimension)`, `d = ${dims.d}`);
    }
    if (dims.kvHeads !== dims.heads) {
      throw new AttentionError('k', `${dims.heads} heads, as q (LSH shares queries and keys)`, `${dims.kvHeads} kv heads`);
    }
    const rows = dims.batch * dims.heads;
    if (this.config.hashes * rows * dims.n >= MAX_TABLE) {
      throw new AttentionError('q', `hashes · batch · heads · n < 2^24 (the bucket tables are read as float32)`, `${this.config.hashes * rows * dims.n}`, 'Split the batch or heads across calls.');
    }
  }

  /** The rotations for head dim d and nb buckets: the explicit tensor, or the seeded ones as a new tensor (inside the caller's tidy). */
  private rotationsFor(d: number, nb: number): tf.Tensor3D {
    if (this.explicit) return this.explicit;
    const key = `${d}x${nb}`;
    const { hashes, seed } = this.config;
    let host = this.seeded.get(key);
    if (!host) {
      host = lshRotations(hashes, d, nb, seed);
      this.seeded.set(key, host);
    }
    return tf.tensor3d(host, [hashes, d, nb / 2], 'float32');
  }

  private options(dims: Dims, strategy?: ApplyOptions['kernelStrategy']): LshOptions {
    const { bucketSize, hashes, causal } = this.config;
    return { bucketSize, hashes, buckets: this.bucketsFor(dims.m), causal, scale: this.config.scale ?? 1 / Math.sqrt(dims.d), strategy };
  }

  /**
   * LSH attention of `q [batch, heads, n, d]` with itself as keys (`k` must be `q`) and values
   * `v [batch, heads, n, dv]`.
   *
   * @returns `[batch, heads, n, dv]`
   * @throws AttentionError when `k` is not `q`, on any invalid input, before dispatch.
   */
  apply(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, options?: ApplyOptions): tf.Tensor4D {
    this.lifetime.check(this.id);
    const { dims, implementation, keyLength, kernelStrategy } = validateCall(q, k, v, options);
    if (k !== q) throw new AttentionError('k', 'the same tensor as q (Reformer shares queries and keys)', 'a different tensor');
    this.checkDims(dims);
    const o = this.options(dims, kernelStrategy);
    // The fused rounds return partial rows (no gradient): while gradients are recorded, the composite.
    const path = resolveImplementation(forwardOnlyKernel(implementation));
    const planned = path === 'kernel' ? planLsh(dims, o) : null;
    if (!planned) {
      const { batch: b, heads: hh, n: nn, d: dd, dv: ddv } = dims;
      checkHostBudget('the lsh composite', this.memoryBytes({ batch: b, heads: hh, n: nn, d: dd, dv: ddv, implementation: 'composite', keyLength: keyLength !== null }));
    }
    const { batch, heads, n, d, dv } = dims;
    const rows = batch * heads;
    return tf.tidy(() => {
      const rot = this.rotationsFor(d, o.buckets);
      const realB = realPositions(batch, n, keyLength);
      const real = realB ? (tf.reshape(tf.tile(realB, [1, heads, 1]), [rows, n]) as tf.Tensor2D) : null;
      const q3 = tf.reshape(q, [rows, n, d]) as tf.Tensor3D;
      // Keys: q_j/‖q_j‖ (a zero query gives a zero key). Padding rows are selected out first (NaN/Inf never spread).
      const qSafe = real ? tf.where(tf.expandDims(real, 2), q3, tf.zerosLike(q3)) : q3;
      // (The square root only of nonzero rows, so that a zero row's gradient is 0, not 0·∞.)
      const sq = tf.sum(tf.square(qSafe), 2, true);
      const nonzero = constantOf([sq], (x) => tf.greater(x, 0));
      const norm = tf.sqrt(tf.where(nonzero, sq, tf.onesLike(sq)));
      const qn = tf.reshape(tf.where(nonzero, tf.div(qSafe, norm), tf.zerosLike(qSafe)), [batch, heads, n, d]) as tf.Tensor4D;
      // Hashes and the sort are constants of the gradient (indices only select).
      const bk = constantOf([qSafe], (x) => sortBuckets(hashBuckets(x as tf.Tensor3D, rot, real), o.buckets));
      const qs = tf.reshape(qSafe, [batch, heads, n, d]) as tf.Tensor4D;
      const { out, any } = planned ? lshKernel(qs, qn, v, dims, o, bk, planned) : lshComposite(qs, qn, v, dims, o, bk);
      // A real query left with no other key attends itself alone: its own value.
      const v3 = tf.reshape(v, [rows, n, dv]);
      const self = real ? tf.where(tf.expandDims(real, 2), v3, tf.zerosLike(v3)) : v3;
      const anyB = tf.reshape(any, [batch, heads, n, 1]);
      return tf.where(anyB, out, tf.reshape(self, [batch, heads, n, dv])) as tf.Tensor4D;
    });
  }

  /**
   * Upper bound of the intermediate bytes of `apply`: the normalized keys, the bucketing
   * (`kernels/flash/lsh_bucket.ts`), and per round either the permuted q, k, v with the kernel's
   * partial rows (fused) or the chunk scores and masks `[n, 2c]` (composite); O(n·c·nh).
   */
  memoryBytes(problem: Problem): number {
    this.lifetime.check(this.id);
    const dims = problemDims(problem);
    this.checkDims(dims);
    const path = problemPath(problem);
    const { batch, heads, n, d, dv } = dims;
    const rows = batch * heads;
    const nb = this.bucketsFor(dims.m);
    const { hashes: nh, bucketSize: c } = this.config;
    const f = 4;
    // q copies, norms, normalized keys, real masks, the self fallback and the output select.
    // Seeded rotations are uploaded per call ([nh, d, nb/2]).
    const rotations = this.explicit ? 0 : nh * d * (nb / 2) * f;
    const common = rows * n * f * (4 * d + 3 * dv + 10) + bucketingBytes(rows, n, d, nh, nb) + rotations;
    let rounds: number;
    if (path === 'kernel') {
      const fd = foldedDims(dims);
      const plan = planFor(fd, { layout: chunkLayout(n, c), rule: null, rowsOnly: 'lsh' }, planningLimits());
      const width = plan.dvPad + 4;
      const partial = rows * plan.splits * n * width * f;
      const tables = 2 * 3 * nh * rows * n * f + nh * rows * n * f;
      // Per round: permuted q, k, v (and the kernel's pad copies), the params buffer, the partial
      // rows, transposed, gathered back and transposed again; all rounds concatenated and merged.
      const perRound = rows * n * f * (2 * d + dv) + padCopyBytes(fd, plan.dPad, plan.dvPad) + tables + 4 * partial;
      rounds = nh * perRound + nh * partial + rows * n * f * (2 * plan.dvPad + 8) + (nh + 2) * 4 * DISPATCH_OVERHEAD_BYTES;
    } else {
      const padded = Math.ceil(n / c) * c;
      const pair = rows * padded * 2 * c * f;
      // Per round: the masks and scores [n, 2c] (about 20 such tensors, 6 more per earlier round),
      // the chunked q, k, v with their shifted copies, the lookups, and the round's statistics.
      const perRound = (r: number) => pair * (20 + 6 * r) + rows * padded * f * (2 * d + 5 * (d + dv) + 70);
      rounds = 0;
      for (let r = 0; r < nh; r++) rounds = Math.max(rounds, perRound(r));
      rounds += nh * rows * n * f * (dv + 4) + rows * n * f * (2 * dv + 12);
    }
    return Math.ceil((common + rounds) * 1.2) + 4096;
  }

  /** Frees the rotations and ends the variant (later calls throw AttentionError('this')); again, a no-op. */
  dispose(): void {
    if (!this.lifetime.end()) return;
    this.explicit?.dispose();
    this.explicit = null;
    this.seeded.clear();
  }
}

/** Validates explicit rotations `[nh, d, nb/2]`; dispatches nothing. */
function checkRotations(value: unknown): { shape: [number, number, number]; source: tf.Tensor3D | number[][][] } {
  const name = 'config.rotations';
  if (value instanceof tf.Tensor) {
    if (value.isDisposed) throw new AttentionError(name, 'a live tensor', 'a disposed tensor');
    if (value.rank !== 3 || value.shape.some((s: number) => s === 0)) throw new AttentionError(name, 'a tensor of shape [hashes, d, buckets/2]', `shape ${show(value.shape)}`);
    if (value.dtype !== 'float32') throw new AttentionError(name, "dtype 'float32'", show(value.dtype));
    return { shape: value.shape as [number, number, number], source: value as tf.Tensor3D };
  }
  const bad = () => new AttentionError(name, 'a tf.Tensor3D or a nested [hashes][d][buckets/2] array of finite numbers', show(typeof value));
  if (!Array.isArray(value) || value.length === 0) throw bad();
  const d = Array.isArray(value[0]) ? (value[0] as unknown[]).length : 0;
  const w = d > 0 && Array.isArray((value[0] as unknown[])[0]) ? ((value[0] as unknown[][])[0] as unknown[]).length : 0;
  if (d === 0 || w === 0) throw bad();
  for (const plane of value) {
    if (!Array.isArray(plane) || plane.length !== d) throw bad();
    for (const row of plane) if (!Array.isArray(row) || row.length !== w || !row.every((x) => typeof x === 'number' && Number.isFinite(x))) throw bad();
  }
  return { shape: [value.length, d, w], source: value as number[][][] };
}

/**
 * Builds Reformer LSH attention (shared queries and keys: call `apply(q, q, v)`).
 *
 * @param config - `bucketSize` c (64), `hashes` (2), `buckets` (even; 2·ceil(m/c)), `causal`
 * (false), `rotations` `[hashes, d, buckets/2]` or `seed`, `scale` (1/√d).
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import { lshAttention } from 'attention-catalog/lsh';
 * const attn = lshAttention({ bucketSize: 64, hashes: 2, causal: true });
 * const q = tf.randomNormal([1, 4, 4096, 64]) as tf.Tensor4D;
 * const v = tf.randomNormal([1, 4, 4096, 64]) as tf.Tensor4D;
 * const out = attn.apply(q, q, v); // keys are the normalized queries
 * attn.dispose();
 * ```
 */
export function lshAttention(config: LshConfig = {}): LshAttention {
  const { causal, scale } = checkBaseConfig(meta.id, config, ['bucketSize', 'hashes', 'buckets', 'rotations', 'seed']);
  const bucketSize = config.bucketSize === undefined ? 64 : checkInt('config.bucketSize', config.bucketSize, 1);
  if (config.seed !== undefined && config.rotations !== undefined) throw new AttentionError('config.rotations', 'either seed or rotations, not both', 'both');
  const seed = config.seed === undefined ? DEFAULT_SEED : checkInt('config.seed', config.seed, 0);
  let hashes = config.hashes === undefined ? undefined : checkInt('config.hashes', config.hashes, 1, 16);
  let buckets = config.buckets === undefined ? null : checkInt('config.buckets', config.buckets, 2);
  if (buckets !== null && buckets % 2 !== 0) throw new AttentionError('config.buckets', 'an even number of buckets (a rotation gives two: x·R and −x·R)', `${buckets}`);
  let explicit: tf.Tensor3D | null = null;
  if (config.rotations !== undefined) {
    const r = checkRotations(config.rotations);
    const [nh, , half] = r.shape;
    if (hashes !== undefined && hashes !== nh) throw new AttentionError('config.hashes', `the rotations' first dimension ${nh}`, `${hashes}`);
    if (buckets !== null && buckets !== 2 * half) throw new AttentionError('config.buckets', `twice the rotations' last dimension, ${2 * half}`, `${buckets}`);
    hashes = nh;
    buckets = 2 * half;
    explicit = r.source instanceof tf.Tensor ? (tf.clone(r.source) as tf.Tensor3D) : (tf.tidy(() => tf.add(tf.tensor3d(r.source as number[][][], r.shape, 'float32'), 0)) as tf.Tensor3D);
  }
  const cfg: ResolvedLshConfig = {
    bucketSize,
    hashes: hashes ?? 2,
    buckets,
    causal,
    seed,
    rotations: explicit ? 'explicit' : 'seeded',
  };
  if (scale !== undefined) cfg.scale = scale;
  return new LshAttention(Object.freeze(cfg), explicit);
}
