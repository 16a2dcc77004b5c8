/**
 * Dense (optionally causal, grouped-head, length-masked) attention on whichever path the
 * call resolves to: the fused kernel on webgpu, the composite elsewhere. Shared by `dense`,
 * `multi-query` and every variant that reduces K/V and then attends densely.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { resolveImplementation } from '../../src/core/dispatch.js';
import { AttentionError } from '../../src/core/errors.js';
import { checkHostBudget } from '../../src/core/budget.js';
import type { Dims, Implementation, KernelStrategy } from '../../src/core/types.js';
import { webgpuLimits } from '../../src/core/backend.js';
import { denseComposite, denseCompositeBytes } from './composite.js';
import { activeKernelLimits, runFlash } from './kernel.js';
import { planFlash } from './plan.js';
import { DISPATCH_OVERHEAD_BYTES } from '../shared/limits.js';
import { padCopyBytes, planningLimits } from '../shared/limits.js';

/** Options of {@link attendDense}. */
export interface AttendOptions {
  causal: boolean;
  scale: number;
  keyLength: number[] | tf.Tensor1D | null;
  /** The flash kernel's strategy on the kernel path (default `'auto'`). */
  strategy?: KernelStrategy;
}

/** Checks that the composite's largest tensor fits the device's binding limit (webgpu only). */
function checkCompositeFits(dims: Dims): void {
  const limits = webgpuLimits();
  if (!limits) return;
  const bytes = dims.batch * dims.heads * dims.n * dims.m * 4;
  const max = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  if (bytes > max) {
    throw new AttentionError(
      'options.implementation',
      `a composite whose [batch, heads, n, m] score matrix fits the device's ${max}-byte binding limit`,
      `'composite' needing ${bytes} bytes`,
      "Use implementation 'auto' or 'kernel' (the fused kernel never builds that matrix).",
    );
  }
}

/**
 * Resolves the path and checks it (the kernel's plan against the device's limits; the
 * composite's score matrix against the binding limit on webgpu and its bytes against the
 * host-memory budget) without dispatching anything; returns the call to make. Callers that
 * build K/V first (decode's cache) prepare before building them.
 */
export function prepareDense(dims: Dims, opts: AttendOptions, implementation: Implementation): (q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D) => tf.Tensor4D {
  const path = resolveImplementation(implementation);
  if (path === 'kernel') {
    const plan = planFlash(dims, activeKernelLimits(), { strategy: opts.strategy });
    return (q, k, v) => runFlash(q, k, v, dims, opts, plan);
  }
  checkCompositeFits(dims);
  checkHostBudget('the dense composite', attendDenseBytes(dims, 'composite', opts.causal || opts.keyLength !== null));
  return (q, k, v) => denseComposite(q, k, v, dims, opts);
}

/**
 * Everything is validated and planned here, before any dispatch; then the chosen path runs.
 * @returns `[batch, heads, n, dv]`
 */
export function attendDense(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  dims: Dims,
  opts: AttendOptions,
  implementation: Implementation,
): tf.Tensor4D {
  return prepareDense(dims, opts, implementation)(q, k, v);
}

/**
 * Upper bound of the intermediate bytes of {@link attendDense} on `path`.
 * Kernel: the split partials (O(n), see `planFlash`), the head-dim padding copies and
 * per-dispatch uniforms. Composite: two score matrices plus the mask.
 */
export function attendDenseBytes(dims: Dims, path: 'kernel' | 'composite', masked: boolean): number {
  if (path === 'composite') return denseCompositeBytes(dims, masked);
  const limits = planningLimits();
  const plan = planFlash(dims, limits);
  const { batch } = dims;
  const padCopies = padCopyBytes(dims, plan.dPad, plan.dvPad);
  return plan.partialBytes + padCopies + batch * 4 + 2 * DISPATCH_OVERHEAD_BYTES;
}
