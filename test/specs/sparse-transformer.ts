import fc from 'fast-check';
import { sparseTransformerAttention } from '../../src/variants/combined/sparse-transformer.js';
import { badInts, baseFields, lengths, memoryShape, mod, patternCases, patternReference, sqrtPow2, type Allowed } from './pattern-common.js';
import type { VariantSpec } from './types.js';

/**
 * DESIGN.md `sparse-transformer`: strided: |p_i − j| < t or (p_i − j) mod t == 0; fixed:
 * block_t(j) == block_t(p_i) or j mod t >= t − c. One softmax over the union.
 */
const allowed: Allowed = (p, j, _h, c) => {
    const t = c.config.stride as number;
    if (c.config.pattern === 'strided') return Math.abs(p - j) < t || mod(p - j, t) === 0;
    const s = c.config.summary as number;
    return Math.floor(j / t) === Math.floor(p / t) || j % t >= t - s;
  };

export const sparseTransformerSpec: VariantSpec = {
  id: 'sparse-transformer',
  make: (config) => sparseTransformerAttention(config),
  cases: patternCases(
    fc
      .record({ stride: fc.integer({ min: 1, max: 10 }), pattern: fc.constantFrom('strided', 'fixed'), c: fc.integer({ min: 1, max: 10 }), ...baseFields })
      .chain(({ c, ...config }) => lengths().map((l) => ({ config: { ...config, summary: Math.min(c, config.stride) }, ...l }))),
  ),
  allowed,
  reference: patternReference(allowed),
  causal: (c) => !!c.config.causal,
  convexCombination: true,
  // O(n·(t + m/t)): with t ≈ sqrt(n), n^1.5 for the composite; the fused kernel keeps O(n).
  growth: { kernel: 'linear', composite: 'n^1.5' },
  memoryCase: (n, seed) =>
    memoryShape(n, seed, { stride: sqrtPow2(n), pattern: seed % 2 === 0 ? 'strided' : 'fixed', summary: 4, causal: seed % 3 === 0 }),
  badConfigs: fc.oneof(
    fc.record({ stride: badInts(1) }),
    fc.record({ pattern: fc.constantFrom('dense', 1, null) }),
    fc.record({ stride: fc.constant(4), summary: fc.constantFrom(0, 5, 1.5) }),
  ),
  fused: true,
};
