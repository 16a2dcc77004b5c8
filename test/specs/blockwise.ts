import fc from 'fast-check';
import { blockwiseAttention } from '../../src/variants/fixed/blockwise.js';
import { badInts, baseFields, lengths, memoryShape, patternCases, patternReference, type Allowed } from './pattern-common.js';
import type { VariantSpec } from './types.js';

/** DESIGN.md `blockwise`: block(p_i) − L <= block(j) <= block(p_i), blocks of b positions. */
const allowed: Allowed = (p, j, _h, c) => {
    const b = c.config.block as number;
    const L = c.config.lookback as number;
    const bp = Math.floor(p / b);
    const bj = Math.floor(j / b);
    return bj <= bp && bj >= bp - L;
  };

export const blockwiseSpec: VariantSpec = {
  id: 'blockwise',
  make: (config) => blockwiseAttention(config),
  cases: patternCases(
    fc
      .record({ block: fc.integer({ min: 1, max: 12 }), lookback: fc.integer({ min: 0, max: 3 }), ...baseFields })
      .chain((config) => lengths().map((l) => ({ config, ...l }))),
  ),
  allowed,
  reference: patternReference(allowed),
  causal: (c) => !!c.config.causal,
  convexCombination: true,
  growth: { kernel: 'linear', composite: 'linear' },
  memoryCase: (n, seed) => memoryShape(n, seed, { block: 128, lookback: 2, causal: seed % 2 === 0 }, 1, 1),
  badConfigs: fc.oneof(fc.record({ block: badInts(1) }), fc.record({ lookback: badInts(0) }), fc.record({ window: fc.constant(3) })),
  fused: true,
};
