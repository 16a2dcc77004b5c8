/**
 * The fused flash-attention kernel for tfjs's webgpu backend: its `KernelConfig`, and
 * `runFlash`, which validates the plan, pads head dims to a multiple of 4 and calls it
 * through the engine (so tfjs tracks the output like any op's).
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';
import type { Dims } from '../../src/core/types.js';
import { FlashAttentionProgram, MergeProgram } from './flash_program.js';
import { planFlash, type FlashPlan, type KernelLimits } from './plan.js';
import type { WebGPUBackend } from './webgpu_types.js';

/** Name in tfjs's kernel registry. */
export const FLASH_KERNEL = 'AttnCatalogFlashAttention';

interface FlashAttrs {
  causal: boolean;
  scale: number;
  splits: number;
  chunk: number;
}

const flashKernelFunc = ({ inputs, backend, attrs }: { inputs: Record<string, TensorInfo>; backend: unknown; attrs?: NamedAttrMap }) => {
  const gpu = backend as WebGPUBackend;
  const { q, k, v, keyLength } = inputs;
  const { causal, scale, splits, chunk } = attrs as unknown as FlashAttrs;
  const [batch, heads, n, dPad] = q.shape;
  const [, kvHeads, m] = k.shape;
  const dvPad = v.shape[3];
  const program = new FlashAttentionProgram(batch, heads, n, dPad, dvPad, causal, splits);
  const uniforms = FlashAttentionProgram.uniformData({ scale, n, m, heads, group: heads / kvHeads, kvHeads, chunk, splits });
  const first = gpu.runWebGPUProgram(program as never, [q, k, v, keyLength], 'float32', uniforms as never);
  if (splits === 1) return first;
  const merge = new MergeProgram(batch, heads, n, dvPad);
  const out = gpu.runWebGPUProgram(merge as never, [first], 'float32', MergeProgram.uniformData(n, splits) as never);
  gpu.disposeData(first.dataId);
  return out;
};

/** The kernel's registration record (registered by `ensureKernelsRegistered`, never on import). */
export const flashKernelConfig: KernelConfig = {
  kernelName: FLASH_KERNEL,
  backendName: 'webgpu',
  kernelFunc: flashKernelFunc as unknown as KernelFunc,
};

/** The active webgpu device's limits in the plan's terms. */
export function activeKernelLimits(): KernelLimits {
  const device = (tf.backend() as unknown as { device: GPUDevice }).device;
  const l = device.limits;
  return {
    maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
    maxBufferSize: l.maxBufferSize,
    maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
  };
}

/** Options of {@link runFlash}. */
export interface FlashOptions {
  causal: boolean;
  scale: number;
  keyLength: number[] | tf.Tensor1D | null;
}

/**
 * Runs the fused kernel. `plan` must come from {@link planFlash} for these dims (it is where
 * limits are checked, before dispatch).
 */
export function runFlash(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, dims: Dims, opts: FlashOptions, plan: FlashPlan): tf.Tensor4D {
  return tf.tidy(() => {
    const padLast = (t: tf.Tensor4D, to: number) => (t.shape[3] === to ? t : tf.pad(t, [[0, 0], [0, 0], [0, 0], [0, to - t.shape[3]]]));
    const kl =
      opts.keyLength instanceof tf.Tensor
        ? opts.keyLength
        : tf.tensor1d(opts.keyLength ?? new Array(dims.batch).fill(dims.m), 'int32');
    const attrs: FlashAttrs = { causal: opts.causal, scale: opts.scale, splits: plan.splits, chunk: plan.chunk };
    const out = tf.engine().runKernel(
      FLASH_KERNEL,
      { q: padLast(q, plan.dPad), k: padLast(k, plan.dPad), v: padLast(v, plan.dvPad), keyLength: kl },
      attrs as unknown as NamedAttrMap,
    ) as tf.Tensor4D;
    return plan.dvPad === dims.dv ? out : tf.slice(out, [0, 0, 0, 0], [-1, -1, -1, dims.dv]);
  });
}

export { planFlash };
