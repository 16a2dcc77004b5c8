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

/** Which key blocks each query block visits, in CSR form. Pure data; built on the CPU and cached by the variant. */
export interface BlockLayout {
  /** Query rows per query block. */
  blockQ: number;
  /** Keys per key block (the last block may be shorter). */
  blockK: number;
  /** Number of query blocks: ceil(n / blockQ). */
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
  /** The same rule in TypeScript. */
  weight(p: number, j: number, h: number): number;
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
  visit: (qb: number, h: number) => Iterable<number>;
}): BlockLayout {
  const { n, m, blockQ, blockK } = opts;
  const layoutHeads = opts.layoutHeads ?? 1;
  const numQBlocks = Math.ceil(n / blockQ);
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
  return { blockQ, blockK, numQBlocks, layoutHeads, rowStart, keyBlocks: Int32Array.from(blocks), maxBlocksPerRow };
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
  for (let qb = 0; qb < layout.numQBlocks; qb++) {
    const rows = Math.min(layout.blockQ, n - qb * layout.blockQ);
    for (const kb of layoutRow(layout, qb, h)) pairs += rows * Math.min(layout.blockK, m - kb * layout.blockK);
  }
  return pairs;
}
