/**
 * How the tour and the bench run each catalog entry: its config on the sample problem, its
 * kv head count, and the float64 reference its error is measured against (`errorAgainst`: its
 * own definition, or full dense attention). Every catalog entry needs one (test/coverage.test.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Attention } from '../src/core/types.js';
import { sampledError } from './common.js';
import { logElu1 } from '../test/specs/kernelized-reference.js';
import { sampledKernelizedError, setTransformerDefinitionError, spanWeight } from './kernelized.js';
import { lshAllowed } from '../test/specs/lsh.js';
import { referenceSinkhorn } from '../test/specs/sinkhorn.js';
import { referenceRouting } from '../test/specs/routing.js';
import { referenceXL } from '../test/specs/transformer-xl.js';
import { maxAbsDiff, toHost } from '../test/reference.js';

/** `routing` (seeded centroids) against its float64 definition: every output row (the reference is O(n·w·d + n·kc·d)). */
export async function routingDefinitionError(config: Record<string, unknown>, x: { q: tf.Tensor4D; k: tf.Tensor4D; v: tf.Tensor4D }, out: tf.Tensor4D): Promise<number> {
  const [q, k, v, o] = await Promise.all([x.q, x.k, x.v, out].map((t) => toHost(t)));
  const [B, H, n, d] = x.q.shape;
  const c = { config, batch: B, heads: H, kvHeads: x.k.shape[1], n, m: x.k.shape[2], d, dv: x.v.shape[3], keyLength: null, seed: 0 };
  return maxAbsDiff(o.data, referenceRouting(q, k, v, c).data);
}

/** `sinkhorn` (seeded weights) against its float64 definition: every output row (the reference is O(n·b·d)). */
export async function sinkhornDefinitionError(config: Record<string, unknown>, x: { q: tf.Tensor4D; k: tf.Tensor4D; v: tf.Tensor4D }, out: tf.Tensor4D): Promise<number> {
  const [q, k, v, o] = await Promise.all([x.q, x.k, x.v, out].map((t) => toHost(t)));
  const [B, H, n, d] = x.q.shape;
  const c = { config, batch: B, heads: H, kvHeads: x.k.shape[1], n, m: x.k.shape[2], d, dv: x.v.shape[3], keyLength: null, seed: 0 };
  return maxAbsDiff(o.data, referenceSinkhorn(q, k, v, c).data);
}

export interface TourEntry {
  /** Config for the sample problem of length n with `heads` query heads. */
  config(n: number, heads: number): Record<string, unknown>;
  /** Keys are the queries (Reformer's shared-QK): the tour calls `apply(q, q, v)`. */
  sharedQK?: boolean;
  /** kv heads for `heads` query heads. */
  kvHeads?(heads: number): number;
  /** Reference weight: 1 allowed, 0 not (soft weights for adaptive span). Default: `pattern()` rows or all keys. */
  weight?(attn: Attention<unknown>, n: number, m: number): (h: number, i: number, j: number) => number;
  /**
   * What the tour's error is measured against: `'definition'`, the entry's own definition (its
   * allowed set, soft span, compressed keys or feature map); `'dense'`, full dense softmax
   * attention (for approximations of dense whose own definition the tour does not rebuild).
   */
  errorAgainst: 'definition' | 'dense';
  /** Custom error against the entry's own definition, for entries that `weight` cannot express (e.g. compressed keys). */
  error?(attn: Attention<unknown>, x: { q: tf.Tensor4D; k: tf.Tensor4D; v: tf.Tensor4D }, out: tf.Tensor4D, scale: number): Promise<number>;
}

const causalWeight = (causal: boolean, n: number, m: number) => (_h: number, i: number, j: number) =>
  causal && j > i + (m - n) ? 0 : 1;

export const tourEntries: Record<string, TourEntry> = {
  dense: { config: () => ({ causal: true }), weight: (_a, n, m) => causalWeight(true, n, m), errorAgainst: 'definition' },
  'multi-query': { config: () => ({ causal: true }), kvHeads: () => 1, weight: (_a, n, m) => causalWeight(true, n, m), errorAgainst: 'definition' },
  local: { config: () => ({ window: 128, causal: true }), weight: patternWeight, errorAgainst: 'definition' },
  blockwise: { config: () => ({ block: 128, lookback: 1, causal: true }), weight: patternWeight, errorAgainst: 'definition' },
  strided: { config: (n) => ({ stride: sqrtPow2(n), causal: true }), weight: patternWeight, errorAgainst: 'definition' },
  dilated: { config: () => ({ window: 64, dilation: 2, causal: true }), weight: patternWeight, errorAgainst: 'definition' },
  compressed: { config: () => ({ stride: 8 }), errorAgainst: 'definition', error: compressedError },
  'sparse-transformer': { config: (n) => ({ stride: sqrtPow2(n), pattern: 'fixed', summary: 8, causal: true }), weight: patternWeight, errorAgainst: 'definition' },
  axial: { config: (n) => ({ shape: grid(n) }), weight: patternWeight, errorAgainst: 'definition' },
  'big-bird': { config: () => ({ block: 64 }), weight: patternWeight, errorAgainst: 'definition' },
  lsh: {
    config: () => ({ bucketSize: 64, hashes: 2, causal: true }),
    sharedQK: true,
    errorAgainst: 'definition',
    error: async (_a, x, out, scale) => {
      const [, , n, d] = x.q.shape;
      const allowed = lshAllowed({ shape: x.q.shape, data: await x.q.data() }, { config: { bucketSize: 64, hashes: 2, causal: true }, keyLength: null, m: n, d });
      const kn = tf.tidy(() => tf.div(x.q, tf.maximum(tf.norm(x.q, 'euclidean', 3, true), 1e-30)) as tf.Tensor4D);
      try {
        return await sampledError(out, x.q, kn, x.v, scale, (h, i, j) => allowed(0, h, i, j));
      } finally {
        kn.dispose();
      }
    },
  },
  routing: {
    config: (n, heads) => ({ clusters: Math.ceil(n / 256), window: 256, heads, dim: 64 }),
    errorAgainst: 'definition',
    error: async (a, x, out) => routingDefinitionError({ clusters: Math.ceil(x.q.shape[2] / 256), window: 256, heads: x.q.shape[1], dim: x.q.shape[3] }, x, out),
  },
  sinkhorn: {
    config: (n) => ({ block: 64, maxLength: n, headDim: 64 }),
    errorAgainst: 'definition',
    error: async (a, x, out) => sinkhornDefinitionError({ block: 64, maxLength: x.k.shape[2], headDim: x.q.shape[3] }, x, out),
  },
  'transformer-xl': {
    config: (_n, heads) => ({ memLength: 512, heads, headDim: 64 }),
    errorAgainst: 'definition',
    error: async (a, x, out) => {
      const [q, k, v, o] = await Promise.all([x.q, x.k, x.v, out].map((t) => toHost(t)));
      const [B, H, n, d] = x.q.shape;
      const dv = x.v.shape[3];
      // 16 sampled rows (the float64 reference is O(n·(n + L)·d) per row set).
      const rows = Array.from({ length: 16 }, (_, r) => Math.min(n - 1, Math.floor(((r + 0.5) * n) / 16)));
      const want = referenceXL(q, k, v, { config: a.config as unknown as Record<string, unknown>, heads: H, d, keyLength: null }, rows);
      let worst = 0;
      for (let bh = 0; bh < B * H; bh++) for (const i of rows) for (let t = 0; t < dv; t++) worst = Math.max(worst, Math.abs(o.data[(bh * n + i) * dv + t] - want.data[(bh * n + i) * dv + t]));
      return worst;
    },
  },
  compressive: { config: () => ({ memLength: 512, compressedLength: 128, rate: 4, fn: 'mean' }), weight: (_a, n, m) => causalWeight(true, n, m), errorAgainst: 'definition' },
  longformer: { config: () => ({ window: 128, global: [0, 1, 2, 3, 4, 5, 6, 7] }), weight: patternWeight, errorAgainst: 'definition' },
  etc: { config: () => ({ globalTokens: 16, radius: 128 }), weight: patternWeight, errorAgainst: 'definition' },
  'set-transformer': { config: (_n, heads) => ({ inducingPoints: 32, heads, headDim: 64 }), errorAgainst: 'definition', error: (a, x, out) => setTransformerDefinitionError(a, x, out) },
  linformer: { config: (n) => ({ k: 256, maxLength: n }), errorAgainst: 'dense' },
  linear: {
    config: () => ({ causal: true }),
    errorAgainst: 'definition',
    error: (_a, x, out) => sampledKernelizedError(out, x.q, x.k, x.v, logElu1, true),
  },
  performer: { config: () => ({ features: 256 }), errorAgainst: 'dense' },
  'adaptive-span': {
    config: (_n, heads) => ({ maxSpan: 256, ramp: 32, heads, causal: true }),
    errorAgainst: 'definition',
    // Every z_h starts at S/2 (the default).
    weight: (attn, n, m) => {
      const c = attn.config as { maxSpan: number; ramp: number; heads: number; causal: boolean };
      return spanWeight(c.maxSpan, c.ramp, new Array(c.heads).fill(c.maxSpan / 2), c.causal, n, m);
    },
  },
};

/**
 * Reference weight from a variant's `pattern()` (rows of allowed keys), for pattern variants:
 * per query head (variants with per-head parameters take the head as a third argument), with
 * the config's `causal` on top.
 */
export function patternWeight(attn: Attention<unknown>, n: number, m: number) {
  const pattern = attn.pattern as (n: number, m: number, head?: number) => { rows: number[][] };
  const causal = !!(attn.config as { causal?: boolean }).causal;
  // Only per-head parameters (a dilation per head) make the pattern differ between heads.
  const perHeadParams = Array.isArray((attn.config as { dilation?: unknown }).dilation);
  const perHead = new Map<number, Set<number>[]>();
  const sets = (h: number) => {
    let s = perHead.get(h);
    if (!s) perHead.set(h, (s = pattern.call(attn, n, m, h).rows.map((r) => new Set(r))));
    return s;
  };
  return (h: number, i: number, j: number) => (causal && j > i + (m - n) ? 0 : sets(perHeadParams ? h : 0)[i].has(j) ? 1 : 0);
}

/** About sqrt(n), a power of two (strides of the sqrt-factorized patterns). */
export const sqrtPow2 = (n: number) => 2 ** Math.round(Math.log2(n) / 2);

/** A near-square grid [rows, cols] with rows·cols = n. */
export function grid(n: number): [number, number] {
  let rows = Math.floor(Math.sqrt(n));
  while (n % rows !== 0) rows--;
  return [rows, n / rows];
}

/**
 * `compressed` (mode 'mean', non-causal) against its definition: keys and values averaged over
 * blocks of `stride` positions (computed here with plain tfjs ops), then softmax attention over them.
 */
async function compressedError(attn: Attention<unknown>, x: { q: tf.Tensor4D; k: tf.Tensor4D; v: tf.Tensor4D }, out: tf.Tensor4D, scale: number) {
  const t = (attn.config as { stride: number }).stride;
  const mean = (a: tf.Tensor4D) =>
    tf.tidy(() => {
      const [b, h, m, d] = a.shape;
      const padded = m % t === 0 ? a : tf.pad(a, [[0, 0], [0, 0], [0, t - (m % t)], [0, 0]]);
      const sums = tf.sum(tf.reshape(padded, [b, h, Math.ceil(m / t), t, d]), 3);
      const counts = tf.tensor(Array.from({ length: Math.ceil(m / t) }, (_, c) => Math.min(t, m - c * t)), [1, 1, Math.ceil(m / t), 1]);
      return tf.div(sums, counts) as tf.Tensor4D;
    });
  const kc = mean(x.k);
  const vc = mean(x.v);
  try {
    return await sampledError(out, x.q, kc, vc, scale, () => 1);
  } finally {
    kc.dispose();
    vc.dispose();
  }
}
