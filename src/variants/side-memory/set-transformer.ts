/**
 * `set-transformer`: the attention core of the Set Transformer's induced set attention block
 * (ISAB; Lee et al., "Set Transformer: A Framework for Attention-based Permutation-Invariant
 * Neural Networks"). Every query head h owns mi learned inducing points I_h; they first attend
 * the keys, and the queries then attend only what the inducing points gathered:
 *
 * ```text
 * H_h = attn(I_h, K, V)   = softmax(s · I_h · Kᵀ over the real keys) · V     [mi, d]  (kv head of h)
 * o   = attn(q_h, H_h, H_h) = softmax(s · q_h · H_hᵀ) · H_h                  [n, d]
 *
 *   keys/values (m) ──► I_h (mi inducing points) ──► H_h (mi rows) ──► queries (n)
 *     k_0 … k_{m−1}        attend all real keys        keys = values      attend the mi rows
 * ```
 *
 * This is the ISAB's pair of attentions only: the multihead block's linear projections,
 * residuals, layer norms and feed-forward layers (MAB(X, Y) = LN(H + rFF(H)), H = LN(X +
 * Multihead(X, Y, Y))) belong to the model around it. s = `scale` ?? 1/√d for both attentions.
 *
 * Conventions, decided here:
 * - **Shapes.** The induced rows H_h serve as keys and as values of the second attention, so
 *   dv must equal d (else AttentionError('v')). `inducing` is `[heads, mi, d]`, indexed by the
 *   query head h; query head h's inducing points attend kv head floor(h / (heads / kvHeads)).
 *   No repeated K/V is built.
 * - **Padding.** Keys at or past keyLength[b] are never attended by the inducing points (the
 *   composite selects them out before any product, so NaN or ±Inf there never propagates). A
 *   batch element with no real key has H = 0 (an inducing point with no allowed key outputs
 *   zeros), and then every query outputs zeros. The mi rows of H are all real: the second
 *   attention has no mask.
 * - **Non-causal.** Every induced row summarizes the whole key set, so there is no causal form:
 *   `causal: true` is an AttentionError.
 * - **Parameters.** `inducing` is given explicitly (tensor or nested array, e.g. trained
 *   points) or drawn from the catalog's seeded generator (then `heads` and `headDim` size it),
 *   entries N(0, 2/(d·(mi + 1))): the variance of the reference implementation's Xavier-uniform
 *   initialization of its (1, mi, d) parameter. It lives in a `tf.Variable` the instance owns
 *   (getter `inducing`); `trainable: true` makes it trainable and lists it in `variables`.
 * - **Training.** Both paths are differentiable: the fused one through the flash kernel's fused
 *   backward, the composite through tfjs's autodiff (masks as selections).
 *
 * Paths:
 * - fused (webgpu): two calls of the flash kernel, nothing read back: the inducing points
 *   (broadcast over the batch) over K, V with the key lengths and grouped kv heads; then q over
 *   H (keys = values, kvHeads = heads). Working set O(mi·d) per (batch, head) plus the kernel's
 *   O(n) split partials and head-dim padding copies.
 * - composite (every backend): the same two attentions from tfjs ops: scores
 *   [batch, kvHeads, group·mi, m] and [batch, heads, n, mi], O((n + m)·mi).
 *
 * Memory O(n·mi) (with m keys O((n + m)·mi)); time O((n + m)·mi·d).
 *
 * Paper: Lee et al., "Set Transformer: A Framework for Attention-based Permutation-Invariant
 * Neural Networks", ICML 2019, https://arxiv.org/abs/1810.00825 .
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { webgpuLimits } from '../../core/backend.js';
import { ownedVariable } from '../../core/variables.js';
import { checkHostBudget } from '../../core/budget.js';
import { resolveImplementation } from '../../core/dispatch.js';
import { Lifetime } from '../../core/lifecycle.js';
import { AttentionError, show } from '../../core/errors.js';
import { DEFAULT_SEED, SeededRandom } from '../../core/rng.js';
import type { ApplyOptions, Attention, Complexity, Dims, Problem } from '../../core/types.js';
import { checkBool, checkConfigKeys, checkInt, checkScale, problemDims, problemPath, validateCall } from '../../core/validate.js';
import { attendDenseBytes, prepareDense } from '../../../kernels/flash/attend.js';
import { matMulBT } from '../../../kernels/shared/matmul.js';
import { DISALLOWED_SCORE } from '../../../kernels/shared/masking.js';
import { whereCopies } from '../../../kernels/shared/finite.js';
import { meta } from './set-transformer.meta.js';

export { meta };

/** Config of {@link setTransformerAttention}. */
export interface SetTransformerConfig {
  /** Inducing points mi per head (an integer >= 1). Default 32 (or the explicit points' second dimension). */
  inducingPoints?: number;
  /** Query heads the inducing points are drawn for. Required unless `inducing` is given. */
  heads?: number;
  /** Head dim d of q and k (the inducing points' last dimension). Required unless `inducing` is given. */
  headDim?: number;
  /** Explicit inducing points `[heads, mi, d]` (tensor or nested array), e.g. trained ones; instead of `seed`. */
  inducing?: tf.Tensor3D | number[][][];
  /** Seed of the inducing points (entries N(0, 2/(d·(mi + 1)))). Default: the catalog's fixed seed. */
  seed?: number;
  /** Whether the inducing points are a trainable variable (listed by `variables`). Default false. */
  trainable?: boolean;
  /** Must be false: the induced rows summarize the whole key set. */
  causal?: boolean;
  /** Score scale of both attentions. Default `1 / sqrt(d)`. */
  scale?: number;
}

/** The resolved config. */
export interface ResolvedSetTransformerConfig {
  inducingPoints: number;
  heads: number;
  headDim: number;
  seed: number;
  trainable: boolean;
  causal: false;
  scale?: number;
  /** `'explicit'` when inducing points were given, else `'seeded'`. */
  inducing: 'explicit' | 'seeded';
}

const F = 4;

/**
 * The seeded inducing points, row-major `[heads, mi, d]` (`out[(h·mi + r)·d + t]` = I_h[r, t]):
 * standard normals from the catalog's generator scaled by sqrt(2/(d·(mi + 1))), the standard
 * deviation of the reference implementation's Xavier-uniform initialization of its (1, mi, d)
 * parameter (fan_in = mi·d, fan_out = d).
 */
export function setTransformerInducing(heads: number, mi: number, d: number, seed: number): Float32Array {
  const vals = new SeededRandom(seed).normals(heads * mi * d);
  const sd = Math.sqrt(2 / (d * (mi + 1)));
  for (let i = 0; i < vals.length; i++) vals[i] *= sd;
  return vals;
}

/** Whether the engine counts a reshape's handle as new bytes (cpu, wasm, tensorflow: 1) or it shares a buffer the backend sees once (webgpu: 0). */
function viewCopies(): number {
  return tf.getBackend() === 'webgpu' ? 0 : 1;
}

/** Set Transformer (ISAB) attention; see the module comment. */
export class SetTransformerAttention implements Attention<ResolvedSetTransformerConfig> {
  readonly id = meta.id;
  readonly family = meta.family;
  readonly complexity: Complexity = meta.complexity;
  /** Disposed or live: every public method checks it first. */
  private readonly lifetime = new Lifetime();
  private points: tf.Variable<tf.Rank.R3> | null;

  constructor(
    readonly config: Readonly<ResolvedSetTransformerConfig>,
    points: tf.Variable<tf.Rank.R3>,
  ) {
    this.points = points;
  }

  /** The inducing points `[heads, mi, d]` (a `tf.Variable` owned by the variant; trainable with `trainable: true`). */
  get inducing(): tf.Variable<tf.Rank.R3> {
    this.lifetime.check(this.id);
    return this.points!;
  }

  /** The variant's trainable variables: `[inducing]` with `trainable: true`, else none. */
  get variables(): tf.Variable[] {
    this.lifetime.check(this.id);
    return this.config.trainable ? [this.points!] : [];
  }

  private checkShape(dims: Dims): void {
    const { heads, headDim } = this.config;
    if (dims.heads !== heads) {
      throw new AttentionError('q', `heads = ${heads} (the inducing points' first dimension: one set per query head)`, `heads = ${dims.heads}`);
    }
    if (dims.d !== headDim) {
      throw new AttentionError('q', `head dim d = ${headDim} (the inducing points' last dimension)`, `d = ${dims.d}`);
    }
    if (dims.dv !== dims.d) {
      throw new AttentionError('v', `value head dim dv = d = ${dims.d} (the induced rows H serve as keys and as values)`, `dv = ${dims.dv}`);
    }
  }

  /** Dims of the two attentions: inducing points over the keys, then the queries over the induced rows. */
  private stageDims(dims: Dims): { first: Dims; second: Dims } {
    const mi = this.config.inducingPoints;
    const { batch, heads, kvHeads, group, n, m, d } = dims;
    return {
      first: { batch, heads, kvHeads, group, n: mi, m, d, dv: d },
      second: { batch, heads, kvHeads: heads, group: 1, n, m: mi, d, dv: d },
    };
  }

  /**
   * Attention of `q [batch, heads, n, d]` over `k [batch, kvHeads, m, d]`, `v [batch, kvHeads, m, d]`
   * through the mi inducing points of each query head.
   *
   * @returns `[batch, heads, n, d]`
   * @throws AttentionError on any invalid input (heads or d other than the inducing points', dv != d), before dispatch.
   */
  apply(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, options?: ApplyOptions): tf.Tensor4D {
    this.lifetime.check(this.id);
    const { dims, implementation, keyLength, kernelStrategy } = validateCall(q, k, v, options);
    this.checkShape(dims);
    // Both stages are flash calls: differentiable through the fused backward.
    const path = resolveImplementation(implementation);
    const scale = this.config.scale ?? 1 / Math.sqrt(dims.d);
    const { first, second } = this.stageDims(dims);
    if (path === 'kernel') {
      // Both calls are planned (every device limit checked) before the first dispatch.
      const runFirst = prepareDense(first, { causal: false, scale, keyLength, strategy: kernelStrategy }, 'kernel');
      const runSecond = prepareDense(second, { causal: false, scale, keyLength: null, strategy: kernelStrategy }, 'kernel');
      const points = this.inducingFor(dims.batch);
      let induced: tf.Tensor4D;
      try {
        induced = runFirst(points, k, v);
      } finally {
        points.dispose();
      }
      try {
        return runSecond(q, induced, induced);
      } finally {
        induced.dispose();
      }
    }
    this.checkCompositeFits(dims);
    checkHostBudget('the set-transformer composite', this.compositeBytes(dims, keyLength !== null));
    return this.composite(q, k, v, dims, keyLength, scale);
  }

  /** The inducing points as queries `[batch, heads, mi, d]` (a view of the variable when batch is 1). */
  private inducingFor(batch: number): tf.Tensor4D {
    const { heads, inducingPoints: mi, headDim: d } = this.config;
    return tf.tidy(() => {
      const one = tf.reshape(this.points!, [1, heads, mi, d]) as tf.Tensor4D;
      return batch === 1 ? one : (tf.broadcastTo(one, [batch, heads, mi, d]) as tf.Tensor4D);
    });
  }

  /** The composite's largest tensors, [batch, heads, mi, m] and [batch, heads, n, mi] scores, must fit the device's binding limit (webgpu only). */
  private checkCompositeFits(dims: Dims): void {
    const limits = webgpuLimits();
    if (!limits) return;
    const mi = this.config.inducingPoints;
    const bytes = dims.batch * dims.heads * mi * Math.max(dims.m, dims.n) * F;
    const max = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
    if (bytes > max) {
      throw new AttentionError('options.implementation', `a composite whose score matrices fit the device's ${max}-byte binding limit`, `'composite' needing ${bytes} bytes`, "Use implementation 'auto' or 'kernel', or split the batch or heads across calls.");
    }
  }

  /**
   * Both attentions from tfjs ops, differentiable by tfjs's autodiff. Padding keys and values
   * are selected out (zero rows) before any product and their scores get DISALLOWED_SCORE, so
   * they take exactly zero weight; a batch element with no real key attends zero rows and gets
   * H = 0.
   */
  private composite(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, dims: Dims, keyLength: number[] | tf.Tensor1D | null, scale: number): tf.Tensor4D {
    const { batch: B, heads: H, kvHeads: KH, group: G, m, d } = dims;
    const mi = this.config.inducingPoints;
    return tf.tidy(() => {
      const valid = validity(dims, keyLength); // bool [B, 1, 1, m] or null
      let kz: tf.Tensor4D = k;
      let vz: tf.Tensor4D = v;
      let bias: tf.Tensor | null = null;
      if (valid) {
        const rows = tf.reshape(valid, [B, 1, m, 1]);
        kz = tf.where(rows, k, tf.zerosLike(k)) as tf.Tensor4D;
        vz = tf.where(rows, v, tf.zerosLike(v)) as tf.Tensor4D;
        bias = tf.where(valid, tf.zeros(valid.shape), tf.fill(valid.shape, DISALLOWED_SCORE));
      }
      // Query head h = kvh·G + g: its inducing points are rows g·mi … g·mi + mi − 1 of kv head kvh.
      const pts = tf.broadcastTo(tf.reshape(tf.mul(this.points!, scale), [1, KH, G * mi, d]), [B, KH, G * mi, d]) as tf.Tensor4D;
      let s1: tf.Tensor = matMulBT(pts, kz); // [B, KH, G·mi, m]
      if (bias) s1 = tf.add(s1, bias);
      const induced = tf.reshape(tf.matMul(tf.softmax(s1) as tf.Tensor4D, vz), [B, H, mi, d]) as tf.Tensor4D;
      const s2 = matMulBT(tf.mul(q, scale) as tf.Tensor4D, induced); // [B, H, n, mi]
      return tf.matMul(tf.softmax(s2) as tf.Tensor4D, induced) as tf.Tensor4D;
    });
  }

  /**
   * The composite's bound. Inside its tidy every intermediate stays alive to the end (and on
   * webgpu a released buffer returns only at the next submission), so it is the sum of: the
   * small mask tensors; the selected K, V copies (zerosLike, the selection and its broadcast
   * handles); the scaled, reshaped and broadcast inducing points; per attention the scores, the
   * biased scores (with keyLength), the softmax (its output, and two temporaries for a backend
   * that composes it from kernels) and the product; the scaled queries; reshaped views (cpu,
   * wasm); operand copies a backend's matMul may make.
   */
  private compositeBytes(dims: Dims, keyLength: boolean): number {
    const { batch: B, heads: H, kvHeads: KH, n, m, d } = dims;
    const mi = this.config.inducingPoints;
    const views = viewCopies();
    const masked = keyLength ? (2 + whereCopies()) * B * KH * m * 2 * d + (8 + whereCopies()) * B * m + 4 * B + 2 * m : 0;
    const points = H * mi * d * (2 + views) + B * H * mi * d;
    const e1 = B * H * mi * m;
    const e2 = B * H * n * mi;
    const first = (keyLength ? 5 : 4) * e1 + B * H * mi * d * (1 + views);
    const second = B * H * n * d + 4 * e2;
    const operands = B * KH * m * 2 * d + 2 * B * H * mi * d + B * H * n * d;
    const bytes = (masked + points + first + second + operands) * F + 24 * 256;
    return Math.ceil(bytes * 1.1) + 4096;
  }

  /** The fused path's bound: the broadcast inducing points, the first call (O(mi) partials), H, the second call (O(n) partials). */
  private kernelBytes(dims: Dims): number {
    const { first, second } = this.stageDims(dims);
    const { batch: B, heads: H, d } = dims;
    const mi = this.config.inducingPoints;
    const broadcast = B > 1 ? B * H * mi * d * F : 0;
    const induced = B * H * mi * d * F;
    const bytes = broadcast + attendDenseBytes(first, 'kernel', false) + induced + attendDenseBytes(second, 'kernel', false);
    return Math.ceil(bytes * 1.1) + 4096;
  }

  /**
   * Upper bound of the intermediate bytes of `apply`: O(mi·d) induced rows plus the flash
   * kernel's O(n) partials and padding copies (fused), or O((n + m)·mi) scores (composite).
   */
  memoryBytes(problem: Problem): number {
    this.lifetime.check(this.id);
    const dims = problemDims(problem);
    this.checkShape(dims);
    const path = problemPath(problem);
    return path === 'kernel' ? this.kernelBytes(dims) : this.compositeBytes(dims, !!problem.keyLength);
  }

  /** Frees the inducing points and ends the variant (every later call throws AttentionError('this')); again, a no-op. */
  dispose(): void {
    if (!this.lifetime.end()) return;
    this.points?.dispose();
    this.points = null;
  }
}

/** Keys below each batch element's length: bool `[batch, 1, 1, m]`, or null when every key is real. */
function validity(dims: Dims, keyLength: number[] | tf.Tensor1D | null): tf.Tensor | null {
  const { batch, m } = dims;
  if (keyLength === null || (!(keyLength instanceof tf.Tensor) && keyLength.every((l) => l >= m))) return null;
  const kl = tf.reshape(keyLength instanceof tf.Tensor ? keyLength : tf.tensor1d(keyLength, 'int32'), [batch, 1, 1, 1]);
  return tf.less(tf.reshape(tf.range(0, m, 1, 'int32'), [1, 1, 1, m]), kl);
}

/** An explicit `[heads, mi, d]` parameter, validated (nothing dispatched yet). */
interface PointsArg {
  shape: [number, number, number];
  source: tf.Tensor3D | number[][][];
}

function checkInducing(value: unknown): PointsArg {
  const name = 'config.inducing';
  const what = '[heads, inducingPoints, headDim]';
  if (value instanceof tf.Tensor) {
    if (value.isDisposed) throw new AttentionError(name, 'a live tensor', 'a disposed tensor');
    if (value.rank !== 3 || value.shape.some((s: number) => s === 0)) throw new AttentionError(name, `a tensor of shape ${what}`, `shape ${show(value.shape)}`);
    if (value.dtype !== 'float32') throw new AttentionError(name, "dtype 'float32'", show(value.dtype));
    return { shape: [value.shape[0], value.shape[1], value.shape[2]], source: value as tf.Tensor3D };
  }
  const isArr = (x: unknown): x is unknown[] => Array.isArray(x) && x.length > 0;
  if (!isArr(value) || !value.every(isArr) || !(value as unknown[][]).every((h) => h.every(isArr))) {
    throw new AttentionError(name, `a tf.Tensor3D or a nested number array ${what}`, Array.isArray(value) ? 'a ragged or empty array' : show(typeof value));
  }
  const arr = value as unknown[][][];
  const mi = arr[0].length;
  const d = arr[0][0].length;
  const ok = arr.every((h) => h.length === mi && h.every((r) => r.length === d && r.every((x) => typeof x === 'number' && Number.isFinite(x))));
  if (!ok) throw new AttentionError(name, `a rectangular ${what} array of finite numbers`, 'rows of other lengths or non-finite entries');
  return { shape: [arr.length, mi, d], source: value as number[][][] };
}

/**
 * Builds Set Transformer (ISAB) attention.
 *
 * @param config - `inducingPoints` mi (32), `inducing` `[heads, mi, d]` or `heads` + `headDim`
 * (+ `seed`), `trainable` (false), `scale` (1/√d). `causal: true` throws.
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import { setTransformerAttention } from 'attention-catalog/set-transformer';
 * const attn = setTransformerAttention({ inducingPoints: 32, heads: 8, headDim: 64 });
 * const q = tf.randomNormal([1, 8, 4096, 64]) as tf.Tensor4D;
 * const out = attn.apply(q, q, q); // 4096 queries attend 32 induced rows per head
 * attn.dispose();
 * ```
 */
export function setTransformerAttention(config: SetTransformerConfig): SetTransformerAttention {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new AttentionError('config', 'an object', show(config));
  checkConfigKeys(meta.id, config, ['inducingPoints', 'heads', 'headDim', 'inducing', 'seed', 'trainable', 'causal', 'scale']);
  if (config.causal !== undefined && checkBool('config.causal', config.causal)) {
    throw new AttentionError('config.causal', 'false (every induced row summarizes the whole key set, so Set Transformer attention has no causal form)', 'true');
  }
  const trainable = config.trainable === undefined ? false : checkBool('config.trainable', config.trainable);
  const scale = checkScale(config.scale);
  if (config.seed !== undefined && config.inducing !== undefined) {
    throw new AttentionError('config.inducing', 'either seed or inducing, not both', 'both');
  }
  const seed = config.seed === undefined ? DEFAULT_SEED : checkInt('config.seed', config.seed, 0);
  const miGiven = config.inducingPoints === undefined ? undefined : checkInt('config.inducingPoints', config.inducingPoints, 1);
  const hGiven = config.heads === undefined ? undefined : checkInt('config.heads', config.heads, 1);
  const dGiven = config.headDim === undefined ? undefined : checkInt('config.headDim', config.headDim, 1);
  let init: tf.Tensor3D;
  let heads: number;
  let mi: number;
  let d: number;
  if (config.inducing !== undefined) {
    const arg = checkInducing(config.inducing);
    [heads, mi, d] = arg.shape;
    const problem =
      (hGiven !== undefined && hGiven !== heads && { arg: 'config.heads', want: `the inducing points' first dimension ${heads}`, got: `${hGiven}` }) ||
      (miGiven !== undefined && miGiven !== mi && { arg: 'config.inducingPoints', want: `the inducing points' second dimension ${mi}`, got: `${miGiven}` }) ||
      (dGiven !== undefined && dGiven !== d && { arg: 'config.headDim', want: `the inducing points' last dimension ${d}`, got: `${dGiven}` });
    if (problem) throw new AttentionError(problem.arg, problem.want, problem.got);
    // Everything is checked: only now are the points copied (onto the active backend's device).
    const src = arg.source;
    init = src instanceof tf.Tensor ? (tf.clone(src) as tf.Tensor3D) : (tf.tidy(() => tf.add(tf.tensor3d(src, arg.shape, 'float32'), 0)) as tf.Tensor3D);
  } else {
    if (hGiven === undefined) throw new AttentionError('config.heads', 'the number of query heads (an integer >= 1), or explicit inducing points', 'undefined');
    if (dGiven === undefined) throw new AttentionError('config.headDim', 'the head dim d of q and k (an integer >= 1), or explicit inducing points', 'undefined');
    heads = hGiven;
    d = dGiven;
    mi = miGiven ?? 32;
    const host = setTransformerInducing(heads, mi, d, seed);
    // Through one op, so that the points live on the active backend's device from the start.
    init = tf.tidy(() => tf.add(tf.tensor3d(host, [heads, mi, d], 'float32'), 0)) as tf.Tensor3D;
  }
  const points = ownedVariable(init as tf.Tensor3D, trainable);
  const cfg: ResolvedSetTransformerConfig = {
    inducingPoints: mi,
    heads,
    headDim: d,
    seed,
    trainable,
    causal: false,
    inducing: config.inducing !== undefined ? 'explicit' : 'seeded',
  };
  if (scale !== undefined) cfg.scale = scale;
  return new SetTransformerAttention(Object.freeze(cfg), points);
}
