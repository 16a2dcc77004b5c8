/**
 * `routing` (Routing Transformer): the float64 reference, kernel == composite, causal masking
 * inside clusters, padding never routed nor read, no leaks (apply and updateCentroids), errors
 * before dispatch, and the memory bound and its linear growth at a fixed window.
 */
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { AttentionError } from '../src/core/errors.js';
import { measureIntermediateBytes } from '../src/core/measure.js';
import { routingAttention, type RoutingAttention } from '../src/variants/learnable/routing.js';
import { setupBackends, useBackend, withGpuErrorScope } from './backends.js';
import { countDispatches, describeCase, makeInputs, runCase } from './harness.js';
import { expectReference } from './expect.js';
import { maxAbsDiff, seededTensor, toHost } from './reference.js';
import { centroidsOf, referenceUpdate, routingSpec as spec } from './specs/routing.js';
import type { Case } from './specs/types.js';

const backends = await setupBackends();
const TOL = 2e-5;
const RUNS = Number(process.env.FC_RUNS ?? 12);
const make = (c: Case) => spec.make(c.config) as RoutingAttention;

/** Cases small enough for quick runs. */
const small = spec.cases.filter((c) => c.n <= 64 && c.m <= 64);

describe.each(backends)('routing on %s', (backend) => {
  beforeAll(() => useBackend(backend));
  const paths: ('kernel' | 'composite')[] = backend === 'webgpu' ? ['kernel', 'composite'] : ['composite'];

  for (const path of paths)
    it(`${path}: equals the float64 reference`, async () => {
      await fc.assert(
        fc.asyncProperty(small, async (c) => {
          const attn = make(c);
          const x = makeInputs(c);
          try {
            await expectReference(attn, x, c, spec.reference, path, TOL);
          } finally {
            x.dispose();
            attn.dispose();
          }
        }),
        { numRuns: RUNS },
      );
    });

  if (backend === 'webgpu')
    it('kernel == composite on the same inputs', async () => {
      await fc.assert(
        fc.asyncProperty(small, async (c) => {
          const attn = make(c);
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

  for (const path of paths)
    it(`${path}: causal rows never read a future value (future v perturbed: past rows bit-identical)`, async () => {
      // Cluster membership is chosen over all real keys (DESIGN's definition), so future *keys* may
      // change which past keys a cluster took; future *values* are never read by a past row.
      await fc.assert(
        fc.asyncProperty(small.filter((c) => !!c.config.causal), fc.nat(), async (c, cut) => {
          const attn = make(c);
          const x = makeInputs(c);
          const t = cut % c.n;
          const pt = t + c.m - c.n;
          const v2 = tf.tidy(() => {
            const j = tf.reshape(tf.range(0, c.m, 1, 'int32'), [1, 1, c.m, 1]);
            const future = tf.broadcastTo(tf.greater(j, tf.scalar(pt, 'int32')), x.v.shape);
            return tf.where(future, seededTensor(x.v.shape, c.seed + 9, 3), x.v) as tf.Tensor4D;
          });
          try {
            const a = await runCase(attn, x, c, path);
            const b = await runCase(attn, { ...x, v: v2 }, c, path);
            for (let bb = 0; bb < c.batch; bb++)
              for (let h = 0; h < c.heads; h++) {
                const o = ((bb * c.heads + h) * c.n) * c.dv;
                expect(maxAbsDiff(a.data.subarray(o, o + (t + 1) * c.dv), b.data.subarray(o, o + (t + 1) * c.dv)), describeCase(c)).toBe(0);
              }
          } finally {
            v2.dispose();
            x.dispose();
            attn.dispose();
          }
        }),
        { numRuns: RUNS },
      );
    });

  for (const path of paths)
    it(`${path}: NaN/Inf in padding keys and values leave every output finite and bit-identical`, async () => {
      await fc.assert(
        fc.asyncProperty(
          small.chain((c) => fc.record({ c: fc.constant(c), lens: fc.array(fc.integer({ min: 0, max: c.m }), { minLength: c.batch, maxLength: c.batch }), asTensor: fc.boolean() })),
          async ({ c: c0, lens, asTensor }) => {
            const c = { ...c0, keyLength: lens };
            const attn = make(c);
            const x = makeInputs(c);
            const poison = (t: tf.Tensor4D, val: number) =>
              tf.tidy(() => {
                const j = tf.reshape(tf.range(0, c.m, 1, 'int32'), [1, 1, c.m, 1]);
                const pad = tf.broadcastTo(tf.greaterEqual(j, tf.reshape(tf.tensor1d(lens, 'int32'), [c.batch, 1, 1, 1])), t.shape);
                return tf.where(pad, tf.fill(t.shape, val), t) as tf.Tensor4D;
              });
            const k2 = poison(x.k, Number.NaN);
            const v2 = poison(x.v, Infinity);
            const kl = asTensor ? tf.tensor1d(lens, 'int32') : lens;
            try {
              const run = async (k: tf.Tensor4D, v: tf.Tensor4D) =>
                withGpuErrorScope(async () => {
                  const out = attn.apply(x.q, k, v, { implementation: path, keyLength: kl });
                  try {
                    return await toHost(out);
                  } finally {
                    out.dispose();
                  }
                });
              const a = await run(x.k, x.v);
              const b = await run(k2, v2);
              expect(b.data.every(Number.isFinite), describeCase(c)).toBe(true);
              expect(maxAbsDiff(a.data, b.data), describeCase(c)).toBe(0);
              const [qh, kh, vh] = await Promise.all([toHost(x.q), toHost(x.k), toHost(x.v)]);
              expect(maxAbsDiff(b.data, spec.reference(qh, kh, vh, c).data), describeCase(c)).toBeLessThan(TOL);
            } finally {
              if (kl instanceof tf.Tensor) kl.dispose();
              k2.dispose();
              v2.dispose();
              x.dispose();
              attn.dispose();
            }
          },
        ),
        { numRuns: RUNS },
      );
    });

  for (const path of paths)
    it(`${path}: no tensor leaks (apply, updateCentroids, dispose)`, async () => {
      await fc.assert(
        fc.asyncProperty(small, fc.double({ min: 0, max: 1, noNaN: true }), async (c, decay) => {
          const x = makeInputs(c);
          const before = tf.memory().numTensors;
          const attn = make(c);
          const owned = tf.memory().numTensors;
          expect(owned - before).toBe(1); // the centroids
          const out = await withGpuErrorScope(() => attn.apply(x.q, x.k, x.v, { implementation: path, ...(c.keyLength ? { keyLength: c.keyLength } : {}) }));
          expect(tf.memory().numTensors).toBe(owned + 1);
          out.dispose();
          await withGpuErrorScope(() => attn.updateCentroids(x.q, x.k, decay, c.keyLength ? { keyLength: c.keyLength } : undefined));
          expect(tf.memory().numTensors).toBe(owned);
          attn.dispose();
          expect(tf.memory().numTensors).toBe(before);
          x.dispose();
        }),
        { numRuns: RUNS },
      );
    });

  it('updateCentroids is the EMA k-means step (float64 reference), and apply then routes with the moved centroids', async () => {
    await fc.assert(
      // decay in [0.1, 0.9]: with decay 0 a centroid can be the exact mean of two unit vectors, whose scores then tie
      // exactly in float64 and not in float32 (the reference's tie rule is not testable there).
      fc.asyncProperty(small, fc.double({ min: 0.1, max: 0.9, noNaN: true }), async (c, decay) => {
        const attn = make(c);
        const x = makeInputs(c);
        try {
          const [qh, kh] = await Promise.all([toHost(x.q), toHost(x.k)]);
          const want = referenceUpdate(centroidsOf(c), qh, kh, decay, c.keyLength);
          await withGpuErrorScope(() => attn.updateCentroids(x.q, x.k, decay, c.keyLength ? { keyLength: c.keyLength } : undefined));
          const mu = attn.centroids();
          const got = await mu.data();
          mu.dispose();
          const flat = Float64Array.from(want.flatMap((hs) => hs.flatMap((r) => Array.from(r))));
          expect(maxAbsDiff(got, flat), describeCase(c)).toBeLessThan(1e-5);
          // The moved centroids, passed explicitly to a fresh instance, give the same output.
          const moved = { ...c, config: { ...c.config, centroids: want.map((hs) => hs.map((r) => Array.from(r))) } };
          delete (moved.config as Record<string, unknown>).seed;
          delete (moved.config as Record<string, unknown>).heads;
          delete (moved.config as Record<string, unknown>).dim;
          const vh = await toHost(x.v);
          const out = await runCase(attn, x, c, 'composite');
          expect(maxAbsDiff(out.data, spec.reference(qh, kh, vh, moved).data), describeCase(c)).toBeLessThan(TOL);
        } finally {
          x.dispose();
          attn.dispose();
        }
      }),
      { numRuns: RUNS },
    );
  });

  for (const path of paths)
    it(`${path}: routing ties go to the lower position (repeated query and key rows)`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 2, max: 4 }), fc.boolean(), fc.integer({ min: 1, max: 1e6 }), async (kinds, kc, causal, seed) => {
          // Only `kinds` distinct rows, repeated: every routing score ties with the same row's elsewhere.
          const n = 12;
          const c: Case = { config: { clusters: kc, window: 5, causal, heads: 2, dim: 4, seed }, batch: 1, heads: 2, kvHeads: 1, n, m: n, d: 4, dv: 3, keyLength: null, seed };
          const attn = make(c);
          const base = makeInputs({ ...c, n: kinds, m: kinds });
          const idx = tf.tensor1d(Array.from({ length: n }, (_, i) => (i * 7) % kinds), 'int32');
          const full = makeInputs(c);
          const x = { q: tf.gather(base.q, idx, 2) as tf.Tensor4D, k: tf.gather(base.k, idx, 2) as tf.Tensor4D, v: full.v, dispose() {} };
          try {
            const [qh, kh, vh] = await Promise.all([toHost(x.q), toHost(x.k), toHost(x.v)]);
            const got = await runCase(attn, x, c, path);
            expect(maxAbsDiff(got.data, spec.reference(qh, kh, vh, c).data), describeCase(c)).toBeLessThan(TOL);
          } finally {
            tf.dispose([x.q, x.k, idx]);
            full.dispose();
            base.dispose();
            attn.dispose();
          }
        }),
        { numRuns: RUNS },
      );
    });

  it('rejects bad configs with AttentionError', () => {
    fc.assert(
      fc.property(spec.badConfigs, (config) => {
        let thrown: unknown = null;
        const before = tf.memory().numTensors;
        try {
          const attn = spec.make(config);
          const c = { config, batch: 1, heads: Number(config.heads ?? 2), kvHeads: 1, n: 4, m: 4, d: 4, dv: 4, keyLength: null, seed: 1 };
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
      { numRuns: 30 },
    );
  });

  it('bad inputs throw AttentionError before any dispatch', () => {
    const attn = routingAttention({ clusters: 2, heads: 2, dim: 4 });
    const q = tf.zeros([1, 2, 8, 4]) as tf.Tensor4D;
    const k = tf.zeros([1, 1, 8, 4]) as tf.Tensor4D;
    const q4 = tf.zeros([1, 4, 8, 4]) as tf.Tensor4D;
    const q5 = tf.zeros([1, 2, 8, 5]) as tf.Tensor4D;
    const k5 = tf.zeros([1, 1, 8, 5]) as tf.Tensor4D;
    const q3 = tf.zeros([1, 3, 8, 4]) as tf.Tensor4D;
    const bad: [string, () => unknown][] = [
      ['heads', () => attn.apply(q4, k, k)],
      ['dim', () => attn.apply(q5, k5, k)],
      ['keyLength', () => attn.apply(q, k, k, { keyLength: [9] })],
      ['implementation', () => attn.apply(q, k, k, { implementation: 'fast' as never })],
      ['decay', () => attn.updateCentroids(q, k, 1.5)],
      ['update heads', () => attn.updateCentroids(q3, k, 0.9)],
      ['update option', () => attn.updateCentroids(q, k, 0.9, { keyLengths: [1] } as never)],
      ['problem heads', () => attn.memoryBytes({ batch: 1, heads: 3, n: 8, d: 4 })],
    ];
    if (backend !== 'webgpu') bad.push(['kernel off webgpu', () => attn.apply(q, k, k, { implementation: 'kernel' })]);
    const before = tf.memory().numTensors;
    for (const [name, fn] of bad) {
      let thrown: unknown = null;
      const dispatches = countDispatches(() => {
        try {
          fn();
        } catch (e) {
          thrown = e;
        }
      });
      expect(thrown, name).toBeInstanceOf(AttentionError);
      expect(dispatches, name).toBe(0);
      expect(tf.memory().numTensors, name).toBe(before);
    }
    attn.dispose();
    expect(() => attn.apply(q, k, k)).toThrow(AttentionError);
    tf.dispose([q, k, q4, q5, k5, q3]);
  });

  for (const path of paths)
    it(`${path}: measured bytes <= memoryBytes on random cases (key lengths, grouped heads, any window)`, async () => {
      await fc.assert(
        fc.asyncProperty(small, async (c) => {
          const attn = make(c);
          const x = makeInputs(c);
          try {
            await x.q.data();
            const opts = { implementation: path, ...(c.keyLength ? { keyLength: c.keyLength } : {}) };
            if (backend === 'webgpu') {
              const warm = attn.apply(x.q, x.k, x.v, opts);
              await warm.data();
              warm.dispose();
            }
            const r = await withGpuErrorScope(() => measureIntermediateBytes(() => attn.apply(x.q, x.k, x.v, opts)));
            await r.result.data();
            r.result.dispose();
            const declared = attn.memoryBytes({ batch: c.batch, heads: c.heads, kvHeads: c.kvHeads, n: c.n, m: c.m, d: c.d, dv: c.dv, implementation: path, keyLength: !!c.keyLength });
            expect(r.bytes, describeCase(c)).toBeLessThanOrEqual(declared);
          } finally {
            x.dispose();
            attn.dispose();
          }
        }),
        { numRuns: RUNS },
      );
    });

  for (const path of paths)
    it(`${path}: measured bytes <= memoryBytes <= 4x measured, growth n -> 4n linear at a fixed window`, async () => {
      const measure = async (c: Case) => {
        const attn = make(c);
        const x = makeInputs(c);
        try {
          await x.q.data();
          if (backend === 'webgpu') {
            const warm = attn.apply(x.q, x.k, x.v, { implementation: path });
            await warm.data();
            warm.dispose();
          }
          const r = await withGpuErrorScope(() => measureIntermediateBytes(() => attn.apply(x.q, x.k, x.v, { implementation: path })));
          await r.result.data();
          r.result.dispose();
          return { measured: r.bytes, declared: attn.memoryBytes({ batch: c.batch, heads: c.heads, kvHeads: c.kvHeads, n: c.n, m: c.m, d: c.d, dv: c.dv, implementation: path }) };
        } finally {
          x.dispose();
          attn.dispose();
        }
      };
      for (const seed of [3, 4]) {
        const a = await measure(spec.memoryCase(1024, seed));
        const b = await measure(spec.memoryCase(4096, seed));
        const ctx = `measured ${a.measured} -> ${b.measured}, declared ${a.declared} -> ${b.declared}`;
        for (const r of [a, b]) {
          expect(r.measured, ctx).toBeLessThanOrEqual(r.declared);
          expect(r.declared, ctx).toBeLessThanOrEqual(4 * r.measured + 8192);
        }
        expect(b.measured / a.measured, ctx).toBeGreaterThanOrEqual(3);
        expect(b.measured / a.measured, ctx).toBeLessThanOrEqual(4.5);
        expect(b.declared / a.declared, ctx).toBeLessThanOrEqual(4.5);
      }
    }, 120_000);
});

