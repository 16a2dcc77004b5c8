import fc from 'fast-check';
import { dilatedAttention } from '../../src/variants/fixed/dilated.js';
import { badInts, baseFields, lengths, memoryShape, patternCases, patternReference, type Allowed } from './pattern-common.js';
import type { VariantSpec } from './types.js';

/** DESIGN.md `dilated`: j = p_i + u·r for an integer u with |u| <= w (r per query head when an array). */
function dilatedAllowed(p: number, j: number, h: number, w: number, dilation: number | number[]): boolean {
  const r = Array.isArray(dilation) ? dilation[h] : dilation;
  for (let u = -w; u <= w; u++) if (j === p + u * r) return true;
  return false;
}

const allowed: Allowed = (p, j, h, c) => dilatedAllowed(p, j, h, c.config.window as number, c.config.dilation as number | number[]);

export const dilatedSpec: VariantSpec = {
  id: 'dilated',
  make: (config) => dilatedAttention(config),
  cases: patternCases(
    fc
      .record({
        window: fc.integer({ min: 0, max: 5 }),
        perHead: fc.boolean(),
        heads: fc.constantFrom(1, 2, 4),
        r: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 4, maxLength: 4 }),
        ...baseFields,
      })
      .chain(({ perHead, heads, r, ...rest }) =>
        lengths().map((l) => ({ config: { ...rest, dilation: perHead ? r.slice(0, heads) : r[0] }, heads, ...l })),
      ),
  ),
  allowed,
  reference: patternReference(allowed),
  causal: (c) => !!c.config.causal,
  convexCombination: true,
  growth: { kernel: 'linear', composite: 'linear' },
  // A span over 256 keys (w·r = 300 on head 1): the kernel splits, so its partials are O(n).
  memoryCase: (n, seed) => memoryShape(n, seed, { window: 100, dilation: [1, 3], causal: seed % 2 === 0 }),
  badConfigs: fc.oneof(
    fc.record({ window: badInts(0) }),
    fc.record({ dilation: fc.constantFrom(0, -1, 1.5, '2', [], [1, 0], [2, 2.5]) }),
    // One dilation per head: 3 entries for the 2 heads the check applies with.
    fc.record({ dilation: fc.constant([1, 2, 3]) }),
  ),
  fused: true,
};
