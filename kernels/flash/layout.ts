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
  /** First key block of each entry (a run of consecutive visited blocks), ascending within a row. */
  keyBlocks: Int32Array;
  /**
   * Per entry: `blocks · 2 + full`, the run's length in blocks and whether every pair in it is
   * allowed (then the kernel skips the element rule there). Absent: every entry is one partial block.
   */
  runs?: Int32Array;
  /** Max visited blocks of any query block. */
  maxBlocksPerRow: number;
  /** Max entries of any query block (bounds the kernel's entry loop). Default `maxBlocksPerRow`. */
  maxEntriesPerRow?: number;
  /** Longest run in blocks (bounds one entry's key loop). Default 1. */
  maxRunBlocks?: number;
}

/** One entry of a layout row: `blocks` consecutive key blocks from `start`, full or partial. */
export interface LayoutEntry {
  start: number;
  blocks: number;
  full: boolean;
}

/** The layout facts a kernel plan needs. */
export function layoutShape(layout: BlockLayout): { blockK: number; blockQ: number; numQBlocks: number; maxBlocksPerRow: number; maxEntriesPerRow: number; maxRunBlocks: number; nnz: number } {
  return {
    blockK: layout.blockK,
    blockQ: layout.blockQ,
    numQBlocks: layout.numQBlocks,
    maxBlocksPerRow: layout.maxBlocksPerRow,
    maxEntriesPerRow: layout.maxEntriesPerRow ?? layout.maxBlocksPerRow,
    maxRunBlocks: layout.maxRunBlocks ?? 1,
    nnz: layout.keyBlocks.length,
  };
}

/** The entries of query block qb for head h. */
export function layoutEntries(layout: BlockLayout, qb: number, h: number): LayoutEntry[] {
  const lh = layout.layoutHeads === 1 ? 0 : h;
  const base = lh * (layout.numQBlocks + 1);
  const out: LayoutEntry[] = [];
  for (let e = layout.rowStart[base + qb]; e < layout.rowStart[base + qb + 1]; e++) {
    const run = layout.runs ? layout.runs[e] : 2;
    out.push({ start: layout.keyBlocks[e], blocks: run >> 1, full: (run & 1) === 1 });
  }
  return out;
}

/**
 * The kernel's `entries` input: per entry its first block, `blocks·2 + full`, and the visited
 * keys of its row before it (so that key splits can share a row's keys evenly), interleaved;
 * never empty (an empty layout still needs a binding).
 */
export function layoutEntryData(layout: BlockLayout): Int32Array {
  const nnz = layout.keyBlocks.length;
  const out = new Int32Array(Math.max(3, 3 * nnz));
  const rows = layout.rowStart;
  for (let r = 0; r + 1 < rows.length; r++) {
    let cum = 0;
    for (let e = rows[r]; e < rows[r + 1]; e++) {
      const run = layout.runs ? layout.runs[e] : 2;
      out[3 * e] = layout.keyBlocks[e];
      out[3 * e + 1] = run;
      out[3 * e + 2] = cum;
      cum += (run >> 1) * layout.blockK;
    }
  }
  return out;
}

/** Whether every entry of the layout is full (then the kernel needs no element rule at all). */
export function layoutAllFull(layout: BlockLayout): boolean {
  return !!layout.runs && layout.runs.every((r) => (r & 1) === 1);
}

/** Builds a layout from its rows of entries (`rows[h · numQBlocks + qb]`). */
export function buildLayoutFromEntries(opts: {
  blockQ: number;
  blockK: number;
  rowOffset: number;
  numQBlocks: number;
  layoutHeads: number;
  rows: LayoutEntry[][];
}): BlockLayout {
  const { blockQ, blockK, rowOffset, numQBlocks, layoutHeads, rows } = opts;
  const rowStart = new Int32Array(layoutHeads * (numQBlocks + 1));
  const nnz = rows.reduce((a, r) => a + r.length, 0);
  const keyBlocks = new Int32Array(nnz);
  const runs = new Int32Array(nnz);
  let e = 0;
  let maxBlocksPerRow = 0;
  let maxEntriesPerRow = 0;
  let maxRunBlocks = 1;
  for (let h = 0; h < layoutHeads; h++) {
    for (let qb = 0; qb < numQBlocks; qb++) {
      rowStart[h * (numQBlocks + 1) + qb] = e;
      const row = rows[h * numQBlocks + qb];
      let blocks = 0;
      for (const x of row) {
        keyBlocks[e] = x.start;
        runs[e] = x.blocks * 2 + (x.full ? 1 : 0);
        blocks += x.blocks;
        maxRunBlocks = Math.max(maxRunBlocks, x.blocks);
        e++;
      }
      maxBlocksPerRow = Math.max(maxBlocksPerRow, blocks);
      maxEntriesPerRow = Math.max(maxEntriesPerRow, row.length);
    }
    rowStart[h * (numQBlocks + 1) + numQBlocks] = e;
  }
  const layout: BlockLayout = { blockQ, blockK, numQBlocks, layoutHeads, rowStart, keyBlocks, runs, maxBlocksPerRow, maxEntriesPerRow, maxRunBlocks };
  if (rowOffset) layout.rowOffset = rowOffset;
  return layout;
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
  /** Whether `ruleSeek` lands only on allowed keys of weight 1: the kernel then skips `ruleWeight` after a seek. Default false. */
  exactSeek?: boolean;
  /** Whether every allowed key lies on a stride's lattice (strided, dilated): it steers `kernelStrategy: 'auto'`. Default false. */
  strides?: boolean;
  /** Whether `wgsl` defines `fn ruleInit(p : i32, h : i32)`, which the kernel calls once per query row before any key. Default false. */
  init?: boolean;
  /** The TypeScript twin of `ruleSeek` (required when `seeks`). */
  seek?(p: number, j: number, h: number): number;
}


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

/** Visited key blocks of query block qb for head h, ascending. */
export function layoutRow(layout: BlockLayout, qb: number, h: number): number[] {
  return layoutEntries(layout, qb, h).flatMap((e) => Array.from({ length: e.blocks }, (_, t) => e.start + t));
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
