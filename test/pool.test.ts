/**
 * The one-dispatch block pooling kernel (kernels/pool, memory-compressed attention's reduction on
 * webgpu) against a float64 host reference: mean and conv modes, random block sizes, lengths
 * (lim) and shapes, non-finite real entries (their block pools to NaN) and non-finite padding
 * (never read); and compressed's fused path with it equals its composite.
 */
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { blockPool, poolFits } from '../kernels/pool/pool.js';
import { compressedAttention } from '../src/variants/fixed/compressed.js';
import { hasWebGPU, setupBackends, useBackend, withGpuErrorScope } from './backends.js';

await setupBackends();
const RUNS = Number(process.env.FC_RUNS ?? 25);

describe.runIf(hasWebGPU())('block pooling kernel on webgpu', () => {
  beforeAll(() => useBackend('webgpu'));

  it('equals the float64 reference (mean and conv; lengths; non-finite real entries give NaN, non-finite padding is never read)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          B: fc.integer({ min: 1, max: 2 }),
          KH: fc.integer({ min: 1, max: 2 }),
          m: fc.integer({ min: 1, max: 70 }),
          t: fc.integer({ min: 1, max: 9 }),
          dim: fc.integer({ min: 1, max: 70 }),
          dimOut: fc.integer({ min: 1, max: 7 }),
          conv: fc.boolean(),
          lens: fc.array(fc.integer({ min: 0, max: 80 }), { minLength: 2, maxLength: 2 }),
          poison: fc.array(fc.tuple(fc.nat(), fc.constantFrom(Number.NaN, Infinity, -Infinity)), { maxLength: 3 }),
          seed: fc.integer({ min: 1, max: 1000 }),
        }),
        async (g) => {
          const { B, KH, m, t, dim } = g;
          const dimOut = g.conv ? g.dimOut : dim;
          const C = Math.ceil(m / t);
          const lim = g.lens.slice(0, B).map((l) => Math.min(l, m));
          let s = g.seed;
          const rnd = () => ((s = (s * 16807) % 2147483647) / 2147483647) * 2 - 1;
          const x = Array.from({ length: B * KH * m * dim }, rnd);
          for (const [at, v] of g.poison) x[at % x.length] = v;
          const w = Array.from({ length: t * dim * dimOut }, rnd);
          // Reference: per block, the real positions; NaN if any real entry is non-finite.
          const want: number[] = [];
          for (let bk = 0; bk < B * KH; bk++) {
            const b = Math.floor(bk / KH);
            for (let c = 0; c < C; c++) {
              const cnt = Math.max(0, Math.min(lim[b] - c * t, t));
              const at = (u: number, i: number) => x[(bk * m + c * t + u) * dim + i];
              let bad = false;
              for (let u = 0; u < cnt; u++) for (let i = 0; i < dim; i++) if (!Number.isFinite(at(u, i))) bad = true;
              for (let j = 0; j < dimOut; j++) {
                let acc = 0;
                if (g.conv) for (let u = 0; u < cnt; u++) for (let i = 0; i < dim; i++) acc += at(u, i) * w[(u * dim + i) * dimOut + j];
                else {
                  for (let u = 0; u < cnt; u++) acc += at(u, j);
                  if (cnt > 0) acc /= cnt;
                }
                want.push(bad ? Number.NaN : acc);
              }
            }
          }
          expect(poolFits(g.conv ? 'conv' : 'mean', t, dim, dimOut)).toBe(true);
          const xt = tf.tensor4d(x, [B, KH, m, dim]);
          const lt = tf.tensor1d(lim, 'int32');
          const wt = tf.tensor2d(w, [t * dim, dimOut]);
          try {
            const out = await withGpuErrorScope(() => blockPool(g.conv ? 'conv' : 'mean', xt, lt, t, g.conv ? wt : undefined));
            expect(out.shape).toEqual([B, KH, C, dimOut]);
            const got = await out.data();
            out.dispose();
            for (let i = 0; i < want.length; i++) {
              if (Number.isNaN(want[i])) expect(got[i], `@${i}`).toBeNaN();
              else expect(Math.abs(got[i] - want[i]), `@${i}: ${got[i]} vs ${want[i]}`).toBeLessThan(1e-5 * (1 + t * dim));
            }
          } finally {
            tf.dispose([xt, lt, wt]);
          }
        },
      ),
      { numRuns: RUNS },
    );
  });

  it("compressed's fused path (pooling kernel) equals its composite, mean and conv, with keyLength", async () => {
    for (const [mode, stride] of [['mean', 3], ['mean', 8], ['conv', 4], ['conv', 5]] as const) {
      const attn = compressedAttention({ stride, mode, ...(mode === 'conv' ? { seed: 4 } : {}) });
      const q = tf.randomNormal([2, 2, 40, 16], 0, 1, 'float32', 1) as tf.Tensor4D;
      const k = tf.randomNormal([2, 2, 40, 16], 0, 1, 'float32', 2) as tf.Tensor4D;
      const v = tf.randomNormal([2, 2, 40, 16], 0, 1, 'float32', 3) as tf.Tensor4D;
      try {
        const a = await withGpuErrorScope(() => attn.apply(q, k, v, { implementation: 'kernel', keyLength: [40, 23] }));
        const b = attn.apply(q, k, v, { implementation: 'composite', keyLength: [40, 23] });
        const d = tf.max(tf.abs(tf.sub(a, b)));
        expect((await d.data())[0], `${mode} stride ${stride}`).toBeLessThan(2e-5);
        tf.dispose([a, b, d]);
      } finally {
        tf.dispose([q, k, v]);
        attn.dispose();
      }
    }
  });
});
