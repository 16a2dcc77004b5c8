/** initBackend: reports what it chose, never silently stays on cpu, rejects with reasons. */
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { backendReport, BackendUnavailableError, initBackend } from '../src/core/backend.js';

describe('initBackend', () => {
  it("'cpu' makes cpu active and says so", async () => {
    expect(await initBackend('cpu')).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    expect(backendReport()?.detail).toMatch(/^cpu:/);
  });

  it("'wasm' starts tfjs-backend-wasm in Node", async () => {
    expect(await initBackend('wasm')).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
  });

  it("'webgpu' gives an adapter (hardware, or llvmpipe in compatibility mode) or rejects with the reason", async () => {
    try {
      expect(await initBackend('webgpu')).toBe('webgpu');
      expect(tf.getBackend()).toBe('webgpu');
      expect(backendReport()?.detail).toMatch(/^webgpu: (hardware|software) adapter .+/);
    } catch (e) {
      if (process.env.REQUIRE_WEBGPU === '1') throw e;
      expect(e).toBeInstanceOf(BackendUnavailableError);
    }
  });

  it("'auto' prefers webgpu, and reports what it skipped", async () => {
    const name = await initBackend('auto');
    expect(['webgpu', 'wasm', 'cpu']).toContain(name);
    expect(tf.getBackend()).toBe(name);
    if (process.env.REQUIRE_WEBGPU === '1') expect(name).toBe('webgpu');
    const report = backendReport()!;
    expect(report.name).toBe(name);
    if (name !== 'webgpu') expect(report.skipped[0].name).toBe('webgpu');
  });

  it("'tensorflow' without tfjs-node rejects and explains why it is not installed", async () => {
    await expect(initBackend('tensorflow')).rejects.toThrow(/optional peer dependencies.*libtensorflow/s);
  });

  it('an unknown name rejects', async () => {
    await expect(initBackend('metal' as never)).rejects.toBeInstanceOf(BackendUnavailableError);
  });
});
