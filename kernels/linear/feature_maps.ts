/**
 * The feature maps φ of kernelized attention, shared by `linear` and `performer`, as WGSL
 * snippets (for the fused kernel) and as tfjs ops (for the composite).
 *
 * | kind | φ(x) | stored for keys |
 * |---|---|---|
 * | `'elu+1'` | elu(x) + 1 (elementwise, F = d) | computed on the fly |
 * | `'relu'` | max(x, 0) (elementwise, F = d) | computed on the fly |
 * | `'favor-softmax'` | exp(x'·ω − ‖x'‖²/2) / √M, x' = x·√s | the exponent x'·ω − ‖x'‖²/2 |
 * | `'favor-relu'` | relu(x'·ω) / √M | relu(x'·ω) |
 *
 * Constant factors cancel in `φ(q)·Σφ(k)vᵀ / φ(q)·Σφ(k)`: the 1/√M of FAVOR+ is dropped, and
 * the softmax kernel is evaluated in a stabilized form (see {@link isExpKind}).
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';

/** A feature map of the linear-attention kernel. */
/**
 * A feature map of the linear-attention kernel. `'identity'` (φ(x) = x) is internal: the fused
 * backward runs its reverse scans as linear attention with identity features (`backward.ts`).
 */
export type FeatureKind = 'elu+1' | 'relu' | 'favor-softmax' | 'favor-relu' | 'identity';

/** FAVOR+ maps project x onto random features ω (omega `[d, M]`); elementwise ones do not. */
export function isProjectedKind(kind: FeatureKind): boolean {
  return kind === 'favor-softmax' || kind === 'favor-relu';
}

/**
 * The FAVOR+ softmax kernel is evaluated from exponents, never from raw exp(·), so nothing
 * overflows. A key's features are kept as exponents `L_jf = k'_j·ω_f − ‖k'_j‖²/2`; a query's as
 * `qw_f = q'·ω_f` (its −‖q'‖²/2 is one factor per query row, which cancels). Every key summed into
 * a state is scaled by `exp(−R_f)` with `R_f` the largest `L_jf` over the keys in that state
 * (one constant per feature, the same for every key of the state, so it is compensated exactly
 * by the query weight `exp(qw_f + R_f − A)`), and each query row subtracts `A`, an upper bound of
 * all its exponents built from the keys it may see only. Terms are then at most 1 and the
 * function is unchanged; causal rows never depend on future keys, not even through rounding.
 */
export function isExpKind(kind: FeatureKind): boolean {
  return kind === 'favor-softmax';
}

/** "No key" sentinel for running maxima of exponents (finite, so that differences stay defined). */
export const NO_KEY = -1e30;
/** {@link NO_KEY} as a WGSL literal. */
export const NO_KEY_WGSL = '-1.0e30';

/**
 * WGSL: `fn featureMap(x : vec4<f32>) -> vec4<f32>` for an elementwise kind (elu+1 or relu).
 * `select(f, t, c)` picks t where c holds; the unselected exp(x) of a large x is never used.
 */
export function elementwiseWgsl(kind: FeatureKind): string {
  if (kind === 'elu+1') return 'fn featureMap(x : vec4<f32>) -> vec4<f32> { return select(exp(x), x + vec4<f32>(1.0), x > vec4<f32>(0.0)); }';
  if (kind === 'relu') return 'fn featureMap(x : vec4<f32>) -> vec4<f32> { return max(x, vec4<f32>(0.0)); }';
  if (kind === 'identity') return 'fn featureMap(x : vec4<f32>) -> vec4<f32> { return x; }';
  throw new Error(`not an elementwise feature map: ${kind}`);
}

/** WGSL constant vec4 masking the padded lanes of the last feature vec4 (1 real, 0 padding). */
export function lastLaneMask(features: number): string {
  const r = features % 4;
  if (r === 0) return 'vec4<f32>(1.0)';
  return `vec4<f32>(${[0, 1, 2, 3].map((i) => (i < r ? '1.0' : '0.0')).join(', ')})`;
}

/** The composite's view of a feature map: query and key features as tfjs ops. */
export interface FeatureOps {
  kind: FeatureKind;
  /** Whether values are exponents (softmax kernel). */
  exp: boolean;
  /** `[..., d]` → `[..., F]`: φ(q), or the exponents `q'·ω` for the softmax kernel. */
  query(x: tf.Tensor): tf.Tensor;
  /** `[..., d]` → `[..., F]`: φ(k), or the exponents `k'·ω − ‖k'‖²/2` for the softmax kernel. */
  key(x: tf.Tensor): tf.Tensor;
}

/**
 * Builds the composite's feature ops. For FAVOR+ kinds, `omega` is `[d, M]` (owned by the caller)
 * and `xscale` the input scale (x' = x·xscale).
 */
export function featureOps(kind: FeatureKind, omega: tf.Tensor2D | null, xscale: number): FeatureOps {
  if (!isProjectedKind(kind)) {
    const phi = kind === 'elu+1' ? (x: tf.Tensor) => tf.tidy(() => tf.add(tf.elu(x), 1)) : kind === 'identity' ? (x: tf.Tensor) => tf.clone(x) : (x: tf.Tensor) => tf.relu(x);
    return { kind, exp: false, query: phi, key: phi };
  }
  if (!omega) throw new Error(`feature map ${kind} needs omega`);
  const project = (x: tf.Tensor) =>
    tf.tidy(() => {
      const d = x.shape[x.shape.length - 1];
      const xs = tf.mul(x, tf.scalar(xscale));
      const flat = tf.reshape(xs, [-1, d]);
      const xw = tf.reshape(tf.matMul(flat, omega), [...x.shape.slice(0, -1), omega.shape[1]]);
      return { xs, xw };
    });
  if (kind === 'favor-relu') {
    const f = (x: tf.Tensor) =>
      tf.tidy(() => {
        const { xw } = project(x);
        return tf.relu(xw);
      });
    return { kind, exp: false, query: f, key: f };
  }
  return {
    kind,
    exp: true,
    query: (x) => tf.tidy(() => project(x).xw),
    key: (x) =>
      tf.tidy(() => {
        const { xs, xw } = project(x);
        return tf.sub(xw, tf.mul(tf.sum(tf.square(xs), -1, true), 0.5));
      }),
  };
}
