/**
 * `attention-catalog/moe`: mixture of experts, the routing half of sparse inference — each
 * token activates k of E experts (DESIGN.md "Mixture of experts").
 *
 * - {@link topKRouter}: top-k gating with capacity ⌈k·C·T/E⌉, natural or batch-priority
 *   (V-MoE) order, dropless mode (`capacityFactor: 0`), Switch's load-balancing loss and the
 *   router z-loss, padding never routed. Index-based routes: `expert`, `slot`, `gate` `[T, k]`.
 * - {@link taskRouter}: task-level MoE — all tokens of a task go to its top-k experts;
 *   `expertsFor(task)` lists the k experts a server for that task loads.
 * - {@link moeLayer}: router + E expert FFNs with index-based dispatch and combine, PR-MoE's
 *   residual branch (`residual`, `residualCoefficient`), trainable weights. The tfjs-layers
 *   form is `MoE` in `attention-catalog/layers`.
 *
 * Invalid configs and inputs throw `AttentionError` (the catalog's one error type) before any
 * dispatch. Hierarchical all-to-all and expert parallelism do not apply to one tfjs device.
 *
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import { moeLayer, topKRouter } from 'attention-catalog/moe';
 * const router = topKRouter({ experts: 8, k: 2, capacityFactor: 0.5, policy: 'batch-priority', dim: 32 });
 * const route = router.route(tf.randomNormal([256, 32]));
 * const kept = tf.sum(tf.cast(tf.greaterEqual(route.slot, 0), 'int32')); // choices within capacity
 * const moe = moeLayer({ experts: 8, k: 2, dim: 32, hidden: 64, residual: true });
 * const y = moe.apply(tf.randomNormal([256, 32]));
 * ```
 *
 * @module
 */
export {
  TopKRouter,
  TaskRouter,
  topKRouter,
  taskRouter,
  capacityOf,
  type Route,
  type RouteOptions,
  type RoutingPolicy,
  type RoutingPriority,
  type TaskRouterConfig,
  type TopKRoute,
  type TopKRouterConfig,
} from './router.js';
export { MoELayer, moeLayer, type MoEActivation, type MoELayerConfig, type MoEOutput, type WeightInput } from './layer.js';
export { AttentionError } from '../core/errors.js';
