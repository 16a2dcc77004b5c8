/**
 * What a pattern's one declaration ({@link BoundRule}, see `rule.ts`) yields for one problem
 * size, derived and never written by hand:
 *
 * - {@link deriveLayout}: the kernel's block layout. For each query block (a block of
 *   positions) the key range is classified by the rule's range analysis, halving ranges that
 *   are neither never nor always allowed down to single blocks; visited blocks are coalesced
 *   into runs, each marked *full* (every pair allowed: the kernel skips the rule) or *partial*.
 * - {@link deriveParts}: the composite's parts. The rule's top-level disjuncts are grouped into
 *   parts (conditions of the query alone: those rows over every key; lattices: rows grouped by
 *   residue class; the rest together: rows grouped by blocks of positions); each part's keys per
 *   row group are enumerated exactly (range analysis, then the rule's seek), so the composite
 *   gathers O(keys per query), never n·m.
 *
 * @module
 */
import { buildLayoutFromEntries, type BlockLayout, type LayoutEntry } from './layout.js';
import { positionBlockGroups, residueGroups, type PartDef } from './parts.js';
import { or, readsHead, readsKey, SEEK_END, type BoundRule, type Box, type Cond } from './rule.js';

/** Candidate key ranges `[j0, j1]` (inclusive, ascending) of a box of positions, by recursive classification. */
function classifyKeys(
  classify: (box: Box) => 0 | 1 | 2,
  p0: number,
  p1: number,
  h: number,
  lastKey: number,
  B: number,
  emit: (kb0: number, kb1: number, full: boolean) => void,
): void {
  if (lastKey < 0) return;
  const numK = Math.floor(lastKey / B);
  const visit = (lo: number, hi: number) => {
    const box: Box = { p0, p1, j0: lo * B, j1: Math.min(hi * B + B - 1, lastKey), h };
    const t = classify(box);
    if (t === 0) return;
    if (t === 1) {
      emit(lo, hi, true);
      return;
    }
    if (lo === hi) {
      emit(lo, hi, false);
      return;
    }
    const mid = (lo + hi) >> 1;
    visit(lo, mid);
    visit(mid + 1, hi);
  };
  visit(0, numK);
}

/**
 * The kernel layout of a bound rule for n queries over m keys: query blocks of B positions
 * (rows aligned with `rowOffset`), key blocks of B keys coalesced into runs, per head when the
 * rule differs by head.
 */
export function deriveLayout(rule: BoundRule, n: number, m: number, causal: boolean, B: number): BlockLayout {
  // Non-negative also when n > m (positions then start below 0).
  const rowOffset = (((m - n) % B) + B) % B;
  const numQBlocks = Math.ceil((n + rowOffset) / B);
  const layoutHeads = rule.compiled.perHead ? rule.heads : 1;
  const pBase = m - n - rowOffset;
  const rows: LayoutEntry[][] = [];
  for (let h = 0; h < layoutHeads; h++) {
    for (let qb = 0; qb < numQBlocks; qb++) {
      const p0 = Math.max(m - n, pBase + qb * B);
      const p1 = Math.min(m - 1, pBase + qb * B + B - 1);
      const row: LayoutEntry[] = [];
      classifyKeys((box) => rule.classify(box), p0, p1, h, causal ? p1 : m - 1, B, (kb0, kb1, full) => {
        const last = row[row.length - 1];
        if (last && last.full === full && last.start + last.blocks === kb0) last.blocks += kb1 - kb0 + 1;
        else row.push({ start: kb0, blocks: kb1 - kb0 + 1, full });
      });
      rows.push(bridgeGaps(row, rule.compiled.exactSeek));
    }
  }
  return buildLayoutFromEntries({ blockQ: B, blockK: B, rowOffset, numQBlocks, layoutHeads, rows });
}

/**
 * With an exact seek, consecutive partial runs are joined across the blocks between them: the
 * kernel's seek jumps over the gap at no cost, while each entry costs a few loads per key split
 * (a strided lattice at m = 16384 would otherwise be m/64 one-block entries).
 */
function bridgeGaps(row: LayoutEntry[], exactSeek: boolean): LayoutEntry[] {
  if (!exactSeek) return row;
  const out: LayoutEntry[] = [];
  for (const e of row) {
    const last = out[out.length - 1];
    if (last && !last.full && !e.full) last.blocks = e.start + e.blocks - last.start;
    else out.push({ ...e });
  }
  return out;
}

/** The top-level disjuncts of a condition (nested `or`s flattened). */
function disjuncts(c: Cond): Cond[] {
  return c.op === 'or' ? c.args.flatMap(disjuncts) : [c];
}

type Lattice = Cond & { op: 'keyLattice' };

/** A lattice conjunct of `c` (`keyLattice(c, t)` at its top level or under `and`), or null. */
function latticeOf(c: Cond): Lattice | null {
  if (c.op === 'keyLattice') return c;
  if (c.op === 'and') for (const a of c.args) if (a.op === 'keyLattice') return a;
  return null;
}

interface PartPlan {
  cond: Cond;
  kind: 'rows' | 'blocks' | 'residues';
  /** For 'residues': the lattice's period per head, which groups the rows. */
  period?: (h: number) => number;
}

/**
 * The composite's parts of a bound rule (disjoint; their union is the allowed set): see the
 * module doc. `G` is the rows per group.
 */
export function deriveParts(rule: BoundRule, n: number, m: number, causal: boolean, G: number): PartDef[] {
  if (rule.compiled.decl.ramp) throw new Error('internal: soft rules have their own composite');
  const off = m - n;
  const heads = rule.heads;
  const perHead = rule.compiled.perHead;
  const ds = disjuncts(rule.compiled.decl.allow);
  const rowsOnly = ds.filter((d) => !readsKey(d));
  const keyed = ds.filter((d) => readsKey(d));
  const lattices: PartPlan[] = [];
  const blocks: Cond[] = [];
  for (const d of keyed) {
    const l = latticeOf(d);
    const period = l ? periodFn(rule, l) : null;
    if (period && Array.from({ length: heads }, (_, h) => period(h)).some((t) => t > 1)) lattices.push({ cond: d, kind: 'residues', period });
    else blocks.push(d);
  }
  const plans: PartPlan[] = [
    ...rowsOnly.map((cond): PartPlan => ({ cond, kind: 'rows' })),
    ...(blocks.length ? [{ cond: or(...blocks), kind: 'blocks' as const }] : []),
    ...lattices,
  ];
  const subs = plans.map((pl) => rule.sub(pl.cond));
  const defs: PartDef[] = [];
  plans.forEach((plan, k) => {
    const own = subs[k];
    const before = subs.slice(0, k).map((s) => s.allowed);
    const allowed = (p: number, j: number, h: number) => own.allowed(p, j, h) && !before.some((f) => f(p, j, h));
    const weight = (p: number, j: number, h: number) => (allowed(p, j, h) ? 1 : 0);
    const lastKey = (p: number) => (causal ? Math.min(p, m - 1) : m - 1);
    if (plan.kind === 'rows') {
      // Rows whose condition holds see every key (minus earlier parts'): one group over all keys.
      const rowsOf = (h: number) => {
        const out: number[] = [];
        for (let i = 0; i < n; i++) {
          const p = i + off;
          // Earlier parts are conditions of the query alone too: they own their rows whole.
          if (own.allowed(p, 0, h) && !before.some((f) => f(p, 0, h))) out.push(i);
        }
        return out;
      };
      // Its own condition decides whether it differs by head (not the rest of the rule).
      if (!readsHead(plan.cond) && !plans.slice(0, k).some((pl) => readsHead(pl.cond))) {
        defs.push({ groups: () => { const r = rowsOf(0); return r.length ? [r] : []; }, keys: 'all', weight });
      } else {
        defs.push({
          perHead: true,
          groups: (h) => { const r = rowsOf(h); return r.length ? [r] : []; },
          keys: (rows, h) => enumerateKeys(rows, h, off, lastKey, allowed, own.seek, null, G),
          weight,
        });
      }
      return;
    }
    const groups = (h: number): number[][] => {
      // Only rows with at least one key in this part.
      const keep = (i: number) => firstKey(i + off, h, lastKey(i + off), allowed, own.seek) >= 0;
      return plan.kind === 'blocks' ? positionBlockGroups(n, off, G, G, keep) : residueGroups(n, plan.period!(h), G, keep);
    };
    defs.push({
      perHead,
      groups,
      keys: (rows, h) => enumerateKeys(rows, h, off, lastKey, allowed, own.seek, own.classify, G),
      weight,
    });
  });
  return defs;
}

/** The period of a lattice for head h. */
function periodFn(rule: BoundRule, l: Lattice): (h: number) => number {
  // The lattice through 0 with the same period: its first key after 0 is the period.
  const probe = rule.sub({ op: 'keyLattice', c: { op: 'lit', value: 0 }, t: l.t });
  return (h) => Math.max(1, probe.seek(0, 1, h));
}

/** The first allowed key of position p (or −1). */
function firstKey(p: number, h: number, last: number, allowed: (p: number, j: number, h: number) => boolean, seek: (p: number, j: number, h: number) => number): number {
  for (let j = seek(p, 0, h); j <= last && j < SEEK_END; j = seek(p, j + 1, h)) if (allowed(p, j, h)) return j;
  return -1;
}

/** The union of the allowed keys of `rows` (ascending), scanning only key blocks the range analysis cannot rule out. */
function enumerateKeys(
  rows: number[],
  h: number,
  off: number,
  lastKey: (p: number) => number,
  allowed: (p: number, j: number, h: number) => boolean,
  seek: (p: number, j: number, h: number) => number,
  classify: ((box: Box) => 0 | 1 | 2) | null,
  B: number,
): number[] {
  const p0 = rows[0] + off;
  const p1 = rows[rows.length - 1] + off;
  const ranges: [number, number][] = [];
  const last = lastKey(p1);
  if (classify) {
    classifyKeys(classify, p0, p1, h, last, B, (kb0, kb1) => {
      const r = ranges[ranges.length - 1];
      if (r && r[1] + 1 === kb0 * B) r[1] = Math.min(kb1 * B + B - 1, last);
      else ranges.push([kb0 * B, Math.min(kb1 * B + B - 1, last)]);
    });
  } else if (last >= 0) ranges.push([0, last]);
  const keys = new Set<number>();
  for (const i of rows) {
    const p = i + off;
    const lk = lastKey(p);
    for (const [a, b] of ranges) {
      const hi = Math.min(b, lk);
      for (let j = seek(p, a, h); j <= hi && j < SEEK_END; j = seek(p, j + 1, h)) if (allowed(p, j, h)) keys.add(j);
    }
  }
  return [...keys].sort((x, y) => x - y);
}
