/**
 * Reads whatever is in `bench/results/*.json` for the docs: every file is optional, and a file
 * or a row that does not have the expected shape is skipped with a note (the docs say what is
 * missing instead of failing to build).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { overtakes } from '../../bench/patterns.js';

/** The suites that time an entry against dense at growing n. */
export type Suite = 'patterns' | 'kernelized' | 'learnable' | 'recurrence';
export const SUITES: readonly Suite[] = ['patterns', 'kernelized', 'learnable', 'recurrence'];

export const SUITE_TITLES: Record<Suite, string> = {
  patterns: 'Pattern entries',
  kernelized: 'Kernelized, low-rank and adaptive-span entries',
  learnable: 'Learnable patterns',
  recurrence: 'Recurrence (one segment over a full memory)',
};

/** One measurement of an entry at one n on one backend. */
export interface EntryRow {
  suite: Suite;
  backend: string;
  id: string;
  n: number;
  path: string;
  ms: number | null;
  bytes: number | null;
  /** Dense measured in the same run at the same n (fused on webgpu, the composite elsewhere; recurrence: over the same n + L keys). */
  denseMs: number | null;
  errDense: number | null;
  /** The config (JSON) or label the suite ran. */
  config: string;
  memLength?: number;
  stateBytes?: number | null;
  note: string;
}

export interface DenseRow {
  backend: string;
  n: number;
  kernelMs: number | null;
  kernelBytes: number | null;
  compositeMs: number | null;
  compositeBytes: number | null;
}

export interface TrainingRow {
  id: string;
  n: number;
  fusedMs: number | null;
  compositeMs: number | null;
  fusedBytes: number | null;
  compositeBytes: number | null;
}

export interface CompileRow {
  id: string;
  d: number;
  status: string;
  firstS: number | null;
  secondMs: number | null;
}

export interface BenchData {
  dir: string;
  /** Files read, with their `date` when they have one. */
  read: { file: string; date: string | null }[];
  /** Files expected but absent or unreadable, with why. */
  missing: string[];
  dense: DenseRow[];
  rows: EntryRow[];
  training: TrainingRow[];
  compile: CompileRow[];
  /** The compile suite's problem and adapter, when present. */
  compileInfo: { detail: string; problem: string } | null;
}

const numOrNull = (x: unknown): number | null => (typeof x === 'number' && Number.isFinite(x) ? x : null);
const str = (x: unknown): string => (typeof x === 'string' ? x : '');

function readJson(dir: string, file: string, missing: string[]): Record<string, unknown> | null {
  const path = join(dir, file);
  if (!existsSync(path)) {
    missing.push(`${file}: not in bench/results`);
    return null;
  }
  try {
    const j = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    if (typeof j !== 'object' || j === null || !Array.isArray((j as { rows?: unknown }).rows)) {
      missing.push(`${file}: no "rows" array`);
      return null;
    }
    return j as Record<string, unknown>;
  } catch (e) {
    missing.push(`${file}: ${(e as Error).message}`);
    return null;
  }
}

const rowsOf = (j: Record<string, unknown> | null) => (j ? (j.rows as unknown[]).filter((r): r is Record<string, unknown> => typeof r === 'object' && r !== null) : []);

/** Loads bench/results (or another folder of the same files). */
export function loadBench(dir: string): BenchData {
  const missing: string[] = [];
  const read: BenchData['read'] = [];
  const take = (file: string) => {
    const j = readJson(dir, file, missing);
    if (j) read.push({ file, date: str(j.date) || null });
    return j;
  };
  const dense: DenseRow[] = rowsOf(take('dense.json'))
    .filter((r) => typeof r.backend === 'string' && typeof r.n === 'number')
    .map((r) => ({
      backend: r.backend as string,
      n: r.n as number,
      kernelMs: numOrNull(r.kernelMs),
      kernelBytes: numOrNull(r.kernelBytes),
      compositeMs: numOrNull(r.compositeMs),
      compositeBytes: numOrNull(r.compositeBytes),
    }));
  const rows: EntryRow[] = [];
  for (const suite of SUITES) {
    const j = take(`${suite}.json`);
    for (const r of rowsOf(j)) {
      if (typeof r.backend !== 'string' || typeof r.id !== 'string' || typeof r.n !== 'number') continue;
      rows.push({
        suite,
        backend: r.backend,
        id: r.id,
        n: r.n,
        path: str(r.path),
        ms: numOrNull(r.ms),
        bytes: numOrNull(r.bytes),
        denseMs: numOrNull(r.denseMs),
        errDense: numOrNull(r.errDense),
        config: str(r.config) || str(r.label),
        memLength: numOrNull(r.memLength) ?? undefined,
        stateBytes: r.stateBytes === undefined ? undefined : numOrNull(r.stateBytes),
        note: str(r.note),
      });
    }
  }
  const training: TrainingRow[] = rowsOf(take('training.json'))
    .filter((r) => typeof r.id === 'string' && typeof r.n === 'number')
    .map((r) => ({
      id: r.id as string,
      n: r.n as number,
      fusedMs: numOrNull(r.fusedMs),
      compositeMs: numOrNull(r.compositeMs),
      fusedBytes: numOrNull(r.fusedBytes),
      compositeBytes: numOrNull(r.compositeBytes),
    }));
  const compileJson = take('compile.json');
  const compile: CompileRow[] = rowsOf(compileJson)
    .filter((r) => typeof r.id === 'string' && typeof r.d === 'number')
    .map((r) => ({ id: r.id as string, d: r.d as number, status: str(r.status), firstS: numOrNull(r.firstS), secondMs: numOrNull(r.secondMs) }));
  const problem = compileJson?.problem as Record<string, unknown> | undefined;
  const compileInfo = compileJson
    ? { detail: str(compileJson.detail), problem: problem ? Object.entries(problem).map(([k, v]) => `${k} ${String(v)}`).join(', ') : '' }
    : null;
  return { dir, read, missing, dense, rows, training, compile, compileInfo };
}

/** Backends in a stable order: webgpu, wasm, cpu, then any other. */
export function backendsOf(data: BenchData): string[] {
  const all = new Set([...data.dense.map((r) => r.backend), ...data.rows.map((r) => r.backend)]);
  const order = ['webgpu', 'wasm', 'webgl', 'cpu', 'tensorflow'];
  return [...all].sort((a, b) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99) || a.localeCompare(b));
}

/** Whether fused dense was measured on this backend (dense.json has kernel timings there). */
export function hasFusedDense(data: BenchData, backend: string): boolean {
  return data.dense.some((r) => r.backend === backend && r.kernelMs !== null);
}

/** The rows of one entry on one backend, by n. */
export function entryRows(data: BenchData, id: string, backend?: string): EntryRow[] {
  return data.rows.filter((r) => r.id === id && (backend === undefined || r.backend === backend)).sort((a, b) => a.n - b.n);
}

/**
 * The smallest measured n from which the entry stays faster than dense measured in the same
 * run (bench/patterns.ts's rule, used for its tables too); null: never in the measured range;
 * undefined: no row with both timings.
 */
export function overtakeN(data: BenchData, id: string, backend: string): number | null | undefined {
  const rows = entryRows(data, id, backend).filter((r) => r.ms !== null && r.denseMs !== null);
  if (rows.length === 0) return undefined;
  return overtakes(rows, backend, id);
}

/** What "dense" means for an entry's same-run comparison on a backend. */
export function denseBaselineName(data: BenchData, suite: Suite, backend: string): string {
  const what = hasFusedDense(data, backend) || backend === 'webgpu' ? 'fused dense' : 'dense (composite)';
  return suite === 'recurrence' ? `${what} over the same n + L keys` : what;
}
