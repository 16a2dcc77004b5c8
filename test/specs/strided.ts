import fc from 'fast-check';
import { stridedAttention } from '../../src/variants/fixed/strided.js';
import { badInts, baseFields, lengths, memoryShape, mod, patternCases, patternReference, sqrtPow2, type Allowed } from './pattern-common.js';
import type { VariantSpec } from './types.js';

/** DESIGN.md `strided`: (p_i − j) mod t == 0. */
const allowed: Allowed = (p, j, _h, c) => mod(p - j, c.config.stride as number) === 0;

export const stridedSpec: VariantSpec = {
  id: 'strided',
  make: (config) => stridedAttention(config),
  cases: patternCases(fc.record({ stride: fc.integer({ min: 1, max: 12 }), ...baseFields }).chain((config) => lengths().map((l) => ({ config, ...l })))),
  allowed,
  reference: patternReference(allowed),
  causal: (c) => !!c.config.causal,
  convexCombination: true,
  // O(n·m/t): with t ≈ sqrt(n) the composite grows as n^1.5; the fused kernel keeps O(n).
  growth: { kernel: 'linear', composite: 'n^1.5' },
  memoryCase: (n, seed) => memoryShape(n, seed, { stride: sqrtPow2(n), causal: seed % 2 === 0 }),
  badConfigs: fc.oneof(fc.record({ stride: badInts(1) }), fc.record({ strides: fc.constant(2) })),
  fused: true,
};
