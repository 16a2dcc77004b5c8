/**
 * Choosing between the fused kernel and the composite.
 *
 * `'auto'` runs the fused kernel when one is registered for the active backend (webgpu),
 * otherwise the composite; an explicit `'kernel'` that cannot be honoured throws.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { AttentionError } from './errors.js';
import type { Implementation } from './types.js';

/** Backends the catalog's fused kernels are written for. */
export const KERNEL_BACKENDS = ['webgpu'] as const;

/** Whether the fused kernels can run on the active backend. */
export function kernelAvailable(): boolean {
  return (KERNEL_BACKENDS as readonly string[]).includes(tf.getBackend());
}

/** Whether tfjs is recording gradients (inside `tf.grad`, `tf.variableGrads`, `optimizer.minimize`, …). */
export function recordingGradients(): boolean {
  return (tf.engine() as unknown as { isTapeOn(): boolean }).isTapeOn();
}

/**
 * The implementation a call of an entry whose fused kernel is forward-only may run: while tfjs
 * records gradients the composite (differentiable by tfjs's autodiff), and an explicit
 * `'kernel'` then throws; otherwise `requested` unchanged.
 * @throws AttentionError for `'kernel'` while gradients are recorded
 */
export function forwardOnlyKernel(requested: Implementation): Implementation {
  if (!recordingGradients()) return requested;
  if (requested === 'kernel') {
    throw new AttentionError('options.implementation', "'auto' or 'composite' while gradients are recorded (the fused kernel is forward-only)", "'kernel'");
  }
  return 'composite';
}

/** Resolves `'auto'` to `'kernel'` or `'composite'` on the active backend. */
export function resolveImplementation(requested: Implementation, hasKernel = true): 'kernel' | 'composite' {
  const canKernel = hasKernel && kernelAvailable();
  if (requested === 'kernel' && !canKernel) {
    throw new AttentionError(
      'options.implementation',
      hasKernel
        ? `'auto' or 'composite' on backend '${tf.getBackend()}' (fused kernels are registered for ${KERNEL_BACKENDS.join(', ')} only)`
        : "'auto' or 'composite' (this variant has no fused kernel)",
      "'kernel'",
    );
  }
  if (requested === 'composite') return 'composite';
  return canKernel ? 'kernel' : 'composite';
}
