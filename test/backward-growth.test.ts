/**
 * "The backward of every sub-quadratic entry has its forward memory class" (DESIGN.md, Training),
 * as a property over every catalog entry: the intermediate bytes of `tf.grads` of Σ apply with
 * respect to q, k and v, at the spec's memory case of length n and 4n, grow by at most the upper
 * end of the path's declared class (test/memory.test.ts's bands). The path is the one a training
 * call takes: on webgpu the fused one where the entry's fused path is differentiable
 * (`capabilities.fusedBackward`), else the composite.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import { describe, expect, it } from 'vitest';
import { measureIntermediateBytes } from '../src/core/measure.js';
import { catalog } from '../src/index.js';
import { setupBackends, useBackend, withGpuErrorScope } from './backends.js';
import { makeInputs } from './harness.js';
import { specs } from './specs/index.js';
import { GROWTH, type Case, type GrowthClass } from './specs/types.js';

const backends = await setupBackends();
/** Upper ends of test/memory.test.ts's growth bands (n → 4n). */
const MAX_GROWTH = (g: GrowthClass) => GROWTH[g][1];

async function backwardBytes(c: Case, id: string): Promise<number> {
  const spec = specs[id];
  const attn = spec.make(c.config);
  const x = makeInputs(c);
  try {
    const m = await withGpuErrorScope(() =>
      measureIntermediateBytes(() => {
        const shared = x.k === x.q;
        const fn = (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) => tf.sum(attn.apply(q as tf.Tensor4D, (shared ? q : k) as tf.Tensor4D, v as tf.Tensor4D, c.keyLength ? { keyLength: c.keyLength } : {}));
        const gs = tf.grads(fn)([x.q, x.k, x.v]);
        gs.slice(1).forEach((g) => g.dispose());
        return gs[0];
      }),
    );
    m.result.dispose();
    return m.bytes;
  } finally {
    x.dispose();
    attn.dispose();
  }
}

for (const backend of backends.filter((b) => b !== 'wasm')) {
  describe(`backend ${backend}`, () => {
    for (const entry of catalog) {
      const spec = specs[entry.id];
      const path = backend === 'webgpu' && entry.capabilities.fusedBackward ? 'kernel' : 'composite';
      const growth = spec.growth[path];
      // (As test/memory.test.ts: from n = 1024 the flash kernel's key splits are at their cap, so growth is the class's.)
      const n = growth === 'quadratic' ? 128 : 1024;
      it(`${entry.id} (${path} backward): bytes grow at most as ${growth} from n = ${n} to ${4 * n}`, async () => {
        await useBackend(backend);
        const small = await backwardBytes(spec.memoryCase(n, 7), entry.id);
        const large = await backwardBytes(spec.memoryCase(4 * n, 7), entry.id);
        expect(small).toBeGreaterThan(0);
        expect(large / small, `${entry.id} on ${backend}: ${small} -> ${large} bytes`).toBeLessThanOrEqual(MAX_GROWTH(growth));
      }, 120_000);
    }
  });
}
