/**
 * Parameters are data: a pattern's window, stride or block reaches the fused kernel through its
 * params buffer and uniforms, never the WGSL source, so one compiled pipeline serves every value.
 * Counted on webgpu from tfjs's pipeline cache (keyed by shaderKey), with every output checked
 * against the composite so the count cannot pass on a kernel that ignores its parameters.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Attention } from '../src/core/types.js';
import { localAttention } from '../src/variants/fixed/local.js';
import { stridedAttention } from '../src/variants/fixed/strided.js';
import { dilatedAttention } from '../src/variants/fixed/dilated.js';
import { hasWebGPU, setupBackends, useBackend, withGpuErrorScope } from './backends.js';
import { makeInputs } from './harness.js';
import { maxAbsDiff, toHost } from './reference.js';

await setupBackends();

/** The flash-attention pipelines tfjs has compiled so far, of either strategy (merge programs excluded). */
function flashPipelines(): string[] {
  const cache = (tf.backend() as unknown as { pipelineCache: Record<string, unknown> }).pipelineCache;
  return Object.keys(cache).filter((k) => /^AttnCatalogFlash(Tiled)?_/.test(k));
}

async function newPipelines(variants: Attention<unknown>[]): Promise<string[]> {
  const before = new Set(flashPipelines());
  const x = makeInputs({ config: {}, batch: 1, heads: 2, kvHeads: 1, n: 200, m: 200, d: 16, dv: 16, keyLength: [180], seed: 5 });
  try {
    for (const attn of variants) {
      const [kernel, composite] = await withGpuErrorScope(async () => {
        const a = attn.apply(x.q, x.k, x.v, { implementation: 'kernel', keyLength: [180] });
        const b = attn.apply(x.q, x.k, x.v, { implementation: 'composite', keyLength: [180] });
        const out = [await toHost(a), await toHost(b)];
        a.dispose();
        b.dispose();
        return out;
      });
      expect(maxAbsDiff(kernel.data, composite.data), `${attn.id} ${JSON.stringify(attn.config)}`).toBeLessThan(2e-5);
    }
  } finally {
    x.dispose();
  }
  return flashPipelines().filter((k) => !before.has(k));
}

describe.runIf(hasWebGPU())('webgpu: one flash pipeline per rule shape, whatever its parameters', () => {
  beforeAll(() => useBackend('webgpu'));

  it('localAttention with five windows compiles one pipeline', async () => {
    const fresh = await newPipelines([1, 3, 8, 17, 40].map((window) => localAttention({ window })));
    expect(fresh, fresh.join('\n')).toHaveLength(1);
  });

  it('stridedAttention with five strides compiles one pipeline', async () => {
    const fresh = await newPipelines([2, 3, 5, 16, 33].map((stride) => stridedAttention({ stride })));
    expect(fresh, fresh.join('\n')).toHaveLength(1);
  });

  it('dilatedAttention with five windows and dilations (shared or per head) compiles one pipeline', async () => {
    const configs = [{ window: 2, dilation: 2 }, { window: 5, dilation: [1, 3] }, { window: 9, dilation: 4 }, { window: 1, dilation: [2, 7] }, { window: 12, dilation: 3 }];
    const fresh = await newPipelines(configs.map((c) => dilatedAttention(c)));
    expect(fresh, fresh.join('\n')).toHaveLength(1);
  });
});
