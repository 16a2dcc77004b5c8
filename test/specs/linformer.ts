import fc from 'fast-check';
import { linformerAttention, linformerProjections } from '../../src/variants/memory-saving/linformer.js';
import { referenceDense, type Host4 } from '../reference.js';
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

function explicitProjection(k: number, len: number, seed: number): number[][] {
  const vals = hostUniform(k * len, seed, 0.5);
  return Array.from({ length: k }, (_, r) => Array.from(vals.subarray(r * len, (r + 1) * len)));
}

/** E and F `[k][maxLength]` of a case's variant: explicit, or the seeded generator's. */
function projectionsOf(c: Case): { e: number[][]; f: number[][] } {
  const p = c.config.projections as { e: number[][]; f?: number[][] } | undefined;
  if (p) return { e: p.e, f: p.f ?? p.e };
  const k = c.config.k as number;
  const len = c.config.maxLength as number;
  const host = linformerProjections(k, len, (c.config.seed as number | undefined) ?? 0x5eed, !!c.config.shareKV);
  const rows = (a: Float32Array) => Array.from({ length: k }, (_, r) => Array.from(a.subarray(r * len, (r + 1) * len)));
  return { e: rows(host.e), f: rows(host.f ?? host.e) };
}

/** P[:, :m] · X over the real rows of X (j < keyLength[b]): `[B, KH, k, dim]`. */
function project(p: number[][], x: Host4, keyLength: number[] | null): Host4 {
  const [B, KH, m, dim] = x.shape;
  const k = p.length;
  const out = new Float64Array(B * KH * k * dim);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < KH; h++)
      for (let r = 0; r < k; r++)
        for (let j = 0; j < m; j++) {
          if (keyLength && j >= keyLength[b]) continue;
          for (let t = 0; t < dim; t++) out[((b * KH + h) * k + r) * dim + t] += p[r][j] * x.data[((b * KH + h) * m + j) * dim + t];
        }
  return { shape: [B, KH, k, dim], data: out };
}

/** DESIGN.md `linformer`: dense attention over E·K and F·V (first m columns, real keys only). */
export const linformerSpec: VariantSpec = {
  id: 'linformer',
  make: (config) => linformerAttention(config as never),
  cases: denseLikeCases(
    divisors,
    fc.record({ k: fc.integer({ min: 1, max: 12 }), extra: fc.integer({ min: 0, max: 20 }), shareKV: fc.boolean(), seed: fc.integer({ min: 0, max: 1e6 }) }),
  ).map((c) => {
    const { extra, ...rest } = c.config as { extra: number; k: number; shareKV: boolean; seed: number };
    const config: Record<string, unknown> = { ...rest, maxLength: c.m + extra };
    if (c.seed % 3 === 0) {
      // A third of the cases pass the projections explicitly.
      delete config.seed;
      const e = explicitProjection(rest.k, c.m + extra, c.seed);
      config.projections = rest.shareKV ? { e } : { e, f: explicitProjection(rest.k, c.m + extra, c.seed + 1) };
    }
    return { ...c, config };
  }),
  reference: (q, k, v, c) => {
    const { e, f } = projectionsOf(c);
    return referenceDense(q, project(e, k, c.keyLength), project(f, v, c.keyLength), { causal: false });
  },
  causal: () => false,
  nonCausal: true,
  convexCombination: false,
  growth: { kernel: 'linear', composite: 'linear' },
  memoryCase: (n, seed) => ({ config: { k: 32, maxLength: n, seed }, batch: 1, heads: 2, kvHeads: 2, n, m: n, d: 16, dv: 16, keyLength: null, seed }),
  badConfigs: fc.oneof(
    fc.record({ k: fc.constant(2), maxLength: fc.constant(8), causal: fc.constant(true) }),
    fc.record({ k: fc.constantFrom(0, -1, 1.5, 'k'), maxLength: fc.constant(8) }),
    fc.record({ k: fc.constant(2) }),
    fc.record({ k: fc.constant(2), maxLength: fc.constant(3) }), // m = 4 > maxLength: throws at apply
    fc.record({ k: fc.constant(2), maxLength: fc.constant(8), shareKV: fc.constantFrom('yes', 1) }),
    fc.record({ maxLength: fc.constant(8), seed: fc.constant(1), projections: fc.constant({ e: [[1, 2, 3, 4, 5, 6, 7, 8]], f: [[1, 2, 3, 4, 5, 6, 7, 8]] }) }),
    fc.record({ projections: fc.constant({ e: [[1, 2, 3, 4]], f: [[1, 2, 3]] }) }),
    fc.record({ projections: fc.constant({ e: [[1, 2, 3, 4]] }) }),
    fc.record({ k: fc.constant(2), maxLength: fc.constant(8), window: fc.integer() }),
  ),
  fused: true,
  learned: {
    // Variables [e, f] ([e] with shareKV), each [k, maxLength].
    params: (c) => {
      const { e, f } = projectionsOf(c);
      const flat = (name: string, p: number[][]) => ({ name, shape: [p.length, p[0].length], data: Float64Array.from(p.flat()) });
      return c.config.shareKV ? [flat('e', e)] : [flat('e', e), flat('f', f)];
    },
    withParams: (c, values) => {
      const { e } = projectionsOf(c);
      const [k, len] = [e.length, e[0].length];
      const rows = (x: Float64Array) => Array.from({ length: k }, (_, r) => Array.from(x.subarray(r * len, (r + 1) * len)));
      const { seed: _seed, ...config } = c.config;
      config.projections = c.config.shareKV ? { e: rows(values[0]) } : { e: rows(values[0]), f: rows(values[1]) };
      return { ...c, config };
    },
  },
};
