/**
 * `linformer`: keys and values are projected along the sequence to a fixed length k, then
 * attended densely (Wang et al., "Linformer: Self-Attention with Linear Complexity"):
 *
 * ```text
 * K' = E[:, :m] · K      V' = F[:, :m] · V          (E, F: [k, maxLength]; K' , V': k rows)
 * o_i = Σ_c softmax_c(s · q_i · K'_c) · V'_c         over all k projected keys
 * ```
 *
 * Padding keys (at or past `keyLength[b]`) are never projected: only the real columns of E and F
 * take part (padding rows of K and V are zeroed before the projection), and the k projected keys
 * are then all real. `shareKV` uses one projection for both (F = E). E and F come from the
 * seeded generator (entries N(0, 1/(maxLength + k)), the reference implementation's initial
 * scale) or are given as `projections`, e.g. trained ones. Sequences longer than
 * `maxLength` throw. Non-causal only: a projection mixes all positions, so `causal: true` is an
 * AttentionError.
 *
 * The projected K', V' are attended by the fused dense kernel on webgpu (O(n) memory for the
 * attention, O(k·m) for the slices of E and F), by the dense composite elsewhere (O(n·k)).
 *
 * Paper: Wang et al., "Linformer: Self-Attention with Linear Complexity", 2020,
 * https://arxiv.org/abs/2006.04768 .
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { webgpuLimits } from '../../core/backend.js';
import { ownedVariable } from '../../core/variables.js';
import { checkHostBudget } from '../../core/budget.js';
import { Lifetime } from '../../core/lifecycle.js';
import { resolveImplementation } from '../../core/dispatch.js';
import { AttentionError, show } from '../../core/errors.js';
import { DEFAULT_SEED, SeededRandom } from '../../core/rng.js';
import type { ApplyOptions, Attention, Complexity, Dims, Problem } from '../../core/types.js';
import { checkBool, checkConfigKeys, checkInt, checkMatrix, checkScale, ownMatrix, validateCall } from '../../core/validate.js';
import { attendDense, attendDenseBytes } from '../../../kernels/flash/attend.js';
import { activeKernelLimits } from '../../../kernels/flash/kernel.js';
import { planFlash } from '../../../kernels/flash/plan.js';
import { keyValidity } from '../../../kernels/linear/composite.js';
import { problemDims, problemPath } from '../../core/validate.js';
import { meta } from './linformer.meta.js';

export { meta };

/** Config of {@link linformerAttention}. */
export interface LinformerConfig {
  /** Projected length k. Default 256 (or the projections' first dimension). */
  k?: number;
  /** Longest sequence the projections cover. Required unless `projections` are given. */
  maxLength?: number;
  /** One projection for keys and values (F = E). Default `false`. */
  shareKV?: boolean;
  /** Explicit projections `{ e, f }`, each `[k, maxLength]` (`f` omitted with `shareKV`). */
  projections?: { e: tf.Tensor2D | number[][]; f?: tf.Tensor2D | number[][] };
  /** Seed of the projections (entries N(0, 1/(maxLength + k))). Default: the catalog's fixed seed. */
  seed?: number;
  /** Must be false: Linformer is non-causal. */
  causal?: boolean;
  /** Score scale. Default `1 / sqrt(d)`. */
  scale?: number;
  /** Whether E and F are trainable variables (listed by `variables`). Default false. */
  trainable?: boolean;
}

/** The resolved config. */
export interface ResolvedLinformerConfig {
  k: number;
  maxLength: number;
  shareKV: boolean;
  seed: number;
  causal: false;
  scale?: number;
  trainable: boolean;
  /** `'explicit'` when projections were given, else `'seeded'`. */
  projections: 'explicit' | 'seeded';
}

/** The dense composite's [batch, heads, n, k] scores must fit the device's binding limit (webgpu only). */
function checkDenseCompositeFits(dims: Dims): void {
  const limits = webgpuLimits();
  if (!limits) return;
  const bytes = dims.batch * dims.heads * dims.n * dims.m * 4;
  const max = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  if (bytes > max) {
    throw new AttentionError('options.implementation', `a composite whose [batch, heads, n, k] scores fit the device's ${max}-byte binding limit`, `'composite' needing ${bytes} bytes`, "Use implementation 'auto' or 'kernel'.");
  }
}

/**
 * The seeded projections, row-major `[k, maxLength]`: E, then F (null with shareKV), drawn in
 * that order from the catalog's generator, each entry N(0, 1/(maxLength + k)) — the variance of
 * the reference implementation's initialization (fairseq's Linformer: Xavier-uniform with gain
 * 1/√2), which keeps a projected key or value on the scale of one input row.
 */
export function linformerProjections(k: number, maxLength: number, seed: number, shareKV: boolean): { e: Float32Array; f: Float32Array | null } {
  const rng = new SeededRandom(seed);
  const draw = () => {
    const vals = rng.normals(k * maxLength);
    const sd = 1 / Math.sqrt(maxLength + k);
    for (let i = 0; i < vals.length; i++) vals[i] *= sd;
    return vals;
  };
  const e = draw();
  return { e, f: shareKV ? null : draw() };
}

/** Linformer attention; see the module comment. */
export class LinformerAttention implements Attention<ResolvedLinformerConfig> {
  readonly id = meta.id;
  readonly family = meta.family;
  readonly complexity: Complexity = meta.complexity;
  /** Disposed or live: every public method checks it first. */
  private readonly lifetime = new Lifetime();

  constructor(
    readonly config: Readonly<ResolvedLinformerConfig>,
    private eVar: tf.Tensor2D | null,
    private fVar: tf.Tensor2D | null,
  ) {}

  /**
   * Attention of `q [batch, heads, n, d]` over `k [batch, kvHeads, m, d]`, `v [batch, kvHeads, m, dv]`
   * with m <= maxLength.
   *
   * @returns `[batch, heads, n, dv]`
   * @throws AttentionError on any invalid input (including m > maxLength), before dispatch.
   */
  apply(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, options?: ApplyOptions): tf.Tensor4D {
    this.lifetime.check(this.id);
    const { dims, implementation, keyLength, kernelStrategy } = validateCall(q, k, v, options);
    const { maxLength, k: kp } = this.config;
    this.checkLength(dims.m);
    const projDims = { ...dims, m: kp };
    // Everything that can refuse the call does so before the projection is dispatched.
    if (resolveImplementation(implementation) === 'kernel') planFlash(projDims, activeKernelLimits(), { strategy: kernelStrategy });
    else {
      checkDenseCompositeFits(projDims);
      // The whole composite (projection + dense attention over k keys) against the host-memory budget: memoryBytes' own bound.
      const { batch: b, heads, kvHeads: kh, n, m: len, d, dv } = dims;
      checkHostBudget('the linformer composite', this.memoryBytes({ batch: b, heads, kvHeads: kh, n, m: len, d, dv, implementation: 'composite', keyLength: keyLength !== null }));
    }
    const e = this.eVar!;
    const f = this.fVar ?? e;
    const { batch, kvHeads, m } = dims;
    const [kProj, vProj] = tf.tidy(() => {
      const kvalid = keyValidity(dims, keyLength);
      const cols = (p: tf.Tensor2D) => (m === maxLength ? p : tf.slice(p, [0, 0], [kp, m]));
      // P[:, :m]·X for every (batch, kv head) as one matMul: X as [m, batch·kvHeads·dim].
      const project = (pm: tf.Tensor2D, x: tf.Tensor4D, dim: number) => {
        // Padding keys are never projected: selected out (a product with 0 would keep their NaN or ±Inf).
        const xs = kvalid ? tf.where(tf.cast(kvalid, 'bool'), x, tf.zerosLike(x)) : x;
        const cols2 = tf.reshape(tf.transpose(xs, [2, 0, 1, 3]), [m, batch * kvHeads * dim]);
        return tf.transpose(tf.reshape(tf.matMul(pm, cols2), [kp, batch, kvHeads, dim]), [1, 2, 0, 3]) as tf.Tensor4D;
      };
      const eCols = cols(e);
      return [project(eCols, k, dims.d), project(f === e ? eCols : cols(f), v, dims.dv)];
    });
    try {
      return attendDense(q, kProj, vProj, projDims, { causal: false, scale: this.config.scale ?? 1 / Math.sqrt(dims.d), keyLength: null, strategy: kernelStrategy }, implementation);
    } finally {
      kProj.dispose();
      vProj.dispose();
    }
  }

  /**
   * Upper bound of the intermediate bytes of `apply`: the E, F column slices (k·m), the masked
   * K, V copies (with keyLength), K and V transposed for the projection (m rows), the projected
   * K', V' (k rows), and dense attention over k keys (O(n) fused, O(n·k) composite).
   */
  memoryBytes(problem: Problem): number {
    this.lifetime.check(this.id);
    const dims = problemDims(problem);
    this.checkLength(dims.m);
    const path = problemPath(problem);
    const { batch, kvHeads, m, d, dv } = dims;
    const kp = this.config.k;
    const slices = m === this.config.maxLength ? 0 : (this.config.shareKV ? 1 : 2) * kp * m * 4;
    const masked = problem.keyLength ? batch * kvHeads * m * (d + dv) * 4 + 4 * batch * m * 4 : 0;
    // K and V transposed to [m, batch·kvHeads·dim], the products, and the products transposed back.
    const projected = batch * kvHeads * m * (d + dv) * 4 + 2 * batch * kvHeads * kp * (d + dv) * 4;
    return Math.ceil((slices + masked + projected) * 1.15) + attendDenseBytes({ ...dims, m: kp }, path, false) + 4096;
  }

  /** The projection E `[k, maxLength]` of the keys (a `tf.Variable` the variant owns; trainable with `trainable: true`). */
  get e(): tf.Variable {
    this.lifetime.check(this.id);
    return this.eVar as tf.Variable;
  }

  /** The projection F `[k, maxLength]` of the values (the same variable as `e` with `shareKV`). */
  get f(): tf.Variable {
    this.lifetime.check(this.id);
    return (this.fVar ?? this.eVar) as tf.Variable;
  }

  /** The trainable variables: `[e, f]` (`[e]` with shareKV) with `trainable: true`, else none. */
  get variables(): tf.Variable[] {
    this.lifetime.check(this.id);
    return this.config.trainable ? ([this.eVar, this.fVar].filter((x) => x !== null) as tf.Variable[]) : [];
  }

  /** The projections `{ e, f }`, `[k, maxLength]` each (new tensors the caller owns; f equals e with shareKV). */
  projections(): { e: tf.Tensor2D; f: tf.Tensor2D } {
    this.lifetime.check(this.id);
    const e = this.eVar!;
    return { e: tf.clone(e) as tf.Tensor2D, f: tf.clone(this.fVar ?? e) as tf.Tensor2D };
  }

  /** The projections cover m <= maxLength keys (apply and memoryBytes throw the same error past it). */
  private checkLength(m: number): void {
    const { maxLength } = this.config;
    if (m > maxLength) {
      throw new AttentionError('k', `a sequence of length m <= maxLength = ${maxLength} (the projections' length)`, `m = ${m}`, 'Build the variant with a larger maxLength.');
    }
  }

  /** Frees the projections and ends the variant (every later call throws AttentionError('this')); again, a no-op. */
  dispose(): void {
    if (!this.lifetime.end()) return;
    this.eVar?.dispose();
    this.fVar?.dispose();
    this.eVar = null;
    this.fVar = null;
  }
}

/**
 * Builds Linformer attention.
 *
 * @param config - `k` (256), `maxLength` (required unless `projections`), `shareKV` (false),
 * `projections` `{ e, f }` `[k, maxLength]` or `seed`, `scale` (1/√d). `causal: true` throws.
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import { linformerAttention } from 'attention-catalog/linformer';
 * const attn = linformerAttention({ k: 256, maxLength: 8192 });
 * const q = tf.randomNormal([1, 8, 4096, 64]) as tf.Tensor4D;
 * const out = attn.apply(q, q, q); // keys and values projected to 256 rows
 * attn.dispose();
 * ```
 */
export function linformerAttention(config: LinformerConfig): LinformerAttention {
  if (typeof config !== 'object' || config === null) throw new AttentionError('config', 'an object', show(config));
  checkConfigKeys(meta.id, config, ['k', 'maxLength', 'shareKV', 'projections', 'seed', 'causal', 'scale', 'trainable']);
  if (config.causal !== undefined && checkBool('config.causal', config.causal)) {
    throw new AttentionError('config.causal', 'false (Linformer projects the whole sequence, so it cannot be causal)', 'true');
  }
  const shareKV = config.shareKV === undefined ? false : checkBool('config.shareKV', config.shareKV);
  const trainable = config.trainable === undefined ? false : checkBool('config.trainable', config.trainable);
  const scale = checkScale(config.scale);
  if (config.seed !== undefined && config.projections !== undefined) {
    throw new AttentionError('config.projections', 'either seed or projections, not both', 'both');
  }
  const seed = config.seed === undefined ? DEFAULT_SEED : checkInt('config.seed', config.seed, 0);
  const kGiven = config.k === undefined ? undefined : checkInt('config.k', config.k, 1);
  const maxGiven = config.maxLength === undefined ? undefined : checkInt('config.maxLength', config.maxLength, 1);
  let e: tf.Tensor2D;
  let f: tf.Tensor2D | null = null;
  if (config.projections !== undefined) {
    const p = config.projections;
    if (typeof p !== 'object' || p === null || Array.isArray(p) || p instanceof tf.Tensor) {
      throw new AttentionError('config.projections', 'an object { e, f }', show(p));
    }
    for (const key of Object.keys(p)) if (key !== 'e' && key !== 'f') throw new AttentionError(`config.projections.${key}`, 'one of e, f', `unknown key '${key}'`);
    if (shareKV && p.f !== undefined) throw new AttentionError('config.projections.f', 'omitted with shareKV (values use e)', 'a projection');
    if (!shareKV && p.f === undefined) throw new AttentionError('config.projections.f', 'a [k, maxLength] projection (or shareKV: true)', 'undefined');
    const ce = checkMatrix('config.projections.e', p.e, '[k, maxLength]');
    const cf = p.f === undefined ? null : checkMatrix('config.projections.f', p.f, '[k, maxLength]');
    const [kp, len] = ce.shape;
    const problem =
      (cf && (cf.shape[0] !== kp || cf.shape[1] !== len) && { arg: 'config.projections.f', want: `shape [${kp}, ${len}] (as e)`, got: show(cf.shape) }) ||
      (kGiven !== undefined && kGiven !== kp && { arg: 'config.k', want: `the projections' first dimension ${kp}`, got: `${kGiven}` }) ||
      (maxGiven !== undefined && maxGiven !== len && { arg: 'config.maxLength', want: `the projections' second dimension ${len}`, got: `${maxGiven}` });
    if (problem) throw new AttentionError(problem.arg, problem.want, problem.got);
    // Everything is checked: only now are the projections copied.
    e = ownMatrix(ce);
    if (cf) f = ownMatrix(cf);
  } else {
    if (maxGiven === undefined) throw new AttentionError('config.maxLength', 'the longest sequence length (an integer >= 1)', 'undefined');
    const kp = kGiven ?? 256;
    const host = linformerProjections(kp, maxGiven, seed, shareKV);
    // Through one op, so that the weights live on the active backend's device from the start
    // (webgpu: a GPU buffer), not uploaded during the first apply.
    const upload = (a: Float32Array) => tf.tidy(() => tf.add(tf.tensor2d(a, [kp, maxGiven], 'float32'), 0)) as tf.Tensor2D;
    e = upload(host.e);
    if (host.f) f = upload(host.f);
  }
  // The projections live in variables the variant owns (trainable with `trainable: true`).
  e = ownedVariable(e, trainable);
  if (f) f = ownedVariable(f, trainable);
  const cfg: ResolvedLinformerConfig = {
    k: e.shape[0],
    maxLength: e.shape[1],
    shareKV,
    seed,
    trainable,
    causal: false,
    projections: config.projections !== undefined ? 'explicit' : 'seeded',
  };
  if (scale !== undefined) cfg.scale = scale;
  return new LinformerAttention(Object.freeze(cfg), e, f);
}
