import fc from 'fast-check';
import { groupedQueryAttention, multiQueryAttention } from '../../src/variants/memory-saving/multi-query.js';
import { referenceDense } from '../reference.js';
import { denseLikeCases, divisors } from './dense.js';
import type { VariantSpec } from './types.js';

/** Multi-query (kvHeads = 1) and grouped-query (kvHeads = groups) in one spec: config.groups picks the factory. */
export const multiQuerySpec: VariantSpec = {
  id: 'multi-query',
  make: (config) => (config.groups === undefined ? multiQueryAttention(config) : groupedQueryAttention(config as never)),
  cases: denseLikeCases(divisors, fc.record({ causal: fc.boolean() }, { requiredKeys: [] })).map((c) => ({
    ...c,
    config: c.kvHeads === 1 && c.seed % 2 === 0 ? c.config : { ...c.config, groups: c.kvHeads },
  })),
  reference: (q, k, v, c) => referenceDense(q, k, v, { causal: !!c.config.causal, keyLength: c.keyLength }),
  causal: (c) => !!c.config.causal,
  convexCombination: true,
  growth: { kernel: 'linear', composite: 'quadratic' },
  memoryCase: (n, seed) => ({ config: { causal: true, groups: 2 }, batch: 1, heads: 4, kvHeads: 2, n, m: n, d: 16, dv: 16, keyLength: null, seed }),
  badConfigs: fc.oneof(
    fc.record({ groups: fc.constantFrom(0, -2, 1.5, '2') }),
    fc.record({ causal: fc.constantFrom('no', 0) }),
    fc.record({ groups: fc.constant(2), heads: fc.constant(3) }),
  ),
  fused: true,
};
