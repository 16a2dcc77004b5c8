/**
 * The learnable-pattern entries (`lsh`, and `routing`, `sinkhorn` where the catalog has them)
 * from n = 1024 to 16384 (batch 1, 1 head, d = dv = 64): median time, intermediate bytes, the
 * error against exact dense softmax attention with the same scores over every key, and the error
 * against the entry's own definition (both float64 on sampled rows), next to dense attention at
 * the same n (fused on webgpu, the composite elsewhere up to --max-cpu-n), and the n from which
 * each is faster than dense.
 */
import * as tf from '@tensorflow/tfjs-core';
import { kernelAvailable } from '../src/core/dispatch.js';
import type { Attention } from '../src/core/types.js';
import { catalogEntry } from '../src/index.js';
import { denseAttention } from '../src/variants/baseline/dense.js';
import { intermediateBytes, makeQKV, medianMs, mib, sampledError, startBackends } from './common.js';
import { lshAllowed } from '../test/specs/lsh.js';
import { overtakes } from './patterns.js';
import { routingDefinitionError, sinkhornDefinitionError } from './entries.js';

type QKV = { q: tf.Tensor4D; k: tf.Tensor4D; v: tf.Tensor4D };

/** How the suite runs one learnable entry. */
export interface LearnableEntry {
  id: string;
  /** Config at length n. */
  config(n: number): Record<string, unknown>;
  /** Keys are the queries (Reformer's shared-QK): `apply(q, q, v)`. */
  sharedQK?: boolean;
  /** The keys the dense reference scores against (default k): LSH scores normalized queries. */
  denseKeys?(x: QKV): tf.Tensor4D;
  /** Max error against the entry's own definition on sampled rows. */
  definitionError(config: Record<string, unknown>, x: QKV, out: tf.Tensor4D, scale: number): Promise<number>;
}

const normalizedRows = (t: tf.Tensor4D) => tf.tidy(() => tf.div(t, tf.maximum(tf.norm(t, 'euclidean', 3, true), 1e-30)) as tf.Tensor4D);

export const LEARNABLE_ENTRIES: LearnableEntry[] = [
  {
    id: 'routing',
    config: (n) => ({ clusters: Math.ceil(n / 256), window: 256, heads: 1, dim: 64 }),
    definitionError: (config, x, out) => routingDefinitionError(config, x, out),
  },
  {
    id: 'sinkhorn',
    config: (n) => ({ block: 64, maxLength: n, headDim: 64 }),
    definitionError: (config, x, out) => sinkhornDefinitionError(config, x, out),
  },
  {
    id: 'lsh',
    config: () => ({ bucketSize: 64, hashes: 2 }),
    sharedQK: true,
    denseKeys: (x) => normalizedRows(x.q),
    definitionError: async (config, x, out, scale) => {
      const [, , n, d] = x.q.shape;
      const allowed = lshAllowed({ shape: x.q.shape, data: await x.q.data() }, { config, keyLength: null, m: n, d });
      const kn = normalizedRows(x.q);
      try {
        return await sampledError(out, x.q, kn, x.v, scale, (h, i, j) => allowed(0, h, i, j));
      } finally {
        kn.dispose();
      }
    },
  },
];

export interface LearnableRow {
  backend: string;
  id: string;
  config: string;
  n: number;
  path: 'kernel' | 'composite';
  ms: number | null;
  bytes: number | null;
  denseMs: number | null;
  errDense: number | null;
  errDefinition: number | null;
  note: string;
}

export async function benchLearnable(
  opts: { ns: number[]; runs: number; maxCpuN: number; backends: string[]; only?: string[] | null },
  log = console.log,
): Promise<LearnableRow[]> {
  const rows: LearnableRow[] = [];
  const available = await startBackends(opts.backends, log);
  const entries = LEARNABLE_ENTRIES.filter((e) => catalogEntry(e.id) && (!opts.only || opts.only.includes(e.id)));
  const dense = denseAttention();
  for (const backend of available) {
    await tf.setBackend(backend);
    const path = kernelAvailable() ? 'kernel' : 'composite';
    for (const n of opts.ns) {
      if (path === 'composite' && n > opts.maxCpuN) {
        log(`  ${backend} n=${n}: skipped (n > --max-cpu-n ${opts.maxCpuN})`);
        continue;
      }
      const x = makeQKV({ batch: 1, heads: 1, kvHeads: 1, n, m: n, d: 64, dv: 64 });
      let denseMs: number | null = null;
      try {
        denseMs = await medianMs(() => dense.apply(x.q, x.k, x.v), opts.runs);
      } catch (e) {
        log(`  ${backend} n=${n}: dense failed (${(e as Error).message})`);
      }
      log(`  ${backend} n=${n}: dense ${denseMs === null ? '—' : denseMs.toFixed(1)} ms (${path})`);
      for (const entry of entries) {
        const config = entry.config(n);
        const factory = await catalogEntry(entry.id)!.load();
        const attn = factory(config as never) as Attention<unknown>;
        const row: LearnableRow = { backend, id: entry.id, config: JSON.stringify(config), n, path, ms: null, bytes: null, denseMs, errDense: null, errDefinition: null, note: '' };
        const inputs: QKV = entry.sharedQK ? { q: x.q, k: x.q, v: x.v } : x;
        const run = () => attn.apply(inputs.q, inputs.k, inputs.v);
        try {
          row.ms = await medianMs(run, opts.runs);
          row.bytes = await intermediateBytes(run);
          const out = run();
          const scale = (attn.config as { scale?: number }).scale ?? 1 / Math.sqrt(64);
          const keys = entry.denseKeys?.(inputs) ?? inputs.k;
          try {
            row.errDense = await sampledError(out, inputs.q, keys, inputs.v, scale, () => 1);
            row.errDefinition = await entry.definitionError(config, inputs, out, scale);
          } finally {
            if (keys !== inputs.k) keys.dispose();
            out.dispose();
          }
        } catch (e) {
          row.note = `failed: ${(e as Error).message}`;
        }
        attn.dispose();
        rows.push(row);
        log(`    ${entry.id}: ${row.ms === null ? row.note : `${row.ms.toFixed(1)} ms, ${mib(row.bytes!)}, err vs dense ${row.errDense?.toExponential(2)}, vs definition ${row.errDefinition?.toExponential(2)}`}`);
      }
      x.dispose();
    }
  }
  return rows;
}


export function learnableTable(rows: LearnableRow[]): string {
  const f = (v: number | null) => (v === null ? '—' : v.toFixed(1));
  const e = (v: number | null) => (v === null ? '—' : v.toExponential(2));
  const lines = [
    '| backend | entry | n | path | median ms | dense ms | speed-up over dense | intermediate | error vs dense | error vs own definition | note |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.backend} | ${r.id} | ${r.n} | ${r.path} | ${f(r.ms)} | ${f(r.denseMs)} | ${r.ms !== null && r.denseMs !== null ? `${(r.denseMs / r.ms).toFixed(2)}×` : '—'} | ` +
        `${r.bytes === null ? '—' : mib(r.bytes)} | ${e(r.errDense)} | ${e(r.errDefinition)} | ${r.note} |`,
    ),
  ];
  const summary = ['', '| backend | entry | faster than dense from | config there (clusters and lengths scale with n) |', '|---|---|---|---|'];
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
