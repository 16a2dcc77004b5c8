/**
 * The flash kernel's two strategies ('rows': one invocation per query row; 'tiled': a
 * workgroup per block of query rows, four rows per invocation, K/V tiles staged in workgroup
 * memory or read directly): both equal the float64 reference, the composite and each other for
 * every catalog entry that runs on the flash kernel, with the tiles staged and not; 'auto' follows the
 * documented rule; plans stay under the loop cap; an explicit 'tiled' that the device cannot
 * run throws before any dispatch.
 */
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { catalog } from '../src/index.js';
import { AttentionError } from '../src/core/errors.js';
import { denseAttention } from '../src/variants/baseline/dense.js';
import { chooseStrategy, planFlash, setTileStaging, tileFor } from '../kernels/flash/plan.js';
import { flashDispatches } from '../kernels/flash/kernel.js';
import { LLVMPIPE_LOOP_CAP } from '../kernels/shared/limits.js';
import { add, and, keyIn, keyLattice, or, P, param, stridesKeys, sub } from '../kernels/flash/rule.js';
import { hasWebGPU, setupBackends, useBackend } from './backends.js';
import { RUNS, countDispatches, describeCase, makeInputs, runCase } from './harness.js';
import { maxAbsDiff, toHost } from './reference.js';
import { specs } from './specs/index.js';

await setupBackends();
const TOL = 2e-5;
const limits = { maxStorageBufferBindingSize: 128 << 20, maxBufferSize: 256 << 20, maxComputeWorkgroupsPerDimension: 65535 };

describe('strategy plan', () => {
  it('keeps every invocation under the loop cap with either strategy, at every size it accepts', () => {
    fc.assert(
      fc.property(
        fc.record({
          batch: fc.integer({ min: 1, max: 4 }),
          heads: fc.constantFrom(1, 2, 8),
          n: fc.integer({ min: 1, max: 1 << 20 }),
          m: fc.integer({ min: 1, max: 1 << 22 }),
          d: fc.integer({ min: 1, max: 256 }),
          dv: fc.integer({ min: 1, max: 256 }),
          strategy: fc.constantFrom('rows' as const, 'tiled' as const, 'auto' as const),
          storage: fc.constantFrom(16384, 32768),
          layout: fc.option(
            fc.record({
              blockK: fc.integer({ min: 1, max: 4096 }),
              blockQ: fc.integer({ min: 1, max: 256 }),
              maxBlocksPerRow: fc.integer({ min: 0, max: 1 << 16 }),
              maxEntriesPerRow: fc.integer({ min: 0, max: 1 << 15 }),
              nnz: fc.nat(1 << 24),
            }),
          ),
        }),
        ({ layout, strategy, storage, ...p }) => {
          const dims = { ...p, kvHeads: 1, group: p.heads };
          const lim = { ...limits, maxComputeWorkgroupStorageSize: storage };
          const shape = layout ? { ...layout, maxEntriesPerRow: Math.min(layout.maxEntriesPerRow, layout.maxBlocksPerRow), numQBlocks: Math.ceil(p.n / layout.blockQ) } : undefined;
          let plan;
          try {
            plan = planFlash(dims, lim, { layout: shape, extraBindings: layout ? 2 : 0, strategy });
          } catch (e) {
            expect(e).toBeInstanceOf(AttentionError);
            return;
          }
          expect(plan.maxLoopIterations).toBeLessThanOrEqual(LLVMPIPE_LOOP_CAP);
          if (strategy === 'rows') expect(plan.tile).toBeNull();
          if (strategy === 'tiled') expect(plan.tile).not.toBeNull();
          if (plan.tile) {
            expect(plan.tile.rows % 4).toBe(0);
            // K and V tiles plus the workgroup id fit the device's workgroup memory.
            if (plan.tile.stage) expect(plan.tile.keys * (plan.dPad + plan.dvPad) * 4 + 16).toBeLessThanOrEqual(storage);
            expect(plan.queryGroups).toBeLessThanOrEqual(limits.maxComputeWorkgroupsPerDimension);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it("'auto' runs the tiled strategy, except where a pure lattice or fewer than 16 query rows make one row per invocation faster", () => {
    const tile = tileFor(64, 64, limits);
    expect(tile).not.toBeNull();
    expect(chooseStrategy(tile, { n: 1024, strides: false })).toBe('tiled');
    expect(chooseStrategy(tile, { n: 1024, strides: true })).toBe('rows');
    expect(chooseStrategy(tile, { n: 8, strides: false })).toBe('rows');
    expect(chooseStrategy(null, { n: 1024, strides: false })).toBe('rows');
    // Pure lattices (every allowed key on one) are strided; a lattice or'ed with a band is not.
    const lattice = keyLattice(P, param('t'));
    expect(stridesKeys(lattice)).toBe(true);
    expect(stridesKeys(and(keyIn(sub(P, param('w')), add(P, param('w'))), lattice))).toBe(true);
    expect(stridesKeys(or(keyIn(sub(P, param('w')), P), lattice))).toBe(false);
    expect(stridesKeys(keyIn(sub(P, param('w')), P))).toBe(false);
  });

  it('stages tiles in workgroup memory on GPUs, not on CPU-backed adapters', () => {
    expect(tileFor(64, 64, { ...limits, cpuAdapter: false })!.stage).toBe(true);
    expect(tileFor(64, 64, { ...limits, cpuAdapter: true })!.stage).toBe(false);
  });

  it("an explicit 'tiled' whose K/V tile cannot fit workgroup memory throws AttentionError", () => {
    const dims = { batch: 1, heads: 1, kvHeads: 1, group: 1, n: 64, m: 64, d: 2048, dv: 2048 };
    expect(() => planFlash(dims, { ...limits, maxComputeWorkgroupStorageSize: 16384 }, { strategy: 'tiled' })).toThrow(AttentionError);
    expect(planFlash(dims, { ...limits, maxComputeWorkgroupStorageSize: 16384 }, { strategy: 'auto' }).tile).toBeNull();
  });
});

describe.runIf(hasWebGPU())('webgpu: both strategies', () => {
  beforeAll(() => useBackend('webgpu'));
  afterEach(() => setTileStaging(null));

  for (const entry of catalog) {
    const spec = specs[entry.id];
    if (!spec?.fused) continue;
    // Entries whose fused path runs one strategy only (Transformer-XL's relative term: rows) must
    // refuse the other with AttentionError; the rest run both.
    const tiledOk = (spec.kernelStrategies ?? ['rows', 'tiled']).includes('tiled');
    it(`${entry.id}: rows == ${tiledOk ? 'tiled (staged and not)' : "composite, and 'tiled' is refused"} == composite == float64 reference`, async () => {
      let usesFlash = false;
      await fc.assert(
        fc.asyncProperty(spec.cases, async (c) => {
          const attn = spec.make(c.config);
          const x = makeInputs(c);
          try {
            const [qh, kh, vh] = await Promise.all([toHost(x.q), toHost(x.k), toHost(x.v)]);
            const want = spec.reference(qh, kh, vh, c);
            const before = flashDispatches();
            const rows = await runCase(attn, x, c, 'kernel', 'rows');
            const mid = flashDispatches();
            let direct = rows;
            let staged = rows;
            if (tiledOk) {
              setTileStaging(false);
              direct = await runCase(attn, x, c, 'kernel', 'tiled');
              setTileStaging(true);
              staged = await runCase(attn, x, c, 'kernel', 'tiled');
              setTileStaging(null);
            } else {
              await expect(runCase(attn, x, c, 'kernel', 'tiled')).rejects.toThrow(AttentionError);
            }
            const after = flashDispatches();
            const composite = await runCase(attn, x, c, 'composite');
            // Entries on the flash kernel ran each program as asked (others ignore the option).
            if (mid.rows > before.rows) {
              usesFlash = true;
              expect(mid.tiled).toBe(before.tiled);
              expect(after.tiled - mid.tiled).toBeGreaterThanOrEqual(tiledOk ? 2 : 0);
            }
            for (const [name, got] of [['rows', rows], ['tiled', direct], ['tiled, staged', staged]] as const) {
              expect(maxAbsDiff(got.data, want.data), `${name}: ${describeCase(c)}`).toBeLessThan(TOL);
            }
            expect(maxAbsDiff(rows.data, direct.data), describeCase(c)).toBeLessThan(TOL);
            // kernel == composite, per strategy.
            for (const got of [rows, direct, staged]) expect(maxAbsDiff(got.data, composite.data), describeCase(c)).toBeLessThan(TOL);
          } finally {
            x.dispose();
            attn.dispose();
          }
        }),
        { numRuns: RUNS },
      );
      // Which entries run on the flash kernel: all but the kernelized ones (their own kernels).
      expect(usesFlash, entry.id).toBe(!['linear', 'performer'].includes(entry.id));
    });
  }

  it("an explicit 'tiled' that the device cannot run throws AttentionError before any dispatch", async () => {
    const q = tf.zeros([1, 1, 8, 4096]) as never;
    const attn = denseAttention();
    let thrown: unknown = null;
    const n = countDispatches(() => {
      try {
        attn.apply(q, q, q, { implementation: 'kernel', kernelStrategy: 'tiled' });
      } catch (e) {
        thrown = e;
      }
    });
    expect(thrown).toBeInstanceOf(AttentionError);
    expect(n).toBe(0);
    tf.dispose(q);
    attn.dispose();
  });
});
