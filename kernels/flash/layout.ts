/**
 * Block-sparse layouts and element rules: how one fused kernel serves every pattern variant
 * (the FlexAttention model: block mask + mask_mod + score weight).
 *
 * - A {@link BlockLayout} says which key blocks each query block visits (CSR form, optionally
 *   one layout per head). A query block never touches a key block it is not given, so work
 *   and memory follow the pattern, not n·m.
 * - An {@link ElementRule} says which (query position p, key j, head h) pairs inside a visited
 *   block are allowed, as a weight: 0 skip, 1 keep, in between a soft weight (adaptive span).
 *   It exists twice: as a WGSL function for the kernel and as a TypeScript function for the
 *   composite and the tests, so all three compute the same set.
 *
 * Causal (`j <= p`) and `keyLength` are applied by the kernel on top of both.
 *
 * @module
 */
import type { Tensor1D } from '@tensorflow/tfjs-core';

/** Which key blocks each query block visits, in CSR form. Pure data; built on the CPU and cached by the variant. */
export interface BlockLayout {
  /** Query rows per query block. */
  blockQ: number;
  /**
   * Query row i belongs to query block `floor((i + rowOffset) / blockQ)`. Default 0. Pattern
   * variants whose blocks are blocks of *positions* set it to `(m − n) mod blockQ`, so that a
   * query block is exactly a block of positions `p_i = i + m − n` (then the layout alone can be
   * exact, with no element rule).
   */
  rowOffset?: number;
  /** Keys per key block (the last block may be shorter). */
  blockK: number;
  /** Number of query blocks: ceil((n + rowOffset) / blockQ). */
  numQBlocks: number;
  /** 1 (shared by all heads) or `heads` (one layout per query head). */
  layoutHeads: number;
  /** `[layoutHeads · (numQBlocks + 1)]` offsets into `keyBlocks`, absolute (head h's row starts at h·(numQBlocks+1)). */
  rowStart: Int32Array;
  /** Visited key block indices, ascending within a row. */
  keyBlocks: Int32Array;
  /** Max visited blocks of any query block (bounds the kernel's loop). */
  maxBlocksPerRow: number;
}

/**
 * An element rule: `weight(p, j, h)` with p the query's absolute position, j the key, h the
 * query head. `wgsl` defines `fn ruleWeight(p : i32, j : i32, h : i32) -> f32` and may read
 * `params[i]` (an f32 array holding `params`). Every value written into `wgsl` must be in `key`.
 */
export interface ElementRule {
  /** Goes into the program's shaderKey: must determine `wgsl` entirely. */
  key: string;
  /** WGSL source of `ruleWeight`. */
  wgsl: string;
  /** Per-call values the WGSL reads as `params[i]` (per-head dilation, z, global flags, …), or null. */
  params: Float32Array | null;
  /**
   * The per-call values as a float32 tensor already on the device, used instead of `params` when
   * given (e.g. derived from a learnable `tf.Variable`, which webgpu cannot read synchronously).
   * Owned by the caller.
   */
  paramsTensor?: Tensor1D | null;
  /** The same rule in TypeScript. */
  weight(p: number, j: number, h: number): number;
  /**
   * Whether `wgsl` also defines `fn ruleSeek(p : i32, j : i32, h : i32) -> i32`: the smallest key
   * `j' >= j` that may be allowed (it must never pass an allowed key; any value at or past the
   * end of the range ends it). The kernel then walks `j = ruleSeek(p, j0, h)`,
   * `j = ruleSeek(p, j + 1, h)`, … instead of every key, so lattice patterns (strided, dilated,
   * axial columns) and bands do work proportional to their allowed keys. Loop-free, like
   * `ruleWeight`. Default false.
   */
  seeks?: boolean;
  /** The TypeScript twin of `ruleSeek` (required when `seeks`). */
  seek?(p: number, j: number, h: number): number;
}

/** What `ruleSeek` returns to end a key range ("no candidate left"). */
export const SEEK_END = 1 << 30;

/**
 * Builds a layout from a function listing, for query block `qb` (and head `h` when per-head),
 * the key blocks it visits. Duplicates are removed and blocks sorted.
 */
export function buildLayout(opts: {
  n: number;
  m: number;
  blockQ: number;
  blockK: number;
  layoutHeads?: number;
  /** See {@link BlockLayout.rowOffset}. Default 0. */
  rowOffset?: number;
  visit: (qb: number, h: number) => Iterable<number>;
}): BlockLayout {
  const { n, m, blockQ, blockK } = opts;
  const layoutHeads = opts.layoutHeads ?? 1;
  const rowOffset = opts.rowOffset ?? 0;
  const numQBlocks = Math.ceil((n + rowOffset) / blockQ);
  const numKBlocks = Math.ceil(m / blockK);
  const rowStart = new Int32Array(layoutHeads * (numQBlocks + 1));
  const blocks: number[] = [];
  let maxBlocksPerRow = 0;
  for (let h = 0; h < layoutHeads; h++) {
    for (let qb = 0; qb < numQBlocks; qb++) {
      rowStart[h * (numQBlocks + 1) + qb] = blocks.length;
      const row = [...new Set(opts.visit(qb, h))].filter((kb) => kb >= 0 && kb < numKBlocks).sort((a, b) => a - b);
      maxBlocksPerRow = Math.max(maxBlocksPerRow, row.length);
      blocks.push(...row);
    }
    rowStart[h * (numQBlocks + 1) + numQBlocks] = blocks.length;
  }
  const layout: BlockLayout = { blockQ, blockK, numQBlocks, layoutHeads, rowStart, keyBlocks: Int32Array.from(blocks), maxBlocksPerRow };
  if (rowOffset) layout.rowOffset = rowOffset;
  return layout;
}

/** Visited key blocks of query block qb for head h (a view into the layout). */
export function layoutRow(layout: BlockLayout, qb: number, h: number): Int32Array {
  const lh = layout.layoutHeads === 1 ? 0 : h;
  const base = lh * (layout.numQBlocks + 1);
  return layout.keyBlocks.subarray(layout.rowStart[base + qb], layout.rowStart[base + qb + 1]);
}

/** Number of (query, key) pairs the layout visits for one head (work and gather size). */
export function layoutPairs(layout: BlockLayout, n: number, m: number, h = 0): number {
  let pairs = 0;
  const off = layout.rowOffset ?? 0;
  for (let qb = 0; qb < layout.numQBlocks; qb++) {
    const rows = Math.min((qb + 1) * layout.blockQ - off, n) - Math.max(qb * layout.blockQ - off, 0);
    for (const kb of layoutRow(layout, qb, h)) pairs += rows * Math.min(layout.blockK, m - kb * layout.blockK);
  }
  return pairs;
}
