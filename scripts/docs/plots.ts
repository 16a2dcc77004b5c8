/**
 * The benchmark figures, generated from bench/results (see bench.ts): time and intermediate
 * bytes against n on log scales, the dense composite and fused dense as baselines, and the error
 * against dense of the entries that have one.
 */
import type { CatalogEntry } from '../../src/index.js';
import { denseBaselineName, entryRows, hasFusedDense, overtakeN, type BenchData, type EntryRow, type Suite } from './bench.js';
import { formatBytes, linePlotSvg, PALETTE, type Series } from './svg.js';

const FUSED = { color: '#111111', marker: 'square' as const };
const COMPOSITE = { color: '#777777', dash: '6 3', marker: 'square' as const };

const ms = (x: number) => (x >= 1000 ? `${(x / 1000).toPrecision(2)} s` : x >= 1 ? `${Number(x.toPrecision(2))} ms` : `${Number(x.toPrecision(1))} ms`);

/** The dense baselines of dense.json on a backend (the same problem: batch 1, 1 head, d = 64). */
function denseBaselines(data: BenchData, backend: string, metric: 'ms' | 'bytes'): Series[] {
  const rows = data.dense.filter((r) => r.backend === backend).sort((a, b) => a.n - b.n);
  const out: Series[] = [];
  const fused = rows.filter((r) => (metric === 'ms' ? r.kernelMs : r.kernelBytes) !== null).map((r) => [r.n, (metric === 'ms' ? r.kernelMs : r.kernelBytes)!] as const);
  const comp = rows.filter((r) => (metric === 'ms' ? r.compositeMs : r.compositeBytes) !== null).map((r) => [r.n, (metric === 'ms' ? r.compositeMs : r.compositeBytes)!] as const);
  if (fused.length) out.push({ label: 'fused dense (dense.json)', points: fused, ...FUSED });
  if (comp.length) out.push({ label: 'dense composite (dense.json)', points: comp, ...COMPOSITE });
  return out;
}

/** Points of one entry's rows (a row without the value is left out). */
const pointsOf = (rows: EntryRow[], metric: 'ms' | 'bytes') => rows.filter((r) => r[metric] !== null).map((r) => [r.n, r[metric]!] as const);

/** Time and bytes of every entry of a suite on a backend, with the baselines. Null when the suite has no rows there. */
export function suitePlots(data: BenchData, suite: Suite, backend: string): { time: string; bytes: string; zeroBytes: string[] } | null {
  const rows = data.rows.filter((r) => r.suite === suite && r.backend === backend);
  if (rows.length === 0) return null;
  const ids = [...new Set(rows.map((r) => r.id))];
  const series = (metric: 'ms' | 'bytes'): Series[] =>
    ids.map((id, i) => ({ label: id, points: pointsOf(entryRows(data, id, backend).filter((r) => r.suite === suite), metric), color: PALETTE[i % PALETTE.length], dash: i >= PALETTE.length ? '2 2' : undefined }));
  let timeBase: Series[];
  let bytesBase: Series[];
  if (suite === 'recurrence') {
    const byN = new Map<number, number>();
    for (const r of rows) if (r.denseMs !== null && !byN.has(r.n)) byN.set(r.n, r.denseMs);
    timeBase = byN.size ? [{ label: denseBaselineName(data, suite, backend) + ' (same run)', points: [...byN.entries()], ...FUSED }] : [];
    bytesBase = [];
  } else {
    timeBase = denseBaselines(data, backend, 'ms');
    bytesBase = denseBaselines(data, backend, 'bytes');
  }
  const zeroBytes = ids.filter((id) => rows.some((r) => r.id === id && r.bytes === 0));
  const xLabel = suite === 'recurrence' ? 'segment length n' : 'n (= m)';
  return {
    time: linePlotSvg({ title: `${backend}: time`, xLabel, yLabel: 'median ms', series: [...series('ms'), ...timeBase], formatY: ms }),
    bytes: linePlotSvg({ title: `${backend}: intermediate bytes`, xLabel, yLabel: 'bytes', series: [...series('bytes'), ...bytesBase], formatY: formatBytes, binaryY: true }),
    zeroBytes,
  };
}

/** One entry's time and bytes on a backend, against the baselines, with the n where it overtakes dense marked. */
export function entryPlots(data: BenchData, id: string, backend: string): { time: string; bytes: string } | null {
  const rows = entryRows(data, id, backend);
  if (rows.length === 0) return null;
  const suite = rows[0].suite;
  const me = { color: PALETTE[0], marker: 'circle' as const };
  const over = overtakeN(data, id, backend);
  const marks = over ? [{ x: over, label: `faster than ${denseBaselineName(data, suite, backend)} from here`, color: '#c0392b' }] : [];
  let timeBase: Series[];
  if (suite === 'recurrence') {
    timeBase = [{ label: denseBaselineName(data, suite, backend) + ' (same run)', points: rows.filter((r) => r.denseMs !== null).map((r) => [r.n, r.denseMs!] as const), ...FUSED }];
  } else {
    timeBase = denseBaselines(data, backend, 'ms');
    // Dense as timed in the same run (the comparison the overtake point is read from), where dense.json has no such line.
    if (!hasFusedDense(data, backend) && timeBase.length === 0) {
      timeBase = [{ label: 'dense (same run)', points: rows.filter((r) => r.denseMs !== null).map((r) => [r.n, r.denseMs!] as const), ...COMPOSITE }];
    }
  }
  const xLabel = suite === 'recurrence' ? 'segment length n' : 'n (= m)';
  return {
    time: linePlotSvg({ title: `${id} on ${backend}: time`, xLabel, yLabel: 'median ms', series: [{ label: `${id} (${rows[0].path || 'measured'})`, points: pointsOf(rows, 'ms'), ...me }, ...timeBase], formatY: ms, marks, width: 420 }),
    bytes: linePlotSvg({
      title: `${id} on ${backend}: intermediate bytes`,
      xLabel,
      yLabel: 'bytes',
      series: [{ label: id, points: pointsOf(rows, 'bytes'), ...me }, ...(suite === 'recurrence' ? [] : denseBaselines(data, backend, 'bytes'))],
      formatY: formatBytes,
      binaryY: true,
      width: 420,
    }),
  };
}

/** Error against exact dense attention against n, for every entry with such a measurement. */
export function errorPlot(data: BenchData, catalog: readonly CatalogEntry[]): string | null {
  const rows = data.rows.filter((r) => r.errDense !== null);
  if (rows.length === 0) return null;
  const keys = [...new Set(rows.map((r) => `${r.id}\u0000${r.backend}`))];
  const exact = (id: string) => catalog.find((e) => e.id === id)?.exactSoftmax ?? false;
  const series: Series[] = keys.map((key, i) => {
    const [id, backend] = key.split('\u0000');
    return {
      label: `${id} (${backend})${exact(id) ? ', exact over its own set' : ''}`,
      points: rows.filter((r) => r.id === id && r.backend === backend).map((r) => [r.n, r.errDense!] as const),
      color: PALETTE[i % PALETTE.length],
      dash: exact(id) ? '5 3' : undefined,
    };
  });
  return linePlotSvg({ title: 'max |error| against exact dense attention', xLabel: 'n (= m)', yLabel: 'max abs error', series, width: 620, height: 260, formatY: (y) => y.toExponential(0) });
}
