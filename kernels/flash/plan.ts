/**
 * Planning of the fused flash-attention dispatch: how the key range is split across
 * invocations (split-KV, as flash-decoding does), checked against the device's limits and
 * the software adapter's loop cap before anything is dispatched.
 *
 * @module
 */
import { AttentionError } from '../../src/core/errors.js';
import type { Dims, KernelStrategy } from '../../src/core/types.js';
import { checkBinding, checkBindingCount, checkIOLimits, LOOP_BUDGET, maxBindingBytes, type KernelLimits } from '../shared/limits.js';
import { ROWS_PER_INVOCATION, tileLoadTrips, type TileShape } from './tiled_program.js';

/** Fewest keys one split handles before splitting further stops paying off. */
export const MIN_KEYS_PER_SPLIT = 256;
/** Splits used for long key ranges when the loop budget does not force more. */
export const BASE_SPLITS = 4;
/** Query rows per workgroup. */
export const ROWS_PER_WORKGROUP = 64;
/** Most keys one tile of the tiled strategy holds (fewer when workgroup memory is short). */
export const MAX_TILE_KEYS = 64;
/** Workgroup memory the tiled program uses besides its K/V tiles. */
export const TILED_OTHER_WORKGROUP_BYTES = 16;
/** Fewest keys per tile worth a tile (below it the tiled strategy is not offered). */
export const MIN_TILE_KEYS = 4;

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
  /** Query rows per query block (the tiled strategy keeps each workgroup in one block). */
  blockQ?: number;
  /** Query blocks of the layout. */
  numQBlocks?: number;
}

/** Options of {@link planFlash}. */
export interface PlanOptions {
  /** Block-sparse mode: the layout's shape. */
  layout?: LayoutShape;
  /** Storage bindings besides q, k, v, keyLength and the output (layout: 2, rule params: 1). */
  extraBindings?: number;
  /** `'rows'`, `'tiled'` or `'auto'` (default): see {@link chooseStrategy}. */
  strategy?: KernelStrategy;
  /** Whether every key the element rule allows lies on a stride's lattice (it steers `'auto'`). */
  ruleStrides?: boolean;
  /**
   * Why this call runs the per-row strategy only (an explicit `'tiled'` then throws
   * AttentionError with this reason), or undefined. Transformer-XL's relative score modifier
   * exists in the per-row program only.
   */
  rowsOnly?: string;
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
  /** The tiled strategy's tile (query rows per workgroup, keys per tile), or null: one invocation per row. */
  tile: TileShape | null;
  /** Workgroups along x: query row groups (dense) or query blocks × sub-tiles (block-sparse). */
  queryGroups: number;
}

let stagingOverride: boolean | null = null;

/**
 * For tests and benchmarks: stage K/V tiles in workgroup memory always (`true`), never
 * (`false`), or as the adapter suits (`null`, the default: not on CPU-backed adapters).
 */
export function setTileStaging(stage: boolean | null): void {
  stagingOverride = stage;
}

/**
 * The tile the tiled strategy would use on this device, or null where it cannot: `rows` query
 * rows per workgroup (64; staged, the query block rounded up to a multiple of 4 when smaller, so
 * a staged workgroup never straddles two blocks), as many keys per tile as workgroup memory holds for K
 * and V (at most {@link MAX_TILE_KEYS}, at least {@link MIN_TILE_KEYS}), and whether tiles are
 * staged in workgroup memory (not on CPU-backed adapters, where it measured slower: see
 * docs/kernels.md).
 */
export function tileFor(dPad: number, dvPad: number, limits: KernelLimits, blockQ?: number): TileShape | null {
  const storage = limits.maxComputeWorkgroupStorageSize ?? 16384;
  const invocations = Math.min(limits.maxComputeInvocationsPerWorkgroup ?? 256, limits.maxComputeWorkgroupSizeX ?? 256);
  const stage = stagingOverride ?? !limits.cpuAdapter;
  // Staged tiles keep a workgroup in one query block; read directly, rows are fixed.
  const blockRows = stage ? Math.ceil((blockQ ?? ROWS_PER_WORKGROUP) / ROWS_PER_INVOCATION) * ROWS_PER_INVOCATION : ROWS_PER_WORKGROUP;
  const rows = Math.min(ROWS_PER_WORKGROUP, blockRows, invocations * ROWS_PER_INVOCATION);
  // The tiles share workgroup memory with the workgroup id (a vec3<u32> padded to 16 bytes).
  const keys = Math.min(MAX_TILE_KEYS, Math.floor((storage - TILED_OTHER_WORKGROUP_BYTES) / ((dPad + dvPad) * 4)));
  return keys >= MIN_TILE_KEYS ? { rows, keys, stage } : null;
}

/** Fewest query rows for which `'auto'` runs the tiled strategy. */
export const MIN_TILED_ROWS = 16;

/**
 * The strategy `'auto'` runs (bench/results/strategies.md has the measurements behind it):
 * tiled wherever it can run, except for a rule whose every key lies on a stride's lattice
 * (strided, dilated: the four rows of an invocation allow disjoint keys, so it visits up to four
 * times as many; strided measured 0.6–0.66× as fast tiled, dilated even) and for fewer than
 * {@link MIN_TILED_ROWS} query rows (decode steps: most lanes would idle). Patterns that join a
 * lattice with a band or shared keys (axial, Sparse Transformer, Longformer) run tiled.
 */
export function chooseStrategy(tile: TileShape | null, problem: { n: number; strides: boolean }): 'rows' | 'tiled' {
  return tile && !problem.strides && problem.n >= MIN_TILED_ROWS ? 'tiled' : 'rows';
}

/**
 * Plans the fused kernel for `dims` (dense mode), or for a block-sparse `layout`.
 *
 * Rule, with K the most keys one query row can visit (m, or maxBlocksPerRow·blockK) and E the
 * most layout entries of a query block (0 in dense mode): `S = clamp(ceil(K / 256), 1, 4)`,
 * raised until one split's loop trip count fits LOOP_BUDGET (per row: `E + ceil(K / S)`;
 * tiled: `2E + 2 + ceil(K / S)`, and with staged tiles each tile's trip, loads and exit), lowered (not
 * below what the loop budget needs) while the partial buffer exceeds the binding limit. With S
 * fixed for long sequences the partial buffer is `O(n)`.
 *
 * @throws AttentionError when a buffer would exceed the device's limits, or an explicit
 *   `'tiled'` strategy does not fit the device's workgroup memory.
 */
export function planFlash(dims: Dims, limits: KernelLimits, opts: PlanOptions = {}): FlashPlan {
  const { dPad, dvPad } = checkIOLimits(dims, limits);
  const strategy = opts.strategy ?? 'auto';
  const tileShape = tileFor(dPad, dvPad, limits, opts.layout?.blockQ);
  if (strategy === 'tiled' && !tileShape) {
    const storage = limits.maxComputeWorkgroupStorageSize ?? 16384;
    throw new AttentionError(
      'options.kernelStrategy',
      `'rows' or 'auto' for head dims whose ${MIN_TILE_KEYS}-key K/V tile fits the device's ${storage}-byte workgroup memory`,
      `'tiled' with d = ${dims.d}, dv = ${dims.dv}`,
    );
  }
  const pads = { dPad, dvPad };
  if (opts.rowsOnly) {
    if (strategy === 'tiled') throw new AttentionError('options.kernelStrategy', `'rows' or 'auto' (${opts.rowsOnly})`, "'tiled'");
    return planWith(dims, limits, opts, pads, null);
  }
  if (strategy === 'tiled') return planWith(dims, limits, opts, pads, tileShape);
  if (strategy === 'auto' && chooseStrategy(tileShape, { n: dims.n, strides: !!opts.ruleStrides }) === 'tiled') {
    // Where the tiled plan cannot fit (the loop budget), one row per invocation may.
    try {
      return planWith(dims, limits, opts, pads, tileShape);
    } catch (e) {
      if (!(e instanceof AttentionError)) throw e;
    }
  }
  return planWith(dims, limits, opts, pads, null);
}

/** The plan for one strategy (`tile` null: one row per invocation), head dims already checked and padded. */
function planWith(dims: Dims, limits: KernelLimits, opts: PlanOptions, { dPad, dvPad }: { dPad: number; dvPad: number }, tile: TileShape | null): FlashPlan {
  const layout = opts.layout;
  const { batch, heads, n, m } = dims;
  const maxBind = maxBindingBytes(limits);
  const check = (name: string, bytes: number) => checkBinding(limits, name, bytes);
  const maxGroups = limits.maxComputeWorkgroupsPerDimension;
  const qBlocks = layout ? (layout.numQBlocks ?? Math.ceil(n / (layout.blockQ ?? 1))) : 0;
  const blockQ = layout?.blockQ ?? 1;
  const queryGroups = !tile
    ? Math.ceil(n / ROWS_PER_WORKGROUP)
    : !layout
      ? Math.ceil(n / tile.rows)
      : tile.stage
        ? qBlocks * Math.ceil(blockQ / tile.rows)
        : Math.ceil((qBlocks * Math.ceil(blockQ / ROWS_PER_INVOCATION)) / (tile.rows / ROWS_PER_INVOCATION));
  if (queryGroups > maxGroups) {
    throw new AttentionError('q', `n <= ${maxGroups * (tile ? tile.rows : ROWS_PER_WORKGROUP)} (the device's workgroups per dimension)`, `n = ${n}`);
  }
  checkBindingCount(limits, 5 + (opts.extraBindings ?? 0));
  if (layout) check('layout', layout.nnz * 12);
  // Dense mode: the keys are cut into S equal chunks. Block-sparse: each split takes an equal
  // share of its row's visited keys (counted along the runs) and walks the row's entries, so
  // one invocation loops at most over the entries plus its share (and, tiled, the tiles).
  const keysPerRow = layout ? layout.maxBlocksPerRow * layout.blockK : m;
  const entries = layout ? (layout.maxEntriesPerRow ?? layout.maxBlocksPerRow) : 0;
  if (entries >= LOOP_BUDGET / 2) throw new AttentionError('layout', `at most ${LOOP_BUDGET / 2 - 1} entries per query block`, `${entries}`);
  // One invocation's loop trips for a split of `chunk` keys. Per row: the entries, then the keys.
  // Tiled: the entries and one loop exit per range, the keys, and (staged) per tile its trip,
  // its loads and a loop exit; a split's keys span at most entries + ceil(chunk / keys) + 1 tiles.
  const loadTrips = tile?.stage ? tileLoadTrips(tile, dPad / 4, dvPad / 4) : 0;
  const trips = (chunk: number) => {
    if (!tile) return entries + chunk;
    const tiles = tile.stage ? entries + Math.ceil(chunk / tile.keys) + 1 : 0;
    return 2 * entries + 2 + chunk + tiles * (2 + loadTrips);
  };
  // The fewest splits whose trips fit (trips shrink as splits grow): a binary search.
  const fits = (s: number) => trips(Math.ceil(keysPerRow / s)) <= LOOP_BUDGET;
  if (!fits(maxGroups)) throw new AttentionError('k', `fewer keys per query (the loop budget allows ${maxGroups} splits)`, `${keysPerRow}`);
  let lo = 1;
  let minSplits = maxGroups;
  while (lo < minSplits) {
    const mid = (lo + minSplits) >> 1;
    if (fits(mid)) minSplits = mid;
    else lo = mid + 1;
  }
  let splits = Math.max(Math.min(Math.ceil(keysPerRow / MIN_KEYS_PER_SPLIT), BASE_SPLITS), minSplits, 1);
  const rowBytes = (dvPad + 4) * 4;
  const partial = (s: number) => (s === 1 ? 0 : batch * heads * s * n * rowBytes);
  while (splits > minSplits && partial(splits) > maxBind) splits--;
  check('k (split partials)', partial(splits));
  const chunk = Math.max(1, Math.ceil(keysPerRow / splits));
  return {
    splits,
    chunk,
    dPad,
    dvPad,
    partialBytes: partial(splits),
    maxLoopIterations: Math.max(trips(chunk), splits > 1 ? 2 * splits : 0),
    tile,
    queryGroups,
  };
}
