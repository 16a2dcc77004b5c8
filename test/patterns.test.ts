/**
 * The fixed, combined and global-token pattern variants beyond the generic suites:
 * - `pattern()` equals DESIGN.md's definition (the specs' independent `allowed`);
 * - the fused kernel's layouts and rules: every allowed pair's key block is visited, exact
 *   layouts (no rule) visit only allowed pairs, and a seeking rule never skips an allowed key;
 * - the composite never builds an n×m tensor for these variants;
 * - `local`'s decode: a ring buffer of O(window), flat as the sequence grows, equal to a full
 *   causal recompute;
 * - `local` (window 128) at n = 65,536 on webgpu against a float64 reference on sampled rows;
 * - seeded randomness (big-bird's random blocks, compressed's conv kernels);
 * - validation messages that say what to fix.
 */
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import type { SparseKernelPlan } from '../kernels/flash/sparse_attend.js';
import { blockSparseCompositeBytes } from '../kernels/flash/sparse_composite.js';
import { buildPart, type GatherPart, type PartDef } from '../kernels/flash/parts.js';
import { layoutEntries, layoutPairs, layoutRow } from '../kernels/flash/layout.js';
import { AttentionError } from '../src/core/errors.js';
import { catalog } from '../src/index.js';
import { SeededRandom } from '../src/core/rng.js';
import type { Attention, Dims } from '../src/core/types.js';
import { axialAttention } from '../src/variants/combined/axial.js';
import { bigBirdAttention, bigBirdRandomLayout } from '../src/variants/combined/big-bird.js';
import { sparseTransformerAttention } from '../src/variants/combined/sparse-transformer.js';
import { blockwiseAttention } from '../src/variants/fixed/blockwise.js';
import { compressedAttention } from '../src/variants/fixed/compressed.js';
import { dilatedAttention } from '../src/variants/fixed/dilated.js';
import { localAttention, type LocalDecodeState } from '../src/variants/fixed/local.js';
import { stridedAttention } from '../src/variants/fixed/strided.js';
import { etcAttention } from '../src/variants/side-memory/etc.js';
import { longformerAttention } from '../src/variants/side-memory/longformer.js';
import { hasWebGPU, setupBackends, useBackend, withGpuErrorScope } from './backends.js';
import { RUNS, describeCase, makeInputs, runCase } from './harness.js';
import { maxAbsDiff, referenceWeighted, seededTensor, toHost } from './reference.js';
import { specs } from './specs/index.js';

const backends = await setupBackends();

/** The entries with `pattern()`, from their catalog metadata (`capabilities.pattern`). */
const PATTERN_IDS = catalog.filter((e) => e.capabilities.pattern).map((e) => e.id);

/** The protected per-size builders of a pattern variant (white-box access for these tests). */
interface PatternInternals {
  kernelPlan(n: number, m: number, heads: number): SparseKernelPlan;
  partDefs(n: number, m: number, heads: number): PartDef[];
}
const internals = (a: Attention<unknown>) => a as unknown as PatternInternals;

describe('pattern() equals DESIGN.md’s definition', () => {
  for (const id of PATTERN_IDS) {
    const spec = specs[id];
    it(id, () => {
      fc.assert(
        fc.property(spec.cases, (c) => {
          const attn = spec.make(c.config);
          for (let h = 0; h < c.heads; h++) {
            const p = (attn.pattern as (n: number, m: number, h: number) => { n: number; m: number; rows: number[][] })(c.n, c.m, h);
            expect(p.n).toBe(c.n);
            expect(p.m).toBe(c.m);
            for (let i = 0; i < c.n; i++) {
              const want: number[] = [];
              for (let j = 0; j < c.m; j++) if (spec.allowed!(i + c.m - c.n, j, h, c)) want.push(j);
              expect(p.rows[i], `row ${i} head ${h}: ${describeCase(c)}`).toEqual(want);
            }
          }
        }),
        { numRuns: RUNS * 2 },
      );
    });
  }
});

describe('fused kernel layouts and rules cover exactly the pattern', () => {
  for (const id of PATTERN_IDS) {
    const spec = specs[id];
    it(`${id}: every allowed pair is visited; exact layouts visit nothing else; seeks skip no allowed key`, () => {
      fc.assert(
        fc.property(spec.cases, (c) => {
          const attn = spec.make(c.config);
          const { layout, rule } = internals(attn).kernelPlan(c.n, c.m, c.heads);
          const causal = !!c.config.causal;
          for (let h = 0; h < c.heads; h++)
            for (let i = 0; i < c.n; i++) {
              const p = i + c.m - c.n;
              const qb = layout ? Math.floor((i + (layout.rowOffset ?? 0)) / layout.blockQ) : 0;
              const visited = layout ? new Set(layoutRow(layout, qb, h)) : null;
              // Runs marked full skip the rule in the kernel: every pair in them must be allowed.
              for (const e of layout ? layoutEntries(layout, qb, h) : []) {
                if (!e.full) continue;
                for (let j = e.start * layout!.blockK; j < Math.min((e.start + e.blocks) * layout!.blockK, c.m); j++) {
                  if (!causal || j <= p) expect(spec.allowed!(p, j, h, c), `${id}: a full run holds a disallowed pair (${i}, ${j}): ${describeCase(c)}`).toBe(true);
                }
              }
              for (let j = 0; j < c.m; j++) {
                const ok = spec.allowed!(p, j, h, c) && (!causal || j <= p);
                const inBlock = !visited || visited.has(Math.floor(j / layout!.blockK));
                if (ok) expect(inBlock, `${id} row ${i} key ${j} head ${h} not visited: ${describeCase(c)}`).toBe(true);
                if (!rule && inBlock && (!causal || j <= p)) expect(ok, `${id}: exact layout visits a disallowed pair (${i}, ${j})`).toBe(true);
                if (rule && inBlock) expect(rule.weight(p, j, h) > 0, `${id} rule weight at (${p}, ${j}, ${h})`).toBe(spec.allowed!(p, j, h, c));
              }
              if (rule?.seek) {
                // seek(p, j) is >= j and never passes the first allowed key >= j.
                let nextAllowed = Infinity;
                for (let j = c.m - 1; j >= 0; j--) {
                  if (spec.allowed!(p, j, h, c)) nextAllowed = j;
                  const s = rule.seek(p, j, h);
                  expect(s, `${id} seek(${p}, ${j}, ${h})`).toBeGreaterThanOrEqual(j);
                  if (nextAllowed < Infinity) expect(s, `${id} seek(${p}, ${j}, ${h}) skips allowed key ${nextAllowed}: ${describeCase(c)}`).toBeLessThanOrEqual(nextAllowed);
                  // An exact seek (the kernel then skips the weight check) lands only on allowed keys.
                  if (rule.exactSeek && s < c.m) expect(spec.allowed!(p, s, h, c), `${id}: exact seek(${p}, ${j}, ${h}) = ${s} is not allowed: ${describeCase(c)}`).toBe(true);
                }
              }
            }
        }),
        { numRuns: RUNS * 2 },
      );
    });
  }
});

describe('the composite gathers O(keys per query), never n×m', () => {
  const dims = (n: number): Dims => ({ batch: 1, heads: 2, kvHeads: 1, group: 2, n, m: n, d: 16, dv: 16 });
  const cases: [string, Attention<unknown>, number][] = [
    ['local w=64', localAttention({ window: 64 }), 4 * 64],
    ['blockwise b=64 L=1', blockwiseAttention({ block: 64, lookback: 1 }), 3 * 64],
    ['dilated w=16 r=[1,4]', dilatedAttention({ window: 16, dilation: [1, 4] }), 4 * 64],
    ['big-bird b=32', bigBirdAttention({ block: 32 }), 10 * 32],
    ['longformer w=64 global 4', longformerAttention({ window: 64, global: [0, 1, 2, 3] }), 4 * 64],
    ['etc g=8 r=64', etcAttention({ globalTokens: 8, radius: 64 }), 4 * 64],
    ['strided t=64', stridedAttention({ stride: 64 }), 2 * 64],
    ['sparse-transformer t=64', sparseTransformerAttention({ stride: 64 }), 4 * 64],
    ['axial 64×64', axialAttention({ shape: [64, 64] }), 4 * 64],
  ];
  for (const [name, attn, keysPerQuery] of cases) {
    it(`${name}: the largest score tensor at n = 4096 is below n·${keysPerQuery} per head (n·m = n·4096)`, () => {
      const n = 4096;
      const parts = internals(attn)
        .partDefs(n, n, 2)
        .map((d) => buildPart(d, n, n, 2, !!(attn.config as { causal?: boolean }).causal))
        .filter((p): p is GatherPart => p !== null);
      // Rows that see every key (global queries) are few; the rest see a short list.
      for (const part of parts) {
        const rows = part.rows ? part.rows.filter((r) => r >= 0).length / part.layoutHeads : n;
        if (part.keys === null) expect(rows, `${name}: a part over all keys has few rows`).toBeLessThanOrEqual(64);
        else expect(part.width, name).toBeLessThanOrEqual(keysPerQuery);
      }
      const { largest } = blockSparseCompositeBytes(dims(n), parts, false);
      expect(largest).toBeLessThan(2 * n * keysPerQuery * 4);
    });
  }
});

describe.each(backends)('backend %s', (backend) => {
  beforeAll(() => useBackend(backend));

  it('local decode: a ring buffer of max(window, 1) positions, flat as the sequence grows; equals a full causal recompute', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          batch: fc.integer({ min: 1, max: 2 }),
          window: fc.integer({ min: 0, max: 9 }),
          kvHeads: fc.constantFrom(1, 2),
          chunks: fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 7 }),
          d: fc.integer({ min: 1, max: 12 }),
          dv: fc.integer({ min: 1, max: 12 }),
          seed: fc.integer({ min: 1, max: 1e6 }),
        }),
        async ({ batch, window, kvHeads, chunks, d, dv, seed }) => {
          const heads = 2;
          const total = chunks.reduce((a, b) => a + b, 0);
          const attn = localAttention({ window, causal: true });
          const q = seededTensor([batch, heads, total, d], seed);
          const k = seededTensor([batch, kvHeads, total, d], seed + 1);
          const v = seededTensor([batch, kvHeads, total, dv], seed + 2);
          const before = tf.memory().numTensors;
          try {
            const full = await withGpuErrorScope(() => attn.apply(q, k, v));
            const fullData = await full.data();
            full.dispose();
            let state: LocalDecodeState | undefined;
            let s = 0;
            const cap = Math.max(window, 1);
            for (const len of chunks) {
              const e = s + len;
              const slice = (x: tf.Tensor4D) => tf.slice(x, [0, 0, s, 0], [-1, -1, len, -1]);
              const [qs, ks, vs] = [slice(q), slice(k), slice(v)];
              const step = await withGpuErrorScope(() => attn.decode(qs, ks, vs, state));
              [qs, ks, vs].forEach((t) => t.dispose());
              state = step.state;
              expect(state.seen).toBe(e);
              expect(state.k.shape).toEqual([batch, kvHeads, cap, d]);
              expect(state.v.shape).toEqual([batch, kvHeads, cap, dv]);
              const got = await step.output.data();
              step.output.dispose();
              for (let b = 0; b < batch; b++)
                for (let h = 0; h < heads; h++) {
                  const want = fullData.subarray(((b * heads + h) * total + s) * dv, ((b * heads + h) * total + e) * dv);
                  const have = got.subarray((b * heads + h) * len * dv, ((b * heads + h) * len + len) * dv);
                  expect(maxAbsDiff(have, want), `chunk [${s}, ${e}) window ${window}`).toBeLessThan(2e-5);
                }
              s = e;
            }
            state!.k.dispose();
            state!.v.dispose();
            expect(tf.memory().numTensors).toBe(before);
          } finally {
            q.dispose();
            k.dispose();
            v.dispose();
          }
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('local decode state stays [batch, kvHeads, window, d] over 300 one-token steps', async () => {
    const attn = localAttention({ window: 16, causal: true });
    let state: LocalDecodeState | undefined;
    const sizes = new Set<string>();
    const before = tf.memory().numTensors;
    for (let t = 0; t < 300; t++) {
      const x = seededTensor([1, 1, 1, 4], t + 1);
      const step = await withGpuErrorScope(() => attn.decode(x, x, x, state));
      x.dispose();
      step.output.dispose();
      state = step.state;
      sizes.add(`${state.k.shape}|${state.v.shape}`);
    }
    expect([...sizes]).toEqual(['1,1,16,4|1,1,16,4']);
    expect(tf.memory().numTensors).toBe(before + 2);
    state!.k.dispose();
    state!.v.dispose();
  });

  it('local decode rejects a non-causal variant and a mismatched state with AttentionError', () => {
    const x = seededTensor([1, 2, 1, 4], 3);
    const before = tf.memory().numTensors;
    expect(() => localAttention({ window: 4 }).decode(x, x, x)).toThrow(/config\.causal/);
    const attn = localAttention({ window: 4, causal: true });
    const first = attn.decode(x, x, x);
    const other = localAttention({ window: 5, causal: true });
    expect(() => other.decode(x, x, x, first.state)).toThrow(/state: expected a ring buffer of \[1, 2, 5, 4\]/);
    expect(() => attn.decode(x, x, x, { ...first.state, seen: -1 })).toThrow(AttentionError);
    first.output.dispose();
    first.state.k.dispose();
    first.state.v.dispose();
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
  });

  it('keyLength as an int32 tensor gives the same output as the same lengths as numbers, on every path', async () => {
    const variants: Attention<unknown>[] = [
      localAttention({ window: 3, causal: true }),
      stridedAttention({ stride: 3 }),
      dilatedAttention({ window: 2, dilation: [1, 3] }),
      longformerAttention({ window: 2, dilation: [1, 2], global: [0, 17] }),
      bigBirdAttention({ block: 4, globalBlocks: 1 }),
      compressedAttention({ stride: 3, mode: 'conv', causal: true }),
      compressedAttention({ stride: 4 }),
    ];
    const c = { config: {}, batch: 2, heads: 2, kvHeads: 1, n: 20, m: 30, d: 8, dv: 8, keyLength: [30, 11], seed: 3 };
    const x = makeInputs(c);
    const kl = tf.tensor1d([30, 11], 'int32');
    try {
      for (const attn of variants)
        for (const implementation of backend === 'webgpu' ? (['kernel', 'composite'] as const) : (['composite'] as const)) {
          const before = tf.memory().numTensors;
          const [a, b] = await withGpuErrorScope(async () => {
            const oa = attn.apply(x.q, x.k, x.v, { implementation, keyLength: [30, 11] });
            const ob = attn.apply(x.q, x.k, x.v, { implementation, keyLength: kl });
            const r = [await oa.data(), await ob.data()];
            oa.dispose();
            ob.dispose();
            return r;
          });
          expect(maxAbsDiff(a, b), `${attn.id} ${implementation}`).toBeLessThan(1e-6);
          expect(tf.memory().numTensors).toBe(before);
        }
    } finally {
      kl.dispose();
      x.dispose();
    }
  });

  it('big-bird: the seeded random blocks give the same output as passing them explicitly', async () => {
    const c = { config: {}, batch: 1, heads: 2, kvHeads: 1, n: 50, m: 70, d: 8, dv: 8, keyLength: null, seed: 4 };
    const seeded = bigBirdAttention({ block: 4, seed: 11 });
    const explicit = bigBirdAttention({ block: 4, randomLayout: seeded.randomBlocksFor(Math.ceil(70 / 4)) });
    const x = makeInputs(c);
    try {
      const a = await runCase(seeded, x, c);
      const b = await runCase(explicit, x, c);
      expect(maxAbsDiff(a.data, b.data)).toBe(0);
    } finally {
      x.dispose();
    }
  });

  it('compressed: seeded conv kernels equal the same kernels passed explicitly; mean-mode rows are distributions', async () => {
    const c = { config: {}, batch: 2, heads: 2, kvHeads: 2, n: 20, m: 30, d: 6, dv: 5, keyLength: [30, 13], seed: 8 };
    const seeded = compressedAttention({ stride: 4, mode: 'conv', seed: 21, causal: true });
    const w = seeded.convKernels(6, 5);
    const nested = (a: Float32Array, t: number, dim: number) =>
      Array.from({ length: t }, (_, u) => Array.from({ length: dim }, (_, i) => Array.from(a.subarray((u * dim + i) * dim, (u * dim + i + 1) * dim))));
    const explicit = compressedAttention({ stride: 4, mode: 'conv', causal: true, kernels: { k: nested(w.k, 4, 6), v: nested(w.v, 4, 5) } });
    const x = makeInputs(c);
    try {
      const a = await runCase(seeded, x, c);
      const b = await runCase(explicit, x, c);
      expect(maxAbsDiff(a.data, b.data)).toBe(0);
      // A second variant with the same seed draws the same kernels.
      expect(compressedAttention({ stride: 4, mode: 'conv', seed: 21 }).convKernels(6, 5).k).toEqual(w.k);
      // Mean mode: with v = identity, each row is a distribution over the keys (or all zeros).
      const mean = compressedAttention({ stride: 3, causal: true });
      const eye = tf.tidy(() => tf.broadcastTo(tf.reshape(tf.eye(30), [1, 1, 30, 30]), [2, 2, 30, 30]) as tf.Tensor4D);
      const out = await runCase(mean, { q: x.q, k: x.k, v: eye, dispose() {} }, { ...c, dv: 30 });
      eye.dispose();
      for (let r = 0; r < 2 * 2 * 20; r++) {
        const row = out.data.subarray(r * 30, (r + 1) * 30);
        let sum = 0;
        for (const p of row) {
          expect(p).toBeGreaterThanOrEqual(-1e-6);
          sum += p;
        }
        if (Math.abs(sum) > 1e-6) expect(Math.abs(sum - 1)).toBeLessThan(1e-5);
      }
    } finally {
      x.dispose();
    }
  });
});

describe.runIf(hasWebGPU())('webgpu: local (window 128) at n = 65,536', () => {
  beforeAll(() => useBackend('webgpu'));

  it('runs on the fused kernel, visits O(n·w) pairs, and sampled rows match a float64 reference', async () => {
    const n = 65536;
    const [heads, kvHeads, d] = [2, 1, 16];
    const attn = localAttention({ window: 128, causal: false });
    const { layout } = internals(attn).kernelPlan(n, n, heads);
    // Work follows the pattern: each query block visits its band's few blocks.
    expect(layout!.maxBlocksPerRow).toBeLessThanOrEqual(6);
    expect(layoutPairs(layout!, n, n)).toBeLessThan(n * (2 * 128 + 3 * 64));
    const c = { config: {}, batch: 1, heads, kvHeads, n, m: n, d, dv: d, keyLength: null, seed: 17 };
    const x = makeInputs(c);
    try {
      const got = await runCase(attn, x, c, 'kernel');
      const [qh, kh, vh] = await Promise.all([toHost(x.q), toHost(x.k), toHost(x.v)]);
      const rows = [0, 1, 127, 128, 5000, 32767, 32768, 65407, 65408, 65535];
      const scale = 1 / Math.sqrt(d);
      for (const i of rows) {
        // A one-row problem sliced out of the big one, against the float64 reference.
        const lo = Math.max(0, i - 128);
        const hi = Math.min(n - 1, i + 128);
        const sub = (t: typeof qh, from: number, to: number, hs: number) => {
          const dim = t.shape[3];
          const out = new Float64Array(hs * (to - from + 1) * dim);
          for (let h = 0; h < hs; h++) out.set(t.data.subarray((h * n + from) * dim, (h * n + to + 1) * dim), h * (to - from + 1) * dim);
          return { shape: [1, hs, to - from + 1, dim] as [number, number, number, number], data: out };
        };
        const want = referenceWeighted(sub(qh, i, i, heads), sub(kh, lo, hi, kvHeads), sub(vh, lo, hi, kvHeads), scale, () => 1);
        for (let h = 0; h < heads; h++) {
          const have = got.data.subarray((h * n + i) * d, (h * n + i + 1) * d);
          expect(maxAbsDiff(have, want.data.subarray(h * d, (h + 1) * d)), `row ${i} head ${h}`).toBeLessThan(2e-5);
        }
      }
    } finally {
      x.dispose();
    }
  });
});

describe.runIf(hasWebGPU())('webgpu: blockwise with a large prime block (64-blocks and an exact rule instead of an exact layout)', () => {
  beforeAll(() => useBackend('webgpu'));

  it('kernel and composite equal the float64 reference', async () => {
    for (const causal of [false, true]) {
      const attn = blockwiseAttention({ block: 1031, lookback: 1, causal });
      expect(internals(attn).kernelPlan(1400, 1600, 2).rule).not.toBeNull();
      const c = { config: { causal }, batch: 1, heads: 2, kvHeads: 1, n: 1400, m: 1600, d: 8, dv: 8, keyLength: null, seed: 23 };
      const x = makeInputs(c);
      try {
        const want = specs.blockwise.reference(await toHost(x.q), await toHost(x.k), await toHost(x.v), { ...c, config: { block: 1031, lookback: 1, causal } });
        for (const impl of ['kernel', 'composite'] as const) {
          const got = await runCase(attn, x, c, impl);
          expect(maxAbsDiff(got.data, want.data), `${impl} causal ${causal}`).toBeLessThan(2e-5);
        }
      } finally {
        x.dispose();
      }
    }
  });
});

describe('validation: every config field, with messages that say what to fix', () => {
  const cases: [string, () => unknown, RegExp][] = [
    ['local window < 0', () => localAttention({ window: -1 }), /config\.window: expected an integer >= 0, got -1/],
    ['local window fractional', () => localAttention({ window: 2.5 }), /config\.window: expected an integer >= 0, got 2\.5/],
    ['unknown key', () => localAttention({ windw: 3 } as never), /config\.windw: expected one of causal, scale, window \(config of 'local'\), got unknown key 'windw'/],
    ['causal not boolean', () => stridedAttention({ causal: 'yes' as never }), /config\.causal: expected true or false/],
    ['scale not positive', () => etcAttention({ scale: 0 }), /config\.scale: expected a finite number > 0, got 0/],
    ['blockwise block 0', () => blockwiseAttention({ block: 0 }), /config\.block: expected an integer >= 1, got 0/],
    ['blockwise lookback', () => blockwiseAttention({ lookback: -2 }), /config\.lookback: expected an integer >= 0/],
    ['strided stride 0', () => stridedAttention({ stride: 0 }), /config\.stride: expected an integer >= 1, got 0/],
    ['dilation 0', () => dilatedAttention({ dilation: 0 }), /config\.dilation: expected an integer >= 1, got 0/],
    ['dilation entry', () => dilatedAttention({ dilation: [1, 0] }), /config\.dilation\[1\]: expected an integer >= 1, got 0/],
    ['dilation empty', () => dilatedAttention({ dilation: [] }), /config\.dilation: expected an integer >= 1 or a non-empty array/],
    ['compressed mode', () => compressedAttention({ mode: 'max' as never }), /config\.mode: expected 'mean' or 'conv', got 'max'/],
    ['compressed kernels with mean', () => compressedAttention({ kernels: { k: [[[1]]], v: [[[1]]] } }), /config\.kernels: .*mode: 'conv'/],
    ['compressed kernel shape', () => compressedAttention({ mode: 'conv', stride: 2, kernels: { k: [[[1]]], v: [[[1]]] } }), /config\.kernels\.k: expected shape \[t = 2, dim, dim\]/],
    ['sparse-transformer pattern', () => sparseTransformerAttention({ pattern: 'dense' as never }), /config\.pattern: expected 'strided' or 'fixed'/],
    ['sparse-transformer summary', () => sparseTransformerAttention({ stride: 4, summary: 5 }), /config\.summary: expected an integer in \[1, 4\], got 5/],
    ['axial shape missing', () => axialAttention({} as never), /config\.shape: expected \[rows, cols\]/],
    ['axial shape entry', () => axialAttention({ shape: [2, 0] }), /config\.shape\[1\]: expected an integer >= 1, got 0/],
    ['axial axes', () => axialAttention({ shape: [2, 2], axes: 'diag' as never }), /config\.axes: expected 'row', 'column' or 'both'/],
    ['big-bird randomLayout entry', () => bigBirdAttention({ randomLayout: [[0], [-1]] }), /config\.randomLayout\[1\]\[0\]: expected an integer >= 0, got -1/],
    ['big-bird randomLayout duplicate', () => bigBirdAttention({ randomLayout: [[1, 1]] }), /config\.randomLayout\[0\]: expected distinct key blocks/],
    ['big-bird seed and randomLayout', () => bigBirdAttention({ seed: 3, randomLayout: [[0]] }), /config\.seed: expected either seed or randomLayout, not both/],
    ['big-bird randomLayout width', () => bigBirdAttention({ randomBlocks: 1, randomLayout: [[0, 1]] }), /config\.randomLayout: expected rows of at most randomBlocks = 1 blocks/],
    ['longformer duplicate global', () => longformerAttention({ global: [3, 5, 3] }), /config\.global\[2\]: expected distinct positions, got 3 a second time\. Remove the duplicate/],
    ['longformer negative global', () => longformerAttention({ global: [-1] }), /config\.global\[0\]: expected an integer >= 0, got -1/],
    ['etc radius', () => etcAttention({ radius: -1 }), /config\.radius: expected an integer >= 0/],
  ];
  for (const [name, make, message] of cases) {
    it(`config: ${name}`, () => {
      expect(make).toThrow(AttentionError);
      expect(make).toThrow(message);
    });
  }

  const q = (n: number, heads = 2) => seededTensor([1, heads, n, 4], 1);
  const applyCases: [string, Attention<unknown>, number, number, number, RegExp][] = [
    ['n > m', localAttention({ window: 2 }), 8, 6, 2, /q: expected at most m = 6 queries \(the queries are the last n of the m key positions\), got n = 8/],
    ['axial grid vs length', axialAttention({ shape: [3, 3] }), 8, 8, 2, /k: expected m = rows·cols = 3·3 = 9 keys .*, got m = 8/],
    ['dilation per head count', dilatedAttention({ dilation: [1, 2, 3] }), 8, 8, 2, /config\.dilation: expected one dilation per query head: 2 entries \(heads of q\), got 3 entries/],
    ['longformer global out of range', longformerAttention({ global: [0, 9] }), 8, 8, 2, /config\.global\[1\]: expected a position in \[0, m = 8\), got 9/],
    ['big-bird randomLayout rows', bigBirdAttention({ block: 4, randomLayout: [[0], [1], [0]] }), 8, 8, 2, /config\.randomLayout: expected one row per query block: ceil\(m \/ block\) = ceil\(8 \/ 4\) = 2 rows, got 3 rows/],
    ['big-bird randomLayout block index', bigBirdAttention({ block: 4, randomLayout: [[0], [2]] }), 8, 8, 2, /config\.randomLayout\[1\]\[0\]: expected a block index in \[0, 2\), got 2/],
    ['compressed conv kernel dims', compressedAttention({ mode: 'conv', stride: 1, kernels: { k: [[[1]]], v: [[[1]]] } }), 8, 8, 2, /config\.kernels\.k: expected shape \[1, 4, 4\] \(d of q and k\), got \[1, 1, 1\]/],
  ];
  for (const [name, attn, n, m, heads, message] of applyCases) {
    it(`apply: ${name}`, () => {
      const qq = q(n, heads);
      const kv = seededTensor([1, 1, m, 4], 2);
      const before = tf.memory().numTensors;
      try {
        expect(() => attn.apply(qq, kv, kv)).toThrow(message);
        expect(tf.memory().numTensors).toBe(before);
      } finally {
        qq.dispose();
        kv.dispose();
      }
    });
  }

  it('big-bird seeded random blocks: r distinct blocks per query block, none already seen, the same for the same seed', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 7 }),
        fc.integer({ min: 0, max: 3 }),
        fc.integer({ min: 0, max: 5 }),
        fc.integer({ min: 0, max: 1e6 }),
        (numBlocks, w, g, r, seed) => {
          const layout = bigBirdRandomLayout(numBlocks, w, g, r, seed);
          expect(layout).toEqual(bigBirdRandomLayout(numBlocks, w, g, r, seed));
          expect(layout.length).toBe(numBlocks);
          layout.forEach((row, qb) => {
            const unseen = Array.from({ length: numBlocks }, (_, kb) => kb).filter((kb) => qb >= g && kb >= g && Math.abs(qb - kb) > Math.floor(w / 2));
            expect(new Set(row).size).toBe(row.length);
            expect(row.length).toBe(Math.min(r, unseen.length));
            for (const kb of row) expect(unseen).toContain(kb);
          });
        },
      ),
      { numRuns: RUNS * 4 },
    );
    // Only the library's generator is used: a different seed gives a different draw.
    expect(bigBirdRandomLayout(64, 3, 2, 3, 1)).not.toEqual(bigBirdRandomLayout(64, 3, 2, 3, 2));
    expect(new SeededRandom(5).next()).toBe(new SeededRandom(5).next());
  });
});
