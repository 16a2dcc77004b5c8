/**
 * The routers of `attention-catalog/moe`: {@link topKRouter} (token-level top-k gating with
 * capacity, natural or batch-priority order) and {@link taskRouter} (task-level routing).
 * DESIGN.md "Mixture of experts" is the definition implemented here.
 *
 * Routing is index-based: a route is `expert [T, k]`, `slot [T, k]` (the choice's position in
 * its expert's buffer, −1 when dropped) and `gate [T, k]`, never a `[T, E, capacity]` one-hot.
 * The assignment runs on the active backend's device: one exclusive cumulative sum over the
 * `[k·T, E]` one-hot of the choices, in visiting order (rank 0 of every token, then rank 1, …;
 * within a rank, position order or descending priority). The host reads nothing, except where a
 * value decides a shape: a mask given as a tensor (its real-token count sets the capacity) and
 * dropless mode (the largest load is the capacity). Those need a synchronous read, which tfjs's
 * webgpu backend cannot do in Node: there use `routeAsync` (or pass the mask as an array).
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { AttentionError, show } from '../core/errors.js';
import { DEFAULT_SEED, SeededRandom } from '../core/rng.js';
import { checkBool, checkConfigKeys, checkInt, checkMatrix, ownMatrix, type MatrixArg } from '../core/validate.js';
import { ownedVariable } from '../core/variables.js';
import { constantOf } from '../core/grad.js';
import { Lifetime } from '../core/lifecycle.js';

/** Visiting order of the choices within a rank: position order, or descending priority (V-MoE). */
export type RoutingPolicy = 'natural' | 'batch-priority';
/** A token's priority for batch-priority routing: its largest router probability, or the sum of its k chosen ones. */
export type RoutingPriority = 'max' | 'sum';

/** Options of a routing call. */
export interface RouteOptions {
  /**
   * One flag per token (`[T]`, the leading dims of x flattened): 1 = a real token, 0 = padding,
   * never routed. A `number[]`/`boolean[]`/`Uint8Array`, or a tensor (read to the host: its
   * count of real tokens sets the capacity). Default: every token is real.
   */
  mask?: ArrayLike<number | boolean> | tf.Tensor;
}

/**
 * A route: which expert each choice goes to, its slot in that expert's buffer, and its gate.
 * The tensors belong to the caller (`tf.dispose(route)` frees them all: a type, not an
 * interface, so that it is a `tf.TensorContainer`).
 */
export type Route = {
  /** `[T, k]` int32: the experts of each token, rank 0 first (a dropped choice keeps its expert; padding tokens: 0). */
  expert: tf.Tensor2D;
  /** `[T, k]` int32: the choice's position in its expert's buffer, or −1 when dropped (over capacity) or padding. */
  slot: tf.Tensor2D;
  /** `[T, k]` float32: the choice's gate (0 when dropped or padding). */
  gate: tf.Tensor2D;
  /** `[E]` int32: how many choices each expert took (<= capacity). */
  load: tf.Tensor1D;
  /** Slots per expert. */
  capacity: number;
};

/** A route from {@link TopKRouter.route}, with the router's two auxiliary losses. */
export type TopKRoute = Route & {
  /** Switch's load-balancing loss E·Σ_e f_e·P_e (a scalar; differentiable in the router weights through P_e). */
  auxLoss: tf.Scalar;
  /** The router z-loss: mean over real tokens of logsumexp(logits)² (a scalar). */
  zLoss: tf.Scalar;
};

/** The routing keys of a config, shared by {@link topKRouter} and `moeLayer`. */
export interface RoutingConfig {
  /** Number of experts E (an integer >= 1). Required. */
  experts: number;
  /** Choices per token (1 <= k <= E). Default 1. */
  k?: number;
  /** Capacity factor C >= 0: capacity = ⌈k·C·T/E⌉ slots per expert; 0 = dropless (capacity = the largest load). Default 1.25. */
  capacityFactor?: number;
  /** `'natural'` (position order within a rank; default) or `'batch-priority'` (descending priority). */
  policy?: RoutingPolicy;
  /** Priority of batch-priority routing: `'max'` (default) or `'sum'`. Ignored by natural routing. */
  priority?: RoutingPriority;
  /** Divide each gate by the sum of the token's k chosen probabilities. Default `k > 1`. */
  normalize?: boolean;
}

/** Config of {@link topKRouter}. */
export interface TopKRouterConfig extends RoutingConfig {
  /** Router weights `[d, E]` (tensor or nested array). Default: drawn from `seed` (needs `dim`). */
  weights?: tf.Tensor2D | number[][];
  /** Model dim d, to size seeded weights (`[d, E]` normals scaled by 1/√d). Implied by `weights`. */
  dim?: number;
  /** Seed of the router weights. Default: the catalog's fixed seed. */
  seed?: number;
  /** Whether the weights are a trainable `tf.Variable` (listed by `variables`). Default false. */
  trainable?: boolean;
}

/** The resolved routing rules shared by the routers and `moeLayer`. */
export interface RoutingRules {
  experts: number;
  k: number;
  capacityFactor: number;
  policy: RoutingPolicy;
  priority: RoutingPriority;
  normalize: boolean;
}

/** The config keys of the routing rules (also accepted by `moeLayer`). */
export const ROUTING_KEYS = ['experts', 'k', 'capacityFactor', 'policy', 'priority', 'normalize'] as const;

/** Checks the routing rules of a router (or moeLayer) config. */
export function checkRoutingRules(config: Record<string, unknown>): RoutingRules {
  const experts = checkInt('config.experts', config.experts, 1);
  const k = config.k === undefined ? 1 : checkInt('config.k', config.k, 1);
  if (k > experts) throw new AttentionError('config.k', `an integer in [1, experts = ${experts}] (a token chooses k distinct experts)`, show(config.k));
  const c = config.capacityFactor;
  if (c !== undefined && (typeof c !== 'number' || !Number.isFinite(c) || c < 0)) {
    throw new AttentionError('config.capacityFactor', 'a finite number >= 0 (0 = dropless)', show(c));
  }
  const policy = config.policy ?? 'natural';
  if (policy !== 'natural' && policy !== 'batch-priority') throw new AttentionError('config.policy', "'natural' or 'batch-priority'", show(policy));
  const priority = config.priority ?? 'max';
  if (priority !== 'max' && priority !== 'sum') throw new AttentionError('config.priority', "'max' or 'sum'", show(priority));
  const normalize = config.normalize === undefined ? k > 1 : checkBool('config.normalize', config.normalize);
  return { experts, k, capacityFactor: c === undefined ? 1.25 : c, policy, priority, normalize };
}

/** Slots per expert for `choices` real choices (k·T): ⌈k·C·T/E − 1e-9⌉ (DESIGN.md: float error never adds a slot). */
export function capacityOf(rules: Pick<RoutingRules, 'experts' | 'k' | 'capacityFactor'>, realTokens: number): number {
  return Math.max(0, Math.ceil((rules.k * rules.capacityFactor * realTokens) / rules.experts - 1e-9));
}

/** Whether `dataSync` works on the active backend (tfjs's webgpu backend reads synchronously through an OffscreenCanvas, absent in Node). */
function syncReadable(): boolean {
  return !(tf.getBackend() === 'webgpu' && typeof (globalThis as { OffscreenCanvas?: unknown }).OffscreenCanvas === 'undefined');
}

/** Throws unless a synchronous read is possible; `why` says what needs one. */
function requireSyncRead(argument: string, why: string, asyncName: string): void {
  if (!syncReadable()) {
    throw new AttentionError(argument, `${why}, which needs a synchronous read from the device`, "tfjs's webgpu backend in Node (no synchronous readback)", `Use ${asyncName}, or pass the mask as an array.`);
  }
}

/** A token tensor `x [..., d]`: checked, T = the leading dims flattened. */
function checkTokens(name: string, x: unknown, d: number | null): { T: number; d: number } {
  if (!(x instanceof tf.Tensor)) throw new AttentionError(name, 'a tf.Tensor [..., d] (tokens × model dim)', show(x));
  if (x.isDisposed) throw new AttentionError(name, 'a live tensor', 'a disposed tensor');
  if (x.dtype !== 'float32') throw new AttentionError(name, 'a float32 tensor', `a ${x.dtype} tensor`);
  if (x.rank < 2) throw new AttentionError(name, 'rank >= 2: [..., d] (tokens × model dim)', `shape ${show(x.shape)}`);
  const last = x.shape[x.rank - 1];
  if (d !== null && last !== d) throw new AttentionError(name, `last dim d = ${d} (the router weights' rows)`, `shape ${show(x.shape)}`);
  const T = x.shape.slice(0, -1).reduce((a: number, b: number) => a * b, 1);
  if (T < 1 || last < 1) throw new AttentionError(name, 'at least one token and d >= 1', `shape ${show(x.shape)}`);
  return { T, d: last };
}

/** A mask checked against T: host flags (1 real, 0 padding). A tensor mask is read (see {@link requireSyncRead}). */
function checkMask(mask: unknown, T: number, read: (t: tf.Tensor) => ArrayLike<number>): Uint8Array | null {
  if (mask === undefined || mask === null) return null;
  let values: ArrayLike<number | boolean>;
  if (mask instanceof tf.Tensor) {
    if (mask.isDisposed) throw new AttentionError('options.mask', 'a live tensor', 'a disposed tensor');
    if (mask.size !== T || mask.rank < 1) throw new AttentionError('options.mask', `${T} flags (one per token)`, `a tensor of shape ${show(mask.shape)}`);
    if (mask.dtype === 'string' || mask.dtype === 'complex64') throw new AttentionError('options.mask', 'a numeric or bool tensor', `a ${mask.dtype} tensor`);
    values = read(mask);
  } else if (typeof mask === 'object' && typeof (mask as ArrayLike<unknown>).length === 'number') {
    values = mask as ArrayLike<number | boolean>;
    if (values.length !== T) throw new AttentionError('options.mask', `${T} flags (one per token: the leading dims of x flattened)`, `${values.length} flags`);
  } else {
    throw new AttentionError('options.mask', 'an array of 0/1 flags or a tensor [T]', show(mask));
  }
  const out = new Uint8Array(T);
  for (let i = 0; i < T; i++) {
    const v = values[i];
    if (v === 1 || v === true) out[i] = 1;
    else if (v !== 0 && v !== false) throw new AttentionError(`options.mask[${i}]`, '0 or 1 (false or true)', show(v));
  }
  return out;
}

/** The options object of a routing call: only `mask`. */
function checkRouteOptions(options: unknown): RouteOptions {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw new AttentionError('options', 'an object { mask? }', show(options));
  for (const key of Object.keys(options)) if (key !== 'mask') throw new AttentionError(`options.${key}`, 'only mask', `unknown key '${key}'`);
  return options as RouteOptions;
}

/** The choices of every token before capacity: experts, their probabilities (differentiable) and the priority order. */
interface Choices {
  /** `[T, k]` int32, padding rows 0. */
  expert: tf.Tensor2D;
  /** `[T, k]` float32: each choice's gate before dropping (normalized if the rules say so); padding rows 0. */
  gate: tf.Tensor2D;
  /** `[T]` int32: the visiting order of tokens within a rank (a permutation), or null for position order. */
  order: tf.Tensor1D | null;
  /** `[E]` float32: choices per expert over all ranks (real tokens). */
  counts: tf.Tensor1D;
}

/**
 * Slots of every choice in visiting order: rank 0 of all tokens, then rank 1, …; within a rank the
 * tokens in `order` (or position order). One exclusive cumulative sum over the `[k·T, E]` one-hot
 * of the choices gives each choice's position in its expert's queue; it keeps its slot if that is
 * below `capacity`. `real` [T] float 0/1. Returns `slot [T, k]` int32 (−1: dropped or padding) and
 * `load [E]` int32. Constants of the gradient (the caller computes them with the tape paused).
 */
function assignSlots(expert: tf.Tensor2D, real: tf.Tensor1D, order: tf.Tensor1D | null, E: number, capacity: number): { slot: tf.Tensor2D; load: tf.Tensor1D } {
  return tf.tidy(() => {
    const [T, k] = expert.shape;
    const ex = order ? tf.gather(expert, order) : expert;
    const re = order ? tf.gather(real, order) : real;
    // Rank-major: [k, T] flattened.
    // Columns stacked (no int32 transpose: tfjs-backend-webgpu 4.22's does not compile).
    const flat = tf.reshape(tf.concat(tf.split(ex, k, 1), 0), [k * T]);
    const realFlat = tf.reshape(tf.tile(tf.reshape(re, [1, T]), [k, 1]), [k * T, 1]);
    const hot = tf.mul(oneHotFloat(flat, E), realFlat);
    const before = tf.cumsum(hot, 0, true);
    const pos = tf.sum(tf.mul(before, hot), 1);
    const keep = tf.logicalAnd(tf.greater(tf.reshape(realFlat, [k * T]), 0), tf.less(pos, capacity));
    const slotFlat = tf.where(keep, tf.cast(pos, 'int32'), tf.fill([k * T], -1, 'int32'));
    let slot = tf.concat(tf.split(tf.reshape(slotFlat, [k * T, 1]), k, 0), 1) as tf.Tensor2D;
    if (order) {
      // Back to position order: the inverse permutation (order's values are distinct).
      const inverse = tf.scatterND(tf.reshape(order, [T, 1]), tf.range(0, T, 1, 'int32'), [T]) as tf.Tensor1D;
      slot = tf.gather(slot, inverse);
    }
    // Column sums as a product with a row of ones: webgpu reduces over axis 0 through a transpose.
    const load = tf.cast(tf.minimum(tf.reshape(tf.matMul(tf.ones([1, k * T]), hot), [E]), capacity), 'int32') as tf.Tensor1D;
    return { slot, load };
  });
}

/**
 * `[..., E]` float32 one-hot of int32 indices, built by a selection. Not `tf.cast(tf.oneHot(…))`:
 * tfjs-backend-webgpu 4.22 casts int32 to float32 by relabelling the buffer, and a reduction over
 * a non-last axis of such a tensor then fails to compile (silently: wrong results); nor oneHot's
 * own float32 dtype, which the wasm backend ignores.
 */
function oneHotFloat(indices: tf.Tensor, E: number): tf.Tensor {
  return tf.tidy(() => {
    const eq = tf.equal(tf.expandDims(indices, -1), tf.range(0, E, 1, 'int32'));
    return tf.where(eq, tf.fill(eq.shape, 1, 'float32'), tf.zeros(eq.shape));
  });
}

/** The router weights of a config: explicit (checked against E) or seeded from `dim`. */
function routerWeights(config: TopKRouterConfig, E: number): { arg: MatrixArg | null; d: number; seed: number } {
  const seed = config.seed === undefined ? DEFAULT_SEED : checkInt('config.seed', config.seed, 0);
  if (config.weights !== undefined) {
    const arg = checkMatrix('config.weights', config.weights, '[d, E]');
    if (arg.shape[1] !== E) throw new AttentionError('config.weights', `shape [d, E = ${E}]`, `shape ${show(arg.shape)}`);
    if (config.dim !== undefined && config.dim !== arg.shape[0]) throw new AttentionError('config.dim', `the weights' rows d = ${arg.shape[0]}`, show(config.dim));
    return { arg, d: arg.shape[0], seed };
  }
  if (config.dim === undefined) throw new AttentionError('config.dim', 'the model dim d (to size seeded router weights [d, E]), or explicit config.weights', 'neither');
  return { arg: null, d: checkInt('config.dim', config.dim, 1), seed };
}

/** Seeded `[rows, cols]` normals scaled by `scale`, from `rng`. */
function seededMatrix(rng: SeededRandom, shape: number[], scale: number): tf.Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(rng.normals(size).map((x) => x * scale), shape, 'float32');
}

/**
 * A top-k router over E experts (Switch / GShard / V-MoE gating). See DESIGN.md "Mixture of
 * experts" for the exact rules; in short: p = softmax(x·W); a token's choices are its top-k
 * experts by p (ties: lower index); capacity ⌈k·C·T/E⌉; choices are assigned rank by rank, in
 * position order (`'natural'`) or descending priority (`'batch-priority'`); over capacity a
 * choice is dropped (slot −1, gate 0).
 */
export class TopKRouter {
  /** The resolved config (defaults filled in). */
  readonly config: Readonly<RoutingRules & { dim: number; trainable: boolean }>;
  private readonly w: tf.Variable<tf.Rank.R2>;
  private readonly life = new Lifetime();

  /** @internal Use {@link topKRouter}. */
  constructor(rules: RoutingRules, weights: tf.Tensor2D, trainable: boolean) {
    this.config = Object.freeze({ ...rules, dim: weights.shape[0], trainable });
    this.w = ownedVariable(weights, trainable);
  }

  /** The router weights `[d, E]` (a `tf.Variable` the router owns; trainable with `trainable: true`). */
  get weights(): tf.Variable<tf.Rank.R2> {
    this.life.check('topKRouter');
    return this.w;
  }

  /** The trainable variables: `[weights]` with `trainable: true`, else none. */
  get variables(): tf.Variable[] {
    this.life.check('topKRouter');
    return this.config.trainable ? [this.w] : [];
  }

  /**
   * Routes the tokens of `x [..., d]` (T = the leading dims flattened).
   * @throws AttentionError for a bad x or mask (before any dispatch), and where a synchronous
   * read is needed but impossible (a tensor mask or dropless mode on webgpu in Node: use routeAsync).
   * @example
   * ```ts
   * import * as tf from '@tensorflow/tfjs-core';
   * import { topKRouter } from 'attention-catalog/moe';
   * const router = topKRouter({ experts: 8, k: 2, capacityFactor: 1, policy: 'batch-priority', dim: 64 });
   * const r = router.route(tf.randomNormal([512, 64]));
   * console.log(r.capacity, await r.load.array());
   * tf.dispose(r);
   * ```
   */
  route(x: tf.Tensor, options?: RouteOptions): TopKRoute {
    this.life.check('topKRouter');
    return withRoute(this.config, this.w, this.config.dim, x, options, 'routeAsync', (_, route) => route);
  }

  /**
   * {@link TopKRouter.route} without synchronous reads: what it needs from the device (a mask
   * tensor, dropless mode's largest load) is read with `await data()`. Works on every backend.
   * @example
   * ```ts
   * import * as tf from '@tensorflow/tfjs-core';
   * import { topKRouter } from 'attention-catalog/moe';
   * const r = await topKRouter({ experts: 8, capacityFactor: 0, dim: 64 }).routeAsync(tf.randomNormal([512, 64]));
   * console.log(r.capacity); // the largest load: nothing dropped
   * ```
   */
  async routeAsync(x: tf.Tensor, options?: RouteOptions): Promise<TopKRoute> {
    this.life.check('topKRouter');
    return withRouteAsync(this.config, this.w, this.config.dim, x, options, (_, route) => route);
  }

  /** Frees the router weights; the router cannot be used afterwards. */
  dispose(): void {
    if (this.life.end()) this.w.dispose();
  }
}

/** Tokens ready for routing: `xFlat [T, d]` with padding rows zeroed, `real [T]` 0/1 (tensors the caller frees), the host mask. */
export interface Prepared {
  xFlat: tf.Tensor2D;
  real: tf.Tensor1D;
  mask: Uint8Array | null;
  realTokens: number;
  T: number;
}

/**
 * Routes the tokens of `x [..., d]` with router weights `w [d, E]` and hands the prepared tokens
 * (`xFlat [T, d]` with padding rows zeroed, `real [T]`, the host mask) and the route to `use`; the
 * prepared tokens are freed afterwards, the route belongs to `use`. Everything that can refuse the
 * call (x, the options, the mask, a synchronous read it would need: see {@link requireSyncRead},
 * `asyncName` names the async form) is checked before anything is dispatched.
 */
export function withRoute<R>(rules: RoutingRules, w: tf.Tensor2D, d: number, x: tf.Tensor, options: unknown, asyncName: string, use: (prep: Prepared, route: TopKRoute) => R): R {
  const { T } = checkTokens('x', x, d);
  if (rules.capacityFactor === 0) requireSyncRead('config.capacityFactor', 'dropless routing (capacity = the largest load)', asyncName);
  const mask = checkMask(checkRouteOptions(options).mask, T, (t) => {
    requireSyncRead('options.mask', 'a mask tensor (its count of real tokens sets the capacity)', asyncName);
    return t.dataSync() as ArrayLike<number>;
  });
  const prep = uploadTokens(x, mask);
  try {
    const choices = chooseExperts(rules, w, prep);
    try {
      const capacity = rules.capacityFactor === 0 ? maxOf(choices.counts.dataSync()) : capacityOf(rules, prep.realTokens);
      return use(prep, finishRoute(rules, prep, choices, capacity));
    } finally {
      tf.dispose([choices.counts, ...(choices.order ? [choices.order] : [])]);
    }
  } finally {
    tf.dispose([prep.xFlat, prep.real]);
  }
}

/** {@link withRoute} without synchronous reads: a mask tensor and dropless mode's largest load are read with `await data()`. */
export async function withRouteAsync<R>(rules: RoutingRules, w: tf.Tensor2D, d: number, x: tf.Tensor, options: unknown, use: (prep: Prepared, route: TopKRoute) => R): Promise<R> {
  const { T } = checkTokens('x', x, d);
  const m = checkRouteOptions(options).mask;
  const host = m instanceof tf.Tensor && !m.isDisposed && m.dtype !== 'string' && m.dtype !== 'complex64' ? ((await m.data()) as ArrayLike<number>) : undefined;
  const prep = uploadTokens(x, checkMask(m, T, () => host as ArrayLike<number>));
  try {
    const choices = chooseExperts(rules, w, prep);
    try {
      const capacity = rules.capacityFactor === 0 ? maxOf(await choices.counts.data()) : capacityOf(rules, prep.realTokens);
      return use(prep, finishRoute(rules, prep, choices, capacity));
    } finally {
      tf.dispose([choices.counts, ...(choices.order ? [choices.order] : [])]);
    }
  } finally {
    tf.dispose([prep.xFlat, prep.real]);
  }
}

/** x as `[T, d]` with padding rows zeroed, the real-token flags and count. */
function uploadTokens(x: tf.Tensor, mask: Uint8Array | null): Prepared {
  const d = x.shape[x.rank - 1];
  const T = x.size / d;
  const realTokens = mask ? countReal(mask) : T;
  const [xFlat, real] = tf.tidy(() => {
    const flat = tf.reshape(x, [T, d]);
    const realFlags = mask ? tf.tensor1d(mask, 'float32') : tf.ones([T], 'float32');
    // Padding rows become zeros, so that nothing they hold (NaN included) reaches a result.
    return [mask ? tf.where(tf.greater(tf.reshape(realFlags, [T, 1]), 0), flat, tf.zerosLike(flat)) : flat, realFlags];
  }) as [tf.Tensor2D, tf.Tensor1D];
  return { xFlat, real, mask, realTokens, T };
}

/** Logits, probabilities and choices of every token (the choices with the tape paused). */
function chooseExperts(rules: RoutingRules, w: tf.Tensor2D, prep: Prepared): Choices & { logits: tf.Tensor2D; p: tf.Tensor2D } {
  const { experts: E, k } = rules;
  const T = prep.T;
  const logits = tf.matMul(prep.xFlat, w) as tf.Tensor2D;
  const p = tf.softmax(logits) as tf.Tensor2D;
  const constants = constantOf([p, prep.real], (pp, real) =>
    tf.tidy(() => {
      const top = tf.topk(pp, k);
      const realCol = tf.reshape(real, [T, 1]);
      const expert = tf.where(tf.greater(realCol, 0), top.indices, tf.zerosLike(top.indices)) as tf.Tensor2D;
      const hot = oneHotFloat(expert, E) as tf.Tensor3D;
      // Choices per expert over all ranks, real tokens only (padding rows of `hot` are expert 0: masked out).
      const counts = tf.reshape(tf.matMul(tf.reshape(tf.tile(realCol, [1, k]), [1, T * k]), tf.reshape(hot, [T * k, E])), [E]) as tf.Tensor1D;
      // Batch-priority routing: tokens by descending priority (tf.topk breaks ties to the lower index).
      const order = rules.policy === 'batch-priority' ? (tf.topk(rules.priority === 'max' ? tf.max(top.values, 1) : tf.sum(top.values, 1), T).indices as tf.Tensor1D) : [];
      return { expert, order, counts, hot };
    }),
  );
  // Gates: p at each choice (a product with the constant one-hot, differentiable in p).
  const gate = tf.tidy(() => {
    const chosen = tf.sum(tf.mul(tf.expandDims(p, 1), constants.hot), 2) as tf.Tensor2D;
    const normalized = rules.normalize ? tf.div(chosen, tf.sum(chosen, 1, true)) : chosen;
    return tf.mul(normalized, tf.reshape(prep.real, [T, 1])) as tf.Tensor2D;
  });
  constants.hot.dispose();
  const order = constants.order instanceof tf.Tensor ? (constants.order as tf.Tensor1D) : null;
  return { expert: constants.expert, gate, order, counts: constants.counts, logits, p };
}

/** Slots, drops and losses, given the capacity; frees the choices' differentiable intermediates. */
function finishRoute(rules: RoutingRules, prep: Prepared, c: Choices & { logits: tf.Tensor2D; p: tf.Tensor2D }, capacity: number): TopKRoute {
  const E = rules.experts;
  const T = prep.T;
  try {
    const { slot, load } = constantOf([c.expert, prep.real], () => assignSlots(c.expert, prep.real, c.order, E, capacity));
    const out = tf.tidy(() => {
      const kept = constantOf([slot], (s) => tf.greaterEqual(s, 0));
      const gate = tf.where(kept, c.gate, tf.zerosLike(c.gate)) as tf.Tensor2D;
      const Treal = Math.max(prep.realTokens, 1);
      // Switch: f_e = fraction of real tokens whose rank-0 choice is e (before capacity); P_e = mean p_e over real tokens.
      const realRow = tf.reshape(prep.real, [1, T]);
      const f = constantOf([c.expert, prep.real], (ex) => tf.div(tf.matMul(realRow, oneHotFloat(tf.reshape(tf.slice(ex, [0, 0], [T, 1]), [T]), E)), Treal));
      const P = tf.div(tf.matMul(realRow, c.p), Treal);
      const auxLoss = tf.mul(tf.sum(tf.mul(f, P)), E) as tf.Scalar;
      const lse = tf.logSumExp(c.logits, 1);
      const zLoss = tf.div(tf.sum(tf.mul(tf.square(lse), prep.real)), Treal) as tf.Scalar;
      return { gate, auxLoss, zLoss };
    });
    return { expert: c.expert, slot, gate: out.gate, load, capacity, auxLoss: out.auxLoss, zLoss: out.zLoss };
  } catch (e) {
    c.expert.dispose();
    throw e;
  } finally {
    tf.dispose([c.gate, c.logits, c.p]);
  }
}

function countReal(mask: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < mask.length; i++) n += mask[i];
  return n;
}

function maxOf(values: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < values.length; i++) m = Math.max(m, values[i]);
  return Math.round(m);
}

/**
 * A top-k router (see {@link TopKRouter}).
 *
 * @param config - `experts` (required), `k` (1), `capacityFactor` (1.25; 0 = dropless),
 * `policy` ('natural' | 'batch-priority'), `priority` ('max' | 'sum'), `normalize` (k > 1),
 * `weights` [d, E] or `dim` + `seed`, `trainable` (false).
 * @throws AttentionError for a bad config (k > E, C < 0, wrong weight shapes, …), before anything is allocated.
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import { topKRouter } from 'attention-catalog/moe';
 * const router = topKRouter({ experts: 4, k: 2, capacityFactor: 0.5, policy: 'batch-priority', dim: 16 });
 * const { expert, slot, gate, load, auxLoss, zLoss } = router.route(tf.randomNormal([2, 64, 16]));
 * // slot -1 marks a dropped choice; auxLoss + 1e-3·zLoss is what Switch adds to the training loss
 * ```
 */
export function topKRouter(config: TopKRouterConfig): TopKRouter {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new AttentionError('config', 'an object { experts, k?, … }', show(config));
  checkConfigKeys('topKRouter', config, [...ROUTING_KEYS, 'weights', 'dim', 'seed', 'trainable']);
  const rules = checkRoutingRules(config as unknown as Record<string, unknown>);
  const trainable = config.trainable === undefined ? false : checkBool('config.trainable', config.trainable);
  const { arg, d, seed } = routerWeights(config, rules.experts);
  const w = arg ? ownMatrix(arg) : (seededMatrix(new SeededRandom(seed), [d, rules.experts], 1 / Math.sqrt(d)) as tf.Tensor2D);
  return new TopKRouter(rules, w, trainable);
}

// ---- task-level routing --------------------------------------------------------------------

/** Config of {@link taskRouter}. */
export interface TaskRouterConfig {
  /** Number of experts E. Required. */
  experts: number;
  /** Experts per task (1 <= k <= E). Default 1. */
  k?: number;
  /** Number of tasks (an integer >= 1). Required. */
  tasks: number;
  /** Capacity factor C >= 0 (0 = dropless). Default 1.25. */
  capacityFactor?: number;
  /** Divide each gate by the sum of the task's k chosen probabilities. Default `k > 1`. */
  normalize?: boolean;
  /** Task router weights `[tasks, E]` (tensor or nested array). Default: seeded standard normals. */
  weights?: tf.Tensor2D | number[][];
  /** Seed of the weights. Default: the catalog's fixed seed. */
  seed?: number;
}

/**
 * Task-level MoE routing (Kudugunta et al., "Beyond Distillation: Task-level Mixture-of-Experts"):
 * every token of task t goes to the same top-k experts of softmax(weights[t]), with capacity and
 * dropping in position order. The routing decision depends on the task only, so it is made on the
 * host; {@link TaskRouter.expertsFor} tells a server which k experts to load for a task.
 */
export class TaskRouter {
  /** The resolved config. */
  readonly config: Readonly<{ experts: number; k: number; tasks: number; capacityFactor: number; normalize: boolean }>;
  /** Per task: its k experts (rank order) and their gates. */
  private readonly table: { experts: number[]; gates: number[] }[];
  private readonly life = new Lifetime();

  /** @internal Use {@link taskRouter}. */
  constructor(config: TaskRouter['config'], weights: Float64Array) {
    this.config = Object.freeze({ ...config });
    const { experts: E, k, tasks } = config;
    this.table = [];
    for (let t = 0; t < tasks; t++) {
      const row = Array.from(weights.subarray(t * E, (t + 1) * E));
      const mx = Math.max(...row);
      const ex = row.map((w) => Math.exp(w - mx));
      const sum = ex.reduce((a, b) => a + b, 0);
      const p = ex.map((x) => x / sum);
      // Top-k by p, ties to the lower expert index.
      const order = p.map((v, e) => [v, e] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, k);
      const chosen = order.map(([v]) => v);
      const norm = config.normalize ? chosen.reduce((a, b) => a + b, 0) : 1;
      this.table.push({ experts: order.map(([, e]) => e), gates: chosen.map((v) => v / norm) });
    }
  }

  /**
   * The k experts a server for task `task` must load, in rank order.
   * @example
   * ```ts
   * import { taskRouter } from 'attention-catalog/moe';
   * const router = taskRouter({ experts: 32, k: 2, tasks: 10 });
   * router.expertsFor(3); // e.g. [17, 4]: preload these two, not all 32
   * ```
   */
  expertsFor(task: number): number[] {
    this.life.check('taskRouter');
    checkInt('task', task, 0, this.config.tasks - 1);
    return this.table[task].experts.slice();
  }

  /**
   * Routes T tokens by task: token i goes to `expertsFor(taskIds[i])` (x only sets T: its leading
   * dims flattened). Capacity ⌈k·C·T/E⌉ over real tokens, choices assigned rank by rank in
   * position order.
   * @throws AttentionError for a bad x, taskIds (length, integers in [0, tasks)) or mask, before any dispatch.
   * @example
   * ```ts
   * import * as tf from '@tensorflow/tfjs-core';
   * import { taskRouter } from 'attention-catalog/moe';
   * const router = taskRouter({ experts: 8, k: 2, tasks: 3 });
   * const r = router.route(tf.zeros([6, 16]), [0, 0, 1, 1, 2, 2]);
   * tf.dispose(r);
   * ```
   */
  route(x: tf.Tensor, taskIds: ArrayLike<number> | tf.Tensor, options?: RouteOptions): Route {
    this.life.check('taskRouter');
    const { T } = checkTokens('x', x, null);
    const read = (t: tf.Tensor, what: string) => {
      requireSyncRead(what, `a ${what} tensor (routing is decided on the host)`, 'routeAsync');
      return t.dataSync() as ArrayLike<number>;
    };
    const ids = this.checkTaskIds(taskIds, T, (t) => read(t, 'taskIds'));
    const mask = checkMask(checkRouteOptions(options).mask, T, (t) => read(t, 'options.mask'));
    return this.build(ids, mask);
  }

  /** {@link TaskRouter.route} reading tensor task ids and masks with `await data()` (every backend). */
  async routeAsync(x: tf.Tensor, taskIds: ArrayLike<number> | tf.Tensor, options?: RouteOptions): Promise<Route> {
    this.life.check('taskRouter');
    const { T } = checkTokens('x', x, null);
    const ids = taskIds instanceof tf.Tensor && !taskIds.isDisposed ? ((await taskIds.data()) as ArrayLike<number>) : taskIds;
    const m = options?.mask;
    const maskHost = m instanceof tf.Tensor && !m.isDisposed ? ((await m.data()) as ArrayLike<number>) : undefined;
    const opts = checkRouteOptions(options);
    return this.build(this.checkTaskIds(ids, T, () => ids as ArrayLike<number>), checkMask(maskHost ?? opts.mask, T, () => maskHost as ArrayLike<number>));
  }

  private checkTaskIds(taskIds: unknown, T: number, read: (t: tf.Tensor) => ArrayLike<number>): Int32Array {
    let values: ArrayLike<number>;
    if (taskIds instanceof tf.Tensor) {
      if (taskIds.isDisposed) throw new AttentionError('taskIds', 'a live tensor', 'a disposed tensor');
      if (taskIds.dtype !== 'int32' || taskIds.size !== T) throw new AttentionError('taskIds', `an int32 tensor of ${T} task ids`, show(taskIds));
      values = read(taskIds);
    } else if (typeof taskIds === 'object' && taskIds !== null && typeof (taskIds as ArrayLike<number>).length === 'number') {
      values = taskIds as ArrayLike<number>;
      if (values.length !== T) throw new AttentionError('taskIds', `${T} task ids (one per token)`, `${values.length}`);
    } else {
      throw new AttentionError('taskIds', 'a number[] or int32 tensor [T]', show(taskIds));
    }
    const out = new Int32Array(T);
    for (let i = 0; i < T; i++) {
      const v = values[i];
      if (!Number.isInteger(v) || v < 0 || v >= this.config.tasks) throw new AttentionError(`taskIds[${i}]`, `an integer in [0, tasks = ${this.config.tasks})`, show(v));
      out[i] = v;
    }
    return out;
  }

  /** The route on the host (position order, rank by rank), uploaded as tensors. */
  private build(ids: Int32Array, mask: Uint8Array | null): Route {
    const { experts: E, k } = this.config;
    const T = ids.length;
    const realTokens = mask ? countReal(mask) : T;
    const expert = new Int32Array(T * k);
    const gate = new Float32Array(T * k);
    const slot = new Int32Array(T * k).fill(-1);
    const counts = new Int32Array(E);
    for (let t = 0; t < T; t++) {
      if (mask && !mask[t]) continue;
      for (let r = 0; r < k; r++) counts[this.table[ids[t]].experts[r]]++;
    }
    const capacity = this.config.capacityFactor === 0 ? Math.max(0, ...counts) : capacityOf(this.config, realTokens);
    const load = new Int32Array(E);
    for (let r = 0; r < k; r++) {
      for (let t = 0; t < T; t++) {
        if (mask && !mask[t]) continue;
        const e = this.table[ids[t]].experts[r];
        expert[t * k + r] = e;
        if (load[e] < capacity) {
          slot[t * k + r] = load[e]++;
          gate[t * k + r] = this.table[ids[t]].gates[r];
        }
      }
    }
    return {
      expert: tf.tensor2d(expert, [T, k], 'int32'),
      slot: tf.tensor2d(slot, [T, k], 'int32'),
      gate: tf.tensor2d(gate, [T, k], 'float32'),
      load: tf.tensor1d(load, 'int32'),
      capacity,
    };
  }

  /** Ends the router (it owns no tensors). */
  dispose(): void {
    this.life.end();
  }
}

/**
 * A task-level router (see {@link TaskRouter}).
 *
 * @param config - `experts`, `tasks` (required), `k` (1), `capacityFactor` (1.25), `normalize`
 * (k > 1), `weights` [tasks, E] or `seed`.
 * @throws AttentionError for a bad config, before anything is allocated.
 * @example
 * ```ts
 * import { taskRouter } from 'attention-catalog/moe';
 * const router = taskRouter({ experts: 16, k: 2, tasks: 4, seed: 7 });
 * for (let t = 0; t < 4; t++) console.log(t, router.expertsFor(t));
 * ```
 */
export function taskRouter(config: TaskRouterConfig): TaskRouter {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new AttentionError('config', 'an object { experts, tasks, k?, … }', show(config));
  checkConfigKeys('taskRouter', config, ['experts', 'k', 'tasks', 'capacityFactor', 'normalize', 'weights', 'seed']);
  const rules = checkRoutingRules(config as unknown as Record<string, unknown>);
  const tasks = checkInt('config.tasks', config.tasks, 1);
  const seed = config.seed === undefined ? DEFAULT_SEED : checkInt('config.seed', config.seed, 0);
  let host: Float64Array;
  if (config.weights !== undefined) {
    const arg = checkMatrix('config.weights', config.weights, '[tasks, E]');
    if (arg.shape[0] !== tasks || arg.shape[1] !== rules.experts) throw new AttentionError('config.weights', `shape [tasks = ${tasks}, E = ${rules.experts}]`, `shape ${show(arg.shape)}`);
    const src = arg.source;
    if (src instanceof tf.Tensor) {
      requireSyncRead('config.weights', 'a weights tensor (task routing is decided on the host)', 'nested-array weights');
      host = Float64Array.from(src.dataSync());
    } else host = Float64Array.from(src.flat());
  } else {
    host = Float64Array.from(new SeededRandom(seed).normals(tasks * rules.experts));
  }
  return new TaskRouter({ experts: rules.experts, k: rules.k, tasks, capacityFactor: rules.capacityFactor, normalize: rules.normalize }, host);
}
