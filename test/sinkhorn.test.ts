/**
 * `sinkhorn` (Sparse Sinkhorn Attention) on every backend this machine has: the float64
 * reference from DESIGN.md, kernel == composite, padding never read, key lengths as numbers or
 * an int32 tensor, no leaks, AttentionError for bad configs and inputs, the learned sort weights,
 * and the memory bound with its growth from n to 4n.
 */
import fc from 'fast-check';
import { GROWTH } from './specs/types.js';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { AttentionError } from '../src/core/errors.js';
import { measureIntermediateBytes } from '../src/core/measure.js';
import { sinkhornAttention, SinkhornAttention } from '../src/variants/learnable/sinkhorn.js';
import { flashDispatches } from '../kernels/flash/kernel.js';
import { setTileStaging } from '../kernels/flash/plan.js';
import { setupBackends, useBackend, withGpuErrorScope } from './backends.js';
import { describeCase, makeInputs, runCase } from './harness.js';
import { expectReference, expectRefused } from './expect.js';
import { maxAbsDiff, seededTensor, toHost } from './reference.js';
import { explicitSortWeights, sinkhornSpec as spec } from './specs/sinkhorn.js';
// tfjs-core registers no gradient functions by itself (@tensorflow/tfjs does): this file's fork only.
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import type { Case } from './specs/types.js';

const backends = await setupBackends();
const TOL = 2e-5;
const RUNS = Number(process.env.FC_RUNS ?? 12);
const withLength = spec.cases.map((c) => ({ ...c, keyLength: c.keyLength ?? Array.from({ length: c.batch }, (_, b) => (c.seed + 7 * b) % (c.m + 1)) }));

/** k or v with NaN at every key at or past keyLength[b]. */
function poisoned(x: tf.Tensor4D, keyLength: number[]): tf.Tensor4D {
  return tf.tidy(() => {
    const [B, , m] = x.shape;
    const valid = tf.less(tf.reshape(tf.range(0, m, 1, 'int32'), [1, 1, m, 1]), tf.reshape(tf.tensor1d(keyLength, 'int32'), [B, 1, 1, 1]));
    return tf.where(valid, x, tf.fill(x.shape, Number.NaN)) as tf.Tensor4D;
  });
}

function problemOf(c: Case, implementation: 'kernel' | 'composite', keyLength = false) {
  return { batch: c.batch, heads: c.heads, kvHeads: c.kvHeads, n: c.n, m: c.m, d: c.d, dv: c.dv, implementation, keyLength };
}

describe.each(backends)('sinkhorn on %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
  });
  const impls: ('auto' | 'composite')[] = backend === 'webgpu' ? ['auto', 'composite'] : ['auto'];

  for (const impl of impls) {
    it(`equals its float64 reference (${impl})`, async () => {
      await fc.assert(
        fc.asyncProperty(spec.cases, async (c) => {
          const attn = spec.make(c.config);
          const x = makeInputs(c);
          try {
            await expectReference(attn, x, c, spec.reference, impl, TOL);
          } finally {
            x.dispose();
            attn.dispose();
          }
        }),
        { numRuns: RUNS },
      );
    });
  }

  it('T = 0 (P = exp(R/τ), unnormalized) equals its float64 reference up to float32 rounding, relative to the output scale', async () => {
    await fc.assert(
      fc.asyncProperty(spec.cases, async (c0) => {
        const c = { ...c0, config: { ...c0.config, iterations: 0 } };
        const attn = spec.make(c.config);
        const x = makeInputs(c);
        try {
          const [qh, kh, vh] = await Promise.all([toHost(x.q), toHost(x.k), toHost(x.v)]);
          const want = spec.reference(qh, kh, vh, c);
          const size = want.data.reduce((a, y) => Math.max(a, Math.abs(y)), 1);
          for (const impl of impls) {
            const got = await runCase(attn, x, c, impl);
            expect(maxAbsDiff(got.data, want.data) / size, `${impl} ${describeCase(c)}`).toBeLessThan(TOL);
          }
        } finally {
          x.dispose();
          attn.dispose();
        }
      }),
      { numRuns: Math.max(4, RUNS / 2) },
    );
  });

  if (backend === 'webgpu') {
    it('fused kernel == composite on the same inputs', async () => {
      await fc.assert(
        fc.asyncProperty(spec.cases, async (c) => {
          const attn = spec.make(c.config);
          const x = makeInputs(c);
          try {
            const a = await runCase(attn, x, c, 'kernel');
            const b = await runCase(attn, x, c, 'composite');
            expect(maxAbsDiff(a.data, b.data), describeCase(c)).toBeLessThan(TOL);
          } finally {
            x.dispose();
            attn.dispose();
          }
        }),
        { numRuns: RUNS },
      );
    });
  }

  if (backend === 'webgpu') {
    it("every flash strategy ('rows', 'tiled' staged or not) equals the float64 reference", async () => {
      await fc.assert(
        fc.asyncProperty(spec.cases, async (c) => {
          const attn = spec.make(c.config);
          const x = makeInputs(c);
          try {
            const [qh, kh, vh] = await Promise.all([toHost(x.q), toHost(x.k), toHost(x.v)]);
            const want = spec.reference(qh, kh, vh, c);
            const before = flashDispatches();
            const rows = await runCase(attn, x, c, 'kernel', 'rows');
            setTileStaging(false);
            const direct = await runCase(attn, x, c, 'kernel', 'tiled');
            setTileStaging(true);
            const staged = await runCase(attn, x, c, 'kernel', 'tiled');
            setTileStaging(null);
            const after = flashDispatches();
            expect(after.rows - before.rows).toBe(1);
            expect(after.tiled - before.tiled).toBe(2);
            for (const [name, got] of [['rows', rows], ['tiled', direct], ['tiled, staged', staged]] as const) {
              expect(maxAbsDiff(got.data, want.data), `${name}: ${describeCase(c)}`).toBeLessThan(TOL);
            }
          } finally {
            setTileStaging(null);
            x.dispose();
            attn.dispose();
          }
        }),
        { numRuns: RUNS },
      );
    });
  }

  it('padding keys are never read: NaN past keyLength leaves every output finite and bit-identical', async () => {
    await fc.assert(
      fc.asyncProperty(withLength, async (c) => {
        const attn = spec.make(c.config);
        const x = makeInputs(c);
        const kl = c.keyLength!;
        const k2 = poisoned(x.k, kl);
        const v2 = poisoned(x.v, kl);
        try {
          for (const impl of impls) {
            const a = await runCase(attn, x, c, impl);
            const b = await runCase(attn, { q: x.q, k: k2, v: v2, dispose() {} }, c, impl);
            expect(b.data.every(Number.isFinite), `${impl} ${describeCase(c)}`).toBe(true);
            expect(maxAbsDiff(a.data, b.data), `${impl} ${describeCase(c)}`).toBe(0);
          }
        } finally {
          x.dispose();
          k2.dispose();
          v2.dispose();
          attn.dispose();
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('keyLength as an int32 tensor equals keyLength as numbers', async () => {
    await fc.assert(
      fc.asyncProperty(withLength, async (c) => {
        const attn = spec.make(c.config);
        const x = makeInputs(c);
        const klT = tf.tensor1d(c.keyLength!, 'int32');
        try {
          for (const impl of impls) {
            const a = await runCase(attn, x, c, impl);
            const out = await withGpuErrorScope(() => attn.apply(x.q, x.k, x.v, { implementation: impl, keyLength: klT as tf.Tensor1D }));
            const b = await toHost(out);
            out.dispose();
            expect(maxAbsDiff(a.data, b.data), `${impl} ${describeCase(c)}`).toBeLessThan(1e-6);
          }
        } finally {
          klT.dispose();
          x.dispose();
          attn.dispose();
        }
      }),
      { numRuns: Math.max(4, RUNS / 2) },
    );
  });

  it('leaks no tensor (numTensors after = before + output), with keyLength as numbers or a tensor', async () => {
    await fc.assert(
      fc.asyncProperty(spec.cases, fc.boolean(), async (c, asTensor) => {
        const attn = spec.make(c.config);
        const x = makeInputs(c);
        const kl = c.keyLength && asTensor ? tf.tensor1d(c.keyLength, 'int32') : c.keyLength;
        try {
          for (const impl of impls) {
            const before = tf.memory().numTensors;
            const out = await withGpuErrorScope(() => attn.apply(x.q, x.k, x.v, { implementation: impl, ...(kl ? { keyLength: kl as tf.Tensor1D } : {}) }));
            expect(tf.memory().numTensors).toBe(before + 1);
            out.dispose();
            expect(tf.memory().numTensors).toBe(before);
          }
        } finally {
          if (kl instanceof tf.Tensor) kl.dispose();
          x.dispose();
          attn.dispose();
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('throws AttentionError for bad inputs, before any dispatch, leaking nothing', async () => {
    type Bad = (c: Case) => { q?: unknown; k?: unknown; v?: unknown; options?: unknown; made: tf.Tensor[] };
    const bad: Record<string, Bad> = {
      'k head dim mismatch': (c) => {
        const k = tf.zeros([c.batch, c.kvHeads, c.m, c.d + 1]);
        return { k, made: [k] };
      },
      'q and k head dim other than the weights': (c) => {
        const q = tf.zeros([c.batch, c.heads, c.n, c.d + 1]);
        const k = tf.zeros([c.batch, c.kvHeads, c.m, c.d + 1]);
        return { q, k, made: [q, k] };
      },
      'm past maxLength': (c) => {
        const len = (c.config.maxLength as number | undefined) ?? Math.ceil(c.m / (c.config.block as number)) * (c.config.block as number);
        const k = tf.zeros([c.batch, c.kvHeads, len + 1, c.d]);
        const v = tf.zeros([c.batch, c.kvHeads, len + 1, c.dv]);
        return { k, v, made: [k, v] };
      },
      'v length mismatch': (c) => {
        const v = tf.zeros([c.batch, c.kvHeads, c.m + 1, c.dv]);
        return { v, made: [v] };
      },
      'kvHeads not dividing heads': (c) => {
        const k = tf.zeros([c.batch, c.heads + 1, c.m, c.d]);
        const v = tf.zeros([c.batch, c.heads + 1, c.m, c.dv]);
        return { k, v, made: [k, v] };
      },
      'keyLength past m': (c) => ({ options: { keyLength: new Array(c.batch).fill(c.m + 1) }, made: [] }),
      'keyLength float tensor': (c) => {
        const kl = tf.zeros([c.batch]);
        return { options: { keyLength: kl }, made: [kl] };
      },
      'unknown option': () => ({ options: { keyLengths: [1] }, made: [] }),
      "'kernel' where no kernel runs": () => ({ options: { implementation: backend === 'webgpu' ? 'fast' : 'kernel' }, made: [] }),
    };
    await fc.assert(
      fc.asyncProperty(spec.cases, fc.constantFrom(...Object.keys(bad)), async (c, which) => {
        const attn = spec.make(c.config);
        const x = makeInputs(c);
        const m = bad[which](c);
        try {
          expectRefused(() => attn.apply((m.q ?? x.q) as tf.Tensor4D, (m.k ?? x.k) as tf.Tensor4D, (m.v ?? x.v) as tf.Tensor4D, m.options as never), `${which}: ${describeCase(c)}`);
        } finally {
          m.made.forEach((t) => t.dispose());
          x.dispose();
          attn.dispose();
        }
      }),
      { numRuns: RUNS * 2 },
    );
  });

  it('rejects invalid configs with AttentionError (causal: true included)', () => {
    fc.assert(
      fc.property(spec.badConfigs, (config) => {
        let thrown: unknown = null;
        const before = tf.memory().numTensors;
        try {
          const attn = spec.make(config);
          const c: Case = { config, batch: 1, heads: 2, kvHeads: 1, n: 4, m: 4, d: 4, dv: 4, keyLength: null, seed: 1 };
          const x = makeInputs(c);
          try {
            attn.apply(x.q, x.k, x.v).dispose();
          } finally {
            x.dispose();
            attn.dispose();
          }
        } catch (e) {
          thrown = e;
        }
        expect(thrown, JSON.stringify(config)).toBeInstanceOf(AttentionError);
        expect(tf.memory().numTensors).toBe(before);
      }),
      { numRuns: RUNS * 2 },
    );
    expect(() => sinkhornAttention({ block: 2, maxLength: 8, headDim: 4, causal: true })).toThrow(AttentionError);
  });

  it('sort weights: a tf.Variable owned by the instance, trainable on request, freed by dispose()', () => {
    const before = tf.memory().numTensors;
    const plain = sinkhornAttention({ block: 4, maxLength: 16, headDim: 8 });
    expect(plain.sortWeights).toBeInstanceOf(tf.Variable);
    expect(plain.sortWeights.shape).toEqual([8, 4]);
    expect(plain.sortWeights.trainable).toBe(false);
    expect(plain.variables).toEqual([]);
    const trained = sinkhornAttention({ block: 4, maxLength: 16, headDim: 8, trainable: true });
    expect(trained.sortWeights.trainable).toBe(true);
    expect(trained.variables).toEqual([trained.sortWeights]);
    // Same seed, same weights; explicit weights are copied.
    const a = plain.sortWeights.dataSync();
    const b = trained.sortWeights.dataSync();
    expect(Array.from(a)).toEqual(Array.from(b));
    const given = tf.tensor2d(Array.from({ length: 8 * 4 }, (_, i) => i / 32), [8, 4]);
    const explicit = sinkhornAttention({ block: 4, sortWeights: given });
    expect(explicit.config.maxLength).toBe(16);
    given.dispose();
    expect(explicit.sortWeights.dataSync()[5]).toBeCloseTo(5 / 32, 6);
    for (const attn of [plain, trained, explicit]) attn.dispose();
    expect(tf.memory().numTensors).toBe(before);
    expect(() => plain.sortWeights).toThrow(AttentionError);
    expect(() => plain.variables).toThrow(AttentionError);
    expect(() => plain.memoryBytes({ batch: 1, heads: 1, n: 4, d: 8 })).toThrow(AttentionError);
    expect(() => plain.dispose()).not.toThrow();
  });

  it('differentiable: d loss / d sortWeights (trainable) matches float64 finite differences; padding keys get zero gradient', async () => {
    const W = explicitSortWeights(4, 4, 9);
    const c: Case = { config: { block: 3, maxLength: 10, sortWeights: W, trainable: true, iterations: 3 }, batch: 2, heads: 2, kvHeads: 1, n: 8, m: 10, d: 4, dv: 3, keyLength: [10, 7], seed: 42 };
    const attn = spec.make(c.config) as SinkhornAttention;
    const x = makeInputs(c);
    const r = seededTensor([2, 2, 8, 3], 99);
    const opts = { keyLength: c.keyLength! };
    try {
      const before = tf.memory().numTensors;
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(attn.apply(x.q, x.k, x.v, opts), r)) as tf.Scalar, attn.variables);
      const gW = await grads[attn.sortWeights.name].array() as number[][];
      value.dispose();
      Object.values(grads).forEach((t) => t.dispose());
      expect(tf.memory().numTensors).toBe(before);
      const [qh, kh, vh, rh] = await Promise.all([toHost(x.q), toHost(x.k), toHost(x.v), toHost(r)]);
      const loss = (w: number[][]) => {
        const out = spec.reference(qh, kh, vh, { ...c, config: { ...c.config, sortWeights: w } });
        return out.data.reduce((a, y, i) => a + y * rh.data[i], 0);
      };
      const eps = 1e-5;
      let checked = 0;
      for (let t = 0; t < 4; t++)
        for (let a = 0; a < 4; a++) {
          const plus = W.map((row) => row.slice());
          const minus = W.map((row) => row.slice());
          plus[t][a] += eps;
          minus[t][a] -= eps;
          const fd = (loss(plus) - loss(minus)) / (2 * eps);
          expect(Math.abs(gW[t][a] - fd), `dW[${t}][${a}]: ${gW[t][a]} vs ${fd}`).toBeLessThan(2e-3 * Math.max(1, Math.abs(fd)));
          checked++;
        }
      expect(checked).toBe(16);
      // Padding keys (batch 1, j >= 7) get exactly zero gradient; real keys do not.
      const gk = tf.grad((k: tf.Tensor) => tf.sum(tf.mul(attn.apply(x.q, k as tf.Tensor4D, x.v, opts), r)))(x.k);
      const gkh = await toHost(gk);
      gk.dispose();
      for (let j = 0; j < 10; j++)
        for (let t = 0; t < 4; t++) {
          const at = ((1 * 1 + 0) * 10 + j) * 4 + t;
          if (j >= 7) expect(gkh.data[at]).toBe(0);
        }
      expect(gkh.data.some((y) => y !== 0)).toBe(true);
      if (backend === 'webgpu') {
        expect(() => tf.grad((q: tf.Tensor) => tf.sum(attn.apply(q as tf.Tensor4D, x.k, x.v, { implementation: 'kernel' })))(x.q)).toThrow(AttentionError);
      }
    } finally {
      r.dispose();
      x.dispose();
      attn.dispose();
    }
  });

  const paths: ('kernel' | 'composite')[] = backend === 'webgpu' ? ['kernel', 'composite'] : ['composite'];
  for (const path of paths) {
    it(`memory (${path}): measured <= memoryBytes <= 4x measured, growth n -> 4n is ${spec.growth[path]}`, async () => {
      const measure = async (c: Case) => {
        const attn = spec.make(c.config) as SinkhornAttention;
        const x = makeInputs(c);
        try {
          await x.q.data();
          if (tf.getBackend() === 'webgpu') {
            await withGpuErrorScope(async () => {
              const warm = attn.apply(x.q, x.k, x.v, { implementation: path });
              await warm.data();
              warm.dispose();
            });
          }
          const r = await withGpuErrorScope(async () => {
            const r = await measureIntermediateBytes(() => attn.apply(x.q, x.k, x.v, { implementation: path }));
            await r.result.data();
            r.result.dispose();
            return r;
          });
          return { measured: r.bytes, declared: attn.memoryBytes(problemOf(c, path)) };
        } finally {
          x.dispose();
          attn.dispose();
        }
      };
      {
        // With key lengths (numbers or an int32 tensor) the bound holds too.
        const c = { ...spec.memoryCase(1024, 5), keyLength: [700] };
        for (const asTensor of [false, true]) {
          const attn = spec.make(c.config);
          const x = makeInputs(c);
          const kl = asTensor ? tf.tensor1d(c.keyLength, 'int32') : c.keyLength;
          try {
            // Inputs settled on the device first (measureIntermediateBytes flushes the queue).
            await Promise.all([x.q.data(), x.k.data(), x.v.data(), ...(kl instanceof tf.Tensor ? [kl.data()] : [])]);
            const r = await withGpuErrorScope(async () => {
              const r = await measureIntermediateBytes(() => attn.apply(x.q, x.k, x.v, { implementation: path, keyLength: kl as tf.Tensor1D }));
              await r.result.data();
              r.result.dispose();
              return r;
            });
            const declared = attn.memoryBytes(problemOf(c, path, true));
            console.log(`sinkhorn ${backend} ${path} keyLength (${asTensor ? 'tensor' : 'numbers'}): measured ${r.bytes}, declared ${declared}`);
            expect(r.bytes).toBeLessThanOrEqual(declared);
            expect(declared).toBeLessThanOrEqual(4 * r.bytes + 8192);
          } finally {
            if (kl instanceof tf.Tensor) kl.dispose();
            x.dispose();
            attn.dispose();
          }
        }
      }
      for (const n of [1024, 2048]) {
        const a = await measure(spec.memoryCase(n, 11));
        const b = await measure(spec.memoryCase(4 * n, 11));
        const ctx = `n=${n}: measured ${a.measured} -> ${b.measured}, declared ${a.declared} -> ${b.declared}`;
        console.log(`sinkhorn ${backend} ${path} ${ctx}`);
        for (const r of [a, b]) {
          expect(r.measured, ctx).toBeLessThanOrEqual(r.declared);
          expect(r.declared, ctx).toBeLessThanOrEqual(4 * r.measured + 8192);
        }
        const [lo, hi] = GROWTH[spec.growth[path]];
        expect(b.measured / a.measured, ctx).toBeGreaterThanOrEqual(lo);
        expect(b.measured / a.measured, ctx).toBeLessThanOrEqual(hi);
        expect(b.declared / a.declared, ctx).toBeLessThanOrEqual(hi);
      }
    });
  }
});
