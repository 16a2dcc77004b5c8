/**
 * Padding and masked keys never reach an output (DESIGN.md: padding keys "are never attended,
 * and never summed, pooled, projected, hashed or routed"): for every catalog entry, on every
 * backend and path, the check of `poison.ts` on random cases (random `keyLength` as numbers or an
 * int32 tensor, NaN/±Inf at random in padding keys and, when causal, in keys after a random
 * position). The browser suite runs the same check on webgl and in-browser webgpu.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { catalog } from '../src/index.js';
import { setupBackends, useBackend, withGpuErrorScope } from './backends.js';
import { RUNS } from './harness.js';
import { poisonCheck } from './poison.js';
import { specs } from './specs/index.js';

const backends = await setupBackends();

describe.each(backends)('backend %s', (backend) => {
  beforeAll(() => useBackend(backend));
  for (const entry of catalog) {
    const spec = specs[entry.id];
    const paths: ('kernel' | 'composite')[] = backend === 'webgpu' && spec.fused ? ['kernel', 'composite'] : ['composite'];
    for (const path of paths) {
      it(`${entry.id} (${path}): non-finite padding and masked future keys leave every other output bit-identical`, async () => {
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
              const problem = await poisonCheck(spec, c, { lengths, asTensor, future, seed }, path, withGpuErrorScope);
              expect(problem, `${entry.id} ${path}`).toBeNull();
            },
          ),
          { numRuns: RUNS },
        );
      });
    }
  }
});
