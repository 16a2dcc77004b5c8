/**
 * The flash kernel's two strategies side by side on webgpu (`kernelStrategy: 'rows'` and
 * `'tiled'`, the latter with K/V tiles staged in workgroup memory as the adapter suits, and
 * forced staged): median time of every entry that runs on the flash kernel, dense from decode
 * sizes to n = 4096, and which strategy `'auto'` picks. The rule `'auto'` follows
 * (kernels/flash/plan.ts `chooseStrategy`) is read from this table; the suite checks it.
 */
import * as tf from '@tensorflow/tfjs-core';
import { catalogEntry } from '../src/index.js';
import type { Attention, KernelStrategy } from '../src/core/types.js';
import { denseAttention } from '../src/variants/baseline/dense.js';
import { setTileStaging } from '../kernels/flash/plan.js';
import { flashDispatches } from '../kernels/flash/kernel.js';
import { makeQKV, medianMs, startBackends } from './common.js';
import { PATTERN_CONFIGS } from './patterns.js';

export interface StrategyRow {
  id: string;
  config: string;
  n: number;
  m: number;
  heads: number;
  rowsMs: number;
  tiledMs: number;
  stagedMs: number;
  /** What 'auto' ran: 'rows' or 'tiled'. */
  auto: string;
}

interface Case {
  id: string;
  config: Record<string, unknown>;
  n: number;
  m: number;
  heads: number;
}

export async function benchStrategies(opts: { ns: number[]; runs: number }, log = console.log): Promise<StrategyRow[]> {
  const available = await startBackends(['webgpu'], log);
  if (!available.includes('webgpu')) throw new Error('suite strategies needs webgpu');
  await tf.setBackend('webgpu');
  const cases: Case[] = [
    { id: 'dense', config: {}, n: 1, m: 4096, heads: 8 },
    { id: 'dense', config: {}, n: 16, m: 4096, heads: 1 },
    { id: 'dense', config: {}, n: 64, m: 64, heads: 8 },
    { id: 'dense', config: {}, n: 256, m: 256, heads: 1 },
    { id: 'dense', config: { causal: true }, n: 1024, m: 1024, heads: 1 },
    { id: 'multi-query', config: { causal: true }, n: 1024, m: 1024, heads: 4 },
    { id: 'adaptive-span', config: { maxSpan: 256, heads: 1 }, n: 1024, m: 1024, heads: 1 },
  ];
  for (const n of opts.ns) {
    cases.push({ id: 'dense', config: {}, n, m: n, heads: 1 });
    for (const [id, cfg] of Object.entries(PATTERN_CONFIGS)) cases.push({ id, config: cfg(n), n, m: n, heads: 1 });
  }
  const rows: StrategyRow[] = [];
  for (const c of cases) {
    const factory = c.id === 'dense' ? denseAttention : ((await catalogEntry(c.id)!.load()) as (cfg: unknown) => Attention<unknown>);
    const attn = factory(c.config) as Attention<unknown>;
    const kvHeads = c.id === 'multi-query' ? 1 : c.heads;
    const x = makeQKV({ batch: 1, heads: c.heads, kvHeads, n: c.n, m: c.m, d: 64, dv: 64 });
    const run = (s: KernelStrategy) => () => attn.apply(x.q, x.k, x.v, { implementation: 'kernel', kernelStrategy: s });
    const t = { rows: [] as number[], tiled: [] as number[], staged: [] as number[] };
    // Interleaved rounds, so drift affects every strategy alike.
    for (let r = 0; r < 2; r++) {
      t.rows.push(await medianMs(run('rows'), opts.runs));
      t.tiled.push(await medianMs(run('tiled'), opts.runs));
      setTileStaging(true);
      t.staged.push(await medianMs(run('tiled'), opts.runs));
      setTileStaging(null);
    }
    const before = flashDispatches();
    const o = run('auto')();
    await o.data();
    o.dispose();
    const after = flashDispatches();
    const auto = after.tiled > before.tiled ? 'tiled' : after.rows > before.rows ? 'rows' : '?';
    x.dispose();
    attn.dispose();
    const best = (a: number[]) => Math.min(...a);
    const row: StrategyRow = { id: c.id, config: JSON.stringify(c.config), n: c.n, m: c.m, heads: c.heads, rowsMs: best(t.rows), tiledMs: best(t.tiled), stagedMs: best(t.staged), auto };
    rows.push(row);
    log(`  ${c.id} ${row.config} n=${c.n} m=${c.m} h=${c.heads}: rows ${row.rowsMs.toFixed(1)} ms, tiled ${row.tiledMs.toFixed(1)} ms, staged ${row.stagedMs.toFixed(1)} ms, auto ${auto}`);
  }
  return rows;
}

export function strategiesTable(rows: StrategyRow[]): string {
  const head = '| entry | config | n | m | heads | rows (ms) | tiled (ms) | tiled, staged (ms) | rows ÷ tiled | auto picks | faster |\n|---|---|---|---|---|---|---|---|---|---|---|';
  const body = rows.map((r) => {
    const faster = r.rowsMs <= r.tiledMs ? 'rows' : 'tiled';
    return `| ${r.id} | \`${r.config}\` | ${r.n} | ${r.m} | ${r.heads} | ${r.rowsMs.toFixed(1)} | ${r.tiledMs.toFixed(1)} | ${r.stagedMs.toFixed(1)} | ${(r.rowsMs / r.tiledMs).toFixed(2)} | ${r.auto} | ${faster} |`;
  });
  return [head, ...body].join('\n');
}
