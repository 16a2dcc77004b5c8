/**
 * `compressed`: memory-compressed attention. Keys and values are cut into blocks of `stride`
 * t positions (block c: positions c·t … c·t + t − 1, the last block possibly shorter) and each
 * block becomes one key and one value; queries then attend the ⌈m / t⌉ compressed keys.
 *
 * - `mode: 'mean'`: the mean of the block's real keys (values likewise).
 * - `mode: 'conv'`: a strided convolution, `k'_c = Σ_u k_{c·t+u}·K[u]` with `K[u]` a
 *   `[d, d]` matrix (`v'_c = Σ_u v_{c·t+u}·V[u]`, `V[u]` `[dv, dv]`); missing positions of a
 *   short block, and padding past `keyLength`, count as zero. `kernels` are given or drawn
 *   from `seed`.
 * - `causal`: compressed key c is allowed iff its last real position `min(c·t + t − 1, m − 1)`
 *   is `<= p_i`.
 * - `keyLength`: compression sees only the real keys; a block with none does not exist.
 *
 * ```text
 *   stride t = 3, m = 8:   keys  k0 k1 k2 | k3 k4 k5 | k6 k7
 *                          become  k'0    |   k'1    |  k'2     (3 keys instead of 8)
 * ```
 *
 * Complexity: time O(n·m/t·d + m·d), memory O(n·m/t) (composite scores) and O(m·d) for the
 * reduction; the fused kernel attends the compressed keys with O(n) memory.
 *
 * Paper: Liu et al., "Generating Wikipedia by Summarizing Long Sequences", 2018,
 * https://arxiv.org/abs/1801.10198 .
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { attendBlockSparseBytes, prepareBlockSparse, type SparseSpec } from '../../../kernels/flash/sparse_attend.js';
import { Exec, freesOnDispose, type Val } from '../../../kernels/flash/sparse_composite.js';
import { whereCopies } from '../../../kernels/shared/finite.js';
import { blockPool, poolFits } from '../../../kernels/pool/pool.js';
import { buildPart, range } from '../../../kernels/flash/parts.js';
import { AttentionError, show } from '../../core/errors.js';
import { ownedVariable } from '../../core/variables.js';
import { DEFAULT_SEED, seededConvWeights } from '../../core/rng.js';
import type { ApplyOptions, Attention, Complexity, Dims, Problem } from '../../core/types.js';
import { checkBool, checkInt, hostSquareStack, validateCall } from '../../core/validate.js';
import { checkHostBudget } from '../../core/budget.js';
import { kernelAvailable, recordingGradients, resolveImplementation } from '../../core/dispatch.js';
import { constantOf } from '../../core/grad.js';
import { Lifetime } from '../../core/lifecycle.js';
import { problemDims, problemPath } from '../../core/validate.js';
import { checkPatternConfig, elementRuleOf, type PatternBaseConfig } from '../pattern.js';
import { add, bindRule, compileRule, div, ge, keyIn, or, P, param, sub, type RuleDecl } from '../../../kernels/flash/rule.js';
import { meta } from './compressed.meta.js';

export { meta };

/** Convolution kernels of `mode: 'conv'`. */
export interface CompressedKernels {
  /** `[t, d, d]`: `K[u]` maps the key at offset u of a block (d in) to the compressed key (d out). */
  k: tf.Tensor | number[][][];
  /** `[t, dv, dv]`. */
  v: tf.Tensor | number[][][];
}

/** Config of {@link compressedAttention}. */
export interface CompressedConfig extends PatternBaseConfig {
  /** Stride t: positions per compressed key. Integer >= 1. Default 4. */
  stride?: number;
  /** `'mean'` (default) or `'conv'`. */
  mode?: 'mean' | 'conv';
  /** `mode: 'conv'` only: explicit kernels. Default: drawn from `seed` (normal, scaled by 1/sqrt(t·d)). */
  kernels?: CompressedKernels;
  /** `mode: 'conv'` only: seed of the drawn kernels. Default the library's fixed seed. */
  seed?: number;
  /**
   * `mode: 'conv'` only: the kernels are trainable `tf.Variable`s the variant owns (listed by
   * `variables`, freed by `dispose()`), `[t·d, d]` and `[t·dv, dv]`: from explicit kernels at
   * construction, else the seeded ones on the first call with those head dims. Default false.
   */
  trainable?: boolean;
}

type Resolved = Omit<CompressedConfig, 'kernels'> & { causal: boolean; stride: number; mode: 'mean' | 'conv'; seed: number; trainable: boolean };

interface HostKernels {
  k: Float32Array;
  v: Float32Array;
  d: number;
  dv: number;
}

/**
 * Compressed causality, stated once, on the kernel's positions over C compressed keys: key c is
 * allowed iff its last real position `min(c·t + t − 1, m − 1)` is at most the query's real
 * position `p + shift` (shift = m − C). The allowed keys are a prefix: every key once
 * `p + shift >= m − 1`, else keys `c <= floor((p + shift + 1) / t) − 1`.
 */
export const COMPRESSED_CAUSAL_RULE: RuleDecl = {
  allow: or(ge(add(P, param('shift')), sub(param('m'), 1)), keyIn(0, sub(div(add(add(P, param('shift')), 1), param('t')), 1))),
};

/** Memory-compressed attention; see the module doc. */
export class CompressedAttention implements Attention<Resolved> {
  readonly id = meta.id;
  readonly family = meta.family;
  readonly complexity: Complexity = meta.complexity;
  private readonly seeded = new Map<string, HostKernels>();
  /** `trainable: true`: the kernels as variables `[t·d, d]`, `[t·dv, dv]`, per head dims. */
  private readonly vars = new Map<string, { k: tf.Variable; v: tf.Variable }>();
  private readonly specs = new Map<string, SparseSpec>();
  /** Disposed or live: every public method checks it first. */
  private readonly lifetime = new Lifetime();

  constructor(
    readonly config: Readonly<Resolved>,
    private readonly explicit: HostKernels | null,
  ) {
    // Explicit kernels fix the head dims: their variables exist from the start.
    if (config.trainable && explicit) this.variablesFor(explicit.d, explicit.dv);
  }

  private kernelsFor(d: number, dv: number): HostKernels {
    if (this.explicit) {
      if (this.explicit.d !== d) throw new AttentionError('config.kernels.k', `shape [${this.config.stride}, ${d}, ${d}] (d of q and k)`, `[${this.config.stride}, ${this.explicit.d}, ${this.explicit.d}]`);
      if (this.explicit.dv !== dv) throw new AttentionError('config.kernels.v', `shape [${this.config.stride}, ${dv}, ${dv}] (dv of v)`, `[${this.config.stride}, ${this.explicit.dv}, ${this.explicit.dv}]`);
      return this.explicit;
    }
    const key = `${d},${dv}`;
    let w = this.seeded.get(key);
    if (!w) {
      w = { ...seededConvWeights(this.config.stride, d, dv, this.config.seed), d, dv };
      this.seeded.set(key, w);
    }
    return w;
  }

  /** The kernels used for head dims (d, dv), as host arrays `[t, d, d]` and `[t, dv, dv]` (mode 'conv'). */
  convKernels(d: number, dv?: number): { k: Float32Array; v: Float32Array } {
    this.lifetime.check(this.id);
    checkInt('d', d, 1);
    if (dv !== undefined) checkInt('dv', dv, 1);
    if (this.config.mode !== 'conv') throw new AttentionError('config.mode', "'conv' (mode 'mean' has no kernels)", show(this.config.mode));
    if (this.config.trainable) throw new AttentionError('this', "a variant built without trainable (trainable kernels live on the device: read them from 'variables')", 'trainable: true');
    const w = this.kernelsFor(d, dv ?? d);
    return { k: w.k.slice(), v: w.v.slice() };
  }

  /** The trainable variables (`trainable: true`, mode 'conv'): the k and v kernels of every head dims used so far, else none. */
  get variables(): tf.Variable[] {
    this.lifetime.check(this.id);
    return [...this.vars.values()].flatMap((x) => [x.k, x.v]);
  }

  /** The variables of head dims (d, dv), made from the explicit or seeded kernels on first use. */
  private variablesFor(d: number, dv: number): { k: tf.Variable; v: tf.Variable } {
    const key = `${d},${dv}`;
    let x = this.vars.get(key);
    if (!x) {
      const w = this.kernelsFor(d, dv);
      const t = this.config.stride;
      x = { k: ownedVariable(tf.tensor2d(w.k, [t * d, d]), true), v: ownedVariable(tf.tensor2d(w.v, [t * dv, dv]), true) };
      this.vars.set(key, x);
    }
    return x;
  }

  /** The attention over C compressed keys (one part, every key; compressed causality as a rule). */
  private spec(n: number, m: number, heads: number): SparseSpec {
    const C = Math.ceil(m / this.config.stride);
    const key = `${n},${m},${heads}`;
    let spec = this.specs.get(key);
    if (!spec) {
      const rule = this.config.causal
        ? elementRuleOf(bindRule(compileRule(COMPRESSED_CAUSAL_RULE), { t: this.config.stride, shift: m - C, m }, heads))
        : null;
      let parts: ReturnType<SparseSpec['composite']> | null = null;
      spec = {
        kernel: () => ({ layout: null, rule }),
        composite: () =>
          (parts ??= [buildPart({ groups: () => [range(0, n - 1)], keys: 'all', weight: (p, c) => (rule ? rule.weight(p, c, 0) : 1) }, n, C, heads, false)!]),
      };
      if (this.specs.size >= 4) this.specs.clear();
      this.specs.set(key, spec);
    }
    return spec;
  }

  /** Whether the reduction runs as the one-dispatch pooling kernel (webgpu, within its loop budget). */
  private pooledOnDevice(d: number, dv: number): boolean {
    const t = this.config.stride;
    return poolFits(this.config.mode, t, d, d) && poolFits(this.config.mode, t, dv, dv);
  }

  /**
   * Compresses K and V: `[batch, kvHeads, ⌈m/t⌉, d | dv]`, and the compressed key counts. With
   * `fused` (webgpu's fused path, no gradient recorded) one pooling dispatch per tensor
   * (kernels/pool); otherwise tfjs ops.
   * Written against {@link Exec} so that its bytes are counted exactly.
   */
  private reduce(ex: Exec, k: Val, v: Val, dims: Dims, keyLength: number[] | tf.Tensor1D | null, fused: boolean): { kc: Val; vc: Val; klc: number[] | tf.Tensor1D | null; klcVal: Val | null } {
    const { batch: B, kvHeads: KH, m, d, dv } = dims;
    const t = this.config.stride;
    const C = Math.ceil(m / t);
    // Real keys of batch element b: positions < lim[b] = min(m, keyLength[b]).
    let lim: Val;
    let klc: number[] | tf.Tensor1D | null = null;
    let klcVal: Val | null = null;
    const i = (x: number) => tf.scalar(x, 'int32');
    if (keyLength instanceof tf.Tensor) {
      const src = ex.input(keyLength, [B]);
      lim = ex.op([B, 1, 1, 1], () => tf.reshape(tf.minimum(src.t!, i(m)), [B, 1, 1, 1]));
      klcVal = ex.op([B], () => tf.floorDiv(tf.add(tf.minimum(src.t!, i(m)), i(t - 1)), i(t)), 2);
      klc = klcVal.t as tf.Tensor1D;
    } else {
      const lens = keyLength ?? new Array(B).fill(m);
      klc = keyLength ? lens.map((l) => Math.ceil(l / t)) : null;
      lim = ex.upload(Int32Array.from(lens), [B, 1, 1, 1], 'int32');
    }
    if (fused && this.pooledOnDevice(d, dv)) {
      // One dispatch per tensor (kernels/pool): lim [B, 1, 1, 1] is read as lim[b].
      const vars = this.config.mode === 'conv' && this.config.trainable && ex.real ? this.variablesFor(d, dv) : null;
      const pool = (x: Val, dim: number, weights: Float32Array | null, variable: tf.Variable | null): Val => {
        const wt = this.config.mode === 'conv' ? (variable ? ex.input(variable, [t * dim, dim]) : ex.upload(weights!, [t * dim, dim], 'float32')) : null;
        const out = ex.op([B, KH, C, dim], () => blockPool(this.config.mode, x.t as tf.Tensor4D, lim.t as tf.Tensor1D, t, wt?.t as tf.Tensor2D | undefined));
        if (wt) ex.free(wt);
        return out;
      };
      const w = this.config.mode === 'conv' ? this.kernelsFor(d, dv) : null;
      const kc = pool(k, d, w?.k ?? null, vars?.k ?? null);
      const vc = pool(v, dv, w?.v ?? null, vars?.v ?? null);
      ex.free(lim);
      return { kc, vc, klc, klcVal };
    }
    // tf.range builds its values on the host: an upload, which webgpu may stage (two buffers).
    const pos = ex.op([1, 1, C, t], () => tf.reshape(tf.range(0, C * t, 1, 'int32'), [1, 1, C, t]), 2);
    // True for a real position of a block, false for padding and keys past the length.
    const real = ex.op([B, 1, C, t], () => tf.less(pos.t!, lim.t!));
    ex.free(pos);
    const realCol = ex.view(real, [B, 1, C * t, 1]);
    // A block's keys with padding, keys past the length and non-finite entries *selected* to 0
    // (never multiplied by a zero weight: NaN or ±Inf in padding must not reach a pooled key), and
    // per block whether a real key had a non-finite entry (that pooled key is then NaN, as its
    // definition gives; a matMul over non-finite data could also leak it into other blocks on webgpu).
    const blocks = (x: Val, dim: number): { xb: Val; bad: Val } => {
      const padded = C * t === m ? ex.view(x, [B, KH, C * t, dim]) : ex.op([B, KH, C * t, dim], () => tf.pad(x.t!, [[0, 0], [0, 0], [0, C * t - m], [0, 0]]));
      // The tests are constants of the gradient: the keys reach the pooled keys through the selection only.
      const keep = ex.op([B, KH, C * t, dim], () => constantOf([padded.t!], (x) => tf.logicalAnd(tf.isFinite(x), realCol.t!)), 3);
      const kept = ex.op([B, KH, C * t, dim], () => tf.where(keep.t!, padded.t!, tf.zerosLike(padded.t!)), 2 + whereCopies());
      ex.free(padded);
      const badAll = ex.op([B, KH, C * t, dim], () => constantOf([keep.t!], (x) => tf.logicalAnd(realCol.t!, tf.logicalNot(x))), 3);
      ex.free(keep);
      const badView = ex.reshape(badAll, [B, KH, C, t * dim]);
      const bad = ex.op([B, KH, C, 1], () => constantOf([badView.t!], (x) => tf.any(x, -1, true)));
      ex.free(badView);
      return { xb: ex.reshape(kept, [B * KH * C, t, dim]), bad };
    };
    /** A pooled key `[B, KH, C, dim]` with NaN where its block had a non-finite real entry. */
    const poisoned = (pooled: Val, bad: Val): Val => {
      const out = ex.op(pooled.shape, () => tf.where(bad.t!, tf.fill(pooled.shape, Number.NaN), pooled.t!), 2 + whereCopies());
      ex.free(pooled, bad);
      return out;
    };
    let kc: Val;
    let vc: Val;
    if (this.config.mode === 'mean') {
      // Mean as a product with per-block weights valid / count: [B·KH·C, 1, t] × [B·KH·C, t, dim].
      const starts = ex.op([1, 1, C, 1], () => tf.reshape(tf.range(0, C * t, t, 'int32'), [1, 1, C, 1]));
      const count = ex.op([B, 1, C, 1], () => tf.cast(tf.maximum(tf.minimum(tf.sub(lim.t!, starts.t!), i(t)), i(1)), 'float32'), 4);
      ex.free(starts);
      const w = ex.op([B, 1, C, t], () => tf.div(tf.cast(real.t!, 'float32'), count.t!), 2);
      ex.free(count);
      const wb = ex.reshape(ex.op([B, KH, C, t], () => tf.broadcastTo(w.t!, [B, KH, C, t])), [B * KH * C, 1, t]);
      ex.free(w);
      const mean = (x: Val, dim: number) => {
        const { xb, bad } = blocks(x, dim);
        const out = ex.op([B * KH * C, 1, dim], () => tf.matMul(wb.t!, xb.t!));
        ex.free(xb);
        return poisoned(ex.reshape(out, [B, KH, C, dim]), bad);
      };
      kc = mean(k, d);
      vc = mean(v, dv);
      ex.free(wb);
    } else {
      const w = this.kernelsFor(d, dv);
      // Trainable: the variables (on the device, read by the matMul); else the host kernels, uploaded.
      const vars = this.config.trainable && ex.real ? this.variablesFor(d, dv) : null;
      const conv = (x: Val, dim: number, weights: Float32Array, variable: tf.Variable | null) => {
        const { xb, bad } = blocks(x, dim);
        const masked = ex.reshape(xb, [B * KH * C, t * dim]);
        const wt = variable ? ex.input(variable, [t * dim, dim]) : ex.upload(weights, [t * dim, dim], 'float32');
        const out = ex.op([B * KH * C, dim], () => tf.matMul(masked.t!, wt.t!));
        ex.free(masked, wt);
        return poisoned(ex.reshape(out, [B, KH, C, dim]), bad);
      };
      kc = conv(k, d, w.k, vars?.k ?? null);
      vc = conv(v, dv, w.v, vars?.v ?? null);
    }
    ex.free(realCol, real, lim);
    return { kc, vc, klc, klcVal };
  }

  /**
   * Attention of `q [batch, heads, n, d]` over the compressed `k`, `v`. Returns `[batch, heads, n, dv]`.
   * @throws AttentionError on any invalid input, before anything is dispatched.
   */
  apply(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, options?: ApplyOptions): tf.Tensor4D {
    this.lifetime.check(this.id);
    const { dims, implementation, keyLength: given, kernelStrategy } = validateCall(q, k, v, options);
    if (this.config.mode === 'conv') this.kernelsFor(dims.d, dims.dv);
    const C = Math.ceil(dims.m / this.config.stride);
    const inner: Dims = { ...dims, m: C };
    const spec = this.spec(dims.n, dims.m, dims.heads);
    const scale = this.config.scale ?? 1 / Math.sqrt(dims.d);
    // Everything is checked and planned before the reduction dispatches anything.
    const attend = prepareBlockSparse(inner, { causal: false, scale, keyLength: given ? new Array(dims.batch).fill(C) : null, strategy: kernelStrategy }, spec, implementation);
    if (resolveImplementation(implementation) === 'composite') {
      // The whole composite (reduction + attention) against the host-memory budget: memoryBytes' own bound.
      const { batch, heads, kvHeads, n, m, d, dv } = dims;
      checkHostBudget('the compressed composite', this.memoryBytes({ batch, heads, kvHeads, n, m, d, dv, implementation: 'composite', keyLength: given !== null }));
    }
    const ex = new Exec(true);
    // The pooling kernel on webgpu's fused path; the (differentiable) ops while gradients are recorded.
    const fused = resolveImplementation(implementation) === 'kernel' && !recordingGradients();
    const { kc, vc, klc, klcVal } = this.reduce(ex, ex.input(k, k.shape), ex.input(v, v.shape), dims, given, fused);
    try {
      return attend(q, kc.t as tf.Tensor4D, vc.t as tf.Tensor4D, klc);
    } finally {
      ex.free(kc, vc);
      if (klcVal) ex.free(klcVal);
    }
  }

  /** Upper bound of the intermediate bytes of `apply`: the reduction (O(m·d)) plus attention over ⌈m/t⌉ keys. */
  memoryBytes(problem: Problem): number {
    this.lifetime.check(this.id);
    const dims = problemDims(problem);
    const path = problemPath(problem);
    const ex = new Exec(false);
    const kl = problem.keyLength ? new Array(dims.batch).fill(dims.m) : null;
    this.reduce(ex, ex.input(null, [dims.batch, dims.kvHeads, dims.m, dims.d]), ex.input(null, [dims.batch, dims.kvHeads, dims.m, dims.dv]), dims, kl, path === 'kernel' && kernelAvailable());
    const C = Math.ceil(dims.m / this.config.stride);
    return (freesOnDispose() ? ex.peak : ex.bytes) + attendBlockSparseBytes({ ...dims, m: C }, path, this.spec(dims.n, dims.m, dims.heads), !!problem.keyLength);
  }

  /** Frees the trainable kernels (host kernels are uploaded per call) and ends the variant (every later call throws AttentionError('this')); again, a no-op. */
  dispose(): void {
    if (!this.lifetime.end()) return;
    this.specs.clear();
    for (const x of this.vars.values()) [x.k, x.v].forEach((t) => t.dispose());
    this.vars.clear();
  }
}

/** An explicit `[t, dim, dim]` kernel, checked and copied to the host (nothing dispatched). */
const hostKernel = (name: string, value: unknown, t: number) => hostSquareStack(name, value, t, 't', 'block');

/**
 * Builds memory-compressed attention.
 *
 * @param config - `stride` (default 4), `mode` ('mean' default | 'conv'), `kernels` or `seed` (conv), `causal` (default false), `scale` (default 1/sqrt(d)).
 * @throws AttentionError for a bad config (e.g. kernels with mode 'mean', or of the wrong shape).
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import { compressedAttention } from 'attention-catalog/compressed';
 * const q = tf.randomNormal([1, 4, 4096, 64]) as tf.Tensor4D;
 * const out = compressedAttention({ stride: 8, causal: true }).apply(q, q, q); // over 512 mean keys
 * const conv = compressedAttention({ stride: 8, mode: 'conv', seed: 3 });      // learned-convolution mode
 * ```
 */
export function compressedAttention(config: CompressedConfig = {}): CompressedAttention {
  const base = checkPatternConfig(meta.id, config, ['stride', 'mode', 'kernels', 'seed', 'trainable']);
  const stride = config.stride === undefined ? 4 : checkInt('config.stride', config.stride, 1);
  const mode = config.mode === undefined ? 'mean' : config.mode;
  if (mode !== 'mean' && mode !== 'conv') throw new AttentionError('config.mode', "'mean' or 'conv'", show(mode));
  if (mode === 'mean' && (config.kernels !== undefined || config.seed !== undefined)) {
    throw new AttentionError(config.kernels !== undefined ? 'config.kernels' : 'config.seed', "no kernels or seed with mode 'mean'", 'one', "Set mode: 'conv' to use a learned convolution.");
  }
  if (config.kernels !== undefined && config.seed !== undefined) throw new AttentionError('config.seed', 'either kernels or seed, not both', 'both');
  const seed = config.seed === undefined ? DEFAULT_SEED : checkInt('config.seed', config.seed, 0);
  const trainable = config.trainable === undefined ? false : checkBool('config.trainable', config.trainable);
  if (trainable && mode === 'mean') throw new AttentionError('config.trainable', "false with mode 'mean' (a mean has no weights)", 'true', "Set mode: 'conv' to learn the compression.");
  let explicit: HostKernels | null = null;
  if (config.kernels !== undefined) {
    const kk = config.kernels;
    if (typeof kk !== 'object' || kk === null) throw new AttentionError('config.kernels', '{ k: [t, d, d], v: [t, dv, dv] }', show(kk));
    const k = hostKernel('config.kernels.k', (kk as CompressedKernels).k, stride);
    const v = hostKernel('config.kernels.v', (kk as CompressedKernels).v, stride);
    explicit = { k: k.data, v: v.data, d: k.dim, dv: v.dim };
  }
  return new CompressedAttention(Object.freeze({ ...base, stride, mode, seed, trainable }), explicit);
}
