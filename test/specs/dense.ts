import fc from 'fast-check';
import { denseAttention } from '../../src/variants/baseline/dense.js';
import { referenceDense } from '../reference.js';
import type { Case, VariantSpec } from './types.js';

/** Random shapes shared by dense-like specs: n != m, grouped heads, odd head dims, key lengths. */
export function denseLikeCases(kvHeadsOf: (heads: number) => fc.Arbitrary<number>, config: fc.Arbitrary<Record<string, unknown>>): fc.Arbitrary<Case> {
  return fc
    .record({
      batch: fc.integer({ min: 1, max: 2 }),
      heads: fc.constantFrom(1, 2, 4),
      n: fc.integer({ min: 1, max: 40 }),
      m: fc.integer({ min: 1, max: 80 }),
      d: fc.oneof(fc.constantFrom(4, 8, 16), fc.integer({ min: 1, max: 20 })),
      dv: fc.oneof(fc.constantFrom(4, 8), fc.integer({ min: 1, max: 12 })),
      useLength: fc.boolean(),
      seed: fc.integer({ min: 1, max: 1e9 }),
      config,
    })
    .chain((r) =>
      fc.record({
        kvHeads: kvHeadsOf(r.heads),
        keyLength: r.useLength ? fc.array(fc.integer({ min: 0, max: r.m }), { minLength: r.batch, maxLength: r.batch }) : fc.constant(null),
      }).map((x) => ({ ...r, ...x, keyLength: x.keyLength })),
    )
    .map(({ useLength: _u, ...c }) => c as Case);
}

export const divisors = (h: number) => fc.constantFrom(...[1, 2, 4].filter((x) => h % x === 0));

export const denseSpec: VariantSpec = {
  id: 'dense',
  make: (config) => denseAttention(config),
  cases: denseLikeCases(divisors, fc.record({ causal: fc.boolean() }, { requiredKeys: [] })),
  reference: (q, k, v, c) => referenceDense(q, k, v, { causal: !!c.config.causal, keyLength: c.keyLength }),
  causal: (c) => !!c.config.causal,
  convexCombination: true,
  growth: { kernel: 'linear', composite: 'quadratic' },
  memoryCase: (n, seed) => ({ config: { causal: seed % 2 === 0 }, batch: 1, heads: 2, kvHeads: 2, n, m: n, d: 16, dv: 16, keyLength: null, seed }),
  badConfigs: fc.oneof(
    fc.record({ causal: fc.constantFrom(1, 'yes', null) }),
    fc.record({ scale: fc.constantFrom(0, -1, Number.NaN, Infinity, '1') }),
    fc.record({ window: fc.integer() }),
  ),
  fused: true,
};
