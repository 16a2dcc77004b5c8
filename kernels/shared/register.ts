/**
 * Kernel registration on first use: each kernel registers its own `KernelConfig` right before its
 * first dispatch, so a bundle carries (and tfjs's registry holds) only the kernels the code it
 * runs reaches. Nothing registers on import.
 *
 * @module
 */
import { getGradient, getKernel, registerGradient, registerKernel, type GradConfig, type KernelConfig } from '@tensorflow/tfjs-core';

/** Registers `config` unless a kernel of that name is already registered for its backend (idempotent). */
export function registerOnce(config: KernelConfig): void {
  if (!getKernel(config.kernelName, config.backendName)) registerKernel(config);
}

/** Registers the gradient `config` unless one is already registered for its kernel name (idempotent). */
export function registerGradientOnce(config: GradConfig): void {
  if (!getGradient(config.kernelName)) registerGradient(config);
}
