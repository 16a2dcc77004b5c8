import fc from 'fast-check';
import { linearAttention } from '../../src/variants/kernelized/linear.js';
import { denseLikeCases, divisors } from './dense.js';
import { logElu1, logRelu, referenceKernelized } from './kernelized-reference.js';
import type { VariantSpec } from './types.js';

/** DESIGN.md `linear`: φ(q)·Σφ(k)vᵀ / φ(q)·Σφ(k) over allowed keys, φ = elu+1 or relu. */
export const linearSpec: VariantSpec = {
  id: 'linear',
  make: (config) => linearAttention(config),
  cases: denseLikeCases(divisors, fc.record({ featureMap: fc.constantFrom('elu+1', 'relu'), causal: fc.boolean() }, { requiredKeys: [] })),
  reference: (q, k, v, c) =>
    referenceKernelized(q, k, v, { causal: !!c.config.causal, keyLength: c.keyLength, phi: c.config.featureMap === 'relu' ? logRelu : logElu1 }),
  causal: (c) => !!c.config.causal,
  // Weights φ(q_i)·φ(k_j) / Σ_j are non-negative and sum to 1: outputs are averages of v.
  convexCombination: true,
  growth: { kernel: 'linear', composite: 'linear' },
  memoryCase: (n, seed) => ({
    config: { causal: true, featureMap: seed % 2 === 0 ? 'elu+1' : 'relu' },
    batch: 1, heads: 2, kvHeads: 1, n, m: n, d: 16, dv: 16, keyLength: null, seed,
  }),
  badConfigs: fc.oneof(
    fc.record({ featureMap: fc.constantFrom('softmax', 'elu', 1, null) }),
    fc.record({ causal: fc.constantFrom(1, 'yes', null) }),
    fc.record({ scale: fc.constant(0.5) }),
    fc.record({ features: fc.integer() }),
  ),
  fused: true,
};
