import fc from 'fast-check';
import { compressedAttention } from '../../src/variants/fixed/compressed.js';
import { referenceWeighted, type Host4 } from '../reference.js';
import { badInts, clean, memoryShape, sqrtPow2 } from './pattern-common.js';
import type { Case, VariantSpec } from './types.js';

/**
 * DESIGN.md `compressed`, in float64: key block c (positions c·t … c·t + t − 1, real ones only:
 * below m and keyLength[b]) becomes one key — the mean of its real keys, or Σ_u k_{c·t+u}·K[u]
 * with missing positions as zero — and exists iff it has a real key; causal: c is allowed iff
 * min(c·t + t − 1, m − 1) <= p_i.
 */
export function compressedReference(q: Host4, k: Host4, v: Host4, c: Case): Host4 {
  const t = c.config.stride as number;
  const conv = c.config.mode === 'conv';
  const kernels = c.config.kernels as { k: number[][][]; v: number[][][] } | undefined;
  const [B, KH, m] = k.shape;
  const C = Math.ceil(m / t);
  const compress = (x: Host4, W: number[][][] | undefined): Host4 => {
    const dim = x.shape[3];
    const out = new Float64Array(B * KH * C * dim);
    for (let b = 0; b < B; b++) {
      const lim = Math.min(m, c.keyLength ? c.keyLength[b] : m);
      for (let kh = 0; kh < KH; kh++)
        for (let blk = 0; blk < C; blk++) {
          const o = ((b * KH + kh) * C + blk) * dim;
          let count = 0;
          for (let u = 0; u < t; u++) {
            const pos = blk * t + u;
            if (pos >= lim) continue;
            count++;
            const xo = ((b * KH + kh) * m + pos) * dim;
            for (let i = 0; i < dim; i++) {
              if (conv) for (let oo = 0; oo < dim; oo++) out[o + oo] += x.data[xo + i] * W![u][i][oo];
              else out[o + i] += x.data[xo + i];
            }
          }
          if (!conv && count > 0) for (let i = 0; i < dim; i++) out[o + i] /= count;
        }
    }
    return { shape: [B, KH, C, dim], data: out };
  };
  const kc = compress(k, kernels?.k);
  const vc = compress(v, kernels?.v);
  const scale = (c.config.scale as number | undefined) ?? 1 / Math.sqrt(c.d);
  return referenceWeighted(q, kc, vc, scale, (b, _h, i, blk) => {
    const lim = Math.min(m, c.keyLength ? c.keyLength[b] : m);
    if (blk * t >= lim) return 0;
    const p = i + m - c.n;
    if (c.config.causal && Math.min(blk * t + t - 1, m - 1) > p) return 0;
    return 1;
  });
}

const matrices = (t: number, dim: number) =>
  fc.array(fc.array(fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: dim, maxLength: dim }), { minLength: dim, maxLength: dim }), {
    minLength: t,
    maxLength: t,
  });

export const compressedSpec: VariantSpec = {
  id: 'compressed',
  make: (config) => compressedAttention(config),
  cases: fc
    .record({
      batch: fc.integer({ min: 1, max: 2 }),
      heads: fc.constantFrom(1, 2, 4),
      n: fc.integer({ min: 1, max: 30 }),
      m: fc.integer({ min: 1, max: 60 }),
      d: fc.oneof(fc.constantFrom(4, 8), fc.integer({ min: 1, max: 9 })),
      dv: fc.oneof(fc.constantFrom(4, 8), fc.integer({ min: 1, max: 9 })),
      stride: fc.integer({ min: 1, max: 6 }),
      conv: fc.boolean(),
      causal: fc.boolean(),
      scale: fc.oneof(fc.constant(undefined), fc.constant(0.4)),
      useLength: fc.boolean(),
      seed: fc.integer({ min: 1, max: 1e9 }),
    })
    .chain((r) =>
      fc
        .record({
          kvHeads: fc.constantFrom(...[1, 2, 4].filter((x) => r.heads % x === 0)),
          keyLength: r.useLength ? fc.array(fc.integer({ min: 0, max: r.m }), { minLength: r.batch, maxLength: r.batch }) : fc.constant(null),
          kernels: r.conv ? fc.record({ k: matrices(r.stride, r.d), v: matrices(r.stride, r.dv) }) : fc.constant(undefined),
        })
        .map(
          (x): Case => ({
            config: clean({ stride: r.stride, mode: r.conv ? 'conv' : 'mean', kernels: x.kernels, causal: r.causal, scale: r.scale }),
            batch: r.batch,
            heads: r.heads,
            kvHeads: x.kvHeads,
            n: r.n,
            m: r.m,
            d: r.d,
            dv: r.dv,
            keyLength: x.keyLength,
            seed: r.seed,
          }),
        ),
    ),
  reference: compressedReference,
  causal: (c) => !!c.config.causal,
  // Mode 'conv' outputs averages of convolved values, not of rows of v; the mean mode's
  // weights-are-a-distribution check is in patterns.test.ts.
  convexCombination: false,
  // O(n·m/t) scores: with t ≈ sqrt(n), n^1.5 for the composite; fused: the attention's O(n) plus
  // the pooled K and V, (m/t)·d = sqrt(n)·d here (the pooling kernel keeps no O(m·d) intermediate).
  growth: { kernel: 'sqrt..linear', composite: 'n^1.5' },
  memoryCase: (n, seed) => memoryShape(n, seed, { stride: sqrtPow2(n), mode: seed % 2 === 0 ? 'mean' : 'conv', causal: seed % 3 === 0 }),
  badConfigs: fc.oneof(
    fc.record({ stride: badInts(1) }),
    fc.record({ mode: fc.constantFrom('max', 0) }),
    fc.record({ mode: fc.constant('mean'), kernels: fc.constant({ k: [[[1]]], v: [[[1]]] }) }),
    fc.record({ mode: fc.constant('mean'), seed: fc.constant(3) }),
    fc.record({ mode: fc.constant('conv'), stride: fc.constant(2), kernels: fc.constantFrom({ k: [[[1]]], v: [[[1]]] }, { k: [[[1, 2]], [[1, 2]]], v: [[[1]], [[1]]] }, null, 'w') }),
    // d = 4 at apply: 1×1 kernels do not match it.
    fc.record({ mode: fc.constant('conv'), stride: fc.constant(1), kernels: fc.constant({ k: [[[1]]], v: [[[1]]] }) }),
  ),
  fused: true,
  learned: {
    // Mode 'conv' only: variables [k, v], the kernels [t·d, d] and [t·dv, dv] (the explicit [t, d, d], [t, dv, dv] flattened).
    cases: fc.constant(null).chain(() => compressedGradCases.filter((c) => c.config.mode === 'conv')).map((c) => ({ ...c, config: { ...c.config, trainable: true } })),
    params: (c) => {
      const { k, v } = c.config.kernels as { k: number[][][]; v: number[][][] };
      const t = c.config.stride as number;
      return [
        { name: 'k', shape: [t * c.d, c.d], data: Float64Array.from(k.flat(2)) },
        { name: 'v', shape: [t * c.dv, c.dv], data: Float64Array.from(v.flat(2)) },
      ];
    },
    withParams: (c, [k, v]) => {
      const t = c.config.stride as number;
      const cube = (x: Float64Array, dim: number) => Array.from({ length: t }, (_, u) => Array.from({ length: dim }, (_, a) => Array.from(x.subarray((u * dim + a) * dim, (u * dim + a + 1) * dim))));
      return { ...c, config: { ...c.config, kernels: { k: cube(k, c.d), v: cube(v, c.dv) } } };
    },
  },
};

/** The gradient suite's compressed cases (tiny shapes). */
const compressedGradCases: fc.Arbitrary<Case> = fc.constant(null).chain(() =>
  compressedSpec.cases.filter((c) => c.batch * c.heads <= 4 && c.n <= 12 && c.m <= 16 && c.d <= 6 && c.dv <= 6),
);

