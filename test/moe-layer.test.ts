/**
 * The tfjs-layers `MoE` layer (`attention-catalog/layers`): it computes what `moeLayer` computes
 * with the same seed, trains in `model.fit` (its router, experts and residual branch all move,
 * and its router losses are part of the fitted loss), and survives `model.save` → JSON →
 * `tf.loadLayersModel` with its predictions and config; on cpu, wasm and webgpu.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { AttentionError } from '../src/core/errors.js';
import { MoE, mixtureOfExperts } from '../src/layers/catalog-attention.js';
import { moeLayer } from '../src/moe/index.js';
import { setupBackends, useBackend, withGpuErrorScope } from './backends.js';
import { maxAbsDiff, roundTrip } from './layer-io.js';

const backends = await setupBackends();

describe.each(backends)('MoE layer on %s', (backend) => {
  beforeAll(() => useBackend(backend));

  it('equals moeLayer with the same seed (residual, gelu, batch-priority)', async () => {
    const args = { experts: 4, k: 2, capacityFactor: 1, policy: 'batch-priority' as const, hidden: 12, activation: 'gelu' as const, residual: true, seed: 11 };
    const layer = new MoE(args);
    const fn = moeLayer({ ...args, dim: 8 });
    const x = tf.randomNormal([3, 10, 8], 0, 1, 'float32', 4);
    try {
      const a = await withGpuErrorScope(() => layer.apply(x) as tf.Tensor);
      const b = fn.apply(x);
      expect(a.shape).toEqual([3, 10, 8]);
      expect(await maxAbsDiff(a, b)).toBeLessThan(1e-5);
      expect(layer.getWeights().length).toBe(9);
      tf.dispose([a, b]);
    } finally {
      x.dispose();
      fn.dispose();
      layer.dispose();
    }
  });

  it('a tf.model with an MoE layer fits (loss falls; router, experts and residual weights move; the router loss is in the fitted loss), and save → load keeps predictions and config', async () => {
    const inp = tfl.input({ shape: [16, 6] });
    const moe = mixtureOfExperts({ experts: 4, k: 2, capacityFactor: 1.25, hidden: 16, residual: true, seed: 3, name: 'moe' });
    const out = tfl.layers.dense({ units: 1, kernelInitializer: tfl.initializers.glorotUniform({ seed: 5 }) }).apply(moe.apply(inp)) as tfl.SymbolicTensor;
    const model = tfl.model({ inputs: inp, outputs: out });
    model.compile({ optimizer: tf.train.adam(0.02), loss: 'meanSquaredError' });
    const x = tf.randomNormal([32, 16, 6], 0, 1, 'float32', 7);
    const y = tf.sum(tf.relu(x), -1, true);
    const before = moe.getWeights().map((w) => w.clone());
    try {
      expect(moe.losses.length, 'the router loss is a layer loss').toBe(1);
      const h = await withGpuErrorScope(() => model.fit(x, y, { epochs: 12, batchSize: 16, verbose: 0 }));
      const losses = h.history.loss as number[];
      expect(losses[losses.length - 1], `losses ${losses.map((l) => l.toFixed(3)).join(' ')}`).toBeLessThan(losses[0] * 0.8);
      const names = moe.weights.map((w) => w.originalName.split('/').pop());
      const after = moe.getWeights();
      for (const [i, name] of names.entries()) {
        if (name?.startsWith('b') || name?.startsWith('rb')) continue; // biases start at zero and may move little
        expect(await maxAbsDiff(before[i], after[i]), `weight ${name} moved`).toBeGreaterThan(1e-4);
      }
      // The layer loss fit adds: the weighted router losses of the latest call (Switch's aux loss is >= 1 at any routing).
      const [extra] = moe.calculateLosses();
      expect((await extra.data())[0]).toBeGreaterThan(0.01 * 0.99);
      extra.dispose();
      const p = model.predict(x) as tf.Tensor;
      const loaded = await roundTrip(model);
      const q = loaded.predict(x) as tf.Tensor;
      expect(await maxAbsDiff(p, q)).toBeLessThan(1e-5);
      const cfg = (loaded.getLayer('moe') as MoE).getConfig();
      expect(cfg).toMatchObject({ experts: 4, k: 2, capacityFactor: 1.25, hidden: 16, residual: true, seed: 3, auxLossWeight: 0.01, zLossWeight: 0.001 });
      tf.dispose([p, q]);
      loaded.dispose();
    } finally {
      tf.dispose([x, y, ...before]);
      model.dispose();
    }
  });

  it('bad arguments throw AttentionError at construction', () => {
    expect(() => new MoE({ experts: 2, k: 3 })).toThrow(AttentionError);
    expect(() => new MoE({ experts: 2, capacityFactor: -1 })).toThrow(AttentionError);
    expect(() => new MoE({ experts: 2, auxLossWeight: -1 })).toThrow(AttentionError);
    expect(() => new MoE({ experts: 2, activation: 'tanh' as never })).toThrow(AttentionError);
  });
});
