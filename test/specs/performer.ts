import fc from 'fast-check';
import { performerAttention, randomFeatures } from '../../src/variants/kernelized/performer.js';
import { denseLikeCases, divisors } from './dense.js';
import { logFavor, referenceKernelized } from './kernelized-reference.js';
import type { Case, VariantSpec } from './types.js';

/** Seeded values uniform in [-amp, amp] (xorshift; host only). */
function hostUniform(count: number, seed: number, amp: number): Float64Array {
  let x = seed >>> 0 || 1;
  return Float64Array.from({ length: count }, () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return ((x / 4294967296) * 2 - 1) * amp;
  });
}

/** A test-made omega [d][M] (explicit features, independent of the library's generator). */
function explicitOmega(d: number, M: number, seed: number): number[][] {
  const vals = hostUniform(d * M, seed, 1.7);
  return Array.from({ length: d }, (_, r) => Array.from(vals.subarray(r * M, (r + 1) * M)));
}

/** The omega a case's variant uses: the explicit one, or the seeded generator's (the same parameters). */
export function omegaOf(c: Case): number[][] {
  if (c.config.omega) return c.config.omega as number[][];
  const M = (c.config.features as number | undefined) ?? 256;
  const w = randomFeatures(c.d, M, (c.config.seed as number | undefined) ?? 0x5eed, c.config.orthogonal !== false);
  return Array.from({ length: c.d }, (_, r) => Array.from(w.subarray(r * M, (r + 1) * M)));
}

/** DESIGN.md `performer` (FAVOR+) in float64, with the variant's omega. */
export const performerSpec: VariantSpec = {
  id: 'performer',
  make: (config) => performerAttention(config),
  cases: denseLikeCases(
    divisors,
    fc.record({
      features: fc.integer({ min: 1, max: 24 }),
      kernel: fc.constantFrom('softmax', 'relu'),
      orthogonal: fc.boolean(),
      seed: fc.integer({ min: 0, max: 1e6 }),
      causal: fc.boolean(),
    }, { requiredKeys: ['features', 'seed'] }),
  ).map((c) => {
    if (c.seed % 3 !== 0) return c;
    // A third of the cases pass omega explicitly (nested arrays) instead of a seed.
    const { seed: _s, ...rest } = c.config;
    return { ...c, config: { ...rest, omega: explicitOmega(c.d, c.config.features as number, c.seed) } };
  }),
  reference: (q, k, v, c) =>
    referenceKernelized(q, k, v, {
      causal: !!c.config.causal,
      keyLength: c.keyLength,
      phi: logFavor(omegaOf(c), c.config.kernel === 'relu' ? 'relu' : 'softmax', Math.pow(c.d, -0.25)),
    }),
  causal: (c) => !!c.config.causal,
  // φ >= 0 for both kernels: the weights of a row are a distribution.
  convexCombination: true,
  growth: { kernel: 'linear', composite: 'linear' },
  memoryCase: (n, seed) => ({
    config: { causal: true, features: 32, kernel: seed % 2 === 0 ? 'softmax' : 'relu', seed },
    batch: 1, heads: 2, kvHeads: 2, n, m: n, d: 16, dv: 16, keyLength: null, seed,
  }),
  badConfigs: fc.oneof(
    fc.record({ features: fc.constantFrom(0, -1, 1.5, '8', 100000) }),
    fc.record({ kernel: fc.constantFrom('exp', 'gelu', 2, null) }),
    fc.record({ orthogonal: fc.constantFrom('yes', 0) }),
    fc.record({ seed: fc.constantFrom(-1, 0.5, 'a') }),
    fc.record({ omega: fc.constantFrom([[1, 2], [3]], 'omega', [[Number.NaN]], [[1, 2, 3]]) }),
    fc.record({ omega: fc.constant([[1, 2]]), seed: fc.constant(1) }),
    fc.record({ omega: fc.constant([[1, 2], [3, 4], [5, 6], [7, 8]]), features: fc.constant(3) }),
    fc.record({ causal: fc.constantFrom('no', 1) }),
    fc.record({ window: fc.integer() }),
  ),
  fused: true,
};
