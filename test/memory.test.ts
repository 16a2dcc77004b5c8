/**
 * Memory complexity as a property: for random cases at lengths n and 4n, the measured
 * intermediate bytes (see src/core/measure.ts) stay under `memoryBytes()`, `memoryBytes()` is
 * no looser than a small constant factor of the measurement, and the growth from n to 4n
 * matches the path's declared class (≈4× linear, ≈8× n^1.5, ≈16× quadratic).
 */
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { catalog } from '../src/index.js';
import { measureIntermediateBytes } from '../src/core/measure.js';
import type { Attention } from '../src/core/types.js';
import { setupBackends, useBackend, withGpuErrorScope } from './backends.js';
import { makeInputs } from './harness.js';
import { specs } from './specs/index.js';
import { GROWTH, type Case } from './specs/types.js';

const backends = await setupBackends();

/** memoryBytes may exceed the measurement by at most this factor (plus SLACK for tiny sizes). */
const LOOSENESS = 4;
const SLACK = 8192;

async function measure(attn: Attention<unknown>, c: Case, implementation: 'kernel' | 'composite') {
  const x = makeInputs(c);
  try {
    await x.q.data(); // inputs settled on the device before measuring
    if (tf.getBackend() === 'webgpu') {
      // One warm-up call: webgpu uploads into a fresh buffer directly but into a pooled one
      // through a staging copy, so the first call at a size can read up to ~12% lower than
      // the steady state. Measure the steady state at both n and 4n.
      await withGpuErrorScope(async () => {
        const warm = attn.apply(x.q, x.k, x.v, { implementation });
        await warm.data();
        warm.dispose();
      });
    }
    const m = await withGpuErrorScope(async () => {
      const r = await measureIntermediateBytes(() => attn.apply(x.q, x.k, x.v, { implementation }));
      await r.result.data();
      r.result.dispose();
      return r;
    });
    const declared = attn.memoryBytes({
      batch: c.batch, heads: c.heads, kvHeads: c.kvHeads, n: c.n, m: c.m, d: c.d, dv: c.dv, implementation, keyLength: false,
    });
    return { measured: m.bytes, declared };
  } finally {
    x.dispose();
  }
}

describe.each(backends)('backend %s', (backend) => {
  beforeAll(() => useBackend(backend));
  for (const entry of catalog) {
    const spec = specs[entry.id];
    if (!spec) continue;
    const paths: ('kernel' | 'composite')[] = backend === 'webgpu' && spec.fused ? ['kernel', 'composite'] : ['composite'];
    for (const path of paths) {
      const growth = spec.growth[path];
      // Sub-quadratic paths are measured at lengths where their working set dominates; quadratic ones small.
      const bases = growth === 'quadratic' ? [128, 256] : [1024, 2048];
      it(`${entry.id} (${path}): measured <= memoryBytes <= ${LOOSENESS}x measured, growth n -> 4n is ${growth}`, async () => {
        await fc.assert(
          fc.asyncProperty(fc.constantFrom(...bases), fc.integer({ min: 1, max: 1e6 }), async (n, seed) => {
            const small = spec.memoryCase(n, seed);
            const big = spec.memoryCase(4 * n, seed);
            const attnS = spec.make(small.config);
            const attnB = spec.make(big.config);
            const a = await measure(attnS, small, path);
            const b = await measure(attnB, big, path);
            attnS.dispose();
            attnB.dispose();
            const ctx = `n=${n}: measured ${a.measured} -> ${b.measured}, declared ${a.declared} -> ${b.declared}`;
            for (const r of [a, b]) {
              expect(r.measured, ctx).toBeLessThanOrEqual(r.declared);
              expect(r.declared, ctx).toBeLessThanOrEqual(LOOSENESS * r.measured + SLACK);
            }
            const [lo, hi] = GROWTH[growth];
            expect(b.measured / a.measured, ctx).toBeGreaterThanOrEqual(lo);
            expect(b.measured / a.measured, ctx).toBeLessThanOrEqual(hi);
            expect(b.declared / a.declared, ctx).toBeLessThanOrEqual(hi);
          }),
          { numRuns: 3 },
        );
      });
    }
  }

  if (backend === 'webgpu') it('fused dense grows about 4x (not 16x) from n = 1024 to n = 4096 (1 head, d = 64)', async () => {
    const attn = specs.dense.make({});
    const c = (n: number): Case => ({ config: {}, batch: 1, heads: 1, kvHeads: 1, n, m: n, d: 64, dv: 64, keyLength: null, seed: 5 });
    const a = await measure(attn, c(1024), 'kernel');
    const b = await measure(attn, c(4096), 'kernel');
    console.log(`fused dense intermediate bytes: n=1024 ${a.measured}, n=4096 ${b.measured} (x${(b.measured / a.measured).toFixed(2)})`);
    expect(b.measured / a.measured).toBeGreaterThan(3.5);
    expect(b.measured / a.measured).toBeLessThan(4.5);
  });
});
