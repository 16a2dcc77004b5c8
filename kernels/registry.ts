/**
 * Registration of every fused kernel, in one place. Nothing registers on import: variants call
 * {@link ensureKernelsRegistered} when they are about to dispatch on a kernel backend, so a
 * bundle that never runs webgpu never registers (or pulls in) a WGSL program.
 *
 * @module
 */
import { getKernel, registerKernel, type KernelConfig } from '@tensorflow/tfjs-core';
import { flashKernelConfig } from './flash/kernel.js';
import { linearKernelConfig } from './linear/kernel.js';

/** Every fused kernel of the catalog. */
export const KERNEL_CONFIGS: readonly KernelConfig[] = [flashKernelConfig, linearKernelConfig];

/** Registers the catalog's kernels for `backendName` (idempotent). */
export function ensureKernelsRegistered(backendName = 'webgpu'): void {
  for (const config of KERNEL_CONFIGS) {
    if (config.backendName === backendName && !getKernel(config.kernelName, backendName)) registerKernel(config);
  }
}
