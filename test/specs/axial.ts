import fc from 'fast-check';
import { axialAttention } from '../../src/variants/combined/axial.js';
import { baseFields, memoryShape, patternCases, patternReference, type Allowed } from './pattern-common.js';
import type { VariantSpec } from './types.js';

/** DESIGN.md `axial`: positions index a row-major rows×cols grid (m = rows·cols); same row / same column / either. */
const allowed: Allowed = (p, j, _h, c) => {
    const [, cols] = c.config.shape as [number, number];
    const row = Math.floor(p / cols) === Math.floor(j / cols);
    const col = p % cols === j % cols;
    return c.config.axes === 'row' ? row : c.config.axes === 'column' ? col : row || col;
  };

export const axialSpec: VariantSpec = {
  id: 'axial',
  make: (config) => axialAttention(config as never),
  cases: patternCases(
    fc
      .record({ rows: fc.integer({ min: 1, max: 9 }), cols: fc.integer({ min: 1, max: 9 }), axes: fc.constantFrom('row', 'column', 'both'), ...baseFields })
      .chain(({ rows, cols, ...rest }) =>
        fc.integer({ min: 1, max: rows * cols }).map((n) => ({ config: { ...rest, shape: [rows, cols] }, n, m: rows * cols })),
      ),
  ),
  allowed,
  reference: patternReference(allowed),
  causal: (c) => !!c.config.causal,
  convexCombination: true,
  // O(n·(rows + cols)) on a square-ish grid: n^1.5 for the composite; O(n) fused.
  growth: { kernel: 'linear', composite: 'n^1.5' },
  // 'row' alone needs no split partials on the kernel (a row's cols keys fit one invocation): its
  // working set is O(n/cols) layout entries, dominated by per-call constants at these sizes, so
  // the memory cases use the axes whose kernel path keeps O(n) partials.
  memoryCase: (n, seed) => {
    const rows = 2 ** Math.floor(Math.log2(n) / 2);
    return memoryShape(n, seed, { shape: [rows, n / rows], axes: seed % 2 === 0 ? 'both' : 'column', causal: seed % 3 === 0 });
  },
  badConfigs: fc.oneof(
    fc.record({ shape: fc.constantFrom(undefined, [4], [0, 4], [2, 2.5], '2x2', [2, 2, 1]) }),
    // m = 4 in the config check: a 3×3 grid does not match it.
    fc.record({ shape: fc.constant([3, 3]) }),
    fc.record({ shape: fc.constant([2, 2]), axes: fc.constantFrom('diagonal', 0) }),
  ),
  fused: true,
};
