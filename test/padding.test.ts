/**
 * Padding and masked keys never reach an output (DESIGN.md: padding keys "are never attended,
 * and never summed, pooled, projected, hashed or routed"): for every catalog entry, on every
 * backend and path, the check of `poison.ts` on random cases (random `keyLength` as numbers or an
 * int32 tensor, NaN/±Inf at random in padding keys and, when causal, in keys after a random
 * position). On webgpu the fused kernel runs as 'auto' picks and with each flash strategy (one row
 * per invocation; tiled with staged tiles). The browser suite runs the same check on webgl and
 * in-browser webgpu.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { catalog } from '../src/index.js';
import { setupBackends, useBackend, withGpuErrorScope } from './backends.js';
import { RUNS } from './harness.js';
import { poisonCheck } from './poison.js';
import { specs } from './specs/index.js';
import { setTileStaging } from '../kernels/flash/plan.js';
import type { KernelStrategy } from '../src/core/types.js';

const backends = await setupBackends();

describe.each(backends)('backend %s', (backend) => {
  beforeAll(() => useBackend(backend));
  for (const entry of catalog) {
    const spec = specs[entry.id];
    // On webgpu: the kernel as 'auto' runs it, and each flash strategy (tiles staged or not).
    type Path = { path: 'kernel' | 'composite'; name: string; strategy?: KernelStrategy; stage?: boolean };
    const paths: Path[] =
      backend === 'webgpu' && spec.fused
        ? [
            { path: 'kernel', name: 'kernel' },
            { path: 'kernel', name: 'kernel, rows', strategy: 'rows' },
            ...(spec.kernelStrategies ?? ['tiled']).filter((s) => s === 'tiled').map((strategy) => ({ path: 'kernel' as const, name: 'kernel, tiled, staged', strategy, stage: true })),
            { path: 'composite', name: 'composite' },
          ]
        : [{ path: 'composite', name: 'composite' }];
    for (const { path, name, strategy, stage } of paths) {
      it(`${entry.id} (${name}): non-finite padding and masked future keys leave every other output bit-identical`, async () => {
        await fc.assert(
          fc.asyncProperty(
            spec.cases.chain((c) =>
              fc.record({
                c: fc.constant(c),
                lengths: fc.array(fc.integer({ min: 0, max: c.m }), { minLength: c.batch, maxLength: c.batch }),
                asTensor: fc.boolean(),
                futureAt: fc.integer({ min: 0, max: c.m }),
                seed: fc.integer({ min: 1, max: 1e9 }),
              }),
            ),
            async ({ c, lengths, asTensor, futureAt, seed }) => {
              const future = spec.causal(c) && futureAt < c.m ? futureAt : null;
              if (stage !== undefined) setTileStaging(stage);
              try {
                const problem = await poisonCheck(spec, c, { lengths, asTensor, future, seed }, path, withGpuErrorScope, strategy);
                expect(problem, `${entry.id} ${name}`).toBeNull();
              } finally {
                setTileStaging(null);
              }
            },
          ),
          { numRuns: RUNS },
        );
      });
    }
  }
});
