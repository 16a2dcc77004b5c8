/**
 * The pattern language: an attention pattern is declared once, as an element rule over the
 * query's absolute position `p`, the key `j` and the query head `h`, built from a few typed
 * pieces with `and`/`or` (FlexAttention's `mask_mod`, as data). Everything else is derived from
 * that one declaration:
 *
 * - the kernel's WGSL `ruleWeight` and `ruleSeek` ({@link compileRule}), which read every
 *   parameter from a params buffer, so the shaderKey names the rule's *shape* only and one
 *   pipeline serves every window, stride or block size;
 * - its TypeScript evaluator and seek (for `pattern()`, the composite and the tests);
 * - a three-valued range analysis ({@link BoundRule.classify}) from which `derive.ts` builds
 *   the block layout, each visited block marked full or partial, and the composite's key sets.
 *
 * Integer pieces: `P`, `J`, `H`, literals, `param(name)` (one value), `headParam(name)` (one
 * value per query head), `table(name, x)` (a per-position integer table, e.g. global flags, or
 * later LSH bucket ids), `add`, `sub`, `mul`, `div` (floor), `mod` (non-negative), `abs`, `min`,
 * `max`. Conditions: comparisons, `and`, `or`, `not`, and the key-set pieces that also know how
 * to seek: `keyIn(lo, hi)` (a band), `keyLattice(c, t)` (j ≡ c mod t), `keyResidue(t, lo, hi)`
 * (lo ≤ j mod t ≤ hi) and `blockMember(table, row, value, count)` (value in a short table row,
 * e.g. BigBird's random blocks). A rule may also carry a soft weight (adaptive span's ramp).
 *
 * @module
 */

/** What `ruleSeek` returns to end a key range ("no candidate left"). */
export const SEEK_END = 1 << 30;

/** An integer expression over (p, j, h) and named parameters. */
export type Int =
  | { readonly op: 'p' | 'j' | 'h' }
  | { readonly op: 'lit'; readonly value: number }
  | { readonly op: 'param' | 'headParam'; readonly name: string }
  | { readonly op: 'table'; readonly name: string; readonly index: Int }
  | { readonly op: 'add' | 'sub' | 'mul' | 'div' | 'mod' | 'min' | 'max'; readonly a: Int; readonly b: Int }
  | { readonly op: 'abs'; readonly a: Int };

/** Comparison operators. */
export type Rel = '<=' | '<' | '==' | '!=' | '>=' | '>';

/** A condition over (p, j, h). */
export type Cond =
  | { readonly op: 'true' | 'false' }
  | { readonly op: 'cmp'; readonly rel: Rel; readonly a: Int; readonly b: Int }
  | { readonly op: 'and' | 'or'; readonly args: readonly Cond[] }
  | { readonly op: 'not'; readonly a: Cond }
  | { readonly op: 'keyIn'; readonly lo: Int; readonly hi: Int }
  | { readonly op: 'keyLattice'; readonly c: Int; readonly t: Int }
  | { readonly op: 'keyResidue'; readonly t: Int; readonly lo: Int; readonly hi: Int }
  | { readonly op: 'blockMember'; readonly table: string; readonly row: Int; readonly value: Int; readonly count: Int }
  | { readonly op: 'keyFlag'; readonly table: string };

/** A soft weight inside the allowed set: `clamp((R + z_h − x) / R, 0, 1)` (adaptive span's mask). */
export interface Ramp {
  readonly x: Int;
  /** Per-head span z (a head parameter). */
  readonly span: string;
  /** Ramp width R (a parameter). */
  readonly ramp: string;
}

// ---------------------------------------------------------------------------------------------
// Building blocks.

/** The query's absolute position `p = i + m − n`. */
export const P: Int = { op: 'p' };
/** The key position. */
export const J: Int = { op: 'j' };
/** The query head. */
export const H: Int = { op: 'h' };
const asInt = (x: Int | number): Int => (typeof x === 'number' ? { op: 'lit', value: Math.trunc(x) } : x);
/** An integer literal (part of the shape: prefer `param` for anything a config sets). */
export const lit = (value: number): Int => ({ op: 'lit', value: Math.trunc(value) });
/** A named parameter, one value per call. */
export const param = (name: string): Int => ({ op: 'param', name });
/** A named parameter with one value per query head. */
export const headParam = (name: string): Int => ({ op: 'headParam', name });
/** Entry `x` of a named integer table (0 outside it). */
export const table = (name: string, index: Int | number): Int => ({ op: 'table', name, index: asInt(index) });
const bin =
  (op: 'add' | 'sub' | 'mul' | 'div' | 'mod' | 'min' | 'max') =>
  (a: Int | number, b: Int | number): Int => ({ op, a: asInt(a), b: asInt(b) });
export const add = bin('add');
export const sub = bin('sub');
export const mul = bin('mul');
/** Floor division (divisor > 0). */
export const div = bin('div');
/** Non-negative remainder (divisor > 0). */
export const mod = bin('mod');
export const min = bin('min');
export const max = bin('max');
export const abs = (a: Int | number): Int => ({ op: 'abs', a: asInt(a) });

const cmp =
  (rel: Rel) =>
  (a: Int | number, b: Int | number): Cond => ({ op: 'cmp', rel, a: asInt(a), b: asInt(b) });
export const le = cmp('<=');
export const lt = cmp('<');
export const eq = cmp('==');
export const ne = cmp('!=');
export const ge = cmp('>=');
export const gt = cmp('>');
export const TRUE: Cond = { op: 'true' };
export const FALSE: Cond = { op: 'false' };
/** All of `args` (the empty conjunction is true). */
export const and = (...args: Cond[]): Cond => (args.length === 1 ? args[0] : { op: 'and', args });
/** Any of `args` (the empty disjunction is false). */
export const or = (...args: Cond[]): Cond => (args.length === 1 ? args[0] : { op: 'or', args });
export const not = (a: Cond): Cond => ({ op: 'not', a });
/** `lo <= j <= hi` (lo, hi independent of j): a band; seeks to `lo`, ends past `hi`. */
export const keyIn = (lo: Int | number, hi: Int | number): Cond => ({ op: 'keyIn', lo: asInt(lo), hi: asInt(hi) });
/** `j ≡ c (mod t)` (c, t independent of j, t >= 1): a lattice; seeks to its next key. */
export const keyLattice = (c: Int | number, t: Int | number): Cond => ({ op: 'keyLattice', c: asInt(c), t: asInt(t) });
/** `lo <= j mod t <= hi` (independent of j): residue columns; seeks to the next column. */
export const keyResidue = (t: Int | number, lo: Int | number, hi: Int | number): Cond => ({ op: 'keyResidue', t: asInt(t), lo: asInt(lo), hi: asInt(hi) });
/** `table[x] != 0`: membership of x in a per-position flag table. */
export const inTable = (name: string, x: Int): Cond => ne(table(name, x), 0);
/** `table[j] != 0`: the key is flagged (e.g. a global position); seeks to the next flagged key. */
export const keyFlag = (name: string): Cond => ({ op: 'keyFlag', table: name });
/** The derived table of a flag table: the next flagged position at or after each index. */
const nextTable = (name: string) => `${name}:next`;
/**
 * `value` is one of `table[row·count … row·count + count − 1]` (entries −1 are empty): membership
 * in a short per-row list, e.g. BigBird's random key blocks of a query block.
 */
export const blockMember = (name: string, row: Int, value: Int, count: Int | number): Cond => ({ op: 'blockMember', table: name, row, value, count: asInt(count) });

// ---------------------------------------------------------------------------------------------
// Structure: parameters, keys, dependence.

/** The parameters a rule reads, by kind, in first-use order. */
export interface ParamSchema {
  scalars: string[];
  heads: string[];
  tables: string[];
}

type Node = Int | Cond;
const children = (x: Node): Node[] => {
  switch (x.op) {
    case 'table':
      return [x.index];
    case 'add': case 'sub': case 'mul': case 'div': case 'mod': case 'min': case 'max': case 'cmp':
      return [x.a, x.b];
    case 'abs': case 'not':
      return [x.a];
    case 'and': case 'or':
      return [...x.args];
    case 'keyIn':
      return [x.lo, x.hi];
    case 'keyLattice':
      return [x.c, x.t];
    case 'keyResidue':
      return [x.t, x.lo, x.hi];
    case 'blockMember':
      return [x.row, x.value, x.count];
    default:
      return [];
  }
};

function collect(x: Node, s: ParamSchema): void {
  const push = (list: string[], name: string) => {
    if (!list.includes(name)) list.push(name);
  };
  if (x.op === 'param') push(s.scalars, x.name);
  else if (x.op === 'headParam') push(s.heads, x.name);
  else if (x.op === 'table') push(s.tables, x.name);
  else if (x.op === 'blockMember') push(s.tables, x.table);
  else if (x.op === 'keyFlag') {
    push(s.tables, x.table);
    push(s.tables, nextTable(x.table));
  }
  for (const c of children(x)) collect(c, s);
}

/** Whether the expression reads `j` (directly or through a key-set piece). */
export function readsKey(x: Node): boolean {
  if (x.op === 'j' || x.op === 'keyIn' || x.op === 'keyLattice' || x.op === 'keyResidue' || x.op === 'keyFlag') return true;
  if (x.op === 'blockMember') return readsKey(x.value) || readsKey(x.row);
  return children(x).some(readsKey);
}

/**
 * Whether every key the condition allows lies on a stride's lattice (`keyLattice`,
 * `keyResidue`): an `or` whose every branch does, or an `and` with one branch that does. A
 * row's keys are then spread thin, and rows next to each other allow disjoint ones (strided,
 * dilated); a pattern that also allows a band or shared keys (axial, Sparse Transformer,
 * Longformer) is not such a lattice.
 */
export function stridesKeys(x: Node): boolean {
  switch (x.op) {
    case 'keyLattice':
    case 'keyResidue':
      return true;
    case 'or':
      return x.args.every(stridesKeys);
    case 'and':
      return x.args.some(stridesKeys);
    default:
      return false;
  }
}

/** Whether the expression differs by head (reads `h` or a head parameter). */
export function readsHead(x: Node): boolean {
  return x.op === 'h' || x.op === 'headParam' || children(x).some(readsHead);
}

/**
 * Whether the condition's seek lands only on allowed keys (then the kernel needs no weight check
 * after a seek): the key-set pieces, conditions of the query alone, `or`s of exact seeks, and an
 * `and` of conditions of the query alone with at most one exact key condition.
 */
export function seeksExactly(x: Cond): boolean {
  if (!readsKey(x)) return true;
  switch (x.op) {
    case 'keyIn': case 'keyLattice': case 'keyResidue': case 'keyFlag':
      return true;
    case 'or':
      return x.args.every(seeksExactly);
    case 'and': {
      // The and's seek ends past every band's end (below), so bands compose exactly with one other
      // exact key condition (a dilated band: a band on a lattice).
      const keyed = x.args.filter(readsKey);
      return keyed.every(seeksExactly) && keyed.filter((a) => a.op !== 'keyIn').length <= 1;
    }
    default:
      return false;
  }
}

/** The shape of an expression: what goes into the shaderKey (never a parameter's value). */
export function shapeOf(x: Node): string {
  switch (x.op) {
    case 'p': case 'j': case 'h': case 'true': case 'false':
      return x.op;
    case 'lit':
      return `${x.value}`;
    case 'param':
      return `$${x.name}`;
    case 'headParam':
      return `$${x.name}[h]`;
    case 'table':
      return `${x.name}[${shapeOf(x.index)}]`;
    case 'cmp':
      return `(${shapeOf(x.a)}${x.rel}${shapeOf(x.b)})`;
    case 'blockMember':
      return `member(${x.table},${shapeOf(x.row)},${shapeOf(x.value)},${shapeOf(x.count)})`;
    case 'keyFlag':
      return `flag(${x.table})`;
    default:
      return `${x.op}(${children(x).map(shapeOf).join(',')})`;
  }
}

// ---------------------------------------------------------------------------------------------
// Values.

/** Values of a rule's parameters for one call. */
export type ParamValues = Record<string, number | readonly number[] | Int32Array | Float32Array>;

/** A table with O(1) range min/max (sparse tables), for the range analysis. */
class RangeTable {
  private readonly mins: Float64Array[] = [];
  private readonly maxs: Float64Array[] = [];
  constructor(readonly data: ArrayLike<number>) {
    const n = data.length;
    let lvlMin = Float64Array.from(data);
    let lvlMax = Float64Array.from(data);
    this.mins.push(lvlMin);
    this.maxs.push(lvlMax);
    for (let w = 1; 2 * w <= n; w *= 2) {
      const a = new Float64Array(n - 2 * w + 1);
      const b = new Float64Array(n - 2 * w + 1);
      for (let i = 0; i < a.length; i++) {
        a[i] = Math.min(lvlMin[i], lvlMin[i + w]);
        b[i] = Math.max(lvlMax[i], lvlMax[i + w]);
      }
      this.mins.push((lvlMin = a));
      this.maxs.push((lvlMax = b));
    }
  }
  get(i: number): number {
    return i >= 0 && i < this.data.length ? this.data[i] : 0;
  }
  /** [min, max] of entries lo … hi (indices outside the table read 0). */
  range(lo: number, hi: number): [number, number] {
    const n = this.data.length;
    let mn = Infinity;
    let mx = -Infinity;
    if (lo < 0 || hi >= n) {
      mn = 0;
      mx = 0;
    }
    const a = Math.max(lo, 0);
    const b = Math.min(hi, n - 1);
    if (a <= b) {
      const k = Math.floor(Math.log2(b - a + 1));
      const w = 1 << k;
      mn = Math.min(mn, this.mins[k][a], this.mins[k][b - w + 1]);
      mx = Math.max(mx, this.maxs[k][a], this.maxs[k][b - w + 1]);
    }
    return [mn, mx];
  }
}

/**
 * A table whose values live on the device (bound with {@link bindRule}'s `deviceTables`): only its
 * length is known here, so its slot in the params buffer is a placeholder (see
 * `device_params.ts`), and evaluating or analysing a rule that reads it on the host is an error.
 */
class DeviceTable {
  readonly data: ArrayLike<number>;
  constructor(
    readonly name: string,
    length: number,
  ) {
    this.data = { length };
  }
  get(): number {
    throw new Error(`internal: table '${this.name}' lives on the device (no host values)`);
  }
  range(): [number, number] {
    throw new Error(`internal: table '${this.name}' lives on the device (no host bounds)`);
  }
}

/** Resolved values: scalars, per-head arrays, tables. */
interface Env {
  scalar: Map<string, number>;
  head: Map<string, ArrayLike<number>>;
  table: Map<string, RangeTable | DeviceTable>;
  /** Bounds of a head parameter the host does not know exactly (e.g. a span on the device). */
  headBounds: Map<string, [number, number]>;
}

// ---------------------------------------------------------------------------------------------
// Evaluation (TypeScript): closures compiled once per bound rule.

type IntFn = (p: number, j: number, h: number) => number;
type CondFn = (p: number, j: number, h: number) => boolean;
const fdiv = (a: number, b: number) => Math.floor(a / b);
const pmod = (a: number, b: number) => ((a % b) + b) % b;

function intFn(x: Int, env: Env): IntFn {
  switch (x.op) {
    case 'p':
      return (p) => p;
    case 'j':
      return (_p, j) => j;
    case 'h':
      return (_p, _j, h) => h;
    case 'lit': {
      const v = x.value;
      return () => v;
    }
    case 'param': {
      const v = env.scalar.get(x.name)!;
      return () => v;
    }
    case 'headParam': {
      const arr = env.head.get(x.name)!;
      return (_p, _j, h) => arr[h];
    }
    case 'table': {
      const t = env.table.get(x.name)!;
      const ix = intFn(x.index, env);
      return (p, j, h) => t.get(ix(p, j, h));
    }
    case 'abs': {
      const a = intFn(x.a, env);
      return (p, j, h) => Math.abs(a(p, j, h));
    }
    default: {
      const a = intFn(x.a, env);
      const b = intFn(x.b, env);
      switch (x.op) {
        case 'add': return (p, j, h) => a(p, j, h) + b(p, j, h);
        case 'sub': return (p, j, h) => a(p, j, h) - b(p, j, h);
        case 'mul': return (p, j, h) => a(p, j, h) * b(p, j, h);
        case 'div': return (p, j, h) => fdiv(a(p, j, h), b(p, j, h));
        case 'mod': return (p, j, h) => pmod(a(p, j, h), b(p, j, h));
        case 'min': return (p, j, h) => Math.min(a(p, j, h), b(p, j, h));
        default: return (p, j, h) => Math.max(a(p, j, h), b(p, j, h));
      }
    }
  }
}

const relFn = (rel: Rel): ((a: number, b: number) => boolean) =>
  ({ '<=': (a: number, b: number) => a <= b, '<': (a: number, b: number) => a < b, '==': (a: number, b: number) => a === b, '!=': (a: number, b: number) => a !== b, '>=': (a: number, b: number) => a >= b, '>': (a: number, b: number) => a > b })[rel];

function condFn(x: Cond, env: Env): CondFn {
  switch (x.op) {
    case 'true':
      return () => true;
    case 'false':
      return () => false;
    case 'cmp': {
      const a = intFn(x.a, env);
      const b = intFn(x.b, env);
      const r = relFn(x.rel);
      return (p, j, h) => r(a(p, j, h), b(p, j, h));
    }
    case 'and': {
      const fs = x.args.map((c) => condFn(c, env));
      return (p, j, h) => fs.every((f) => f(p, j, h));
    }
    case 'or': {
      const fs = x.args.map((c) => condFn(c, env));
      return (p, j, h) => fs.some((f) => f(p, j, h));
    }
    case 'not': {
      const f = condFn(x.a, env);
      return (p, j, h) => !f(p, j, h);
    }
    case 'keyIn': {
      const lo = intFn(x.lo, env);
      const hi = intFn(x.hi, env);
      return (p, j, h) => j >= lo(p, j, h) && j <= hi(p, j, h);
    }
    case 'keyLattice': {
      const c = intFn(x.c, env);
      const t = intFn(x.t, env);
      return (p, j, h) => pmod(j - c(p, j, h), t(p, j, h)) === 0;
    }
    case 'keyResidue': {
      const t = intFn(x.t, env);
      const lo = intFn(x.lo, env);
      const hi = intFn(x.hi, env);
      return (p, j, h) => {
        const r = pmod(j, t(p, j, h));
        return r >= lo(p, j, h) && r <= hi(p, j, h);
      };
    }
    case 'keyFlag': {
      const tab = env.table.get(x.table)!;
      return (_p, j) => tab.get(j) !== 0;
    }
    case 'blockMember': {
      const tab = env.table.get(x.table)!;
      const row = intFn(x.row, env);
      const value = intFn(x.value, env);
      const count = intFn(x.count, env);
      return (p, j, h) => {
        const c = count(p, j, h);
        const base = row(p, j, h) * c;
        const v = value(p, j, h);
        for (let s = 0; s < c; s++) if (tab.get(base + s) === v) return true;
        return false;
      };
    }
  }
}

/** The smallest key `>= j` that may satisfy the condition (never passes an allowed key). */
function seekFn(x: Cond, env: Env): IntFn {
  switch (x.op) {
    case 'false':
      return () => SEEK_END;
    case 'keyIn': {
      const lo = intFn(x.lo, env);
      const hi = intFn(x.hi, env);
      return (p, j, h) => (j > hi(p, j, h) ? SEEK_END : Math.max(j, lo(p, j, h)));
    }
    case 'keyLattice': {
      const c = intFn(x.c, env);
      const t = intFn(x.t, env);
      return (p, j, h) => j + pmod(c(p, j, h) - j, t(p, j, h));
    }
    case 'keyResidue': {
      const t = intFn(x.t, env);
      const lo = intFn(x.lo, env);
      const hi = intFn(x.hi, env);
      return (p, j, h) => {
        const tt = t(p, j, h);
        const r = pmod(j, tt);
        const a = lo(p, j, h);
        const b = hi(p, j, h);
        if (a > b) return SEEK_END;
        if (r < a) return j + a - r;
        if (r > b) return j + tt - r + a;
        return j;
      };
    }
    case 'keyFlag': {
      const next = env.table.get(nextTable(x.table))!;
      return (_p, j) => (j < next.data.length ? next.get(Math.max(0, j)) : SEEK_END);
    }
    case 'and': {
      const fs = x.args.map((c) => seekFn(c, env));
      // A candidate past a band's end ends the search: no key after it is in the band either.
      const ends = x.args.filter((a): a is Cond & { op: 'keyIn' } => a.op === 'keyIn').map((a) => intFn(a.hi, env));
      return (p, j, h) => {
        let s = j;
        for (const f of fs) {
          if (s >= SEEK_END) return SEEK_END;
          s = f(p, s, h);
        }
        for (const hi of ends) if (s > hi(p, s, h)) return SEEK_END;
        return s;
      };
    }
    case 'or': {
      const fs = x.args.map((c) => seekFn(c, env));
      return (p, j, h) => Math.min(...fs.map((f) => f(p, j, h)));
    }
    default: {
      if (readsKey(x)) return (_p, j) => j;
      // A condition of (p, h) only: every key or none.
      const f = condFn(x, env);
      return (p, j, h) => (f(p, j, h) ? j : SEEK_END);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Range analysis: the value of an expression over a box of positions and keys, for one head.

/** A box: query positions `[p0, p1]`, keys `[j0, j1]`, one head. */
export interface Box {
  p0: number;
  p1: number;
  j0: number;
  j1: number;
  h: number;
}
type Range = [number, number];
/** Never, always, or maybe. */
export type Tri = 0 | 1 | 2;
const NEVER: Tri = 0;
const ALWAYS: Tri = 1;
const MAYBE: Tri = 2;

function rangeOf(x: Int, b: Box, env: Env): Range {
  switch (x.op) {
    case 'p':
      return [b.p0, b.p1];
    case 'j':
      return [b.j0, b.j1];
    case 'h':
      return [b.h, b.h];
    case 'lit':
      return [x.value, x.value];
    case 'param': {
      const v = env.scalar.get(x.name)!;
      return [v, v];
    }
    case 'headParam': {
      const bounds = env.headBounds.get(x.name);
      if (bounds) return bounds;
      const v = env.head.get(x.name)![b.h];
      return [v, v];
    }
    case 'table': {
      const [lo, hi] = rangeOf(x.index, b, env);
      return env.table.get(x.name)!.range(lo, hi);
    }
    case 'abs': {
      const [lo, hi] = rangeOf(x.a, b, env);
      if (lo >= 0) return [lo, hi];
      if (hi <= 0) return [-hi, -lo];
      return [0, Math.max(-lo, hi)];
    }
    default: {
      const [a0, a1] = rangeOf(x.a, b, env);
      const [b0, b1] = rangeOf(x.b, b, env);
      switch (x.op) {
        case 'add':
          return [a0 + b0, a1 + b1];
        case 'sub':
          return [a0 - b1, a1 - b0];
        case 'mul': {
          const c = [a0 * b0, a0 * b1, a1 * b0, a1 * b1];
          return [Math.min(...c), Math.max(...c)];
        }
        case 'div': {
          // Divisors are positive: floor(a / b) is monotone in a, and in b for a fixed sign of a.
          const lo = b0 <= 0 ? 1 : b0;
          const c = [fdiv(a0, lo), fdiv(a0, b1), fdiv(a1, lo), fdiv(a1, b1)];
          return [Math.min(...c), Math.max(...c)];
        }
        case 'mod': {
          if (b0 === b1 && b0 > 0 && fdiv(a0, b0) === fdiv(a1, b0)) return [pmod(a0, b0), pmod(a1, b0)];
          return [0, Math.max(0, b1 - 1)];
        }
        case 'min':
          return [Math.min(a0, b0), Math.min(a1, b1)];
        default:
          return [Math.max(a0, b0), Math.max(a1, b1)];
      }
    }
  }
}

function triCmp(rel: Rel, [a0, a1]: Range, [b0, b1]: Range): Tri {
  switch (rel) {
    case '<=':
      return a1 <= b0 ? ALWAYS : a0 > b1 ? NEVER : MAYBE;
    case '<':
      return a1 < b0 ? ALWAYS : a0 >= b1 ? NEVER : MAYBE;
    case '>=':
      return a0 >= b1 ? ALWAYS : a1 < b0 ? NEVER : MAYBE;
    case '>':
      return a0 > b1 ? ALWAYS : a1 <= b0 ? NEVER : MAYBE;
    case '==':
      return a0 === a1 && b0 === b1 && a0 === b0 ? ALWAYS : a1 < b0 || a0 > b1 ? NEVER : MAYBE;
    case '!=':
      return a1 < b0 || a0 > b1 ? ALWAYS : a0 === a1 && b0 === b1 && a0 === b0 ? NEVER : MAYBE;
  }
}

function triOf(x: Cond, b: Box, env: Env): Tri {
  switch (x.op) {
    case 'true':
      return ALWAYS;
    case 'false':
      return NEVER;
    case 'cmp':
      return triCmp(x.rel, rangeOf(x.a, b, env), rangeOf(x.b, b, env));
    case 'and': {
      let out: Tri = ALWAYS;
      for (const c of x.args) {
        const t = triOf(c, b, env);
        if (t === NEVER) return NEVER;
        if (t === MAYBE) out = MAYBE;
      }
      return out;
    }
    case 'or': {
      let out: Tri = NEVER;
      for (const c of x.args) {
        const t = triOf(c, b, env);
        if (t === ALWAYS) return ALWAYS;
        if (t === MAYBE) out = MAYBE;
      }
      return out;
    }
    case 'not': {
      const t = triOf(x.a, b, env);
      return t === MAYBE ? MAYBE : t === ALWAYS ? NEVER : ALWAYS;
    }
    case 'keyIn':
      return triOf({ op: 'and', args: [{ op: 'cmp', rel: '>=', a: J, b: x.lo }, { op: 'cmp', rel: '<=', a: J, b: x.hi }] }, b, env);
    case 'keyLattice': {
      const t = rangeOf(x.t, b, env);
      if (t[0] === 1 && t[1] === 1) return ALWAYS;
      return triCmp('==', rangeOf({ op: 'mod', a: { op: 'sub', a: J, b: x.c }, b: x.t }, b, env), [0, 0]);
    }
    case 'keyResidue': {
      const r = rangeOf({ op: 'mod', a: J, b: x.t }, b, env);
      return andTri(triCmp('>=', r, rangeOf(x.lo, b, env)), triCmp('<=', r, rangeOf(x.hi, b, env)));
    }
    case 'keyFlag':
      return triCmp('!=', env.table.get(x.table)!.range(b.j0, b.j1), [0, 0]);
    case 'blockMember': {
      const [r0, r1] = rangeOf(x.row, b, env);
      const [c0, c1] = rangeOf(x.count, b, env);
      const [v0, v1] = rangeOf(x.value, b, env);
      if (r0 !== r1 || c0 !== c1) return MAYBE;
      const tab = env.table.get(x.table)!;
      const members = new Set<number>();
      for (let s = 0; s < c0; s++) members.add(tab.get(r0 * c0 + s));
      let hits = 0;
      for (const v of members) if (v >= v0 && v <= v1) hits++;
      if (hits === 0) return NEVER;
      return hits === v1 - v0 + 1 ? ALWAYS : MAYBE;
    }
  }
}

const andTri = (a: Tri, b: Tri): Tri => (a === NEVER || b === NEVER ? NEVER : a === ALWAYS && b === ALWAYS ? ALWAYS : MAYBE);

// ---------------------------------------------------------------------------------------------
// WGSL.

interface WgslCtx {
  schema: ParamSchema;
  /** Fresh names for seek temporaries. */
  next: number;
  /**
   * Subexpressions that read no key, hoisted out of the key loop: computed once per query row
   * by `ruleInit(p, h)` into private variables (shape → name and WGSL). Null while generating
   * a hoisted expression itself.
   */
  hoist: Map<string, { name: string; expr: string }> | null;
}

/** Where parameter values sit in the params buffer: [scalars, table offsets, end of tables, head arrays (heads each), tables]. */
const scalarSlot = (s: ParamSchema, name: string) => s.scalars.indexOf(name);
/** The private variables holding a table's base and length (set once per row by `ruleInit`). */
const tableVars = (s: ParamSchema, name: string) => `ruleTB${s.tables.indexOf(name)}, ruleTL${s.tables.indexOf(name)}`;
const tableRead = (s: ParamSchema, name: string, index: string) => `ruleTable(${tableVars(s, name)}, ${index})`;
/** WGSL index of head h's value of a head parameter (after the scalars, table offsets and the end marker). */
const headIndex = (s: ParamSchema, name: string) => `${s.scalars.length + s.tables.length + 1} + ${s.heads.indexOf(name)} * uniforms.heads + h`;

function wInt(x: Int, c: WgslCtx): string {
  if (c.hoist && x.op !== 'lit' && x.op !== 'p' && x.op !== 'h' && x.op !== 'j' && !readsKey(x)) {
    const key = shapeOf(x);
    const hit = c.hoist.get(key);
    if (hit) return hit.name;
    const hoist = c.hoist;
    c.hoist = null;
    const expr = wInt(x, c);
    c.hoist = hoist;
    const name = `ruleR${hoist.size}`;
    hoist.set(key, { name, expr });
    return name;
  }
  switch (x.op) {
    case 'p': case 'j': case 'h':
      return x.op;
    case 'lit':
      return `${x.value}`;
    case 'param':
      return `i32(params[${scalarSlot(c.schema, x.name)}])`;
    case 'headParam':
      return `i32(params[${headIndex(c.schema, x.name)}])`;
    case 'table':
      return tableRead(c.schema, x.name, wInt(x.index, c));
    case 'abs':
      return `abs(${wInt(x.a, c)})`;
    case 'add':
      return `(${wInt(x.a, c)} + ${wInt(x.b, c)})`;
    case 'sub':
      return `(${wInt(x.a, c)} - ${wInt(x.b, c)})`;
    case 'mul':
      return `(${wInt(x.a, c)} * ${wInt(x.b, c)})`;
    case 'div':
      return `ruleDiv(${wInt(x.a, c)}, ${wInt(x.b, c)})`;
    case 'mod':
      return `ruleMod(${wInt(x.a, c)}, ${wInt(x.b, c)})`;
    case 'min':
      return `min(${wInt(x.a, c)}, ${wInt(x.b, c)})`;
    case 'max':
      return `max(${wInt(x.a, c)}, ${wInt(x.b, c)})`;
  }
}

function wCond(x: Cond, c: WgslCtx): string {
  switch (x.op) {
    case 'true':
      return 'true';
    case 'false':
      return 'false';
    case 'cmp':
      return `(${wInt(x.a, c)} ${x.rel} ${wInt(x.b, c)})`;
    case 'and':
      return x.args.length ? `(${x.args.map((a) => wCond(a, c)).join(' && ')})` : 'true';
    case 'or':
      return x.args.length ? `(${x.args.map((a) => wCond(a, c)).join(' || ')})` : 'false';
    case 'not':
      return `!${wCond(x.a, c)}`;
    case 'keyIn':
      return `(j >= ${wInt(x.lo, c)} && j <= ${wInt(x.hi, c)})`;
    case 'keyLattice':
      // Divisibility does not depend on the remainder's sign: one `%`.
      return `((j - ${wInt(x.c, c)}) % ${wInt(x.t, c)} == 0)`;
    case 'keyResidue':
      return `ruleInResidue(j, ${wInt(x.t, c)}, ${wInt(x.lo, c)}, ${wInt(x.hi, c)})`;
    case 'blockMember':
      return `ruleMember(${tableVars(c.schema, x.table)}, ${wInt(x.row, c)}, ${wInt(x.value, c)}, ${wInt(x.count, c)})`;
    case 'keyFlag':
      return `(${tableRead(c.schema, x.table, 'j')} != 0)`;
  }
}

/** WGSL statements computing the seek of `x` from the key in variable `from` into a new variable; returns its name. */
function wSeek(x: Cond, from: string, c: WgslCtx, out: string[], indent: string): string {
  const v = `s${c.next++}`;
  // Expressions below read `j`: rebind it to the seek's input.
  const withJ = (expr: string) => `${indent}var ${v} = ${SEEK_END};\n${indent}{\n${indent}  let j = ${from};\n${indent}  ${v} = ${expr};\n${indent}}`;
  switch (x.op) {
    case 'false':
      out.push(`${indent}let ${v} = ${SEEK_END};`);
      return v;
    case 'keyIn':
      out.push(withJ(`select(max(j, ${wInt(x.lo, c)}), ${SEEK_END}, j > ${wInt(x.hi, c)})`));
      return v;
    case 'keyLattice':
      out.push(withJ(`j + ruleMod(${wInt(x.c, c)} - j, ${wInt(x.t, c)})`));
      return v;
    case 'keyResidue':
      out.push(withJ(`ruleSeekResidue(j, ${wInt(x.t, c)}, ${wInt(x.lo, c)}, ${wInt(x.hi, c)})`));
      return v;
    case 'keyFlag':
      // The next-flag table reads 0 past its end (below j): no flagged key left.
      out.push(withJ(`ruleSeekFlag(${tableVars(c.schema, nextTable(x.table))}, j)`));
      return v;
    case 'and': {
      let cur = from;
      for (const a of x.args) {
        const next = wSeek(a, cur, c, out, indent);
        const guarded = `s${c.next++}`;
        out.push(`${indent}let ${guarded} = select(${next}, ${SEEK_END}, ${cur} >= ${SEEK_END});`);
        cur = guarded;
      }
      // A candidate past a band's end ends the search (as in the TypeScript seek).
      for (const a of x.args) {
        if (a.op !== 'keyIn') continue;
        const ended = `s${c.next++}`;
        out.push(`${indent}let ${ended} = select(${cur}, ${SEEK_END}, ${cur} > ${wInt(a.hi, c)});`);
        cur = ended;
      }
      return cur;
    }
    case 'or': {
      const parts = x.args.map((a) => wSeek(a, from, c, out, indent));
      out.push(`${indent}let ${v} = ${parts.reduce((acc, p) => `min(${acc}, ${p})`)};`);
      return v;
    }
    default:
      if (readsKey(x)) out.push(`${indent}let ${v} = ${from};`);
      else out.push(withJ(`select(${SEEK_END}, j, ${wCond(x, c)})`));
      return v;
  }
}

/** Helpers every rule may call (floor division, non-negative remainder, table reads). */
const WGSL_HELPERS = `
  fn ruleDiv(a : i32, b : i32) -> i32 {
    let q = a / b;
    if (a % b != 0 && ((a < 0) != (b < 0))) { return q - 1; }
    return q;
  }
  fn ruleMod(a : i32, b : i32) -> i32 {
    let r = a % b; // one integer division (the divisor is data, not a constant the compiler folds)
    return select(r, r + b, r < 0);
  }
  fn ruleInResidue(j : i32, t : i32, lo : i32, hi : i32) -> bool {
    let r = ruleMod(j, t);
    return r >= lo && r <= hi;
  }
  fn ruleSeekResidue(j : i32, t : i32, lo : i32, hi : i32) -> i32 {
    if (lo > hi) { return ${SEEK_END}; }
    let r = ruleMod(j, t);
    if (r < lo) { return j + lo - r; }
    if (r > hi) { return j + t - r + lo; }
    return j;
  }`;
const WGSL_TABLES = `
  fn ruleTable(base : i32, len : i32, x : i32) -> i32 {
    if (x < 0 || x >= len) { return 0; }
    return i32(params[base + x]);
  }
  fn ruleMember(base : i32, len : i32, row : i32, value : i32, count : i32) -> bool {
    for (var s = 0; s < count; s = s + 1) {
      if (ruleTable(base, len, row * count + s) == value) { return true; }
    }
    return false;
  }
  // The next flagged key at or after j (the next-flag table reads 0 past its end: none left).
  fn ruleSeekFlag(base : i32, len : i32, j : i32) -> i32 {
    if (j >= len) { return ${SEEK_END}; }
    return ruleTable(base, len, j);
  }`;

// ---------------------------------------------------------------------------------------------
// Compiled and bound rules.

/** A rule declaration: the allowed set, and optionally a soft weight inside it. */
export interface RuleDecl {
  allow: Cond;
  ramp?: Ramp;
}

/** A rule compiled once per declaration: its shape, parameters and WGSL. */
export interface CompiledRule {
  readonly decl: RuleDecl;
  /** The shaderKey part: the rule's shape, never a parameter value. */
  readonly key: string;
  readonly schema: ParamSchema;
  /**
   * WGSL defining `ruleInit(p, h)` (called once per query row: the rule's key-free parts),
   * `ruleWeight(p, j, h) -> f32` and `ruleSeek(p, j, h) -> i32`.
   */
  readonly wgsl: string;
  /** Whether the rule differs by head (it reads a head parameter or `h`). */
  readonly perHead: boolean;
  /** Whether `ruleSeek` lands only on allowed keys of weight 1 (see {@link seeksExactly}). */
  readonly exactSeek: boolean;
  /** Whether every allowed key lies on a stride's lattice (see {@link stridesKeys}). */
  readonly strides: boolean;
}

const compiledCache = new WeakMap<RuleDecl, CompiledRule>();

/** Compiles a declaration (cached per declaration object). */
export function compileRule(decl: RuleDecl): CompiledRule {
  const hit = compiledCache.get(decl);
  if (hit) return hit;
  const schema: ParamSchema = { scalars: [], heads: [], tables: [] };
  collect(decl.allow, schema);
  if (decl.ramp) {
    collect(decl.ramp.x, schema);
    if (!schema.heads.includes(decl.ramp.span)) schema.heads.push(decl.ramp.span);
    if (!schema.scalars.includes(decl.ramp.ramp)) schema.scalars.push(decl.ramp.ramp);
  }
  const ctx: WgslCtx = { schema, next: 0, hoist: new Map() };
  const seekBody: string[] = [];
  const result = wSeek(decl.allow, 'j0', ctx, seekBody, '    ');
  const ramp = decl.ramp;
  const weight = ramp
    ? `f32(${wCond(decl.allow, ctx)}) * clamp((ruleRampR + ruleRampZ - f32(${wInt(ramp.x, ctx)})) / ruleRampR, 0.0, 1.0)`
    : `select(0.0, 1.0, ${wCond(decl.allow, ctx)})`;
  const hoisted = [...ctx.hoist!.values()];
  const init = [
    ...schema.tables.flatMap((_, k) => [
      `    ruleTB${k} = i32(params[${schema.scalars.length + k}]);`,
      `    ruleTL${k} = i32(params[${schema.scalars.length + k + 1}]) - ruleTB${k};`,
    ]),
    ...hoisted.map((x) => `    ${x.name} = ${x.expr};`),
    ...(ramp ? [`    ruleRampR = params[${scalarSlot(schema, ramp.ramp)}];`, `    ruleRampZ = params[${headIndex(schema, ramp.span)}];`] : []),
  ];
  const wgsl = `${WGSL_HELPERS}${schema.tables.length ? WGSL_TABLES : ''}
${[...schema.tables.flatMap((_, k) => [`ruleTB${k}`, `ruleTL${k}`]), ...hoisted.map((x) => x.name)].map((v) => `  var<private> ${v} : i32;`).join('\n')}
${ramp ? '  var<private> ruleRampR : f32;\n  var<private> ruleRampZ : f32;' : ''}
  // Once per query row: everything that reads no key.
  fn ruleInit(p : i32, h : i32) {
${init.join('\n')}
  }
  fn ruleWeight(p : i32, j : i32, h : i32) -> f32 {
    return ${weight};
  }
  fn ruleSeek(p : i32, j0 : i32, h : i32) -> i32 {
${seekBody.join('\n')}
    return ${result};
  }`;
  const compiled: CompiledRule = {
    decl,
    key: shapeOf(decl.allow) + (ramp ? `~ramp(${shapeOf(ramp.x)},${ramp.span},${ramp.ramp})` : ''),
    schema,
    wgsl,
    perHead: schema.heads.length > 0 || readsHead(decl.allow),
    exactSeek: !ramp && seeksExactly(decl.allow),
    strides: stridesKeys(decl.allow),
  };
  compiledCache.set(decl, compiled);
  return compiled;
}

/** A rule with its parameter values for one problem size. */
export interface BoundRule {
  readonly compiled: CompiledRule;
  readonly heads: number;
  /** The params buffer the kernel reads: [scalars, table offsets, head arrays, tables]. */
  readonly params: Float32Array;
  /** The element weight (0: not allowed), before causal and keyLength. */
  weight(p: number, j: number, h: number): number;
  /** Whether the pair is allowed (weight > 0 for a hard rule). */
  allowed(p: number, j: number, h: number): boolean;
  /** The smallest key >= j that may be allowed (never passes an allowed key); >= SEEK_END: none. */
  seek(p: number, j: number, h: number): number;
  /** Never (0), always (1) or maybe (2) allowed over a box — with weight 1 where the rule is soft. */
  classify(box: Box): Tri;
  /** The same for one sub-condition of the declaration, with these values (for the composite's parts). */
  sub(c: Cond): { allowed: CondFn; seek: IntFn; classify(box: Box): Tri };
}

function toArray(name: string, v: ParamValues[string] | undefined): ArrayLike<number> {
  if (v === undefined) throw new Error(`internal: rule parameter '${name}' has no value`);
  return typeof v === 'number' ? [v] : v;
}

/**
 * Binds parameter values. Scalars take a number, head parameters an array of `heads` values
 * (or a number for all heads), tables an integer array. `headBounds` gives bounds instead of
 * values for head parameters the host does not know (their params entries are placeholders:
 * the caller supplies the real values on the device, see {@link paramsTensorLayout}).
 */
export function bindRule(
  compiled: CompiledRule,
  values: ParamValues,
  heads: number,
  headBounds: Record<string, [number, number]> = {},
  deviceTables: Record<string, number> = {},
): BoundRule {
  const { schema } = compiled;
  const env: Env = { scalar: new Map(), head: new Map(), table: new Map(), headBounds: new Map(Object.entries(headBounds)) };
  for (const s of schema.scalars) {
    const v = values[s];
    if (typeof v !== 'number') throw new Error(`internal: rule parameter '${s}' needs a number`);
    env.scalar.set(s, v);
  }
  for (const s of schema.heads) {
    if (env.headBounds.has(s) && values[s] === undefined) {
      env.head.set(s, new Array(heads).fill(0));
      continue;
    }
    const v = values[s];
    env.head.set(s, typeof v === 'number' ? new Array(heads).fill(v) : toArray(s, v));
  }
  for (const s of schema.tables) {
    if (s.endsWith(':next')) continue;
    if (deviceTables[s] !== undefined) env.table.set(s, new DeviceTable(s, deviceTables[s]));
    else env.table.set(s, new RangeTable(toArray(s, values[s])));
  }
  for (const s of schema.tables) {
    if (!s.endsWith(':next')) continue;
    const base = env.table.get(s.slice(0, -':next'.length))!.data;
    const next = new Float64Array(base.length + 1);
    next[base.length] = SEEK_END;
    for (let x = base.length - 1; x >= 0; x--) next[x] = base[x] !== 0 ? x : next[x + 1];
    env.table.set(s, new RangeTable(next));
  }
  // The params buffer.
  const S = schema.scalars.length;
  const T = schema.tables.length;
  const headLen = schema.heads.length * heads;
  const tableLens = schema.tables.map((t) => env.table.get(t)!.data.length);
  const total = S + T + 1 + headLen + tableLens.reduce((a, b) => a + b, 0);
  const params = new Float32Array(Math.max(1, total));
  schema.scalars.forEach((s, i) => (params[i] = env.scalar.get(s)!));
  // Table offsets (one past the last: the end of the last table, so each table knows its length).
  let at = S + T + 1 + headLen;
  schema.tables.forEach((t, i) => {
    params[S + i] = at;
    const tab = env.table.get(t)!;
    if (tab instanceof RangeTable) params.set(tab.data, at);
    at += tableLens[i];
  });
  params[S + T] = at;
  schema.heads.forEach((s, k) => {
    const arr = env.head.get(s)!;
    for (let h = 0; h < heads; h++) params[S + T + 1 + k * heads + h] = arr[h];
  });
  const allow = condFn(compiled.decl.allow, env);
  const seek = seekFn(compiled.decl.allow, env);
  const ramp = compiled.decl.ramp;
  const rampX = ramp ? intFn(ramp.x, env) : null;
  const weight = ramp
    ? (p: number, j: number, h: number) => {
        if (!allow(p, j, h)) return 0;
        const R = env.scalar.get(ramp.ramp)!;
        const z = env.head.get(ramp.span)![h];
        return Math.min(1, Math.max(0, (R + z - rampX!(p, j, h)) / R));
      }
    : (p: number, j: number, h: number) => (allow(p, j, h) ? 1 : 0);
  const classify = (box: Box): Tri => {
    const t = triOf(compiled.decl.allow, box, env);
    // A soft rule is "always" only where its ramp is 1 for every value the span may take.
    if (t !== ALWAYS || !ramp) return t;
    const x1 = rangeOf(ramp.x, box, env)[1];
    const z = env.headBounds.get(ramp.span) ?? [env.head.get(ramp.span)![box.h], env.head.get(ramp.span)![box.h]];
    return x1 <= z[0] ? ALWAYS : MAYBE;
  };
  return {
    compiled,
    heads,
    params,
    weight,
    allowed: (p, j, h) => weight(p, j, h) > 0,
    seek,
    classify,
    sub: (c) => ({ allowed: condFn(c, env), seek: seekFn(c, env), classify: (box) => triOf(c, box, env) }),
  };
}

/**
 * Where each head parameter's `heads` values start in the params buffer (for callers that build
 * the buffer on the device, e.g. from a `tf.Variable`): `params[offset + h]`.
 */
export function headParamOffset(compiled: CompiledRule, name: string, heads: number): number {
  const s = compiled.schema;
  return s.scalars.length + s.tables.length + 1 + s.heads.indexOf(name) * heads;
}
