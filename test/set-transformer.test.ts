/**
 * `set-transformer` (ISAB attention core) on every backend this machine has: the float64
 * reference from DESIGN.md, kernel == composite, padding never read (non-finite padding keys and
 * values leave every output bit-identical, key lengths as numbers or an int32 tensor), no
 * leaks, AttentionError for bad configs and inputs before any dispatch, the learned inducing
 * points (a tf.Variable, gradients against finite differences), and the memory bound with its
 * growth from n = 1024 to 4096.
 */
import fc from 'fast-check';
import { GROWTH } from './specs/types.js';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { AttentionError } from '../src/core/errors.js';
import { measureIntermediateBytes } from '../src/core/measure.js';
import { setTransformerAttention, SetTransformerAttention, setTransformerInducing } from '../src/variants/side-memory/set-transformer.js';
import { meta } from '../src/variants/side-memory/set-transformer.meta.js';
import { setTileStaging } from '../kernels/flash/plan.js';
import { setupBackends, useBackend, withGpuErrorScope } from './backends.js';
import { describeCase, makeInputs, runCase } from './harness.js';
import { expectReference, expectRefused } from './expect.js';
import { poisonCheck } from './poison.js';
import { maxAbsDiff, seededTensor, toHost } from './reference.js';
import { explicitInducing, setTransformerSpec as spec } from './specs/set-transformer.js';
// tfjs-core registers no gradient functions by itself (@tensorflow/tfjs does): this file's fork only.
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import type { Case } from './specs/types.js';
import type { KernelStrategy } from '../src/core/types.js';

const backends = await setupBackends();
const TOL = 2e-5;
const RUNS = Number(process.env.FC_RUNS ?? 12);

function problemOf(c: Case, implementation: 'kernel' | 'composite', keyLength = false) {
  return { batch: c.batch, heads: c.heads, kvHeads: c.kvHeads, n: c.n, m: c.m, d: c.d, dv: c.dv, implementation, keyLength };
}

it('metadata: side memory, non-causal, fused, learned inducing points', () => {
  expect(meta.id).toBe('set-transformer');
  expect(meta.family).toBe('side memory');
  expect(meta.capabilities).toEqual({ fused: true, fusedBackward: true, causal: false, decode: false, pattern: false, learned: ['inducing'] });
  expect(spec.fused).toBe(true);
  expect(spec.nonCausal).toBe(true);
});

describe.each(backends)('set-transformer on %s', (backend) => {
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

  if (backend === 'webgpu') {
    it("fused kernel == composite on the same inputs (and 'rows', 'tiled' staged equal the reference)", async () => {
      await fc.assert(
        fc.asyncProperty(spec.cases, async (c) => {
          const attn = spec.make(c.config);
          const x = makeInputs(c);
          try {
            const a = await runCase(attn, x, c, 'kernel');
            const b = await runCase(attn, x, c, 'composite');
            expect(maxAbsDiff(a.data, b.data), describeCase(c)).toBeLessThan(TOL);
            const [qh, kh, vh] = await Promise.all([toHost(x.q), toHost(x.k), toHost(x.v)]);
            const want = spec.reference(qh, kh, vh, c);
            const rows = await runCase(attn, x, c, 'kernel', 'rows');
            setTileStaging(true);
            const staged = await runCase(attn, x, c, 'kernel', 'tiled');
            setTileStaging(null);
            expect(maxAbsDiff(rows.data, want.data), `rows: ${describeCase(c)}`).toBeLessThan(TOL);
            expect(maxAbsDiff(staged.data, want.data), `tiled, staged: ${describeCase(c)}`).toBeLessThan(TOL);
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

  type PoisonPath = { path: 'kernel' | 'composite'; name: string; strategy?: KernelStrategy; stage?: boolean };
  const poisonPaths: PoisonPath[] =
    backend === 'webgpu'
      ? [
          { path: 'kernel', name: 'kernel' },
          { path: 'kernel', name: 'kernel, rows', strategy: 'rows' },
          { path: 'kernel', name: 'kernel, tiled, staged', strategy: 'tiled', stage: true },
          { path: 'composite', name: 'composite' },
        ]
      : [{ path: 'composite', name: 'composite' }];
  for (const { path, name, strategy, stage } of poisonPaths) {
    it(`padding is never read (${name}): NaN/±Inf past keyLength (numbers or an int32 tensor) leave every output bit-identical`, async () => {
      await fc.assert(
        fc.asyncProperty(
          spec.cases.chain((c) =>
            fc.record({
              c: fc.constant(c),
              lengths: fc.array(fc.integer({ min: 0, max: c.m }), { minLength: c.batch, maxLength: c.batch }),
              asTensor: fc.boolean(),
              seed: fc.integer({ min: 1, max: 1e9 }),
            }),
          ),
          async ({ c, lengths, asTensor, seed }) => {
            if (stage !== undefined) setTileStaging(stage);
            try {
              const problem = await poisonCheck(spec, c, { lengths, asTensor, future: null, seed }, path, withGpuErrorScope, strategy);
              expect(problem).toBeNull();
            } finally {
              setTileStaging(null);
            }
          },
        ),
        { numRuns: RUNS },
      );
    });
  }

  it('keyLength as an int32 tensor equals keyLength as numbers', async () => {
    const withLength = spec.cases.map((c) => ({ ...c, keyLength: c.keyLength ?? Array.from({ length: c.batch }, (_, b) => (c.seed + 7 * b) % (c.m + 1)) }));
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

  it('throws AttentionError for bad inputs (dv != d, heads or d other than the inducing points\'), before any dispatch, leaking nothing', async () => {
    type Bad = (c: Case) => { q?: unknown; k?: unknown; v?: unknown; options?: unknown; made: tf.Tensor[] };
    const bad: Record<string, Bad> = {
      'dv != d': (c) => {
        const v = tf.zeros([c.batch, c.kvHeads, c.m, c.d + 1]);
        return { v, made: [v] };
      },
      'q heads other than the inducing points': (c) => {
        const q = tf.zeros([c.batch, 2 * c.heads, c.n, c.d]);
        return { q, made: [q] };
      },
      'q and k head dim other than the inducing points': (c) => {
        const q = tf.zeros([c.batch, c.heads, c.n, c.d + 1]);
        const k = tf.zeros([c.batch, c.kvHeads, c.m, c.d + 1]);
        const v = tf.zeros([c.batch, c.kvHeads, c.m, c.d + 1]);
        return { q, k, v, made: [q, k, v] };
      },
      'k head dim mismatch': (c) => {
        const k = tf.zeros([c.batch, c.kvHeads, c.m, c.d + 1]);
        return { k, made: [k] };
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
    // memoryBytes refuses the same shapes.
    const attn = setTransformerAttention({ heads: 2, headDim: 4, inducingPoints: 3 });
    expect(() => attn.memoryBytes({ batch: 1, heads: 2, n: 8, d: 4, dv: 5 })).toThrow(AttentionError);
    expect(() => attn.memoryBytes({ batch: 1, heads: 4, n: 8, d: 4 })).toThrow(AttentionError);
    expect(() => attn.memoryBytes({ batch: 1, heads: 2, n: 8, d: 8 })).toThrow(AttentionError);
    attn.dispose();
  });

  it('rejects invalid configs with AttentionError (causal: true, wrong inducing shapes, heads mismatch), leaking nothing', () => {
    fc.assert(
      fc.property(spec.badConfigs, (config) => {
        let thrown: unknown = null;
        const before = tf.memory().numTensors;
        try {
          const attn = spec.make(config);
          const c: Case = { config, batch: 1, heads: Number(config.heads ?? 2), kvHeads: 1, n: 4, m: 4, d: 4, dv: 4, keyLength: null, seed: 1 };
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
    expect(() => setTransformerAttention({ heads: 2, headDim: 4, causal: true })).toThrow(AttentionError);
    const disposed = tf.zeros([2, 3, 4]);
    disposed.dispose();
    expect(() => setTransformerAttention({ inducing: disposed as tf.Tensor3D })).toThrow(AttentionError);
    const rank2 = tf.zeros([2, 3]);
    expect(() => setTransformerAttention({ inducing: rank2 as unknown as tf.Tensor3D })).toThrow(AttentionError);
    rank2.dispose();
  });

  it('inducing points: a tf.Variable owned by the instance, trainable on request, seeded or copied, freed by dispose()', () => {
    const before = tf.memory().numTensors;
    const plain = setTransformerAttention({ heads: 2, headDim: 8 });
    expect(plain.config.inducingPoints).toBe(32);
    expect(plain.inducing).toBeInstanceOf(tf.Variable);
    expect(plain.inducing.shape).toEqual([2, 32, 8]);
    expect(plain.inducing.trainable).toBe(false);
    expect(plain.variables).toEqual([]);
    const trained = setTransformerAttention({ heads: 2, headDim: 8, trainable: true });
    expect(trained.inducing.trainable).toBe(true);
    expect(trained.variables).toEqual([trained.inducing]);
    // Same seed, same points on every backend: the generator's values.
    expect(Array.from(plain.inducing.dataSync())).toEqual(Array.from(trained.inducing.dataSync()));
    expect(Array.from(plain.inducing.dataSync())).toEqual(Array.from(setTransformerInducing(2, 32, 8, 0x5eed)));
    const other = setTransformerAttention({ heads: 2, headDim: 8, seed: 7 });
    expect(Array.from(other.inducing.dataSync())).not.toEqual(Array.from(plain.inducing.dataSync()));
    const given = tf.tensor3d(Array.from({ length: 2 * 3 * 4 }, (_, i) => i / 24), [2, 3, 4]);
    const explicit = setTransformerAttention({ inducing: given });
    expect(explicit.config).toMatchObject({ heads: 2, inducingPoints: 3, headDim: 4, inducing: 'explicit' });
    given.dispose();
    expect(explicit.inducing.dataSync()[5]).toBeCloseTo(5 / 24, 6);
    const nested = setTransformerAttention({ inducing: explicitInducing(1, 2, 3, 5), trainable: true });
    expect(nested.inducing.shape).toEqual([1, 2, 3]);
    for (const attn of [plain, trained, other, explicit, nested]) attn.dispose();
    expect(tf.memory().numTensors).toBe(before);
    expect(() => plain.inducing).toThrow(AttentionError);
    expect(() => plain.variables).toThrow(AttentionError);
    expect(() => plain.memoryBytes({ batch: 1, heads: 2, n: 4, d: 8 })).toThrow(AttentionError);
    expect(() => plain.dispose()).not.toThrow();
  });

  it('differentiable: d loss / d inducing (trainable) matches float64 finite differences; padding keys get zero gradient', async () => {
    const I = explicitInducing(2, 3, 4, 9);
    const c: Case = { config: { inducing: I, trainable: true }, batch: 3, heads: 2, kvHeads: 1, n: 5, m: 7, d: 4, dv: 4, keyLength: [7, 4, 0], seed: 42 };
    const attn = spec.make(c.config) as SetTransformerAttention;
    const x = makeInputs(c);
    const r = seededTensor([3, 2, 5, 4], 99);
    const opts = { keyLength: c.keyLength! };
    try {
      const before = tf.memory().numTensors;
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(attn.apply(x.q, x.k, x.v, opts), r)) as tf.Scalar, attn.variables);
      const gI = (await grads[attn.inducing.name].array()) as number[][][];
      value.dispose();
      Object.values(grads).forEach((t) => t.dispose());
      expect(tf.memory().numTensors).toBe(before);
      const [qh, kh, vh, rh] = await Promise.all([toHost(x.q), toHost(x.k), toHost(x.v), toHost(r)]);
      const loss = (p: number[][][]) => {
        const out = spec.reference(qh, kh, vh, { ...c, config: { inducing: p } });
        return out.data.reduce((a, y, i) => a + y * rh.data[i], 0);
      };
      const eps = 1e-5;
      let checked = 0;
      for (let h = 0; h < 2; h++)
        for (let s = 0; s < 3; s++)
          for (let t = 0; t < 4; t++) {
            const plus = I.map((a) => a.map((row) => row.slice()));
            const minus = I.map((a) => a.map((row) => row.slice()));
            plus[h][s][t] += eps;
            minus[h][s][t] -= eps;
            const fd = (loss(plus) - loss(minus)) / (2 * eps);
            expect(Math.abs(gI[h][s][t] - fd), `dI[${h}][${s}][${t}]: ${gI[h][s][t]} vs ${fd}`).toBeLessThan(2e-3 * Math.max(1, Math.abs(fd)));
            checked++;
          }
      expect(checked).toBe(24);
      expect(gI.flat(2).some((g) => g !== 0)).toBe(true);
      // Gradients w.r.t. q, k, v flow too; padding keys (batch 1, j >= 4; batch 2, all) get exactly zero.
      const [gq, gk, gv] = tf.grads((q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) => tf.sum(tf.mul(attn.apply(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, opts), r)))([x.q, x.k, x.v]);
      const [gqh, gkh, gvh] = await Promise.all([toHost(gq), toHost(gk), toHost(gv)]);
      [gq, gk, gv].forEach((t) => t.dispose());
      for (const g of [gkh, gvh])
        for (let b = 0; b < 3; b++)
          for (let j = 0; j < 7; j++)
            for (let t = 0; t < 4; t++) {
              const at = (b * 7 + j) * 4 + t;
              if (j >= c.keyLength![b]) expect(g.data[at], `b${b} j${j}`).toBe(0);
            }
      expect(gkh.data.some((y) => y !== 0)).toBe(true);
      expect(gqh.data.every(Number.isFinite)).toBe(true);
      if (backend === 'webgpu') {
        // 'auto' above ran the fused path (the flash kernel's fused backward): the composite's gradient is the same.
        const composite = tf.grad((q: tf.Tensor) => tf.sum(tf.mul(attn.apply(q as tf.Tensor4D, x.k, x.v, { ...opts, implementation: 'composite' }), r)))(x.q);
        const fh = await toHost(composite);
        composite.dispose();
        const worst = fh.data.reduce((acc, y, i) => Math.max(acc, Math.abs(y - gqh.data[i])), 0);
        expect(worst).toBeLessThan(1e-4 * (1 + gqh.data.reduce((a, y) => Math.max(a, Math.abs(y)), 0)));
      }
    } finally {
      r.dispose();
      x.dispose();
      attn.dispose();
    }
  });

  const paths: ('kernel' | 'composite')[] = backend === 'webgpu' ? ['kernel', 'composite'] : ['composite'];
  for (const path of paths) {
    it(`memory (${path}): measured <= memoryBytes <= 4x measured, growth n = 1024 -> 4096 is ${spec.growth[path]} (<= 4.5x)`, async () => {
      const measure = async (c: Case, kl: number[] | tf.Tensor1D | null = null) => {
        const attn = spec.make(c.config) as SetTransformerAttention;
        const x = makeInputs(c);
        const opts = { implementation: path, ...(kl ? { keyLength: kl } : {}) };
        try {
          // Inputs settled on the device first (measureIntermediateBytes flushes the queue).
          await Promise.all([x.q.data(), x.k.data(), x.v.data(), ...(kl instanceof tf.Tensor ? [kl.data()] : [])]);
          if (tf.getBackend() === 'webgpu') {
            await withGpuErrorScope(async () => {
              const warm = attn.apply(x.q, x.k, x.v, opts);
              await warm.data();
              warm.dispose();
            });
          }
          const r = await withGpuErrorScope(async () => {
            const r = await measureIntermediateBytes(() => attn.apply(x.q, x.k, x.v, opts));
            await r.result.data();
            r.result.dispose();
            return r;
          });
          return { measured: r.bytes, declared: attn.memoryBytes(problemOf(c, path, kl !== null)) };
        } finally {
          x.dispose();
          attn.dispose();
        }
      };
      {
        // With key lengths (numbers or an int32 tensor) the bound holds too.
        const c = { ...spec.memoryCase(1024, 5), keyLength: [700] };
        for (const asTensor of [false, true]) {
          const kl = asTensor ? tf.tensor1d(c.keyLength, 'int32') : c.keyLength;
          try {
            const r = await measure(c, kl as number[] | tf.Tensor1D);
            console.log(`set-transformer ${backend} ${path} keyLength (${asTensor ? 'tensor' : 'numbers'}) n=1024: measured ${r.measured}, declared ${r.declared}`);
            expect(r.measured).toBeLessThanOrEqual(r.declared);
            expect(r.declared).toBeLessThanOrEqual(4 * r.measured + 8192);
          } finally {
            if (kl instanceof tf.Tensor) kl.dispose();
          }
        }
      }
      for (const n of [1024, 2048]) {
        const a = await measure(spec.memoryCase(n, 11));
        const b = await measure(spec.memoryCase(4 * n, 11));
        const ctx = `n=${n} -> ${4 * n}: measured ${a.measured} -> ${b.measured} (x${(b.measured / a.measured).toFixed(2)}), declared ${a.declared} -> ${b.declared} (x${(b.declared / a.declared).toFixed(2)})`;
        console.log(`set-transformer ${backend} ${path} ${ctx}`);
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
