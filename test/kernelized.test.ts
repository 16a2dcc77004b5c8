/**
 * What the conformance and memory suites do not cover for `linear`, `performer`, `linformer` and
 * `adaptive-span`: the linear kernel's plan against the loop cap, incremental decode (state flat
 * over 1,000 steps, equal to a full recompute), FAVOR+ stability at large inputs, redraw and
 * explicit random features, Linformer's length and causality errors and padding rule, adaptive
 * span's gradients against finite differences, its span loss and the keys its kernel never
 * reads, non-causal memory growth, and causal linear attention at n = 65,536 on webgpu.
 */
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { AttentionError } from '../src/core/errors.js';
import { measureIntermediateBytes } from '../src/core/measure.js';
import { linearAttention, type KernelizedDecodeState } from '../src/variants/kernelized/linear.js';
import { performerAttention, randomFeatures } from '../src/variants/kernelized/performer.js';
import { linformerAttention } from '../src/variants/memory-saving/linformer.js';
import { adaptiveSpanAttention } from '../src/variants/adaptive/adaptive-span.js';
import { LLVMPIPE_LOOP_CAP } from '../kernels/shared/limits.js';
import { planLinear } from '../kernels/linear/plan.js';
import type { FeatureKind } from '../kernels/linear/feature_maps.js';
import { setupBackends, useBackend, withGpuErrorScope } from './backends.js';
import { RUNS, countDispatches, makeInputs } from './harness.js';
import { maxAbsDiff, referenceWeighted, seededTensor, toHost, type Host4 } from './reference.js';
import { logElu1, logFavor, referenceKernelized } from './specs/kernelized-reference.js';
import type { Case } from './specs/types.js';

const backends = await setupBackends();
const limits = { maxStorageBufferBindingSize: 128 << 20, maxBufferSize: 256 << 20, maxComputeWorkgroupsPerDimension: 65535, maxStorageBuffersPerShaderStage: 8 };

describe('linear-attention kernel plan', () => {
  it('keeps every pass of every invocation under the loop cap at every size it accepts', () => {
    fc.assert(
      fc.property(
        fc.record({
          batch: fc.integer({ min: 1, max: 4 }),
          heads: fc.constantFrom(1, 2, 8, 16),
          n: fc.integer({ min: 1, max: 1 << 22 }),
          m: fc.integer({ min: 1, max: 1 << 22 }),
          d: fc.integer({ min: 1, max: 256 }),
          dv: fc.integer({ min: 1, max: 256 }),
          kind: fc.constantFrom<FeatureKind>('elu+1', 'relu', 'favor-softmax', 'favor-relu'),
          features: fc.integer({ min: 1, max: 8192 }),
          causal: fc.boolean(),
        }),
        ({ kind, features, causal, ...p }) => {
          const dims = { ...p, kvHeads: 1, group: p.heads };
          const F = kind === 'elu+1' || kind === 'relu' ? p.d : features;
          let plan;
          try {
            plan = planLinear(dims, kind, F, causal, limits);
          } catch (e) {
            expect(e).toBeInstanceOf(AttentionError);
            return;
          }
          expect(plan.maxLoopIterations).toBeLessThanOrEqual(LLVMPIPE_LOOP_CAP);
          expect(plan.chunk * plan.chunks).toBeGreaterThanOrEqual(p.m);
          for (const bytes of [plan.featureBytes, plan.sumBytes, plan.stateBytes]) expect(bytes).toBeLessThanOrEqual(limits.maxStorageBufferBindingSize);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('carries states per chunk, not per position: O(n·F·dv/C) with C >= 64 for the default sizes', () => {
    const plan = planLinear({ batch: 1, heads: 1, kvHeads: 1, group: 1, n: 65536, m: 65536, d: 64, dv: 64 }, 'elu+1', 64, true, limits);
    expect(plan.chunk).toBe(64);
    expect(plan.stateBytes).toBe(1024 * 64 * 68 * 4);
  });

  it('throws AttentionError for an oversize problem or too many features', () => {
    expect(() => planLinear({ batch: 1, heads: 64, kvHeads: 64, group: 1, n: 1 << 16, m: 1 << 16, d: 128, dv: 128 }, 'relu', 128, true, limits)).toThrow(/binding limit/);
    expect(() => planLinear({ batch: 1, heads: 1, kvHeads: 1, group: 1, n: 8, m: 8, d: 8, dv: 8 }, 'favor-softmax', 100000, false, limits)).toThrow(AttentionError);
  });
});

/** q, k, v for one decode run: [1, 2, T, d] queries over one shared kv head. */
function sequence(T: number, d: number, dv: number, seed: number) {
  return { q: seededTensor([1, 2, T, d], seed), k: seededTensor([1, 1, T, d], seed + 1), v: seededTensor([1, 1, T, dv], seed + 2) };
}

describe.each(backends)('backend %s', (backend) => {
  beforeAll(() => useBackend(backend));

  describe('incremental decode', () => {
    const variants = [
      ['linear elu+1', () => linearAttention({ causal: true }), 8],
      ['performer softmax', () => performerAttention({ causal: true, features: 12, seed: 3 }), 12],
    ] as const;
    for (const [name, make, F] of variants) {
      it(`${name}: the state stays [1, 1, ${F}, dv] over 1,000 steps and every step equals the full causal recompute`, async () => {
        const attn = make();
        const T = 1000;
        const d = 8;
        const dv = 6;
        const x = sequence(T, d, dv, 11);
        const before = tf.memory().numTensors;
        let state: KernelizedDecodeState | undefined;
        const outs: tf.Tensor[] = [];
        await withGpuErrorScope(() => {
          // One prefill chunk of 37 positions, then one position per step.
          for (let t = 0; t < T; t = t === 0 ? 37 : t + 1) {
            const len = t === 0 ? 37 : 1;
            const [qs, ks, vs] = [x.q, x.k, x.v].map((y) => tf.slice(y, [0, 0, t, 0], [-1, -1, len, -1]) as tf.Tensor4D);
            const step = attn.decode(qs, ks, vs, state);
            [qs, ks, vs].forEach((y) => y.dispose());
            state = step.state;
            outs.push(step.output);
            expect(state.s.shape).toEqual([1, 1, F, dv]);
            expect(state.z.shape).toEqual([1, 1, 1, F]);
            expect(state.length).toBe(t + len);
            // Flat: the outputs so far plus a fixed number of state tensors.
            expect(tf.memory().numTensors).toBe(before + outs.length + (state.r ? 3 : 2));
          }
        });
        const decoded = tf.concat(outs, 2);
        outs.forEach((o) => o.dispose());
        const full = attn.apply(x.q, x.k, x.v);
        try {
          expect(maxAbsDiff(await decoded.data(), await full.data())).toBeLessThan(2e-5);
        } finally {
          attn.disposeState(state);
          [decoded, full, x.q, x.k, x.v].forEach((t) => t.dispose());
          attn.dispose();
        }
      });
    }

    it('decode needs causal: true and a matching state, and throws AttentionError otherwise', () => {
      const q = seededTensor([1, 2, 1, 4], 1);
      const kv = seededTensor([1, 1, 1, 4], 2);
      const before = tf.memory().numTensors;
      expect(() => linearAttention().decode(q, kv, kv)).toThrow(AttentionError);
      const attn = performerAttention({ causal: true, features: 8 });
      const first = attn.decode(q, kv, kv);
      const wrong = { ...first.state, s: first.state.z };
      expect(() => attn.decode(q, kv, kv, wrong)).toThrow(/state/);
      expect(() => attn.decode(q, kv, kv, { ...first.state, r: null })).toThrow(AttentionError);
      first.output.dispose();
      attn.disposeState(first.state);
      expect(tf.memory().numTensors).toBe(before);
      q.dispose();
      kv.dispose();
    });
  });

  describe('performer', () => {
    it('the softmax kernel neither overflows nor changes the function for |q|, |k| up to 10 at d = 64', async () => {
      for (const causal of [false, true]) {
        const c: Case = { config: {}, batch: 1, heads: 2, kvHeads: 1, n: 96, m: 128, d: 64, dv: 8, keyLength: [120], seed: 5 };
        const attn = performerAttention({ causal, seed: 9 });
        const x = makeInputs(c, { amp: 10 });
        try {
          const omega = randomFeatures(64, 256, 9, true);
          const rows = Array.from({ length: 64 }, (_, r) => Array.from(omega.subarray(r * 256, (r + 1) * 256)));
          const want = referenceKernelized(await toHost(x.q), await toHost(x.k), await toHost(x.v), {
            causal, keyLength: c.keyLength, phi: logFavor(rows, 'softmax', Math.pow(64, -0.25)),
          });
          for (const implementation of backend === 'webgpu' ? (['kernel', 'composite'] as const) : (['composite'] as const)) {
            const got = await withGpuErrorScope(async () => toHost(attn.apply(x.q, x.k, x.v, { implementation, keyLength: c.keyLength! })));
            expect(got.data.every(Number.isFinite), `${implementation} causal=${causal}: finite`).toBe(true);
            expect(maxAbsDiff(got.data, want.data), `${implementation} causal=${causal}`).toBeLessThan(1e-3);
          }
        } finally {
          x.dispose();
          attn.dispose();
        }
      }
    });

    it('explicit omega (tensor or nested array) equals the seeded features it copies; redraw(seed) equals a fresh seeded instance', async () => {
      const c: Case = { config: {}, batch: 2, heads: 2, kvHeads: 2, n: 20, m: 33, d: 12, dv: 5, keyLength: null, seed: 17 };
      const x = makeInputs(c);
      const seeded = performerAttention({ features: 24, seed: 4, causal: true });
      const omega = seeded.omegaFor(12);
      const fromTensor = performerAttention({ omega, causal: true });
      const fromArray = performerAttention({ omega: (await omega.array()) as number[][], causal: true });
      omega.dispose();
      try {
        const a = await toHost(seeded.apply(x.q, x.k, x.v));
        const b = await toHost(fromTensor.apply(x.q, x.k, x.v));
        const e = await toHost(fromArray.apply(x.q, x.k, x.v));
        expect(maxAbsDiff(a.data, b.data)).toBeLessThan(1e-6);
        expect(maxAbsDiff(a.data, e.data)).toBeLessThan(1e-6);
        expect(fromTensor.config.features).toBe(24);
        // Explicit features fix d: another head dim throws before any dispatch.
        const q8 = seededTensor([1, 1, 4, 8], 1);
        expect(countDispatches(() => expect(() => fromTensor.apply(q8, q8, q8)).toThrow(/config\.omega/))).toBe(0);
        q8.dispose();
        // redraw: new features, the same as a fresh instance with that seed.
        fromTensor.redraw(77);
        const fresh = performerAttention({ features: 24, seed: 77, causal: true });
        const r1 = await toHost(fromTensor.apply(x.q, x.k, x.v));
        const r2 = await toHost(fresh.apply(x.q, x.k, x.v));
        expect(maxAbsDiff(r1.data, r2.data)).toBeLessThan(1e-6);
        expect(maxAbsDiff(r1.data, a.data)).toBeGreaterThan(1e-4);
        expect(fromTensor.config).toMatchObject({ seed: 77, omega: 'seeded' });
        fresh.dispose();
      } finally {
        x.dispose();
        [seeded, fromTensor, fromArray].forEach((p) => p.dispose());
      }
    });

    it('orthogonal random features: orthogonal directions within each block of d, and the same on every call', () => {
      const d = 8;
      const M = 20;
      const w = randomFeatures(d, M, 123, true);
      expect(Array.from(randomFeatures(d, M, 123, true))).toEqual(Array.from(w));
      const col = (f: number) => Array.from({ length: d }, (_, t) => w[t * M + f]);
      for (let f = 0; f < M; f++)
        for (let g = f + 1; g < M; g++) {
          if (Math.floor(f / d) !== Math.floor(g / d)) continue;
          const [a, b] = [col(f), col(g)];
          const cos = a.reduce((s, x, t) => s + x * b[t], 0) / Math.hypot(...a) / Math.hypot(...b);
          expect(Math.abs(cos)).toBeLessThan(1e-5);
        }
    });
  });

  describe('linformer', () => {
    it('a sequence longer than maxLength, or causal, is an AttentionError naming it, before any dispatch', () => {
      expect(() => linformerAttention({ k: 4, maxLength: 16, causal: true })).toThrow(/config\.causal/);
      expect(() => linformerAttention({ k: 4 })).toThrow(/config\.maxLength/);
      const attn = linformerAttention({ k: 4, maxLength: 16 });
      const x = makeInputs({ config: {}, batch: 1, heads: 1, kvHeads: 1, n: 4, m: 17, d: 4, dv: 4, keyLength: null, seed: 1 });
      const before = tf.memory().numTensors;
      let err: unknown;
      expect(countDispatches(() => { try { attn.apply(x.q, x.k, x.v); } catch (e) { err = e; } })).toBe(0);
      expect(err).toBeInstanceOf(AttentionError);
      expect((err as Error).message).toMatch(/maxLength = 16/);
      expect(tf.memory().numTensors).toBe(before);
      x.dispose();
      attn.dispose();
    });

    it('padding keys are never projected: keyLength L equals the same call on the first L keys', async () => {
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 1, max: 30 }), fc.integer({ min: 0, max: 29 }), fc.boolean(), async (m, cut, shareKV) => {
          const L = Math.min(m, cut + 1);
          const attn = linformerAttention({ k: 5, maxLength: 40, shareKV, seed: m });
          const x = makeInputs({ config: {}, batch: 1, heads: 2, kvHeads: 1, n: 7, m, d: 6, dv: 3, keyLength: null, seed: m + cut });
          const kT = tf.slice(x.k, [0, 0, 0, 0], [-1, -1, L, -1]) as tf.Tensor4D;
          const vT = tf.slice(x.v, [0, 0, 0, 0], [-1, -1, L, -1]) as tf.Tensor4D;
          try {
            const a = await toHost(attn.apply(x.q, x.k, x.v, { keyLength: [L] }));
            const b = await toHost(attn.apply(x.q, kT, vT));
            expect(maxAbsDiff(a.data, b.data)).toBeLessThan(1e-5);
          } finally {
            [kT, vT].forEach((t) => t.dispose());
            x.dispose();
            attn.dispose();
          }
        }),
        { numRuns: RUNS },
      );
    });
  });

  describe('adaptive-span', () => {
    const loss64 = (q: Host4, k: Host4, v: Host4, r: Host4, z: number[], S: number, R: number, causal: boolean, scale: number) => {
      const n = q.shape[2];
      const m = k.shape[2];
      const o = referenceWeighted(q, k, v, scale, (_b, h, i, j) => {
        const p = i + m - n;
        if (causal && j > p) return 0;
        return Math.min(1, Math.max(0, (R + Math.min(S, Math.max(0, z[h])) - Math.abs(p - j)) / R));
      });
      let s = 0;
      for (let i = 0; i < o.data.length; i++) s += o.data[i] * r.data[i];
      return s;
    };

    it('gradients with respect to z match finite differences of the float64 definition', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.record({ causal: fc.boolean(), n: fc.integer({ min: 1, max: 24 }), m: fc.integer({ min: 1, max: 40 }), seed: fc.integer({ min: 1, max: 1e6 }) }),
          async ({ causal, n, m, seed }) => {
            const S = 12;
            const R = 3;
            // Spans away from the mask's kinks (integers): finite differences see one smooth piece.
            const z = [2.37 + (seed % 5), 6.61, -0.5, 13.2];
            const attn = adaptiveSpanAttention({ maxSpan: S, ramp: R, z, causal });
            const x = makeInputs({ config: {}, batch: 1, heads: 4, kvHeads: 2, n, m, d: 5, dv: 3, keyLength: null, seed });
            const dy = seededTensor([1, 4, n, 3], seed + 9);
            try {
              const { value, grads } = tf.engine().gradients(() => attn.apply(x.q, x.k, x.v), [attn.z], dy);
              const g = Array.from(await grads[0].data());
              value.dispose();
              grads.forEach((t) => t.dispose());
              const [qh, kh, vh, rh] = await Promise.all([toHost(x.q), toHost(x.k), toHost(x.v), toHost(dy)]);
              const eps = 1e-4;
              const scale = 1 / Math.sqrt(5);
              z.forEach((_, h) => {
                const zp = z.slice();
                const zm = z.slice();
                zp[h] += eps;
                zm[h] -= eps;
                const fd = (loss64(qh, kh, vh, rh, zp, S, R, causal, scale) - loss64(qh, kh, vh, rh, zm, S, R, causal, scale)) / (2 * eps);
                expect(Math.abs(g[h] - fd), `head ${h}: ${g[h]} vs ${fd}`).toBeLessThan(1e-4 + 1e-3 * Math.abs(fd));
              });
              // Outside [0, S] the clamp makes the gradient 0.
              expect(Math.abs(g[2])).toBe(0);
              expect(Math.abs(g[3])).toBe(0);
            } finally {
              x.dispose();
              dy.dispose();
              attn.dispose();
            }
          },
        ),
        { numRuns: Math.max(4, Math.floor(RUNS / 2)) },
      );
    });

    it("spanLoss is Σ|z| with gradient sign(z); clampSpan clamps z into [0, S]; 'kernel' while recording gradients throws", async () => {
      const attn = adaptiveSpanAttention({ maxSpan: 10, ramp: 2, z: [3, -1.5, 12] });
      const loss = attn.spanLoss();
      expect(await loss.data()).toEqual(new Float32Array([16.5]));
      loss.dispose();
      const { value, grads } = tf.engine().gradients(() => attn.spanLoss(), [attn.z]);
      expect(Array.from(await grads[0].data())).toEqual([1, -1, 1]);
      value.dispose();
      grads.forEach((t) => t.dispose());
      attn.clampSpan();
      expect(Array.from(await attn.z.data())).toEqual([3, 0, 10]);
      const x = makeInputs({ config: {}, batch: 1, heads: 3, kvHeads: 3, n: 4, m: 4, d: 4, dv: 4, keyLength: null, seed: 2 });
      const dy = tf.onesLike(x.q);
      expect(() => tf.engine().gradients(() => attn.apply(x.q, x.k, x.v, { implementation: 'kernel' }), [attn.z], dy)).toThrow(/forward-only/);
      dy.dispose();
      x.dispose();
      attn.dispose();
    });

    if (backend === 'webgpu') it('the fused path never reads a key whose mask is 0 (NaN keys outside z + R leave the output unchanged)', async () => {
      const m = 120;
      const z = [3.5, 20];
      const R = 4;
      const attn = adaptiveSpanAttention({ maxSpan: 40, ramp: R, z });
      const x = makeInputs({ config: {}, batch: 1, heads: 2, kvHeads: 2, n: 1, m, d: 8, dv: 8, keyLength: null, seed: 4 });
      // The one query sits at p = m − 1; head h reads only keys with m − 1 − j < R + z_h.
      const far = tf.tidy(() => {
        const j = tf.reshape(tf.range(0, m), [1, 1, m, 1]);
        const reach = tf.reshape(tf.tensor1d(z.map((zh) => m - 1 - (R + zh))), [1, 2, 1, 1]);
        return tf.lessEqual(j, reach);
      });
      const poison = (t: tf.Tensor4D) => tf.tidy(() => tf.where(tf.broadcastTo(far, t.shape), tf.fill(t.shape, Number.NaN), t) as tf.Tensor4D);
      const k2 = poison(x.k);
      const v2 = poison(x.v);
      try {
        const a = await withGpuErrorScope(async () => toHost(attn.apply(x.q, x.k, x.v, { implementation: 'kernel' })));
        const b = await withGpuErrorScope(async () => toHost(attn.apply(x.q, k2, v2, { implementation: 'kernel' })));
        expect(b.data.every(Number.isFinite)).toBe(true);
        expect(maxAbsDiff(a.data, b.data)).toBe(0);
      } finally {
        [far, k2, v2].forEach((t) => t.dispose());
        x.dispose();
        attn.dispose();
      }
    });
  });

  it('non-causal paths grow at most ~4.5x from n = 1024 to n = 4096 (intermediate bytes)', async () => {
    const makers: [string, () => { apply: (q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, o?: object) => tf.Tensor4D; dispose(): void }][] = [
      ['linear', () => linearAttention()],
      ['performer', () => performerAttention({ features: 32 })],
      ['linformer', () => linformerAttention({ k: 32, maxLength: 4096 })],
      ['adaptive-span', () => adaptiveSpanAttention({ maxSpan: 32, ramp: 8, heads: 2 })],
    ];
    for (const [name, make] of makers) {
      const bytes: number[] = [];
      for (const n of [1024, 4096]) {
        const attn = make();
        const x = makeInputs({ config: {}, batch: 1, heads: 2, kvHeads: 1, n, m: n, d: 16, dv: 16, keyLength: null, seed: 3 });
        await x.q.data();
        const r = await withGpuErrorScope(() => measureIntermediateBytes(() => attn.apply(x.q, x.k, x.v)));
        await r.result.data();
        r.result.dispose();
        bytes.push(r.bytes);
        x.dispose();
        attn.dispose();
      }
      // (8 KiB of slack, as the memory property allows, for paths whose intermediates are a few hundred bytes.)
      expect(bytes[1], `${name}: ${bytes[0]} -> ${bytes[1]}`).toBeLessThanOrEqual(4.5 * bytes[0] + 8192);
    }
  });

  if (backend === 'webgpu') it('causal linear attention runs at n = 65,536 (d = 64) and its sampled rows equal the float64 definition', async () => {
    const n = 65536;
    const d = 64;
    const attn = linearAttention({ causal: true });
    const c: Case = { config: {}, batch: 1, heads: 1, kvHeads: 1, n, m: n, d, dv: d, keyLength: null, seed: 21 };
    const x = makeInputs(c);
    try {
      const out = await withGpuErrorScope(async () => {
        const o = attn.apply(x.q, x.k, x.v, { implementation: 'kernel' });
        const h = await toHost(o);
        o.dispose();
        return h;
      });
      const [qh, kh, vh] = await Promise.all([toHost(x.q), toHost(x.k), toHost(x.v)]);
      // Rows spread over the whole range, including the last: their float64 definition over all keys j <= i.
      const rows = [0, 1, 63, 64, 4097, 30000, 65471, n - 1];
      const sub = (t: Host4, i: number, len: number): Host4 => ({ shape: [1, 1, len, t.shape[3]], data: t.data.subarray(i * t.shape[3], (i + len) * t.shape[3]) });
      for (const i of rows) {
        const want = referenceKernelized(sub(qh, i, 1), sub(kh, 0, i + 1), sub(vh, 0, i + 1), { causal: true, phi: logElu1 });
        expect(maxAbsDiff(out.data.subarray(i * d, (i + 1) * d), want.data), `row ${i}`).toBeLessThan(2e-5);
      }
    } finally {
      x.dispose();
    }
  });
});
