/**
 * The pictures of every catalog entry, computed at docs-build time on the cpu backend from the
 * entry itself (see picture-cases.ts for what each case draws and where it comes from). Nothing
 * here is hand-drawn: a pattern picture is the entry's `pattern()`, a weight picture is what
 * `apply` (or `step`) returns for v = the identity, on a seeded input.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Attention, CatalogEntry } from '../../src/index.js';
import { SeededRandom } from '../../src/core/rng.js';
import { matrixSvg, type CellFill } from './svg.js';
import { PICTURES, type EntryPictureSpec, type PictureCase, type PictureSource } from './picture-cases.js';

/** One drawn matrix: its label and its cells. */
export interface Panel {
  label: string;
  rows: number;
  cols: number;
  cell(i: number, j: number): CellFill;
  paddingFrom?: number;
  splits?: number[];
  /** The weights drawn (weight pictures: what apply or step returned), row by row. */
  weights?: number[][];
  /** Axis names of the matrix (default: queries i, keys j). */
  rowName?: string;
  colName?: string;
}

export interface Figure {
  /** E.g. "localAttention({ window: 3 }), n = m = 24". */
  caption: string;
  note?: string;
  panels: Panel[];
}

export interface EntryPictures {
  id: string;
  how: PictureSource;
  figures: Figure[];
  /** Why a case could not be drawn (empty when every case was). */
  problems: string[];
}

export const COLORS = {
  attended: '#1f4e79',
  cutByCausal: '#b9cde5',
  cutByPadding: '#a6a6a6',
  negative: '#d55e00',
};

/** A sequential ramp for weights in (0, 1] (relative to the row's largest), 12 steps. */
const RAMP = Array.from({ length: 12 }, (_, i) => {
  const t = (i + 1) / 12;
  const from = [222, 235, 247];
  const to = [8, 48, 107];
  const c = from.map((f, k) => Math.round(f + (to[k] - f) * t));
  return `rgb(${c.join(',')})`;
});
const RAMP_NEG = Array.from({ length: 12 }, (_, i) => {
  const t = (i + 1) / 12;
  const from = [254, 230, 206];
  const to = [166, 54, 3];
  const c = from.map((f, k) => Math.round(f + (to[k] - f) * t));
  return `rgb(${c.join(',')})`;
});

/** Weight rows as fills: shade by |w| / the row's largest |w|; exactly-zero (|w| < 1e-7) cells are background. */
function weightCells(w: number[][]): (i: number, j: number) => CellFill {
  const rowMax = w.map((r) => Math.max(0, ...r.map(Math.abs)));
  return (i, j) => {
    const x = w[i][j];
    if (Math.abs(x) < 1e-7 || rowMax[i] === 0) return null;
    const level = Math.min(11, Math.max(0, Math.ceil((Math.abs(x) / rowMax[i]) * 12) - 1));
    return x > 0 ? RAMP[level] : RAMP_NEG[level];
  };
}

const configText = (c: Record<string, unknown>) => {
  const body = Object.entries(c)
    .map(([k, v]) => `${k}: ${JSON.stringify(v).replace(/"/g, "'")}`)
    .join(', ');
  return body ? `{ ${body} }` : '';
};

/** Runs `fn` inside a tidy and returns its result as nested arrays. */
function read4(t: tf.Tensor4D): number[][] {
  const a = t.arraySync()[0][0];
  t.dispose();
  return a;
}

class Inputs {
  private rng: SeededRandom;
  constructor(seed: number, private spec: EntryPictureSpec) {
    this.rng = new SeededRandom(seed);
  }
  normal(heads: number, len: number, d: number, scale = 1): tf.Tensor4D {
    const x = this.rng.normals(heads * len * d).map((v) => v * scale);
    return tf.tensor4d(x, [1, heads, len, d]);
  }
  get d() {
    return this.spec.d ?? 8;
  }
  get heads() {
    return this.spec.heads ?? 1;
  }
  get kvHeads() {
    return this.spec.kvHeads ?? this.heads;
  }
}

/** v = the m×m identity for every kv head: apply's output row i is then query i's weights. */
function identityValues(kvHeads: number, m: number): tf.Tensor4D {
  return tf.tidy(() => tf.tile(tf.reshape(tf.eye(m), [1, 1, m, m]), [1, kvHeads, 1, 1]) as tf.Tensor4D);
}

type Make = (config?: never) => Attention<unknown>;

function support(w: number[][]): boolean[][] {
  return w.map((r) => r.map((x) => Math.abs(x) > 1e-7));
}

/** Throws unless the weights are non-zero exactly where `drawn` says a key is attended. */
function checkSupport(id: string, label: string, w: number[][], drawn: (i: number, j: number) => boolean) {
  const s = support(w);
  for (let i = 0; i < s.length; i++) {
    for (let j = 0; j < s[i].length; j++) {
      if (s[i][j] !== drawn(i, j)) {
        throw new Error(`${id} (${label}): apply() gives weight ${w[i][j].toExponential(2)} at query ${i}, key ${j}, where pattern() says ${drawn(i, j) ? 'attended' : 'not attended'}`);
      }
    }
  }
}

function defaultKeyLength(c: PictureCase): number {
  const m = c.m ?? c.n;
  return c.keyLength ?? m - Math.max(1, Math.floor(m / 4));
}

function patternFigure(e: CatalogEntry, make: Make, spec: EntryPictureSpec, c: PictureCase, seed: number): Figure {
  const { n } = c;
  const m = c.m ?? n;
  const inputs = new Inputs(seed, spec);
  const q = inputs.normal(inputs.heads, n, inputs.d, spec.qScale ?? 1.5);
  const k = inputs.normal(inputs.kvHeads, m, inputs.d);
  const v = identityValues(inputs.kvHeads, m);
  const L = defaultKeyLength(c);
  const pos = (i: number) => i + (m - n);
  const panels: Panel[] = [];
  const instances: Attention<unknown>[] = [];
  try {
    const plain = make(c.config as never);
    instances.push(plain);
    const rows = plain.pattern!(n, m).rows.map((r) => new Set(r));
    const inPattern = (i: number, j: number) => rows[i].has(j);
    checkSupport(e.id, 'as configured', read4(plain.apply(q, k, v)), inPattern);
    panels.push({ label: 'as configured', rows: n, cols: m, cell: (i, j) => (inPattern(i, j) ? COLORS.attended : null) });
    if (e.capabilities.causal) {
      const causal = make({ ...c.config, causal: true } as never);
      instances.push(causal);
      const crow = causal.pattern!(n, m).rows.map((r) => new Set(r));
      const allowed = (i: number, j: number) => crow[i].has(j) && j <= pos(i);
      checkSupport(e.id, 'causal', read4(causal.apply(q, k, v)), allowed);
      panels.push({ label: 'causal: true', rows: n, cols: m, cell: (i, j) => (allowed(i, j) ? COLORS.attended : crow[i].has(j) ? COLORS.cutByCausal : null) });
    }
    const allowedL = (i: number, j: number) => inPattern(i, j) && j < L;
    checkSupport(e.id, `keyLength ${L}`, read4(plain.apply(q, k, v, { keyLength: [L] })), allowedL);
    panels.push({ label: `keyLength = ${L}`, rows: n, cols: m, paddingFrom: L, cell: (i, j) => (allowedL(i, j) ? COLORS.attended : inPattern(i, j) ? COLORS.cutByPadding : null) });
  } finally {
    for (const a of instances) a.dispose();
    tf.dispose([q, k, v]);
  }
  return { caption: `${e.factories[0]}(${configText(c.config)}), ${n === m ? `n = m = ${n}` : `n = ${n}, m = ${m}`}`, note: c.note, panels };
}

function weightsFigure(e: CatalogEntry, make: Make, spec: EntryPictureSpec, c: PictureCase, seed: number): Figure {
  const { n } = c;
  const m = c.m ?? n;
  const inputs = new Inputs(seed, spec);
  const q = inputs.normal(inputs.heads, n, inputs.d, spec.qScale ?? 1.5);
  const k = spec.sharedQK ? q : inputs.normal(inputs.kvHeads, m, inputs.d);
  const v = identityValues(inputs.kvHeads, m);
  const L = defaultKeyLength(c);
  const panels: Panel[] = [];
  const instances: Attention<unknown>[] = [];
  try {
    const plain = make(c.config as never);
    instances.push(plain);
    const w = read4(plain.apply(q, k, v));
    panels.push({ label: 'as configured', rows: n, cols: m, cell: weightCells(w), weights: w });
    if (e.capabilities.causal) {
      const causal = make({ ...c.config, causal: true } as never);
      instances.push(causal);
      const wc = read4(causal.apply(q, k, v));
      panels.push({ label: 'causal: true', rows: n, cols: m, cell: weightCells(wc), weights: wc });
    }
    const wl = read4(plain.apply(q, k, v, { keyLength: [L] }));
    panels.push({ label: `keyLength = ${L}`, rows: n, cols: m, paddingFrom: L, cell: weightCells(wl), weights: wl });
  } finally {
    for (const a of instances) a.dispose();
    tf.dispose(spec.sharedQK ? [q, v] : [q, k, v]);
  }
  return { caption: `${e.factories[0]}(${configText(c.config)}), ${n === m ? `n = m = ${n}` : `n = ${n}, m = ${m}`}`, note: c.note, panels };
}

interface Stateful {
  initState(batch: number, kvHeads?: number, dv?: number): { dispose?(): void; k?: tf.Tensor; v?: tf.Tensor };
  step(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, state: unknown): { output: tf.Tensor4D; state: unknown };
}

function disposeState(s: unknown) {
  const st = s as { dispose?: () => void } & Record<string, unknown>;
  if (typeof st.dispose === 'function') st.dispose();
  else tf.dispose(Object.values(st).filter((x): x is tf.Tensor => x instanceof tf.Tensor));
}

function segmentsFigure(e: CatalogEntry, make: Make, spec: EntryPictureSpec, c: PictureCase, seed: number): Figure {
  const { n } = c;
  const S = c.segments ?? 3;
  const T = S * n;
  const inputs = new Inputs(seed, spec);
  const a = make(c.config as never) as unknown as Attention<unknown> & Stateful;
  const eye = tf.eye(T);
  const panels: Panel[] = [];
  try {
    // One segment from an empty state (what apply computes).
    const q0 = inputs.normal(1, n, inputs.d, spec.qScale ?? 1.5);
    const k0 = inputs.normal(1, n, inputs.d);
    const v0 = identityValues(1, n);
    panels.push({ label: 'apply: one segment, empty memory', rows: n, cols: n, cell: weightCells(read4(a.apply(q0, k0, v0))) });
    const L = defaultKeyLength({ ...c, m: n });
    panels.push({ label: `apply, keyLength = ${L}`, rows: n, cols: n, paddingFrom: L, cell: weightCells(read4(a.apply(q0, k0, v0, { keyLength: [L] }))) });
    tf.dispose([q0, k0, v0]);
    // S segments, v_t = e_t over all T positions: the last step's output rows are weights over every position.
    // transformer-xl's initState takes (batch, kvHeads, dv); compressive's takes batch and reads the rest from the first step.
    let state: unknown = a.initState(1, 1, T);
    let last: number[][] = [];
    for (let s = 0; s < S; s++) {
      const q = inputs.normal(1, n, inputs.d, spec.qScale ?? 1.5);
      const k = inputs.normal(1, n, inputs.d);
      const v = tf.tidy(() => tf.reshape(tf.slice(eye, [s * n, 0], [n, T]), [1, 1, n, T]) as tf.Tensor4D);
      const r = a.step(q, k, v, state);
      state = r.state;
      if (s === S - 1) last = read4(r.output);
      else r.output.dispose();
      tf.dispose([q, k, v]);
    }
    disposeState(state);
    panels.push({
      label: `step ${S}: weights over all ${T} positions (segments of ${n})`,
      rows: n,
      cols: T,
      cell: weightCells(last),
      splits: Array.from({ length: S - 1 }, (_, s) => (s + 1) * n - 1),
    });
  } finally {
    a.dispose();
    eye.dispose();
  }
  return { caption: `${e.factories[0]}(${configText(c.config)}), ${S} segments of n = ${n}`, note: c.note, panels };
}

async function twoMapsFigure(e: CatalogEntry, make: Make, spec: EntryPictureSpec, c: PictureCase, seed: number, dense: Make): Promise<Figure> {
  const { n } = c;
  const m = c.m ?? n;
  const inputs = new Inputs(seed, spec);
  const d = inputs.d;
  const q = inputs.normal(1, n, d, spec.qScale ?? 1.5);
  const k = inputs.normal(1, m, d);
  const vReal = inputs.normal(1, m, d);
  const L = defaultKeyLength(c);
  const a = make(c.config as never) as unknown as Attention<{ scale?: number }> & { inducing: tf.Tensor3D };
  const attn = dense({ scale: a.config.scale } as never);
  const panels: Panel[] = [];
  try {
    const I = tf.expandDims(a.inducing, 0) as tf.Tensor4D; // [1, heads, mi, d]
    const mi = I.shape[2];
    for (const keyLength of [undefined, [L]]) {
      const opts = keyLength ? { keyLength } : {};
      const eyeM = identityValues(1, m);
      const a1 = read4(attn.apply(I, k, eyeM, opts)); // inducing points' weights over the keys
      const H = attn.apply(I, k, vReal, opts); // [1, 1, mi, d]
      const eyeI = identityValues(1, mi);
      const a2 = read4(attn.apply(q, H, eyeI)); // queries' weights over H
      // The two maps are the entry's function: A2 · H equals what set-transformer computes.
      const o = a.apply(q, k, vReal, opts);
      const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(tf.matMul(tf.tensor2d(a2), tf.reshape(H, [mi, d])), tf.reshape(o, [n, d])))).dataSync()[0]);
      tf.dispose([eyeM, H, eyeI, o]);
      if (!(diff < 1e-4)) throw new Error(`set-transformer: A2·H differs from apply() by ${diff} (the two maps would not be its function)`);
      const tag = keyLength ? `, keyLength = ${L}` : '';
      panels.push({ label: `A1: inducing points over keys${tag}`, rows: mi, cols: m, cell: weightCells(a1), paddingFrom: keyLength ? L : undefined, rowName: 'inducing point' });
      panels.push({ label: `A2: queries over H = A1·V${tag}`, rows: n, cols: mi, cell: weightCells(a2), colName: 'row of H' });
    }
    I.dispose();
  } finally {
    a.dispose();
    attn.dispose();
    tf.dispose([q, k, vReal]);
  }
  return { caption: `${e.factories[0]}(${configText(c.config)}), n = m = ${n}`, note: 'A2 depends on the values (H = A1·V): drawn for a seeded V; the build checks A2·H against apply()', panels };
}

/** Computes every entry's pictures. The cpu backend must be active. */
export async function entryPictures(catalog: readonly CatalogEntry[]): Promise<EntryPictures[]> {
  const denseEntry = catalog.find((e) => e.id === 'dense');
  const dense = denseEntry ? ((await denseEntry.load()) as Make) : null;
  const out: EntryPictures[] = [];
  for (const [index, e] of catalog.entries()) {
    const spec = PICTURES[e.id];
    if (!spec) {
      out.push({ id: e.id, how: 'weights', figures: [], problems: ['no picture cases in scripts/docs/picture-cases.ts'] });
      continue;
    }
    const make = (await e.load()) as Make;
    const figures: Figure[] = [];
    const problems: string[] = [];
    for (const [ci, c] of spec.cases.entries()) {
      const seed = 1000 + index * 10 + ci;
      const before = tf.memory().numTensors;
      try {
        if (spec.how === 'pattern') figures.push(patternFigure(e, make, spec, c, seed));
        else if (spec.how === 'weights') figures.push(weightsFigure(e, make, spec, c, seed));
        else if (spec.how === 'segments') figures.push(segmentsFigure(e, make, spec, c, seed));
        else if (dense) figures.push(await twoMapsFigure(e, make, spec, c, seed, dense));
        else problems.push('the two maps need the dense entry, which is not in the catalog');
      } catch (err) {
        problems.push(`${configText(c.config)}: ${(err as Error).message}`);
      }
      const leaked = tf.memory().numTensors - before;
      if (leaked > 0) problems.push(`${configText(c.config)}: ${leaked} tensors left over while drawing`);
    }
    out.push({ id: e.id, how: spec.how, figures, problems });
  }
  return out;
}

/** Renders a panel as SVG (full size with axes, or a thumbnail). */
export function panelSvg(p: Panel, entryId: string, thumb = false): string {
  return matrixSvg({
    rows: p.rows,
    cols: p.cols,
    cell: p.cell,
    paddingFrom: p.paddingFrom,
    splits: p.splits,
    // Thumbnails about 72 px; full pictures 6–12 px a cell (small matrices drawn larger).
    cellPx: thumb ? Math.max(2, Math.min(6, Math.floor(72 / Math.max(p.rows, p.cols)))) : Math.max(6, Math.min(12, Math.floor(150 / Math.max(p.rows, p.cols)))),
    rowName: p.rowName,
    colName: p.colName,
    axes: !thumb,
    className: thumb ? 'ac-thumb' : 'ac-pattern',
    title: `${entryId}: ${p.label}`,
  });
}

/** The legend of an entry's pictures, by where they come from. */
export function pictureLegend(how: PictureSource): string {
  const swatch = (c: string) => `<span class="ac-swatch" style="background:${c}"></span>`;
  const padding = `${swatch('#d9d9d9')} grey band: padding keys (at or past keyLength)`;
  switch (how) {
    case 'pattern':
      return `Drawn from the entry's own <code>pattern(n, m)</code>. ${swatch(COLORS.attended)} attended; ${swatch(COLORS.cutByCausal)} in the pattern but cut by <code>causal</code>; ${swatch(COLORS.cutByPadding)} in the pattern but a padding key; ${padding}. The docs build checks that <code>apply</code> on a seeded input gives non-zero weights exactly on the attended cells.`;
    case 'weights':
      return `The attention weights <code>apply(q, k, I)</code> computes on a seeded input with v = the identity (row i = query i's weights). Shade: the weight relative to the row's largest (${swatch(RAMP[11])} largest, ${swatch(RAMP[2])} small, white: exactly 0; ${swatch(RAMP_NEG[8])} negative). ${padding}.`;
    case 'segments':
      return `The weights <code>step</code> computes over consecutive segments with v_t = e_t for every absolute position t: the last segment's weights over every position seen (memory, compressed memory, segment). Shade: relative to the row's largest weight; white: exactly 0 (no longer in memory); red lines: segment boundaries.`;
    case 'two-maps':
      return `Two maps, since the entry is not linear in v: A1, the inducing points' softmax over the keys (independent of v), and A2, the queries' softmax over H = A1·V (for a seeded V). Shade: relative to the row's largest weight. ${padding}.`;
  }
}
