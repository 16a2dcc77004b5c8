/**
 * Kernelized (linear) attention on whichever path the call resolves to: the fused kernel on
 * webgpu, the composite elsewhere. Shared by `linear` and `performer`.
 *
 * @module
 */
import { finiteKVBytes } from '../shared/finite.js';
import { WEBGPU_SPLIT_K_INNER } from '../shared/matmul.js';
import * as tf from '@tensorflow/tfjs-core';
import { webgpuLimits } from '../../src/core/backend.js';
import { forwardOnlyKernel, resolveImplementation } from '../../src/core/dispatch.js';
import { AttentionError } from '../../src/core/errors.js';
import { checkHostBudget } from '../../src/core/budget.js';
import type { Dims, Implementation } from '../../src/core/types.js';
import { activeKernelLimits } from '../shared/limits.js';
import { planningLimits } from '../shared/limits.js';
import { COMPOSITE_CHUNK, linearComposite } from './composite.js';
import { featureOps, isExpKind, isProjectedKind, type FeatureKind } from './feature_maps.js';
import { runLinearKernel } from './kernel.js';
import { fusedLinearBackwardCovers } from './backward.js';
import { linearKernelBytes, planLinear } from './plan.js';

/**
 * The implementation a call may run while tfjs records gradients: the fused kernel where its
 * fused backward covers the call ({@link fusedLinearBackwardCovers}: every feature map but the
 * FAVOR+ softmax kernel, causal only with n = m), else the composite (and `'kernel'` throws).
 */
export function linearTrainingImplementation(implementation: Implementation, kind: FeatureKind, causal: boolean, dims: Pick<Dims, 'n' | 'm'>): Implementation {
  return fusedLinearBackwardCovers(kind, causal, dims) ? implementation : forwardOnlyKernel(implementation);
}

/** Options of {@link attendLinear}. */
export interface LinearAttendOptions {
  kind: FeatureKind;
  causal: boolean;
  /** FAVOR+ maps: random features `[d, M]` (caller-owned) and input scale x' = x·xscale. */
  omega: tf.Tensor2D | null;
  xscale: number;
  keyLength: number[] | tf.Tensor1D | null;
}

/** Number of features: d (elementwise maps) or M (FAVOR+). */
function featureCount(dims: Dims, opts: { kind: FeatureKind; features?: number; omega?: tf.Tensor2D | null }): number {
  if (!isProjectedKind(opts.kind)) return dims.d;
  return opts.omega ? opts.omega.shape[1] : opts.features!;
}

/** Largest tensor of the composite (features of all queries or keys), checked against the binding limit on webgpu. */
function checkCompositeFits(dims: Dims, features: number): void {
  const limits = webgpuLimits();
  if (!limits) return;
  const { batch, heads, kvHeads, n, m, dv } = dims;
  const bytes = Math.max(batch * heads * n, batch * kvHeads * m) * Math.max(features, dv) * 4;
  const max = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  if (bytes > max) {
    throw new AttentionError('options.implementation', `a composite whose feature tensors fit the device's ${max}-byte binding limit`, `'composite' needing ${bytes} bytes`, "Use implementation 'auto' or 'kernel'.");
  }
}

/**
 * Validates and plans (throwing AttentionError before any dispatch), then runs the chosen path.
 * @returns `[batch, heads, n, dv]`
 */
export function attendLinear(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, dims: Dims, opts: LinearAttendOptions, implementation: Implementation): tf.Tensor4D {
  const path = resolveImplementation(linearTrainingImplementation(implementation, opts.kind, opts.causal, dims));
  const features = featureCount(dims, opts);
  if (path === 'kernel') {
    const plan = planLinear(dims, opts.kind, features, opts.causal, activeKernelLimits());
    return runLinearKernel(q, k, v, dims, opts, plan);
  }
  checkCompositeFits(dims, features);
  checkHostBudget('the linear-attention composite', linearCompositeBytes(dims, opts.kind, features, opts.causal, opts.keyLength !== null));
  const ops = featureOps(opts.kind, opts.omega, opts.xscale);
  return linearComposite(q, k, v, dims, ops, opts.causal, opts.keyLength);
}

/**
 * Upper bound of the composite's intermediate bytes, valid on every backend, counted scope by
 * scope from `composite.ts` (a tidy scope keeps its temporaries until it ends; on webgpu a
 * disposed tensor's buffer is released at the next submit, so two causal chunks' temporaries are
 * counted). Linear in n: the features of all queries and keys, the output pieces, and per chunk
 * O(C·(C + F + dv)) plus the O(F·dv) state.
 */
export function linearCompositeBytes(dims: Dims, kind: FeatureKind, features: number, causal: boolean, keyLength: boolean): number {
  const { batch, heads, kvHeads, group, n, m, d, dv } = dims;
  const exp = isExpKind(kind);
  const F = features;
  const bk = batch * kvHeads;
  const qRows = batch * heads * n;
  const kRows = bk * m;
  const state = bk * (F * dv + 2 * F);
  // A feature map's temporaries for `rows` rows (the FAVOR+ softmax key map is the widest).
  const featTemp = (rows: number) => rows * (isProjectedKind(kind) ? 2 * d + F + 2 : kind === 'elu+1' ? F : 0);
  // Feature-sized temporaries of absorbing `rows` keys, and of reading a state with `rows` queries.
  // (+1: the transposed operand a backend's matMul(ψᵀ, v) may copy.)
  const absorbRows = (rows: number) => rows * F * (1 + (exp ? (keyLength ? 4 : 3) : keyLength ? 1 : 0)) + 5 * state;
  const readRows = (rows: number) => rows * ((exp ? 4 : 1) * F + 6 * dv + 4);
  const valid = keyLength ? batch * m * 3 + m : 0;
  // On webgpu, disposed buffers are released at the next submit: the key and query feature
  // temporaries may be alive together, and two causal chunks' temporaries.
  const deferred = !!webgpuLimits();
  const chunkCopies = deferred ? 2 : 1;
  const temps = (a: number, b: number) => (deferred ? featTemp(a) + featTemp(b) : featTemp(Math.max(a, b)));
  let floats: number;
  if (!causal) {
    floats = valid + kRows * F + temps(kRows, qRows) + 2 * state + absorbRows(kRows) + qRows * F + readRows(qRows);
  } else {
    const rows = Math.min(n, m);
    const qStart = Math.max(0, m - n);
    const qa = batch * heads * rows;
    const c = Math.min(COMPOSITE_CHUNK, rows);
    const gc = bk * group * c;
    const kc = bk * c;
    const masks = group * c * c * (1 + batch);
    // matMulBT's explicit transpose of the chunk's key features on webgpu, from 2000 features.
    const transposed = deferred && F >= WEBGPU_SPLIT_K_INNER ? kc * F : 0;
    const chunk = transposed + (exp
      ? gc * (6 * F + 8 * c + 8) + readRows(gc) + kc * (7 * F + dv + 2) + masks
      : gc * (F + 2 * c + 2) + readRows(gc) + kc * (3 * F + dv + 2) + masks + 3 * state);
    const prefix = qStart > 0 ? bk * qStart * (F + dv + 1) + absorbRows(bk * qStart) + kRows * F : 0;
    const tails = bk * rows * (F + dv + 1);
    floats = valid + kRows * F + temps(kRows, qa) + prefix + tails + qa * (F + dv) + (n > m ? qRows * d : 0) + 3 * state + chunkCopies * chunk;
  }
  // finiteKVBytes (K and V made finite) and markPoisoned (the counts, the NaN mark, the marked output).
  floats += finiteKVBytes(bk, m, d, dv) / 4 + 2 * batch * heads * n * dv + 6 * bk * (n + m);
  // A 15% margin for backend copies not modelled above (operand layouts of matMul, reductions).
  return Math.ceil(floats * 4 * 1.15) + 8192;
}

/** Upper bound of {@link attendLinear}'s intermediate bytes on `path`. */
export function attendLinearBytes(dims: Dims, kind: FeatureKind, features: number, causal: boolean, path: 'kernel' | 'composite', keyLength: boolean): number {
  if (path === 'composite') return linearCompositeBytes(dims, kind, features, causal, keyLength);
  const limits = planningLimits();
  return linearKernelBytes(dims, planLinear(dims, kind, features, causal, limits), keyLength);
}
