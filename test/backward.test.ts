/**
 * The backward pass at realistic lengths (test/gradients.test.ts covers tiny ones against float64):
 *
 * - on webgpu the fused flash backward equals the composite's gradients with several key splits
 *   and both forward strategies (rows, tiled), grouped heads and keyLength;
 * - issue 12's memory line: the backward pass keeps its entry's memory class. On
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
import { performerAttention } from '../src/variants/kernelized/performer.js';
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

/** Max |a − b| over max |b| of two gradient lists. */
async function relErr(a: tf.Tensor[], b: tf.Tensor[]): Promise<number> {
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const t = tf.tidy(() => tf.stack([tf.max(tf.abs(tf.sub(a[i], b[i]))), tf.max(tf.abs(b[i]))]));
    const [d, s] = await t.data();
    t.dispose();
    worst = Math.max(worst, d / Math.max(s, 1e-6));
  }
  return worst;
}

if (backends.includes('webgpu')) {
  describe('webgpu: the fused backward at lengths with key splits, both forward strategies', () => {
    const cases: [string, () => Attention<unknown>][] = [
      ['dense causal', () => denseAttention({ causal: true })],
      ['local causal', () => localAttention({ window: 200, causal: true })],
    ];
    for (const [name, make] of cases) {
      for (const strategy of ['rows', 'tiled'] as const) {
        it(`${name}, kernelStrategy '${strategy}': fused gradients == composite gradients (n = m = 1100, grouped heads, keyLength)`, async () => {
          await useBackend('webgpu');
          const attn = make();
          const q = tf.tidy(() => tf.add(seededTensor([2, 4, 1100, 12], 5, 1), 0) as tf.Tensor4D);
          const k = tf.tidy(() => tf.add(seededTensor([2, 2, 1100, 12], 6, 1), 0) as tf.Tensor4D);
          const v = tf.tidy(() => tf.add(seededTensor([2, 2, 1100, 8], 7, 1), 0) as tf.Tensor4D);
          const w = tf.tidy(() => tf.add(seededTensor([2, 4, 1100, 8], 8, 1), 0));
          const grads = (implementation: 'kernel' | 'composite') =>
            withGpuErrorScope(() =>
              tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
                tf.sum(tf.mul(w, attn.apply(a as tf.Tensor4D, b as tf.Tensor4D, c as tf.Tensor4D, { implementation, keyLength: [1000, 1100], ...(implementation === 'kernel' ? { kernelStrategy: strategy } : {}) }))),
              )([q, k, v]),
            );
          try {
            const fused = await grads('kernel');
            const composite = await grads('composite');
            expect(await relErr(fused, composite)).toBeLessThan(1e-4);
            [...fused, ...composite].forEach((t) => t.dispose());
          } finally {
            [q, k, v, w].forEach((t) => t.dispose());
            attn.dispose();
          }
        }, 120_000);
      }
    }
  });
}

if (backends.includes('webgpu')) {
  describe('webgpu: the linear kernel\'s fused backward (forward and reverse scans)', () => {
    const cases: [string, () => Attention<unknown>, boolean][] = [
      ['linear elu+1 causal', () => linearAttention({ causal: true }), true],
      ['linear relu causal', () => linearAttention({ causal: true, featureMap: 'relu' }), true],
      ['linear elu+1 non-causal', () => linearAttention({}), false],
      ['performer relu causal', () => performerAttention({ causal: true, kernel: 'relu', features: 32 }), true],
    ];
    for (const [name, make, causal] of cases) {
      it(`${name}: the fused path's gradients (the kernel runs while recording) == the composite's (n = m = 700, grouped heads, keyLength)`, async () => {
        await useBackend('webgpu');
        const attn = make();
        const q = tf.tidy(() => tf.add(seededTensor([2, 4, 700, 12], 15, 1), 0) as tf.Tensor4D);
        const k = tf.tidy(() => tf.add(seededTensor([2, 2, 700, 12], 16, 1), 0) as tf.Tensor4D);
        const v = tf.tidy(() => tf.add(seededTensor([2, 2, 700, 8], 17, 1), 0) as tf.Tensor4D);
        const w = tf.tidy(() => tf.add(seededTensor([2, 4, 700, 8], 18, 1), 0));
        const engine = tf.engine() as unknown as { runKernel: (name: string, ...rest: unknown[]) => unknown };
        let linearCalls = 0;
        const grads = (implementation: 'kernel' | 'composite') =>
          withGpuErrorScope(() =>
            tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
              tf.sum(tf.mul(w, attn.apply(a as tf.Tensor4D, b as tf.Tensor4D, c as tf.Tensor4D, { implementation, keyLength: [650, 700] }))),
            )([q, k, v]),
          );
        const orig = engine.runKernel;
        try {
          engine.runKernel = function (this: unknown, kname: string, ...rest: unknown[]) {
            if (kname === 'AttnCatalogLinearAttention') linearCalls++;
            return orig.call(this, kname, ...rest);
          };
          const fused = await grads('kernel');
          engine.runKernel = orig;
          // The forward, and (causal) the forward scan and two reverse scans of the backward.
          expect(linearCalls).toBe(causal ? 4 : 1);
          const composite = await grads('composite');
          expect(await relErr(fused, composite)).toBeLessThan(1e-4);
          [...fused, ...composite].forEach((t) => t.dispose());
        } finally {
          engine.runKernel = orig;
          [q, k, v, w].forEach((t) => t.dispose());
          attn.dispose();
        }
      }, 120_000);
    }
  });
}

describe('recurrence: memories are constants of the gradient (DESIGN.md, Training)', () => {
  for (const backend of backends.filter((b) => b !== 'wasm')) {
    it(`${backend}: two steps inside one tf.grads: the second step's output has exactly zero gradient with respect to the first segment's k and v (transformer-xl, compressive)`, async () => {
      await useBackend(backend);
      const { transformerXLAttention } = await import('../src/variants/recurrence/transformer-xl.js');
      const { compressiveAttention } = await import('../src/variants/recurrence/compressive.js');
      const makers: [string, () => { initState(b: number): unknown; step(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, s: unknown): { output: tf.Tensor4D; state: { dispose?(): void; k?: tf.Tensor; v?: tf.Tensor } }; dispose(): void }][] = [
        ['transformer-xl', () => transformerXLAttention({ memLength: 8, heads: 2, headDim: 4 }) as never],
        ['compressive', () => compressiveAttention({ memLength: 4, compressedLength: 4, rate: 2, fn: 'conv', headDim: 4 }) as never],
      ];
      for (const [id, make] of makers) {
        const attn = make();
        const seg = (s: number) => tf.tidy(() => tf.add(seededTensor([1, 2, 4, 4], s, 1), 0) as tf.Tensor4D);
        const [q1, k1, v1, q2, k2, v2] = [1, 2, 3, 4, 5, 6].map(seg);
        const before = tf.memory().numTensors;
        const free = (st: { dispose?(): void; k?: tf.Tensor; v?: tf.Tensor }) => (st.dispose ? st.dispose() : (st.k!.dispose(), st.v!.dispose()));
        // engine.gradients with allowNoGradients: an input with no path to the result gets null
        // (tf.grads would throw), which is what a constant memory gives the first segment.
        const engine = tf.engine() as unknown as { gradients(f: () => tf.Tensor, xs: tf.Tensor[], dy?: tf.Tensor, allowNoGradients?: boolean): { value: tf.Tensor; grads: (tf.Tensor | null)[] } };
        const { value, grads } = engine.gradients(() => {
          const first = attn.step(q1, k1, v1, attn.initState(1));
          first.output.dispose();
          const second = attn.step(q2, k2, v2, first.state);
          free(second.state);
          return tf.sum(second.output);
        }, [k1, v1, v2], undefined, true);
        const zeroOrNone = async (g: tf.Tensor | null | undefined) => g == null || Array.from(await g.data()).every((x) => x === 0);
        expect(await zeroOrNone(grads[0]), `${id} on ${backend}: d second / d k1`).toBe(true);
        expect(await zeroOrNone(grads[1]), `${id} on ${backend}: d second / d v1`).toBe(true);
        expect(grads[2] != null && Array.from(await grads[2]!.data()).some((x) => x !== 0), `${id} on ${backend}: d second / d v2 flows`).toBe(true);
        value.dispose();
        grads.forEach((g) => g?.dispose());
        expect(tf.memory().numTensors, `${id} on ${backend}: no leak`).toBe(before);
        [q1, k1, v1, q2, k2, v2].forEach((t) => t.dispose());
        attn.dispose();
      }
    }, 60_000);
  }
});
