/**
 * Incremental decode of dense and multi-query: the KV cache is [batch, kvHeads, length, d]
 * (O(m·kvHeads·d), never repeated per query head), grows by one position per step, and every
 * step equals a full causal recompute.
 */
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { AttentionError } from '../src/core/errors.js';
import type { DecodeState } from '../src/core/types.js';
import { denseAttention } from '../src/variants/baseline/dense.js';
import { groupedQueryAttention, multiQueryAttention } from '../src/variants/memory-saving/multi-query.js';
import { setupBackends, useBackend, withGpuErrorScope } from './backends.js';
import { RUNS } from './harness.js';
import { maxAbsDiff, seededTensor } from './reference.js';

const backends = await setupBackends();

describe.each(backends)('backend %s', (backend) => {
  beforeAll(() => useBackend(backend));

  it('decode steps equal a full causal recompute; the cache grows by kvHeads·(d + dv) floats per position', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          batch: fc.integer({ min: 1, max: 2 }),
          kind: fc.constantFrom('dense', 'multi-query', 'grouped'),
          steps: fc.integer({ min: 1, max: 12 }),
          prefix: fc.integer({ min: 0, max: 20 }),
          d: fc.integer({ min: 1, max: 16 }),
          dv: fc.integer({ min: 1, max: 16 }),
          seed: fc.integer({ min: 1, max: 1e6 }),
        }),
        async ({ batch, kind, steps, prefix, d, dv, seed }) => {
          const heads = 4;
          const kvHeads = kind === 'dense' ? 4 : kind === 'multi-query' ? 1 : 2;
          const attn =
            kind === 'dense'
              ? denseAttention({ causal: true })
              : kind === 'multi-query'
                ? multiQueryAttention({ causal: true })
                : groupedQueryAttention({ causal: true, groups: 2 });
          const total = prefix + steps;
          const q = seededTensor([batch, heads, total, d], seed);
          const k = seededTensor([batch, kvHeads, total, d], seed + 1);
          const v = seededTensor([batch, kvHeads, total, dv], seed + 2);
          const before = tf.memory().numTensors;
          try {
            const full = attn.apply(q, k, v);
            const fullData = await full.data();
            full.dispose();
            let state: DecodeState | undefined;
            const chunks: [number, number][] = prefix > 0 ? [[0, prefix]] : [];
            for (let t = prefix; t < total; t++) chunks.push([t, t + 1]);
            for (const [s, e] of chunks) {
              const slice = (x: tf.Tensor4D) => tf.slice(x, [0, 0, s, 0], [-1, -1, e - s, -1]);
              const [qs, ks, vs] = [slice(q), slice(k), slice(v)];
              const step = await withGpuErrorScope(() => attn.decode(qs, ks, vs, state));
              qs.dispose();
              ks.dispose();
              vs.dispose();
              state = step.state;
              expect(state.length).toBe(e);
              expect(state.k.shape).toEqual([batch, kvHeads, e, d]);
              expect(state.v.shape).toEqual([batch, kvHeads, e, dv]);
              const got = await step.output.data();
              step.output.dispose();
              for (let b = 0; b < batch; b++)
                for (let h = 0; h < heads; h++) {
                  const want = fullData.subarray(((b * heads + h) * total + s) * dv, ((b * heads + h) * total + e) * dv);
                  const have = got.subarray(((b * heads + h) * (e - s)) * dv, ((b * heads + h) * (e - s) + (e - s)) * dv);
                  expect(maxAbsDiff(have, want)).toBeLessThan(2e-5);
                }
            }
            state!.k.dispose();
            state!.v.dispose();
            expect(tf.memory().numTensors).toBe(before);
          } finally {
            q.dispose();
            k.dispose();
            v.dispose();
          }
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('decode needs causal: true and a matching cache, and throws AttentionError otherwise', () => {
    const q = seededTensor([1, 2, 1, 4], 1);
    const kv = seededTensor([1, 2, 1, 4], 2);
    const before = tf.memory().numTensors;
    expect(() => denseAttention().decode(q, kv, kv)).toThrow(AttentionError);
    const attn = denseAttention({ causal: true });
    const first = attn.decode(q, kv, kv);
    const wrong = { ...first.state, length: 5 };
    expect(() => attn.decode(q, kv, kv, wrong)).toThrow(/state/);
    first.output.dispose();
    first.state.k.dispose();
    first.state.v.dispose();
    expect(tf.memory().numTensors).toBe(before);
    q.dispose();
    kv.dispose();
  });
});
