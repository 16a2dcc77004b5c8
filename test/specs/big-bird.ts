import fc from 'fast-check';
import { bigBirdAttention } from '../../src/variants/combined/big-bird.js';
import { badInts, baseFields, lengths, memoryShape, patternCases, patternReference, type Allowed } from './pattern-common.js';
import type { VariantSpec } from './types.js';

/**
 * DESIGN.md `big-bird`: with qb = block(p_i), kb = block(j): qb < g, or kb < g, or
 * |qb − kb| <= floor(w/2), or kb in qb's random blocks. Cases pass the random blocks
 * explicitly (`randomLayout`), so the reference reads them from the config; the seeded draw
 * is tested in patterns.test.ts.
 */
const allowed: Allowed = (p, j, _h, c) => {
    const b = c.config.block as number;
    const g = c.config.globalBlocks as number;
    const w = c.config.windowBlocks as number;
    const qb = Math.floor(p / b);
    const kb = Math.floor(j / b);
    return qb < g || kb < g || Math.abs(qb - kb) <= Math.floor(w / 2) || (c.config.randomLayout as number[][])[qb].includes(kb);
  };

export const bigBirdSpec: VariantSpec = {
  id: 'big-bird',
  make: (config) => bigBirdAttention(config),
  cases: patternCases(
    fc
      .record({
        block: fc.integer({ min: 1, max: 8 }),
        windowBlocks: fc.integer({ min: 1, max: 5 }),
        globalBlocks: fc.integer({ min: 0, max: 2 }),
        randomBlocks: fc.integer({ min: 0, max: 3 }),
        ...baseFields,
      })
      .chain((config) =>
        lengths().chain((l) => {
          const numBlocks = Math.ceil(l.m / config.block);
          const row = fc.uniqueArray(fc.integer({ min: 0, max: numBlocks - 1 }), { maxLength: Math.min(config.randomBlocks, numBlocks) });
          return fc.array(row, { minLength: numBlocks, maxLength: numBlocks }).map((randomLayout) => ({ config: { ...config, randomLayout }, ...l }));
        }),
      ),
  ),
  allowed,
  reference: patternReference(allowed),
  causal: (c) => !!c.config.causal,
  convexCombination: true,
  growth: { kernel: 'linear', composite: 'linear' },
  memoryCase: (n, seed) => memoryShape(n, seed, { block: 32, seed, causal: seed % 2 === 0 }, 1, 1),
  badConfigs: fc.oneof(
    fc.record({ block: badInts(1) }),
    fc.record({ windowBlocks: badInts(1) }),
    fc.record({ globalBlocks: badInts(0) }),
    fc.record({ randomBlocks: badInts(0) }),
    fc.record({ seed: fc.constantFrom(-1, 0.5, 'x') }),
    fc.record({ randomLayout: fc.constantFrom([], [[0, 0]], [[-1]], [[1.5]], 'abc', [[0], 3]) }),
    // block 1 over m = 4 keys needs 4 rows; 2 rows, or a block index past the last, is wrong.
    fc.record({ block: fc.constant(1), randomLayout: fc.constantFrom([[0], [1]], [[0], [1], [2], [4]]) }),
    fc.record({ randomBlocks: fc.constant(1), randomLayout: fc.constant([[0, 1], [0], [0], [0]]) }),
  ),
  fused: true,
};
