/**
 * `transformer-xl`: segment-level recurrence with relative positional attention (Dai et al.,
 * "Transformer-XL"). A `step` attends the memory of earlier segments and the segment itself,
 * causally, with Transformer-XL's relative score:
 *
 * ```text
 * keys        [ memory (last L of earlier keys) ; segment ]        queries: the segment
 * score(i, j) = s · ( (q_i + u_h)·k_j  +  (q_i + v_h)·(wR_h · r_{p_i − j}) ),   j <= p_i
 * r_t         = [ sin(t / 10000^(2a/d)) for a < d/2 ; cos(t / 10000^(2a/d)) for a < d/2 ]
 * new memory  = the last L keys and values of [memory ; segment]
 * ```
 *
 * `(wR_h · r)[a] = Σ_b wR_h[a, b]·r[b]` (wR_h applied to r as a column vector). For an odd d the
 * first floor(d/2) entries of r are sines, the rest cosines (frequencies from a = 0 in each half).
 * `initState(batch)` starts with an empty memory (length 0, not L zero rows); `apply` is one
 * segment from that empty state (keys `[batch, kvHeads, m, d]`, queries the last n positions).
 * The state passed to `step` is consumed (its tensors are disposed); a state made by another
 * instance, or for other shapes, is an AttentionError. The memory is a constant in the gradient
 * (stop-gradient, as in the paper): it holds copies of earlier keys and values.
 *
 * On webgpu the relative term is a score modifier of the fused flash kernel: the rows
 * `wR_h·r_t` for t < n + L are built once per call as a `[heads, n + L, d]` table, and the
 * kernel adds `(q_i + v_h)·table[h, p_i − j]` to each score in its key loop — never an
 * `[n, n + L]` tensor (the per-row strategy). The composite (other backends) builds the
 * `[n, n + L]` scores, which is this entry's memory class per segment.
 *
 * `u`, `v` `[heads, d]` and `wR` `[heads, d, d]` are learned: seeded (u, v ~ N(0, 0.02²),
 * wR ~ N(0, 1/d)) from `heads` and `headDim`, or given; `trainable: true` makes them trainable
 * `tf.Variable`s (`variables`).
 *
 * Paper: Dai et al., "Transformer-XL: Attentive Language Models Beyond a Fixed-Length Context",
 * ACL 2019, https://arxiv.org/abs/1901.02860 .
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkHostBudget } from '../../core/budget.js';
import { ownedVariable } from '../../core/variables.js';
import { forwardOnlyKernel, resolveImplementation } from '../../core/dispatch.js';
import { constantOf, gatherDifferentiable } from '../../core/grad.js';
import { AttentionError, show } from '../../core/errors.js';
import { Lifetime } from '../../core/lifecycle.js';
import { checkOrigin, configFingerprint, decodeOrigin, nextIdentity } from '../../core/origin.js';
import { DEFAULT_SEED, SeededRandom } from '../../core/rng.js';
import type { ApplyOptions, Attention, Complexity, DecodeOrigin, Dims, Implementation, KernelStrategy, Problem } from '../../core/types.js';
import { checkBaseConfig, checkBool, checkInt, checkKernelStrategy, checkImplementation, problemDims, problemPath, validateCall, validateQKV } from '../../core/validate.js';
import { planFor, runFlash } from '../../../kernels/flash/kernel.js';
import { finiteKV, poisonRows } from '../../../kernels/shared/finite.js';
import { DISALLOWED_SCORE } from '../../../kernels/shared/masking.js';
import { DISPATCH_OVERHEAD_BYTES, padCopyBytes, planningLimits } from '../../../kernels/shared/limits.js';
import { keyValidity } from '../../../kernels/linear/composite.js';
import { meta } from './transformer-xl.meta.js';

export { meta };

type Param = tf.Tensor | number[] | number[][] | number[][][];

/** Config of {@link transformerXLAttention}. */
export interface TransformerXLConfig {
  /** Memory length L: keys and values kept from earlier segments. Default 128. */
  memLength?: number;
  /** Content bias u `[heads, d]`. */
  u?: tf.Tensor2D | number[][];
  /** Position bias v `[heads, d]`. */
  v?: tf.Tensor2D | number[][];
  /** Relative projection wR `[heads, d, d]`. */
  wR?: tf.Tensor3D | number[][][];
  /** Query heads and head dim of the seeded parameters (needed without explicit ones). */
  heads?: number;
  headDim?: number;
  /** Seed of u, v, wR. Default: the catalog's fixed seed. */
  seed?: number;
  /** Whether u, v, wR are trainable variables (listed by `variables`). Default false. */
  trainable?: boolean;
  /** Must be true or absent: Transformer-XL attends causally. */
  causal?: boolean;
  /** Score scale. Default `1 / sqrt(d)`. */
  scale?: number;
}

/** The resolved config. */
export interface ResolvedTransformerXLConfig {
  memLength: number;
  heads: number;
  headDim: number;
  seed: number;
  trainable: boolean;
  causal: true;
  scale?: number;
  /** `'explicit'` when u, v, wR were given, else `'seeded'`. */
  params: 'explicit' | 'seeded';
}

/** A Transformer-XL state: the memory keys and values (length 0 … L), and where it comes from. */
export interface TransformerXLState {
  /** Memory keys `[batch, kvHeads, length, d]`. */
  readonly k: tf.Tensor4D;
  /** Memory values `[batch, kvHeads, length, dv]`. */
  readonly v: tf.Tensor4D;
  readonly length: number;
  readonly origin: DecodeOrigin;
}

/** Options of {@link TransformerXLAttention.step}. */
export interface StepOptions {
  implementation?: Implementation;
  kernelStrategy?: KernelStrategy;
}

/** The sinusoid r_t for t = 0 … count − 1, row-major `[count, d]` (see the module comment). */
export function relativeEncoding(count: number, d: number): Float32Array {
  const out = new Float32Array(count * d);
  const half = Math.floor(d / 2);
  for (let t = 0; t < count; t++)
    for (let a = 0; a < d; a++) {
      const i = a < half ? a : a - half;
      const angle = t / 10000 ** ((2 * i) / d);
      out[t * d + a] = a < half ? Math.sin(angle) : Math.cos(angle);
    }
  return out;
}

/** The seeded u, v `[heads, d]` and wR `[heads, d, d]`, drawn in that order. */
export function transformerXLParams(heads: number, d: number, seed: number): { u: Float32Array; v: Float32Array; wR: Float32Array } {
  const rng = new SeededRandom(seed);
  const scaled = (count: number, sd: number) => {
    const x = rng.normals(count);
    for (let i = 0; i < x.length; i++) x[i] *= sd;
    return x;
  };
  const u = scaled(heads * d, 0.02);
  const v = scaled(heads * d, 0.02);
  const wR = scaled(heads * d * d, 1 / Math.sqrt(d));
  return { u, v, wR };
}

/** Transformer-XL attention; see the module comment. */
export class TransformerXLAttention implements Attention<ResolvedTransformerXLConfig> {
  readonly id = meta.id;
  readonly family = meta.family;
  readonly complexity: Complexity = meta.complexity;
  private readonly lifetime = new Lifetime();
  /** Stamped into this instance's states: another instance's state is refused. */
  private readonly fingerprint: string;

  constructor(
    readonly config: Readonly<ResolvedTransformerXLConfig>,
    private uVar: tf.Variable | null,
    private vVar: tf.Variable | null,
    private wRVar: tf.Variable | null,
  ) {
    this.fingerprint = configFingerprint(config, { instance: nextIdentity() });
  }

  /** Content bias u `[heads, d]` (a variable the instance owns). */
  get u(): tf.Variable {
    this.lifetime.check(this.id);
    return this.uVar!;
  }

  /** Position bias v `[heads, d]`. */
  get v(): tf.Variable {
    this.lifetime.check(this.id);
    return this.vVar!;
  }

  /** Relative projection wR `[heads, d, d]`. */
  get wR(): tf.Variable {
    this.lifetime.check(this.id);
    return this.wRVar!;
  }

  /** The trainable variables: `[u, v, wR]` with `trainable: true`, else none. */
  get variables(): tf.Variable[] {
    this.lifetime.check(this.id);
    return this.config.trainable ? [this.uVar!, this.vVar!, this.wRVar!] : [];
  }

  private checkDims(dims: Dims): void {
    const { heads, headDim } = this.config;
    if (dims.heads !== heads) throw new AttentionError('q', `${heads} query heads (u, v, wR have one row per head)`, `${dims.heads}`);
    if (dims.d !== headDim) throw new AttentionError('q', `head dim d = ${headDim} (u, v, wR)`, `d = ${dims.d}`);
  }

  /** A state with an empty memory for `batch` sequences (kvHeads, d, dv are those of the first step's inputs). */
  initState(batch: number, kvHeads = this.config.heads, dv = this.config.headDim): TransformerXLState {
    this.lifetime.check(this.id);
    checkInt('batch', batch, 1);
    checkInt('kvHeads', kvHeads, 1);
    checkInt('dv', dv, 1);
    const d = this.config.headDim;
    return {
      k: tf.zeros([batch, kvHeads, 0, d]) as tf.Tensor4D,
      v: tf.zeros([batch, kvHeads, 0, dv]) as tf.Tensor4D,
      length: 0,
      origin: decodeOrigin(this.id, this.fingerprint, { batch, heads: this.config.heads, kvHeads, group: this.config.heads / kvHeads, n: 0, m: 0, d, dv }),
    };
  }

  /**
   * One segment: `q [batch, heads, n, d]`, its keys and values `[batch, kvHeads, n, ·]`, attending
   * `[memory; segment]` causally with the relative score. Consumes `state` (disposes its tensors).
   *
   * @returns the output `[batch, heads, n, dv]` and the next state (memory = last L of [memory; segment])
   * @throws AttentionError for a state from another instance or for other shapes, or any invalid input, before dispatch
   */
  step(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, state: TransformerXLState, options: StepOptions = {}): { output: tf.Tensor4D; state: TransformerXLState } {
    this.lifetime.check(this.id);
    const seg = validateQKV(q, k, v);
    if (seg.m !== seg.n) throw new AttentionError('k', `a segment of n = ${seg.n} keys (as q)`, `m = ${seg.m}`);
    this.checkDims(seg);
    if (typeof state !== 'object' || state === null) throw new AttentionError('state', 'a state from initState or step', show(state));
    // An empty state takes the first segment's kvHeads and dv.
    const empty = state.length === 0 && state.origin?.kvHeads !== undefined;
    checkOrigin(state, decodeOrigin(this.id, this.fingerprint, empty ? { ...seg, kvHeads: state.origin.kvHeads, dv: state.origin.dv } : seg));
    if (state.k.isDisposed || state.v.isDisposed) throw new AttentionError('state', 'a live state (a state is consumed by the step it is given to)', 'a disposed state');
    if (typeof options !== 'object' || options === null) throw new AttentionError('options', 'an object', show(options));
    for (const key of Object.keys(options)) if (key !== 'implementation' && key !== 'kernelStrategy') throw new AttentionError(`options.${key}`, 'one of implementation, kernelStrategy', `unknown key '${key}'`);
    const implementation = checkImplementation(options.implementation ?? 'auto');
    const strategy = checkKernelStrategy(options.kernelStrategy);
    const L = state.length;
    const dims: Dims = { ...seg, m: L + seg.n };
    const run = this.prepare(dims, implementation, strategy, null);
    const keys = (L === 0 ? tf.clone(k) : tf.concat([state.k, k], 2)) as tf.Tensor4D;
    const values = (L === 0 ? tf.clone(v) : tf.concat([state.v, v], 2)) as tf.Tensor4D;
    let output: tf.Tensor4D;
    try {
      output = run(q, keys, values);
    } catch (e) {
      keys.dispose();
      values.dispose();
      throw e;
    }
    const keep = Math.min(this.config.memLength, dims.m);
    const next: TransformerXLState = {
      // The next memory is a constant of the gradient (stop-gradient): cut with the tape paused.
      k: constantOf([keys], (x) => tf.slice(x as tf.Tensor4D, [0, 0, dims.m - keep, 0], [-1, -1, keep, -1])),
      v: constantOf([values], (x) => tf.slice(x as tf.Tensor4D, [0, 0, dims.m - keep, 0], [-1, -1, keep, -1])),
      length: keep,
      origin: decodeOrigin(this.id, this.fingerprint, seg),
    };
    keys.dispose();
    values.dispose();
    state.k.dispose();
    state.v.dispose();
    return { output, state: next };
  }

  /**
   * One segment from an empty state: `q [batch, heads, n, d]` over `k [batch, kvHeads, m, d]`,
   * `v [batch, kvHeads, m, dv]` (queries the last n positions), causal, with the relative score.
   *
   * @returns `[batch, heads, n, dv]`
   */
  apply(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, options?: ApplyOptions): tf.Tensor4D {
    this.lifetime.check(this.id);
    const { dims, implementation, keyLength, kernelStrategy } = validateCall(q, k, v, options);
    this.checkDims(dims);
    return this.prepare(dims, implementation, kernelStrategy, keyLength)(q, k, v);
  }

  /** Checks and plans the call (before any dispatch); returns the attention over `[memory; segment]`. */
  private prepare(dims: Dims, implementation: Implementation, strategy: KernelStrategy, keyLength: number[] | tf.Tensor1D | null) {
    const path = resolveImplementation(forwardOnlyKernel(implementation));
    const scale = this.config.scale ?? 1 / Math.sqrt(dims.d);
    const plan = path === 'kernel' ? planFor(dims, { strategy, relative: true }) : null;
    if (!plan) checkHostBudget('the transformer-xl composite', this.bytes(dims, 'composite', keyLength !== null));
    return (q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D): tf.Tensor4D =>
      tf.tidy(() => {
        const { heads, d } = { heads: dims.heads, d: dims.d };
        const u = tf.reshape(this.uVar!, [1, heads, 1, d]);
        const vb = tf.reshape(this.vVar!, [1, heads, 1, d]);
        // Rows wR_h·r_t for every distance t < m: [heads, m, d].
        const r = tf.tensor2d(relativeEncoding(dims.m, d), [dims.m, d]);
        const table = tf.matMul(tf.tile(tf.expandDims(r, 0), [heads, 1, 1]) as tf.Tensor3D, this.wRVar! as tf.Tensor3D, false, true) as tf.Tensor3D;
        const qu = tf.add(q, u) as tf.Tensor4D;
        const qv = tf.add(q, vb) as tf.Tensor4D;
        if (plan) return runFlash(qu, k, v, dims, { causal: true, scale, keyLength, relative: { q: qv, table } }, plan);
        return relativeComposite(qu, qv, table, k, v, dims, scale, keyLength);
      });
  }

  /**
   * Upper bound of the intermediate bytes of `apply` (one segment, m keys): fused, the
   * `[heads, m, d]` relative table and its inputs, q + u and q + v, padding copies and the split
   * partials (O(n + m·d)); composite, the `[n, m]` content and position scores, the gathered
   * relative term, the mask and the weights.
   */
  memoryBytes(problem: Problem): number {
    this.lifetime.check(this.id);
    const dims = problemDims(problem);
    this.checkDims(dims);
    return this.bytes(dims, problemPath(problem), !!problem.keyLength);
  }

  private bytes(dims: Dims, path: 'kernel' | 'composite', keyLength: boolean): number {
    const { batch, heads, kvHeads, n, m, d, dv } = dims;
    const f = 4;
    const table = (m * d + 3 * heads * m * d) * f + 2 * heads * d * f;
    const biased = 2 * batch * heads * n * d * f;
    if (path === 'kernel') {
      const plan = planFor(dims, { relative: true }, planningLimits());
      const pads = padCopyBytes(dims, plan.dPad, plan.dvPad) + (plan.dPad - d ? (batch * heads * n + heads * m) * plan.dPad * f : 0);
      return Math.ceil((table + biased + pads + plan.partialBytes + batch * f) * 1.1) + 3 * DISPATCH_OVERHEAD_BYTES + 4096;
    }
    const nm = batch * heads * n * m * f;
    const finite = (2 + 2) * batch * kvHeads * m * (d + dv) * f + 2 * batch * kvHeads * m * f;
    const masks = (keyLength ? 2 : 1) * nm + 2 * n * m * f;
    return Math.ceil((table + biased + 16 * nm + masks + finite + batch * heads * n * dv * f * 3) * 1.2) + 8192;
  }

  /** Frees u, v, wR and ends the variant (later calls throw AttentionError('this')); again, a no-op. */
  dispose(): void {
    if (!this.lifetime.end()) return;
    for (const x of [this.uVar, this.vVar, this.wRVar]) x?.dispose();
    this.uVar = this.vVar = this.wRVar = null;
  }
}

/**
 * The composite: content scores (q + u)·k, position scores (q + v)·table[h, t] gathered at
 * t = p_i − j, causal and key-length masks as selections, softmax, times v. `[n, m]` per head.
 */
function relativeComposite(
  qu: tf.Tensor4D,
  qv: tf.Tensor4D,
  table: tf.Tensor3D,
  kIn: tf.Tensor4D,
  vIn: tf.Tensor4D,
  dims: Dims,
  scale: number,
  keyLength: number[] | tf.Tensor1D | null,
): tf.Tensor4D {
  const { batch, heads, kvHeads, n, m, d, dv } = dims;
  const G = heads / kvHeads;
  return tf.tidy(() => {
    // Finite copies of K and V: a masked key never reaches a row through 0·NaN.
    const fin = finiteKV(kIn, vIn);
    const k = fin.k as tf.Tensor4D;
    const v = fin.v as tf.Tensor4D;
    const content = tf.reshape(tf.matMul(tf.reshape(qu, [batch, kvHeads, G * n, d]), k, false, true), [batch, heads, n, m]);
    // (q + v)·table[h, t] for every t, then the entry at t = p_i − j.
    const qvH = tf.reshape(tf.transpose(qv, [1, 0, 2, 3]), [heads, batch * n, d]) as tf.Tensor3D;
    const byT = tf.transpose(tf.reshape(tf.matMul(qvH, table, false, true), [heads, batch, n, m]), [1, 0, 2, 3]);
    const offset = m - n;
    const iIdx = tf.reshape(tf.range(0, n, 1, 'int32'), [n, 1]);
    const jIdx = tf.reshape(tf.range(0, m, 1, 'int32'), [1, m]);
    const dist = tf.sub(tf.add(iIdx, tf.scalar(offset, 'int32')), jIdx);
    const flat = tf.reshape(tf.add(tf.mul(iIdx, tf.scalar(m, 'int32')), tf.clipByValue(dist, 0, m - 1)), [n * m]);
    const position = tf.reshape(gatherDifferentiable(tf.reshape(byT, [batch * heads, n * m]), tf.cast(flat, 'int32'), 1), [batch, heads, n, m]);
    const scores = tf.mul(tf.add(content, position), scale);
    let allowed: tf.Tensor = tf.reshape(tf.greaterEqual(dist, tf.scalar(0, 'int32')), [1, 1, n, m]);
    const valid = keyValidity(dims, keyLength);
    if (valid) allowed = tf.logicalAnd(allowed, tf.reshape(tf.cast(valid, 'bool'), [batch, 1, 1, m]));
    allowed = tf.broadcastTo(allowed, [batch, heads, n, m]);
    const masked = tf.where(allowed, scores, tf.fill([batch, heads, n, m], DISALLOWED_SCORE));
    const mx = constantOf([masked], (x) => tf.max(x, 3, true)); // a shift: a constant of the gradient
    const e = tf.where(allowed, tf.exp(tf.sub(masked, mx)), tf.zeros([batch, heads, n, m]));
    const sum = tf.sum(e, 3, true);
    const w = tf.div(e, tf.where(constantOf([sum], (x) => tf.greater(x, 0)), sum, tf.onesLike(sum)));
    const wG = tf.reshape(w, [batch * kvHeads, G * n, m]) as tf.Tensor3D;
    const out = tf.matMul(wG, tf.reshape(v, [batch * kvHeads, m, dv]) as tf.Tensor3D);
    const poisoned = poisonRows(out, wG, tf.reshape(fin.poison, [batch * kvHeads, m, 1]));
    return tf.reshape(poisoned, [batch, heads, n, dv]) as tf.Tensor4D;
  });
}

/** An explicit float32 parameter of an exact shape, as a new tensor (dispatches nothing but the copy). */
function ownParam(name: string, value: Param, shape: number[]): tf.Tensor {
  const want = `shape [${shape.join(', ')}]`;
  if (value instanceof tf.Tensor) {
    if (value.isDisposed) throw new AttentionError(name, 'a live tensor', 'a disposed tensor');
    if (value.dtype !== 'float32') throw new AttentionError(name, "dtype 'float32'", show(value.dtype));
    if (value.shape.length !== shape.length || value.shape.some((s, i) => s !== shape[i])) throw new AttentionError(name, want, `shape ${show(value.shape)}`);
    return value;
  }
  const flat: number[] = [];
  const walk = (x: unknown, depth: number): boolean => {
    if (depth === shape.length) {
      if (typeof x !== 'number' || !Number.isFinite(x)) return false;
      flat.push(x);
      return true;
    }
    return Array.isArray(x) && x.length === shape[depth] && x.every((y) => walk(y, depth + 1));
  };
  if (!walk(value, 0)) throw new AttentionError(name, `a tensor or nested array of finite numbers, ${want}`, show(Array.isArray(value) ? `an array of length ${value.length}` : typeof value));
  return tf.tensor(flat, shape, 'float32');
}

/** The leading dims an explicit parameter fixes, without copying it. */
function paramShape(name: string, value: Param, rank: number): number[] {
  if (value instanceof tf.Tensor) {
    if (value.rank !== rank) throw new AttentionError(name, `a tensor of rank ${rank}`, `shape ${show(value.shape)}`);
    return value.shape;
  }
  const out: number[] = [];
  let x: unknown = value;
  for (let i = 0; i < rank; i++) {
    if (!Array.isArray(x) || x.length === 0) throw new AttentionError(name, `a nested array of rank ${rank}`, show(typeof x));
    out.push(x.length);
    x = x[0];
  }
  return out;
}

/**
 * Builds Transformer-XL attention (stateful: `initState`, then `step` per segment).
 *
 * @param config - `memLength` L (128), `u`, `v` `[heads, d]` and `wR` `[heads, d, d]`, or `seed`
 * with `heads` and `headDim`; `trainable` (false), `scale` (1/√d). `causal: false` throws.
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import { transformerXLAttention } from 'attention-catalog/transformer-xl';
 * const xl = transformerXLAttention({ memLength: 512, heads: 8, headDim: 64 });
 * let state = xl.initState(1);
 * for (let s = 0; s < 4; s++) {
 *   const x = tf.randomNormal([1, 8, 256, 64]) as tf.Tensor4D;
 *   const { output, state: next } = xl.step(x, x, x, state); // state is consumed
 *   state = next;
 *   output.dispose();
 *   x.dispose();
 * }
 * state.k.dispose();
 * state.v.dispose();
 * xl.dispose();
 * ```
 */
export function transformerXLAttention(config: TransformerXLConfig = {}): TransformerXLAttention {
  const base = checkBaseConfig(meta.id, { ...config, causal: undefined }, ['memLength', 'u', 'v', 'wR', 'heads', 'headDim', 'seed', 'trainable']);
  if (config.causal !== undefined && !checkBool('config.causal', config.causal)) {
    throw new AttentionError('config.causal', 'true or absent (Transformer-XL attends its memory and segment causally)', 'false');
  }
  const memLength = config.memLength === undefined ? 128 : checkInt('config.memLength', config.memLength, 0);
  const trainable = config.trainable === undefined ? false : checkBool('config.trainable', config.trainable);
  const explicit = [config.u, config.v, config.wR].filter((x) => x !== undefined).length;
  if (explicit !== 0 && explicit !== 3) throw new AttentionError(config.u === undefined ? 'config.u' : config.v === undefined ? 'config.v' : 'config.wR', 'u, v and wR together (or none, seeded)', 'only some of them');
  if (explicit && config.seed !== undefined) throw new AttentionError('config.seed', 'either seed or explicit u, v, wR, not both', 'both');
  const seed = config.seed === undefined ? DEFAULT_SEED : checkInt('config.seed', config.seed, 0);
  let heads: number;
  let d: number;
  if (explicit) {
    [heads, d] = paramShape('config.u', config.u!, 2);
    if (config.heads !== undefined && checkInt('config.heads', config.heads, 1) !== heads) throw new AttentionError('config.heads', `u's first dimension ${heads}`, `${config.heads}`);
    if (config.headDim !== undefined && checkInt('config.headDim', config.headDim, 1) !== d) throw new AttentionError('config.headDim', `u's second dimension ${d}`, `${config.headDim}`);
  } else {
    if (config.heads === undefined) throw new AttentionError('config.heads', 'the number of query heads (it sizes the seeded u, v, wR)', 'undefined');
    if (config.headDim === undefined) throw new AttentionError('config.headDim', 'the head dim d (it sizes the seeded u, v, wR)', 'undefined');
    heads = checkInt('config.heads', config.heads, 1);
    d = checkInt('config.headDim', config.headDim, 1);
  }
  // Everything is checked but the explicit parameters' contents: copy them (or draw the seeded ones).
  let u0: tf.Tensor;
  let v0: tf.Tensor;
  let w0: tf.Tensor;
  if (explicit) {
    u0 = ownParam('config.u', config.u!, [heads, d]);
    v0 = ownParam('config.v', config.v!, [heads, d]);
    w0 = ownParam('config.wR', config.wR!, [heads, d, d]);
  } else {
    const p = transformerXLParams(heads, d, seed);
    u0 = tf.tensor2d(p.u, [heads, d]);
    v0 = tf.tensor2d(p.v, [heads, d]);
    w0 = tf.tensor3d(p.wR, [heads, d, d]);
  }
  // (A caller's tensor is the caller's: only the library's own are consumed.)
  const own = (t: tf.Tensor, given: unknown) => (given instanceof tf.Tensor ? tf.variable(t, trainable) : ownedVariable(t, trainable));
  const cfg: ResolvedTransformerXLConfig = { memLength, heads, headDim: d, seed, trainable, causal: true, params: explicit ? 'explicit' : 'seeded' };
  if (base.scale !== undefined) cfg.scale = base.scale;
  return new TransformerXLAttention(Object.freeze(cfg), own(u0, config.u), own(v0, config.v), own(w0, config.wR));
}
