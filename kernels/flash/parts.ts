/**
 * Host-side (pure data) descriptions of what the block-sparse composite gathers.
 *
 * A pattern's allowed set is cut into disjoint *parts*. A part groups query rows (contiguous
 * blocks of positions, or residue classes such as every r-th position) and lists, per
 * group, the keys its rows may attend; the composite gathers exactly those keys into
 * `[batch, heads, groups, keys, d]`, so memory follows the pattern (rows × keys per group),
 * never n·m. Where one grouping cannot serve the whole pattern cheaply (a band plus a strided
 * lattice, global rows that see everything), the parts are attended separately and merged
 * with their log-sum-exp, as one softmax over the union.
 *
 * Everything here is built on the CPU once per (config, n, m, heads) and cached by the variant.
 *
 * @module
 */
import { DISALLOWED_SCORE } from '../shared/masking.js';

/** One part, as `derive.ts` derives it from a rule (compressed states its one part directly); {@link buildPart} turns it into a {@link GatherPart}. */
export interface PartDef {
  /** Whether groups and keys differ per query head (per-head dilation). Default false. */
  perHead?: boolean;
  /** Groups of query rows (indices into `[0, n)`), for head h (h = 0 when not per head). */
  groups(h: number): number[][];
  /**
   * The candidate keys of a group (ascending, unique, in `[0, m)`), or `'all'` for every key
   * (then the part must have a single group; K and V are used without a gather).
   */
  keys: ((rows: number[], h: number) => number[]) | 'all';
  /** This part's element weight (0 = not allowed), before causal and keyLength. */
  weight(p: number, j: number, h: number): number;
}

/** One part, ready for the composite. Arrays are row-major in the order of their shape. */
export interface GatherPart {
  /** 1 (shared by all query heads) or `heads`. */
  layoutHeads: number;
  /** Rows per group (G) and groups (NG). */
  groupSize: number;
  numGroups: number;
  /** Keys per group (V). */
  width: number;
  /** `[layoutHeads, NG·G]` query rows (−1 = padding slot), or null for rows `0 … NG·G − 1` in order (rows ≥ n padding). */
  rows: Int32Array | null;
  /** `[layoutHeads, NG, V]` keys (−1 = padding slot), or null for all m keys in order (then NG = 1, V = m). */
  keys: Int32Array | null;
  /** `[layoutHeads, NG, G, V]` additive score bias: log(weight) where allowed, {@link DISALLOWED_SCORE} elsewhere. */
  bias: Float32Array;
  /** `[layoutHeads, n]` slot of each row in `rows` (NG·G: not in this part), or null when `rows` is null. */
  inverse: Int32Array | null;
  /** Whether every row 0 … n−1 is in this part (then no sentinel row is needed to scatter back). */
  coversAllRows: boolean;
}

/**
 * Rows grouped by the block of their position (`floor(p / block)`, p = i + off), each block
 * cut into groups of at most `maxSize` rows. Rows for which `keep(i)` is false are left out.
 */
export function positionBlockGroups(n: number, off: number, block: number, maxSize: number, keep: (i: number) => boolean = () => true): number[][] {
  const out: number[][] = [];
  let cur: number[] = [];
  let curBlock = -1;
  for (let i = 0; i < n; i++) {
    if (!keep(i)) continue;
    const b = Math.floor((i + off) / block);
    if (b !== curBlock || cur.length === maxSize) {
      if (cur.length) out.push(cur);
      cur = [];
      curBlock = b;
    }
    cur.push(i);
  }
  if (cur.length) out.push(cur);
  return out;
}

/**
 * Rows grouped by the residue of their index (equivalently of their position) modulo `r`, in
 * order within a class, cut into groups of at most `maxSize`: a group's positions are
 * `p0, p0 + r, …`, so a dilated band or a strided lattice around them is a short list of keys.
 */
export function residueGroups(n: number, r: number, maxSize: number, keep: (i: number) => boolean = () => true): number[][] {
  const out: number[][] = [];
  // Rows i0, i0 + r, i0 + 2r, … share a residue; i0 < r starts each class.
  for (let i0 = 0; i0 < Math.min(r, n); i0++) {
    let cur: number[] = [];
    for (let i = i0; i < n; i += r) {
      if (!keep(i)) continue;
      cur.push(i);
      if (cur.length === maxSize) {
        out.push(cur);
        cur = [];
      }
    }
    if (cur.length) out.push(cur);
  }
  return out;
}

/** `[a, b]` inclusive (empty when b < a). */
export function range(a: number, b: number): number[] {
  const out: number[] = [];
  for (let x = a; x <= b; x++) out.push(x);
  return out;
}

/**
 * Builds a part for `n` queries over `m` keys and `heads` query heads: pads the groups and
 * key lists to the widest one and precomputes the score bias (weight, causal, padding).
 */
export function buildPart(def: PartDef, n: number, m: number, heads: number, causal: boolean): GatherPart | null {
  const layoutHeads = def.perHead ? heads : 1;
  const off = m - n;
  const perHeadGroups = Array.from({ length: layoutHeads }, (_, h) => def.groups(h).filter((g) => g.length > 0));
  const numGroups = Math.max(0, ...perHeadGroups.map((g) => g.length));
  if (numGroups === 0) return null;
  const groupSize = Math.max(1, ...perHeadGroups.flat().map((g) => g.length));
  const allKeys = def.keys === 'all';
  if (allKeys && (numGroups !== 1 || layoutHeads !== 1)) throw new Error("internal: a part with keys 'all' has one group and one layout head");
  const keyLists = perHeadGroups.map((groups, h) => groups.map((rows) => (allKeys ? [] : (def.keys as (r: number[], h: number) => number[])(rows, h))));
  const width = allKeys ? m : Math.max(1, ...keyLists.flat().map((k) => k.length));
  const R = numGroups * groupSize;
  // Rows: null when the groups are exactly rows 0 … n−1 in order, in full groups of G.
  let contiguous = layoutHeads === 1;
  if (contiguous) {
    const flat = perHeadGroups[0];
    let next = 0;
    flat.forEach((g, gi) => {
      if (gi < flat.length - 1 && g.length !== groupSize) contiguous = false;
      for (const r of g) if (r !== next++) contiguous = false;
    });
    if (next !== n) contiguous = false;
  }
  const rows = contiguous ? null : new Int32Array(layoutHeads * R).fill(-1);
  const inverse = contiguous ? null : new Int32Array(layoutHeads * n).fill(R);
  let coversAllRows = true;
  if (rows && inverse) {
    for (let h = 0; h < layoutHeads; h++) {
      perHeadGroups[h].forEach((g, gi) =>
        g.forEach((r, s) => {
          rows[h * R + gi * groupSize + s] = r;
          inverse[h * n + r] = gi * groupSize + s;
        }),
      );
      for (let i = 0; i < n; i++) if (inverse[h * n + i] === R) coversAllRows = false;
    }
  }
  const keys = allKeys ? null : new Int32Array(layoutHeads * numGroups * width).fill(-1);
  if (keys) {
    for (let h = 0; h < layoutHeads; h++) keyLists[h].forEach((list, gi) => keys.set(list, (h * numGroups + gi) * width));
  }
  const bias = new Float32Array(layoutHeads * R * width).fill(DISALLOWED_SCORE);
  for (let h = 0; h < layoutHeads; h++) {
    for (let gi = 0; gi < numGroups; gi++) {
      for (let s = 0; s < groupSize; s++) {
        const row = rows ? rows[h * R + gi * groupSize + s] : gi * groupSize + s;
        if (row < 0 || row >= n) continue;
        const p = row + off;
        const base = ((h * numGroups + gi) * groupSize + s) * width;
        for (let c = 0; c < width; c++) {
          const j = keys ? keys[(h * numGroups + gi) * width + c] : c;
          if (j < 0 || (causal && j > p)) continue;
          const w = def.weight(p, j, h);
          if (w > 0) bias[base + c] = w === 1 ? 0 : Math.log(w);
        }
      }
    }
  }
  return { layoutHeads, groupSize, numGroups, width, rows, keys, bias, inverse, coversAllRows };
}
