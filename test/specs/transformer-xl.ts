import fc from 'fast-check';
import { transformerXLAttention, transformerXLParams } from '../../src/variants/recurrence/transformer-xl.js';
import type { Host4 } from '../reference.js';
import type { Case, VariantSpec } from './types.js';

/** u, v `[H][d]` and wR `[H][d][d]` of a case: explicit, or the seeded generator's. */
export function xlParamsOf(c: Pick<Case, 'config' | 'heads' | 'd'>): { u: number[][]; v: number[][]; wR: number[][][] } {
  const cfg = c.config as { u?: number[][]; v?: number[][]; wR?: number[][][]; seed?: number };
  if (cfg.u && cfg.v && cfg.wR) return { u: cfg.u, v: cfg.v, wR: cfg.wR };
  const p = transformerXLParams(c.heads, c.d, cfg.seed ?? 0x5eed);
  const H = c.heads;
  const d = c.d;
  return {
    u: Array.from({ length: H }, (_, h) => Array.from(p.u.subarray(h * d, (h + 1) * d))),
    v: Array.from({ length: H }, (_, h) => Array.from(p.v.subarray(h * d, (h + 1) * d))),
    wR: Array.from({ length: H }, (_, h) => Array.from({ length: d }, (_, a) => Array.from(p.wR.subarray((h * d + a) * d, (h * d + a + 1) * d)))),
  };
}

/** DESIGN.md's sinusoid r_t (dim d: sines in the first floor(d/2) entries, cosines after). */
function sinusoid(t: number, d: number): Float64Array {
  const half = Math.floor(d / 2);
  return Float64Array.from({ length: d }, (_, a) => {
    const i = a < half ? a : a - half;
    const angle = t / Math.pow(10000, (2 * i) / d);
    return a < half ? Math.sin(angle) : Math.cos(angle);
  });
}

/**
 * DESIGN.md `transformer-xl` for one attention over keys `[memory; segment]` (queries the last n
 * positions), in float64: score = s·((q_i + u_h)·k_j + (q_i + v_h)·(wR_h·r_{p_i − j})), j <= p_i
 * and j < keyLength[b]; softmax; zeros for a query with no key.
 */
export function referenceXL(q: Host4, k: Host4, v: Host4, c: Pick<Case, 'config' | 'heads' | 'd' | 'keyLength'>, rows?: readonly number[]): Host4 {
  const [B, H, n, d] = q.shape;
  const [, KH, m] = k.shape;
  const dv = v.shape[3];
  const G = H / KH;
  const scale = (c.config.scale as number | undefined) ?? 1 / Math.sqrt(d);
  const { u, v: vb, wR } = xlParamsOf(c);
  const rel = new Map<string, Float64Array>();
  const relRow = (h: number, t: number) => {
    const key = `${h},${t}`;
    let row = rel.get(key);
    if (!row) {
      const r = sinusoid(t, d);
      row = Float64Array.from({ length: d }, (_, a) => wR[h][a].reduce((s, w, bb) => s + w * r[bb], 0));
      rel.set(key, row);
    }
    return row;
  };
  const out = new Float64Array(B * H * n * dv);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const kh = Math.floor(h / G);
      const len = c.keyLength ? c.keyLength[b] : m;
      for (const i of rows ?? Array.from({ length: n }, (_, r) => r)) {
        const p = i + m - n;
        const qo = ((b * H + h) * n + i) * d;
        const s: number[] = [];
        const js: number[] = [];
        for (let j = 0; j <= Math.min(p, len - 1); j++) {
          const ko = ((b * KH + kh) * m + j) * d;
          const R = relRow(h, p - j);
          let x = 0;
          for (let t = 0; t < d; t++) x += (q.data[qo + t] + u[h][t]) * k.data[ko + t] + (q.data[qo + t] + vb[h][t]) * R[t];
          s.push(scale * x);
          js.push(j);
        }
        if (!s.length) continue;
        const mx = Math.max(...s);
        const w = s.map((x) => Math.exp(x - mx));
        const den = w.reduce((a, x) => a + x, 0);
        const oo = ((b * H + h) * n + i) * dv;
        js.forEach((j, r) => {
          for (let t = 0; t < dv; t++) out[oo + t] += (w[r] / den) * v.data[((b * KH + kh) * m + j) * dv + t];
        });
      }
    }
  return { shape: [B, H, n, dv], data: out };
}

/** The recurrence in float64: per segment attend [memory; segment], then memory = last L of it. */
export function referenceXLSegments(qs: Host4[], ks: Host4[], vs: Host4[], c: Pick<Case, 'config' | 'heads' | 'd'>): Host4[] {
  const L = (c.config.memLength as number | undefined) ?? 128;
  let memK: Host4 | null = null;
  let memV: Host4 | null = null;
  const cat = (a: Host4 | null, b: Host4): Host4 => {
    if (!a) return b;
    const [B, H, m1, w] = a.shape;
    const m2 = b.shape[2];
    const data = new Float64Array(B * H * (m1 + m2) * w);
    for (let x = 0; x < B * H; x++) {
      data.set(a.data.subarray(x * m1 * w, (x + 1) * m1 * w), x * (m1 + m2) * w);
      data.set(b.data.subarray(x * m2 * w, (x + 1) * m2 * w), x * (m1 + m2) * w + m1 * w);
    }
    return { shape: [B, H, m1 + m2, w], data };
  };
  const last = (a: Host4, keep: number): Host4 => {
    const [B, H, m, w] = a.shape;
    const data = new Float64Array(B * H * keep * w);
    for (let x = 0; x < B * H; x++) data.set(a.data.subarray((x * m + m - keep) * w, (x + 1) * m * w), x * keep * w);
    return { shape: [B, H, keep, w], data };
  };
  return qs.map((q, s) => {
    const K = cat(memK, ks[s]);
    const V = cat(memV, vs[s]);
    const out = referenceXL(q, K, V, { ...c, keyLength: null });
    const keep = Math.min(L, K.shape[2]);
    memK = last(K, keep);
    memV = last(V, keep);
    return out;
  });
}

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

export const xlCases: fc.Arbitrary<Case> = fc
  .record({
    batch: fc.integer({ min: 1, max: 2 }),
    heads: fc.constantFrom(1, 2, 4),
    group: fc.constantFrom(1, 2, 4),
    n: fc.integer({ min: 1, max: 40 }),
    extra: fc.integer({ min: -3, max: 30 }),
    d: fc.integer({ min: 2, max: 12 }),
    dv: fc.integer({ min: 1, max: 9 }),
    memLength: fc.integer({ min: 0, max: 24 }),
    explicit: fc.boolean(),
    lengths: fc.option(fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 2, maxLength: 2 }), { nil: undefined }),
    seed: fc.integer({ min: 1, max: 1e6 }),
  })
  .map((r) => {
    const kvHeads = r.heads % r.group === 0 ? r.heads / r.group : r.heads;
    const m = Math.max(1, r.n + r.extra);
    // trainable: u, v, wR as trainable variables (the forward pass is the same either way).
    const config: Record<string, unknown> = { memLength: r.memLength, trainable: true };
    if (r.explicit) {
      const vals = hostUniform(r.heads * r.d * (r.d + 2), r.seed + 3, 0.5);
      const at = (i: number) => vals[i];
      config.u = Array.from({ length: r.heads }, (_, h) => Array.from({ length: r.d }, (_, t) => at(h * r.d + t)));
      config.v = Array.from({ length: r.heads }, (_, h) => Array.from({ length: r.d }, (_, t) => at(r.heads * r.d + h * r.d + t)));
      config.wR = Array.from({ length: r.heads }, (_, h) => Array.from({ length: r.d }, (_, a) => Array.from({ length: r.d }, (_, b) => at(2 * r.heads * r.d + (h * r.d + a) * r.d + b) * 0.5)));
    } else {
      Object.assign(config, { heads: r.heads, headDim: r.d, seed: r.seed });
    }
    const keyLength = r.lengths ? Array.from({ length: r.batch }, (_, b) => Math.round(r.lengths![b] * m)) : null;
    return { config, batch: r.batch, heads: r.heads, kvHeads, n: r.n, m, d: r.d, dv: r.dv, keyLength, seed: r.seed };
  });

/** DESIGN.md `transformer-xl`: `apply` is one segment from an empty memory. */
export const transformerXLSpec: VariantSpec = {
  id: 'transformer-xl',
  make: (config) => transformerXLAttention(config as never),
  cases: xlCases,
  reference: (q, k, v, c) => referenceXL(q, k, v, c),
  causal: () => true,
  convexCombination: true,
  growth: { kernel: 'linear', composite: 'quadratic' },
  memoryCase: (n, seed) => ({ config: { memLength: 64, heads: 2, headDim: 16, seed }, batch: 1, heads: 2, kvHeads: 1, n, m: n, d: 16, dv: 16, keyLength: null, seed }),
  badConfigs: fc.oneof(
    fc.record({ heads: fc.constant(2), headDim: fc.constant(4), causal: fc.constant(false) }),
    fc.record({ heads: fc.constant(2) }),
    fc.record({ headDim: fc.constant(4) }),
    fc.record({ heads: fc.constant(2), headDim: fc.constant(4), memLength: fc.constantFrom(-1, 1.5, 'L') }),
    fc.record({ u: fc.constant([[1, 2]]), v: fc.constant([[1, 2]]) }),
    fc.record({ u: fc.constant([[1, 2]]), v: fc.constant([[1, 2]]), wR: fc.constant([[[1, 2]]]) }),
    fc.record({ u: fc.constant([[1, 2]]), v: fc.constant([[1, 2]]), wR: fc.constant([[[1, 2], [3, 4]]]), seed: fc.constant(3) }),
    fc.record({ heads: fc.constant(2), headDim: fc.constant(4), trainable: fc.constantFrom('yes', 1) }),
    fc.record({ heads: fc.constant(2), headDim: fc.constant(4), window: fc.integer() }),
  ),
  fused: true,
  kernelStrategies: ['rows'],
  learned: {
    params: (c) => {
      const p = xlParamsOf(c);
      return [
        { name: 'u', shape: [c.heads, c.d], data: Float64Array.from(p.u.flat()) },
        { name: 'v', shape: [c.heads, c.d], data: Float64Array.from(p.v.flat()) },
        { name: 'wR', shape: [c.heads, c.d, c.d], data: Float64Array.from(p.wR.flat(2)) },
      ];
    },
    withParams: (c, [u, v, wR]) => {
      const rows = (x: Float64Array) => Array.from({ length: c.heads }, (_, h) => Array.from(x.subarray(h * c.d, (h + 1) * c.d)));
      const cube = Array.from({ length: c.heads }, (_, h) => Array.from({ length: c.d }, (_, a) => Array.from(wR.subarray((h * c.d + a) * c.d, (h * c.d + a + 1) * c.d))));
      return { ...c, config: { ...c.config, u: rows(u), v: rows(v), wR: cube } };
    },
  },
  steps: {
    segment: (c) => ({ ...c, m: c.n, keyLength: null }),
    reference: (segments, c) => referenceXLSegments(segments.map((s) => s.q), segments.map((s) => s.k), segments.map((s) => s.v), c),
  },
};
