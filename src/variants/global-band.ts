/**
 * The pattern shared by `longformer` and `etc`: a (dilated) sliding window plus global
 * positions that attend everything and are attended by everything. Not a catalog entry.
 *
 * allowed(p, j, h) = j global, or p global, or (|p − j| <= w·r_h and (p − j) mod r_h == 0).
 *
 * - Kernel layout: a query block holding a global position visits every key block; any other
 *   visits the blocks of the global keys and of its band.
 * - Composite: three disjoint parts — the global keys (every non-global query), the band minus
 *   the global keys (non-global queries, grouped by residue class of r), and the global
 *   queries over all keys — merged by log-sum-exp.
 *
 * @module
 */
import { contiguousGroups, keyLattice, positionBlockGroups, range, residueGroups, type PartDef } from '../../kernels/flash/parts.js';
import { buildLayout, type BlockLayout } from '../../kernels/flash/layout.js';
import { dilationOf, pow2Clamp } from './pattern.js';

/** A global-plus-band pattern for one size. */
export interface GlobalBand {
  n: number;
  m: number;
  heads: number;
  causal: boolean;
  /** Window w (in dilated steps). */
  window: number;
  dilation: number | number[];
  /** Global positions, ascending, all < m. */
  globals: number[];
  isGlobal(x: number): boolean;
}

/** The band's weight (without the global terms). */
export function bandWeight(g: GlobalBand, p: number, j: number, h: number): boolean {
  const r = dilationOf(g.dilation, h);
  const d = p - j;
  return Math.abs(d) <= g.window * r && d % r === 0;
}

/** The kernel's block size for a band of half-width `span`. */
export const bandBlock = (span: number): number => pow2Clamp(span, 8, 64);

/** The kernel layout of a global-plus-band pattern. */
export function globalBandLayout(g: GlobalBand): BlockLayout {
  const { n, m, heads, causal, window: w, dilation, globals } = g;
  const perHead = Array.isArray(dilation);
  const rMax = perHead ? Math.max(...dilation) : dilation;
  const B = bandBlock(w * rMax);
  const off = m - n;
  const numK = Math.ceil(m / B);
  // Query blocks holding a global position.
  const globalQ = new Set(globals.filter((x) => x >= off).map((x) => Math.floor((x - off) / B)));
  return buildLayout({
    n, m, blockQ: B, blockK: B, layoutHeads: perHead ? heads : 1,
    visit: (qb, h) => {
      const pLo = qb * B + off;
      const pHi = Math.min(pLo + B - 1, m - 1);
      const lastK = causal ? Math.floor(pHi / B) : numK - 1;
      if (globalQ.has(qb)) return range(0, lastK);
      const span = w * dilationOf(dilation, h);
      const band = range(Math.floor(Math.max(0, pLo - span) / B), Math.floor(Math.min(m - 1, causal ? pHi : pHi + span) / B));
      return [...band, ...globals.map((x) => Math.floor(x / B)).filter((kb) => kb <= lastK)];
    },
  });
}

/** The composite's parts of a global-plus-band pattern. */
export function globalBandParts(g: GlobalBand): PartDef[] {
  const { n, m, causal, window: w, dilation, globals, isGlobal } = g;
  const off = m - n;
  const lastP = (rows: number[]) => rows[rows.length - 1] + off;
  const plain = (i: number) => !isGlobal(i + off);
  const globalRows = range(0, n - 1).filter((i) => isGlobal(i + off));
  const parts: PartDef[] = [];
  if (globals.length) {
    parts.push({
      groups: () => positionBlockGroups(n, off, 128, 128, plain),
      keys: (rows) => globals.filter((x) => !causal || x <= lastP(rows)),
      weight: (p, j) => (isGlobal(j) && !isGlobal(p) ? 1 : 0),
    });
  }
  parts.push({
    perHead: Array.isArray(dilation),
    groups: (h) => {
      const r = dilationOf(dilation, h);
      return r === 1 ? contiguousBandGroups(n, w, plain) : residueGroups(n, r, pow2Clamp(w, 8, 64), plain);
    },
    keys: (rows, h) => {
      const r = dilationOf(dilation, h);
      const first = rows[0] + off;
      return keyLattice(first, r, first - w * r, causal ? lastP(rows) : lastP(rows) + w * r, m).filter((j) => !isGlobal(j));
    },
    weight: (p, j, h) => (!isGlobal(p) && !isGlobal(j) && bandWeight(g, p, j, h) ? 1 : 0),
  });
  if (globalRows.length) parts.push({ groups: () => [globalRows], keys: 'all', weight: () => 1 });
  return parts;
}

/** Consecutive non-global rows in groups of about the window's size (a group never spans a gap wider than the window). */
function contiguousBandGroups(n: number, w: number, keep: (i: number) => boolean): number[][] {
  const size = pow2Clamp(w, 8, 64);
  return contiguousGroups(n, size)
    .map((g) => g.filter(keep))
    .filter((g) => g.length > 0);
}
