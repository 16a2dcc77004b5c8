/**
 * `transformer-xl` beyond the conformance suite: segments stepped equal the float64 recurrence
 * over the concatenated sequence; the state is consumed, refused from another instance or for
 * other shapes, and flat in size over 100 segments; the fused path's bytes stay O(n) (never an
 * [n, n + L] tensor) and kernel == composite; the relative term needs the per-row strategy.
 */
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { AttentionError } from '../src/core/errors.js';
import { measureIntermediateBytes } from '../src/core/measure.js';
import { flashDispatches } from '../kernels/flash/kernel.js';
import { transformerXLAttention, type TransformerXLState } from '../src/variants/recurrence/transformer-xl.js';
import { setupBackends, useBackend, withGpuErrorScope } from './backends.js';
import { maxAbsDiff, seededTensor, toHost } from './reference.js';
import { referenceXLSegments, xlCases } from './specs/transformer-xl.js';

const backends = await setupBackends();
const RUNS = Number(process.env.FC_RUNS ?? 12);

const segmentCases = fc.record({ c: xlCases, segments: fc.integer({ min: 3, max: 5 }) }).map(({ c, segments }) => ({ c: { ...c, m: c.n, keyLength: null }, segments }));

for (const backend of backends) {
  describe(`transformer-xl on ${backend}`, () => {
    it('segments stepped equal the float64 recurrence (memory = last L of [memory; segment])', async () => {
      await useBackend(backend);
      await fc.assert(
        fc.asyncProperty(segmentCases, async ({ c, segments }) => {
          const xl = transformerXLAttention(c.config as never);
          const qs = Array.from({ length: segments }, (_, s) => seededTensor([c.batch, c.heads, c.n, c.d], c.seed + 10 * s));
          const ks = Array.from({ length: segments }, (_, s) => seededTensor([c.batch, c.kvHeads, c.n, c.d], c.seed + 10 * s + 1));
          const vs = Array.from({ length: segments }, (_, s) => seededTensor([c.batch, c.kvHeads, c.n, c.dv], c.seed + 10 * s + 2));
          try {
            const want = referenceXLSegments(await Promise.all(qs.map(toHost)), await Promise.all(ks.map(toHost)), await Promise.all(vs.map(toHost)), c);
            let state: TransformerXLState = xl.initState(c.batch, c.kvHeads, c.dv);
            for (let s = 0; s < segments; s++) {
              const r = await withGpuErrorScope(async () => xl.step(qs[s], ks[s], vs[s], state));
              state = r.state;
              const got = await toHost(r.output);
              r.output.dispose();
              expect(maxAbsDiff(got.data, want[s].data), `segment ${s}`).toBeLessThan(2e-5);
            }
            state.k.dispose();
            state.v.dispose();
          } finally {
            [...qs, ...ks, ...vs].forEach((t) => t.dispose());
            xl.dispose();
          }
        }),
        { numRuns: RUNS },
      );
    });

    it('consumes its state, refuses another instance\'s or other shapes\', and keeps it flat over 100 segments', async () => {
      await useBackend(backend);
      const xl = transformerXLAttention({ memLength: 12, heads: 2, headDim: 8, seed: 4 });
      const other = transformerXLAttention({ memLength: 12, heads: 2, headDim: 8, seed: 4 });
      const x = seededTensor([1, 2, 5, 8], 3);
      const before = tf.memory().numTensors;
      let state = xl.initState(1);
      const sizes: number[] = [];
      for (let s = 0; s < 100; s++) {
        const prev = state;
        const r = xl.step(x, x, x, state);
        expect(prev.k.isDisposed && prev.v.isDisposed).toBe(true);
        r.output.dispose();
        state = r.state;
        sizes.push(state.k.size + state.v.size);
      }
      // Flat: the memory never holds more than L positions.
      expect(Math.max(...sizes)).toBe(2 * 2 * 12 * 8);
      expect(sizes.slice(3).every((s) => s === sizes[99])).toBe(true);
      expect(tf.memory().numTensors).toBe(before + 2);
      expect(() => other.step(x, x, x, state)).toThrow(AttentionError);
      const y = seededTensor([2, 2, 5, 8], 4);
      expect(() => xl.step(y, y, y, state)).toThrow(AttentionError);
      const r = xl.step(x, x, x, state);
      expect(() => xl.step(x, x, x, state)).toThrow(AttentionError); // consumed
      r.output.dispose();
      r.state.k.dispose();
      r.state.v.dispose();
      [x, y].forEach((t) => t.dispose());
      xl.dispose();
      other.dispose();
    });
  });
}

describe.runIf(backends.includes('webgpu'))('transformer-xl fused on webgpu', () => {
  it('kernel == composite (random cases, keyLength, grouped heads)', async () => {
    await useBackend('webgpu');
    await fc.assert(
      fc.asyncProperty(xlCases, async (c) => {
        const xl = transformerXLAttention(c.config as never);
        const q = seededTensor([c.batch, c.heads, c.n, c.d], c.seed);
        const k = seededTensor([c.batch, c.kvHeads, c.m, c.d], c.seed + 1);
        const v = seededTensor([c.batch, c.kvHeads, c.m, c.dv], c.seed + 2);
        try {
          const opts = c.keyLength ? { keyLength: c.keyLength } : {};
          const rows0 = flashDispatches().rows;
          const a = await toHost(await withGpuErrorScope(async () => xl.apply(q, k, v, { ...opts, implementation: 'kernel' })));
          expect(flashDispatches().rows, 'one per-row flash dispatch').toBe(rows0 + 1);
          const b = await toHost(xl.apply(q, k, v, { ...opts, implementation: 'composite' }));
          expect(maxAbsDiff(a.data, b.data)).toBeLessThan(2e-5);
        } finally {
          [q, k, v].forEach((t) => t.dispose());
          xl.dispose();
        }
      }),
      { numRuns: RUNS },
    );
  });

  it("the fused path's bytes grow <= 4.5x from n = 256 to 1024 at fixed L (no [n, n + L] tensor)", async () => {
    await useBackend('webgpu');
    const xl = transformerXLAttention({ memLength: 256, heads: 2, headDim: 32, seed: 1 });
    const bytesAt = async (n: number) => {
      const x = seededTensor([1, 2, n, 32], n);
      let state = xl.initState(1);
      // Fill the memory to L first, then measure one step over [memory; segment].
      const r0 = xl.step(x, x, x, state);
      r0.output.dispose();
      state = r0.state;
      const m = await measureIntermediateBytes(() => {
        const r = xl.step(x, x, x, state);
        state = r.state;
        return r.output;
      });
      m.result.dispose();
      state.k.dispose();
      state.v.dispose();
      x.dispose();
      return m.bytes;
    };
    const small = await bytesAt(256);
    const large = await bytesAt(1024);
    expect(large / small, `${small} -> ${large} bytes`).toBeLessThanOrEqual(4.5);
    // An [n, n + L] float matrix at n = 1024 would be 1024·1280·4 bytes per head.
    expect(large).toBeLessThan(2 * 1024 * 1280 * 4);
    xl.dispose();
  });

  it("refuses kernelStrategy 'tiled' (the relative term runs one row per invocation)", async () => {
    await useBackend('webgpu');
    const xl = transformerXLAttention({ memLength: 4, heads: 1, headDim: 8 });
    const x = seededTensor([1, 1, 32, 8], 1);
    expect(() => xl.apply(x, x, x, { kernelStrategy: 'tiled' })).toThrow(AttentionError);
    x.dispose();
    xl.dispose();
  });
});
