import fc from 'fast-check';
import { longformerAttention } from '../../src/variants/side-memory/longformer.js';
import { badInts, baseFields, lengths, memoryShape, patternCases, patternReference, type Allowed } from './pattern-common.js';
import type { VariantSpec } from './types.js';

/** DESIGN.md `longformer`: j in global, or p_i in global, or (|p_i − j| <= w·r and (p_i − j) mod r == 0). */
function longformerAllowed(p: number, j: number, h: number, config: Record<string, unknown>): boolean {
  const global = config.global as number[];
  if (global.includes(j) || global.includes(p)) return true;
  const d = config.dilation;
  const r = Array.isArray(d) ? d[h] : (d as number);
  const w = config.window as number;
  return Math.abs(p - j) <= w * r && (p - j) % r === 0;
}

const allowed: Allowed = (p, j, h, c) => longformerAllowed(p, j, h, c.config);

export const longformerSpec: VariantSpec = {
  id: 'longformer',
  make: (config) => longformerAttention(config),
  cases: patternCases(
    fc
      .record({
        window: fc.integer({ min: 0, max: 8 }),
        perHead: fc.boolean(),
        heads: fc.constantFrom(1, 2, 4),
        r: fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 4, maxLength: 4 }),
        ...baseFields,
      })
      .chain(({ perHead, heads, r, ...rest }) =>
        lengths().chain((l) =>
          fc.uniqueArray(fc.integer({ min: 0, max: l.m - 1 }), { maxLength: 4 }).map((global) => ({
            config: { ...rest, dilation: perHead ? r.slice(0, heads) : r[0], global },
            heads,
            ...l,
          })),
        ),
      ),
  ),
  allowed,
  reference: patternReference(allowed),
  causal: (c) => !!c.config.causal,
  convexCombination: true,
  growth: { kernel: 'linear', composite: 'linear' },
  memoryCase: (n, seed) => memoryShape(n, seed, { window: 16, dilation: seed % 2 === 0 ? [1, 2] : 1, global: [0, 7, n / 2, n - 1], causal: seed % 3 === 0 }),
  badConfigs: fc.oneof(
    fc.record({ window: badInts(0) }),
    fc.record({ dilation: fc.constantFrom(0, [1, 0], [], 'x') }),
    fc.record({ global: fc.constantFrom([1, 1], [-1], [0.5], 'cls', [0, '1']) }),
    // m = 4 in the config check: position 4 is past the end.
    fc.record({ global: fc.constant([4]) }),
    fc.record({ dilation: fc.constant([1, 1, 1]) }),
  ),
  fused: true,
};
