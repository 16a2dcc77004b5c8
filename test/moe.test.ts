/**
 * `attention-catalog/moe` on every backend (cpu, wasm, webgpu): the routers equal the float64
 * reference of DESIGN.md's rules (slots, drops, gates, load, both losses) for random T, E, k, C,
 * policies, priorities and masks; capacity is never exceeded; batch-priority routing never drops
 * a choice of higher priority than one it keeps (same expert and rank); dropless drops nothing;
 * task routing sends every token of a task to `expertsFor(task)`; `moeLayer` equals the float64
 * reference (relu and gelu; plain, residual and coefficient forms) and its gradients equal
 * finite differences of it; memory grows linearly in T; bad input is refused before any dispatch;
 * nothing leaks.
 */
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
// tfjs-core registers no op gradients by itself.
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { measureIntermediateBytes } from '../src/core/measure.js';
import { moeLayer, taskRouter, topKRouter, type MoELayerConfig, type TopKRoute } from '../src/moe/index.js';
import { setupBackends, useBackend, withGpuErrorScope } from './backends.js';
import { disposeDeep, expectRefused } from './expect.js';
import { referenceMoE, referenceRoute, topK, type RefAct, type RefRules, type RefWeights } from './moe-reference.js';

const backends = await setupBackends();
const RUNS = Number(process.env.FC_RUNS ?? 25);

/** A small deterministic generator for test data (independent of the library's). */
function lcg(seed: number) {
  let s = (seed * 2654435761) >>> 0 || 1;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}
/** Multiples of `step` in [-amp, amp]: float32 products and sums of them are exact (ties are real ties). */
const dyadic = (r: () => number, amp: number, step: number) => Math.round(((r() * 2 - 1) * amp) / step) * step;
const matrix = (r: () => number, rows: number, cols: number, f: () => number) => Array.from({ length: rows }, () => Array.from({ length: cols }, f));

interface RouteCase {
  T: number;
  d: number;
  rules: RefRules;
  x: number[][];
  W: number[][];
  mask: number[] | null;
}

const C_VALUES = [0, 0.25, 0.5, 0.75, 1, 1.25, 2];
const routeCase = fc
  .record({
    T: fc.integer({ min: 1, max: 40 }),
    E: fc.integer({ min: 1, max: 8 }),
    k: fc.integer({ min: 1, max: 3 }),
    d: fc.integer({ min: 1, max: 6 }),
    c: fc.integer({ min: 0, max: C_VALUES.length - 1 }),
    policy: fc.constantFrom('natural' as const, 'batch-priority' as const),
    priority: fc.constantFrom('max' as const, 'sum' as const),
    normalize: fc.option(fc.boolean(), { nil: undefined }),
    pool: fc.integer({ min: 1, max: 8 }),
    masked: fc.boolean(),
    seed: fc.integer({ min: 1, max: 1 << 30 }),
  })
  .map((g): RouteCase => {
    const r = lcg(g.seed);
    const k = Math.min(g.k, g.E);
    // Rows from a small pool: equal rows give equal priorities, so the position tie-break is exercised.
    const pool = matrix(r, g.pool, g.d, () => dyadic(r, 2, 0.25));
    const x = Array.from({ length: g.T }, () => pool[Math.floor(r() * g.pool)].slice());
    const W = matrix(r, g.d, g.E, () => dyadic(r, 1, 0.25));
    const mask = g.masked ? Array.from({ length: g.T }, () => (r() < 0.75 ? 1 : 0)) : null;
    return { T: g.T, d: g.d, x, W, mask, rules: { experts: g.E, k, capacityFactor: C_VALUES[g.c], policy: g.policy, priority: g.priority, normalize: g.normalize ?? k > 1 } };
  });

/** False where float32 and float64 may order two priorities differently (unequal, within 1e-5, from different rows). */
function separated(c: RouteCase, priority: number[]): boolean {
  for (let a = 0; a < c.T; a++)
    for (let b = a + 1; b < c.T; b++) {
      const diff = Math.abs(priority[a] - priority[b]);
      if (diff > 0 && diff < 1e-5) return false;
      if (diff === 0 && c.x[a].some((v, i) => v !== c.x[b][i])) {
        // Equal in float64 from different rows: float32 may break the tie the other way.
        if (!(c.mask && (c.mask[a] === 0 || c.mask[b] === 0))) return false;
      }
    }
  return true;
}

async function hostRoute(r: TopKRoute) {
  return {
    expert: (await r.expert.array()) as number[][],
    slot: (await r.slot.array()) as number[][],
    gate: (await r.gate.array()) as number[][],
    load: (await r.load.array()) as number[],
    capacity: r.capacity,
    auxLoss: (await r.auxLoss.data())[0],
    zLoss: (await r.zLoss.data())[0],
  };
}

const routerConfig = (c: RouteCase) => ({ ...c.rules, weights: c.W });

describe.each(backends)('moe on %s', (backend) => {
  beforeAll(() => useBackend(backend));

  it('topKRouter equals the float64 reference: experts, slots, drops, gates, load, capacity, auxLoss, zLoss; capacity never exceeded', async () => {
    await fc.assert(
      fc.asyncProperty(routeCase, async (c) => {
        const ref = referenceRoute(c.x, c.W, c.rules, c.mask);
        fc.pre(separated(c, ref.priority));
        const router = topKRouter(routerConfig(c));
        const x = tf.tensor2d(c.x, [c.T, c.d]);
        const before = tf.memory().numTensors;
        try {
          const opts = c.mask ? { mask: c.mask } : undefined;
          // Dropless needs the largest load on the host: synchronous reads do not exist on webgpu in Node.
          const r = await withGpuErrorScope(() => (backend === 'webgpu' && c.rules.capacityFactor === 0 ? router.routeAsync(x, opts) : router.route(x, opts)));
          expect(tf.memory().numTensors - before, 'route: 6 tensors out, nothing else').toBe(6);

          const got = await hostRoute(r);
          disposeDeep(r);
          const label = JSON.stringify({ rules: c.rules, T: c.T, mask: c.mask });
          expect(got.capacity, label).toBe(ref.capacity);
          expect(got.expert, label).toEqual(ref.expert);
          expect(got.slot, label).toEqual(ref.slot);
          expect(got.load, label).toEqual(ref.load);
          for (let t = 0; t < c.T; t++) for (let q = 0; q < c.rules.k; q++) expect(Math.abs(got.gate[t][q] - ref.gate[t][q]), label).toBeLessThan(1e-5);
          expect(Math.abs(got.auxLoss - ref.auxLoss), label).toBeLessThan(1e-4 * (1 + ref.auxLoss));
          expect(Math.abs(got.zLoss - ref.zLoss), label).toBeLessThan(1e-4 * (1 + ref.zLoss));
          // Capacity: each expert's kept slots are exactly 0 … load − 1, once each.
          for (let e = 0; e < c.rules.experts; e++) {
            const slots = got.slot.flatMap((row, t) => row.filter((s, q) => s >= 0 && got.expert[t][q] === e));
            expect(slots.length, label).toBeLessThanOrEqual(got.capacity);
            expect(slots.sort((a, b) => a - b), label).toEqual(Array.from({ length: slots.length }, (_, i) => i));
          }
        } finally {
          x.dispose();
          router.dispose();
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('batch-priority routing: no dropped choice has a higher priority than a kept one (same expert, same rank); dropless drops nothing', async () => {
    await fc.assert(
      fc.asyncProperty(routeCase, fc.boolean(), async (c0, dropless) => {
        const c = { ...c0, rules: { ...c0.rules, policy: 'batch-priority' as const, capacityFactor: dropless ? 0 : c0.rules.capacityFactor } };
        const ref = referenceRoute(c.x, c.W, c.rules, c.mask);
        fc.pre(separated(c, ref.priority));
        const router = topKRouter(routerConfig(c));
        const x = tf.tensor2d(c.x, [c.T, c.d]);
        try {
          const r = await withGpuErrorScope(() => router.routeAsync(x, c.mask ? { mask: c.mask } : undefined));
          const got = await hostRoute(r);
          disposeDeep(r);
          const real = (t: number) => !c.mask || c.mask[t] === 1;
          for (let e = 0; e < c.rules.experts; e++)
            for (let q = 0; q < c.rules.k; q++) {
              const kept: number[] = [];
              const dropped: number[] = [];
              for (let t = 0; t < c.T; t++) if (real(t) && got.expert[t][q] === e) (got.slot[t][q] >= 0 ? kept : dropped).push(ref.priority[t]);
              if (kept.length && dropped.length) expect(Math.max(...dropped)).toBeLessThanOrEqual(Math.min(...kept));
            }
          if (dropless) for (let t = 0; t < c.T; t++) if (real(t)) expect(got.slot[t].every((s) => s >= 0), `token ${t}`).toBe(true);
        } finally {
          x.dispose();
          router.dispose();
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('padding tokens are never routed, never use capacity, and what they hold (NaN) reaches nothing', async () => {
    const c = { T: 12, d: 3 };
    const mask = [1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 0];
    const r = lcg(9);
    const xs = matrix(r, c.T, c.d, () => dyadic(r, 2, 0.25));
    const W = matrix(r, c.d, 4, () => dyadic(r, 1, 0.25));
    const poisoned = xs.map((row, t) => (mask[t] ? row : row.map(() => NaN)));
    const router = topKRouter({ experts: 4, k: 2, capacityFactor: 1, weights: W });
    const moe = moeLayer({ experts: 4, k: 2, weights: W, hidden: 5, residual: true });
    const a = tf.tensor2d(xs);
    const b = tf.tensor2d(poisoned);
    try {
      const ra = await hostRoute(router.route(a, { mask }));
      const rb = router.route(b, { mask });
      const hb = await hostRoute(rb);
      disposeDeep(rb);
      expect(hb).toEqual(ra);
      for (let t = 0; t < c.T; t++) if (!mask[t]) expect({ e: hb.expert[t], s: hb.slot[t], g: hb.gate[t] }).toEqual({ e: [0, 0], s: [-1, -1], g: [0, 0] });
      expect(hb.capacity).toBe(Math.ceil((2 * 1 * 8) / 4));
      const ya = moe.apply(a, { mask });
      const yb = moe.apply(b, { mask });
      const [da, db] = [await ya.data(), await yb.data()];
      expect(Array.from(db)).toEqual(Array.from(da));
      for (let t = 0; t < c.T; t++) if (!mask[t]) for (let i = 0; i < c.d; i++) expect(Object.is(db[t * c.d + i], 0), 'padding output is +0').toBe(true);
      tf.dispose([ya, yb]);
    } finally {
      tf.dispose([a, b]);
      router.dispose();
      moe.dispose();
    }
  });

  it('taskRouter: every token of a task goes to expertsFor(task); slots, gates and load equal the reference', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({ T: fc.integer({ min: 1, max: 40 }), E: fc.integer({ min: 1, max: 8 }), k: fc.integer({ min: 1, max: 3 }), tasks: fc.integer({ min: 1, max: 5 }), c: fc.integer({ min: 0, max: C_VALUES.length - 1 }), masked: fc.boolean(), tensorIds: fc.boolean(), seed: fc.integer({ min: 1, max: 1 << 30 }) }),
        async (g) => {
          const r = lcg(g.seed);
          const k = Math.min(g.k, g.E);
          const weights = matrix(r, g.tasks, g.E, () => dyadic(r, 2, 0.25));
          const ids = Array.from({ length: g.T }, () => Math.floor(r() * g.tasks));
          const mask = g.masked ? Array.from({ length: g.T }, () => (r() < 0.75 ? 1 : 0)) : null;
          const C = C_VALUES[g.c];
          const router = taskRouter({ experts: g.E, k, tasks: g.tasks, capacityFactor: C, weights });
          // Reference: per task its top-k of softmax(weights[t]); natural order, rank by rank.
          const probs = weights.map((w) => {
            const ex = w.map((v) => Math.exp(v - Math.max(...w)));
            const s = ex.reduce((a, b) => a + b, 0);
            return ex.map((v) => v / s);
          });
          const choice = probs.map((p) => topK(p, k));
          const real = (t: number) => !mask || mask[t] === 1;
          const Treal = ids.filter((_, t) => real(t)).length;
          const counts = new Array(g.E).fill(0);
          ids.forEach((task, t) => real(t) && choice[task].forEach((e) => counts[e]++));
          const capacity = C === 0 ? Math.max(0, ...counts) : Math.max(0, Math.ceil((k * C * Treal) / g.E - 1e-9));
          const load = new Array(g.E).fill(0);
          const slot = ids.map(() => new Array(k).fill(-1));
          for (let q = 0; q < k; q++) for (let t = 0; t < g.T; t++) if (real(t) && load[choice[ids[t]][q]] < capacity) slot[t][q] = load[choice[ids[t]][q]]++;
          const x = tf.zeros([g.T, 2]);
          const idTensor = g.tensorIds ? tf.tensor1d(ids, 'int32') : null;
          try {
            for (let t = 0; t < g.tasks; t++) expect(router.expertsFor(t)).toEqual(choice[t]);
            const route = backend === 'webgpu' && idTensor ? await router.routeAsync(x, idTensor, mask ? { mask } : undefined) : router.route(x, idTensor ?? ids, mask ? { mask } : undefined);
            const expert = (await route.expert.array()) as number[][];
            const gotSlot = (await route.slot.array()) as number[][];
            const gate = (await route.gate.array()) as number[][];
            expect(route.capacity).toBe(capacity);
            expect(gotSlot).toEqual(slot);
            expect(Array.from(await route.load.data())).toEqual(load);
            for (let t = 0; t < g.T; t++) {
              if (!real(t)) continue;
              expect(expert[t]).toEqual(router.expertsFor(ids[t]));
              const chosen = choice[ids[t]].map((e) => probs[ids[t]][e]);
              const norm = k > 1 ? chosen.reduce((a, b) => a + b, 0) : 1;
              for (let q = 0; q < k; q++) expect(Math.abs(gate[t][q] - (slot[t][q] >= 0 ? chosen[q] / norm : 0))).toBeLessThan(1e-6);
            }
            disposeDeep(route);
          } finally {
            tf.dispose([x, ...(idTensor ? [idTensor] : [])]);
            router.dispose();
          }
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('moeLayer equals the float64 reference (relu and gelu; plain, residual and coefficient forms; masks; explicit weights)', async () => {
    await fc.assert(
      fc.asyncProperty(routeCase, fc.constantFrom<RefAct>('relu', 'gelu'), fc.constantFrom('none' as const, 'add' as const, 'coefficient' as const), fc.integer({ min: 1, max: 6 }), async (c, act, residual, hidden) => {
        const ref = referenceRoute(c.x, c.W, c.rules, c.mask);
        fc.pre(separated(c, ref.priority));
        const r = lcg(c.T * 7 + hidden);
        const E = c.rules.experts;
        const n = () => (r() * 2 - 1) * 1.5;
        const w: RefWeights = {
          router: c.W,
          w1: Array.from({ length: E }, () => matrix(r, c.d, hidden, n)),
          b1: matrix(r, E, hidden, n),
          w2: Array.from({ length: E }, () => matrix(r, hidden, c.d, n)),
          b2: matrix(r, E, c.d, n),
          rw1: matrix(r, c.d, hidden, n),
          rb1: Array.from({ length: hidden }, n),
          rw2: matrix(r, hidden, c.d, n),
          rb2: Array.from({ length: c.d }, n),
          coefficient: matrix(r, c.d, 2, n),
        };
        const config: MoELayerConfig = {
          ...c.rules,
          weights: w.router,
          activation: act,
          expertWeights: { w1: w.w1, b1: w.b1, w2: w.w2, b2: w.b2 },
          ...(residual !== 'none' ? { residual: true, residualWeights: { w1: w.rw1!, b1: w.rb1!, w2: w.rw2!, b2: w.rb2! } } : {}),
          ...(residual === 'coefficient' ? { residualCoefficient: true, coefficientWeights: w.coefficient! } : {}),
        };
        const moe = moeLayer(config);
        const x = tf.tensor2d(c.x, [c.T, c.d]);
        const before = tf.memory().numTensors;
        try {
          const y = await withGpuErrorScope(() => (c.rules.capacityFactor === 0 && backend === 'webgpu' ? moe.applyAsync(x, c.mask ? { mask: c.mask } : undefined) : moe.apply(x, c.mask ? { mask: c.mask } : undefined)));
          expect(tf.memory().numTensors - before, 'apply: one tensor out').toBe(1);
          const got = await y.data();
          y.dispose();
          const want = referenceMoE(c.x, w, ref, act, residual, c.mask).flat();
          const scale = Math.max(1, ...want.map(Math.abs));
          for (let i = 0; i < want.length; i++) expect(Math.abs(got[i] - want[i]), `${JSON.stringify(c.rules)} ${act} ${residual} @${i}`).toBeLessThan(2e-5 * scale * (1 + hidden));
        } finally {
          x.dispose();
          moe.dispose();
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('moeLayer with 128+ rows per expert (wasm runs its experts as E 2-D matmuls from there) equals the float64 reference, and so do its gradients of x', async () => {
    const r = lcg(21);
    const T = 256, d = 4, E = 2, h = 8;
    const n = () => (r() * 2 - 1) * 1.2;
    const xs = matrix(r, T, d, () => dyadic(r, 2, 0.25));
    const w: RefWeights = { router: matrix(r, d, E, () => dyadic(r, 1, 0.25)), w1: [matrix(r, d, h, n), matrix(r, d, h, n)], b1: matrix(r, E, h, n), w2: [matrix(r, h, d, n), matrix(r, h, d, n)], b2: matrix(r, E, d, n) };
    const rules: RefRules = { experts: E, k: 1, capacityFactor: 1.25, policy: 'natural', priority: 'max', normalize: false };
    const ref = referenceRoute(xs, w.router, rules, null);
    expect(ref.capacity).toBeGreaterThanOrEqual(128);
    const moe = moeLayer({ ...rules, weights: w.router, expertWeights: { w1: w.w1, b1: w.b1, w2: w.w2, b2: w.b2 } });
    const x = tf.tensor2d(xs);
    try {
      const y = await withGpuErrorScope(() => moe.apply(x));
      const got = await y.data();
      y.dispose();
      const want = referenceMoE(xs, w, ref, 'relu', 'none', null).flat();
      for (let i = 0; i < want.length; i++) expect(Math.abs(got[i] - want[i]), `@${i}`).toBeLessThan(1e-4 * (1 + Math.abs(want[i])));
      // d(Σ y)/dx through the experts: the sum over kept tokens of gate·W1ᵀ·relu'·W2·1 — compared with the batched path's (cpu) on every backend via the float64 reference route.
      const g = tf.grad((xx: tf.Tensor) => tf.sum(moe.apply(xx)))(x);
      const gx = await g.data();
      g.dispose();
      const loss = (xx: number[][]) => referenceMoE(xx, w, referenceRoute(xx, w.router, rules, null, { expert: ref.expert, slot: ref.slot }), 'relu', 'none', null).flat().reduce((a, b) => a + b, 0);
      for (const i of [0, 5, 77, 130, 255 * d + 3]) {
        const [t, c] = [Math.floor(i / d), i % d];
        const keep = xs[t][c];
        xs[t][c] = keep + 1e-6;
        const a = loss(xs);
        xs[t][c] = keep - 1e-6;
        const b = loss(xs);
        xs[t][c] = keep;
        expect(Math.abs(gx[i] - (a - b) / 2e-6), `dx @${i}`).toBeLessThan(2e-3 * (1 + Math.abs((a - b) / 2e-6)));
      }
    } finally {
      x.dispose();
      moe.dispose();
    }
  });

  it('gradients (x, router weights through the gates and both losses, experts, residual branch, coefficient) equal finite differences of the float64 reference', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 1 << 30 }), fc.constantFrom<RefAct>('relu', 'gelu'), fc.constantFrom('add' as const, 'coefficient' as const, 'none' as const), fc.constantFrom('natural' as const, 'batch-priority' as const), async (seed, act, residual, policy) => {
        const r = lcg(seed);
        const T = 8, d = 3, E = 3, h = 4, k = 2;
        const n = () => (r() * 2 - 1) * 1.2;
        const x0 = matrix(r, T, d, n);
        const w0: RefWeights = {
          router: matrix(r, d, E, n),
          w1: Array.from({ length: E }, () => matrix(r, d, h, n)),
          b1: matrix(r, E, h, n),
          w2: Array.from({ length: E }, () => matrix(r, h, d, n)),
          b2: matrix(r, E, d, n),
          rw1: matrix(r, d, h, n),
          rb1: Array.from({ length: h }, n),
          rw2: matrix(r, h, d, n),
          rb2: Array.from({ length: d }, n),
          coefficient: matrix(r, d, 2, n),
        };
        const R = matrix(r, T, d, n);
        const mask = [1, 1, 1, 0, 1, 1, 1, 1];
        const rules: RefRules = { experts: E, k, capacityFactor: 1, policy, priority: 'max', normalize: true };
        const base = referenceRoute(x0, w0.router, rules, mask);
        // Stay away from decisions float32 could take otherwise: top-k gaps and priority gaps.
        for (let t = 0; t < T; t++) {
          if (!mask[t]) continue;
          const s = base.p[t].slice().sort((a, b) => b - a);
          fc.pre(s[k - 1] - s[k] > 1e-3);
          for (let u = t + 1; u < T; u++) if (mask[u]) fc.pre(Math.abs(base.priority[t] - base.priority[u]) > 1e-4);
        }
        const loss = (x: number[][], w: RefWeights) => {
          const route = referenceRoute(x, w.router, rules, mask, { expert: base.expert, slot: base.slot });
          const y = referenceMoE(x, w, route, act, residual, mask);
          return y.reduce((s, row, t) => s + row.reduce((a, v, i) => a + v * R[t][i], 0), 0) + 0.3 * route.auxLoss + 0.2 * route.zLoss;
        };
        const moe = moeLayer({
          ...rules,
          weights: w0.router,
          activation: act,
          expertWeights: { w1: w0.w1, b1: w0.b1, w2: w0.w2, b2: w0.b2 },
          ...(residual !== 'none' ? { residual: true, residualWeights: { w1: w0.rw1!, b1: w0.rb1!, w2: w0.rw2!, b2: w0.rb2! } } : {}),
          ...(residual === 'coefficient' ? { residualCoefficient: true, coefficientWeights: w0.coefficient! } : {}),
          trainable: true,
        });
        const x = tf.variable(tf.tensor2d(x0));
        const Rt = tf.tensor2d(R);
        try {
          const got = await withGpuErrorScope(async () => {
            const { value, grads } = tf.variableGrads(() => {
              const o = moe.forward(x, { mask });
              disposeDeep(o.route);
              return tf.addN([tf.sum(tf.mul(o.output, Rt)), tf.mul(o.auxLoss, 0.3), tf.mul(o.zLoss, 0.2)]) as tf.Scalar;
            }, [x, ...moe.variables]);
            const out: Record<string, number[]> = {};
            for (const [name, g] of Object.entries(grads)) out[name] = Array.from(await g.data());
            tf.dispose([value, ...Object.values(grads)]);
            return out;
          });
          // Finite differences of the reference, per parameter (route frozen at the base point).
          const eps = 1e-6;
          const fd = (get: () => number, set: (v: number) => void, rebuild: () => number) => {
            const v = get();
            set(v + eps);
            const a = rebuild();
            set(v - eps);
            const b = rebuild();
            set(v);
            return (a - b) / (2 * eps);
          };
          const check = (name: string, arr: number[][] | number[], g: number[] | undefined) => {
            expect(g, `gradient of ${name}`).toBeDefined();
            const flat: [number[], number][] = Array.isArray(arr[0]) ? (arr as number[][]).flatMap((row) => row.map((_, i) => [row, i] as [number[], number])) : (arr as number[]).map((_, i) => [arr as number[], i] as [number[], number]);
            flat.forEach(([row, i], j) => {
              const want = fd(() => row[i], (v) => (row[i] = v), () => loss(x0, w0));
              expect(Math.abs(g![j] - want), `${name}[${j}] ${act} ${residual} ${policy}: ${g![j]} vs ${want}`).toBeLessThan(2e-3 * (1 + Math.abs(want)));
            });
          };
          const names = Object.keys(moe.weights);
          const gradOf = (v: tf.Variable) => got[v.name];
          check('x', x0, gradOf(x));
          check('router', w0.router, gradOf(moe.weights.router));
          w0.w1.forEach((m, e) => check(`w1[${e}]`, m, gradOf(moe.weights.w1)?.slice(e * d * h, (e + 1) * d * h)));
          check('b1', w0.b1, gradOf(moe.weights.b1));
          w0.w2.forEach((m, e) => check(`w2[${e}]`, m, gradOf(moe.weights.w2)?.slice(e * h * d, (e + 1) * h * d)));
          check('b2', w0.b2, gradOf(moe.weights.b2));
          if (residual !== 'none') {
            check('rw1', w0.rw1!, gradOf(moe.weights.rw1));
            check('rb1', w0.rb1!, gradOf(moe.weights.rb1));
            check('rw2', w0.rw2!, gradOf(moe.weights.rw2));
            check('rb2', w0.rb2!, gradOf(moe.weights.rb2));
          }
          if (residual === 'coefficient') check('coefficient', w0.coefficient!, gradOf(moe.weights.coefficient));
          expect(names.length).toBe(residual === 'none' ? 5 : residual === 'add' ? 9 : 10);
        } finally {
          tf.dispose([x, Rt]);
          moe.dispose();
        }
      }),
      { numRuns: Math.max(4, Math.floor(RUNS / 4)) },
    );
  });

  it('the memory of apply grows linearly in T at fixed E and C (T → 4T: ≈ 4×), and nothing leaks', async () => {
    const moe = moeLayer({ experts: 8, k: 2, capacityFactor: 1.25, dim: 32, hidden: 64, residual: true });
    const bytes: number[] = [];
    try {
      for (const T of [512, 2048]) {
        const x = tf.randomNormal([T, 32], 0, 1, 'float32', 5);
        moe.apply(x).dispose(); // warm-up (pipelines, pooled buffers)
        const before = tf.memory().numTensors;
        const m = await withGpuErrorScope(() => measureIntermediateBytes(() => moe.apply(x)));
        m.result.dispose();
        expect(tf.memory().numTensors).toBe(before);
        bytes.push(m.bytes);
        x.dispose();
      }
      const growth = bytes[1] / bytes[0];
      expect(growth, `bytes ${bytes.join(' → ')}`).toBeGreaterThan(3);
      expect(growth, `bytes ${bytes.join(' → ')}`).toBeLessThan(5.5);
      // Never a [T, E, capacity] tensor: at T = 2048 that alone would be 2048·8·640·4 bytes.
      expect(bytes[1]).toBeLessThan(2048 * 8 * 640 * 4);
    } finally {
      moe.dispose();
    }
  });

  it('bad configs and inputs throw AttentionError before any dispatch, leaking nothing', () => {
    const W = [[1, 0, 0], [0, 1, 0]];
    const bad: [string, () => unknown, RegExp][] = [
      ['k > E', () => topKRouter({ experts: 3, k: 4, weights: W }), /config\.k/],
      ['C < 0', () => topKRouter({ experts: 3, capacityFactor: -0.5, weights: W }), /capacityFactor/],
      ['bad policy', () => topKRouter({ experts: 3, policy: 'random' as never, weights: W }), /policy/],
      ['bad priority', () => topKRouter({ experts: 3, priority: 'min' as never, weights: W }), /priority/],
      ['weights of the wrong width', () => topKRouter({ experts: 4, weights: W }), /weights/],
      ['no weights and no dim', () => topKRouter({ experts: 4 }), /dim/],
      ['unknown key', () => topKRouter({ experts: 3, weights: W, capacity: 2 } as never), /capacity/],
      ['expert weights of the wrong shape', () => moeLayer({ experts: 3, dim: 2, hidden: 4, expertWeights: { w1: [[[1]]], w2: [[[1]]] } }), /expertWeights\.w1/],
      ['residual weights without residual', () => moeLayer({ experts: 3, dim: 2, hidden: 1, residualWeights: { w1: [[1], [1]], w2: [[1, 1]] } }), /residualWeights/],
      ['coefficient form without residual', () => moeLayer({ experts: 3, dim: 2, residual: false, residualCoefficient: true }), /residual/],
      ['bad activation', () => moeLayer({ experts: 3, dim: 2, activation: 'tanh' as never }), /activation/],
      ['taskRouter weights of the wrong shape', () => taskRouter({ experts: 3, tasks: 2, weights: [[1, 2, 3]] }), /weights/],
      ['taskRouter k > E', () => taskRouter({ experts: 2, k: 3, tasks: 2 }), /config\.k/],
    ];
    for (const [label, fn, arg] of bad) expectRefused(fn, label, arg);
    const router = topKRouter({ experts: 3, k: 2, weights: W });
    const tr = taskRouter({ experts: 3, tasks: 2 });
    const moe = moeLayer({ experts: 3, dim: 2, hidden: 3 });
    const x = tf.zeros([5, 2]);
    const x3 = tf.zeros([5, 3]);
    const xi = tf.zeros([5, 2], 'int32');
    const x1 = tf.zeros([2]);
    try {
      const calls: [string, () => unknown, RegExp][] = [
        ['x of the wrong model dim', () => router.route(x3), /^x$/],
        ['int32 x', () => router.route(xi), /^x$/],
        ['rank-1 x', () => router.route(x1), /^x$/],
        ['a mask of the wrong length', () => router.route(x, { mask: [1, 1, 0] }), /options\.mask/],
        ['a mask with a 2', () => router.route(x, { mask: [1, 1, 2, 0, 1] }), /options\.mask\[2\]/],
        ['an unknown option', () => router.route(x, { mask: [1, 1, 1, 1, 1], keyLength: 3 } as never), /options\.keyLength/],
        ['taskIds out of range', () => tr.route(x, [0, 1, 2, 0, 1]), /taskIds\[2\]/],
        ['taskIds of the wrong length', () => tr.route(x, [0, 1]), /taskIds/],
        ['negative task for expertsFor', () => tr.expertsFor(-1), /task/],
        ['moeLayer: x of the wrong dim', () => moe.apply(x3), /^x$/],
        ['moeLayer: a mask of the wrong length', () => moe.apply(x, { mask: [1] }), /options\.mask/],
      ];
      for (const [label, fn, arg] of calls) expectRefused(fn, label, arg);
      moe.dispose();
      expectRefused(() => moe.apply(x), 'a disposed moeLayer', /this/);
    } finally {
      tf.dispose([x, x3, xi, x1]);
      router.dispose();
    }
  });

  if (backend === 'webgpu')
    it('on webgpu in Node, what needs a synchronous read is refused before dispatch and the async forms give the same result', async () => {
      const r = lcg(3);
      const W = matrix(r, 4, 4, () => dyadic(r, 1, 0.25));
      const xs = matrix(r, 20, 4, () => dyadic(r, 2, 0.25));
      const router = topKRouter({ experts: 4, k: 2, capacityFactor: 0, weights: W });
      const x = tf.tensor2d(xs);
      const mask = tf.tensor1d(Array.from({ length: 20 }, (_, i) => (i % 5 ? 1 : 0)), 'int32');
      try {
        expectRefused(() => router.route(x), 'dropless route on webgpu', /capacityFactor/);
        const route = await router.routeAsync(x, { mask });
        const got = await hostRoute(route);
        disposeDeep(route);
        const ref = referenceRoute(xs, W, { experts: 4, k: 2, capacityFactor: 0, policy: 'natural', priority: 'max', normalize: true }, Array.from(await mask.data()));
        expect(got.slot).toEqual(ref.slot);
        expect(got.capacity).toBe(ref.capacity);
      } finally {
        tf.dispose([x, mask]);
        router.dispose();
      }
    });
});
