/**
 * `attention-catalog/layers`: every catalog entry as a tfjs-layers layer, shaped like Keras's
 * `MultiHeadAttention`. {@link CatalogAttention} projects its inputs to heads, runs the chosen
 * variant's `apply(q, k, v)` and projects the heads back:
 *
 * ```
 * query [B, Tq, Fq] ─ Wq ─► q [B, H,   Tq, keyDim]  ┐
 * key   [B, Tk, Fk] ─ Wk ─► k [B, kvH, Tk, keyDim]  ├─ variant.apply(q, k, v) ─► [B, H, Tq, valueDim]
 * value [B, Tk, Fv] ─ Wv ─► v [B, kvH, Tk, valueDim]┘                             │
 *                                          output [B, Tq, outputShape] ◄─ Wo ─ [B, Tq, H·valueDim]
 * ```
 *
 * Its weights are the four projections (kernels `[F, heads·dim]` and `[H·valueDim, outputShape]`,
 * biases with `useBias`) and the variant's learned parameters (adaptive-span `z`, sinkhorn
 * `sortWeights`, set-transformer `inducing`, transformer-xl `u`, `v`, `wR`, compressive
 * `convK`/`convV`, routing `centroids` (not trained by gradient: see {@link CatalogAttention.attention}),
 * and any other parameter a variant lists), so that `fit` trains them and `model.save` →
 * `tf.loadLayersModel` restores them. Importing this module registers the class with
 * `tf.serialization.registerClass` (the package's one side effect, declared in package.json).
 *
 * It needs `@tensorflow/tfjs-layers` (an optional peer dependency); `@tensorflow/tfjs` includes it.
 *
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs';
 * import { catalogAttention } from 'attention-catalog/layers';
 * const x = tf.input({ shape: [1024, 64] });
 * const y = catalogAttention({ numHeads: 4, keyDim: 16, variant: 'local', variantConfig: { window: 64, causal: true } }).apply(x) as tf.SymbolicTensor;
 * const model = tf.model({ inputs: x, outputs: tf.layers.dense({ units: 10 }).apply(y) as tf.SymbolicTensor });
 * model.compile({ optimizer: 'adam', loss: 'meanSquaredError' });
 * ```
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { initializers, layers, LayerVariable } from '@tensorflow/tfjs-layers';
import { AttentionError, show } from '../core/errors.js';
import type { EntryMeta } from '../core/catalog-types.js';
import type { Attention, Implementation } from '../core/types.js';
import { checkBool, checkInt } from '../core/validate.js';
import { adaptiveSpanAttention, meta as adaptiveSpanMeta } from '../variants/adaptive/adaptive-span.js';
import { denseAttention, meta as denseMeta } from '../variants/baseline/dense.js';
import { axialAttention, meta as axialMeta } from '../variants/combined/axial.js';
import { bigBirdAttention, meta as bigBirdMeta } from '../variants/combined/big-bird.js';
import { meta as sparseTransformerMeta, sparseTransformerAttention } from '../variants/combined/sparse-transformer.js';
import { blockwiseAttention, meta as blockwiseMeta } from '../variants/fixed/blockwise.js';
import { compressedAttention, meta as compressedMeta } from '../variants/fixed/compressed.js';
import { dilatedAttention, meta as dilatedMeta } from '../variants/fixed/dilated.js';
import { localAttention, meta as localMeta } from '../variants/fixed/local.js';
import { meta as stridedMeta, stridedAttention } from '../variants/fixed/strided.js';
import { linearAttention, meta as linearMeta } from '../variants/kernelized/linear.js';
import { meta as performerMeta, performerAttention } from '../variants/kernelized/performer.js';
import { lshAttention, meta as lshMeta } from '../variants/learnable/lsh.js';
import { meta as routingMeta, routingAttention } from '../variants/learnable/routing.js';
import { meta as sinkhornMeta, sinkhornAttention } from '../variants/learnable/sinkhorn.js';
import { linformerAttention, meta as linformerMeta } from '../variants/memory-saving/linformer.js';
import { groupedQueryAttention, meta as multiQueryMeta, multiQueryAttention } from '../variants/memory-saving/multi-query.js';
import { compressiveAttention, meta as compressiveMeta } from '../variants/recurrence/compressive.js';
import { meta as transformerXLMeta, transformerXLAttention } from '../variants/recurrence/transformer-xl.js';
import { etcAttention, meta as etcMeta } from '../variants/side-memory/etc.js';
import { longformerAttention, meta as longformerMeta } from '../variants/side-memory/longformer.js';
import { meta as setTransformerMeta, setTransformerAttention } from '../variants/side-memory/set-transformer.js';

type Layer = InstanceType<typeof layers.Layer>;
type LayerArgs = NonNullable<ConstructorParameters<typeof layers.Layer>[0]>;
type Kwargs = Parameters<Layer['call']>[1];
type Shape = Parameters<Layer['computeOutputShape']>[0] extends infer S ? (S extends unknown[][] ? never : S) : never;
type ShapeArg = Parameters<Layer['computeOutputShape']>[0];
type DisposeResult = ReturnType<Layer['dispose']>;
type ConfigDict = tf.serialization.ConfigDict;
/** A tfjs-layers initializer (what `tf.initializers.glorotUniform({})` returns). */
export type Initializer = ReturnType<typeof initializers.glorotUniform>;

/** A JSON value: what a `variantConfig` may hold (it is saved with the model). */
export type JsonValue = number | string | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** Names of tfjs-layers initializers accepted as strings (as in `tf.layers.dense({ kernelInitializer: 'heNormal' })`). */
export type InitializerName =
  | 'zeros'
  | 'ones'
  | 'glorotUniform'
  | 'glorotNormal'
  | 'heNormal'
  | 'heUniform'
  | 'leCunNormal'
  | 'leCunUniform'
  | 'randomNormal'
  | 'randomUniform'
  | 'truncatedNormal'
  | 'orthogonal';

/** An initializer: a name, an initializer object, or its serialized form `{ className, config }` (as `getConfig` writes it). */
export type InitializerSpec = InitializerName | Initializer | { className: string; config: ConfigDict };

/** Arguments of {@link CatalogAttention} (and {@link catalogAttention}). */
export interface CatalogAttentionArgs extends LayerArgs {
  /** Query heads H (an integer >= 1). Required. */
  numHeads: number;
  /** Key/value heads (a divisor of `numHeads`; grouped-query attention in between 1 and H). Default `numHeads`, and 1 for `'multi-query'`. */
  numKvHeads?: number;
  /** Size of each query and key head (an integer >= 1). Required. */
  keyDim: number;
  /** Size of each value head. Default `keyDim`. */
  valueDim?: number;
  /** Last dim of the output. Default: the query's last dim. */
  outputShape?: number | null;
  /** Whether the four projections have biases. Default `true`. */
  useBias?: boolean;
  /** Initializer of the projection kernels. Default `'glorotUniform'`. */
  kernelInitializer?: InitializerSpec;
  /** Initializer of the projection biases. Default `'zeros'`. */
  biasInitializer?: InitializerSpec;
  /** The catalog id of the attention variant, e.g. `'dense'`, `'local'`, `'performer'`. Required. */
  variant: string;
  /**
   * The variant's config (see its factory), JSON only: numbers, strings, booleans and arrays or
   * objects of them (it is saved with the model; trained values live in the layer's weights).
   * The layer fills in what it knows and the config leaves out: heads and head dims (adaptive-span
   * `heads`, sinkhorn `headDim`, set-transformer and transformer-xl `heads`/`headDim`, routing
   * `heads`/`dim`, compressive conv `headDim`/`valueDim`), the key input's static length as
   * `maxLength` (sinkhorn, linformer), and `trainable: true` wherever the variant takes it.
   * Default `{}`.
   */
  variantConfig?: { [key: string]: JsonValue };
  /** `'auto'` (default) | `'kernel'` | `'composite'`: passed to every `apply` (see `ApplyOptions`). */
  implementation?: Implementation;
}

/** What the layer knows when it builds its variant. */
interface BuildDims {
  numHeads: number;
  numKvHeads: number;
  keyDim: number;
  valueDim: number;
  /** The key input's static sequence length, or null. */
  keyLength: number | null;
}

type AnyConfig = Record<string, unknown>;

/** How the layer builds one catalog entry. */
interface VariantBuilder {
  meta: EntryMeta;
  /** Builds the variant from the (filled) config. */
  make(config: AnyConfig, dims: BuildDims): Attention<unknown>;
  /** Fills in the config fields the layer knows (heads, head dims, lengths); only those absent. */
  fill?(config: AnyConfig, dims: BuildDims): void;
  /** Reformer's shared-QK (lsh): keys are the projected queries; no key projection, no key input. */
  sharedQK?: boolean;
  /** Owned variables that are layer weights besides `meta.capabilities.learned` (e.g. routing's EMA centroids). */
  extraParams?: readonly string[];
  /** A constraint on the layer's dims, checked at construction. */
  check?(dims: Omit<BuildDims, 'keyLength'>): void;
}

const setIfAbsent = (c: AnyConfig, key: string, value: unknown) => {
  if (c[key] === undefined) c[key] = value;
};

/** The key input's static length, which sizes a learned parameter (`maxLength`), or a clear error. */
function staticLength(dims: BuildDims, id: string): number {
  if (dims.keyLength === null) {
    throw new AttentionError('variantConfig.maxLength', `the longest key sequence length (the key input's sequence length is not static, so '${id}' cannot size its parameters from it)`, 'undefined');
  }
  return dims.keyLength;
}

const plain = (meta: EntryMeta, make: (c: never) => Attention<unknown>): VariantBuilder => ({ meta, make: (c) => make(c as never) });

/** Every catalog entry, by id. */
const BUILDERS: Record<string, VariantBuilder> = {
  dense: plain(denseMeta, denseAttention),
  'multi-query': {
    meta: multiQueryMeta,
    make: (c, d) => {
      if (d.numKvHeads === 1 && c.groups === undefined) return multiQueryAttention(c as never);
      if (c.groups !== undefined && c.groups !== d.numKvHeads) throw new AttentionError('variantConfig.groups', `numKvHeads = ${d.numKvHeads} (the layer's K/V heads)`, show(c.groups));
      return groupedQueryAttention({ ...c, groups: d.numKvHeads } as never);
    },
  },
  local: plain(localMeta, localAttention),
  blockwise: plain(blockwiseMeta, blockwiseAttention),
  strided: plain(stridedMeta, stridedAttention),
  dilated: plain(dilatedMeta, dilatedAttention),
  compressed: plain(compressedMeta, compressedAttention),
  'sparse-transformer': plain(sparseTransformerMeta, sparseTransformerAttention),
  axial: plain(axialMeta, axialAttention),
  'big-bird': plain(bigBirdMeta, bigBirdAttention),
  lsh: { ...plain(lshMeta, lshAttention), sharedQK: true },
  routing: {
    ...plain(routingMeta, routingAttention),
    fill: (c, d) => {
      if (c.centroids !== undefined) return;
      setIfAbsent(c, 'heads', d.numHeads);
      setIfAbsent(c, 'dim', d.keyDim);
    },
    extraParams: ['centroids'],
  },
  sinkhorn: {
    ...plain(sinkhornMeta, sinkhornAttention),
    fill: (c, d) => {
      if (c.sortWeights !== undefined) return;
      setIfAbsent(c, 'headDim', d.keyDim);
      if (c.maxLength === undefined) c.maxLength = staticLength(d, 'sinkhorn');
    },
  },
  'transformer-xl': {
    ...plain(transformerXLMeta, transformerXLAttention),
    fill: (c, d) => {
      if (c.u !== undefined || c.v !== undefined || c.wR !== undefined) return;
      setIfAbsent(c, 'heads', d.numHeads);
      setIfAbsent(c, 'headDim', d.keyDim);
    },
  },
  compressive: {
    ...plain(compressiveMeta, compressiveAttention),
    fill: (c, d) => {
      if (c.fn !== 'conv' || c.convWeights !== undefined) return;
      setIfAbsent(c, 'headDim', d.keyDim);
      setIfAbsent(c, 'valueDim', d.valueDim);
    },
  },
  longformer: plain(longformerMeta, longformerAttention),
  etc: plain(etcMeta, etcAttention),
  'set-transformer': {
    ...plain(setTransformerMeta, setTransformerAttention),
    fill: (c, d) => {
      if (c.inducing !== undefined) return;
      setIfAbsent(c, 'heads', d.numHeads);
      setIfAbsent(c, 'headDim', d.keyDim);
    },
    check: (d) => {
      if (d.valueDim !== d.keyDim) throw new AttentionError('valueDim', `keyDim = ${d.keyDim} (set-transformer attends its induced rows as keys and values, so dv == d)`, `${d.valueDim}`);
    },
  },
  linformer: {
    ...plain(linformerMeta, linformerAttention),
    fill: (c, d) => {
      if (c.projections === undefined && c.maxLength === undefined) c.maxLength = staticLength(d, 'linformer');
    },
  },
  linear: plain(linearMeta, linearAttention),
  performer: plain(performerMeta, performerAttention),
  'adaptive-span': {
    ...plain(adaptiveSpanMeta, adaptiveSpanAttention),
    fill: (c, d) => {
      if (c.z === undefined) setIfAbsent(c, 'heads', d.numHeads);
    },
  },
};

/** The catalog ids the layer accepts as `variant` (every catalog entry). */
export const LAYER_VARIANTS: readonly string[] = Object.freeze(Object.keys(BUILDERS));

// ---- JSON configs that survive tfjs-layers' snake_case round trip -----------------------------

// tfjs-layers writes a model's config with every key and string snake_cased and reads it back
// camelCased (utils/serialization_utils.ts). These mirror its two functions.
const toSnake = (s: string) => {
  const t = s.replace(/(.)([A-Z][a-z0-9]+)/g, '$1_$2').replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase();
  return t[0] !== '_' ? t : 'private' + t;
};
const toCamel = (s: string) => (s.length <= 1 || !s.includes('_') ? s : s.replace(/[_]+(\w|$)/g, (_m, c: string) => c.toUpperCase()));

/**
 * A string as getConfig writes it: itself when tfjs-layers' snake → camel round trip restores
 * it, else its snake form with one `_` before each capital (`shareKV` → `share_k_v`), which the
 * round trip leaves as is and {@link decodeName} (like tfjs-layers on load) turns back.
 */
const encodeName = (s: string) => (toCamel(toSnake(s)) === s ? s : s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`));
const decodeName = (s: string) => (s.includes('_') ? toCamel(s) : s);

function mapJson(x: JsonValue, f: (s: string) => string): JsonValue {
  if (typeof x === 'string') return f(x);
  if (Array.isArray(x)) return x.map((y) => mapJson(y, f));
  if (x !== null && typeof x === 'object') return Object.fromEntries(Object.entries(x).map(([k, v]) => [f(k), mapJson(v, f)]));
  return x;
}

/** A deep copy of a JSON config, or an AttentionError naming the first value that is not JSON (undefined entries are dropped). */
function checkJson(name: string, x: unknown): JsonValue {
  if (x === null || typeof x === 'boolean' || typeof x === 'string') return x;
  if (typeof x === 'number') {
    if (!Number.isFinite(x)) throw new AttentionError(name, 'a finite number (the config is saved as JSON)', show(x));
    return x;
  }
  if (Array.isArray(x)) return x.map((y, i) => checkJson(`${name}[${i}]`, y));
  if (x instanceof tf.Tensor) {
    throw new AttentionError(name, 'JSON values (numbers, strings, booleans, arrays, objects): the config is saved with the model', show(x), 'Pass the values as nested arrays, or set the trained values with setWeights.');
  }
  if (typeof x === 'object' && (Object.getPrototypeOf(x) === Object.prototype || Object.getPrototypeOf(x) === null)) {
    const out: { [key: string]: JsonValue } = {};
    for (const [k, v] of Object.entries(x)) if (v !== undefined) out[k] = checkJson(`${name}.${k}`, v);
    return out;
  }
  throw new AttentionError(name, 'JSON values (numbers, strings, booleans, arrays, plain objects)', typeof x === 'object' ? `a ${(x as object).constructor?.name ?? 'non-plain'} object` : typeof x);
}

// ---- initializers --------------------------------------------------------------------------

const NAMED_INITIALIZERS: Record<InitializerName, () => Initializer> = {
  zeros: () => initializers.zeros(),
  ones: () => initializers.ones(),
  glorotUniform: () => initializers.glorotUniform({}),
  glorotNormal: () => initializers.glorotNormal({}),
  heNormal: () => initializers.heNormal({}),
  heUniform: () => initializers.heUniform({}),
  leCunNormal: () => initializers.leCunNormal({}),
  leCunUniform: () => initializers.leCunUniform({}),
  randomNormal: () => initializers.randomNormal({}),
  randomUniform: () => initializers.randomUniform({}),
  truncatedNormal: () => initializers.truncatedNormal({}),
  orthogonal: () => initializers.orthogonal({}),
};

function resolveInitializer(name: string, spec: unknown, fallback: InitializerName): Initializer {
  if (spec === undefined || spec === null) return NAMED_INITIALIZERS[fallback]();
  if (typeof spec === 'string') {
    const make = NAMED_INITIALIZERS[spec as InitializerName];
    if (!make) throw new AttentionError(name, `one of ${Object.keys(NAMED_INITIALIZERS).join(', ')}, an initializer, or { className, config }`, show(spec));
    return make();
  }
  if (typeof spec === 'object') {
    const s = spec as { apply?: unknown; getClassName?: unknown; className?: unknown; config?: unknown };
    if (typeof s.apply === 'function' && typeof s.getClassName === 'function') return spec as Initializer;
    if (typeof s.className === 'string') {
      const entry = tf.serialization.SerializationMap.getMap().classNameMap[s.className];
      if (!entry) throw new AttentionError(`${name}.className`, 'a registered tfjs-layers initializer class', show(s.className));
      const [cls, fromConfig] = entry;
      return fromConfig(cls, (s.config ?? {}) as ConfigDict) as unknown as Initializer;
    }
  }
  throw new AttentionError(name, 'an initializer name, an initializer, or { className, config }', show(spec));
}

const serializeInitializer = (i: Initializer): ConfigDict => ({ className: i.getClassName(), config: i.getConfig() });

// ---- the layer -------------------------------------------------------------------------------

/**
 * A layer weight that is a variable a variant owns: the variant reads it in place, so that the
 * optimizer's updates and `setWeights` / loaded weights reach the variant. It is freed with the
 * variant when the layer is disposed (its own `dispose` is a no-op).
 */
class VariantWeight extends LayerVariable {
  constructor(variable: tf.Variable, name: string) {
    // LayerVariable names itself in the current name scope (the layer's) and makes its own
    // tf.Variable over the same data: dispose that one and hold the variant's instead.
    super(variable, variable.dtype, name, variable.trainable);
    const own = this as unknown as { val: tf.Variable };
    own.val.dispose();
    own.val = variable;
  }

  override dispose(): void {
    // Owned by the variant: CatalogAttention frees it with the variant.
  }
}

/** The four projections' weights. */
interface Projection {
  kernel: LayerVariable;
  bias: LayerVariable | null;
}

/**
 * Multi-head attention over any catalog variant, as a tfjs-layers layer (Keras's
 * `MultiHeadAttention` arguments, plus `variant` and `variantConfig`). Called on `query` (self
 * attention), `[query, value]` or `[query, value, key]`, each `[batch, seq, features]` (key
 * defaults to value); returns `[batch, Tq, outputShape]`.
 *
 * With `lsh` (Reformer's shared-QK) the keys are the projected queries: there is no key projection
 * and no key input, and the value's length must be the query's.
 *
 * For self-attention inside a model, call it on `x` itself (`layer.apply(x)`), not on `[x, x]`:
 * tfjs-layers 4.22's `predict` frees an intermediate tensor given twice to one layer while another
 * layer (a residual `add`) still needs it ("Tensor is disposed"; built-in layers do the same).
 *
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs';
 * import { CatalogAttention } from 'attention-catalog/layers';
 * const layer = new CatalogAttention({ numHeads: 8, keyDim: 32, variant: 'performer', variantConfig: { features: 128 } });
 * const x = tf.randomNormal([2, 4096, 256]);
 * const y = layer.apply([x, x]) as tf.Tensor; // [2, 4096, 256]
 * ```
 */
export class CatalogAttention extends layers.Layer {
  /** The name the class is registered and serialized under. */
  static className = 'CatalogAttention';

  private readonly numHeads: number;
  private readonly numKvHeads: number;
  private readonly keyDim: number;
  private readonly valueDim: number;
  private readonly outputDim: number | null;
  private readonly useBias: boolean;
  private readonly kernelInitializer: Initializer;
  private readonly biasInitializer: Initializer;
  /** The catalog id of the variant. */
  readonly variant: string;
  /**
   * The variant's config as given (JSON; what the layer fills in at build is not in it). `getConfig`
   * writes it with the few names that tfjs-layers' snake_case round trip of a saved model would not
   * restore (e.g. `shareKV`) in snake form (`share_k_v`); the constructor, like a load, reads both.
   */
  readonly variantConfig: { [key: string]: JsonValue };
  private readonly implementation: Implementation;
  private readonly builder: VariantBuilder;
  private attn: Attention<unknown> | null = null;
  private proj: { query: Projection; key: Projection | null; value: Projection; output: Projection } | null = null;
  private features: { query: number; key: number; value: number } | null = null;

  constructor(args: CatalogAttentionArgs) {
    if (typeof args !== 'object' || args === null) throw new AttentionError('args', 'an object { numHeads, keyDim, variant, … }', show(args));
    const variant = args.variant;
    if (typeof variant !== 'string' || !Object.hasOwn(BUILDERS, variant)) {
      throw new AttentionError('variant', `a catalog id: one of ${LAYER_VARIANTS.join(', ')}`, show(variant));
    }
    const builder = BUILDERS[variant];
    const numHeads = checkInt('numHeads', args.numHeads, 1);
    const numKvHeads = args.numKvHeads === undefined || args.numKvHeads === null ? (variant === 'multi-query' ? 1 : numHeads) : checkInt('numKvHeads', args.numKvHeads, 1);
    if (numHeads % numKvHeads !== 0) throw new AttentionError('numKvHeads', `a divisor of numHeads = ${numHeads}`, `${numKvHeads}`);
    if (builder.sharedQK && numKvHeads !== numHeads) {
      throw new AttentionError('numKvHeads', `numHeads = ${numHeads} ('${variant}' shares queries and keys, so the keys have the query heads)`, `${numKvHeads}`);
    }
    const keyDim = checkInt('keyDim', args.keyDim, 1);
    const valueDim = args.valueDim === undefined || args.valueDim === null ? keyDim : checkInt('valueDim', args.valueDim, 1);
    const outputDim = args.outputShape === undefined || args.outputShape === null ? null : checkInt('outputShape', args.outputShape, 1);
    const useBias = args.useBias === undefined || args.useBias === null ? true : checkBool('useBias', args.useBias);
    const implementation = args.implementation ?? 'auto';
    if (implementation !== 'auto' && implementation !== 'kernel' && implementation !== 'composite') {
      throw new AttentionError('implementation', "'auto', 'kernel' or 'composite'", show(implementation));
    }
    const given = args.variantConfig === undefined || args.variantConfig === null ? {} : args.variantConfig;
    if (typeof given !== 'object' || Array.isArray(given)) throw new AttentionError('variantConfig', 'an object (the variant\'s config)', show(given));
    // Keys written by getConfig (or restored by tfjs-layers on load) back to the variant's own names.
    const variantConfig = mapJson(checkJson('variantConfig', given), decodeName) as { [key: string]: JsonValue };
    const kernelInitializer = resolveInitializer('kernelInitializer', args.kernelInitializer, 'glorotUniform');
    const biasInitializer = resolveInitializer('biasInitializer', args.biasInitializer, 'zeros');
    builder.check?.({ numHeads, numKvHeads, keyDim, valueDim });
    super(args);
    this.variant = variant;
    this.builder = builder;
    this.numHeads = numHeads;
    this.numKvHeads = numKvHeads;
    this.keyDim = keyDim;
    this.valueDim = valueDim;
    this.outputDim = outputDim;
    this.useBias = useBias;
    this.implementation = implementation;
    this.variantConfig = variantConfig;
    this.kernelInitializer = kernelInitializer;
    this.biasInitializer = biasInitializer;
  }

  /**
   * The variant instance the layer runs (built with the layer): for its own methods, e.g.
   * adaptive-span's `spanLoss()` / `clampSpan()` or routing's `updateCentroids(q, k, decay)`.
   * @throws AttentionError before the layer is built, or after it is disposed.
   */
  get attention(): Attention<unknown> {
    if (!this.attn) throw new AttentionError('this', 'a built, live layer (apply it to an input first)', this.built ? 'a disposed layer' : 'a layer not built yet');
    return this.attn;
  }

  /** Query, value and key shapes of a call's input (one shape: self-attention). */
  private shapesOf(inputShape: ShapeArg): { query: Shape; value: Shape; key: Shape } {
    const list = (Array.isArray(inputShape[0]) ? inputShape : [inputShape]) as Shape[];
    if (list.length < 1 || list.length > 3) throw new AttentionError('inputs', '[query], [query, value] or [query, value, key]', `${list.length} inputs`);
    const names = ['query', 'value', 'key'];
    list.forEach((s, i) => {
      if (s.length !== 3) throw new AttentionError(names[i], 'shape [batch, seq, features] (rank 3)', `shape ${show(s)}`);
      if (s[2] === null) throw new AttentionError(names[i], 'a static last dimension (features)', `shape ${show(s)}`);
    });
    if (this.builder.sharedQK && list.length === 3) {
      throw new AttentionError('key', `no key input: '${this.variant}' shares queries and keys (keys are the projected queries); call it on [query, value]`, 'a key input');
    }
    const query = list[0];
    const value = list[1] ?? query;
    const key = this.builder.sharedQK ? query : (list[2] ?? value);
    const known = (a: number | null, b: number | null) => a === null || b === null || a === b;
    if (!known(key[1], value[1])) throw new AttentionError('value', `the key's sequence length ${key[1]}`, `${value[1]} (shape ${show(value)})`);
    for (const [n, s] of [['value', value], ['key', key]] as const) {
      if (!known(query[0], s[0])) throw new AttentionError(n, `the query's batch size ${query[0]}`, `${s[0]} (shape ${show(s)})`);
    }
    return { query, value, key };
  }

  override computeOutputShape(inputShape: ShapeArg): Shape {
    const { query } = this.shapesOf(inputShape);
    return [query[0], query[1], this.outputDim ?? query[2]];
  }

  override build(inputShape: ShapeArg): void {
    const { query, value, key } = this.shapesOf(inputShape);
    const fq = query[2] as number;
    const fv = value[2] as number;
    const fk = key[2] as number;
    const H = this.numHeads;
    const KH = this.numKvHeads;
    // The variant first: its config is checked before any weight exists.
    const attn = this.makeVariant({ numHeads: H, numKvHeads: KH, keyDim: this.keyDim, valueDim: this.valueDim, keyLength: key[1] });
    try {
      const projection = (name: string, inDim: number, outDim: number): Projection => ({
        kernel: this.addWeight(`${name}/kernel`, [inDim, outDim], 'float32', this.kernelInitializer),
        bias: this.useBias ? this.addWeight(`${name}/bias`, [outDim], 'float32', this.biasInitializer) : null,
      });
      const queryP = projection('query', fq, H * this.keyDim);
      const keyP = this.builder.sharedQK ? null : projection('key', fk, KH * this.keyDim);
      const valueP = projection('value', fv, KH * this.valueDim);
      const outputP = projection('attention_output', H * this.valueDim, this.outputDim ?? fq);
      for (const [name, variable] of learnedVariables(this.builder, attn)) this._trainableWeights.push(new VariantWeight(variable, `variant/${name}`));
      this.proj = { query: queryP, key: keyP, value: valueP, output: outputP };
    } catch (e) {
      attn.dispose();
      throw e;
    }
    this.attn = attn;
    this.features = { query: fq, key: fk, value: fv };
    this.built = true;
  }

  /** The variant, from the config plus what the layer knows; its config errors name `variantConfig.*`. */
  private makeVariant(dims: BuildDims): Attention<unknown> {
    const config: AnyConfig = structuredClone(this.variantConfig);
    this.builder.fill?.(config, dims);
    const make = (c: AnyConfig) => {
      try {
        return this.builder.make(c, dims);
      } catch (e) {
        throw e instanceof AttentionError && e.argument.startsWith('config') ? renamed(e) : e;
      }
    };
    if (config.trainable !== undefined) return make(config);
    // Learned parameters are trained, like every weight of a layer: trainable where the variant
    // takes the flag (an explicit `trainable: false` freezes them).
    try {
      return make({ ...config, trainable: true });
    } catch (e) {
      if (e instanceof AttentionError && e.argument === 'variantConfig.trainable') return make(config);
      throw e;
    }
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    void kwargs;
    const attn = this.attention;
    const proj = this.proj!;
    const features = this.features!;
    const list = Array.isArray(inputs) ? inputs : [inputs];
    if (list.length < 1 || list.length > 3) throw new AttentionError('inputs', '[query], [query, value] or [query, value, key]', `${list.length} inputs`);
    if (this.builder.sharedQK && list.length === 3) {
      throw new AttentionError('key', `no key input: '${this.variant}' shares queries and keys; call it on [query, value]`, 'a key input');
    }
    const query = list[0];
    const value = list[1] ?? query;
    const key = list[2] ?? value;
    const check = (name: string, t: tf.Tensor, f: number) => {
      if (!(t instanceof tf.Tensor) || t.rank !== 3 || t.shape[2] !== f) throw new AttentionError(name, `a tensor of shape [batch, seq, ${f}]`, show(t));
      if (t.dtype !== 'float32') throw new AttentionError(name, 'a float32 tensor', `a ${t.dtype} tensor`);
      if (t.shape[0] !== query.shape[0]) throw new AttentionError(name, `the query's batch size ${query.shape[0]}`, `${t.shape[0]}`);
    };
    check('query', query, features.query);
    check('value', value, features.value);
    if (!this.builder.sharedQK) {
      check('key', key, features.key);
      if (key.shape[1] !== value.shape[1]) throw new AttentionError('value', `the key's sequence length ${key.shape[1]}`, `${value.shape[1]}`);
    } else if (value.shape[1] !== query.shape[1]) {
      throw new AttentionError('value', `the query's sequence length ${query.shape[1]} ('${this.variant}' attends the queries as keys)`, `${value.shape[1]}`);
    }
    const [B, Tq] = query.shape;
    const H = this.numHeads;
    const KH = this.numKvHeads;
    return tf.tidy(() => {
      const q = heads(query, proj.query, H, this.keyDim);
      const k = proj.key ? heads(key, proj.key, KH, this.keyDim) : q;
      const v = heads(value, proj.value, KH, this.valueDim);
      const o = attn.apply(q, k, v, { implementation: this.implementation });
      const merged = tf.reshape(tf.transpose(o, [0, 2, 1, 3]), [B * Tq, H * this.valueDim]);
      const out = dense(merged, proj.output);
      return tf.reshape(out, [B, Tq, out.shape[1]]);
    });
  }

  override getConfig(): ConfigDict {
    const config: ConfigDict = {
      numHeads: this.numHeads,
      numKvHeads: this.numKvHeads,
      keyDim: this.keyDim,
      valueDim: this.valueDim,
      outputShape: this.outputDim,
      useBias: this.useBias,
      kernelInitializer: serializeInitializer(this.kernelInitializer),
      biasInitializer: serializeInitializer(this.biasInitializer),
      variant: this.variant,
      variantConfig: mapJson(this.variantConfig, encodeName) as ConfigDict,
      implementation: this.implementation,
    };
    return { ...super.getConfig(), ...config };
  }

  /** Frees the variant (and the variables it owns, some of them layer weights) with the weights. */
  protected override disposeWeights(): number {
    const count = super.disposeWeights();
    this.attn?.dispose();
    this.attn = null;
    return count;
  }

  /** Disposes the layer (tfjs-layers reference counting); at zero, its weights and its variant. */
  override dispose(): DisposeResult {
    return super.dispose();
  }
}

/** `x [B, T, F]` projected and split into heads: `[B, heads, T, dim]`. */
function heads(x: tf.Tensor, p: Projection, count: number, dim: number): tf.Tensor4D {
  const [B, T, F] = x.shape;
  const y = dense(tf.reshape(x, [B * T, F]), p);
  return tf.transpose(tf.reshape(y, [B, T, count, dim]), [0, 2, 1, 3]) as tf.Tensor4D;
}

/** `x [N, in] · kernel (+ bias)`. */
function dense(x: tf.Tensor, p: Projection): tf.Tensor2D {
  const y = tf.matMul(x as tf.Tensor2D, p.kernel.read() as tf.Tensor2D);
  return (p.bias ? tf.add(y, p.bias.read()) : y) as tf.Tensor2D;
}

/** An AttentionError of a variant factory (`config.x`) renamed to the layer's argument (`variantConfig.x`). */
function renamed(e: AttentionError): AttentionError {
  const head = `${e.argument}: expected ${e.expected}, got ${e.given}`;
  const hint = e.message.startsWith(head) && e.message.length > head.length + 2 ? e.message.slice(head.length + 2) : undefined;
  return new AttentionError(e.argument.replace(/^config/, 'variantConfig'), e.expected, e.given, hint);
}

/**
 * The variables a variant owns that are layer weights, named: its learned parameters
 * (`meta.capabilities.learned`, and the builder's extras) whose getters hold a `tf.Variable`,
 * then any other of its `variables`.
 */
function learnedVariables(builder: VariantBuilder, attn: Attention<unknown>): [string, tf.Variable][] {
  const out: [string, tf.Variable][] = [];
  const seen = new Set<tf.Variable>();
  const owner = attn as unknown as Record<string, unknown>;
  for (const name of [...builder.meta.capabilities.learned, ...(builder.extraParams ?? [])]) {
    let value: unknown;
    try {
      value = owner[name];
    } catch (e) {
      // A parameter this configuration does not have (e.g. compressive's convK with fn 'mean').
      if (e instanceof AttentionError) continue;
      throw e;
    }
    if (value instanceof tf.Variable && !seen.has(value)) {
      out.push([name, value]);
      seen.add(value);
    }
  }
  const listed = 'variables' in owner ? (owner.variables as tf.Variable[]) : [];
  listed.forEach((v, i) => {
    if (!seen.has(v)) {
      out.push([`variables_${i}`, v]);
      seen.add(v);
    }
  });
  return out;
}

tf.serialization.registerClass(CatalogAttention);

/**
 * Builds a {@link CatalogAttention} layer (as `tf.layers.multiHeadAttention` would).
 *
 * @param args - `numHeads`, `keyDim`, `variant` (required); `numKvHeads`, `valueDim`,
 * `outputShape`, `useBias`, `kernelInitializer`, `biasInitializer`, `variantConfig`,
 * `implementation`, and the usual layer arguments (`name`, `trainable`, …).
 * @throws AttentionError for bad arguments (at construction) or a bad `variantConfig` (when built).
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs';
 * import { catalogAttention } from 'attention-catalog/layers';
 * const tokens = tf.input({ shape: [512], dtype: 'int32' });
 * const x = tf.layers.embedding({ inputDim: 1000, outputDim: 64 }).apply(tokens) as tf.SymbolicTensor;
 * const y = catalogAttention({ numHeads: 4, keyDim: 16, variant: 'big-bird', variantConfig: { block: 32 } }).apply(x) as tf.SymbolicTensor;
 * const model = tf.model({ inputs: tokens, outputs: tf.layers.dense({ units: 1000, activation: 'softmax' }).apply(y) as tf.SymbolicTensor });
 * ```
 */
export function catalogAttention(args: CatalogAttentionArgs): CatalogAttention {
  return new CatalogAttention(args);
}

export { MoE, mixtureOfExperts, type MoEArgs } from './moe.js';
