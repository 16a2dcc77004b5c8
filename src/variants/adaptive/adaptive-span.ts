/**
 * `adaptive-span`: each head learns how far back (or around) it looks (Sukhbaatar et al.,
 * "Adaptive Attention Span in Transformers"). A soft mask with a learnable span z per head
 * weights the softmax:
 *
 * ```text
 * a_ij ∝ m_h(x) · exp(s · q_i·k_j)     normalized over j,   x = p_i − j (causal, x >= 0) or |p_i − j|
 * m_h(x) = clamp((R + z_h − x) / R, 0, 1),   z_h clamped to [0, S]
 * ```
 *
 * Keys with m = 0 (x >= R + z_h) are never read, so the cost is O(n·(z + R)), not O(n·m).
 * `z` is a `tf.Variable` (one value per query head; a query head h reads kv head
 * floor(h / (heads / kvHeads))). `spanLoss()` is the paper's L1 penalty Σ_h |z_h|, to add to the
 * training loss; `clampSpan()` clamps the variable into [0, S] after an optimizer step.
 *
 * Paths:
 * - fused (webgpu, forward only): the flash kernel in block-sparse mode over the band of S + R
 *   positions around each query, with the soft mask as its element rule (weights in (0, 1]:
 *   `l = l·c + w·e`); keys outside a head's z + R are skipped without being loaded. z is read on
 *   the device (never synchronously).
 * - composite (every backend, differentiable): banded gather of the S + R window per block of
 *   queries, memory O(n·(S + R)). Gradients with respect to z (and q, k, v) flow through it:
 *   while tfjs records gradients (`tf.grad`, `tf.variableGrads`, `optimizer.minimize`),
 *   `'auto'` picks it; `'kernel'` then throws. Its backward pass is written out (a
 *   `tf.customGrad`), so it needs none of tfjs's registered gradient functions (tfjs-core alone
 *   registers none; `@tensorflow/tfjs` registers them for the rest of a model).
 *
 * Paper: Sukhbaatar et al., "Adaptive Attention Span in Transformers", 2019,
 * https://arxiv.org/abs/1905.07799 .
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkHostBudget } from '../../core/budget.js';
import { ownedVariable } from '../../core/variables.js';
import { forwardOnlyKernel, recordingGradients, resolveImplementation } from '../../core/dispatch.js';
import { Lifetime } from '../../core/lifecycle.js';
import { AttentionError, show } from '../../core/errors.js';
import type { ApplyOptions, Attention, Complexity, Dims, Problem } from '../../core/types.js';
import { checkBool, checkConfigKeys, checkInt, checkScale, validateCall } from '../../core/validate.js';
import { bandComposite, bandCompositeBytes, bandCompositeWithGrad } from '../../../kernels/band/composite.js';
import { DISPATCH_OVERHEAD_BYTES, padCopyBytes, planningLimits } from '../../../kernels/shared/limits.js';
import { planFor, runFlash } from '../../../kernels/flash/kernel.js';
import type { BlockLayout, ElementRule } from '../../../kernels/flash/layout.js';
import { deriveLayout } from '../../../kernels/flash/derive.js';
import { abs, add, bindRule, compileRule, headParamOffset, J, keyIn, P, param, sub, type BoundRule, type RuleDecl } from '../../../kernels/flash/rule.js';
import { problemDims, problemPath } from '../../core/validate.js';
import { meta } from './adaptive-span.meta.js';

export { meta };

/** Config of {@link adaptiveSpanAttention}. */
export interface AdaptiveSpanConfig {
  /** Largest span S (an integer >= 1); z is clamped to [0, S]. Required. */
  maxSpan: number;
  /** Ramp length R of the soft mask (an integer >= 1). Default 32. */
  ramp?: number;
  /** Initial span per query head (`number[]` or a `tf.Tensor1D` of length heads). Default S/2 for each of `heads`. */
  z?: number[] | tf.Tensor1D;
  /** Number of query heads, when `z` is not given (then every z_h starts at S/2). */
  heads?: number;
  /** Whether z is trainable (a trainable `tf.Variable`, listed by `variables`). Default false (DESIGN.md, Training). */
  trainable?: boolean;
  /** Offsets x = p_i − j with x >= 0 only. Default `false` (x = |p_i − j|). */
  causal?: boolean;
  /** Score scale. Default `1 / sqrt(d)`. */
  scale?: number;
}

/** The resolved config. */
export interface ResolvedAdaptiveSpanConfig {
  maxSpan: number;
  ramp: number;
  heads: number;
  causal: boolean;
  scale?: number;
  trainable: boolean;
}

/** Block size (positions) of the fused path's band layout. */
const BLOCK = 32;

/**
 * The kernel's rule, stated once: keys within the reach `R + S` of the query, weighted by the
 * soft mask `clamp((R + z_h − |p − j|) / R, 0, 1)` (causal keeps `j <= p` in the kernel).
 */
export const ADAPTIVE_SPAN_RULE: RuleDecl = {
  allow: keyIn(sub(P, param('reach')), add(P, param('reach'))),
  ramp: { x: abs(sub(P, J)), span: 'z', ramp: 'R' },
};

/** Adaptive-span attention; see the module comment. */
export class AdaptiveSpanAttention implements Attention<ResolvedAdaptiveSpanConfig> {
  readonly id = meta.id;
  readonly family = meta.family;
  readonly complexity: Complexity = meta.complexity;
  private readonly layouts = new Map<string, BlockLayout>();
  private bound: BoundRule | null = null;
  private zVar: tf.Variable<tf.Rank.R1> | null;
  /** Disposed or live: every public method checks it first. */
  private readonly lifetime = new Lifetime();

  constructor(
    readonly config: Readonly<ResolvedAdaptiveSpanConfig>,
    z: tf.Variable<tf.Rank.R1>,
  ) {
    this.zVar = z;
  }

  /** The spans, one per query head (a `tf.Variable` owned by the variant; trainable with `trainable: true`). */
  get z(): tf.Variable<tf.Rank.R1> {
    this.lifetime.check(this.id);
    return this.zVar!;
  }

  /** The trainable variables: `[z]` with `trainable: true`, else none. */
  get variables(): tf.Variable[] {
    this.lifetime.check(this.id);
    return this.config.trainable ? [this.zVar!] : [];
  }

  /** The composite's bound, as `memoryBytes` reports it: O(n·(S + R)) windows and scores, plus the key-length mask. */
  private compositeBytes(dims: Dims, keyLength: boolean): number {
    return bandCompositeBytes(dims, this.reach(), this.config.causal) + (keyLength ? dims.batch * dims.m * 12 : 0);
  }

  /** Largest |p − j| with a nonzero weight: x < R + z <= R + S. */
  private reach(): number {
    return Math.ceil(this.config.ramp + this.config.maxSpan) - 1;
  }

  /** Soft mask weights for offsets x (float tensor), per head: `[heads, ...x.shape[1:]]`. */
  private maskOf(z: tf.Tensor, x: tf.Tensor): tf.Tensor {
    const { ramp, maxSpan, heads } = this.config;
    return tf.tidy(() => {
      const zc = tf.reshape(tf.clipByValue(z, 0, maxSpan), [heads, 1, 1]);
      return tf.clipByValue(tf.div(tf.sub(tf.add(zc, ramp), tf.abs(x)), ramp), 0, 1);
    });
  }

  /**
   * dL/dz from dL/dm `[heads, b, window]`: m = clamp((R + clamp(z, 0, S) − |x|)/R, 0, 1), so
   * dm/dz_h = 1/R where both clamps are inside their range (bounds included, as tfjs's clip
   * gradient), else 0.
   */
  private maskGrad(z: tf.Tensor, x: tf.Tensor, dw: tf.Tensor): tf.Tensor {
    const { ramp, maxSpan, heads } = this.config;
    return tf.tidy(() => {
      const inside = (t: tf.Tensor, lo: number, hi: number) => tf.cast(tf.logicalAnd(tf.greaterEqual(t, lo), tf.lessEqual(t, hi)), 'float32');
      const zc = tf.reshape(tf.clipByValue(z, 0, maxSpan), [heads, 1, 1]);
      const u = tf.div(tf.sub(tf.add(zc, ramp), tf.abs(x)), ramp);
      const perHead = tf.reshape(tf.sum(tf.mul(dw, inside(u, 0, 1)), [1, 2]), [heads]);
      return tf.mul(tf.div(perHead, ramp), inside(z, 0, maxSpan));
    });
  }

  /** The kernel's rule bound to this config: the spans' values live on the device (bounds [0, S] on the host). */
  private boundRule(): BoundRule {
    return (this.bound ??= bindRule(compileRule(ADAPTIVE_SPAN_RULE), { reach: this.reach(), R: this.config.ramp }, this.config.heads, { z: [0, this.config.maxSpan] }));
  }

  private bandLayout(n: number, m: number): BlockLayout {
    const key = `${n},${m}`;
    let layout = this.layouts.get(key);
    if (!layout) {
      layout = deriveLayout(this.boundRule(), n, m, this.config.causal, BLOCK);
      if (this.layouts.size > 16) this.layouts.clear();
      this.layouts.set(key, layout);
    }
    return layout;
  }

  /** The kernel's element rule, reading the spans from `params` (the bound rule's buffer with z, clamped, from the device). */
  private rule(params: tf.Tensor1D | null): ElementRule {
    const bound = this.boundRule();
    const zAt = headParamOffset(bound.compiled, 'z', this.config.heads);
    let host: Float32Array | null = null;
    return {
      key: bound.compiled.key,
      wgsl: bound.compiled.wgsl,
      params: params ? null : bound.params,
      paramsTensor: params,
      weight: (p, j, h) => {
        if (!bound.allowed(p, j, h)) return 0;
        host ??= params ? (params.dataSync() as Float32Array) : bound.params;
        return Math.min(1, Math.max(0, (this.config.ramp + host[zAt + h] - Math.abs(p - j)) / this.config.ramp));
      },
      seeks: true,
      init: true,
      seek: (p, j, h) => bound.seek(p, j, h),
    };
  }

  /** The rule's params buffer on the device: the bound rule's host values with the clamped spans spliced in. */
  private paramsTensor(): tf.Tensor1D {
    const bound = this.boundRule();
    const at = headParamOffset(bound.compiled, 'z', this.config.heads);
    const host = bound.params;
    return tf.tidy(() =>
      tf.concat([tf.tensor1d(host.subarray(0, at)), tf.clipByValue(this.z, 0, this.config.maxSpan), tf.tensor1d(host.subarray(at + this.config.heads))]),
    ) as tf.Tensor1D;
  }

  private checkHeads(dims: Dims): void {
    if (dims.heads !== this.config.heads) {
      throw new AttentionError('q', `${this.config.heads} query heads (one span z per head)`, `${dims.heads} heads`);
    }
  }

  /**
   * Attention of `q [batch, heads, n, d]` over `k [batch, kvHeads, m, d]`, `v [batch, kvHeads, m, dv]`.
   *
   * @returns `[batch, heads, n, dv]`
   * @throws AttentionError on any invalid input, before dispatch.
   */
  apply(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, options?: ApplyOptions): tf.Tensor4D {
    this.lifetime.check(this.id);
    const { dims, implementation, keyLength, kernelStrategy } = validateCall(q, k, v, options);
    this.checkHeads(dims);
    const scale = this.config.scale ?? 1 / Math.sqrt(dims.d);
    const recording = recordingGradients();
    const path = resolveImplementation(forwardOnlyKernel(implementation));
    if (path === 'kernel') {
      const layout = this.bandLayout(dims.n, dims.m);
      const plan = planFor(dims, { layout, rule: this.rule(null), strategy: kernelStrategy });
      const params = this.paramsTensor();
      try {
        return runFlash(q, k, v, dims, { causal: this.config.causal, scale, keyLength, layout, rule: this.rule(params) }, plan);
      } finally {
        params.dispose();
      }
    }
    checkHostBudget('the adaptive-span composite', this.compositeBytes(dims, keyLength !== null));
    const band = { causal: this.config.causal, scale, keyLength, reach: this.reach() };
    if (!recording) return bandComposite(q, k, v, dims, { ...band, weight: (x) => this.maskOf(this.z, x) });
    // Recording gradients: the band's own backward pass, with dL/dz from the soft mask.
    return bandCompositeWithGrad(this.z, q, k, v, dims, {
      ...band,
      weight: (z, x) => this.maskOf(z, x),
      weightGrad: (z, x, dw) => this.maskGrad(z, x, dw),
    });
  }

  /**
   * Upper bound of the intermediate bytes of `apply`: O(n) split partials plus the band layout
   * (fused), or O(n·(S + R)) windows and scores (composite).
   */
  memoryBytes(problem: Problem): number {
    this.lifetime.check(this.id);
    const dims = problemDims(problem);
    this.checkHeads(dims);
    const path = problemPath(problem);
    if (path === 'composite') return this.compositeBytes(dims, !!problem.keyLength);
    const { batch, n, m } = dims;
    const layout = this.bandLayout(n, m);
    const limits = planningLimits();
    const plan = planFor(dims, { layout, rule: this.rule(null) }, limits);
    const padCopies = padCopyBytes(dims, plan.dPad, plan.dvPad);
    // The layout as uploaded (twice: webgpu may stage uploads through a second buffer).
    const layoutBytes = 2 * (layout.rowStart.length + Math.max(3, 3 * layout.keyBlocks.length)) * 4;
    // Partials, padded copies, layout upload, rule parameters (and the concat's temporaries), key lengths, uniforms.
    return plan.partialBytes + padCopies + layoutBytes + 4 * this.boundRule().params.length * 4 + batch * 4 + 3 * DISPATCH_OVERHEAD_BYTES + 4096;
  }

  /** The L1 penalty on the spans, Σ_h |z_h| (a new scalar tensor; differentiable with respect to z). */
  spanLoss(): tf.Scalar {
    this.lifetime.check(this.id);
    // With its gradient (sign z) written out, so it trains with tfjs-core's empty gradient registry too.
    const l1 = tf.customGrad(((z: tf.Tensor, save: tf.GradSaveFunc) => {
      save([z]);
      return { value: tf.sum(tf.abs(z)), gradFunc: (dy: tf.Tensor, [zs]: tf.Tensor[]) => tf.mul(dy, tf.sign(zs)) };
    }) as unknown as Parameters<typeof tf.customGrad>[0]);
    return l1(this.z) as tf.Scalar;
  }

  /** Clamps z into [0, S] in place (call after an optimizer step, as the paper does). */
  clampSpan(): void {
    this.lifetime.check(this.id);
    const z = this.z;
    tf.tidy(() => z.assign(tf.clipByValue(z, 0, this.config.maxSpan) as tf.Tensor1D));
  }

  /** Frees the span variable and ends the variant (every later call throws AttentionError('this')); again, a no-op. */
  dispose(): void {
    if (!this.lifetime.end()) return;
    this.zVar?.dispose();
    this.zVar = null;
  }
}

/**
 * Builds adaptive-span attention.
 *
 * @param config - `maxSpan` S (required), `ramp` R (32), `z` (one per head) or `heads` (z = S/2
 * each), `causal` (false), `scale` (1/√d), `trainable` (false: z is then not trained by optimizers).
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import { adaptiveSpanAttention } from 'attention-catalog/adaptive-span';
 * const attn = adaptiveSpanAttention({ maxSpan: 256, heads: 8, causal: true, trainable: true });
 * const q = tf.randomNormal([1, 8, 1024, 64]) as tf.Tensor4D;
 * const opt = tf.train.adam(1e-2);
 * opt.minimize(() => tf.add(tf.mean(attn.apply(q, q, q)), tf.mul(1e-3, attn.spanLoss())) as tf.Scalar, false, [attn.z]);
 * attn.clampSpan();
 * ```
 */
export function adaptiveSpanAttention(config: AdaptiveSpanConfig): AdaptiveSpanAttention {
  if (typeof config !== 'object' || config === null) throw new AttentionError('config', 'an object', show(config));
  checkConfigKeys(meta.id, config, ['maxSpan', 'ramp', 'z', 'heads', 'causal', 'scale', 'trainable']);
  const trainable = config.trainable === undefined ? false : checkBool('config.trainable', config.trainable);
  const maxSpan = checkInt('config.maxSpan', config.maxSpan, 1);
  const ramp = config.ramp === undefined ? 32 : checkInt('config.ramp', config.ramp, 1);
  const causal = config.causal === undefined ? false : checkBool('config.causal', config.causal);
  const scale = checkScale(config.scale);
  let zInit: number[] | tf.Tensor1D;
  let heads: number;
  if (config.z !== undefined) {
    const z = config.z;
    if (z instanceof tf.Tensor) {
      // Copied into the variable without reading it (webgpu cannot read synchronously).
      if (z.isDisposed) throw new AttentionError('config.z', 'a live tensor', 'a disposed tensor');
      if (z.rank !== 1 || z.shape[0] === 0 || z.dtype !== 'float32') throw new AttentionError('config.z', 'a float32 tensor of shape [heads]', show(z));
      zInit = z as tf.Tensor1D;
      heads = z.shape[0];
    } else if (Array.isArray(z) && z.length > 0) {
      z.forEach((x, h) => {
        if (typeof x !== 'number' || !Number.isFinite(x)) throw new AttentionError(`config.z[${h}]`, 'a finite number', show(x));
      });
      zInit = z.slice();
      heads = z.length;
    } else {
      throw new AttentionError('config.z', 'one span per query head (number[] or tf.Tensor1D)', show(z));
    }
    if (config.heads !== undefined && checkInt('config.heads', config.heads, 1) !== heads) {
      throw new AttentionError('config.heads', `z's length ${heads}`, show(config.heads));
    }
  } else {
    if (config.heads === undefined) {
      throw new AttentionError('config.z', 'one initial span per query head, or config.heads (then every z_h starts at maxSpan / 2)', 'neither');
    }
    heads = checkInt('config.heads', config.heads, 1);
    zInit = new Array(heads).fill(maxSpan / 2);
  }
  const cfg: ResolvedAdaptiveSpanConfig = { maxSpan, ramp, heads, causal, trainable };
  if (scale !== undefined) cfg.scale = scale;
  // Through one op, so that z lives on the active backend's device from the start.
  const init = tf.tidy(() => tf.add(Array.isArray(zInit) ? tf.tensor1d(zInit, 'float32') : zInit, 0)) as tf.Tensor1D;
  const z = ownedVariable(init, trainable);
  return new AdaptiveSpanAttention(Object.freeze(cfg), z);
}
