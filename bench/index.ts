/**
 * `npm run bench`: the benchmark tables of the docs, written to bench/results/ as markdown and
 * JSON. Timings are medians of --runs runs (default 3) after a warm-up; ratios compare paths
 * measured in the same run.
 *
 * Options: --runs 3  --ns 512,1024,2048,4096,8192,16384  --max-cpu-n 4096  --backends webgpu,wasm,cpu
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { args } from './common.js';
import { benchDense, denseTable } from './dense.js';

const a = args();
const runs = Number(a.runs ?? 3);
const ns = (a.ns ?? '512,1024,2048,4096,8192,16384').split(',').map(Number);
const maxCpuN = Number(a['max-cpu-n'] ?? 4096);
const backends = (a.backends ?? 'webgpu,wasm,cpu').split(',');

const dense = await benchDense({ ns, runs, maxCpuN, backends });
const md = `## Fused vs composite dense attention (batch 1, 1 head, d = 64, median of ${runs})\n\n${denseTable(dense)}\n`;
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/dense.md', md);
writeFileSync('bench/results/dense.json', JSON.stringify({ date: new Date().toISOString(), runs, rows: dense }, null, 2));
console.log(`\n${md}\nwritten: bench/results/dense.md, bench/results/dense.json`);
