import fc from 'fast-check';
import { etcAttention } from '../../src/variants/side-memory/etc.js';
import { badInts, baseFields, lengths, memoryShape, patternCases, patternReference, type Allowed } from './pattern-common.js';
import type { VariantSpec } from './types.js';

/** DESIGN.md `etc`: the first g positions are global: allowed if p_i < g or j < g, or |p_i − j| <= r. */
const allowed: Allowed = (p, j, _h, c) => {
    const g = c.config.globalTokens as number;
    return p < g || j < g || Math.abs(p - j) <= (c.config.radius as number);
  };

export const etcSpec: VariantSpec = {
  id: 'etc',
  make: (config) => etcAttention(config),
  cases: patternCases(
    fc
      .record({ globalTokens: fc.integer({ min: 0, max: 6 }), radius: fc.integer({ min: 0, max: 10 }), ...baseFields })
      .chain((config) => lengths().map((l) => ({ config, ...l }))),
  ),
  allowed,
  reference: patternReference(allowed),
  causal: (c) => !!c.config.causal,
  convexCombination: true,
  growth: { kernel: 'linear', composite: 'linear' },
  // radius > 192: even causal rows visit more than 256 keys, so the kernel splits (O(n) partials).
  memoryCase: (n, seed) => memoryShape(n, seed, { globalTokens: 4, radius: 200, causal: seed % 2 === 0 }, 1, 1),
  badConfigs: fc.oneof(fc.record({ globalTokens: badInts(0) }), fc.record({ radius: badInts(0) }), fc.record({ global: fc.constant([0]) })),
  fused: true,
};
