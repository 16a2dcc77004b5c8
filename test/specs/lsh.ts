import fc from 'fast-check';
import { defaultBuckets, lshAttention, lshRotations } from '../../src/variants/learnable/lsh.js';
import { referenceWeighted, type Host4 } from '../reference.js';
import type { Case, VariantSpec } from './types.js';

/** Seeded values uniform in [-1, 1] (xorshift; host only). */
function hostUniform(count: number, seed: number): number[] {
  let x = seed >>> 0 || 1;
  return Array.from({ length: count }, () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return (x / 4294967296) * 2 - 1;
  });
}

interface LshCaseConfig {
  bucketSize: number;
  hashes?: number;
  buckets?: number;
  causal?: boolean;
  seed?: number;
  rotations?: number[][][];
}

/** Rotations R[r][t][a] of a case: explicit, or the seeded generator's. */
function rotationsOf(c: Case): { R: (r: number, t: number, a: number) => number; nh: number; nb: number } {
  const cfg = c.config as unknown as LshCaseConfig;
  if (cfg.rotations) {
    const rot = cfg.rotations;
    return { R: (r, t, a) => rot[r][t][a], nh: rot.length, nb: 2 * rot[0][0].length };
  }
  const nh = cfg.hashes ?? 2;
  const nb = cfg.buckets ?? defaultBuckets(c.m, cfg.bucketSize);
  const half = nb / 2;
  const host = lshRotations(nh, c.d, nb, cfg.seed ?? 0x5eed);
  return { R: (r, t, a) => host[(r * c.d + t) * half + a], nh, nb };
}

/**
 * DESIGN.md `lsh` in float64: per round, the hash `argmax([x·R_r; −x·R_r])` (first maximum) of
 * each real position, the real positions sorted by (bucket, position) and cut into chunks of c,
 * P_i^r = same bucket in the same or the previous chunk; the union over rounds; causal; the
 * self rule. The hashes are computed once per (batch, head); a row's allowed set on first use
 * (so that sampled rows of a long sequence cost O(n) each).
 *
 * @param q - the queries `[B, H, n, d]` (row-major, any float array)
 */
export function lshAllowed(q: { shape: readonly number[]; data: ArrayLike<number> }, c: Pick<Case, 'config' | 'keyLength' | 'm' | 'd'>): (b: number, h: number, i: number, j: number) => number {
  const [, H, n, d] = q.shape;
  const cfg = c.config as unknown as LshCaseConfig;
  const { R, nh, nb } = rotationsOf(c as Case);
  const half = nb / 2;
  const hashes = new Map<number, { bucket: Int32Array[]; chunk: Int32Array[] }>();
  const rowsOf = new Map<string, Set<number>>();
  const hashed = (b: number, h: number) => {
    let e = hashes.get(b * H + h);
    if (e) return e;
    const L = c.keyLength ? c.keyLength[b] : n;
    const bucket: Int32Array[] = [];
    const chunk: Int32Array[] = [];
    for (let r = 0; r < nh; r++) {
      const bk = new Int32Array(L);
      for (let i = 0; i < L; i++) {
        let best = -Infinity;
        let arg = 0;
        const proj = new Float64Array(half);
        for (let a = 0; a < half; a++) {
          let s = 0;
          for (let t = 0; t < d; t++) s += q.data[((b * H + h) * n + i) * d + t] * R(r, t, a);
          proj[a] = s;
        }
        for (let x = 0; x < nb; x++) {
          const val = x < half ? proj[x] : -proj[x - half];
          if (val > best) {
            best = val;
            arg = x;
          }
        }
        bk[i] = arg;
      }
      const order = Array.from({ length: L }, (_, i) => i).sort((x, y) => bk[x] - bk[y] || x - y);
      const ch = new Int32Array(L);
      order.forEach((pos, s) => (ch[pos] = Math.floor(s / cfg.bucketSize)));
      bucket.push(bk);
      chunk.push(ch);
    }
    e = { bucket, chunk };
    hashes.set(b * H + h, e);
    return e;
  };
  const row = (b: number, h: number, i: number) => {
    const key = `${b},${h},${i}`;
    let set = rowsOf.get(key);
    if (set) return set;
    set = new Set<number>();
    const L = c.keyLength ? c.keyLength[b] : n;
    if (i < L) {
      const { bucket, chunk } = hashed(b, h);
      for (let j = 0; j < L; j++) {
        if (j === i || (cfg.causal && j > i)) continue;
        for (let r = 0; r < nh; r++) {
          if (bucket[r][i] === bucket[r][j] && (chunk[r][j] === chunk[r][i] || chunk[r][j] === chunk[r][i] - 1)) {
            set.add(j);
            break;
          }
        }
      }
      if (set.size === 0) set.add(i);
    }
    rowsOf.set(key, set);
    return set;
  };
  return (b, h, i, j) => (row(b, h, i).has(j) ? 1 : 0);
}

/** q_j/‖q_j‖ in float64 (a zero row stays zero): LSH's keys. */
export function normalized(q: Host4): Host4 {
  const [B, H, n, d] = q.shape;
  const out = new Float64Array(q.data.length);
  for (let r = 0; r < B * H * n; r++) {
    let s = 0;
    for (let t = 0; t < d; t++) s += q.data[r * d + t] ** 2;
    const norm = Math.sqrt(s);
    for (let t = 0; t < d; t++) out[r * d + t] = norm > 0 ? q.data[r * d + t] / norm : 0;
  }
  return { shape: [B, H, n, d], data: out };
}

const lshCases: fc.Arbitrary<Case> = fc
  .record({
    batch: fc.integer({ min: 1, max: 2 }),
    heads: fc.integer({ min: 1, max: 3 }),
    n: fc.integer({ min: 1, max: 70 }),
    d: fc.integer({ min: 2, max: 12 }),
    dv: fc.integer({ min: 1, max: 9 }),
    bucketSize: fc.integer({ min: 1, max: 16 }),
    hashes: fc.integer({ min: 1, max: 3 }),
    buckets: fc.option(fc.integer({ min: 1, max: 8 }).map((x) => 2 * x), { nil: undefined }),
    causal: fc.boolean(),
    explicit: fc.boolean(),
    lengths: fc.option(fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 2, maxLength: 2 }), { nil: undefined }),
    seed: fc.integer({ min: 1, max: 1e6 }),
  })
  .map((r) => {
    const config: Record<string, unknown> = { bucketSize: r.bucketSize, causal: r.causal };
    if (r.explicit) {
      const nb = r.buckets ?? 2 * (1 + (r.seed % 4));
      const vals = hostUniform(r.hashes * r.d * (nb / 2), r.seed + 7);
      config.rotations = Array.from({ length: r.hashes }, (_, h) => Array.from({ length: r.d }, (_, t) => vals.slice((h * r.d + t) * (nb / 2), (h * r.d + t + 1) * (nb / 2))));
    } else {
      config.hashes = r.hashes;
      if (r.buckets !== undefined) config.buckets = r.buckets;
      config.seed = r.seed;
    }
    const keyLength = r.lengths ? Array.from({ length: r.batch }, (_, b) => Math.round(r.lengths![b] * r.n)) : null;
    return { config, batch: r.batch, heads: r.heads, kvHeads: r.heads, n: r.n, m: r.n, d: r.d, dv: r.dv, keyLength, seed: r.seed, sharedQK: true } as Case;
  });

/** DESIGN.md `lsh` (Reformer, shared-QK): see {@link lshAllowed}. */
export const lshSpec: VariantSpec = {
  id: 'lsh',
  make: (config) => lshAttention(config as never),
  cases: lshCases,
  reference: (q, _k, v, c) => referenceWeighted(q, normalized(q), v, 1 / Math.sqrt(c.d), lshAllowed(q, c)),
  causal: (c) => !!c.config.causal,
  // Shared QK: future queries are future keys, hashed into the sorted order of past positions.
  routesOnKeys: true,
  convexCombination: true,
  growth: { kernel: 'linear', composite: 'linear' },
  memoryCase: (n, seed) => ({ config: { bucketSize: 16, hashes: 2, seed }, batch: 1, heads: 2, kvHeads: 2, n, m: n, d: 16, dv: 16, keyLength: null, seed, sharedQK: true }),
  badConfigs: fc.oneof(
    fc.record({ bucketSize: fc.constantFrom(0, -1, 1.5, 'c') }),
    fc.record({ hashes: fc.constantFrom(0, 1.5, 17) }),
    fc.record({ buckets: fc.constantFrom(3, 1, 0, 'x') }),
    fc.record({ seed: fc.constant(1), rotations: fc.constant([[[1]]]) }),
    fc.record({ rotations: fc.constant([[[1, 2], [3]]]) }),
    fc.record({ rotations: fc.constant([[[1]]]), hashes: fc.constant(2) }),
    fc.record({ rotations: fc.constant([[[1]]]), buckets: fc.constant(4) }),
    fc.record({ causal: fc.constantFrom('yes', 1) }),
    fc.record({ window: fc.integer() }),
  ),
  fused: true,
  kernelStrategies: ['rows'],
};
