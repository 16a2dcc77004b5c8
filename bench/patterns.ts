/**
 * The pattern variants against fused dense attention, n from 1024 to 16384 (batch 1, 1 head,
 * d = 64, non-causal): median time, intermediate bytes and the speed-up over dense at the same
 * n on the same backend (the fused kernel on webgpu, the composites elsewhere), and the n from
 * which each pattern is faster than dense. On webgpu dense is also timed with
 * `kernelStrategy: 'rows'` (the per-row flash kernel, the only one before the tiled strategy):
 * the speed-up over that baseline is comparable with results measured before the tiled kernel.
 * `--before <patterns.json>` adds a before/after table against such an earlier run.
 */
import * as tf from '@tensorflow/tfjs-core';
import { kernelAvailable } from '../src/core/dispatch.js';
import { catalogEntry } from '../src/index.js';
import type { Attention } from '../src/core/types.js';
import { denseAttention } from '../src/variants/baseline/dense.js';
import { applier, intermediateBytes, makeQKV, medianMs, mib, startBackends } from './common.js';
import { grid, sqrtPow2 } from './entries.js';

/** The benchmarked config of each pattern variant at length n (non-causal, as dense). */
export const PATTERN_CONFIGS: Record<string, (n: number) => Record<string, unknown>> = {
  local: () => ({ window: 128 }),
  blockwise: () => ({ block: 128, lookback: 1 }),
  strided: (n) => ({ stride: sqrtPow2(n) }),
  dilated: () => ({ window: 64, dilation: 2 }),
  compressed: () => ({ stride: 8 }),
  'sparse-transformer': (n) => ({ stride: sqrtPow2(n) }),
  axial: (n) => ({ shape: grid(n) }),
  'big-bird': () => ({ block: 64 }),
  longformer: () => ({ window: 128, global: [0, 1, 2, 3, 4, 5, 6, 7] }),
  etc: () => ({ globalTokens: 16, radius: 128 }),
};

export interface PatternRow {
  backend: string;
  id: string;
  config: string;
  n: number;
  path: 'kernel' | 'composite';
  ms: number | null;
  bytes: number | null;
  denseMs: number | null;
  /** Fused dense with `kernelStrategy: 'rows'` (webgpu only; null elsewhere). */
  denseRowsMs?: number | null;
  note: string;
}

export async function benchPatterns(
  opts: { ns: number[]; runs: number; maxCpuN: number; backends: string[]; only?: string[] | null },
  log = console.log,
): Promise<PatternRow[]> {
  const rows: PatternRow[] = [];
  const available = await startBackends(opts.backends, log);
  const ids = Object.keys(PATTERN_CONFIGS).filter((id) => !opts.only || opts.only.includes(id));
  const dense = denseAttention();
  for (const backend of available) {
    await tf.setBackend(backend);
    const path = kernelAvailable() ? 'kernel' : 'composite';
    for (const n of opts.ns) {
      if (path === 'composite' && n > opts.maxCpuN) {
        log(`  ${backend} n=${n}: skipped (n > --max-cpu-n ${opts.maxCpuN}; dense composite is n² there)`);
        continue;
      }
      const x = makeQKV({ batch: 1, heads: 1, kvHeads: 1, n, m: n, d: 64, dv: 64 });
      let denseMs: number | null = null;
      try {
        denseMs = await medianMs(applier(dense, x, 'auto'), opts.runs);
      } catch (e) {
        log(`  ${backend} n=${n}: dense failed (${(e as Error).message})`);
      }
      let denseRowsMs: number | null = null;
      if (path === 'kernel') {
        try {
          denseRowsMs = await medianMs(() => dense.apply(x.q, x.k, x.v, { implementation: 'kernel', kernelStrategy: 'rows' }), opts.runs);
        } catch (e) {
          log(`  ${backend} n=${n}: dense (rows) failed (${(e as Error).message})`);
        }
      }
      const rowsNote = denseRowsMs === null ? '' : `, rows strategy ${denseRowsMs.toFixed(1)} ms`;
      log(`  ${backend} n=${n}: dense ${denseMs === null ? '—' : denseMs.toFixed(1)} ms (${path}${rowsNote})`);
      for (const id of ids) {
        const config = PATTERN_CONFIGS[id](n);
        const factory = await catalogEntry(id)!.load();
        const attn = factory(config as never) as Attention<unknown>;
        const row: PatternRow = { backend, id, config: JSON.stringify(config), n, path, ms: null, bytes: null, denseMs, denseRowsMs, note: '' };
        try {
          row.ms = await medianMs(applier(attn, x, 'auto'), opts.runs);
          row.bytes = await intermediateBytes(applier(attn, x, 'auto'));
        } catch (e) {
          row.note = `failed: ${(e as Error).message}`;
        }
        attn.dispose();
        rows.push(row);
        log(`    ${id}: ${row.ms === null ? row.note : `${row.ms.toFixed(1)} ms, ${mib(row.bytes!)}, ${speedup(row)}`}`);
      }
      x.dispose();
    }
  }
  return rows;
}

const ratio = (num: number | null | undefined, den: number | null | undefined) =>
  num != null && den != null ? `${(num / den).toFixed(2)}×` : '—';
const speedup = (r: PatternRow) => ratio(r.denseMs, r.ms);

/** The smallest n from which a pattern stays faster than dense (null: never in the range). */
export function overtakes(rows: readonly Pick<PatternRow, 'backend' | 'id' | 'n' | 'ms' | 'denseMs'>[], backend: string, id: string): number | null {
  const mine = rows.filter((r) => r.backend === backend && r.id === id && r.ms !== null && r.denseMs !== null).sort((a, b) => a.n - b.n);
  let from: number | null = null;
  for (const r of mine) {
    if (r.ms! < r.denseMs!) from ??= r.n;
    else from = null;
  }
  return from;
}

export function patternsTable(rows: PatternRow[]): string {
  const f = (v: number | null) => (v === null ? '—' : v.toFixed(1));
  const lines = [
    '| backend | pattern | n | path | median ms | dense ms | speed-up over dense | dense rows ms | speed-up over dense rows | intermediate | note |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.backend} | ${r.id} | ${r.n} | ${r.path} | ${f(r.ms)} | ${f(r.denseMs)} | ${speedup(r)} | ${f(r.denseRowsMs ?? null)} | ` +
        `${ratio(r.denseRowsMs, r.ms)} | ${r.bytes === null ? '—' : mib(r.bytes)} | ${r.note} |`,
    ),
  ];
  const summary = ['', '| backend | pattern | faster than dense from | config there (strides and grids scale with n) |', '|---|---|---|---|'];
  const seen = new Set<string>();
  for (const r of rows) {
    const key = `${r.backend}|${r.id}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const at = overtakes(rows, r.backend, r.id);
    const mine = rows.filter((x) => x.backend === r.backend && x.id === r.id);
    const ns = mine.map((x) => x.n);
    const where = mine.find((x) => x.n === at) ?? mine[mine.length - 1];
    summary.push(`| ${r.backend} | ${r.id} | ${at === null ? `not in n = ${Math.min(...ns)}…${Math.max(...ns)}` : `n = ${at}`} | ${where.config} |`);
  }
  return [...lines, ...summary].join('\n');
}

/**
 * Before/after table of two pattern runs (rows matched by backend, pattern, n and config): the
 * pattern's time in each, after ÷ before, and its speed-up over the per-row dense kernel in each
 * (before: `denseMs`, measured when that was the only flash kernel; after: `denseRowsMs`, or
 * `denseMs` off webgpu).
 */
export function beforeAfterTable(before: PatternRow[], after: PatternRow[]): string {
  const f = (v: number | null | undefined) => (v == null ? '—' : v.toFixed(1));
  const lines = [
    '| backend | pattern | n | before ms | after ms | after ÷ before | speed-up over rows dense, before | after |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const a of after) {
    const b = before.find((x) => x.backend === a.backend && x.id === a.id && x.n === a.n && x.config === a.config);
    if (!b) continue;
    const aBase = a.path === 'kernel' ? a.denseRowsMs : a.denseMs;
    lines.push(
      `| ${a.backend} | ${a.id} | ${a.n} | ${f(b.ms)} | ${f(a.ms)} | ${b.ms != null && a.ms != null ? (a.ms / b.ms).toFixed(2) : '—'} | ` +
        `${ratio(b.denseMs, b.ms)} | ${ratio(aBase, a.ms)} |`,
    );
  }
  return lines.join('\n');
}
