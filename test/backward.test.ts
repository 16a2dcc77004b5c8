/**
 * Issue 12's memory line for training: the backward pass keeps its entry's memory class. On
 * webgpu (the fused flash backward for dense and local; linear's composite backward) the
 * intermediate bytes of `tf.grads` with respect to q, k and v grow at most ~4.5× from n = 1024 to
 * n = 4096 (linear), and on every backend local's and linear's do too.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import { describe, expect, it } from 'vitest';
import { measureIntermediateBytes } from '../src/core/measure.js';
import type { Attention } from '../src/core/types.js';
import { denseAttention } from '../src/variants/baseline/dense.js';
import { localAttention } from '../src/variants/fixed/local.js';
import { linearAttention } from '../src/variants/kernelized/linear.js';
import { setupBackends, useBackend, withGpuErrorScope } from './backends.js';
import { seededTensor } from './reference.js';

const backends = await setupBackends();

/** Intermediate bytes of the gradients of Σ apply(q, k, v) at length n (d = 16, two heads). */
async function backwardBytes(attn: Attention<unknown>, n: number): Promise<number> {
  const onDevice = (t: tf.Tensor4D) => tf.tidy(() => tf.add(t, 0) as tf.Tensor4D);
  const [q, k, v] = [1, 2, 3].map((s) => {
    const host = seededTensor([1, 2, n, 16], s, 1);
    const t = onDevice(host);
    host.dispose();
    return t;
  });
  try {
    const m = await withGpuErrorScope(() =>
      measureIntermediateBytes(() => {
        const [dq, dk, dv] = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(attn.apply(a as tf.Tensor4D, b as tf.Tensor4D, c as tf.Tensor4D)))([q, k, v]);
        dk.dispose();
        dv.dispose();
        return dq;
      }),
    );
    m.result.dispose();
    return m.bytes;
  } finally {
    [q, k, v].forEach((t) => t.dispose());
  }
}

const entries: [string, () => Attention<unknown>, (b: string) => boolean][] = [
  ['dense (fused backward on webgpu)', () => denseAttention({ causal: true }), (b) => b === 'webgpu'],
  ['local', () => localAttention({ window: 64, causal: true }), () => true],
  ['linear', () => linearAttention({ causal: true }), () => true],
];

for (const backend of backends) {
  describe(`backend ${backend}`, () => {
    for (const [name, make, on] of entries) {
      if (!on(backend)) continue;
      it(`${name}: backward bytes grow <= 4.5x from n = 1024 to 4096`, async () => {
        await useBackend(backend);
        const attn = make();
        try {
          const small = await backwardBytes(attn, 1024);
          const large = await backwardBytes(attn, 4096);
          expect(small).toBeGreaterThan(0);
          expect(large / small, `${name} on ${backend}: ${small} -> ${large} bytes`).toBeLessThanOrEqual(4.5);
        } finally {
          attn.dispose();
        }
      }, 120_000);
    }
  });
}
