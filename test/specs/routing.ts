import fc from 'fast-check';
import { routingAttention, routingCentroids } from '../../src/variants/learnable/routing.js';
import type { Host4 } from '../reference.js';
import { denseLikeCases, divisors } from './dense.js';
import type { Case, VariantSpec } from './types.js';

/** Seeded values uniform in [-amp, amp] (xorshift; host only). */
function hostUniform(count: number, seed: number, amp: number): Float64Array {
  let x = seed >>> 0 || 1;
  return Float64Array.from({ length: count }, () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return ((x / 4294967296) * 2 - 1) * amp;
  });
}

/** Explicit centroids `[heads][kc][d]` (not normalized: the variant normalizes them). */
export function explicitCentroids(heads: number, kc: number, d: number, seed: number): number[][][] {
  const vals = hostUniform(heads * kc * d, seed, 2);
  return Array.from({ length: heads }, (_, h) => Array.from({ length: kc }, (_, c) => Array.from(vals.subarray((h * kc + c) * d, (h * kc + c + 1) * d))));
}

const unit = (x: ArrayLike<number>): Float64Array => {
  let s = 0;
  for (let t = 0; t < x.length; t++) s += x[t] * x[t];
  const nrm = Math.max(Math.sqrt(s), 1e-12);
  return Float64Array.from(x, (y) => y / nrm);
};
const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let t = 0; t < a.length; t++) s += a[t] * b[t];
  return s;
};

/** The unit centroids of a case's variant, `[heads][kc]` vectors, in float64. */
export function centroidsOf(c: Case): Float64Array[][] {
  const given = c.config.centroids as number[][][] | undefined;
  if (given) return given.map((hs) => hs.map(unit));
  const kc = c.config.clusters as number;
  const host = routingCentroids(c.heads, kc, c.d, (c.config.seed as number | undefined) ?? 0x5eed);
  return Array.from({ length: c.heads }, (_, h) => Array.from({ length: kc }, (_, cc) => unit(host.subarray((h * kc + cc) * c.d, (h * kc + cc + 1) * c.d))));
}

/** The `count` positions with the largest score, ties to the lower position. */
function topPositions(scores: number[], positions: number[], count: number): number[] {
  const order = positions.slice().sort((a, b) => scores[b] - scores[a] || a - b);
  return order.slice(0, count);
}

/** DESIGN.md `routing`, in float64, written from the definition. */
export function referenceRouting(q: Host4, k: Host4, v: Host4, c: Case): Host4 {
  const [B, H, n, d] = q.shape;
  const [, KH, m] = k.shape;
  const dv = v.shape[3];
  const causal = !!c.config.causal;
  const mu = centroidsOf(c);
  const kc = mu[0].length;
  const w = (c.config.window as number | undefined) ?? Math.ceil(m / kc);
  const s = (c.config.scale as number | undefined) ?? 1 / Math.sqrt(d);
  const out = new Float64Array(B * H * n * dv);
  const row = (x: Host4, b: number, h: number, i: number) => {
    const len = x.shape[3];
    const at = ((b * x.shape[1] + h) * x.shape[2] + i) * len;
    return x.data.subarray(at, at + len);
  };
  for (let b = 0; b < B; b++) {
    const L = c.keyLength ? c.keyLength[b] : m;
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / KH));
      const qhat = Array.from({ length: n }, (_, i) => unit(row(q, b, h, i)));
      const khat = Array.from({ length: L }, (_, j) => unit(row(k, b, g, j)));
      const sum = Array.from({ length: n }, () => new Float64Array(dv));
      const count = new Array(n).fill(0);
      for (let cc = 0; cc < kc; cc++) {
        const qs = qhat.map((x) => dot(x, mu[h][cc]));
        const ks = khat.map((x) => dot(x, mu[h][cc]));
        const Q = topPositions(qs, Array.from({ length: n }, (_, i) => i), Math.min(w, n));
        const K = topPositions(ks, Array.from({ length: L }, (_, j) => j), Math.min(w, L));
        for (const i of Q) {
          count[i]++;
          const p = i + m - n;
          const keys = K.filter((j) => !causal || j <= p);
          if (!keys.length) continue;
          const qi = row(q, b, h, i);
          const sc = keys.map((j) => s * dot(qi, row(k, b, g, j)));
          const mx = Math.max(...sc);
          const e = sc.map((x) => Math.exp(x - mx));
          const z = e.reduce((a, x) => a + x, 0);
          keys.forEach((j, t) => {
            const vj = row(v, b, g, j);
            for (let u = 0; u < dv; u++) sum[i][u] += (e[t] / z) * vj[u];
          });
        }
      }
      for (let i = 0; i < n; i++)
        if (count[i]) for (let u = 0; u < dv; u++) out[((b * H + h) * n + i) * dv + u] = sum[i][u] / count[i];
    }
  }
  return { shape: [B, H, n, dv], data: out };
}

/**
 * The EMA k-means step of DESIGN.md (as `updateCentroids` documents it), in float64: returns the
 * new unit centroids `[heads][kc]`.
 */
export function referenceUpdate(mu: Float64Array[][], q: Host4, k: Host4, decay: number, keyLength: number[] | null): Float64Array[][] {
  const [B, H, n, d] = q.shape;
  const [, KH, m] = k.shape;
  const kc = mu[0].length;
  const argmax = (x: Float64Array, h: number) => {
    let best = 0;
    for (let c = 1; c < kc; c++) if (dot(x, mu[h][c]) > dot(x, mu[h][best])) best = c;
    return best;
  };
  return mu.map((hs, h) => {
    const sums = hs.map(() => new Float64Array(d));
    const cnt = new Array(kc).fill(0);
    const g = Math.floor(h / (H / KH));
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < n; i++) {
        const at = ((b * H + h) * n + i) * d;
        const x = unit(q.data.subarray(at, at + d));
        const c = argmax(x, h);
        cnt[c]++;
        for (let t = 0; t < d; t++) sums[c][t] += x[t];
      }
      const L = keyLength ? keyLength[b] : m;
      for (let j = 0; j < L; j++) {
        const at = ((b * KH + g) * m + j) * d;
        const x = unit(k.data.subarray(at, at + d));
        const c = argmax(x, h);
        cnt[c]++;
        for (let t = 0; t < d; t++) sums[c][t] += x[t];
      }
    }
    return hs.map((old, c) => {
      if (!cnt[c]) return old;
      const moved = Float64Array.from(old, (x, t) => decay * x + ((1 - decay) * sums[c][t]) / cnt[c]);
      let s = 0;
      for (const x of moved) s += x * x;
      return Math.sqrt(s) < 1e-12 ? old : unit(moved);
    });
  });
}

/** DESIGN.md `routing`: balanced routing by unit centroids, dense attention inside each cluster, mean over clusters. */
export const routingSpec: VariantSpec = {
  id: 'routing',
  make: (config) => routingAttention(config as never),
  cases: denseLikeCases(
    divisors,
    fc.record({
      clusters: fc.integer({ min: 1, max: 6 }),
      window: fc.option(fc.integer({ min: 1, max: 24 }), { nil: undefined }),
      causal: fc.boolean(),
      seed: fc.integer({ min: 0, max: 1e6 }),
    }),
  ).map((c0) => {
    // d >= 2: with d = 1 every normalized vector is ±1 and the routing scores tie exactly in
    // float64 but not in float32 (q/‖q‖ rounds), so "ties: lower position" is not testable there.
    const c = { ...c0, d: Math.max(2, c0.d) };
    const { window, ...rest } = c.config as { clusters: number; window?: number; causal: boolean; seed: number };
    const config: Record<string, unknown> = { ...rest, heads: c.heads, dim: c.d };
    if (window !== undefined) config.window = window;
    if (c.seed % 3 === 0) {
      // A third of the cases pass the centroids explicitly (heads and dim then come from them).
      delete config.seed;
      delete config.heads;
      delete config.dim;
      config.centroids = explicitCentroids(c.heads, rest.clusters, c.d, c.seed);
    }
    return { ...c, config };
  }),
  reference: (q, k, v, c) => referenceRouting(q, k, v, c),
  // A cluster's top-w keys are chosen among all real keys, future ones included (DESIGN's
  // definition), so a future key's content can change which past keys a cluster took: what causal
  // promises is that no future *value* reaches a past row, which is what the no-look-ahead and
  // padding properties check for entries that route on keys.
  causal: (c) => !!c.config.causal,
  routesOnKeys: true,
  convexCombination: false,
  growth: { kernel: 'linear', composite: 'linear' },
  // Fixed window: kc = n / 32 clusters of 32 queries and 32 keys.
  memoryCase: (n, seed) => ({
    config: { clusters: Math.ceil(n / 32), window: 32, heads: 2, dim: 16, seed, causal: seed % 2 === 0 },
    batch: 1, heads: 2, kvHeads: 2, n, m: n, d: 16, dv: 16, keyLength: null, seed,
  }),
  badConfigs: fc.oneof(
    fc.record({ clusters: fc.constantFrom(0, -1, 1.5, 'k', null), heads: fc.constant(2), dim: fc.constant(4) }),
    fc.record({ clusters: fc.constant(2), heads: fc.constant(2), dim: fc.constant(4), window: fc.constantFrom(0, -2, 2.5, 'w') }),
    fc.record({ clusters: fc.constant(2), dim: fc.constant(4) }),
    fc.record({ clusters: fc.constant(2), heads: fc.constant(2) }),
    fc.record({ heads: fc.constant(2), dim: fc.constant(4) }),
    fc.record({ clusters: fc.constant(2), heads: fc.constant(2), dim: fc.constant(4), causal: fc.constantFrom(1, 'yes') }),
    fc.record({ clusters: fc.constant(2), heads: fc.constant(2), dim: fc.constant(4), scale: fc.constantFrom(0, -1, Number.NaN) }),
    fc.record({ centroids: fc.constant([[[1, 0], [0, 1]]]), seed: fc.constant(3) }),
    fc.record({ centroids: fc.constant([[[1, 0], [0, 1]]]), clusters: fc.constant(3) }),
    fc.record({ centroids: fc.constant([[[1, 0], [0]]]) }),
    fc.record({ centroids: fc.constant([[[1, Number.NaN]]]) }),
    fc.record({ centroids: fc.constantFrom([], [[]], [[[]]], 'mu') }),
    // Heads/dim that do not match the inputs (the bad-config check applies to `heads` heads of dim 4): throws at apply.
    fc.record({ clusters: fc.constant(2), heads: fc.constant(7), dim: fc.constant(3) }),
    fc.record({ clusters: fc.constant(2), heads: fc.constant(2), dim: fc.constant(4), stride: fc.integer() }),
  ),
  fused: true,
};
