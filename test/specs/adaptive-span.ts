import fc from 'fast-check';
import { adaptiveSpanAttention } from '../../src/variants/adaptive/adaptive-span.js';
import { referenceWeighted } from '../reference.js';
import { denseLikeCases, divisors } from './dense.js';
import type { Case, VariantSpec } from './types.js';

/** DESIGN.md `adaptive-span`: m(x) = clamp((R + z_h − x)/R, 0, 1), z_h clamped to [0, S]. */
export function spanWeight(c: Case): (b: number, h: number, i: number, j: number) => number {
  const S = c.config.maxSpan as number;
  const R = (c.config.ramp as number | undefined) ?? 32;
  const z = c.config.z as number[];
  return (b, h, i, j) => {
    if (c.keyLength && j >= c.keyLength[b]) return 0;
    const p = i + (c.m - c.n);
    if (c.config.causal && j > p) return 0;
    const x = Math.abs(p - j);
    const zh = Math.min(S, Math.max(0, z[h]));
    return Math.min(1, Math.max(0, (R + zh - x) / R));
  };
}

export const adaptiveSpanSpec: VariantSpec = {
  id: 'adaptive-span',
  make: (config) => adaptiveSpanAttention(config as never),
  cases: denseLikeCases(
    divisors,
    fc.record({ maxSpan: fc.integer({ min: 1, max: 14 }), ramp: fc.integer({ min: 1, max: 6 }), causal: fc.boolean() }, { requiredKeys: ['maxSpan', 'ramp'] }),
  ).map((c) => {
    // One span per query head, some outside [0, S] (clamped by the definition).
    const S = c.config.maxSpan as number;
    const z = Array.from({ length: c.heads }, (_, h) => (((c.seed >>> (3 * h)) % 1000) / 1000) * (S + 3) - 1);
    return { ...c, config: { ...c.config, z } };
  }),
  reference: (q, k, v, c) => referenceWeighted(q, k, v, 1 / Math.sqrt(q.shape[3]), spanWeight(c)),
  causal: (c) => !!c.config.causal,
  convexCombination: true,
  growth: { kernel: 'linear', composite: 'linear' },
  memoryCase: (n, seed) => ({
    config: { maxSpan: 128, ramp: 32, heads: 2 },
    batch: 1, heads: 2, kvHeads: 1, n, m: n, d: 16, dv: 16, keyLength: null, seed,
  }),
  badConfigs: fc.oneof(
    fc.record({ maxSpan: fc.constantFrom(0, -1, 2.5, '4', undefined), heads: fc.constant(2) }),
    fc.record({ maxSpan: fc.constant(4), ramp: fc.constantFrom(0, 1.5, 'r'), heads: fc.constant(2) }),
    fc.record({ maxSpan: fc.constant(4) }),
    fc.record({ maxSpan: fc.constant(4), z: fc.constantFrom([1, 2, 3], [], [Number.NaN, 1], 'z') }),
    fc.record({ maxSpan: fc.constant(4), z: fc.constant([1, 2]), heads: fc.constant(3) }),
    fc.record({ maxSpan: fc.constant(4), heads: fc.constant(2), causal: fc.constantFrom('yes', 0) }),
    fc.record({ maxSpan: fc.constant(4), heads: fc.constant(2), window: fc.integer() }),
  ),
  fused: true,
  learned: {
    // z is clamped to [0, S] and the mask clamp((R + z − x)/R, 0, 1) has kinks at integer z (x,
    // R, S are integers): the cases move each z_h off the integers (and keep some outside [0, S]).
    cases: fc.constant(null).chain(() => adaptiveGradCases).map((c) => ({
      ...c,
      config: { ...c.config, trainable: true, z: (c.config.z as number[]).map((z) => (Math.abs(z - Math.round(z)) < 0.05 ? z + 0.3 : z)) },
    })),
    params: (c) => [{ name: 'z', shape: [c.heads], data: Float64Array.from(c.config.z as number[]) }],
    withParams: (c, [z]) => ({ ...c, config: { ...c.config, z: Array.from(z) } }),
  },
};

const adaptiveGradCases: fc.Arbitrary<Case> = fc.constant(null).chain(() =>
  adaptiveSpanSpec.cases.filter((c) => c.batch * c.heads <= 4 && c.n <= 12 && c.m <= 16 && c.d <= 6 && c.dv <= 6),
);
