/**
 * `attention-catalog/layers` (src/layers/catalog-attention.ts) on cpu and webgpu (webgpu where an
 * adapter exists; REQUIRE_WEBGPU=1 makes a missing one fail): a small `tf.model` built from
 * CatalogAttention layers fits a synthetic task (the loss falls well below its initial value,
 * learned variant parameters included), survives `model.save` → JSON → `tf.loadLayersModel` with
 * the same predictions, weights and config; every catalog id builds, runs and round-trips;
 * `computeOutputShape` serves `tf.sequential`; nothing leaks; bad arguments throw AttentionError.
 */
import * as tf from '@tensorflow/tfjs-core';
// tfjs-layers' main module registers every op gradient (tfjs-core alone registers none).
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { catalog } from '../src/index.js';
import { AttentionError } from '../src/core/errors.js';
import { CatalogAttention, catalogAttention, LAYER_VARIANTS, type JsonValue } from '../src/layers/catalog-attention.js';
import { setupBackends, useBackend, withGpuErrorScope } from './backends.js';
import { maxAbsDiff, roundTrip } from './layer-io.js';

const backends = (await setupBackends()).filter((b) => b === 'cpu' || b === 'webgpu');

const T = 16; // sequence length
const F = 8; // features
const SAMPLES = 32;

/** A small config per catalog id for T = 16 positions, 2 heads of 4. */
const CONFIGS: Record<string, { [key: string]: JsonValue }> = {
  dense: {},
  'multi-query': {},
  local: { window: 2 },
  blockwise: { block: 4 },
  strided: { stride: 4 },
  dilated: { window: 2, dilation: 2 },
  compressed: { stride: 4 },
  'sparse-transformer': { stride: 4 },
  axial: { shape: [4, 4] },
  'big-bird': { block: 4, windowBlocks: 1, globalBlocks: 1, randomBlocks: 1 },
  lsh: { bucketSize: 4 },
  routing: { clusters: 2 },
  sinkhorn: { block: 4 },
  'transformer-xl': { memLength: 4 },
  compressive: { memLength: 4, rate: 2, fn: 'conv' },
  longformer: { window: 2, global: [0] },
  etc: { globalTokens: 2, radius: 2 },
  'set-transformer': { inducingPoints: 4 },
  linformer: { k: 8, shareKV: false },
  linear: {},
  performer: { features: 16 },
  'adaptive-span': { maxSpan: 8, ramp: 4 },
};

/** x [SAMPLES, T, F] ~ N(0, 1); target y_i = x_i[1] + mean_j x_j[0]: a per-position term and one only attention can bring. */
function task(): { xs: tf.Tensor3D; ys: tf.Tensor3D } {
  const xs = tf.randomNormal([SAMPLES, T, F], 0, 1, 'float32', 7) as tf.Tensor3D;
  const ys = tf.tidy(() => tf.add(tf.slice(xs, [0, 0, 1], [SAMPLES, T, 1]), tf.mul(tf.mean(tf.slice(xs, [0, 0, 0], [SAMPLES, T, 1]), 1, true), 4))) as tf.Tensor3D;
  return { xs, ys };
}

/** input [T, F] → CatalogAttention (self-attention) → dense(1), seeded initializers. */
function buildModel(variant: string, variantConfig: { [key: string]: JsonValue }) {
  const x = tfl.input({ shape: [T, F] });
  const layer = catalogAttention({
    numHeads: 2,
    keyDim: 4,
    variant,
    variantConfig,
    kernelInitializer: tfl.initializers.glorotUniform({ seed: 11 }),
    name: 'attn',
  });
  const y = layer.apply([x, x]) as tfl.SymbolicTensor;
  const out = tfl.layers.dense({ units: 1, kernelInitializer: tfl.initializers.glorotUniform({ seed: 12 }), name: 'head' }).apply(y) as tfl.SymbolicTensor;
  return { model: tfl.model({ inputs: x, outputs: out }), layer };
}

const layerOf = (m: tfl.LayersModel) => m.layers.find((l) => l instanceof CatalogAttention) as CatalogAttention;

describe('CatalogAttention: the variant list', () => {
  it('takes every catalog id', () => {
    expect([...LAYER_VARIANTS].sort()).toEqual(catalog.map((e) => e.id).sort());
    expect(Object.keys(CONFIGS).sort()).toEqual(catalog.map((e) => e.id).sort());
  });
});

describe.each(backends)('CatalogAttention on %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
  });

  // Entries with learned parameters (adaptive-span z, sinkhorn sortWeights, linformer E, F) train them as layer weights.
  for (const variant of ['dense', 'local', 'adaptive-span', 'sinkhorn', 'linformer']) {
    it(`${variant}: a tf.model fits a synthetic task, and save → loadLayersModel keeps predictions, weights and config`, async () => {
      const { xs, ys } = task();
      const { model, layer } = buildModel(variant, CONFIGS[variant]);
      const optimizer = tf.train.adam(0.02);
      model.compile({ optimizer, loss: 'meanSquaredError' });
      let loaded: tfl.LayersModel | null = null;
      try {
        // The variant's learned parameters are trainable weights of the layer (the variables it reads).
        const entry = catalog.find((e) => e.id === variant)!;
        const owner = layer.attention as unknown as Record<string, unknown> & { variables?: tf.Variable[] };
        const learned = [...entry.capabilities.learned.map((n) => owner[n] as tf.Variable), ...(owner.variables ?? [])];
        const weightVars = layer.trainableWeights.map((w) => w.read());
        for (const v of learned) expect(weightVars, `${variant}: a learned parameter is a trainable layer weight`).toContain(v);
        const learnedBefore = await Promise.all(learned.map((v) => v.data()));

        const initial = model.evaluate(xs, ys) as tf.Scalar;
        const initialLoss = (await initial.data())[0];
        initial.dispose();
        await withGpuErrorScope(() => model.fit(xs, ys, { epochs: 30, batchSize: 16, shuffle: false, verbose: 0 }));
        const final = model.evaluate(xs, ys) as tf.Scalar;
        const finalLoss = (await final.data())[0];
        final.dispose();
        expect(finalLoss, `${variant} on ${backend}: loss ${initialLoss} → ${finalLoss}`).toBeLessThan(0.5 * initialLoss);
        if (learned.length > 0) {
          const after = await Promise.all(learned.map((v) => v.data()));
          const moved = after.some((a, i) => a.some((x, j) => x !== learnedBefore[i][j]));
          expect(moved, `${variant}: its learned parameters were trained`).toBe(true);
        }

        loaded = await roundTrip(model);
        const want = model.predict(xs) as tf.Tensor;
        const got = loaded.predict(xs) as tf.Tensor;
        expect(got.shape).toEqual([SAMPLES, T, 1]);
        expect(await maxAbsDiff(got, want), `${variant} on ${backend}: loaded vs trained predictions`).toBeLessThanOrEqual(1e-6);
        want.dispose();
        got.dispose();
        const again = layerOf(loaded);
        expect(again.getConfig().variant).toBe(variant);
        expect(again.getConfig().variantConfig).toEqual(layer.getConfig().variantConfig);
        expect(again.variantConfig).toEqual(CONFIGS[variant]);
        expect(again.weights.map((w) => w.originalName)).toEqual(layer.weights.map((w) => w.originalName));
        for (let i = 0; i < layer.weights.length; i++) {
          expect(await maxAbsDiff(again.weights[i].read(), layer.weights[i].read()), layer.weights[i].originalName).toBe(0);
        }
        // The loaded variant reads the loaded weights (e.g. the trained z), not its seeded initial values.
        const loadedOwner = again.attention as unknown as Record<string, unknown>;
        for (const n of entry.capabilities.learned) expect(await maxAbsDiff(loadedOwner[n] as tf.Tensor, owner[n] as tf.Tensor), n).toBe(0);
      } finally {
        loaded?.dispose();
        model.dispose();
        optimizer.dispose();
        xs.dispose();
        ys.dispose();
      }
    });
  }

  it('every catalog id builds in a tf.model, runs forward, and round-trips its config and predictions', async () => {
    const xs = tf.randomNormal([2, T, F], 0, 1, 'float32', 3);
    try {
      for (const e of catalog) {
        const { model, layer } = buildModel(e.id, CONFIGS[e.id]);
        let loaded: tfl.LayersModel | null = null;
        try {
          const want = await withGpuErrorScope(() => model.predict(xs) as tf.Tensor);
          expect(want.shape, e.id).toEqual([2, T, 1]);
          loaded = await roundTrip(model);
          const got = loaded.predict(xs) as tf.Tensor;
          expect(await maxAbsDiff(got, want), `${e.id}: loaded vs original`).toBeLessThanOrEqual(1e-6);
          want.dispose();
          got.dispose();
          expect(layerOf(loaded).getConfig().variantConfig, e.id).toEqual(layer.getConfig().variantConfig);
        } finally {
          loaded?.dispose();
          model.dispose();
        }
      }
    } finally {
      xs.dispose();
    }
  });

  it('no leaks: predict adds only its output; disposing the model frees every weight and the variant', async () => {
    for (const variant of ['dense', 'adaptive-span', 'performer', 'lsh', 'big-bird']) {
      const before = tf.memory().numTensors;
      const { model } = buildModel(variant, CONFIGS[variant]);
      const xs = tf.randomNormal([2, T, F], 0, 1, 'float32', 5);
      const built = tf.memory().numTensors;
      const out = model.predict(xs) as tf.Tensor;
      await out.data();
      expect(tf.memory().numTensors, `${variant}: predict`).toBe(built + 1);
      out.dispose();
      xs.dispose();
      model.dispose();
      expect(tf.memory().numTensors, `${variant}: after dispose`).toBe(before);
    }
  });
});

describe('CatalogAttention: shapes, arguments and serialization (cpu)', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it('computeOutputShape: in tf.sequential (self-attention on one input), with outputShape, valueDim, grouped heads and cross-attention', async () => {
    const seq = tfl.sequential({
      layers: [catalogAttention({ numHeads: 4, numKvHeads: 2, keyDim: 3, valueDim: 5, outputShape: 7, variant: 'local', variantConfig: { window: 3 }, inputShape: [T, F] })],
    });
    expect(seq.outputs[0].shape).toEqual([null, T, 7]);
    const x = tf.randomNormal([3, T, F]);
    const y = seq.predict(x) as tf.Tensor;
    expect(y.shape).toEqual([3, T, 7]);
    const names = seq.layers[0].weights.map((w) => `${w.originalName.split('/').slice(1).join('/')}:${w.shape.join('x')}`);
    expect(names).toEqual([
      `query/kernel:${F}x12`,
      'query/bias:12',
      `key/kernel:${F}x6`,
      'key/bias:6',
      `value/kernel:${F}x10`,
      'value/bias:10',
      'attention_output/kernel:20x7',
      'attention_output/bias:7',
    ]);
    // Cross-attention: queries [*, 5, 6] over keys [*, 12, 4] and values [*, 12, 9]; output has the query's last dim.
    const q = tfl.input({ shape: [5, 6] });
    const v = tfl.input({ shape: [12, 9] });
    const k = tfl.input({ shape: [12, 4] });
    const out = catalogAttention({ numHeads: 2, keyDim: 4, variant: 'dense', useBias: false }).apply([q, v, k]) as tfl.SymbolicTensor;
    expect(out.shape).toEqual([null, 5, 6]);
    const cross = tfl.model({ inputs: [q, v, k], outputs: out });
    expect(cross.layers[3].weights.map((w) => w.shape)).toEqual([
      [6, 8],
      [4, 8],
      [9, 8],
      [8, 6],
    ]);
    const r = cross.predict([tf.ones([2, 5, 6]), tf.ones([2, 12, 9]), tf.ones([2, 12, 4])]) as tf.Tensor;
    expect(r.shape).toEqual([2, 5, 6]);
    tf.dispose([x, y, r]);
    seq.dispose();
    cross.dispose();
  });

  it('fromConfig(getConfig()) builds the same layer; keys tfjs-layers would not restore (shareKV) survive the JSON round trip', async () => {
    const { model, layer } = buildModel('linformer', { k: 8, shareKV: true });
    const config = layer.getConfig();
    expect(config).toMatchObject({ numHeads: 2, numKvHeads: 2, keyDim: 4, valueDim: 4, outputShape: null, useBias: true, variant: 'linformer' });
    expect(config.variantConfig).toEqual({ k: 8, share_k_v: true }); // tfjs-layers' load turns share_k_v into shareKV
    const clone = CatalogAttention.fromConfig(CatalogAttention, config) as CatalogAttention;
    expect(clone.variantConfig).toEqual({ k: 8, shareKV: true });
    expect(clone.getConfig()).toEqual({ ...config, name: clone.name });
    const loaded = await roundTrip(model);
    const xs = tf.randomNormal([2, T, F]);
    const [a, b] = [model.predict(xs) as tf.Tensor, loaded.predict(xs) as tf.Tensor];
    expect(await maxAbsDiff(a, b)).toBeLessThanOrEqual(1e-6);
    expect(layerOf(loaded).variantConfig).toEqual({ k: 8, shareKV: true });
    expect(layerOf(loaded).getConfig().variantConfig).toEqual(config.variantConfig);
    expect((layerOf(loaded).attention.config as { shareKV: boolean }).shareKV).toBe(true);
    tf.dispose([xs, a, b]);
    model.dispose();
    loaded.dispose();
  });

  it('lsh: keys are the projected queries (no key projection); a key input is an AttentionError', () => {
    const x = tfl.input({ shape: [T, F] });
    const layer = catalogAttention({ numHeads: 2, keyDim: 4, variant: 'lsh', variantConfig: { bucketSize: 4 } });
    layer.apply([x, x]);
    expect(layer.weights.map((w) => w.originalName.split('/').slice(1).join('/'))).not.toContain('key/kernel');
    const other = catalogAttention({ numHeads: 2, keyDim: 4, variant: 'lsh' });
    expect(() => other.apply([x, x, x])).toThrow(AttentionError);
    expect(() => catalogAttention({ numHeads: 4, numKvHeads: 2, keyDim: 4, variant: 'lsh' })).toThrow(/numKvHeads/);
  });

  it('bad arguments throw AttentionError naming them', () => {
    const base = { numHeads: 2, keyDim: 4, variant: 'dense' };
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ ...base, numHeads: 0 }, /^numHeads/],
      [{ ...base, numHeads: 1.5 }, /^numHeads/],
      [{ ...base, keyDim: undefined }, /^keyDim/],
      [{ ...base, numHeads: 4, numKvHeads: 3 }, /^numKvHeads/],
      [{ ...base, valueDim: -1 }, /^valueDim/],
      [{ ...base, outputShape: 0 }, /^outputShape/],
      [{ ...base, useBias: 'yes' }, /^useBias/],
      [{ ...base, variant: 'nope' }, /^variant: expected a catalog id/],
      [{ ...base, variant: undefined }, /^variant/],
      [{ ...base, variantConfig: [1] }, /^variantConfig/],
      [{ ...base, variantConfig: { causal: Number.NaN } }, /^variantConfig\.causal/],
      [{ ...base, variant: 'adaptive-span', variantConfig: { maxSpan: 8, z: tf.ones([2]) } }, /^variantConfig\.z: expected JSON values/],
      [{ ...base, kernelInitializer: 'nope' }, /^kernelInitializer/],
      [{ ...base, implementation: 'fast' }, /^implementation/],
      [{ ...base, variant: 'set-transformer', valueDim: 8 }, /^valueDim/],
    ];
    for (const [args, message] of bad) {
      let err: unknown = null;
      try {
        catalogAttention(args as never);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(args)).toBeInstanceOf(AttentionError);
      expect((err as Error).message, JSON.stringify(args)).toMatch(message);
    }
    expect(() => catalogAttention(null as never)).toThrow(AttentionError);
  });

  it('a bad variantConfig, shape or input throws AttentionError when the layer is built or called, before anything leaks', () => {
    const x = tfl.input({ shape: [T, F] });
    const before = tf.memory().numTensors;
    const build = (variant: string, variantConfig: { [key: string]: JsonValue }, input: tfl.SymbolicTensor | tfl.SymbolicTensor[] = [x, x]) => () =>
      catalogAttention({ numHeads: 2, keyDim: 4, variant, variantConfig }).apply(input);
    expect(build('local', { window: -1 })).toThrow(/^variantConfig\.window/);
    expect(build('local', { windw: 2 })).toThrow(/^variantConfig\.windw/);
    expect(build('axial', {})).toThrow(/^variantConfig\.shape/);
    expect(build('linformer', { k: 8, causal: true })).toThrow(/^variantConfig\.causal/);
    // Sizing a learned parameter from the key input needs a static length.
    expect(build('sinkhorn', { block: 4 }, [tfl.input({ shape: [null, F] }), tfl.input({ shape: [null, F] })])).toThrow(/^variantConfig\.maxLength/);
    expect(build('dense', {}, [x, tfl.input({ shape: [T + 1, F] }), x])).toThrow(/^value: expected the key's sequence length/);
    expect(build('dense', {}, tfl.input({ shape: [F] }))).toThrow(/^query: expected shape \[batch, seq, features\]/);
    expect(tf.memory().numTensors, 'nothing left behind by the failed builds').toBe(before);
    // Eager calls check the tensors against the built shapes.
    const layer = catalogAttention({ numHeads: 2, keyDim: 4, variant: 'dense' });
    const q = tf.ones([2, T, F]);
    const y = layer.apply([q, q]) as tf.Tensor;
    const wrong = tf.ones([2, T, F + 1]);
    const count = tf.memory().numTensors;
    expect(() => layer.apply([wrong, q])).toThrow(AttentionError);
    expect(() => layer.apply([q, tf.ones([3, T, F])])).toThrow(/batch size/);
    expect(tf.memory().numTensors).toBe(count + 1); // the ones([3, T, F]) above
    expect(() => new CatalogAttention({ numHeads: 2, keyDim: 4, variant: 'dense' }).attention).toThrow(AttentionError);
    tf.dispose([q, y, wrong]);
  });
});
