/**
 * SVG written as strings, for the docs site: matrix pictures (an entry's pattern, or the weights
 * it computes) and line plots with log scales (the benchmark figures). No dependency: the
 * pictures are rectangles, polylines and text.
 *
 * Every SVG is one line (no blank line, no newline) so that it passes through markdown as one
 * HTML block; none uses `id`s, so any number of them can sit inline on one page.
 */

/** Escapes text for SVG/HTML content and attribute values. */
export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const num = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(2).replace(/\.?0+$/, ''));

/** What one cell of a matrix picture shows: a fill colour, or null (background). */
export type CellFill = string | null;

export interface MatrixPicture {
  rows: number;
  cols: number;
  /** The fill of cell (i, j), or null for the background. */
  cell(i: number, j: number): CellFill;
  /** Columns drawn as padding (keys at or past keyLength): a grey band behind the cells. */
  paddingFrom?: number;
  /** Size of one cell in px. */
  cellPx?: number;
  /** Axis labels and tick marks (false for thumbnails). */
  axes?: boolean;
  /** Extra CSS class (e.g. 'ac-thumb'). */
  className?: string;
  /** Accessible title (shown as a tooltip). */
  title: string;
  /** Vertical separators after these column indices (e.g. memory | segment), drawn as lines. */
  splits?: number[];
  /** Axis names (default 'query i', 'key j'). */
  rowName?: string;
  colName?: string;
}

/**
 * A rows × cols matrix as SVG: one `<rect>` per horizontal run of equal fill (so a band is one
 * rect per row), the padding columns behind in grey, a frame, and (with axes) "key j" across the
 * top and "query i" down the left with the first and last index.
 */
export function matrixSvg(p: MatrixPicture): string {
  const c = p.cellPx ?? 6;
  const axes = p.axes ?? true;
  const left = axes ? 34 : 1;
  const top = axes ? 26 : 1;
  const w = p.cols * c;
  const h = p.rows * c;
  const width = left + w + (axes ? 8 : 1);
  const height = top + h + (axes ? 6 : 1);
  const parts: string[] = [];
  parts.push(`<rect x="${left}" y="${top}" width="${w}" height="${h}" fill="#ffffff"/>`);
  if (p.paddingFrom !== undefined && p.paddingFrom < p.cols) {
    parts.push(`<rect class="ac-padding" x="${left + p.paddingFrom * c}" y="${top}" width="${(p.cols - p.paddingFrom) * c}" height="${h}" fill="#d9d9d9"/>`);
  }
  for (let i = 0; i < p.rows; i++) {
    let j = 0;
    while (j < p.cols) {
      const f = p.cell(i, j);
      let e = j + 1;
      while (e < p.cols && p.cell(i, e) === f) e++;
      if (f !== null) parts.push(`<rect x="${left + j * c}" y="${top + i * c}" width="${(e - j) * c}" height="${c}" fill="${f}"/>`);
      j = e;
    }
  }
  for (const s of p.splits ?? []) {
    const x = left + (s + 1) * c;
    parts.push(`<line x1="${x}" y1="${top - 3}" x2="${x}" y2="${top + h + 3}" stroke="#c0392b" stroke-width="1.5"/>`);
  }
  parts.push(`<rect x="${left - 0.5}" y="${top - 0.5}" width="${w + 1}" height="${h + 1}" fill="none" stroke="#555" stroke-width="1"/>`);
  if (axes) {
    const t = (x: number, y: number, s: string, anchor = 'start') => `<text x="${num(x)}" y="${num(y)}" text-anchor="${anchor}">${esc(s)}</text>`;
    parts.push(t(left + w / 2, top - 14, `${p.colName ?? 'key j'} →`, 'middle'));
    parts.push(t(left + c / 2, top - 3, '0', 'middle'), t(left + w - c / 2, top - 3, String(p.cols - 1), 'middle'));
    parts.push(t(left - 4, top + c, '0', 'end'), t(left - 4, top + h, String(p.rows - 1), 'end'));
    parts.push(`<text x="10" y="${num(top + h / 2)}" text-anchor="middle" transform="rotate(-90 10 ${num(top + h / 2)})">${esc(p.rowName ?? 'query i')} →</text>`);
  }
  const cls = ['ac-matrix', p.className].filter(Boolean).join(' ');
  return (
    `<svg class="${cls}" xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" font-family="sans-serif" font-size="10" fill="#333">` +
    `<title>${esc(p.title)}</title>${parts.join('')}</svg>`
  );
}

/** One line of a plot. */
export interface Series {
  label: string;
  points: readonly (readonly [number, number])[];
  color: string;
  /** SVG stroke-dasharray, e.g. '5 3' for a baseline. */
  dash?: string;
  /** Marker shape: a circle (default), a square, or none. */
  marker?: 'circle' | 'square' | 'none';
}

export interface LinePlot {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly Series[];
  logX?: boolean;
  logY?: boolean;
  width?: number;
  height?: number;
  /** Formats a y tick value (default: SI-ish). */
  formatY?: (y: number) => string;
  /** Log-axis y ticks at powers of 2 (bytes: 1 KiB, 32 KiB, 1 MiB …) instead of powers of 10. */
  binaryY?: boolean;
  formatX?: (x: number) => string;
  /** Vertical marks: an x with a label (e.g. "overtakes fused dense"). */
  marks?: readonly { x: number; label: string; color: string }[];
  className?: string;
}

/** A compact number for tick labels: 1, 10, 100, 1k, 10k, 1M …; fractions as 0.1, 0.01 or 1e-3. */
export function shortNumber(x: number): string {
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1e9) return `${num(x / 1e9)}G`;
  if (a >= 1e6) return `${num(x / 1e6)}M`;
  if (a >= 1e3) return `${num(x / 1e3)}k`;
  if (a >= 0.01) return num(x);
  return x.toExponential(0);
}

/** Bytes as B, KiB, MiB, GiB. */
export function formatBytes(b: number): string {
  const r = (x: number) => (x >= 100 ? String(Math.round(x)) : num(Number(x.toPrecision(3))));
  if (b < 1024) return `${r(b)} B`;
  if (b < 1024 ** 2) return `${r(b / 1024)} KiB`;
  if (b < 1024 ** 3) return `${r(b / 1024 ** 2)} MiB`;
  return `${r(b / 1024 ** 3)} GiB`;
}

/** Tick values for a log axis over [lo, hi]: powers of ten, or 1-2-5 steps when the range is short. */
function logTicks(lo: number, hi: number, base: number): number[] {
  const out: number[] = [];
  const e0 = Math.floor(Math.log(lo) / Math.log(base));
  const e1 = Math.ceil(Math.log(hi) / Math.log(base));
  for (let e = e0; e <= e1; e++) {
    const v = base ** e;
    if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v);
  }
  if (out.length < 3 && base === 10) {
    const more: number[] = [];
    for (let e = e0; e <= e1; e++) for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo * 0.999 && v <= hi * 1.001) more.push(v);
    }
    return more;
  }
  return out;
}

/** Ticks at powers of two 2^e over [lo, hi], e a multiple of the smallest step in 1, 2, 5, 10 that gives at most 7. */
function binaryTicks(lo: number, hi: number): number[] {
  const e0 = Math.ceil(Math.log2(lo));
  const e1 = Math.floor(Math.log2(hi));
  const step = [1, 2, 5, 10, 20].find((s) => (e1 - e0) / s <= 6) ?? 20;
  const out: number[] = [];
  for (let e = Math.ceil(e0 / step) * step; e <= e1; e += step) out.push(2 ** e);
  return out.length ? out : [2 ** e0];
}

function linTicks(lo: number, hi: number): number[] {
  const span = hi - lo || 1;
  const step0 = 10 ** Math.floor(Math.log10(span / 4));
  const step = [1, 2, 5, 10].map((m) => m * step0).find((s) => span / s <= 6) ?? step0 * 10;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-12; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/**
 * A line plot as SVG: log or linear axes fitted to the points, grid lines at the ticks, one
 * polyline with markers per series (each point has a tooltip), a legend below the plot, and
 * optional vertical marks. Points with a non-positive coordinate on a log axis are left out.
 * A plot with no drawable point says so instead of drawing empty axes.
 */
export function linePlotSvg(p: LinePlot): string {
  const width = p.width ?? 460;
  const plotH = p.height ?? 240;
  const logX = p.logX ?? true;
  const logY = p.logY ?? true;
  const ok = (x: number, y: number) => Number.isFinite(x) && Number.isFinite(y) && (!logX || x > 0) && (!logY || y > 0);
  const series = p.series.map((s) => ({ ...s, points: s.points.filter(([x, y]) => ok(x, y)).slice().sort((a, b) => a[0] - b[0]) })).filter((s) => s.points.length > 0);
  const fx = p.formatX ?? ((x: number) => (Number.isInteger(x) && x < 1e6 ? String(x) : shortNumber(x)));
  const fy = p.formatY ?? shortNumber;
  const margin = { left: 62, right: 14, top: 26, bottom: 38 };
  const legendRows = Math.ceil(series.length / 2);
  const height = margin.top + plotH + margin.bottom + legendRows * 15 + 4;
  const cls = ['ac-plot', p.className].filter(Boolean).join(' ');
  const head = (h: number) =>
    `<svg class="${cls}" xmlns="http://www.w3.org/2000/svg" width="${width}" height="${h}" viewBox="0 0 ${width} ${h}" role="img" font-family="sans-serif" font-size="10" fill="#333"><title>${esc(p.title)}</title>` +
    `<text x="${margin.left}" y="15" font-size="12" font-weight="bold">${esc(p.title)}</text>`;
  if (series.length === 0) {
    return `${head(60)}<text x="${margin.left}" y="42" font-style="italic">no measurements in bench/results for this plot</text></svg>`;
  }
  const xs = series.flatMap((s) => s.points.map(([x]) => x)).concat((p.marks ?? []).map((m) => m.x).filter((x) => !logX || x > 0));
  const ys = series.flatMap((s) => s.points.map(([, y]) => y));
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (logX) [x0, x1] = x0 === x1 ? [x0 / 2, x1 * 2] : [x0 / 1.15, x1 * 1.15];
  else [x0, x1] = x0 === x1 ? [x0 - 1, x1 + 1] : [x0, x1];
  if (logY) [y0, y1] = y0 === y1 ? [y0 / 2, y1 * 2] : [y0 / 1.3, y1 * 1.3];
  else {
    const pad = (y1 - y0 || Math.abs(y1) || 1) * 0.08;
    [y0, y1] = [Math.min(0, y0 - pad), y1 + pad];
  }
  const plotW = width - margin.left - margin.right;
  const tx = (x: number) => margin.left + (logX ? Math.log(x / x0) / Math.log(x1 / x0) : (x - x0) / (x1 - x0)) * plotW;
  const ty = (y: number) => margin.top + plotH - (logY ? Math.log(y / y0) / Math.log(y1 / y0) : (y - y0) / (y1 - y0)) * plotH;
  const parts: string[] = [];
  parts.push(`<rect x="${margin.left}" y="${margin.top}" width="${plotW}" height="${plotH}" fill="#fcfcfc" stroke="#999"/>`);
  const xt = logX ? logTicks(x0, x1, 2) : linTicks(x0, x1);
  const yt = logY ? (p.binaryY ? binaryTicks(y0, y1) : logTicks(y0, y1, 10)) : linTicks(y0, y1);
  for (const v of xt) {
    const X = num(tx(v));
    parts.push(`<line x1="${X}" y1="${margin.top}" x2="${X}" y2="${margin.top + plotH}" stroke="#e3e3e3"/>`);
    parts.push(`<text x="${X}" y="${margin.top + plotH + 13}" text-anchor="middle">${esc(fx(v))}</text>`);
  }
  for (const v of yt) {
    const Y = num(ty(v));
    parts.push(`<line x1="${margin.left}" y1="${Y}" x2="${margin.left + plotW}" y2="${Y}" stroke="#e3e3e3"/>`);
    parts.push(`<text x="${margin.left - 4}" y="${num(ty(v) + 3)}" text-anchor="end">${esc(fy(v))}</text>`);
  }
  parts.push(`<text x="${num(margin.left + plotW / 2)}" y="${margin.top + plotH + 28}" text-anchor="middle">${esc(p.xLabel)}${logX ? ' (log)' : ''}</text>`);
  const yMid = num(margin.top + plotH / 2);
  parts.push(`<text x="12" y="${yMid}" text-anchor="middle" transform="rotate(-90 12 ${yMid})">${esc(p.yLabel)}${logY ? ' (log)' : ''}</text>`);
  for (const m of p.marks ?? []) {
    if (logX && m.x <= 0) continue;
    const X = num(tx(m.x));
    parts.push(`<line x1="${X}" y1="${margin.top}" x2="${X}" y2="${margin.top + plotH}" stroke="${m.color}" stroke-dasharray="2 2"/>`);
    const right = tx(m.x) > margin.left + plotW / 2;
    parts.push(`<text x="${num(tx(m.x) + (right ? -3 : 3))}" y="${margin.top + 10}" fill="${m.color}" text-anchor="${right ? 'end' : 'start'}">${esc(m.label)}</text>`);
  }
  for (const s of series) {
    const pts = s.points.map(([x, y]) => `${num(tx(x))},${num(ty(y))}`).join(' ');
    parts.push(`<polyline points="${pts}" fill="none" stroke="${s.color}" stroke-width="1.8"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`);
    if (s.marker !== 'none') {
      for (const [x, y] of s.points) {
        const tip = `<title>${esc(`${s.label}: ${fx(x)} → ${fy(y)}`)}</title>`;
        parts.push(
          s.marker === 'square'
            ? `<rect x="${num(tx(x) - 2.5)}" y="${num(ty(y) - 2.5)}" width="5" height="5" fill="${s.color}">${tip}</rect>`
            : `<circle cx="${num(tx(x))}" cy="${num(ty(y))}" r="2.6" fill="${s.color}">${tip}</circle>`,
        );
      }
    }
  }
  const ly = margin.top + plotH + margin.bottom;
  series.forEach((s, i) => {
    const x = margin.left + (i % 2) * (plotW / 2);
    const y = ly + Math.floor(i / 2) * 15;
    parts.push(`<line x1="${x}" y1="${y}" x2="${x + 18}" y2="${y}" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`);
    parts.push(`<text x="${x + 22}" y="${y + 3}">${esc(s.label)}</text>`);
  });
  return `${head(height)}${parts.join('')}</svg>`;
}

/** A categorical palette: Tableau 10 (distinct hues; black and grey are left to the baselines). */
export const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#17becf'];
