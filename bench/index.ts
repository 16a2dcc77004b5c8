/**
 * `npm run bench`: the benchmark tables of the docs, written to bench/results/ as markdown and
 * JSON. Timings are medians of --runs runs (default 3) after a warm-up; ratios compare paths
 * measured in the same run.
 *
 * Options: --runs 3  --ns 512,1024,2048,4096,8192,16384  --max-cpu-n 4096  --backends webgpu,wasm,cpu
 *          --suites dense,patterns  --pattern-ns 256,512,1024,2048,4096,8192,16384  --only local,strided,…
 *          --kernelized-ns 1024,2048,4096,8192,16384 (suite kernelized: linear, performer, linformer, adaptive-span)
 *          --suites compile (not run by default): every entry's cold first call on webgpu, one child
 *          process per (entry, d), see bench/compile.ts; --compile-ds 32,64,128  --compile-timeout 120
 *          --compile-flag 10  --only
 *          --out bench/results (where the tables go)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { args } from './common.js';
import { benchDense, denseTable } from './dense.js';
import { benchPatterns, patternsTable } from './patterns.js';
import { benchKernelized, kernelizedTable } from './kernelized.js';
import { benchCompile, compileTable, COMPILE_PROBLEM } from './compile.js';

const a = args();
const runs = Number(a.runs ?? 3);
const ns = (a.ns ?? '512,1024,2048,4096,8192,16384').split(',').map(Number);
const maxCpuN = Number(a['max-cpu-n'] ?? 4096);
const backends = (a.backends ?? 'webgpu,wasm,cpu').split(',');

const suites = (a.suites ?? 'dense,patterns,kernelized').split(',');
const out = a.out ?? 'bench/results';
mkdirSync(out, { recursive: true });

if (suites.includes('dense')) {
  const dense = await benchDense({ ns, runs, maxCpuN, backends });
  const md = `## Fused vs composite dense attention (batch 1, 1 head, d = 64, median of ${runs})\n\n${denseTable(dense)}\n`;
  writeFileSync(`${out}/dense.md`, md);
  writeFileSync(`${out}/dense.json`, JSON.stringify({ date: new Date().toISOString(), runs, rows: dense }, null, 2));
  console.log(`\n${md}\nwritten: ${out}/dense.md, ${out}/dense.json`);
}

if (suites.includes('patterns')) {
  const patternNs = (a['pattern-ns'] ?? '256,512,1024,2048,4096,8192,16384').split(',').map(Number);
  const only = a.only ? a.only.split(',') : null;
  const rows = await benchPatterns({ ns: patternNs, runs, maxCpuN, backends, only });
  const md =
    `## Pattern variants vs dense attention (batch 1, 1 head, d = 64, non-causal, median of ${runs})\n\n` +
    'Dense is the fused kernel on webgpu and the composite elsewhere, measured in the same run at the same n.\n\n' +
    `${patternsTable(rows)}\n`;
  writeFileSync(`${out}/patterns.md`, md);
  writeFileSync(`${out}/patterns.json`, JSON.stringify({ date: new Date().toISOString(), runs, rows }, null, 2));
  console.log(`\n${md}\nwritten: ${out}/patterns.md, ${out}/patterns.json`);
}

if (suites.includes('kernelized')) {
  const kNs = (a['kernelized-ns'] ?? '1024,2048,4096,8192,16384').split(',').map(Number);
  const only = a.only ? a.only.split(',') : null;
  const rows = await benchKernelized({ ns: kNs, runs, maxCpuN, backends: backends.filter((b) => b !== 'wasm'), only });
  const md =
    `## Kernelized, low-rank and adaptive-span attention (batch 1, 1 head, d = dv = 64, median of ${runs})\n\n` +
    'Errors are max |difference| over 16 sampled query rows against float64 references: exact dense softmax attention with the ' +
    "same causality, and the entry's own definition (its random features, projections and spans). Dense is the fused kernel " +
    '(webgpu) or the composite (cpu), measured in the same run at the same n and causality.\n\n' +
    `${kernelizedTable(rows)}\n`;
  writeFileSync(`${out}/kernelized.md`, md);
  writeFileSync(`${out}/kernelized.json`, JSON.stringify({ date: new Date().toISOString(), runs, rows }, null, 2));
  console.log(`\n${md}\nwritten: ${out}/kernelized.md, ${out}/kernelized.json`);
}

if (suites.includes('compile')) {
  const ds = (a['compile-ds'] ?? '32,64,128').split(',').map(Number);
  const timeoutS = Number(a['compile-timeout'] ?? 120);
  const flagS = Number(a['compile-flag'] ?? 10);
  const only = a.only ? a.only.split(',') : null;
  const { detail, rows } = await benchCompile({ ds, timeoutS, flagS, only });
  const { batch, heads, n } = COMPILE_PROBLEM;
  const md =
    `## First call on webgpu, cold (batch ${batch}, ${heads} heads, n = ${n}, d = dv)\n\n` +
    `${detail}. Each cell: the first call (s, shader compilation included) / a second call in the same process (ms). ` +
    'Each (entry, d) runs in a fresh process with MESA_SHADER_CACHE_DISABLE=true (no pipeline cached by tfjs, no Mesa ' +
    `shader cache); a child is killed after ${timeoutS} s.\n\n` +
    `${compileTable(rows, ds, flagS)}\n`;
  writeFileSync(`${out}/compile.md`, md);
  writeFileSync(`${out}/compile.json`, JSON.stringify({ date: new Date().toISOString(), detail, problem: COMPILE_PROBLEM, ds, timeoutS, flagS, rows }, null, 2));
  console.log(`\n${md}\nwritten: ${out}/compile.md, ${out}/compile.json`);
}
