/**
 * `compressive`: the Compressive Transformer's attention (Rae et al., 2020). A stateful,
 * segment-recurrent variant: the sequence is fed one segment of n positions at a time through
 * {@link CompressiveAttention.step}; each segment's queries attend the compressed memory, the
 * memory and (causally) the segment itself, in one softmax, with no relative-position terms:
 *
 * ```text
 *   keys of one step:  [ compressed memory (≤ Lc) | memory (≤ L) | segment (n) ]
 *                        cm_0 … cm_{Lc−1}          m_0 … m_{L−1}   s_0 … s_{n−1}
 *   query i of the segment sees every cm and every m, and s_j for j <= i
 *
 *   after attending:   [ memory ; segment ]  = [ pushed out (P, oldest first) | new memory (last L) ]
 *                        pushed out, in groups of c:  e_0 … e_{c−1}  →  one compressed slot
 *                        compressed memory = last Lc of [ compressed memory ; new compressed slots ]
 * ```
 *
 * Definition (per batch element, per kv head; query head h reads kv head floor(h / (heads / kvHeads))):
 * - output `o_i = Σ_j softmax_j(s·q_i·k_j over allowed j)·v_j`, allowed = every real slot of the
 *   compressed memory and of the memory, and the real segment keys j <= i.
 * - memory update: memory' = the last L of [memory; segment]; the P keys/values pushed out
 *   (P = a multiple of c, since L and n are) are cut into groups of c, oldest first; a group
 *   e_0 … e_{c−1} becomes one key (values likewise, separately):
 *   - `fn: 'mean'`: the mean of its real keys;
 *   - `fn: 'max'`: the elementwise max of its real keys;
 *   - `fn: 'conv'`: `Σ_u e_u·K[u]` with `K[u]` a `[d_in, d_out]` matrix (values: `V[u]`, `[dv, dv]`),
 *     padding entries counting as zero (as the `compressed` entry's conv mode).
 *   The new slots are appended to the compressed memory, of which the last Lc are kept.
 * - `initState(batch)` starts with an empty memory and compressed memory (length 0, not zero rows):
 *   the memory fills up over the first ⌈L / n⌉ segments, compression starts once it is full.
 *
 * Conventions, decided here:
 * - **Segments.** `step(q, k, v, state)` takes one segment: q `[batch, heads, n, d]` and k, v of
 *   the same length n (m == n), with n a multiple of `rate`; n may change between steps.
 *   `apply(q, k, v)` is one segment from an empty state: causal dense attention over the
 *   segment (it builds no state).
 * - **causal.** Always causal within the segment, by definition: `causal` may be omitted or
 *   `true`; `causal: false` is an AttentionError. Memory and compressed slots are all in the
 *   past of every query, so all are visible.
 * - **keyLength** (of a step) marks the *segment's* keys at or past `keyLength[b]` as padding
 *   (e.g. the end of a shorter sequence in a batch). Padding keys are never attended, in this
 *   step or any later one, and never pooled: they still take their slots in the memory (every
 *   batch element advances by n positions, so segments stay aligned across the batch), flagged
 *   as padding; a compressed group is made of its real keys only (mean, max; conv: padding as
 *   zero), and a group with no real key is a padding compressed slot, never attended. The flags
 *   are host data in the state (O(L + Lc) booleans per batch element), so `step` takes
 *   `keyLength` as a `number[]` (a tensor is an AttentionError there; `apply` takes both).
 *   Queries at padding positions still attend the real keys.
 * - **State** ({@link CompressiveState}): the memory K/V `[batch, kvHeads, ≤ L, d | dv]`, the
 *   compressed memory `[batch, kvHeads, ≤ Lc, d | dv]`, and, for {@link CompressiveAttention.reconstructionLoss},
 *   the last step's queries `[batch, heads, n, d]` and the keys/values it pushed out
 *   `[batch, kvHeads, P, d | dv]` (P <= n + L). Its size is flat once the memory is full:
 *   O((L + Lc + n)·d). A state belongs to the instance that made it (another instance's state,
 *   or one for another batch, kvHeads, d or dv, throws AttentionError('state')), and is consumed
 *   by `step`: its tensors are disposed and it cannot be stepped again. A refused step consumes
 *   nothing. Free the last one with `state.dispose()`. The state's tensors are `tf.keep`-ed: a
 *   `tf.tidy` (or `optimizer.minimize`) around a step does not free them.
 * - **Training.** The attention is differentiable in q, k and v of the current segment. The
 *   memories enter the gradient as constants (stop-gradient, as in the paper): a step's state is
 *   cut from the tape, so a loss over later segments sends no gradient into earlier k, v or the
 *   conv weights. With `fn: 'conv'` the weights K, V live in `tf.Variable`s the instance owns
 *   (getters `convK`, `convV`; `trainable: true` lists them in `variables`; `dispose()` frees
 *   them); they are trained only by {@link CompressiveAttention.reconstructionLoss}. While tfjs
 *   records gradients, `'auto'` and `'composite'` take a differentiable composite of this
 *   module's own (masks as selections built from constants; the same function) and `'kernel'`
 *   throws (the fused kernel is forward-only).
 *
 * Paths: fused (webgpu): ONE flash-kernel call over the concatenated keys [compressed; memory;
 * segment] with `causal: true` (bottom-right alignment puts every memory key at or before every
 * query's position, and makes the segment causal) and the segment's padding as a key length;
 * when some memory slot of the state is padding, one call per batch element over its real slots
 * (gathered) and its segment. Intermediate memory O(n) for the attention, plus O((L + n)·d) for
 * the update. Composite (every backend): the same with tfjs ops, O(n·(n + L + Lc)) scores.
 *
 * Complexity per segment: time O(n·(n + L + Lc)·d); memory O(n·(n + L + Lc)) (composite),
 * O(n + (n + L + Lc)·d) fused; state O((L + Lc + n)·d).
 *
 * Paper: Rae, Potapenko, Jayakumar, Lillicrap, "Compressive Transformers for Long-Range
 * Sequence Modelling", ICLR 2020, https://arxiv.org/abs/1911.05507 .
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { attendDense, attendDenseBytes, prepareDense } from '../../../kernels/flash/attend.js';
import { DISALLOWED_SCORE } from '../../../kernels/shared/masking.js';
import { forwardOnlyKernel, recordingGradients } from '../../core/dispatch.js';
import { ownedVariable } from '../../core/variables.js';
import { AttentionError, show } from '../../core/errors.js';
import { DEFAULT_SEED, seededConvWeights } from '../../core/rng.js';
import type { ApplyOptions, Attention, Complexity, Dims, Implementation, Problem } from '../../core/types.js';
import { checkBool, checkConfigKeys, checkInt, checkScale, hostSquareStack, problemDims, problemPath, validateCall } from '../../core/validate.js';
import { Lifetime } from '../../core/lifecycle.js';
import { meta } from './compressive.meta.js';

export { meta };

/** Explicit convolution weights of `fn: 'conv'`. */
export interface CompressiveConvWeights {
  /** `[c, d, d]`: `K[u]` maps the key at offset u of a group (d in) to the compressed key (d out). */
  k: tf.Tensor | number[][][];
  /** `[c, dv, dv]`. */
  v: tf.Tensor | number[][][];
}

/** Config of {@link compressiveAttention}. */
export interface CompressiveConfig {
  /** Memory length L: the last L keys/values are kept uncompressed. Integer >= 0, a multiple of `rate`. Default 16. */
  memLength?: number;
  /** Compressed memory length Lc: the last Lc compressed slots are kept. Integer >= 0. Default: `memLength`. */
  compressedLength?: number;
  /** Compression rate c: c pushed-out keys become one compressed key. Integer >= 1. Default 2. */
  rate?: number;
  /** Compression function: `'mean'` (default), `'max'` or `'conv'`. */
  fn?: 'mean' | 'max' | 'conv';
  /** `fn: 'conv'` only: explicit weights `{ k: [c, d, d], v: [c, dv, dv] }` (their initial values when trainable). */
  convWeights?: CompressiveConvWeights;
  /** `fn: 'conv'` only: seed of the drawn weights (normal, scaled by 1/sqrt(c·dim)). Default the library's fixed seed. */
  seed?: number;
  /** `fn: 'conv'` with drawn weights: the head dim d of q and k (required then). */
  headDim?: number;
  /** `fn: 'conv'` with drawn weights: the value dim dv. Default `headDim`. */
  valueDim?: number;
  /** `fn: 'conv'` only: whether the weights are trainable variables (listed by `variables`). Default false. */
  trainable?: boolean;
  /** Always causal within the segment: omit it or pass `true` (`false` throws). */
  causal?: boolean;
  /** Score scale. Default `1 / sqrt(d)`. */
  scale?: number;
}

/** The resolved config (defaults filled in). */
export interface ResolvedCompressiveConfig {
  memLength: number;
  compressedLength: number;
  rate: number;
  fn: 'mean' | 'max' | 'conv';
  causal: true;
  scale?: number;
  trainable: boolean;
  /** `fn: 'conv'`: the weights' dims and where they come from. */
  headDim?: number;
  valueDim?: number;
  seed?: number;
  convWeights?: 'explicit' | 'seeded';
}

/** Options of {@link CompressiveAttention.step}: as `apply`'s, with `keyLength` a `number[]` (the segment's real key count per batch element). */
export type StepOptions = Omit<ApplyOptions, 'keyLength'> & { keyLength?: number[] };

/** Per batch element, one flag (1 real, 0 padding) per slot. */
type Flags = readonly Uint8Array[];

const allSet = (flags: Flags) => flags.every((f) => f.every((x) => x === 1));

/**
 * The recurrent state of a {@link CompressiveAttention}: memory, compressed memory and what
 * `reconstructionLoss` needs. Made by `initState` and `step`, consumed by `step`.
 */
export class CompressiveState {
  private live = true;

  /** @internal Built by the variant only. */
  constructor(
    /** @internal The instance that made it. */
    readonly owner: object,
    readonly batch: number,
    /** kvHeads, d and dv of the inputs that made it (null before the first step). */
    readonly dims: { kvHeads: number; d: number; dv: number } | null,
    /** Positions stepped so far (per batch element, padding included). */
    readonly position: number,
    /** Memory keys `[batch, kvHeads, memoryLength, d]` and values (null while empty). */
    readonly memK: tf.Tensor4D | null,
    readonly memV: tf.Tensor4D | null,
    /** Compressed memory keys `[batch, kvHeads, compressedLength, d]` and values (null while empty). */
    readonly compK: tf.Tensor4D | null,
    readonly compV: tf.Tensor4D | null,
    /** The last step's queries (null before the first step). */
    readonly lastQ: tf.Tensor4D | null,
    /** The keys/values the last step pushed out of the memory, oldest first (null if none). */
    readonly pushedK: tf.Tensor4D | null,
    readonly pushedV: tf.Tensor4D | null,
    /** @internal Real (1) or padding (0), per batch element and memory slot. */
    readonly memReal: Flags,
    /** @internal Per batch element and compressed slot. */
    readonly compReal: Flags,
    /** @internal Per batch element and pushed-out slot. */
    readonly pushedReal: Flags,
  ) {}

  /** Number of memory slots (<= memLength). */
  get memoryLength(): number {
    return this.memK ? this.memK.shape[2] : 0;
  }

  /** Number of compressed slots (<= compressedLength). */
  get compressedLength(): number {
    return this.compK ? this.compK.shape[2] : 0;
  }

  /** False once consumed by `step` or disposed. */
  get isLive(): boolean {
    return this.live;
  }

  /** The tensors the state owns. */
  get tensors(): tf.Tensor[] {
    return [this.memK, this.memV, this.compK, this.compV, this.lastQ, this.pushedK, this.pushedV].filter((t): t is tf.Tensor4D => t !== null);
  }

  /** Bytes of the tensors the state owns (float32). */
  get bytes(): number {
    return this.tensors.reduce((s, t) => s + t.size * 4, 0);
  }

  /** Frees the state's tensors; it can no longer be stepped. Again, a no-op. */
  dispose(): void {
    if (!this.live) return;
    this.live = false;
    for (const t of this.tensors) t.dispose();
  }
}

/** The result of one {@link CompressiveAttention.step}. */
export interface StepResult {
  /** `[batch, heads, n, dv]`. */
  output: tf.Tensor4D;
  /** The next state (the one passed in has been consumed). */
  state: CompressiveState;
}


/** Identity whose gradient is zero: the memories enter the gradient as constants. */
const stopGradient = tf.customGrad(((x: tf.Tensor) => ({ value: tf.clone(x), gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy) })) as unknown as Parameters<typeof tf.customGrad>[0]) as (x: tf.Tensor) => tf.Tensor;

/** A bool tensor of `shape` from 0/1 flags. */
function boolTensor(flags: ArrayLike<number>, shape: number[]): tf.Tensor {
  return tf.tidy(() => tf.cast(tf.tensor(Int32Array.from(flags), shape, 'int32'), 'bool'));
}

/**
 * The seeded conv weights: `K [c, d, d]` then `V [c, dv, dv]` (core/rng.ts `seededConvWeights`,
 * the draw the `compressed` entry uses for its kernels).
 */
export function compressiveConvWeights(rate: number, d: number, dv: number, seed: number = DEFAULT_SEED): { k: Float32Array; v: Float32Array } {
  return seededConvWeights(rate, d, dv, seed);
}

/**
 * Softmax attention from tfjs ops, differentiable by tfjs's autodiff (masks are selections, the
 * mask itself built from constants): query head h reads kv head floor(h / (heads / kvHeads));
 * key j of batch element b exists iff `keyReal[b, j]` (a bool `[batch, 1, 1, M]`; padding keys and
 * values are selected to zero before any product, so their gradients are exactly zero and NaN
 * there never propagates); with `causalFrom` = M − n, key j >= causalFrom is allowed only for
 * queries i with j <= i + causalFrom. A query with no allowed key outputs zeros.
 * Used while tfjs records gradients, and by `reconstructionLoss`.
 */
function maskedAttention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, keyReal: tf.Tensor, causal: boolean, scale: number): tf.Tensor4D {
  const [B, H, n, d] = q.shape;
  const [, KH, M] = k.shape;
  const dv = v.shape[3];
  const g = H / KH;
  return tf.tidy(() => {
    let allowed = keyReal; // [B, 1, 1, M]
    if (causal) {
      // Row r of [KH, g·n] is query i = r mod n, at position i + (M − n).
      const pos = Int32Array.from({ length: g * n }, (_, r) => (r % n) + M - n);
      const rows = tf.tensor(pos, [1, 1, g * n, 1], 'int32');
      const cols = tf.reshape(tf.range(0, M, 1, 'int32'), [1, 1, 1, M]);
      allowed = tf.logicalAnd(allowed, tf.lessEqual(cols, rows)); // [B, 1, g·n, M]
    }
    const col = tf.reshape(keyReal, [B, 1, M, 1]);
    const kz = tf.where(col, k, tf.zerosLike(k));
    const vz = tf.where(col, v, tf.zerosLike(v));
    const qs = tf.reshape(tf.mul(q, tf.scalar(scale)), [B, KH, g * n, d]);
    const s = tf.matMul(qs, kz, false, true); // [B, KH, g·n, M]
    const mask = tf.broadcastTo(allowed, s.shape);
    const p = tf.softmax(tf.where(mask, s, tf.fill(s.shape, DISALLOWED_SCORE)));
    const pz = tf.where(mask, p, tf.zerosLike(p));
    return tf.reshape(tf.matMul(pz, vz), [B, H, n, dv]) as tf.Tensor4D;
  });
}

/** Key existence `[batch, 1, 1, M]` (bool): host flags of the past slots, then the segment's keys below keyLength. */
function keyExistence(batch: number, past: Flags, n: number, keyLength: number[] | tf.Tensor1D | null): tf.Tensor {
  return tf.tidy(() => {
    const P0 = past[0]?.length ?? 0;
    let seg: tf.Tensor;
    if (keyLength === null) seg = tf.fill([batch, 1, 1, n], 1, 'bool');
    else {
      const kl = keyLength instanceof tf.Tensor ? keyLength : tf.tensor1d(keyLength, 'int32');
      seg = tf.less(tf.reshape(tf.range(0, n, 1, 'int32'), [1, 1, 1, n]), tf.reshape(kl, [batch, 1, 1, 1]));
    }
    if (P0 === 0) return seg;
    const flat = Uint8Array.from(past.flatMap((f) => Array.from(f)));
    return tf.concat([boolTensor(flat, [batch, 1, 1, P0]), seg], 3);
  });
}

/** Compressive Transformer attention; see the module doc. */
export class CompressiveAttention implements Attention<ResolvedCompressiveConfig> {
  readonly id = meta.id;
  readonly family = meta.family;
  readonly complexity: Complexity = meta.complexity;
  /** Disposed or live: every public method checks it first. */
  private readonly lifetime = new Lifetime();
  /** The identity states carry. */
  private readonly token = Object.freeze({ variant: meta.id });

  constructor(
    readonly config: Readonly<ResolvedCompressiveConfig>,
    private conv: { k: tf.Variable; v: tf.Variable } | null,
  ) {}

  /** `fn: 'conv'`: the key weights K `[c, d, d]` (a `tf.Variable` the instance owns; trainable with `trainable: true`). */
  get convK(): tf.Variable {
    this.lifetime.check(this.id);
    return this.convOrThrow().k;
  }

  /** `fn: 'conv'`: the value weights V `[c, dv, dv]`. */
  get convV(): tf.Variable {
    this.lifetime.check(this.id);
    return this.convOrThrow().v;
  }

  /** The trainable variables: `[convK, convV]` with `fn: 'conv'` and `trainable: true`, else none. */
  get variables(): tf.Variable[] {
    this.lifetime.check(this.id);
    return this.conv && this.config.trainable ? [this.conv.k, this.conv.v] : [];
  }

  private convOrThrow(): { k: tf.Variable; v: tf.Variable } {
    if (!this.conv) throw new AttentionError('config.fn', "'conv' (only the conv compression has weights)", show(this.config.fn));
    return this.conv;
  }

  private scaleFor(d: number): number {
    return this.config.scale ?? 1 / Math.sqrt(d);
  }

  /**
   * A segment's shape rules, shared by `apply`, `memoryBytes` and `step`; the conv weights' dims
   * only where they are used (`step`: `apply` builds no state and compresses nothing).
   */
  private checkSegment(dims: Dims, prefix = '', weights = false): void {
    const { rate } = this.config;
    if (dims.m !== dims.n) {
      throw new AttentionError(prefix ? `${prefix}.m` : 'k', `the segment's keys: length n = ${dims.n} (as q)`, `${dims.m}`, 'A step takes one segment: q, k and v of the same length.');
    }
    if (dims.n % rate !== 0) {
      throw new AttentionError(prefix ? `${prefix}.n` : 'q', `a segment length that is a multiple of rate = ${rate}`, `${dims.n}`);
    }
    if (this.conv && weights) {
      const { headDim, valueDim } = this.config;
      if (dims.d !== headDim) throw new AttentionError(prefix ? `${prefix}.d` : 'q', `head dim d = ${headDim} (the conv weights' [${rate}, d, d])`, `d = ${dims.d}`);
      if (dims.dv !== valueDim) throw new AttentionError(prefix ? `${prefix}.dv` : 'v', `value dim dv = ${valueDim} (the conv weights' [${rate}, dv, dv])`, `dv = ${dims.dv}`);
    }
  }

  /** The path: while tfjs records gradients, the composite ('kernel' then throws). */
  private pathFor(implementation: Implementation): Implementation {
    return forwardOnlyKernel(implementation);
  }

  /**
   * One segment from an empty state: causal attention of `q [batch, heads, n, d]` over the
   * segment's `k`, `v` (n == m, a multiple of `rate`). Builds no state and compresses nothing
   * (so the conv weights' d and dv are not checked here; `step` checks them).
   * @returns `[batch, heads, n, dv]`
   * @throws AttentionError on any invalid input, before anything is dispatched.
   */
  apply(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, options?: ApplyOptions): tf.Tensor4D {
    this.lifetime.check(this.id);
    const { dims, implementation, keyLength, kernelStrategy } = validateCall(q, k, v, options);
    this.checkSegment(dims);
    const path = this.pathFor(implementation);
    if (recordingGradients()) {
      const exists = keyExistence(dims.batch, [], dims.n, keyLength);
      try {
        return maskedAttention(q, k, v, exists, true, this.scaleFor(dims.d));
      } finally {
        exists.dispose();
      }
    }
    return attendDense(q, k, v, dims, { causal: true, scale: this.scaleFor(dims.d), keyLength, strategy: kernelStrategy }, path);
  }

  /** Upper bound of the intermediate bytes of `apply` (one segment, m == n): causal dense attention's. */
  memoryBytes(problem: Problem): number {
    this.lifetime.check(this.id);
    const dims = problemDims(problem);
    this.checkSegment(dims, 'problem');
    return attendDenseBytes(dims, problemPath(problem), true);
  }

  /**
   * An empty state for `batch` sequences: no memory, no compressed memory. Its kvHeads, d and dv
   * are fixed by the first step. Owns no tensors.
   */
  initState(batch: number): CompressiveState {
    this.lifetime.check(this.id);
    checkInt('batch', batch, 1);
    const none = Array.from({ length: batch }, () => new Uint8Array(0));
    return new CompressiveState(this.token, batch, null, 0, null, null, null, null, null, null, null, none, none, none);
  }

  /** Checks that `state` is a live state of this instance for these dims (consumes nothing). */
  private checkState(state: unknown, dims: { batch: number; kvHeads: number; d: number; dv: number } | null): CompressiveState {
    if (!(state instanceof CompressiveState)) {
      throw new AttentionError('state', `a state made by this '${this.id}' instance (initState or step)`, state === null || typeof state !== 'object' ? show(state) : 'another object');
    }
    if (state.owner !== this.token) {
      throw new AttentionError('state', `a state made by this '${this.id}' instance`, 'a state of another instance', 'A state belongs to the instance (config, weights) that made it.');
    }
    if (!state.isLive) {
      throw new AttentionError('state', 'a live state', 'a consumed or disposed state', 'step consumes the state it is given: pass the state it returned.');
    }
    if (dims) {
      if (state.batch !== dims.batch) throw new AttentionError('state', `a state for batch = ${dims.batch} (as this step's inputs)`, `one made for batch = ${state.batch}`);
      if (state.dims) {
        for (const key of ['kvHeads', 'd', 'dv'] as const) {
          if (state.dims[key] !== dims[key]) throw new AttentionError('state', `a state for ${key} = ${dims[key]} (as this step's inputs)`, `one made for ${key} = ${state.dims[key]}`);
        }
      }
    }
    return state;
  }

  /** The segment's real-key flags per batch element (keyLength as numbers, already checked in [0, n]). */
  private segmentFlags(keyLength: number[] | null, batch: number, n: number): { flags: Uint8Array[]; lengths: number[] | null } {
    if (keyLength === null) return { flags: Array.from({ length: batch }, () => new Uint8Array(n).fill(1)), lengths: null };
    const lengths = keyLength.slice();
    return { flags: lengths.map((l) => Uint8Array.from({ length: n }, (_, j) => (j < l ? 1 : 0))), lengths };
  }

  /**
   * Compresses pushed-out slots `[batch, kvHeads, P, dim]` (flags per batch element) into
   * `[batch, kvHeads, P / c, dim]` with the config's `fn`. Padding is selected out, never multiplied.
   */
  private compress(x: tf.Tensor4D, real: Flags, w: tf.Tensor | null): tf.Tensor4D {
    const [B, KH, P, dim] = x.shape;
    const c = this.config.rate;
    const G = P / c;
    // At most rank 4 throughout (webgpu's select has no rank-5 form).
    return tf.tidy(() => {
      const everyReal = allSet(real);
      const flat = Uint8Array.from(real.flatMap((f) => Array.from(f)));
      const col = everyReal ? null : boolTensor(flat, [B, 1, P, 1]);
      const groupsOf = (t: tf.Tensor) => tf.reshape(t, [B * KH * G, c, dim]) as tf.Tensor3D;
      const back = (t: tf.Tensor) => tf.reshape(t, [B, KH, G, dim]) as tf.Tensor4D;
      const zeroed = col ? tf.where(col, x, tf.zerosLike(x)) : x;
      if (this.config.fn === 'mean') {
        if (!col) return back(tf.mean(groupsOf(x), 1));
        const counts = Float32Array.from({ length: B * G }, (_, i) => {
          const b = Math.floor(i / G);
          const g = i % G;
          let sum = 0;
          for (let u = 0; u < c; u++) sum += real[b][g * c + u];
          return Math.max(1, sum);
        });
        return tf.div(back(tf.sum(groupsOf(zeroed), 1)), tf.tensor(counts, [B, 1, G, 1])) as tf.Tensor4D;
      }
      if (this.config.fn === 'max') {
        if (!col) return back(tf.max(groupsOf(x), 1));
        const low = tf.where(col, x, tf.fill(x.shape, -3e38));
        const pooled = back(tf.max(groupsOf(low), 1));
        const groupReal = Uint8Array.from(this.groupFlags(real).flatMap((f) => Array.from(f)));
        return tf.where(boolTensor(groupReal, [B, 1, G, 1]), pooled, tf.zerosLike(pooled)) as tf.Tensor4D;
      }
      const out = tf.matMul(tf.reshape(zeroed, [B * KH * G, c * dim]), tf.reshape(w!, [c * dim, dim]));
      return back(out);
    });
  }

  /** Per batch element, whether each group of c flags has a real one. */
  private groupFlags(real: Flags): Uint8Array[] {
    const c = this.config.rate;
    return real.map((f) => Uint8Array.from({ length: f.length / c }, (_, g) => (f.subarray(g * c, g * c + c).some((x) => x === 1) ? 1 : 0)));
  }

  /**
   * One segment: attends `q [batch, heads, n, d]` over [compressed; memory; segment] (segment
   * `k [batch, kvHeads, n, d]`, `v [batch, kvHeads, n, dv]`, causal within it), then updates the
   * memories. The state passed in is consumed (its tensors disposed) once the step succeeds.
   *
   * @param options - `implementation`, `kernelStrategy`, `keyLength` (a `number[]`: the segment's real key
   *   count per batch element; keys at or past it are padding, never attended, flagged in the memory).
   * @throws AttentionError on any invalid input or state (another instance's, a consumed one, or
   *   one for another batch, kvHeads, d or dv), before anything is dispatched; the state is then not consumed.
   */
  step(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, state: CompressiveState, options?: StepOptions): StepResult {
    this.lifetime.check(this.id);
    const { dims, implementation, keyLength, kernelStrategy } = validateCall(q, k, v, options as unknown);
    this.checkSegment(dims, '', true);
    if (keyLength instanceof tf.Tensor) {
      throw new AttentionError('options.keyLength', "a number[] for step (the memory's padding flags are host data of the state)", 'a tensor', 'Read it first: Array.from(await keyLength.data()).');
    }
    const st = this.checkState(state, dims);
    const path = this.pathFor(implementation);
    const { batch: B, n } = dims;
    const { flags: segReal, lengths } = this.segmentFlags(keyLength, B, n);
    const Lm = st.memoryLength;
    const Lcm = st.compressedLength;
    const scale = this.scaleFor(dims.d);
    const past = [st.compK, st.memK].filter((t): t is tf.Tensor4D => t !== null);
    const pastV = [st.compV, st.memV].filter((t): t is tf.Tensor4D => t !== null);
    // Plan (and so refuse) every attention call before anything is dispatched.
    let run: () => tf.Tensor4D;
    if (recordingGradients()) {
      // Differentiable composite (masks as selections); the past slots are constants.
      const pastReal = st.compReal.map((f, b) => Uint8Array.from([...f, ...st.memReal[b]]));
      run = () =>
        tf.tidy(() => {
          const kAll = past.length ? (tf.concat([...past, k], 2) as tf.Tensor4D) : k;
          const vAll = pastV.length ? (tf.concat([...pastV, v], 2) as tf.Tensor4D) : v;
          return maskedAttention(q, kAll, vAll, keyExistence(B, pastReal, n, lengths), true, scale);
        });
    } else if (allSet(st.compReal) && allSet(st.memReal)) {
      const M = Lcm + Lm + n;
      const attend = prepareDense({ ...dims, m: M }, { causal: true, scale, keyLength: lengths ? lengths.map((l) => Lcm + Lm + l) : null, strategy: kernelStrategy }, path);
      run = () =>
        tf.tidy(() => {
          const kAll = past.length ? (tf.concat([...past, k], 2) as tf.Tensor4D) : k;
          const vAll = pastV.length ? (tf.concat([...pastV, v], 2) as tf.Tensor4D) : v;
          return attend(q, kAll, vAll);
        });
    } else {
      // Some past slot is padding: per batch element, its real past slots (gathered) and its segment.
      const calls = Array.from({ length: B }, (_, b) => {
        const flags = [...st.compReal[b], ...st.memReal[b]];
        const idx = flags.flatMap((f, j) => (f === 1 ? [j] : []));
        const attend = prepareDense(
          { ...dims, batch: 1, m: idx.length + n },
          { causal: true, scale, keyLength: lengths ? [idx.length + lengths[b]] : null, strategy: kernelStrategy },
          path,
        );
        return { idx, attend };
      });
      run = () =>
        tf.tidy(() => {
          const pk = tf.concat(past, 2);
          const pv = tf.concat(pastV, 2);
          const outs = calls.map(({ idx, attend }, b) => {
            const one = (x: tf.Tensor) => tf.slice(x, [b, 0, 0, 0], [1, -1, -1, -1]) as tf.Tensor4D;
            const kb = one(k);
            const vb = one(v);
            let kAll = kb;
            let vAll = vb;
            if (idx.length) {
              const index = tf.tensor1d(idx, 'int32');
              kAll = tf.concat([tf.gather(one(pk), index, 2), kb], 2) as tf.Tensor4D;
              vAll = tf.concat([tf.gather(one(pv), index, 2), vb], 2) as tf.Tensor4D;
            }
            return attend(one(q), kAll, vAll);
          });
          return (outs.length === 1 ? outs[0] : tf.concat(outs, 0)) as tf.Tensor4D;
        });
    }
    const output = run();
    let next: CompressiveState;
    try {
      next = this.update(st, q, k, v, segReal, dims);
    } catch (e) {
      output.dispose();
      throw e;
    }
    st.dispose();
    return { output, state: next };
  }

  /** The next state: memory = last L of [memory; segment], the pushed-out slots compressed and appended. */
  private update(st: CompressiveState, q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, segReal: Uint8Array[], dims: Dims): CompressiveState {
    const { memLength: L, compressedLength: Lc } = this.config;
    const { n, kvHeads, d, dv } = dims;
    const Lm = st.memoryLength;
    const Lm2 = Math.min(L, Lm + n);
    const P = Lm + n - Lm2;
    const catReal = st.memReal.map((f, b) => Uint8Array.from([...f, ...segReal[b]]));
    const memReal = catReal.map((f) => f.slice(P));
    const pushedReal = catReal.map((f) => f.slice(0, P));
    const newGroups = this.groupFlags(pushedReal);
    const Lcm = st.compressedLength;
    const Lc2 = Math.min(Lc, Lcm + P / this.config.rate);
    const compReal = st.compReal.map((f, b) => Uint8Array.from([...f, ...newGroups[b]]).slice(Lcm + newGroups[b].length - Lc2));
    const made: tf.Tensor[] = [];
    const keep = <T extends tf.Tensor | null>(t: T): T => {
      if (t) made.push(t);
      return t;
    };
    try {
      const cat = (mem: tf.Tensor4D | null, seg: tf.Tensor4D) => keep(mem ? (tf.concat([mem, seg], 2) as tf.Tensor4D) : seg);
      const catK = cat(st.memK, k);
      const catV = cat(st.memV, v);
      const part = (x: tf.Tensor4D, start: number, size: number) => (size > 0 ? keep(tf.slice(x, [0, 0, start, 0], [-1, -1, size, -1]) as tf.Tensor4D) : null);
      const memK = part(catK, P, Lm2);
      const memV = part(catV, P, Lm2);
      const pushedK = part(catK, 0, P);
      const pushedV = part(catV, 0, P);
      let compK: tf.Tensor4D | null = st.compK;
      let compV: tf.Tensor4D | null = st.compV;
      if (P > 0 && Lc > 0) {
        const addK = keep(this.compress(pushedK!, pushedReal, this.conv?.k ?? null));
        const addV = keep(this.compress(pushedV!, pushedReal, this.conv?.v ?? null));
        const joined = (old: tf.Tensor4D | null, add: tf.Tensor4D) => keep(old ? (tf.concat([old, add], 2) as tf.Tensor4D) : add);
        const jk = joined(st.compK, addK);
        const jv = joined(st.compV, addV);
        compK = keep(tf.slice(jk, [0, 0, jk.shape[2] - Lc2, 0], [-1, -1, Lc2, -1]) as tf.Tensor4D);
        compV = keep(tf.slice(jv, [0, 0, jv.shape[2] - Lc2, 0], [-1, -1, Lc2, -1]) as tf.Tensor4D);
      } else if (compK) {
        // Unchanged: the next state owns its own handle (the old state's are disposed).
        compK = keep(tf.clone(compK));
        compV = keep(tf.clone(compV!));
      }
      const lastQ = keep(tf.clone(q));
      const recording = recordingGradients();
      const own = (t: tf.Tensor4D | null): tf.Tensor4D | null => {
        if (!t) return null;
        // Kept: a state outlives any tf.tidy (or optimizer.minimize) around the step; step and dispose() free it.
        return tf.keep((recording ? stopGradient(t) : tf.clone(t)) as tf.Tensor4D);
      };
      const result = new CompressiveState(
        this.token,
        st.batch,
        { kvHeads, d, dv },
        st.position + n,
        own(memK),
        own(memV),
        own(compK),
        own(compV),
        own(lastQ),
        own(pushedK),
        own(pushedV),
        memReal,
        compReal,
        pushedReal,
      );
      return result;
    } finally {
      // Everything made here is owned through the clones above; the user's k, v, q and the old state are untouched.
      for (const t of made) if (t !== k && t !== v && !t.isDisposed) t.dispose();
    }
  }

  /**
   * The attention-reconstruction loss of the paper (§3.2), for training the compression:
   * with the last step's queries Q, the keys/values it pushed out of the memory (old memories
   * `K_old`, `V_old`, real slots only) and their compression `f(K_old)`, `f(V_old)` recomputed
   * with the current weights,
   * `loss = mean over (batch, head, query, dim) of (attn(Q, K_old, V_old) − attn(Q, f(K_old), f(V_old)))²`,
   * with `attn` softmax attention at the variant's scale over all real slots (no causal mask:
   * old memories precede every query), grouped heads as everywhere. Q and the old memories are
   * constants: the gradient reaches only the conv weights (`convK`, `convV`; with
   * `fn: 'mean' | 'max'` nothing is trained and the loss only measures the compression's error).
   * A state whose last step pushed nothing out (the memory was still filling up), or a fresh
   * state, gives 0. Does not consume the state.
   * @returns a scalar.
   */
  reconstructionLoss(state: CompressiveState): tf.Scalar {
    this.lifetime.check(this.id);
    const st = this.checkState(state, null);
    if (!st.pushedK || !st.lastQ) return tf.scalar(0);
    const q = st.lastQ;
    const [B, , , d] = q.shape;
    const scale = this.scaleFor(d);
    const attn = (k: tf.Tensor4D, v: tf.Tensor4D, real: Flags): tf.Tensor => {
      const flat = Uint8Array.from(real.flatMap((f) => Array.from(f)));
      return maskedAttention(q, k, v, boolTensor(flat, [B, 1, 1, k.shape[2]]), false, scale);
    };
    return tf.tidy(() => {
      const cK = this.compress(st.pushedK!, st.pushedReal, this.conv?.k ?? null);
      const cV = this.compress(st.pushedV!, st.pushedReal, this.conv?.v ?? null);
      const want = attn(st.pushedK!, st.pushedV!, st.pushedReal);
      const got = attn(cK, cV, this.groupFlags(st.pushedReal));
      return tf.mean(tf.square(tf.sub(want, got))) as tf.Scalar;
    });
  }

  /** Frees the conv weights (fn 'conv'); ends the variant (every later call throws AttentionError('this')); again, a no-op. */
  dispose(): void {
    if (!this.lifetime.end()) return;
    if (this.conv) {
      this.conv.k.dispose();
      this.conv.v.dispose();
      this.conv = null;
    }
  }
}

/** An explicit `[c, dim, dim]` weight, checked (nothing dispatched) and copied to the host. */
const hostWeight = (name: string, value: unknown, c: number) => hostSquareStack(name, value, c, 'c', 'group');

/**
 * Builds Compressive Transformer attention.
 *
 * @param config - `memLength` L (16), `compressedLength` Lc (= L), `rate` c (2), `fn` ('mean' |
 *   'max' | 'conv'; default 'mean'), for 'conv' `convWeights` {k: [c, d, d], v: [c, dv, dv]} or
 *   `seed` + `headDim` (+ `valueDim`), `trainable` (false), `scale` (1/√d). `causal: false` throws.
 * @throws AttentionError for a bad config (L not a multiple of c, an unknown fn, weights of the
 *   wrong shape, weights or seed with fn 'mean' / 'max', …).
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import { compressiveAttention } from 'attention-catalog/compressive';
 * declare const segments: [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D][]; // q, k, v of each segment
 * declare function use(output: tf.Tensor4D): void;
 * const optimizer = tf.train.adam(1e-3);
 * const attn = compressiveAttention({ memLength: 64, compressedLength: 64, rate: 4, fn: 'conv', headDim: 32, trainable: true });
 * let state = attn.initState(1);
 * for (const [q, k, v] of segments) {        // each [1, heads, 32, 32]
 *   const step = attn.step(q, k, v, state);  // consumes `state`
 *   state = step.state;
 *   use(step.output); step.output.dispose();
 *   // train the compression on the attention-reconstruction loss
 *   optimizer.minimize(() => attn.reconstructionLoss(state), false, attn.variables);
 * }
 * state.dispose();
 * attn.dispose();
 * ```
 */
export function compressiveAttention(config: CompressiveConfig = {}): CompressiveAttention {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new AttentionError('config', 'an object', show(config));
  checkConfigKeys(meta.id, config, ['memLength', 'compressedLength', 'rate', 'fn', 'convWeights', 'seed', 'headDim', 'valueDim', 'trainable', 'causal', 'scale']);
  if (config.causal !== undefined && !checkBool('config.causal', config.causal)) {
    throw new AttentionError('config.causal', 'true or omitted (compressive attention is causal within the segment by definition)', 'false');
  }
  const scale = checkScale(config.scale);
  const rate = config.rate === undefined ? 2 : checkInt('config.rate', config.rate, 1);
  const memLength = config.memLength === undefined ? 16 : checkInt('config.memLength', config.memLength, 0);
  if (memLength % rate !== 0) throw new AttentionError('config.memLength', `a multiple of rate = ${rate}`, `${memLength}`);
  const compressedLength = config.compressedLength === undefined ? memLength : checkInt('config.compressedLength', config.compressedLength, 0);
  const fn = config.fn === undefined ? 'mean' : config.fn;
  if (fn !== 'mean' && fn !== 'max' && fn !== 'conv') throw new AttentionError('config.fn', "'mean', 'max' or 'conv'", show(fn));
  const trainable = config.trainable === undefined ? false : checkBool('config.trainable', config.trainable);
  if (fn !== 'conv') {
    for (const key of ['convWeights', 'seed', 'headDim', 'valueDim'] as const) {
      if (config[key] !== undefined) throw new AttentionError(`config.${key}`, `nothing with fn '${fn}' (only 'conv' has weights)`, show(config[key]), "Set fn: 'conv' to use a learned compression.");
    }
    if (trainable) throw new AttentionError('config.trainable', `false with fn '${fn}' (only 'conv' has weights)`, 'true');
    const resolved: ResolvedCompressiveConfig = { memLength, compressedLength, rate, fn, causal: true, trainable };
    if (scale !== undefined) resolved.scale = scale;
    return new CompressiveAttention(Object.freeze(resolved), null);
  }
  if (config.convWeights !== undefined && config.seed !== undefined) throw new AttentionError('config.seed', 'either convWeights or seed, not both', 'both');
  const headGiven = config.headDim === undefined ? undefined : checkInt('config.headDim', config.headDim, 1);
  const valueGiven = config.valueDim === undefined ? undefined : checkInt('config.valueDim', config.valueDim, 1);
  let k: Float32Array;
  let v: Float32Array;
  let headDim: number;
  let valueDim: number;
  let seed: number | undefined;
  if (config.convWeights !== undefined) {
    const w = config.convWeights;
    if (typeof w !== 'object' || w === null || Array.isArray(w) || w instanceof tf.Tensor) throw new AttentionError('config.convWeights', '{ k: [c, d, d], v: [c, dv, dv] }', show(w));
    const hk = hostWeight('config.convWeights.k', (w as CompressiveConvWeights).k, rate);
    const hv = hostWeight('config.convWeights.v', (w as CompressiveConvWeights).v, rate);
    if (headGiven !== undefined && headGiven !== hk.dim) throw new AttentionError('config.headDim', `the conv weights' d = ${hk.dim}`, `${headGiven}`);
    if (valueGiven !== undefined && valueGiven !== hv.dim) throw new AttentionError('config.valueDim', `the conv weights' dv = ${hv.dim}`, `${valueGiven}`);
    k = hk.data;
    v = hv.data;
    headDim = hk.dim;
    valueDim = hv.dim;
  } else {
    if (headGiven === undefined) throw new AttentionError('config.headDim', "the head dim d of q and k (an integer >= 1), or explicit convWeights, with fn 'conv'", 'undefined');
    headDim = headGiven;
    valueDim = valueGiven ?? headGiven;
    seed = config.seed === undefined ? DEFAULT_SEED : checkInt('config.seed', config.seed, 0);
    ({ k, v } = compressiveConvWeights(rate, headDim, valueDim, seed));
  }
  // Through one op each, so that the weights live on the active backend's device from the start.
  const make = (data: Float32Array, dim: number) => ownedVariable(tf.tidy(() => tf.add(tf.tensor3d(data, [rate, dim, dim], 'float32'), 0)), trainable);
  const conv = { k: make(k, headDim), v: make(v, valueDim) };
  const resolved: ResolvedCompressiveConfig = { memLength, compressedLength, rate, fn, causal: true, trainable, headDim, valueDim, convWeights: config.convWeights !== undefined ? 'explicit' : 'seeded' };
  if (seed !== undefined) resolved.seed = seed;
  if (scale !== undefined) resolved.scale = scale;
  return new CompressiveAttention(Object.freeze(resolved), conv);
}
