/**
 * `MoE`: the mixture-of-experts FFN of `attention-catalog/moe` as a tfjs-layers layer (exported
 * by `attention-catalog/layers`). Its weights are the router `[d, E]`, the experts' `w1`, `b1`,
 * `w2`, `b2`, and with PR-MoE's residual branch `rw1`, `rb1`, `rw2`, `rb2` (and `coefficient`),
 * initialised from `seed` exactly as `moeLayer` draws them; `fit` trains them all (the router
 * through the gates). The router's load-balancing loss and z-loss, weighted by `auxLossWeight`
 * and `zLossWeight`, are layer losses (`addLoss`), which `fit` adds to the model's loss.
 * Importing the module registers the class with `tf.serialization.registerClass`.
 *
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs';
 * import { mixtureOfExperts } from 'attention-catalog/layers';
 * const x = tf.input({ shape: [128, 64] });
 * const y = mixtureOfExperts({ experts: 8, k: 2, hidden: 256, policy: 'batch-priority' }).apply(x) as tf.SymbolicTensor;
 * const model = tf.model({ inputs: x, outputs: y });
 * ```
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { initializers, layers, LayerVariable } from '@tensorflow/tfjs-layers';
import { AttentionError, show } from '../core/errors.js';
import { checkMoEConfig, initialWeights, moeForward, paramsOf, type CheckedMoE, type MoELayerConfig } from '../moe/layer.js';
import type { RoutingConfig } from '../moe/router.js';

type Layer = InstanceType<typeof layers.Layer>;
type LayerArgs = NonNullable<ConstructorParameters<typeof layers.Layer>[0]>;
type Kwargs = Parameters<Layer['call']>[1];
type ShapeArg = Parameters<Layer['computeOutputShape']>[0];
type Shape = Parameters<Layer['computeOutputShape']>[0] extends infer S ? (S extends unknown[][] ? never : S) : never;
type ConfigDict = tf.serialization.ConfigDict;

/** Arguments of {@link MoE} (and {@link mixtureOfExperts}): moeLayer's config without explicit weights (the layer's weights hold them). */
export interface MoEArgs extends LayerArgs, RoutingConfig, Pick<MoELayerConfig, 'hidden' | 'activation' | 'residual' | 'residualCoefficient'> {
  /** Seed of the initial weights. Default: the catalog's fixed seed. */
  seed?: number;
  /** Weight of the load-balancing loss added to the model's loss. Default 0.01 (Switch). */
  auxLossWeight?: number;
  /** Weight of the router z-loss. Default 0.001 (ST-MoE). */
  zLossWeight?: number;
}

const ROUTING_ARGS = ['experts', 'k', 'capacityFactor', 'policy', 'priority', 'normalize', 'hidden', 'activation', 'residual', 'residualCoefficient', 'seed'] as const;

/**
 * A mixture-of-experts FFN layer: input `[batch, …, d]`, output the same shape. An optional
 * `mask` kwarg (one 0/1 flag per token, e.g. from an embedding with `maskZero`) keeps padding
 * tokens unrouted (they output 0).
 *
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs';
 * import { MoE } from 'attention-catalog/layers';
 * const layer = new MoE({ experts: 4, hidden: 64, residual: true });
 * const y = layer.apply(tf.randomNormal([2, 32, 16])) as tf.Tensor; // [2, 32, 16]
 * ```
 */
export class MoE extends layers.Layer {
  /** The name the class is registered and serialized under. */
  static className = 'MoE';
  private readonly args: Record<string, unknown>;
  private readonly auxLossWeight: number;
  private readonly zLossWeight: number;
  private checked: CheckedMoE | null = null;
  private weightsByName: Record<string, LayerVariable> = {};
  private lastLoss: tf.Scalar | null = null;

  constructor(args: MoEArgs) {
    if (typeof args !== 'object' || args === null) throw new AttentionError('args', 'an object { experts, hidden?, k?, … }', show(args));
    const config: Record<string, unknown> = {};
    for (const key of ROUTING_ARGS) if (args[key] !== undefined && args[key] !== null) config[key] = args[key];
    // The config checked now (the model dim comes at build): a bad one throws before the layer exists.
    checkMoEConfig(config, 1);
    const weight = (name: 'auxLossWeight' | 'zLossWeight', dflt: number) => {
      const v = args[name];
      if (v === undefined || v === null) return dflt;
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new AttentionError(name, 'a finite number >= 0', show(v));
      return v;
    };
    const aux = weight('auxLossWeight', 0.01);
    const z = weight('zLossWeight', 0.001);
    super(args);
    this.args = config;
    this.auxLossWeight = aux;
    this.zLossWeight = z;
  }

  override computeOutputShape(inputShape: ShapeArg): Shape {
    return inputShape as Shape;
  }

  override build(inputShape: ShapeArg): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
    const d = shape[shape.length - 1];
    if (shape.length < 2 || typeof d !== 'number') throw new AttentionError('inputs', 'shape [batch, …, d] with a static last dim', `shape ${show(shape)}`);
    const checked = checkMoEConfig(this.args, d);
    const init = initialWeights(checked);
    try {
      for (const [name, t] of Object.entries(init)) {
        const w = this.addWeight(name, t.shape, 'float32', initializers.zeros());
        w.write(t);
        this.weightsByName[name] = w;
      }
    } finally {
      tf.dispose(Object.values(init));
    }
    this.checked = checked;
    // The router's losses of the latest call, weighted: fit adds layer losses to the model's loss.
    this.addLoss(() => (this.lastLoss ? tf.clone(this.lastLoss) : tf.scalar(0)));
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    const checked = this.checked;
    if (!checked) throw new AttentionError('this', 'a built layer', 'a layer not built yet');
    const mask = (kwargs as { mask?: tf.Tensor } | undefined)?.mask;
    return tf.tidy(() => {
      const params = paramsOf(checked.shape, Object.fromEntries(Object.entries(this.weightsByName).map(([n, w]) => [n, w.read()])));
      const out = moeForward(checked.shape, params, x, mask ? { mask: tf.reshape(mask, [-1]) } : undefined, 'a numeric mask array');
      const loss = tf.add(tf.mul(out.auxLoss, this.auxLossWeight), tf.mul(out.zLoss, this.zLossWeight)) as tf.Scalar;
      this.lastLoss?.dispose();
      this.lastLoss = tf.keep(loss);
      return out.output;
    });
  }

  override getConfig(): ConfigDict {
    const config: ConfigDict = { auxLossWeight: this.auxLossWeight, zLossWeight: this.zLossWeight };
    for (const key of ROUTING_ARGS) if (this.args[key] !== undefined) config[key] = this.args[key] as ConfigDict[string];
    return { ...super.getConfig(), ...config };
  }

  protected override disposeWeights(): number {
    this.lastLoss?.dispose();
    this.lastLoss = null;
    return super.disposeWeights();
  }
}

tf.serialization.registerClass(MoE);

/**
 * Builds a {@link MoE} layer.
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs';
 * import { mixtureOfExperts } from 'attention-catalog/layers';
 * const layer = mixtureOfExperts({ experts: 8, k: 2, capacityFactor: 1, hidden: 128 });
 * ```
 */
export function mixtureOfExperts(args: MoEArgs): MoE {
  return new MoE(args);
}
