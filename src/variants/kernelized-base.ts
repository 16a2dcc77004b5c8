/**
 * The class behind `linear` and `performer`: kernelized attention with a feature map, on the fused
 * linear-attention kernel or its composite, with an O(F·dv) incremental decode. Not a catalog
 * entry: the entries' modules build it.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { AttentionError, show } from '../core/errors.js';
import { checkHostBudget } from '../core/budget.js';
import { resolveImplementation } from '../core/dispatch.js';
import { Lifetime } from '../core/lifecycle.js';
import { checkOrigin, configFingerprint, decodeOrigin } from '../core/origin.js';
import type { ApplyOptions, Attention, Complexity, DecodeOrigin, Dims, Family, Implementation, Problem } from '../core/types.js';
import { checkDecodeOptions, checkTensor4D, problemDims, problemPath, validateCall, validateQKV } from '../core/validate.js';
import { attendLinear, attendLinearBytes, linearTrainingImplementation } from '../../kernels/linear/attend.js';
import { causalChunks, disposeState, emptyState, type LinearState } from '../../kernels/linear/composite.js';
import { featureOps, isExpKind, type FeatureKind } from '../../kernels/linear/feature_maps.js';

/**
 * The state of an incremental decode of `linear` or `performer`: per (batch, kv head) the sums
 * over every position decoded so far. Its size is fixed (O(F·dv), F = d or the feature count M),
 * whatever the length.
 */
export interface KernelizedDecodeState {
  /** `Σ φ(k_j) v_jᵀ`: `[batch, kvHeads, F, dv]`. */
  s: tf.Tensor4D;
  /** `Σ φ(k_j)`: `[batch, kvHeads, 1, F]`. */
  z: tf.Tensor4D;
  /** FAVOR+ softmax kernel only: the running max of the key exponents per feature (`s` and `z` are held at scale exp(−r)), `[batch, kvHeads, 1, F]`; null otherwise. */
  r: tf.Tensor4D | null;
  /** Number of positions decoded. */
  length: number;
  /**
   * Which variant made this state: its id, a fingerprint of its config (performer: including the
   * seed, or the identity of explicit `omega`), and batch, kvHeads, d, dv. Every step checks it.
   */
  readonly origin: DecodeOrigin;
}

/** The result of one {@link KernelizedAttention.decode} step. */
export interface KernelizedDecodeResult {
  /** `[batch, heads, t, dv]` for the t new positions. */
  output: tf.Tensor4D;
  /** The new state (the state passed in has been disposed). */
  state: KernelizedDecodeState;
}

/** The feature map of one call: kind, count, ω and input scale. */
export interface FeatureSetup {
  kind: FeatureKind;
  features: number;
  /** FAVOR+: ω `[d, M]`, and whether the caller must dispose it after the call. */
  omega: tf.Tensor2D | null;
  ownsOmega: boolean;
  xscale: number;
}

/**
 * Linear attention with a feature map; the class behind `linear` and `performer`.
 */
export abstract class KernelizedAttention<C extends { causal?: boolean }> implements Attention<C> {
  /** Disposed or live: every public method checks it first ({@link KernelizedAttention.checkLive}). */
  private readonly lifetime = new Lifetime();
  abstract readonly id: string;
  abstract readonly family: Family;
  abstract readonly complexity: Complexity;
  abstract get config(): Readonly<C & { causal: boolean }>;

  /** The feature map for head dim d (may upload ω; validates config against d). */
  protected abstract setup(d: number): FeatureSetup;
  /** Feature kind and count for `memoryBytes` (no upload). */
  protected abstract featureShape(d: number): { kind: FeatureKind; features: number };
  /** Bytes a call uploads for its features (ω), counted in `memoryBytes`. */
  protected uploadBytes(_d: number): number {
    return 0;
  }

  /** Identities of explicit parameters, part of a decode state's config fingerprint (performer: its ω). */
  protected parameterIdentity(): Record<string, unknown> {
    return {};
  }

  /** Frees what the variant owns; called once, by the first `dispose()`. */
  protected release(): void {}

  /** Throws AttentionError('this') once the variant is disposed: the first statement of every public method (subclasses' too). */
  protected checkLive(): void {
    this.lifetime.check(this.id);
  }

  /** The bound `memoryBytes` reports, for validated dims (plans the kernel on 'kernel': throws AttentionError past the device's limits). */
  private bytesFor(dims: Dims, path: 'kernel' | 'composite', keyLength: boolean): number {
    const { kind, features } = this.featureShape(dims.d);
    return attendLinearBytes(dims, kind, features, this.config.causal, path, keyLength) + this.uploadBytes(dims.d);
  }

  /**
   * Attention of `q [batch, heads, n, d]` over `k [batch, kvHeads, m, d]`, `v [batch, kvHeads, m, dv]`.
   *
   * @param options - `implementation` ('auto' | 'kernel' | 'composite'), `keyLength` (one valid key count per batch element).
   * @returns `[batch, heads, n, dv]`
   * @throws AttentionError on any invalid input, before dispatch.
   */
  apply(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, options?: ApplyOptions): tf.Tensor4D {
    this.checkLive();
    const { dims, implementation, keyLength } = validateCall(q, k, v, options);
    // Validate first, then compute: config against d, the path (kernel plan, or the composite's
    // bytes against the host-memory budget) before ω is uploaded or anything dispatched.
    // While gradients are recorded: the kernel where its fused backward covers the call, else the composite.
    const path = resolveImplementation(linearTrainingImplementation(implementation, this.featureShape(dims.d).kind, this.config.causal, dims));
    const bytes = this.bytesFor(dims, path, keyLength !== null);
    if (path === 'composite') checkHostBudget(`the ${this.id} composite`, bytes);
    const f = this.setup(dims.d);
    try {
      return attendLinear(
        q,
        k,
        v,
        dims,
        { kind: f.kind, causal: this.config.causal, omega: f.omega, xscale: f.xscale, keyLength },
        implementation,
      );
    } finally {
      if (f.ownsOmega) f.omega?.dispose();
    }
  }

  /**
   * Upper bound of the intermediate bytes of `apply` for `problem` (inputs and output excluded):
   * O(n·F + F·dv) on both paths (F = d, or the feature count M).
   */
  memoryBytes(problem: Problem): number {
    this.checkLive();
    const dims = problemDims(problem);
    return this.bytesFor(dims, problemPath(problem), !!problem.keyLength);
  }

  /**
   * One incremental decode step (needs `causal: true`): the t new positions (usually 1) attend
   * everything decoded so far and each other causally, and are added to the state. The state
   * holds `S = Σ φ(k)vᵀ` and `z = Σ φ(k)` per kv head: O(F·dv), flat in the sequence length.
   * Every step equals a full causal recompute. Runs as tfjs ops on the active backend.
   *
   * @param q - `[batch, heads, t, d]`
   * @param k - `[batch, kvHeads, t, d]`
   * @param v - `[batch, kvHeads, t, dv]`
   * @param state - the previous step's state (consumed: its tensors are disposed), or undefined to
   *   start. It must come from this variant's decode (same config and features, batch, kvHeads, d,
   *   dv: its `origin` is checked), else AttentionError('state').
   * @param options - `implementation`: 'auto' or 'composite' (decode runs as tfjs ops on every
   *   backend; 'kernel' throws AttentionError: there is no fused decode kernel).
   * @example
   * ```ts
   * import * as tf from '@tensorflow/tfjs-core';
   * import { linearAttention, type KernelizedDecodeState } from 'attention-catalog/linear';
   * declare const tokens: [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D][]; // q, k, v of each new position: [batch, heads, 1, d]
   * declare function use(output: tf.Tensor4D): void;
   * const attn = linearAttention({ causal: true });
   * let state: KernelizedDecodeState | undefined;
   * for (const [q, k, v] of tokens) {
   *   const step = attn.decode(q, k, v, state);
   *   state = step.state;
   *   use(step.output); step.output.dispose();
   * }
   * if (state) tf.dispose([state.s, state.z, ...(state.r ? [state.r] : [])]);
   * ```
   */
  decode(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, state?: KernelizedDecodeState | null, options?: { implementation?: Implementation }): KernelizedDecodeResult {
    this.checkLive();
    if (!this.config.causal) {
      throw new AttentionError('config.causal', 'true for decode (incremental decoding is causal)', 'false');
    }
    const implementation = checkDecodeOptions(options);
    if (implementation === 'kernel') {
      throw new AttentionError('options.implementation', "'auto' or 'composite' (decode runs as tfjs ops on every backend: there is no fused decode kernel)", "'kernel'");
    }
    const dims = validateQKV(q, k, v);
    if (dims.n !== dims.m) throw new AttentionError('k', `the new positions' keys: length t = ${dims.n} (as q)`, `${dims.m}`);
    const { kind, features } = this.featureShape(dims.d);
    const exp = isExpKind(kind);
    const origin = decodeOrigin(this.id, configFingerprint(this.config, this.parameterIdentity()), dims);
    if (state) {
      this.checkState(state, dims, features, exp);
      checkOrigin(state, origin);
    }
    const f = this.setup(dims.d);
    const { batch, kvHeads, group, n: t, d, dv } = dims;
    const initial: LinearState = state ? { s: state.s, z: state.z, r: state.r } : emptyState(batch, kvHeads, features, dv, exp);
    try {
      const ops = featureOps(f.kind, f.omega, f.xscale);
      const fq = tf.tidy(() => ops.query(tf.reshape(q, [batch, kvHeads, group, t, d])));
      const fk = ops.key(k);
      const { out, state: next } = causalChunks(fq, fk, v, null, initial, exp);
      fq.dispose();
      fk.dispose();
      const output = tf.reshape(out, [batch, dims.heads, t, dv]) as tf.Tensor4D;
      out.dispose();
      disposeState(initial);
      return { output, state: { ...next, length: (state?.length ?? 0) + t, origin } };
    } catch (e) {
      if (!state) disposeState(initial);
      throw e;
    } finally {
      if (f.ownsOmega) f.omega?.dispose();
    }
  }

  /** Frees a decode state's tensors (the caller's: this also works after the variant's `dispose()`). */
  disposeState(state: KernelizedDecodeState | null | undefined): void {
    if (!state) return;
    state.s.dispose();
    state.z.dispose();
    state.r?.dispose();
  }

  private checkState(state: KernelizedDecodeState, dims: Dims, features: number, exp: boolean): void {
    checkTensor4D('state.s', state.s);
    checkTensor4D('state.z', state.z);
    if (exp) checkTensor4D('state.r', state.r);
    const want = (shape: number[], sh: number[]) => shape.length === sh.length && shape.every((x, i) => x === sh[i]);
    const { batch, kvHeads, dv } = dims;
    const ok =
      want(state.s.shape, [batch, kvHeads, features, dv]) &&
      want(state.z.shape, [batch, kvHeads, 1, features]) &&
      (!exp || want(state.r!.shape, [batch, kvHeads, 1, features])) &&
      Number.isInteger(state.length) &&
      state.length >= 0;
    if (!ok) {
      throw new AttentionError(
        'state',
        `a decode state with s [${batch}, ${kvHeads}, ${features}, ${dv}], z [${batch}, ${kvHeads}, 1, ${features}]${exp ? ', r as z' : ''}`,
        `s ${show(state.s.shape)}, z ${show(state.z.shape)}${exp ? `, r ${show(state.r?.shape)}` : ''}, length ${show(state.length)}`,
      );
    }
  }

  /** Frees weights the variant owns (none for `linear`) and ends the variant: every later call throws AttentionError('this'); again, a no-op. */
  dispose(): void {
    if (this.lifetime.end()) this.release();
  }
}
