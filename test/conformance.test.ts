/**
 * The conformance suite: every catalog entry, on every backend this machine has (cpu always,
 * webgpu where an adapter exists; REQUIRE_WEBGPU=1 makes a missing adapter a failure).
 */
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { catalog } from '../src/index.js';
import { AttentionError } from '../src/core/errors.js';
import { setupBackends, useBackend, withGpuErrorScope } from './backends.js';
import { RUNS, describeCase, makeInputs, runCase } from './harness.js';
import { expectRefused } from './expect.js';
import { maxAbsDiff, seededTensor, toHost } from './reference.js';
import { specs } from './specs/index.js';
import type { Case } from './specs/types.js';

const backends = await setupBackends();
const TOL = 2e-5;

it('every catalog entry has a conformance spec', () => {
  for (const entry of catalog) expect(specs[entry.id], `spec for ${entry.id}`).toBeDefined();
  expect(Object.keys(specs).sort()).toEqual(catalog.map((e) => e.id).sort());
});

/** Invalid inputs for a valid case; each must throw AttentionError before any dispatch. */
type Mutation = (c: Case) => { q: unknown; k: unknown; v: unknown; options: unknown; made: tf.Tensor[] };
const mutations: Record<string, Mutation> = {
  'q of rank 3': (c) => {
    const q = tf.zeros([c.batch, c.n, c.d]);
    return { q, k: null, v: null, options: {}, made: [q] };
  },
  'k of dtype int32': (c) => {
    const k = tf.zeros([c.batch, c.kvHeads, c.m, c.d], 'int32');
    return { q: null, k, v: null, options: {}, made: [k] };
  },
  'v batch mismatch': (c) => {
    const v = tf.zeros([c.batch + 1, c.kvHeads, c.m, c.dv]);
    return { q: null, k: null, v, options: {}, made: [v] };
  },
  'k head dim mismatch': (c) => {
    const k = tf.zeros([c.batch, c.kvHeads, c.m, c.d + 1]);
    return { q: null, k, v: null, options: {}, made: [k] };
  },
  'kvHeads not dividing heads': (c) => {
    const k = tf.zeros([c.batch, c.heads + 1, c.m, c.d]);
    const v = tf.zeros([c.batch, c.heads + 1, c.m, c.dv]);
    return { q: null, k, v, options: {}, made: [k, v] };
  },
  'v length mismatch': (c) => {
    const v = tf.zeros([c.batch, c.kvHeads, c.m + 1, c.dv]);
    return { q: null, k: null, v, options: {}, made: [v] };
  },
  'keyLength of wrong count': (c) => ({ q: null, k: null, v: null, options: { keyLength: new Array(c.batch + 1).fill(0) }, made: [] }),
  'keyLength past m': (c) => ({ q: null, k: null, v: null, options: { keyLength: new Array(c.batch).fill(c.m + 1) }, made: [] }),
  'keyLength float tensor': (c) => {
    const kl = tf.zeros([c.batch]);
    return { q: null, k: null, v: null, options: { keyLength: kl }, made: [kl] };
  },
  'unknown implementation': () => ({ q: null, k: null, v: null, options: { implementation: 'fast' }, made: [] }),
  'unknown option': () => ({ q: null, k: null, v: null, options: { keyLengths: [1] }, made: [] }),
  'q not a tensor': () => ({ q: [[1]], k: null, v: null, options: {}, made: [] }),
};

describe.each(backends)('backend %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
  });

  for (const entry of catalog) {
    const spec = specs[entry.id];
    if (!spec) continue;

    describe(entry.id, () => {
      it('equals its float64 reference (DESIGN.md definition)', async () => {
        await fc.assert(
          fc.asyncProperty(spec.cases, async (c) => {
            const attn = spec.make(c.config);
            const x = makeInputs(c);
            try {
              const [qh, kh, vh] = await Promise.all([toHost(x.q), toHost(x.k), toHost(x.v)]);
              const got = await runCase(attn, x, c);
              const want = spec.reference(qh, kh, vh, c);
              expect(got.shape).toEqual(want.shape);
              const err = maxAbsDiff(got.data, want.data);
              expect(err, describeCase(c)).toBeLessThan(TOL);
            } finally {
              x.dispose();
              attn.dispose();
            }
          }),
          { numRuns: RUNS },
        );
      });

      // Variants with no causal form (spec.nonCausal) have no causal cases to perturb.
      if (!spec.nonCausal) it('never looks ahead when causal (future keys perturbed, past rows unchanged)', async () => {
        const causalCases = spec.cases.filter((c) => spec.causal(c));
        await fc.assert(
          fc.asyncProperty(causalCases, fc.nat(), async (c, cutSeed) => {
            const attn = spec.make(c.config);
            const x = makeInputs(c);
            const t = cutSeed % c.n; // rows i <= t see keys j <= p_t = t + m - n only
            const pt = t + c.m - c.n;
            const keep = (shape: [number, number, number, number]) =>
              tf.tidy(() => {
                const j = tf.reshape(tf.range(0, c.m, 1, 'int32'), [1, 1, c.m, 1]);
                return tf.broadcastTo(tf.cast(tf.lessEqual(j, tf.scalar(pt, 'int32')), 'float32'), shape);
              });
            const perturb = (orig: tf.Tensor4D, seed: number) =>
              tf.tidy(() => {
                const mask = keep(orig.shape);
                const noise = seededTensor(orig.shape, seed, 3);
                return tf.add(tf.mul(orig, mask), tf.mul(noise, tf.sub(1, mask))) as tf.Tensor4D;
              });
            // Entries that route on keys (lsh's shared-QK hashing, routing's per-cluster top-w):
            // future keys decide which past keys a query attends; what causality promises there is
            // that no future value reaches a past row (VariantSpec.routesOnKeys).
            const k2 = spec.routesOnKeys ? x.k : perturb(x.k, c.seed + 7);
            const v2 = perturb(x.v, c.seed + 8);
            try {
              const a = await runCase(attn, x, c);
              const b = await runCase(attn, { q: x.q, k: k2, v: v2, dispose() {} }, c);
              if (k2 === x.k && !spec.routesOnKeys) throw new Error('internal: keys not perturbed');
              const dv = c.dv;
              for (let bb = 0; bb < c.batch; bb++)
                for (let h = 0; h < c.heads; h++)
                  for (let i = 0; i <= t; i++) {
                    const o = ((bb * c.heads + h) * c.n + i) * dv;
                    const diff = maxAbsDiff(a.data.subarray(o, o + dv), b.data.subarray(o, o + dv));
                    expect(diff, `row ${i} (cut ${t}) ${describeCase(c)}`).toBe(0);
                  }
            } finally {
              x.dispose();
              if (k2 !== x.k) k2.dispose();
              v2.dispose();
              attn.dispose();
            }
          }),
          { numRuns: Math.max(4, Math.floor(RUNS / 2)) },
        );
      });

      if (spec.convexCombination) it('attention weights of each row are a distribution (v = identity)', async () => {
        await fc.assert(
          fc.asyncProperty(spec.cases, async (c0) => {
            const c = { ...c0, dv: c0.m };
            const attn = spec.make(c.config);
            const x = makeInputs(c);
            const eye = tf.tidy(() => tf.broadcastTo(tf.reshape(tf.eye(c.m), [1, 1, c.m, c.m]), [c.batch, c.kvHeads, c.m, c.m]) as tf.Tensor4D);
            try {
              const w = await runCase(attn, { q: x.q, k: x.k, v: eye, dispose() {} }, c);
              for (let r = 0; r < c.batch * c.heads * c.n; r++) {
                const row = w.data.subarray(r * c.m, (r + 1) * c.m);
                let sum = 0;
                for (const p of row) {
                  expect(p).toBeGreaterThanOrEqual(-1e-6);
                  sum += p;
                }
                const isEmpty = Math.abs(sum) < 1e-6;
                if (!isEmpty) expect(Math.abs(sum - 1), `row ${r} sums to ${sum}; ${describeCase(c)}`).toBeLessThan(1e-5);
              }
            } finally {
              x.dispose();
              eye.dispose();
              attn.dispose();
            }
          }),
          { numRuns: Math.max(4, Math.floor(RUNS / 2)) },
        );
      });

      if (spec.steps) it('segments stepped from initState equal the float64 recurrence over the concatenated sequence', async () => {
        const steps = spec.steps!;
        type Stateful = { initState(batch: number): unknown; step(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, state: unknown): { output: tf.Tensor4D; state: unknown } };
        const free = (s: unknown) => {
          const st = s as { dispose?: () => void; k?: tf.Tensor; v?: tf.Tensor };
          if (st.dispose) st.dispose();
          else [st.k, st.v].forEach((t) => t?.dispose());
        };
        await fc.assert(
          fc.asyncProperty(spec.cases, fc.integer({ min: 3, max: 4 }), async (c0, count) => {
            const c = steps.segment(c0);
            const attn = spec.make(c.config) as unknown as Stateful & { dispose(): void };
            const segs = Array.from({ length: count }, (_, s) => makeInputs({ ...c, seed: c.seed + 17 * s }));
            try {
              const hosts = await Promise.all(segs.map(async (x) => ({ q: await toHost(x.q), k: await toHost(x.k), v: await toHost(x.v) })));
              const want = steps.reference(hosts, c);
              let state = attn.initState(c.batch);
              for (let s = 0; s < count; s++) {
                const r = await withGpuErrorScope(async () => attn.step(segs[s].q, segs[s].k, segs[s].v, state));
                state = r.state;
                const got = await toHost(r.output);
                r.output.dispose();
                expect(maxAbsDiff(got.data, want[s].data), `segment ${s}: ${describeCase(c)}`).toBeLessThan(TOL);
              }
              free(state);
            } finally {
              segs.forEach((x) => x.dispose());
              attn.dispose();
            }
          }),
          { numRuns: Math.max(4, Math.floor(RUNS / 2)) },
        );
      });

      it('leaks no tensor (numTensors after = before + output)', async () => {
        await fc.assert(
          fc.asyncProperty(spec.cases, async (c) => {
            const attn = spec.make(c.config);
            const x = makeInputs(c);
            try {
              const before = tf.memory().numTensors;
              const out = await withGpuErrorScope(() =>
                attn.apply(x.q, x.k, x.v, c.keyLength ? { keyLength: c.keyLength } : {}),
              );
              expect(tf.memory().numTensors).toBe(before + 1);
              out.dispose();
              expect(tf.memory().numTensors).toBe(before);
            } finally {
              x.dispose();
              attn.dispose();
            }
          }),
          { numRuns: RUNS },
        );
      });

      it('throws AttentionError for bad input, before any dispatch, leaking nothing', async () => {
        await fc.assert(
          fc.asyncProperty(spec.cases, fc.constantFrom(...Object.keys(mutations)), async (c, which) => {
            const attn = spec.make(c.config);
            const x = makeInputs(c);
            const bad = mutations[which](c);
            try {
              expectRefused(() => attn.apply((bad.q ?? x.q) as tf.Tensor4D, (bad.k ?? x.k) as tf.Tensor4D, (bad.v ?? x.v) as tf.Tensor4D, bad.options as never), `${which}: ${describeCase(c)}`);
            } finally {
              bad.made.forEach((t) => t.dispose());
              x.dispose();
              attn.dispose();
            }
          }),
          { numRuns: RUNS * 2 },
        );
      });

      it('rejects invalid configs with AttentionError', () => {
        fc.assert(
          fc.property(spec.badConfigs, (config) => {
            let thrown: unknown = null;
            try {
              const attn = spec.make(config);
              // A config that is only invalid against a shape (e.g. groups vs heads) throws at apply.
              const c = { config, batch: 1, heads: Number(config.heads ?? 2), kvHeads: 1, n: 4, m: 4, d: 4, dv: 4, keyLength: null, seed: 1 };
              const x = makeInputs(c);
              try {
                attn.apply(x.q, x.k, x.v).dispose();
              } finally {
                x.dispose();
              }
            } catch (e) {
              thrown = e;
            }
            expect(thrown, JSON.stringify(config)).toBeInstanceOf(AttentionError);
          }),
          { numRuns: RUNS },
        );
      });

      if (backend === 'webgpu' && spec.fused) it('fused kernel == composite on the same inputs', async () => {
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
    });
  }
});
