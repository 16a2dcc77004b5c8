import fc from 'fast-check';
import { localAttention } from '../../src/variants/fixed/local.js';
import { badInts, baseFields, lengths, memoryShape, patternCases, patternReference, type Allowed } from './pattern-common.js';
import type { VariantSpec } from './types.js';

/** DESIGN.md `local`: |p_i − j| <= w (causal on top). */
const allowed: Allowed = (p, j, _h, c) => Math.abs(p - j) <= (c.config.window as number);

export const localSpec: VariantSpec = {
  id: 'local',
  make: (config) => localAttention(config),
  cases: patternCases(
    fc.record({ window: fc.integer({ min: 0, max: 12 }), ...baseFields }).chain((config) => lengths().map((l) => ({ config, ...l }))),
  ),
  allowed,
  reference: patternReference(allowed),
  causal: (c) => !!c.config.causal,
  convexCombination: true,
  growth: { kernel: 'linear', composite: 'linear' },
  // window > 192: even causal rows visit more than 256 keys, so the kernel splits (O(n) partials).
  memoryCase: (n, seed) => memoryShape(n, seed, { window: 200, causal: seed % 2 === 0 }, 1, 1),
  badConfigs: fc.oneof(
    fc.record({ window: badInts(0) }),
    fc.record({ causal: fc.constantFrom('yes', 1) }),
    fc.record({ stride: fc.constant(2) }),
    fc.record({ window: fc.constant(4), n: fc.constant(8) }),
  ),
  fused: true,
};
