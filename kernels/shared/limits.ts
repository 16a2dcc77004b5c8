/**
 * Device-limit checks every fused kernel makes before dispatch (read from the device, never
 * hard-coded): binding sizes of the inputs and output, workgroups per dimension, and storage
 * bindings per shader stage. Each failure is an `AttentionError` naming what to change.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { AttentionError } from '../../src/core/errors.js';
import type { Dims } from '../../src/core/types.js';
import { SOFTWARE_ADAPTER } from '../../src/core/backend.js';

/** The device limits the kernels' plans need. */
export interface KernelLimits {
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  maxComputeWorkgroupsPerDimension: number;
  /** Storage bindings one shader may use (output included). Default 8 (WebGPU's minimum). */
  maxStorageBuffersPerShaderStage?: number;
  /** Bytes of workgroup memory one workgroup may use. Default 16384 (WebGPU's minimum). */
  maxComputeWorkgroupStorageSize?: number;
  /** Invocations per workgroup. Default 256 (WebGPU's minimum). */
  maxComputeInvocationsPerWorkgroup?: number;
  /** Workgroup size along x. Default 256 (WebGPU's minimum). */
  maxComputeWorkgroupSizeX?: number;
  /**
   * Whether the adapter runs shaders on the CPU (SwiftShader, llvmpipe, lavapipe): there,
   * workgroup memory is ordinary memory and staging tiles in it only adds barriers. Default false.
   */
  cpuAdapter?: boolean;
}

/** Whether the active webgpu device's adapter is a CPU renderer (from its adapter info). */
export function cpuBackedAdapter(): boolean {
  const backend = tf.backend() as unknown as { device: GPUDevice & { adapterInfo?: GPUAdapterInfo }; adapterInfo?: { vendor?: string; architecture?: string } };
  const info = backend.device.adapterInfo ?? backend.adapterInfo ?? {};
  const text = ['vendor', 'architecture', 'device', 'description'].map((k) => (info as unknown as Record<string, unknown>)[k] ?? '').join(' ');
  return SOFTWARE_ADAPTER.test(text);
}

/** Rounds a head dim up to a multiple of 4 (vec4 loads). */
export const pad4 = (x: number) => Math.ceil(x / 4) * 4;

/** The largest buffer one binding may hold. */
export function maxBindingBytes(limits: KernelLimits): number {
  return Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
}

/** Throws when `bytes` exceed one binding. */
export function checkBinding(limits: KernelLimits, name: string, bytes: number): void {
  const max = maxBindingBytes(limits);
  if (bytes > max) {
    throw new AttentionError(name, `at most ${max} bytes (the device's storage binding limit)`, `${bytes} bytes`, 'Split the batch or the heads across calls.');
  }
}

/**
 * The checks shared by every kernel: q, k, v and the output (head dims padded to 4) each fit a
 * binding, and `batch·heads` fits one dispatch dimension.
 */
export function checkIOLimits(dims: Dims, limits: KernelLimits): { dPad: number; dvPad: number } {
  const { batch, heads, kvHeads, n, m } = dims;
  const dPad = pad4(dims.d);
  const dvPad = pad4(dims.dv);
  checkBinding(limits, 'q', batch * heads * n * dPad * 4);
  checkBinding(limits, 'k', batch * kvHeads * m * dPad * 4);
  checkBinding(limits, 'v', batch * kvHeads * m * dvPad * 4);
  checkBinding(limits, 'output', batch * heads * n * dvPad * 4);
  const maxGroups = limits.maxComputeWorkgroupsPerDimension;
  if (batch * heads > maxGroups) {
    throw new AttentionError('q', `batch·heads <= ${maxGroups} (the device's workgroups per dimension)`, `${batch}·${heads} = ${batch * heads}`);
  }
  return { dPad, dvPad };
}

/** Throws when a shader needs more storage bindings than the device allows. */
export function checkBindingCount(limits: KernelLimits, bindings: number): void {
  const max = limits.maxStorageBuffersPerShaderStage ?? 8;
  if (bindings > max) {
    throw new AttentionError('implementation', `at most ${max} storage bindings (the device's limit)`, `${bindings}`, "Use implementation 'composite'.");
  }
}

/** The active webgpu device's limits (call only with webgpu active). */
export function activeKernelLimits(): KernelLimits {
  const device = (tf.backend() as unknown as { device: GPUDevice }).device;
  const l = device.limits;
  return {
    maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
    maxBufferSize: l.maxBufferSize,
    maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
    maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
    cpuAdapter: cpuBackedAdapter(),
  };
}

/** The WebGPU spec's default limits: what `memoryBytes` plans with when no webgpu device is active. */
export const SPEC_DEFAULT_LIMITS: KernelLimits = {
  maxStorageBufferBindingSize: 128 * 1024 * 1024,
  maxBufferSize: 256 * 1024 * 1024,
  maxComputeWorkgroupsPerDimension: 65535,
};

/** Limits to plan with: the active webgpu device's, else the spec's defaults. */
export function planningLimits(): KernelLimits {
  return tf.getBackend() === 'webgpu' ? activeKernelLimits() : SPEC_DEFAULT_LIMITS;
}

/** Bytes of the zero-padded copies a kernel makes when d or dv is not a multiple of 4. */
export function padCopyBytes(dims: Dims, dPad: number, dvPad: number): number {
  const { batch, heads, kvHeads, n, m, d, dv } = dims;
  return (
    (dPad !== d ? (batch * heads * n + batch * kvHeads * m) * dPad * 4 : 0) +
    (dvPad !== dv ? batch * kvHeads * m * dvPad * 4 + batch * heads * n * dvPad * 4 : 0)
  );
}

/**
 * Mesa llvmpipe stops a shader invocation's loops after 65,535 iterations in total, silently.
 * Every kernel keeps its per-invocation loop count at or below {@link LOOP_BUDGET}, half of it.
 */
export const LLVMPIPE_LOOP_CAP = 65_535;
/** The per-invocation loop budget the kernels plan for (a safety margin under the cap). */
export const LOOP_BUDGET = 32_768;
/** Bytes of uniforms and other small per-dispatch buffers the backend allocates (an upper bound). */
export const DISPATCH_OVERHEAD_BYTES = 1024;

