/**
 * `moeLayer`: a top-k router plus E expert FFNs (d → hidden → d), with index-based dispatch and
 * combine, and PR-MoE's residual branch (DESIGN.md "Mixture of experts").
 *
 * ```
 * x [T, d] ─ router ─► expert, slot, gate [T, k]
 *          ─ gather by (expert, slot) ─► X [E, capacity, d] ─ FFN_e (one batched matmul per layer) ─► Y [E, capacity, d]
 * y_t = Σ_r gate[t, r] · Y[expert[t, r], slot[t, r]]          (a gather back, weighted; a dropped choice adds 0)
 * PR-MoE: y_t += MLP(x_t), or y_t = c_0·y_t + c_1·MLP(x_t) with [c_0, c_1] = softmax(x_t·Wc)
 * ```
 *
 * Never a `[T, E, capacity]` tensor: the dispatch is a gather of token rows through a slot table
 * `[E·capacity]` (built by one scatter of the kept choices' token indices), the combine a gather
 * of `[T·k]` expert-output rows. Everything runs as tfjs ops on the active backend's device
 * (webgpu included: no host round trip but the ones a shape needs, see `router.ts`).
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { AttentionError, show } from '../core/errors.js';
import { constantOf, gatherDifferentiable } from '../core/grad.js';
import { Lifetime } from '../core/lifecycle.js';
import { DEFAULT_SEED, SeededRandom } from '../core/rng.js';
import { checkBool, checkConfigKeys, checkInt } from '../core/validate.js';
import { ownedVariable } from '../core/variables.js';
import {
  checkRoutingRules,
  ROUTING_KEYS,
  withRoute,
  withRouteAsync,
  type Prepared,
  type RouteOptions,
  type RoutingConfig,
  type RoutingRules,
  type TopKRoute,
} from './router.js';

/** The experts' activation: `'relu'` or the exact `'gelu'` x·Φ(x). */
export type MoEActivation = 'relu' | 'gelu';

/** A weight given explicitly: a tensor or a nested number array of the stated shape. */
export type WeightInput = tf.Tensor | number[] | number[][] | number[][][];

/** Config of {@link moeLayer}: the routing keys, then the layer's. */
export interface MoELayerConfig extends RoutingConfig {
  /** Router weights `[d, E]`. Default: seeded. */
  weights?: WeightInput;
  /** Model dim d. Required unless a weight implies it. */
  dim?: number;
  /** Hidden size of every expert (and of the residual MLP). Default `4·d`, or what the expert weights say. */
  hidden?: number;
  /** `'relu'` (default) or `'gelu'` (exact). */
  activation?: MoEActivation;
  /** PR-MoE: add a dense MLP branch of the same shape (y_t += MLP(x_t)). Default false. */
  residual?: boolean;
  /** DeepSpeed's coefficient form (implies `residual`): y_t = c_0·moe_t + c_1·MLP(x_t), [c_0, c_1] = softmax(x_t·Wc). Default false. */
  residualCoefficient?: boolean;
  /** Expert weights `{ w1 [E, d, hidden], b1 [E, hidden], w2 [E, hidden, d], b2 [E, d] }` (biases default to zeros). */
  expertWeights?: { w1: WeightInput; b1?: WeightInput; w2: WeightInput; b2?: WeightInput };
  /** Residual MLP weights `{ w1 [d, hidden], b1 [hidden], w2 [hidden, d], b2 [d] }` (biases default to zeros). */
  residualWeights?: { w1: WeightInput; b1?: WeightInput; w2: WeightInput; b2?: WeightInput };
  /** Coefficient weights `Wc [d, 2]`. */
  coefficientWeights?: WeightInput;
  /**
   * Seed of every weight not given: each draws from its own stream (`seed` for the router, so that
   * `topKRouter({ seed })` routes alike; `seed + 1` … `seed + 5` for w1, w2 of the experts and of
   * the residual MLP, and Wc), normals scaled by 1/√(fan-in); biases zeros. Default: the catalog's fixed seed.
   */
  seed?: number;
  /** Whether every weight is a trainable `tf.Variable` (listed by `variables`). Default false. */
  trainable?: boolean;
}

/** The tensors of one MoE layer (tfjs variables, or the reads of tfjs-layers weights). */
export interface MoEParams {
  router: tf.Tensor2D;
  w1: tf.Tensor3D;
  b1: tf.Tensor2D;
  w2: tf.Tensor3D;
  b2: tf.Tensor2D;
  residual: { w1: tf.Tensor2D; b1: tf.Tensor1D; w2: tf.Tensor2D; b2: tf.Tensor1D } | null;
  coefficient: tf.Tensor2D | null;
}

/** What shapes the layer: routing rules, sizes and the residual form. */
export interface MoEShape {
  rules: RoutingRules;
  dim: number;
  hidden: number;
  activation: MoEActivation;
  /** 'none', 'add' (residual) or 'coefficient'. */
  residual: 'none' | 'add' | 'coefficient';
}

/** The output of {@link MoELayer.forward}: the layer's output, the router's losses and the route. */
export type MoEOutput = {
  /** `[..., d]`, x's shape. */
  output: tf.Tensor;
  /** Switch's load-balancing loss (scalar). */
  auxLoss: tf.Scalar;
  /** Router z-loss (scalar). */
  zLoss: tf.Scalar;
  /** The route (`expert`, `slot`, `gate`, `load` tensors, `capacity`). */
  route: { expert: tf.Tensor2D; slot: tf.Tensor2D; gate: tf.Tensor2D; load: tf.Tensor1D; capacity: number };
};

const act = (x: tf.Tensor, a: MoEActivation): tf.Tensor =>
  a === 'relu' ? tf.relu(x) : tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));

/**
 * The E expert FFNs on their buffers `X [E, cap, d]` → `[E, cap, d]`: one batched matmul per layer;
 * on wasm, from 128 rows per expert, E two-dimensional ones instead (tfjs-backend-wasm 4.22's
 * batched matmul is about 20× slower than its 2-D one: bench/results/moe.md).
 */
export function expertFFN(X: tf.Tensor3D, params: MoEParams, shape: MoEShape): tf.Tensor3D {
  const E = shape.rules.experts;
  const d = shape.dim;
  // Below ~128 rows per expert the E small matmuls' per-op cost outweighs the gain (E = 32, T = 1024: 139 → 169 ms).
  if (tf.getBackend() !== 'wasm' || E === 1 || X.shape[1] < 128) {
    const h = act(tf.add(tf.matMul(X, params.w1), tf.reshape(params.b1, [E, 1, shape.hidden])), shape.activation);
    return tf.add(tf.matMul(h, params.w2), tf.reshape(params.b2, [E, 1, d])) as tf.Tensor3D;
  }
  const cap = X.shape[1];
  const xs = tf.split(X, E, 0);
  const w1 = tf.split(params.w1, E, 0);
  const w2 = tf.split(params.w2, E, 0);
  const b1 = tf.split(params.b1, E, 0);
  const b2 = tf.split(params.b2, E, 0);
  const ys = xs.map((x, e) => {
    const h = act(tf.add(tf.matMul(tf.reshape(x, [cap, d]), tf.reshape(w1[e], [d, shape.hidden])), b1[e]), shape.activation);
    return tf.add(tf.matMul(h as tf.Tensor2D, tf.reshape(w2[e], [shape.hidden, d])), b2[e]);
  });
  return tf.reshape(tf.concat(ys, 0), [E, cap, d]) as tf.Tensor3D;
}

/**
 * The MoE computation on prepared tokens with the route given: dispatch, experts, combine,
 * residual branch, padding rows zeroed. Returns `[T, d]`. Shared by {@link MoELayer} and the
 * tfjs-layers `MoE` layer.
 */
export function moeCombine(shape: MoEShape, params: MoEParams, prep: Prepared, route: TopKRoute): tf.Tensor2D {
  const { experts: E, k } = shape.rules;
  const { T } = prep;
  const d = shape.dim;
  const cap = route.capacity;
  return tf.tidy(() => {
    let y: tf.Tensor2D;
    if (cap === 0) {
      y = tf.zeros([T, d]);
    } else {
      // Index tables (constants of the gradient): each slot's token (+1; 0 = empty), each choice's expert-output row (+1; 0 = dropped).
      const { table, source } = constantOf([route.expert, route.slot], (ex, sl) =>
        tf.tidy(() => {
          const kept = tf.greaterEqual(sl, 0);
          const one = tf.scalar(1, 'int32');
          const flatSlot = tf.add(tf.mul(ex, tf.scalar(cap, 'int32')), sl);
          const dest = tf.where(kept, flatSlot, tf.fill([T, k], E * cap, 'int32'));
          const token = tf.add(tf.tile(tf.reshape(tf.range(0, T, 1, 'int32'), [T, 1]), [1, k]), one);
          const scattered = tf.scatterND(tf.reshape(dest, [T * k, 1]), tf.reshape(tf.where(kept, token, tf.zerosLike(token)), [T * k]), [E * cap + 1]);
          return {
            table: tf.slice(scattered, [0], [E * cap]),
            source: tf.reshape(tf.where(kept, tf.add(flatSlot, one), tf.zerosLike(flatSlot)), [T * k]),
          };
        }),
      );
      const xPad = tf.concat([tf.zeros([1, d]), prep.xFlat], 0);
      const X = tf.reshape(gatherDifferentiable(xPad, table), [E, cap, d]) as tf.Tensor3D;
      const Y = expertFFN(X, params, shape);
      const yPad = tf.concat([tf.zeros([1, d]), tf.reshape(Y, [E * cap, d])], 0);
      // Rank-major rows (choice r of every token together), summed over the k ranks by k row-slices:
      // a reduction over the middle axis of [T, k, d] costs webgpu a transpose (400 ms at T = 4096, d = 128).
      const rows = gatherDifferentiable(yPad, source);
      // (k = 1 without a split: tfjs's split gradient fails for a single output.)
      if (k === 1) y = tf.mul(rows, route.gate) as tf.Tensor2D;
      else {
        const parts = tf.split(tf.reshape(rows, [T, k * d]), k, 1);
        const gates = tf.split(route.gate, k, 1);
        y = tf.addN(parts.map((part, r) => tf.mul(part, gates[r]))) as tf.Tensor2D;
      }
    }
    if (shape.residual !== 'none' && params.residual) {
      const r = params.residual;
      const mlp = tf.add(tf.matMul(act(tf.add(tf.matMul(prep.xFlat, r.w1), r.b1), shape.activation) as tf.Tensor2D, r.w2), r.b2);
      if (shape.residual === 'coefficient' && params.coefficient) {
        const c = tf.softmax(tf.matMul(prep.xFlat, params.coefficient));
        y = tf.add(tf.mul(tf.slice(c, [0, 0], [T, 1]), y), tf.mul(tf.slice(c, [0, 1], [T, 1]), mlp)) as tf.Tensor2D;
      } else {
        y = tf.add(y, mlp) as tf.Tensor2D;
      }
    }
    // Padding tokens output exactly 0 (the residual branch included).
    if (prep.mask) y = tf.where(tf.greater(tf.reshape(prep.real, [T, 1]), 0), y, tf.zerosLike(y)) as tf.Tensor2D;
    return y;
  });
}

/** Runs the whole layer synchronously: route, combine; the route's tensors are returned with the output. */
export function moeForward(shape: MoEShape, params: MoEParams, x: tf.Tensor, options: RouteOptions | undefined, asyncName: string): MoEOutput {
  return withRoute(shape.rules, params.router, shape.dim, x, options, asyncName, (prep, route) => finish(shape, params, x, prep, route));
}

/** {@link moeForward} reading what it must from the device with `await data()`. */
export async function moeForwardAsync(shape: MoEShape, params: MoEParams, x: tf.Tensor, options: RouteOptions | undefined): Promise<MoEOutput> {
  return withRouteAsync(shape.rules, params.router, shape.dim, x, options, (prep, route) => finish(shape, params, x, prep, route));
}

function finish(shape: MoEShape, params: MoEParams, x: tf.Tensor, prep: Prepared, route: TopKRoute): MoEOutput {
  try {
    const y = moeCombine(shape, params, prep, route);
    const output = tf.reshape(y, x.shape);
    y.dispose();
    const { auxLoss, zLoss, ...rest } = route;
    return { output, auxLoss, zLoss, route: rest };
  } catch (e) {
    tf.dispose(route);
    throw e;
  }
}

// ---- weights -----------------------------------------------------------------------------

/** A checked explicit weight (tensor or nested array) of a fixed shape, not yet copied. */
function checkWeight(name: string, value: unknown, shape: number[], what: string): tf.Tensor | number[] {
  if (value instanceof tf.Tensor) {
    if (value.isDisposed) throw new AttentionError(name, 'a live tensor', 'a disposed tensor');
    if (value.dtype !== 'float32') throw new AttentionError(name, "dtype 'float32'", show(value.dtype));
    if (value.rank !== shape.length || value.shape.some((s: number, i: number) => s !== shape[i])) throw new AttentionError(name, `shape ${what} = ${show(shape)}`, `shape ${show(value.shape)}`);
    return value;
  }
  const dims: number[] = [];
  let probe: unknown = value;
  while (Array.isArray(probe)) {
    dims.push(probe.length);
    probe = probe[0];
  }
  if (dims.length !== shape.length || dims.some((s, i) => s !== shape[i])) throw new AttentionError(name, `a tf.Tensor or nested array of shape ${what} = ${show(shape)}`, Array.isArray(value) ? `an array of shape ${show(dims)}` : show(value));
  const flat = (value as unknown[]).flat(shape.length - 1) as unknown[];
  if (flat.length !== shape.reduce((a, b) => a * b, 1) || flat.some((v) => typeof v !== 'number' || !Number.isFinite(v))) {
    throw new AttentionError(name, `a rectangular ${what} array of finite numbers`, 'a ragged array or a non-finite entry');
  }
  return flat as number[];
}

/** The leading shape of a weight input (tensor shape or nested-array dims), to infer sizes. */
function dimsOf(value: unknown): number[] | null {
  if (value instanceof tf.Tensor) return value.shape;
  const dims: number[] = [];
  let probe: unknown = value;
  while (Array.isArray(probe)) {
    dims.push(probe.length);
    probe = probe[0];
  }
  return dims.length ? dims : null;
}

/** Resolved sizes and checked (not yet copied) weights of a moeLayer config. */
export interface CheckedMoE {
  shape: MoEShape;
  seed: number;
  trainable: boolean;
  given: Partial<Record<'router' | 'w1' | 'b1' | 'w2' | 'b2' | 'rw1' | 'rb1' | 'rw2' | 'rb2' | 'coefficient', tf.Tensor | number[]>>;
}

/** The config keys of {@link moeLayer}. */
export const MOE_KEYS = [...ROUTING_KEYS, 'weights', 'dim', 'hidden', 'activation', 'residual', 'residualCoefficient', 'expertWeights', 'residualWeights', 'coefficientWeights', 'seed', 'trainable'] as const;

/** Validates a moeLayer config (nothing allocated). `dim` may come from the caller (the tfjs-layers layer knows it at build). */
export function checkMoEConfig(config: unknown, knownDim: number | null = null): CheckedMoE {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new AttentionError('config', 'an object { experts, dim, hidden?, k?, … }', show(config));
  checkConfigKeys('moeLayer', config, MOE_KEYS);
  const c = config as MoELayerConfig & Record<string, unknown>;
  const rules = checkRoutingRules(c);
  const E = rules.experts;
  const activation = c.activation ?? 'relu';
  if (activation !== 'relu' && activation !== 'gelu') throw new AttentionError('config.activation', "'relu' or 'gelu'", show(activation));
  const coefficient = c.residualCoefficient === undefined ? false : checkBool('config.residualCoefficient', c.residualCoefficient);
  const residualFlag = c.residual === undefined ? coefficient : checkBool('config.residual', c.residual);
  if (coefficient && !residualFlag) throw new AttentionError('config.residual', 'true or unset with residualCoefficient: true (the coefficient form is a residual form)', 'false');
  const seed = c.seed === undefined ? DEFAULT_SEED : checkInt('config.seed', c.seed, 0);
  const trainable = c.trainable === undefined ? false : checkBool('config.trainable', c.trainable);
  for (const key of ['expertWeights', 'residualWeights'] as const) {
    const v = c[key];
    if (v !== undefined && (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof tf.Tensor)) throw new AttentionError(`config.${key}`, 'an object { w1, b1?, w2, b2? }', show(v));
    if (v) {
      for (const kk of Object.keys(v)) if (!['w1', 'b1', 'w2', 'b2'].includes(kk)) throw new AttentionError(`config.${key}.${kk}`, 'one of w1, b1, w2, b2', `unknown key '${kk}'`);
      if (v.w1 === undefined || v.w2 === undefined) throw new AttentionError(`config.${key}`, 'both w1 and w2', 'a missing one');
    }
  }
  if (c.residualWeights && !residualFlag) throw new AttentionError('config.residualWeights', 'only with residual: true', 'residual weights for a layer without a residual branch');
  if (c.coefficientWeights !== undefined && !coefficient) throw new AttentionError('config.coefficientWeights', 'only with residualCoefficient: true', 'coefficient weights');
  // d and hidden: explicit, or implied by a weight.
  const ew = dimsOf(c.expertWeights?.w1);
  const dimGiven = c.dim === undefined ? null : checkInt('config.dim', c.dim, 1);
  const dim = dimGiven ?? knownDim ?? dimsOf(c.weights)?.[0] ?? ew?.[1] ?? null;
  if (dim === null) throw new AttentionError('config.dim', 'the model dim d (or weights that imply it)', 'undefined');
  if (knownDim !== null && dim !== knownDim) throw new AttentionError('config.dim', `the input's last dim ${knownDim}`, show(dim));
  const hiddenGiven = c.hidden === undefined ? null : checkInt('config.hidden', c.hidden, 1);
  const hidden = hiddenGiven ?? ew?.[2] ?? 4 * dim;
  const given: CheckedMoE['given'] = {};
  if (c.weights !== undefined) given.router = checkWeight('config.weights', c.weights, [dim, E], '[d, E]');
  if (c.expertWeights) {
    const e = c.expertWeights;
    given.w1 = checkWeight('config.expertWeights.w1', e.w1, [E, dim, hidden], '[E, d, hidden]');
    given.w2 = checkWeight('config.expertWeights.w2', e.w2, [E, hidden, dim], '[E, hidden, d]');
    if (e.b1 !== undefined) given.b1 = checkWeight('config.expertWeights.b1', e.b1, [E, hidden], '[E, hidden]');
    if (e.b2 !== undefined) given.b2 = checkWeight('config.expertWeights.b2', e.b2, [E, dim], '[E, d]');
  }
  if (c.residualWeights) {
    const r = c.residualWeights;
    given.rw1 = checkWeight('config.residualWeights.w1', r.w1, [dim, hidden], '[d, hidden]');
    given.rw2 = checkWeight('config.residualWeights.w2', r.w2, [hidden, dim], '[hidden, d]');
    if (r.b1 !== undefined) given.rb1 = checkWeight('config.residualWeights.b1', r.b1, [hidden], '[hidden]');
    if (r.b2 !== undefined) given.rb2 = checkWeight('config.residualWeights.b2', r.b2, [dim], '[d]');
  }
  if (c.coefficientWeights !== undefined) given.coefficient = checkWeight('config.coefficientWeights', c.coefficientWeights, [dim, 2], '[d, 2]');
  return { shape: { rules, dim, hidden, activation, residual: coefficient ? 'coefficient' : residualFlag ? 'add' : 'none' }, seed, trainable, given };
}

/**
 * The initial values of every weight (explicit ones copied, the rest seeded), as fresh tensors
 * the caller owns: router `[d, E]`, w1 `[E, d, h]`, b1 `[E, h]`, w2 `[E, h, d]`, b2 `[E, d]`,
 * and with a residual branch rw1 `[d, h]`, rb1 `[h]`, rw2 `[h, d]`, rb2 `[d]`, coefficient `[d, 2]`.
 */
export function initialWeights(checked: CheckedMoE): Record<string, tf.Tensor> {
  const { shape, seed, given } = checked;
  const { dim: d, hidden: h } = shape;
  const E = shape.rules.experts;
  const make = (key: keyof CheckedMoE['given'], dims: number[], stream: number | null, fanIn: number): tf.Tensor => {
    const g = given[key];
    if (g instanceof tf.Tensor) return tf.clone(g);
    if (g) return tf.tensor(g, dims, 'float32');
    if (stream === null) return tf.zeros(dims);
    const size = dims.reduce((a, b) => a * b, 1);
    const rng = new SeededRandom(seed + stream);
    const s = 1 / Math.sqrt(fanIn);
    return tf.tensor(rng.normals(size).map((x) => x * s), dims, 'float32');
  };
  const out: Record<string, tf.Tensor> = {
    router: make('router', [d, E], 0, d),
    w1: make('w1', [E, d, h], 1, d),
    b1: make('b1', [E, h], null, 1),
    w2: make('w2', [E, h, d], 2, h),
    b2: make('b2', [E, d], null, 1),
  };
  if (shape.residual !== 'none') {
    out.rw1 = make('rw1', [d, h], 3, d);
    out.rb1 = make('rb1', [h], null, 1);
    out.rw2 = make('rw2', [h, d], 4, h);
    out.rb2 = make('rb2', [d], null, 1);
  }
  if (shape.residual === 'coefficient') out.coefficient = make('coefficient', [d, 2], 5, d);
  return out;
}

/** Parameters from a name → tensor map (variables or reads). */
export function paramsOf(shape: MoEShape, w: Record<string, tf.Tensor>): MoEParams {
  return {
    router: w.router as tf.Tensor2D,
    w1: w.w1 as tf.Tensor3D,
    b1: w.b1 as tf.Tensor2D,
    w2: w.w2 as tf.Tensor3D,
    b2: w.b2 as tf.Tensor2D,
    residual: shape.residual === 'none' ? null : { w1: w.rw1 as tf.Tensor2D, b1: w.rb1 as tf.Tensor1D, w2: w.rw2 as tf.Tensor2D, b2: w.rb2 as tf.Tensor1D },
    coefficient: shape.residual === 'coefficient' ? (w.coefficient as tf.Tensor2D) : null,
  };
}

/**
 * A mixture-of-experts FFN layer (functional: tensors in, tensors out). See {@link moeLayer}.
 */
export class MoELayer {
  /** Routing rules, sizes and residual form. */
  readonly shape: Readonly<MoEShape>;
  /** Whether the weights are trainable. */
  readonly trainable: boolean;
  private readonly vars: Record<string, tf.Variable>;
  private readonly params: MoEParams;
  private readonly life = new Lifetime();

  /** @internal Use {@link moeLayer}. */
  constructor(checked: CheckedMoE) {
    this.shape = Object.freeze({ ...checked.shape });
    this.trainable = checked.trainable;
    const init = initialWeights(checked);
    this.vars = Object.fromEntries(Object.entries(init).map(([name, t]) => [name, ownedVariable(t, checked.trainable)]));
    this.params = paramsOf(this.shape, this.vars);
  }

  /**
   * The weights by name (`tf.Variable`s the layer owns): `router`, `w1`, `b1`, `w2`, `b2`, and with a
   * residual branch `rw1`, `rb1`, `rw2`, `rb2`, and `coefficient` in the coefficient form.
   */
  get weights(): Readonly<Record<string, tf.Variable>> {
    this.life.check('moeLayer');
    return this.vars;
  }

  /** The trainable variables (all weights with `trainable: true`, else none). */
  get variables(): tf.Variable[] {
    this.life.check('moeLayer');
    return this.trainable ? Object.values(this.vars) : [];
  }

  /**
   * `y = MoE(x)` for `x [..., d]` (T tokens = the leading dims flattened); `[..., d]` out.
   * @throws AttentionError for bad input (before any dispatch), and where a synchronous read is
   * needed but impossible (a tensor mask or dropless mode on webgpu in Node: use applyAsync).
   * @example
   * ```ts
   * import * as tf from '@tensorflow/tfjs-core';
   * import { moeLayer } from 'attention-catalog/moe';
   * const moe = moeLayer({ experts: 8, k: 2, dim: 64, hidden: 256 });
   * const y = moe.apply(tf.randomNormal([4, 128, 64])); // [4, 128, 64]
   * ```
   */
  apply(x: tf.Tensor, options?: RouteOptions): tf.Tensor {
    const out = this.forward(x, options);
    tf.dispose([out.auxLoss, out.zLoss, out.route]);
    return out.output;
  }

  /** {@link MoELayer.apply} without synchronous reads (every backend). */
  async applyAsync(x: tf.Tensor, options?: RouteOptions): Promise<tf.Tensor> {
    const out = await this.forwardAsync(x, options);
    tf.dispose([out.auxLoss, out.zLoss, out.route]);
    return out.output;
  }

  /**
   * The output with the router's losses and the route (for training: add `auxLoss` and `zLoss`,
   * weighted, to the loss). Every returned tensor belongs to the caller.
   * @example
   * ```ts
   * import * as tf from '@tensorflow/tfjs-core';
   * import { moeLayer } from 'attention-catalog/moe';
   * const moe = moeLayer({ experts: 4, dim: 16, hidden: 32, trainable: true });
   * const x = tf.randomNormal([64, 16]);
   * const { value, grads } = tf.variableGrads(() => {
   *   const { output, auxLoss, zLoss, route } = moe.forward(x);
   *   tf.dispose([route, zLoss]);
   *   return tf.add(tf.mean(tf.square(output)), tf.mul(auxLoss, 0.01)) as tf.Scalar;
   * }, moe.variables);
   * ```
   */
  forward(x: tf.Tensor, options?: RouteOptions): MoEOutput {
    this.life.check('moeLayer');
    return moeForward(this.shape, this.params, x, options, 'applyAsync / forwardAsync');
  }

  /** {@link MoELayer.forward} without synchronous reads. */
  async forwardAsync(x: tf.Tensor, options?: RouteOptions): Promise<MoEOutput> {
    this.life.check('moeLayer');
    return moeForwardAsync(this.shape, this.params, x, options);
  }

  /** Frees every weight; the layer cannot be used afterwards. */
  dispose(): void {
    if (this.life.end()) for (const v of Object.values(this.vars)) v.dispose();
  }
}

/**
 * A mixture-of-experts FFN: a top-k router plus E expert FFNs d → hidden → d, optionally with
 * PR-MoE's dense residual branch (DESIGN.md "Mixture of experts").
 *
 * @param config - routing (`experts`, `k`, `capacityFactor`, `policy`, `priority`, `normalize`,
 * `weights`), sizes (`dim`, `hidden`), `activation`, `residual`, `residualCoefficient`, explicit
 * `expertWeights` / `residualWeights` / `coefficientWeights`, `seed`, `trainable`.
 * @throws AttentionError for a bad config (k > E, C < 0, wrong weight shapes, …), before anything is allocated.
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import { moeLayer } from 'attention-catalog/moe';
 * const moe = moeLayer({ experts: 16, k: 2, capacityFactor: 1, policy: 'batch-priority', dim: 128, hidden: 512, residual: true });
 * const x = tf.randomNormal([1024, 128]);
 * const y = moe.apply(x, { mask: Array.from({ length: 1024 }, (_, i) => (i < 1000 ? 1 : 0)) });
 * moe.dispose();
 * ```
 */
export function moeLayer(config: MoELayerConfig): MoELayer {
  return new MoELayer(checkMoEConfig(config));
}
