/**
 * The class behind `dense` and `multi-query` (exact attention over shared or grouped K/V heads,
 * with a KV-cache decode). Not a catalog entry: the entries' modules build it.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { AttentionError, show } from '../core/errors.js';
import type { ApplyOptions, Attention, Complexity, DecodeState, Dims, Family, Implementation, Problem } from '../core/types.js';
import {
  checkDecodeOptions,
  checkTensor4D,
  validateCall,
  problemDims, problemPath,
  validateQKV,
} from '../core/validate.js';
import { Lifetime } from '../core/lifecycle.js';
import { checkOrigin, configFingerprint, decodeOrigin } from '../core/origin.js';
import { attendDense, attendDenseBytes, prepareDense } from '../../kernels/flash/attend.js';

/** Config of {@link denseAttention}. */
export interface DenseConfig {
  /** Key j is allowed only if `j <= i + (m − n)`. Default `false`. */
  causal?: boolean;
  /** Score scale. Default `1 / sqrt(d)`. */
  scale?: number;
}

/** The result of one {@link DenseAttention.decode} step. */
export interface DecodeResult {
  /** `[batch, heads, t, dv]` for the t new positions. */
  output: tf.Tensor4D;
  /** The grown cache (the state passed in has been disposed). */
  state: DecodeState;
}

/**
 * Dense attention over shared or grouped K/V heads; the class behind `dense` and `multi-query`.
 */
export class DenseAttention<C extends DenseConfig = DenseConfig> implements Attention<C> {
  /** Disposed or live: every method checks it first. */
  private readonly lifetime = new Lifetime();

  constructor(
    readonly id: string,
    readonly family: Family,
    readonly config: Readonly<C & { causal: boolean }>,
    /** The entry's catalog complexity (its `meta.complexity`). */
    readonly complexity: Complexity,
  ) {}

  /** Extra head-grouping rule of a subclass (multi-query, grouped-query). */
  protected checkHeads(_dims: Dims): void {}

  private scaleFor(d: number): number {
    return this.config.scale ?? 1 / Math.sqrt(d);
  }

  /**
   * Attention of `q [batch, heads, n, d]` over `k [batch, kvHeads, m, d]`, `v [batch, kvHeads, m, dv]`.
   *
   * @param options - `implementation` ('auto' | 'kernel' | 'composite'), `keyLength` (one valid key count per batch element), `kernelStrategy` ('auto' | 'rows' | 'tiled', the fused kernel's).
   * @returns `[batch, heads, n, dv]`
   * @throws AttentionError on any invalid input, before dispatch.
   */
  apply(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, options?: ApplyOptions): tf.Tensor4D {
    this.lifetime.check(this.id);
    const { dims, implementation, keyLength, kernelStrategy } = validateCall(q, k, v, options);
    this.checkHeads(dims);
    return attendDense(
      q,
      k,
      v,
      dims,
      { causal: this.config.causal, scale: this.scaleFor(dims.d), keyLength, strategy: kernelStrategy },
      implementation,
    );
  }

  /**
   * Upper bound of the intermediate bytes of `apply` for `problem` (inputs and output excluded).
   * Fused: O(n) (split partials); composite: O(n·m) (score matrices and mask).
   */
  memoryBytes(problem: Problem): number {
    this.lifetime.check(this.id);
    const dims = problemDims(problem);
    const path = problemPath(problem);
    return attendDenseBytes(dims, path, this.config.causal || !!problem.keyLength);
  }

  /**
   * One incremental decode step (needs `causal: true`): appends the new keys/values to the
   * cache and attends the new queries over it. The cache holds `[batch, kvHeads, length, d]`
   * keys and `[…, dv]` values: O(m·kvHeads·d) memory, K/V never repeated per query head.
   *
   * @param q - `[batch, heads, t, d]`, the t new positions' queries (usually t = 1)
   * @param k - `[batch, kvHeads, t, d]`
   * @param v - `[batch, kvHeads, t, dv]`
   * @param state - the previous step's state (consumed: its tensors are disposed), or undefined to
   *   start. It must come from this variant's decode (same config, batch, kvHeads, d, dv: its
   *   `origin` is checked), else AttentionError('state').
   * @param options - `implementation` ('auto' | 'kernel' | 'composite'), checked before anything is dispatched.
   * @example
   * ```ts
   * import * as tf from '@tensorflow/tfjs-core';
   * import type { DecodeState } from 'attention-catalog';
   * import { denseAttention } from 'attention-catalog/dense';
   * declare const tokens: [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D][]; // q, k, v of each new position: [batch, heads, 1, d]
   * declare function use(output: tf.Tensor4D): void;
   * const attn = denseAttention({ causal: true });
   * let state: DecodeState | undefined;
   * for (const [q, k, v] of tokens) {
   *   const step = attn.decode(q, k, v, state);
   *   state = step.state;
   *   use(step.output); step.output.dispose();
   * }
   * state?.k.dispose(); state?.v.dispose();
   * ```
   */
  decode(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, state?: DecodeState | null, options?: { implementation?: Implementation }): DecodeResult {
    this.lifetime.check(this.id);
    if (!this.config.causal) {
      throw new AttentionError('config.causal', 'true for decode (incremental decoding is causal)', 'false');
    }
    const implementation = checkDecodeOptions(options);
    const dims = validateQKV(q, k, v);
    this.checkHeads(dims);
    if (dims.n !== dims.m) {
      throw new AttentionError('k', `the new positions' keys: length t = ${dims.n} (as q)`, `${dims.m}`);
    }
    const origin = decodeOrigin(this.id, configFingerprint(this.config), dims);
    if (state) {
      checkTensor4D('state.k', state.k);
      checkTensor4D('state.v', state.v);
      const [sb, sh, sl, sd] = state.k.shape;
      if (sb !== dims.batch || sh !== dims.kvHeads || sd !== dims.d || state.v.shape[3] !== dims.dv || sl !== state.length) {
        throw new AttentionError(
          'state',
          `a cache of [${dims.batch}, ${dims.kvHeads}, length, ${dims.d}] keys and […, ${dims.dv}] values`,
          `${show(state.k.shape)} keys, ${show(state.v.shape)} values, length ${state.length}`,
        );
      }
      checkOrigin(state, origin);
    }
    const length = (state ? state.length : 0) + dims.n;
    // Validate first, then compute: the path is resolved and checked before the cache grows.
    const attend = prepareDense({ ...dims, m: length }, { causal: true, scale: this.scaleFor(dims.d), keyLength: null }, implementation);
    const cacheK = state ? tf.concat([state.k, k], 2) : tf.clone(k);
    const cacheV = state ? tf.concat([state.v, v], 2) : tf.clone(v);
    try {
      const output = attend(q, cacheK, cacheV);
      if (state) {
        state.k.dispose();
        state.v.dispose();
      }
      return { output, state: { k: cacheK, v: cacheV, length, origin } };
    } catch (e) {
      cacheK.dispose();
      cacheV.dispose();
      throw e;
    }
  }

  /** Dense attention owns no weights: ends the variant (every later call throws AttentionError('this')); again, a no-op. */
  dispose(): void {
    this.lifetime.end();
  }
}
