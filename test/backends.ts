/**
 * The backends a test file runs on: cpu and wasm always, webgpu whenever an adapter exists. With
 * `REQUIRE_WEBGPU=1` (CI sets it) a missing adapter fails the run instead of shrinking the list.
 * WebGPU dispatches in tests run inside a validation error scope (see `withGpuErrorScope`).
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, webgpuDevice } from '../src/core/backend.js';

export type TestBackend = 'cpu' | 'wasm' | 'webgpu';

let cached: TestBackend[] | null = null;
let webgpuFailure = '';

/** Initialises every backend this machine has (once per test file) and lists them. */
export async function setupBackends(): Promise<TestBackend[]> {
  if (cached) return cached;
  const list: TestBackend[] = [];
  try {
    await initBackend('webgpu');
    list.push('webgpu');
  } catch (e) {
    webgpuFailure = (e as Error).message;
    if (process.env.REQUIRE_WEBGPU === '1') {
      throw new Error(`REQUIRE_WEBGPU=1 but no WebGPU adapter: ${webgpuFailure}`);
    }
    console.warn(`webgpu suites not run on this machine: ${webgpuFailure}`);
  }
  // wasm runs the same composites through another backend's kernels; present wherever Node is.
  await initBackend('wasm');
  list.unshift('wasm');
  await initBackend('cpu');
  list.unshift('cpu');
  cached = list;
  return list;
}

/** Whether this machine has webgpu (after setupBackends). */
export function hasWebGPU(): boolean {
  return cached?.includes('webgpu') ?? false;
}

/** Makes `name` the active backend. */
export async function useBackend(name: TestBackend): Promise<void> {
  const ok = await tf.setBackend(name);
  if (!ok || tf.getBackend() !== name) throw new Error(`could not switch to backend ${name}`);
}

/**
 * Runs `fn` inside a WebGPU validation (and out-of-memory) error scope on webgpu, awaiting the
 * queue, and throws if the device reported any error (llvmpipe otherwise returns zeros silently).
 */
export async function withGpuErrorScope<T>(fn: () => Promise<T> | T): Promise<T> {
  const device = webgpuDevice();
  if (!device) return fn();
  device.pushErrorScope('validation');
  device.pushErrorScope('out-of-memory');
  let result: T;
  try {
    result = await fn();
  } finally {
    const oom = await device.popErrorScope();
    const validation = await device.popErrorScope();
    const err = validation ?? oom;
    if (err) throw new Error(`WebGPU error during dispatch: ${err.message}`);
  }
  return result;
}
