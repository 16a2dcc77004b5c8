/**
 * `compressive`: the conformance spec (`apply` = one segment from an empty state, i.e. causal
 * dense attention over the segment) and a float64 simulation of the whole recurrence from
 * DESIGN.md's definition, for the step-sequence property (test/compressive.test.ts).
 */
import fc from 'fast-check';
import { compressiveAttention, compressiveConvWeights } from '../../src/variants/recurrence/compressive.js';
import { referenceDense, toHost, type Host4 } from '../reference.js';
import { makeInputs } from '../harness.js';
import type { CompressiveAttention, CompressiveState } from '../../src/variants/recurrence/compressive.js';
import { divisors } from './dense.js';
import type { Case, VariantSpec } from './types.js';

/** Seeded values uniform in [-amp, amp] (xorshift; host only). */
function hostUniform(count: number, seed: number, amp: number): number[] {
  let x = seed >>> 0 || 1;
  return Array.from({ length: count }, () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return ((x / 4294967296) * 2 - 1) * amp;
  });
}

/** An explicit `[c][dim][dim]` conv weight. */
export function explicitConvWeight(c: number, dim: number, seed: number): number[][][] {
  const vals = hostUniform(c * dim * dim, seed, 1 / Math.sqrt(c * dim));
  return Array.from({ length: c }, (_, u) => Array.from({ length: dim }, (_, r) => vals.slice((u * dim + r) * dim, (u * dim + r + 1) * dim)));
}

/**
 * A random compressive config: L (memLength) and the segment lengths are multiples of c (rate);
 * fn 'conv' is always trainable (its weights are tf.Variables either way), with explicit weights
 * or `seed` + `headDim` / `valueDim`.
 */
export function compressiveConfig(r: { rate: number; memBlocks: number; compressedLength: number; fn: 'mean' | 'max' | 'conv'; explicit: boolean; seed: number; d: number; dv: number; scale?: number }): Record<string, unknown> {
  const config: Record<string, unknown> = { memLength: r.memBlocks * r.rate, compressedLength: r.compressedLength, rate: r.rate, fn: r.fn };
  if (r.fn === 'conv') {
    config.trainable = true;
    if (r.explicit) config.convWeights = { k: explicitConvWeight(r.rate, r.d, r.seed), v: explicitConvWeight(r.rate, r.dv, r.seed + 1) };
    else {
      config.headDim = r.d;
      if (r.dv !== r.d) config.valueDim = r.dv;
      config.seed = r.seed % 1000;
    }
  }
  if (r.scale !== undefined) config.scale = r.scale;
  return config;
}

/** The arbitrary behind {@link compressiveConfig}, with the head dims. */
export const configParts = fc.record({
  rate: fc.integer({ min: 1, max: 3 }),
  memBlocks: fc.integer({ min: 0, max: 3 }),
  compressedLength: fc.integer({ min: 0, max: 5 }),
  // 'conv' weighted up: test/coverage.test.ts checks the learned convK / convV on the seed-3 sample (a conv case).
  fn: fc.constantFrom<'mean' | 'max' | 'conv'>('conv', 'mean', 'conv', 'max'),
  explicit: fc.boolean(),
  seed: fc.integer({ min: 1, max: 1e9 }),
  d: fc.oneof(fc.constantFrom(4, 8), fc.integer({ min: 1, max: 10 })),
  dv: fc.oneof(fc.constantFrom(4, 8), fc.integer({ min: 1, max: 8 })),
  scale: fc.option(fc.double({ min: 0.1, max: 1, noNaN: true }), { nil: undefined }),
});

/** Conformance cases: one segment (n == m, a multiple of rate), grouped heads, key lengths. */
export const compressiveCases: fc.Arbitrary<Case> = fc
  .record({
    parts: configParts,
    batch: fc.integer({ min: 1, max: 2 }),
    heads: fc.constantFrom(1, 2, 4),
    blocks: fc.integer({ min: 1, max: 8 }),
    useLength: fc.boolean(),
  })
  .chain((r) => {
    const n = r.blocks * r.parts.rate;
    return fc
      .record({
        kvHeads: divisors(r.heads),
        keyLength: r.useLength ? fc.array(fc.integer({ min: 0, max: n }), { minLength: r.batch, maxLength: r.batch }) : fc.constant(null),
      })
      .map((x): Case => ({
        config: compressiveConfig(r.parts),
        batch: r.batch,
        heads: r.heads,
        kvHeads: x.kvHeads,
        n,
        m: n,
        d: r.parts.d,
        dv: r.parts.dv,
        keyLength: x.keyLength,
        seed: r.parts.seed,
      }));
  });

// ---- the recurrence in float64 ---------------------------------------------------------

/** One segment of a step sequence: host q, k, v and the segment's key lengths. */
export interface Segment {
  q: Host4;
  k: Host4;
  v: Host4;
  keyLength: number[] | null;
}

interface Slot {
  k: number[];
  v: number[];
  real: boolean;
}

/** K, V of fn 'conv' as [c][din][dout] arrays: explicit, or the seeded generator's. */
function convWeightsOf(config: Record<string, unknown>, c: number, d: number, dv: number): { K: number[][][]; V: number[][][] } {
  const given = config.convWeights as { k: number[][][]; v: number[][][] } | undefined;
  if (given) return { K: given.k, V: given.v };
  const w = compressiveConvWeights(c, d, dv, (config.seed as number | undefined) ?? 0x5eed);
  const cube = (data: Float32Array, dim: number) => Array.from({ length: c }, (_, u) => Array.from({ length: dim }, (_, r) => Array.from(data.subarray((u * dim + r) * dim, (u * dim + r + 1) * dim))));
  return { K: cube(w.k, d), V: cube(w.v, dv) };
}

/** Softmax attention of one query over slots (real ones only); zeros when none. */
function attendSlots(q: number[], slots: Slot[], scale: number, dv: number): number[] {
  const real = slots.filter((s) => s.real);
  const out = new Array(dv).fill(0);
  if (real.length === 0) return out;
  const scores = real.map((s) => scale * s.k.reduce((a, x, t) => a + x * q[t], 0));
  const mx = Math.max(...scores);
  let den = 0;
  real.forEach((s, j) => {
    const e = Math.exp(scores[j] - mx);
    den += e;
    for (let t = 0; t < dv; t++) out[t] += e * s.v[t];
  });
  return out.map((x) => x / den);
}

/** One group of c slots (oldest first) → one compressed slot, as DESIGN.md defines fn. */
function compressGroup(group: Slot[], fn: string, K: number[][][] | null, V: number[][][] | null, d: number, dv: number): Slot {
  const real = group.filter((s) => s.real);
  if (real.length === 0) return { k: new Array(d).fill(0), v: new Array(dv).fill(0), real: false };
  const pool = (pick: (s: Slot) => number[], dim: number, W: number[][][] | null): number[] => {
    if (fn === 'mean') return Array.from({ length: dim }, (_, t) => real.reduce((a, s) => a + pick(s)[t], 0) / real.length);
    if (fn === 'max') return Array.from({ length: dim }, (_, t) => Math.max(...real.map((s) => pick(s)[t])));
    const out = new Array(dim).fill(0);
    group.forEach((s, u) => {
      if (!s.real) return; // padding counts as zero
      const e = pick(s);
      for (let a = 0; a < dim; a++) for (let b = 0; b < dim; b++) out[b] += e[a] * W![u][a][b];
    });
    return out;
  };
  return { k: pool((s) => s.k, d, K), v: pool((s) => s.v, dv, V), real: true };
}

/**
 * DESIGN.md `compressive` over a whole step sequence, in float64: per batch element and kv
 * head, each segment's query i attends every real compressed slot, every real memory slot and
 * the real segment keys j <= i; then memory = last L of [memory; segment], the pushed-out slots
 * (oldest first) are compressed in groups of c and appended, and the last Lc are kept. Segment
 * keys at or past keyLength[b] are padding: they take their memory slots flagged as padding, are
 * never attended, and are left out of every pooled group (a group with no real key is a padding
 * slot). Also returns the last step's attention-reconstruction loss (0 if it pushed nothing out).
 */
export function referenceCompressiveSteps(segments: Segment[], config: Record<string, unknown>): { outputs: Host4[]; reconstructionLoss: number } {
  const [B, H, , d] = segments[0].q.shape;
  const KH = segments[0].k.shape[1];
  const dv = segments[0].v.shape[3];
  const G = H / KH;
  const c = (config.rate as number | undefined) ?? 2;
  const L = (config.memLength as number | undefined) ?? 16;
  const Lc = (config.compressedLength as number | undefined) ?? L;
  const fn = (config.fn as string | undefined) ?? 'mean';
  const scale = (config.scale as number | undefined) ?? 1 / Math.sqrt(d);
  const { K, V } = fn === 'conv' ? convWeightsOf(config, c, d, dv) : { K: null, V: null };
  const mem: Slot[][] = Array.from({ length: B * KH }, () => []);
  const comp: Slot[][] = Array.from({ length: B * KH }, () => []);
  const pushedLast: Slot[][] = Array.from({ length: B * KH }, () => []);
  const outputs: Host4[] = [];
  for (const seg of segments) {
    const n = seg.q.shape[2];
    const out = new Float64Array(B * H * n * dv);
    for (let b = 0; b < B; b++) {
      const len = seg.keyLength ? Math.min(n, seg.keyLength[b]) : n;
      for (let kh = 0; kh < KH; kh++) {
        const bk = b * KH + kh;
        const segSlots: Slot[] = Array.from({ length: n }, (_, j) => ({
          k: Array.from(seg.k.data.subarray((bk * n + j) * d, (bk * n + j + 1) * d)),
          v: Array.from(seg.v.data.subarray((bk * n + j) * dv, (bk * n + j + 1) * dv)),
          real: j < len,
        }));
        for (let g = 0; g < G; g++) {
          const h = kh * G + g;
          for (let i = 0; i < n; i++) {
            const q = Array.from(seg.q.data.subarray(((b * H + h) * n + i) * d, ((b * H + h) * n + i + 1) * d));
            const o = attendSlots(q, [...comp[bk], ...mem[bk], ...segSlots.slice(0, i + 1)], scale, dv);
            out.set(o, ((b * H + h) * n + i) * dv);
          }
        }
        const cat = [...mem[bk], ...segSlots];
        const keepN = Math.min(L, cat.length);
        const pushed = cat.slice(0, cat.length - keepN);
        mem[bk] = cat.slice(cat.length - keepN);
        pushedLast[bk] = pushed;
        const fresh: Slot[] = [];
        for (let s = 0; s < pushed.length; s += c) fresh.push(compressGroup(pushed.slice(s, s + c), fn, K, V, d, dv));
        const all = [...comp[bk], ...fresh];
        comp[bk] = all.slice(all.length - Math.min(Lc, all.length));
      }
    }
    outputs.push({ shape: [B, H, n, dv], data: out });
  }
  // The last step's reconstruction loss: attention of its queries over the pushed-out slots vs their compression.
  const last = segments[segments.length - 1];
  const n = last.q.shape[2];
  let sum = 0;
  let any = false;
  for (let b = 0; b < B; b++)
    for (let kh = 0; kh < KH; kh++) {
      const pushed = pushedLast[b * KH + kh];
      if (pushed.length) any = true;
      const compressed: Slot[] = [];
      for (let s = 0; s < pushed.length; s += c) compressed.push(compressGroup(pushed.slice(s, s + c), fn, K, V, d, dv));
      for (let g = 0; g < G; g++) {
        const h = kh * G + g;
        for (let i = 0; i < n; i++) {
          const q = Array.from(last.q.data.subarray(((b * H + h) * n + i) * d, ((b * H + h) * n + i + 1) * d));
          const want = attendSlots(q, pushed, scale, dv);
          const got = attendSlots(q, compressed, scale, dv);
          for (let t = 0; t < dv; t++) sum += (want[t] - got[t]) ** 2;
        }
      }
    }
  return { outputs, reconstructionLoss: any ? sum / (B * H * n * dv) : 0 };
}

/** DESIGN.md `compressive`; `apply` is one segment from an empty state: causal dense attention over it. */
export const compressiveSpec: VariantSpec = {
  id: 'compressive',
  make: (config) => compressiveAttention(config as never),
  cases: compressiveCases,
  reference: (q, k, v, c) => referenceDense(q, k, v, { causal: true, scale: c.config.scale as number | undefined, keyLength: c.keyLength }),
  causal: () => true,
  convexCombination: true,
  growth: { kernel: 'linear', composite: 'quadratic' },
  memoryCase: (n, seed) => ({ config: { memLength: 4, rate: 1, fn: seed % 2 === 0 ? 'mean' : 'max' }, batch: 1, heads: 2, kvHeads: 2, n, m: n, d: 16, dv: 16, keyLength: null, seed }),
  badConfigs: fc.oneof(
    fc.record({ memLength: fc.constantFrom(3, 5), rate: fc.constant(2) }), // L not a multiple of c
    fc.record({ rate: fc.constant(3) }), // the default L = 16 is not a multiple of 3
    fc.record({ memLength: fc.constant(6), rate: fc.constant(3) }), // segment n = 4 not a multiple of 3: throws at apply
    fc.record({ rate: fc.constantFrom(0, -1, 1.5, '2', null) }),
    fc.record({ memLength: fc.constantFrom(-2, 1.5, 'x') }),
    fc.record({ compressedLength: fc.constantFrom(-1, 0.5, 'x') }),
    fc.record({ fn: fc.constantFrom('sum', 'conv1d', 1, null) }),
    fc.record({ causal: fc.constantFrom(false, 1, 'yes') }),
    fc.record({ scale: fc.constantFrom(0, -1, Number.NaN, Infinity, '1') }),
    fc.record({ fn: fc.constant('conv') }), // no headDim, no weights
    fc.record({ fn: fc.constantFrom('mean', 'max'), seed: fc.constant(1) }),
    fc.record({ fn: fc.constantFrom('mean', 'max'), trainable: fc.constant(true) }),
    fc.record({ fn: fc.constant('conv'), headDim: fc.constant(4), trainable: fc.constantFrom('yes', 1) }),
    fc.record({ fn: fc.constant('conv'), headDim: fc.constantFrom(0, 1.5, '4') }),
    fc.record({ fn: fc.constant('conv'), headDim: fc.constant(4), valueDim: fc.constantFrom(0, -1, 'x') }),
    fc.record({ fn: fc.constant('conv'), rate: fc.constant(2), headDim: fc.constant(4), convWeights: fc.constant({ k: explicitConvWeight(2, 3, 1), v: explicitConvWeight(2, 4, 2) }) }), // headDim vs the weights' 3
    fc.record({ fn: fc.constant('conv'), rate: fc.constant(2), convWeights: fc.constant({ k: explicitConvWeight(3, 4, 1), v: explicitConvWeight(2, 4, 2) }) }), // k: [3, 4, 4] vs c = 2
    fc.record({ fn: fc.constant('conv'), rate: fc.constant(2), convWeights: fc.constant({ k: explicitConvWeight(2, 4, 1), v: [[[1, 2]], [[3, 4]]] }) }), // v not square
    fc.record({ fn: fc.constant('conv'), rate: fc.constant(2), convWeights: fc.constant({ k: explicitConvWeight(2, 4, 1) }) }), // v missing
    fc.record({ fn: fc.constant('conv'), rate: fc.constant(2), seed: fc.constant(1), convWeights: fc.constant({ k: explicitConvWeight(2, 4, 1), v: explicitConvWeight(2, 4, 2) }) }),
    fc.record({ window: fc.integer() }),
  ),
  fused: true,
  steps: {
    segment: (c) => ({ ...c, m: c.n, keyLength: null }),
    reference: (segments, c) => referenceCompressiveSteps(segments.map((s) => ({ ...s, keyLength: null })), c.config).outputs,
  },
  // DESIGN.md: the memories are constants, and the conv weights train only through
  // reconstructionLoss: its gradient after two steps (the second pushes keys out) is checked.
  learned: {
    cases: compressiveCases
      .filter((c) => c.config.fn === 'conv' && c.n <= 12 && c.d <= 6 && c.dv <= 6 && c.batch * c.heads <= 4)
      // Two segments of n, the second pushing keys out (memLength < 2n).
      .filter((c) => (c.config.memLength as number) < 2 * c.n)
      .map((c) => ({ ...c, m: c.n, keyLength: null })),
    params: (c) => {
      const r = (c.config.rate as number | undefined) ?? 2;
      const { K, V } = convWeightsOf(c.config, r, c.d, c.dv);
      return [
        { name: 'convK', shape: [r, c.d, c.d], data: Float64Array.from(K.flat(2)) },
        { name: 'convV', shape: [r, c.dv, c.dv], data: Float64Array.from(V.flat(2)) },
      ];
    },
    withParams: (c, [k, v]) => {
      const r = (c.config.rate as number | undefined) ?? 2;
      const cube = (x: Float64Array, dim: number) => Array.from({ length: r }, (_, u) => Array.from({ length: dim }, (_, a) => Array.from(x.subarray((u * dim + a) * dim, (u * dim + a + 1) * dim))));
      return { ...c, config: { ...c.config, convWeights: { k: cube(k, c.d), v: cube(v, c.dv) } } };
    },
    objective: {
      async prepare(attn0, c) {
        const attn = attn0 as unknown as CompressiveAttention;
        const segs = [0, 1].map((s) => makeInputs({ ...c, seed: c.seed + 17 * s }));
        const hosts = await Promise.all(segs.map(async (x) => ({ q: await toHost(x.q), k: await toHost(x.k), v: await toHost(x.v), keyLength: null })));
        let state: CompressiveState = attn.initState(c.batch);
        for (const x of segs) {
          const r = attn.step(x.q, x.k, x.v, state);
          r.output.dispose();
          state = r.state; // step consumed the previous state
        }
        return {
          loss: () => attn.reconstructionLoss(state),
          reference: (c2) => referenceCompressiveSteps(hosts, c2.config).reconstructionLoss,
          dispose: () => {
            state.dispose();
            segs.forEach((x) => x.dispose());
          },
        };
      },
    },
  },
};
