/**
 * What the docs build draws for each catalog entry: a few small configs, each drawn as
 * configured, with `causal: true` (where the entry has a causal form) and with a `keyLength`
 * (the last keys are padding). Every catalog entry needs a row (test/coverage.test.ts checks it).
 *
 * `how` says where the picture comes from:
 * - `'pattern'`: the entry's own `pattern(n, m)` (the docs build also checks that the weights
 *   `apply` computes on a seeded input are non-zero exactly on the drawn cells);
 * - `'weights'`: the attention weights `apply(q, k, I)` computes with v = the m×m identity (the
 *   output's row i is query i's weights over the keys; every such entry is linear in v);
 * - `'segments'`: stateful entries: `step` over consecutive segments, v_t = e_t for every
 *   absolute position t, so the last segment's output is its weights over every position seen
 *   (memory, compressed memory and segment);
 * - `'two-maps'`: set-transformer, which is not linear in v (its keys and values are H = attn(I, K, V)):
 *   the inducing points' map over the keys and the queries' map over H, drawn separately.
 */

export type PictureSource = 'pattern' | 'weights' | 'segments' | 'two-maps';

export interface PictureCase {
  /** The entry's config (small sizes, so that every cell is visible). */
  config: Record<string, unknown>;
  /** Query and key lengths (m defaults to n). */
  n: number;
  m?: number;
  /** The keyLength panel's valid length (default: m − m/4). */
  keyLength?: number;
  /** Number of segments for `'segments'`. */
  segments?: number;
  /** What the case shows, in a few words. */
  note?: string;
}

export interface EntryPictureSpec {
  how: PictureSource;
  cases: PictureCase[];
  /** Query heads (default 1) and kv heads (default heads); the picture is query head 0's. */
  heads?: number;
  kvHeads?: number;
  /** Head dim of the seeded input (default 8). */
  d?: number;
  /** Multiplier of the seeded queries (sharper softmax rows, so the structure shows). Default 1.5. */
  qScale?: number;
  /** `apply(q, q, v)`: the keys are the queries (lsh's shared-QK). */
  sharedQK?: boolean;
}

export const PICTURES: Record<string, EntryPictureSpec> = {
  dense: { how: 'weights', cases: [{ config: {}, n: 24 }, { config: {}, n: 12, m: 24, note: 'n < m: queries are the last n positions' }] },
  'multi-query': { how: 'weights', heads: 2, kvHeads: 1, cases: [{ config: {}, n: 24 }] },
  local: { how: 'pattern', cases: [{ config: { window: 3 }, n: 24 }, { config: { window: 2 }, n: 12, m: 24, note: 'n < m: queries are the last n positions' }] },
  blockwise: { how: 'pattern', cases: [{ config: { block: 4, lookback: 1 }, n: 24 }, { config: { block: 6, lookback: 0 }, n: 24 }] },
  strided: { how: 'pattern', cases: [{ config: { stride: 4 }, n: 24 }, { config: { stride: 6 }, n: 24 }] },
  dilated: { how: 'pattern', cases: [{ config: { window: 2, dilation: 3 }, n: 24 }, { config: { window: 4, dilation: 2 }, n: 24 }] },
  compressed: { how: 'weights', cases: [{ config: { stride: 4, mode: 'mean' }, n: 24 }, { config: { stride: 6, mode: 'mean' }, n: 24 }] },
  'sparse-transformer': {
    how: 'pattern',
    cases: [
      { config: { stride: 4, pattern: 'strided' }, n: 24 },
      { config: { stride: 6, pattern: 'fixed', summary: 2 }, n: 24 },
    ],
  },
  axial: { how: 'pattern', cases: [{ config: { shape: [4, 6] }, n: 24 }, { config: { shape: [4, 6], axes: 'row' }, n: 24 }, { config: { shape: [4, 6], axes: 'column' }, n: 24 }] },
  'big-bird': {
    how: 'pattern',
    cases: [
      { config: { block: 3, windowBlocks: 3, globalBlocks: 1, randomBlocks: 1, seed: 7 }, n: 24 },
      { config: { block: 2, windowBlocks: 3, globalBlocks: 1, randomBlocks: 2, seed: 3 }, n: 24 },
    ],
  },
  lsh: { how: 'weights', sharedQK: true, cases: [{ config: { bucketSize: 4, hashes: 2, seed: 5 }, n: 24 }, { config: { bucketSize: 6, hashes: 1, seed: 5 }, n: 24 }] },
  routing: { how: 'weights', cases: [{ config: { clusters: 3, window: 8, heads: 1, dim: 8, seed: 5 }, n: 24 }, { config: { clusters: 4, window: 4, heads: 1, dim: 8, seed: 5 }, n: 24 }] },
  sinkhorn: { how: 'weights', cases: [{ config: { block: 4, maxLength: 24, headDim: 8, seed: 5 }, n: 24 }, { config: { block: 6, maxLength: 24, headDim: 8, seed: 5 }, n: 24 }] },
  'transformer-xl': { how: 'segments', cases: [{ config: { memLength: 8, heads: 1, headDim: 8 }, n: 8, segments: 3 }, { config: { memLength: 16, heads: 1, headDim: 8 }, n: 8, segments: 3 }] },
  compressive: {
    how: 'segments',
    cases: [
      { config: { memLength: 8, compressedLength: 4, rate: 2, fn: 'mean' }, n: 8, segments: 4, note: "fn 'mean' (linear in v, so the weights are readable; 'max' is not)" },
      { config: { memLength: 8, compressedLength: 2, rate: 4, fn: 'mean' }, n: 8, segments: 4 },
    ],
  },
  longformer: { how: 'pattern', cases: [{ config: { window: 2, global: [0, 11] }, n: 24 }, { config: { window: 2, dilation: 2, global: [0] }, n: 24 }] },
  etc: { how: 'pattern', cases: [{ config: { globalTokens: 2, radius: 2 }, n: 24 }, { config: { globalTokens: 4, radius: 1 }, n: 24 }] },
  'set-transformer': { how: 'two-maps', cases: [{ config: { inducingPoints: 6, heads: 1, headDim: 8, seed: 5 }, n: 24 }] },
  linformer: { how: 'weights', cases: [{ config: { k: 6, maxLength: 24, seed: 5 }, n: 24 }, { config: { k: 6, maxLength: 24, shareKV: true, seed: 5 }, n: 24 }] },
  linear: { how: 'weights', cases: [{ config: { featureMap: 'elu+1' }, n: 24 }, { config: { featureMap: 'relu' }, n: 24 }] },
  performer: { how: 'weights', cases: [{ config: { features: 32, seed: 5 }, n: 24 }, { config: { features: 32, kernel: 'relu', seed: 5 }, n: 24 }] },
  'adaptive-span': { how: 'weights', cases: [{ config: { maxSpan: 8, ramp: 4, heads: 1 }, n: 24 }, { config: { maxSpan: 8, ramp: 2, z: [2], heads: 1 }, n: 24 }] },
};

/**
 * The config the docs build gives an entry to read its defaults (the config table's "default"
 * column is what the built instance reports): the keys its factory cannot do without. Entries not
 * listed are built with no config at all.
 */
export const REQUIRED_CONFIG: Record<string, Record<string, unknown>> = {
  axial: { shape: [32, 32] },
  routing: { clusters: 4, heads: 1, dim: 64 },
  sinkhorn: { block: 64, maxLength: 1024, headDim: 64 },
  'transformer-xl': { heads: 1, headDim: 64 },
  'set-transformer': { heads: 1, headDim: 64 },
  linformer: { maxLength: 1024 },
  'adaptive-span': { maxSpan: 256, heads: 1 },
};
