/**
 * The fused kernel's block-sparse mode (CSR layout + element rule with soft weights), on
 * random layouts and a rule with per-head parameters, against the float64 reference. This is
 * the machinery every pattern variant drives; their own suites test their layouts.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildLayout, layoutRow, type ElementRule } from '../kernels/flash/layout.js';
import { planFor, runFlash } from '../kernels/flash/kernel.js';
import { hasWebGPU, setupBackends, useBackend, withGpuErrorScope } from './backends.js';
import { RUNS, makeInputs } from './harness.js';
import { maxAbsDiff, referenceWeighted, toHost } from './reference.js';

await setupBackends();

describe.runIf(hasWebGPU())('webgpu: block-sparse mode of the fused kernel', () => {
  beforeAll(() => useBackend('webgpu'));

  it('equals the float64 reference for random layouts, a weighted per-head rule, causal and keyLength', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          batch: fc.integer({ min: 1, max: 2 }),
          heads: fc.constantFrom(1, 2, 4),
          n: fc.integer({ min: 1, max: 90 }),
          m: fc.integer({ min: 1, max: 400 }),
          d: fc.integer({ min: 1, max: 12 }),
          dv: fc.integer({ min: 1, max: 12 }),
          blockQ: fc.constantFrom(1, 8, 16, 64),
          blockK: fc.constantFrom(1, 4, 16, 32),
          perHead: fc.boolean(),
          withRule: fc.boolean(),
          causal: fc.boolean(),
          density: fc.double({ min: 0, max: 1, noNaN: true }),
          seed: fc.integer({ min: 1, max: 1e6 }),
        }),
        async (c) => {
          const kvHeads = c.heads === 4 ? 2 : c.heads;
          const numKB = Math.ceil(c.m / c.blockK);
          let r = c.seed;
          const rand = () => ((r = (r * 1103515245 + 12345) % 2147483648) / 2147483648);
          const layout = buildLayout({
            n: c.n, m: c.m, blockQ: c.blockQ, blockK: c.blockK, layoutHeads: c.perHead ? c.heads : 1,
            visit: () => Array.from({ length: numKB }, (_, kb) => kb).filter(() => rand() < c.density),
          });
          const params = Float32Array.from({ length: c.heads }, (_, h) => 0.25 + 0.25 * h);
          const rule: ElementRule | null = c.withRule
            ? {
                key: 'test-mod3-weighted',
                wgsl: `fn ruleWeight(p : i32, j : i32, h : i32) -> f32 {
                  if ((p + 2 * j + h) % 3 == 0) { return 0.0; }
                  return params[h];
                }`,
                params,
                weight: (p, j, h) => ((p + 2 * j + h) % 3 === 0 ? 0 : params[h]),
              }
            : null;
          const keyLength = Array.from({ length: c.batch }, (_, b) => (b === 1 ? Math.floor(c.m / 2) : c.m));
          const x = makeInputs({ config: {}, batch: c.batch, heads: c.heads, kvHeads, n: c.n, m: c.m, d: c.d, dv: c.dv, keyLength, seed: c.seed });
          try {
            const dims = { batch: c.batch, heads: c.heads, kvHeads, group: c.heads / kvHeads, n: c.n, m: c.m, d: c.d, dv: c.dv };
            const opts = { causal: c.causal, scale: 0.5, keyLength, layout, rule };
            const plan = planFor(dims, opts);
            const got = await withGpuErrorScope(async () => {
              const out = runFlash(x.q, x.k, x.v, dims, opts, plan);
              const h = await toHost(out);
              out.dispose();
              return h;
            });
            const sets = Array.from({ length: layout.layoutHeads }, (_, h) =>
              Array.from({ length: layout.numQBlocks }, (_, qb) => new Set(layoutRow(layout, qb, h))),
            );
            const want = referenceWeighted(await toHost(x.q), await toHost(x.k), await toHost(x.v), 0.5, (b, h, i, j) => {
              const p = i + c.m - c.n;
              if (j >= keyLength[b] || (c.causal && j > p)) return 0;
              if (!sets[layout.layoutHeads === 1 ? 0 : h][Math.floor(i / c.blockQ)].has(Math.floor(j / c.blockK))) return 0;
              return rule ? rule.weight(p, j, h) : 1;
            });
            expect(maxAbsDiff(got.data, want.data), JSON.stringify({ ...c, plan })).toBeLessThan(2e-5);
          } finally {
            x.dispose();
          }
        },
      ),
      { numRuns: RUNS * 2 },
    );
  });

  it('dense mode with a rule equals the reference (no layout)', async () => {
    const x = makeInputs({ config: {}, batch: 1, heads: 2, kvHeads: 1, n: 50, m: 700, d: 8, dv: 8, keyLength: null, seed: 9 });
    const params = Float32Array.from([1, 0.5]);
    const rule: ElementRule = {
      key: 'test-band',
      wgsl: `fn ruleWeight(p : i32, j : i32, h : i32) -> f32 { if (abs(p - j) <= 40) { return params[h]; } return 0.0; }`,
      params,
      weight: (p, j, h) => (Math.abs(p - j) <= 40 ? params[h] : 0),
    };
    const dims = { batch: 1, heads: 2, kvHeads: 1, group: 2, n: 50, m: 700, d: 8, dv: 8 };
    const opts = { causal: false, scale: 0.3, keyLength: null, rule };
    const plan = planFor(dims, opts);
    expect(plan.splits).toBeGreaterThan(1);
    const out = runFlash(x.q, x.k, x.v, dims, opts, plan);
    const got = await toHost(out);
    out.dispose();
    const want = referenceWeighted(await toHost(x.q), await toHost(x.k), await toHost(x.v), 0.3, (_b, h, i, j) => rule.weight(i + 650, j, h));
    expect(maxAbsDiff(got.data, want.data)).toBeLessThan(2e-5);
    x.dispose();
  });
});
