/**
 * The fused flash kernel beyond the conformance suite's small shapes: its plan stays under the
 * software adapter's loop cap at every size it accepts, long key ranges (split-KV + merge)
 * equal the float64 reference, and oversize problems throw before dispatch.
 */
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { AttentionError } from '../src/core/errors.js';
import { denseAttention } from '../src/variants/baseline/dense.js';
import { groupedQueryAttention } from '../src/variants/memory-saving/multi-query.js';
import { planFlash } from '../kernels/flash/plan.js';
import { LLVMPIPE_LOOP_CAP } from '../kernels/shared/limits.js';
import { hasWebGPU, setupBackends, useBackend } from './backends.js';
import { describeCase, makeInputs, runCase } from './harness.js';
import { maxAbsDiff, referenceDense, toHost } from './reference.js';
import type { Case } from './specs/types.js';

await setupBackends();

const limits = { maxStorageBufferBindingSize: 128 << 20, maxBufferSize: 256 << 20, maxComputeWorkgroupsPerDimension: 65535 };

describe('plan', () => {
  it('keeps every invocation under the loop cap at every size it accepts', () => {
    fc.assert(
      fc.property(
        fc.record({
          batch: fc.integer({ min: 1, max: 4 }),
          heads: fc.constantFrom(1, 2, 8, 16),
          n: fc.integer({ min: 1, max: 1 << 20 }),
          m: fc.integer({ min: 1, max: 1 << 22 }),
          d: fc.integer({ min: 1, max: 256 }),
          dv: fc.integer({ min: 1, max: 256 }),
          layout: fc.option(fc.record({ blockK: fc.integer({ min: 1, max: 4096 }), maxBlocksPerRow: fc.integer({ min: 0, max: 1 << 16 }), nnz: fc.nat(1 << 24) })),
        }),
        ({ layout, ...p }) => {
          const dims = { ...p, kvHeads: 1, group: p.heads };
          let plan;
          try {
            plan = planFlash(dims, limits, { layout: layout ?? undefined, extraBindings: layout ? 2 : 0 });
          } catch (e) {
            expect(e).toBeInstanceOf(AttentionError);
            return;
          }
          expect(plan.maxLoopIterations).toBeLessThanOrEqual(LLVMPIPE_LOOP_CAP);
          expect(plan.chunk * plan.splits).toBeGreaterThanOrEqual(layout ? layout.maxBlocksPerRow : p.m);
          expect(plan.partialBytes).toBeLessThanOrEqual(limits.maxStorageBufferBindingSize);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('uses a split count independent of n for long sequences, so partials are O(n)', () => {
    const at = (n: number) => planFlash({ batch: 1, heads: 1, kvHeads: 1, group: 1, n, m: n, d: 64, dv: 64 }, limits);
    expect(at(4096).splits).toBe(at(1024).splits);
    expect(at(4096).partialBytes / at(1024).partialBytes).toBe(4);
  });

  it('throws AttentionError naming the binding limit for an oversize problem', () => {
    expect(() => planFlash({ batch: 1, heads: 64, kvHeads: 64, group: 1, n: 1 << 16, m: 1 << 16, d: 128, dv: 128 }, limits)).toThrow(/binding limit/);
  });
});

describe.runIf(hasWebGPU())('webgpu: long key ranges (split-KV + merge)', () => {
  beforeAll(() => useBackend('webgpu'));

  const longCases: Case[] = [
    { config: { causal: true }, batch: 1, heads: 2, kvHeads: 2, n: 700, m: 700, d: 64, dv: 64, keyLength: null, seed: 11 },
    { config: { causal: true }, batch: 2, heads: 4, kvHeads: 2, n: 37, m: 3001, d: 12, dv: 20, keyLength: [3001, 1777], seed: 12 },
    { config: { causal: false }, batch: 1, heads: 2, kvHeads: 1, n: 130, m: 1300, d: 6, dv: 5, keyLength: [900], seed: 13 },
  ];
  for (const c of longCases) {
    it(`equals the reference: ${describeCase(c)}`, async () => {
      const attn = c.heads === c.kvHeads ? denseAttention(c.config) : groupedQueryAttention({ ...c.config, groups: c.kvHeads });
      const x = makeInputs(c);
      try {
        const got = await runCase(attn, x, c, 'kernel');
        const want = referenceDense(await toHost(x.q), await toHost(x.k), await toHost(x.v), { causal: !!c.config.causal, keyLength: c.keyLength });
        expect(maxAbsDiff(got.data, want.data)).toBeLessThan(2e-5);
      } finally {
        x.dispose();
      }
    });
  }

  it('a composite over the binding limit throws AttentionError before dispatch; the kernel runs', async () => {
    const attn = denseAttention();
    const n = 6000; // 6000² · 4 bytes = 144 MB > 128 MiB
    const c: Case = { config: {}, batch: 1, heads: 1, kvHeads: 1, n, m: n, d: 4, dv: 4, keyLength: null, seed: 3 };
    const x = makeInputs(c);
    try {
      expect(() => attn.apply(x.q, x.k, x.v, { implementation: 'composite' })).toThrow(AttentionError);
      const out = attn.apply(x.q, x.k, x.v);
      expect(out.shape).toEqual([1, 1, n, 4]);
      const vals = await out.data();
      expect(vals.every(Number.isFinite)).toBe(true);
      out.dispose();
    } finally {
      x.dispose();
    }
  });

  it("'kernel' on cpu throws AttentionError", async () => {
    await useBackend('cpu');
    const x = makeInputs({ config: {}, batch: 1, heads: 1, kvHeads: 1, n: 2, m: 2, d: 4, dv: 4, keyLength: null, seed: 1 });
    expect(() => denseAttention().apply(x.q, x.k, x.v, { implementation: 'kernel' })).toThrow(/registered for webgpu/);
    x.dispose();
    await useBackend('webgpu');
  });

  it('keyLength as an int32 tensor equals keyLength as numbers', async () => {
    const c: Case = { config: { causal: true }, batch: 3, heads: 2, kvHeads: 2, n: 9, m: 300, d: 8, dv: 8, keyLength: [300, 5, 0], seed: 21 };
    const x = makeInputs(c);
    const kl = tf.tensor1d([300, 5, 0], 'int32');
    try {
      const attn = denseAttention(c.config);
      const a = await toHost(attn.apply(x.q, x.k, x.v, { keyLength: kl }));
      const b = await runCase(attn, x, c);
      expect(maxAbsDiff(a.data, b.data)).toBe(0);
      // A batch element with no real key outputs zeros, never NaN.
      const per = c.heads * c.n * c.dv;
      expect(Array.from(a.data.subarray(2 * per, 3 * per)).every((x) => x === 0)).toBe(true);
    } finally {
      x.dispose();
      kl.dispose();
    }
  });
});
