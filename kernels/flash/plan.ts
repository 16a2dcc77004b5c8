/**
 * Planning of the fused flash-attention dispatch: how the key range is split across
 * invocations (split-KV, as flash-decoding does), checked against the device's limits and
 * the software adapter's loop cap before anything is dispatched.
 *
 * @module
 */
import { AttentionError } from '../../src/core/errors.js';
import type { Dims } from '../../src/core/types.js';
import { checkBinding, checkBindingCount, checkIOLimits, LOOP_BUDGET, maxBindingBytes, type KernelLimits } from '../shared/limits.js';

/** Fewest keys one split handles before splitting further stops paying off. */
export const MIN_KEYS_PER_SPLIT = 256;
/** Splits used for long key ranges when the loop budget does not force more. */
export const BASE_SPLITS = 4;
/** Query rows per workgroup. */
export const ROWS_PER_WORKGROUP = 64;

export type { KernelLimits };

/** The layout facts the plan needs (block-sparse mode). */
export interface LayoutShape {
  blockK: number;
  maxBlocksPerRow: number;
  /** Max entries (runs of blocks) of any query block. Default `maxBlocksPerRow`. */
  maxEntriesPerRow?: number;
  /** Longest run in blocks. Default 1. */
  maxRunBlocks?: number;
  /** Total entries of the layout (keyBlocks length). */
  nnz: number;
}

/** Options of {@link planFlash}. */
export interface PlanOptions {
  /** Block-sparse mode: the layout's shape. */
  layout?: LayoutShape;
  /** Storage bindings besides q, k, v, keyLength and the output (layout: 2, rule params: 1). */
  extraBindings?: number;
}

/** A planned dispatch. */
export interface FlashPlan {
  /** Number of key splits S (1: no partials, no merge). */
  splits: number;
  /** Per split: keys (dense mode), or at most this many of a row's visited keys (block-sparse mode). */
  chunk: number;
  /** Head dims padded to a multiple of 4 (vec4 loads). */
  dPad: number;
  dvPad: number;
  /** Bytes of the partial (output, max, sum) buffer; 0 when splits = 1. */
  partialBytes: number;
  /** Worst-case loop iterations of one invocation, over both passes. */
  maxLoopIterations: number;
}

/**
 * Plans the fused kernel for `dims` (dense mode), or for a block-sparse `layout`.
 *
 * Rule, with K the most keys one query row can visit (m, or maxBlocksPerRow·blockK) and E the
 * most layout entries of a query block (0 in dense mode): `S = clamp(ceil(K / 256), 1, 4)`,
 * raised until one split's loop trip count `E + ceil(K / S)` fits LOOP_BUDGET, lowered (not below what the loop budget needs) while the partial buffer
 * exceeds the binding limit. With S fixed for long sequences the partial buffer is `O(n)`.
 *
 * @throws AttentionError when a buffer would exceed the device's limits.
 */
export function planFlash(dims: Dims, limits: KernelLimits, opts: PlanOptions = {}): FlashPlan {
  const layout = opts.layout;
  const { batch, heads, n, m } = dims;
  const { dPad, dvPad } = checkIOLimits(dims, limits);
  const maxBind = maxBindingBytes(limits);
  const check = (name: string, bytes: number) => checkBinding(limits, name, bytes);
  const maxGroups = limits.maxComputeWorkgroupsPerDimension;
  if (Math.ceil(n / ROWS_PER_WORKGROUP) > maxGroups) {
    throw new AttentionError('q', `n <= ${maxGroups * ROWS_PER_WORKGROUP}`, `n = ${n}`);
  }
  checkBindingCount(limits, 5 + (opts.extraBindings ?? 0));
  if (layout) check('layout', layout.nnz * 12);
  // Dense mode: the keys are cut into S equal chunks. Block-sparse: each split takes an equal
  // share of its row's visited keys (counted along the runs) and walks the row's entries, so
  // one invocation loops at most over the entries plus its share.
  const keysPerRow = layout ? layout.maxBlocksPerRow * layout.blockK : m;
  const entries = layout ? (layout.maxEntriesPerRow ?? layout.maxBlocksPerRow) : 0;
  if (entries >= LOOP_BUDGET) throw new AttentionError('layout', `at most ${LOOP_BUDGET - 1} entries per query block`, `${entries}`);
  const minSplits = Math.max(1, Math.ceil(keysPerRow / (LOOP_BUDGET - entries)));
  let splits = Math.max(Math.min(Math.ceil(keysPerRow / MIN_KEYS_PER_SPLIT), BASE_SPLITS), minSplits, 1);
  const rowBytes = (dvPad + 4) * 4;
  const partial = (s: number) => (s === 1 ? 0 : batch * heads * s * n * rowBytes);
  while (splits > minSplits && partial(splits) > maxBind) splits--;
  if (splits > maxGroups) {
    throw new AttentionError('k', `at most ${maxGroups * LOOP_BUDGET} keys per query`, `${keysPerRow}`);
  }
  check('k (split partials)', partial(splits));
  const chunk = Math.max(1, Math.ceil(keysPerRow / splits));
  return {
    splits,
    chunk,
    dPad,
    dvPad,
    partialBytes: partial(splits),
    maxLoopIterations: Math.max(entries + chunk, splits > 1 ? 2 * splits : 0),
  };
}
