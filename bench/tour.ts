/**
 * The catalog tour (`npm start`): every variant in the catalog on the backend `auto` chose,
 * on one sample problem, one row each: id, family, backend, path, median time, intermediate
 * bytes, and max error against a float64 reference on sampled rows (its own definition, or
 * dense attention: bench/entries.ts's `errorAgainst`).
 *
 * After the table, the mixture-of-experts module (`attention-catalog/moe`): one `moeLayer`
 * (E = 8, k = 2, C = 1.25, d = heads·d, hidden 2·heads·d) on n tokens, natural and batch-priority routing: time,
 * capacity, and the share of choices dropped.
 *
 * Options: --backend auto|webgpu|wasm|cpu  --n 4096  --heads 8  --d 64  --runs 3  --only id,id  --no-moe
 */
import * as tf from '@tensorflow/tfjs-core';
import { backendReport, initBackend, type BackendName } from '../src/core/backend.js';
import { kernelAvailable } from '../src/core/dispatch.js';
import { catalog } from '../src/index.js';
import { moeLayer } from '../src/moe/index.js';
import { applier, args, intermediateBytes, makeQKV, medianMs, mib, sampledError } from './common.js';
import { tourEntries } from './entries.js';

const a = args();
const backend = await initBackend((a.backend ?? 'auto') as BackendName);
const report = backendReport()!;
const n = Number(a.n ?? 4096);
const heads = Number(a.heads ?? 8);
const d = Number(a.d ?? 64);
const runs = Number(a.runs ?? 3);
const only = a.only ? a.only.split(',') : null;

console.log(`attention-catalog tour — ${report.detail}`);
for (const s of report.skipped) console.log(`  (skipped ${s.name}: ${s.reason})`);
console.log(`sample problem: batch 1, ${heads} heads, n = m = ${n}, d = dv = ${d}; median of ${runs} runs\n`);

const rows: string[][] = [];
const header = ['id', 'family', 'backend', 'path', 'median ms', 'intermediate', 'max err', 'vs'];
const entries = catalog.filter((e) => !only || only.includes(e.id));
let i = 0;
for (const entry of entries) {
  i++;
  const tour = tourEntries[entry.id];
  if (!tour) throw new Error(`bench/entries.ts has no tour entry for '${entry.id}'`);
  process.stdout.write(`[${i}/${entries.length}] ${entry.id} … `);
  const factory = await entry.load();
  const attn = factory(tour.config(n, heads) as never);
  const kvHeads = tour.kvHeads?.(heads) ?? heads;
  const x = makeQKV({ batch: 1, heads, kvHeads, n, m: n, d, dv: d });
  const path = entry.capabilities.fused && kernelAvailable() ? 'kernel' : 'composite';
  let row: string[];
  try {
    const inputs = tour.sharedQK ? { q: x.q, k: x.q, v: x.v } : x;
    const run = applier(attn, inputs, 'auto');
    const ms = await medianMs(run, runs);
    const bytes = await intermediateBytes(run);
    const out = run();
    const weight = tour.errorAgainst === 'definition' && tour.weight ? tour.weight(attn, n, n) : () => 1;
    const scale = (attn.config as { scale?: number }).scale ?? 1 / Math.sqrt(d);
    const err = tour.error ? await tour.error(attn, inputs, out, scale) : await sampledError(out, inputs.q, inputs.k, inputs.v, scale, weight);
    out.dispose();
    row = [entry.id, entry.family, backend, path, ms.toFixed(1), mib(bytes), err.toExponential(2), tour.errorAgainst === 'definition' ? 'own definition' : 'dense'];
    console.log(`${ms.toFixed(1)} ms`);
  } catch (e) {
    row = [entry.id, entry.family, backend, path, '—', '—', '—', `failed: ${(e as Error).message}`];
    console.log(`failed: ${(e as Error).message}`);
  } finally {
    x.dispose();
    attn.dispose();
  }
  rows.push(row);
}

const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
const line = (r: string[]) => `| ${r.map((x, c) => x.padEnd(widths[c])).join(' | ')} |`;
console.log(`\n${line(header)}\n|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|\n${rows.map(line).join('\n')}`);

// The mixture-of-experts module: the FFN half of sparse inference, on the same n tokens.
let moeFailed = false;
if (a['no-moe'] === undefined) {
  const dim = heads * d;
  console.log(`\nattention-catalog/moe — moeLayer: E = 8 experts, k = 2, C = 1.25, d = ${dim}, hidden ${2 * dim}, on ${n} tokens (${backend})`);
  for (const policy of ['natural', 'batch-priority'] as const) {
    const moe = moeLayer({ experts: 8, k: 2, capacityFactor: 1.25, policy, dim, hidden: 2 * dim, seed: 1 });
    const x = tf.randomNormal([n, dim], 0, 1, 'float32', 2);
    try {
      const ms = await medianMs(() => moe.apply(x), runs);
      const o = moe.forward(x);
      const dropped = tf.tidy(() => tf.mean(tf.cast(tf.less(o.route.slot, 0), 'float32')));
      console.log(`  ${policy.padEnd(14)} ${ms.toFixed(1)} ms, capacity ${o.route.capacity} per expert, ${(100 * (await dropped.data())[0]).toFixed(1)}% of choices dropped`);
      tf.dispose([o.output, o.auxLoss, o.zLoss, o.route.expert, o.route.slot, o.route.gate, o.route.load, dropped]);
    } catch (e) {
      moeFailed = true;
      console.log(`  ${policy}: failed: ${(e as Error).message}`);
    } finally {
      x.dispose();
      moe.dispose();
    }
  }
}
console.log(`\ntensors alive at exit: ${tf.memory().numTensors}`);
if (rows.some((r) => r[4] === '—') || moeFailed) process.exitCode = 1;
