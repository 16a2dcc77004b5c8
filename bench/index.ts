/**
 * `npm run bench`: the benchmark tables of the docs, written to bench/results/ as markdown and
 * JSON. Timings are medians of --runs runs (default 3) after a warm-up; ratios compare paths
 * measured in the same run.
 *
 * Options: --runs 3  --ns 512,1024,2048,4096,8192,16384  --max-cpu-n 4096  --backends webgpu,wasm,cpu
 *          --suites dense,patterns  --pattern-ns 256,512,1024,2048,4096,8192,16384  --only local,strided,…
 *          --before <patterns.json> (suite patterns: a before/after table against that earlier run)
 *          --kernelized-ns 1024,2048,4096,8192,16384 (suite kernelized: linear, performer, linformer, adaptive-span)
 *          --learnable-ns 1024,2048,4096,8192,16384 (suite learnable: lsh, routing, sinkhorn; bench/learnable.ts)
 *          --recurrence-ns 256,512,1024,2048 --mem-length 1024 (suite recurrence: one step over a full memory; bench/recurrence.ts)
 *          --training-ns 1024,4096 (suite training: forward + backward of dense, local and linear on webgpu, fused vs composite; bench/training.ts)
 *          --suites compile (not run by default): every entry's cold first call on webgpu, one child
 *          process per (entry, d), see bench/compile.ts; --compile-ds 32,64,128  --compile-timeout 120
 *          --compile-flag 10  --only
 *          --suites browser (not run by default): one headless Chromium page (/usr/bin/chromium or
 *          CHROMIUM_PATH; SwiftShader WebGPU and WebGL2), fused dense (kernelStrategy auto, rows,
 *          tiled), local, causal linear, the composite on webgpu and webgl, and onnxruntime-web's
 *          WebGPU MultiHeadAttention, round-robin interleaved, see bench/browser.ts;
 *          --browser-ns 1024,2048,4096 (1 head)  --browser-mh-ns 1024 (--browser-mh-heads 8 heads; 'none': no
 *          multi-head case)  --runs (default 5 for this suite)  --ort-threads 1  --ort-subgroups (keep
 *          the adapter's 'subgroups' for onnxruntime-web; hidden by default, its flash attention is
 *          wrong with SwiftShader's 4-wide subgroups)
 *          --suites strategies (not run by default): the flash kernel's 'rows' and 'tiled' strategies per
 *          entry on webgpu and what 'auto' picks, see bench/strategies.ts; --strategy-ns 1024,4096
 *          --suites moe (not run by default): moeLayer vs a dense FFN with the same active parameters, and
 *          natural vs batch-priority drop statistics, see bench/moe.ts; --moe-ns 1024,2048,4096,8192,16384
 *          --moe-experts 8,32  --moe-drop-t 4096  --moe-drop-seeds 3
 *          --out bench/results (where the tables go)
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { args } from './common.js';
import { benchDense, denseTable } from './dense.js';
import { beforeAfterTable, benchPatterns, patternsTable } from './patterns.js';
import { benchKernelized, kernelizedTable } from './kernelized.js';
import { benchLearnable, learnableTable } from './learnable.js';
import { benchRecurrence, recurrenceTable } from './recurrence.js';
import { benchCompile, compileTable, COMPILE_PROBLEM } from './compile.js';
import { benchStrategies, strategiesTable } from './strategies.js';
import { benchBrowser, browserHeader, browserTable } from './browser.js';
import { benchTraining, trainingTable } from './training.js';
import { benchMoEDrops, benchMoETime, moeDropTable, moeTimeTable } from './moe.js';
// tfjs-core registers no op gradients by itself; @tensorflow/tfjs-layers' CommonJS build does (the training suite).
import '@tensorflow/tfjs-layers';

const a = args();
const runs = Number(a.runs ?? 3);
const ns = (a.ns ?? '512,1024,2048,4096,8192,16384').split(',').map(Number);
const maxCpuN = Number(a['max-cpu-n'] ?? 4096);
const backends = (a.backends ?? 'webgpu,wasm,cpu').split(',');

const suites = (a.suites ?? 'dense,patterns,kernelized,learnable,recurrence,training').split(',');
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
    'Dense is the fused kernel on webgpu and the composite elsewhere, measured in the same run at the same n; ' +
    "on webgpu 'dense rows' is fused dense with `kernelStrategy: 'rows'` (the per-row kernel).\n\n" +
    `${patternsTable(rows)}\n` +
    (a.before
      ? `\n### Before/after (before: ${a.before}, ${JSON.parse(readFileSync(a.before, 'utf8')).date})\n\n` +
        `${beforeAfterTable(JSON.parse(readFileSync(a.before, 'utf8')).rows, rows)}\n`
      : '');
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

if (suites.includes('learnable')) {
  const lNs = (a['learnable-ns'] ?? '1024,2048,4096,8192,16384').split(',').map(Number);
  const only = a.only ? a.only.split(',') : null;
  const rows = await benchLearnable({ ns: lNs, runs, maxCpuN, backends: backends.filter((b) => b !== 'wasm'), only });
  const md =
    `## Learnable patterns (batch 1, 1 head, d = dv = 64, median of ${runs})\n\n` +
    'Errors are max |difference| over 16 sampled query rows against float64 references: softmax attention with the ' +
    "entry's own scores over every key (for lsh: s·q_i·q_j/‖q_j‖, shared-QK), and the entry's own definition (its hashes, " +
    'clusters or sorted blocks). Dense is the fused kernel (webgpu) or the composite (cpu), measured in the same run at the same n.\n\n' +
    `${learnableTable(rows)}\n`;
  writeFileSync(`${out}/learnable.md`, md);
  writeFileSync(`${out}/learnable.json`, JSON.stringify({ date: new Date().toISOString(), runs, rows }, null, 2));
  console.log(`\n${md}\nwritten: ${out}/learnable.md, ${out}/learnable.json`);
}

if (suites.includes('recurrence')) {
  const rNs = (a['recurrence-ns'] ?? '256,512,1024,2048').split(',').map(Number);
  const memLength = Number(a['mem-length'] ?? 1024);
  const only = a.only ? a.only.split(',') : null;
  const rows = await benchRecurrence({ ns: rNs, memLength, runs, maxCpuN, backends: backends.filter((b) => b !== 'wasm'), only });
  const md =
    `## Recurrence: one step of a segment over a full memory (batch 1, 1 head, d = dv = 64, L = ${memLength}, median of ${runs})\n\n` +
    "Dense is causal dense attention of the segment's queries over the same n + L keys (the fused kernel on webgpu, the composite " +
    "on cpu), measured in the same run. The error is max |difference| over 16 sampled rows against the entry's float64 definition " +
    '(for transformer-xl: the relative score with its seeded u, v, wR). State: the bytes the step returns as the next state.\n\n' +
    `${recurrenceTable(rows)}\n`;
  writeFileSync(`${out}/recurrence.md`, md);
  writeFileSync(`${out}/recurrence.json`, JSON.stringify({ date: new Date().toISOString(), runs, memLength, rows }, null, 2));
  console.log(`\n${md}\nwritten: ${out}/recurrence.md, ${out}/recurrence.json`);
}

if (suites.includes('training')) {
  const tNs = (a['training-ns'] ?? '1024,4096').split(',').map(Number);
  const rows = await benchTraining({ ns: tNs, runs });
  const md =
    `## Training step on webgpu: forward + backward, fused vs composite (batch 1, 1 head, d = dv = 64, causal, median of ${runs})\n\n` +
    "`tf.grads` of Σ apply with respect to q, k and v. Fused: the flash kernel, which saves each row's logsumexp, and its fused " +
    'backward (dQ per query row, dK/dV per key row over the transposed layout); for linear (elu+1) the linear kernel and its ' +
    'forward and reverse scans. Composite: tfjs ops and tfjs autodiff. Both measured in the same run; local has window 256.\n\n' +
    `${trainingTable(rows)}\n`;
  writeFileSync(`${out}/training.md`, md);
  writeFileSync(`${out}/training.json`, JSON.stringify({ date: new Date().toISOString(), runs, rows }, null, 2));
  console.log(`\n${md}\nwritten: ${out}/training.md, ${out}/training.json`);
}

if (suites.includes('moe')) {
  const mNs = (a['moe-ns'] ?? '1024,2048,4096,8192,16384').split(',').map(Number);
  const experts = (a['moe-experts'] ?? '8,32').split(',').map(Number);
  const drops = await benchMoEDrops({ T: Number(a['moe-drop-t'] ?? 4096), experts: 32, seeds: Number(a['moe-drop-seeds'] ?? 3) });
  const times = await benchMoETime({ ns: mNs, runs, maxCpuN, backends, experts });
  const md =
    `## Mixture of experts (attention-catalog/moe), median of ${runs}\n\n` +
    '### Batch-priority vs natural routing (E = 32, T = ' + (a['moe-drop-t'] ?? 4096) + ', d = 64, a confident router: logits of std ≈ 2; mean of ' + (a['moe-drop-seeds'] ?? 3) + ' seeds)\n\n' +
    'A token is dropped when all its k choices are over capacity; router mass kept = Σ p over kept choices / Σ p over all k choices.\n\n' +
    `${moeDropTable(drops)}\n\n` +
    `### moeLayer vs a dense FFN with the same active parameters (k = 2, C = 1.25, d = 128, expert hidden 256, dense hidden 512, relu)\n\n` +
    'Measured in the same run: the whole MoE call; the router alone; the experts\' batched FFN alone on an [E, capacity, d] buffer; ' +
    'the rest is dispatch and combine (gathers and one scatter, tfjs ops on the device).\n\n' +
    `${moeTimeTable(times)}\n`;
  writeFileSync(`${out}/moe.md`, md);
  writeFileSync(`${out}/moe.json`, JSON.stringify({ date: new Date().toISOString(), runs, drops, times }, null, 2));
  console.log(`\n${md}\nwritten: ${out}/moe.md, ${out}/moe.json`);
}

if (suites.includes('strategies')) {
  const sNs = (a['strategy-ns'] ?? '1024,4096').split(',').map(Number);
  const rows = await benchStrategies({ ns: sNs, runs });
  const md =
    `## The flash kernel's strategies on webgpu (batch 1, d = dv = 64, best of two interleaved medians of ${runs})\n\n` +
    "'tiled' stages K/V tiles in workgroup memory where the adapter suits it (not on CPU-backed adapters); the staged column forces it. " +
    "'auto picks' is what `kernelStrategy: 'auto'` ran (kernels/flash/plan.ts `chooseStrategy`).\n\n" +
    `${strategiesTable(rows)}\n`;
  writeFileSync(`${out}/strategies.md`, md);
  writeFileSync(`${out}/strategies.json`, JSON.stringify({ date: new Date().toISOString(), runs, rows }, null, 2));
  console.log(`\n${md}\nwritten: ${out}/strategies.md, ${out}/strategies.json`);
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

if (suites.includes('browser')) {
  const list = (v: string | undefined, dflt: string) => ((v ?? dflt) === 'none' ? [] : (v ?? dflt).split(',').map(Number));
  const bRuns = Number(a.runs ?? 5);
  const b = await benchBrowser({
    ns: list(a['browser-ns'], '1024,2048,4096'),
    mhNs: list(a['browser-mh-ns'], '1024'),
    mhHeads: Number(a['browser-mh-heads'] ?? 8),
    runs: bRuns,
    ortThreads: Number(a['ort-threads'] ?? 1),
    ortSubgroups: a['ort-subgroups'] === 'true',
    window: 128,
  });
  const md =
    `## In the browser: attention-catalog vs tfjs composites vs onnxruntime-web (median of ${bRuns})\n\n` +
    `${browserHeader(b)}\n\n${browserTable(b.rows)}\n`;
  writeFileSync(`${out}/browser.md`, md);
  writeFileSync(`${out}/browser.json`, JSON.stringify({ date: new Date().toISOString(), ...b }, null, 2));
  console.log(`\n${md}\nwritten: ${out}/browser.md, ${out}/browser.json`);
}
