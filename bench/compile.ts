/**
 * Suite `compile` (`npm run bench -- --suites compile`): what a first call costs on webgpu. For
 * every catalog entry and head dim d, one fresh child process (so that no pipeline is cached in
 * tfjs) with `MESA_SHADER_CACHE_DISABLE=true` (so that Mesa's on-disk shader cache, which hides
 * compilation on reruns, is not used) times its first `apply` — from just before the call to its
 * output read back (`await out.data()`), shader compilation included — then a second call in the
 * same process. Batch 1, 2 heads, n = m = 256, d = dv; the entry's default config where it has
 * one, else the tour's config (bench/entries.ts). Each child is killed after --compile-timeout
 * seconds and reported as such; a first call over --compile-flag seconds is flagged, and that
 * (entry, d) is run once more, cold, with one queue submission per program to tell which
 * shader the time goes to.
 *
 * Options: --compile-ds 32,64,128  --compile-timeout 120 (s)  --compile-flag 10 (s)  --only id,id
 *
 * @module
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { backendReport, initBackend } from '../src/core/backend.js';
import { catalog } from '../src/index.js';
import { AttentionError } from '../src/core/errors.js';
import type { Attention } from '../src/core/types.js';
import { makeQKV } from './common.js';
import { tourEntries } from './entries.js';

/** The problem every first call runs (d = dv varies). */
export const COMPILE_PROBLEM = { batch: 1, heads: 2, n: 256 };

/** What one child reports. */
interface ChildResult {
  detail: string;
  config: Record<string, unknown>;
  configSource: 'default' | 'tour';
  firstS: number;
  secondMs: number;
  /** Profile runs: seconds per program (tfjs program class and shaderKey), in dispatch order. */
  programs?: { program: string; shaderKey: string; s: number }[];
}

/** One (entry, d) of the suite. */
export interface CompileRow {
  id: string;
  d: number;
  status: 'ok' | 'timeout' | 'failed';
  config?: Record<string, unknown>;
  configSource?: 'default' | 'tour';
  firstS?: number;
  secondMs?: number;
  /** First call over the flag threshold (or timed out). */
  flagged: boolean;
  error?: string;
  /** Flagged rows: the slowest programs of a profiled cold rerun (seconds per program). */
  slowest?: { program: string; shaderKey: string; s: number }[];
}

export interface CompileOptions {
  ds: number[];
  timeoutS: number;
  flagS: number;
  only: string[] | null;
  log?: (line: string) => void;
}

const MARK = 'COMPILE_RESULT ';
/** Exit status of a child that found no webgpu adapter. */
const NO_WEBGPU = 3;
const self = fileURLToPath(import.meta.url);

/** Runs one child: `{ result }`, or why there is none. */
function runChild(id: string, d: number, timeoutS: number, profile: boolean): Promise<{ result?: ChildResult; status: CompileRow['status']; error?: string; noWebGPU?: boolean }> {
  return new Promise((done) => {
    const args = [...process.execArgv, self, '--compile-child', id, String(d), ...(profile ? ['--compile-profile'] : [])];
    const child = spawn(process.execPath, args, {
      env: { ...process.env, MESA_SHADER_CACHE_DISABLE: 'true' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutS * 1000);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (timedOut) return done({ status: 'timeout', error: `no result within ${timeoutS} s` });
      const line = out.split('\n').find((l) => l.startsWith(MARK));
      if (line) return done({ status: 'ok', result: JSON.parse(line.slice(MARK.length)) as ChildResult });
      const why = (out + err).split('\n').filter((l) => l.trim() && !/^Warning:|^\s+at /.test(l)).slice(-3).join(' ');
      done({ status: 'failed', error: `exit ${code}: ${why || 'no output'}`, noWebGPU: code === NO_WEBGPU });
    });
  });
}

/** The suite: every catalog entry (or --only) at every d, each in a fresh child. */
export async function benchCompile(opts: CompileOptions): Promise<{ detail: string; rows: CompileRow[] }> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const entries = catalog.filter((e) => !opts.only || opts.only.includes(e.id));
  const rows: CompileRow[] = [];
  let detail = '';
  for (const e of entries) {
    for (const d of opts.ds) {
      process.stdout.write(`compile: ${e.id} d=${d} … `);
      const r = await runChild(e.id, d, opts.timeoutS, false);
      if (r.result) detail ||= r.result.detail;
      const row: CompileRow = {
        id: e.id,
        d,
        status: r.status,
        config: r.result?.config,
        configSource: r.result?.configSource,
        firstS: r.result?.firstS,
        secondMs: r.result?.secondMs,
        flagged: r.status === 'timeout' || (r.result !== undefined && r.result.firstS > opts.flagS),
        error: r.error,
      };
      log(r.result ? `first ${r.result.firstS.toFixed(2)} s, second ${r.result.secondMs.toFixed(1)} ms` : `${r.status}: ${r.error}`);
      if (r.noWebGPU) {
        log('compile: webgpu is not available here; the suite needs it');
        return { detail: `webgpu unavailable (${r.error})`, rows };
      }
      if (row.flagged) {
        process.stdout.write(`compile: ${e.id} d=${d} flagged, profiling a cold rerun … `);
        const p = await runChild(e.id, d, opts.timeoutS, true);
        row.slowest = p.result?.programs?.slice().sort((a, b) => b.s - a.s).slice(0, 3);
        log(row.slowest ? row.slowest.map((x) => `${x.program} ${x.s.toFixed(1)} s`).join(', ') : `${p.status}: ${p.error}`);
      }
      rows.push(row);
    }
  }
  return { detail, rows };
}

/**
 * The markdown table: entry | d=… (first call s / second call ms), flagged cells in bold, then
 * the configs that are not the default and the flagged cells' slowest shaders.
 */
export function compileTable(rows: CompileRow[], ds: number[], flagS: number): string {
  const ids = [...new Set(rows.map((r) => r.id))];
  const cell = (r: CompileRow | undefined) => {
    if (!r) return '—';
    if (r.status === 'timeout') return '**timeout** ⚠';
    if (r.status === 'failed') return `failed: ${r.error}`;
    const s = `${r.firstS!.toFixed(2)} s / ${r.secondMs!.toFixed(1)} ms`;
    return r.flagged ? `**${s}** ⚠` : s;
  };
  const head = `| entry | ${ds.map((d) => `d=${d}`).join(' | ')} |\n|---|${ds.map(() => '---').join('|')}|`;
  const body = ids.map((id) => `| ${id} | ${ds.map((d) => cell(rows.find((r) => r.id === id && r.d === d))).join(' | ')} |`).join('\n');
  const configs = ids
    .map((id) => rows.find((r) => r.id === id && r.configSource === 'tour'))
    .filter((r): r is CompileRow => !!r)
    .map((r) => `${r.id} \`${JSON.stringify(r.config)}\``);
  const flagged = rows.filter((r) => r.flagged);
  const notes = flagged.length
    ? `Over ${flagS} s (⚠):\n\n${flagged
        .map((r) => `- ${r.id}, d = ${r.d}: ${r.status === 'timeout' ? r.error : `${r.firstS!.toFixed(1)} s`}${r.slowest?.length ? `; slowest shaders (cold rerun, one submission per program): ${r.slowest.map((x) => `${x.program} \`${x.shaderKey}\` ${x.s.toFixed(1)} s`).join(', ')}` : ''}`)
        .join('\n')}`
    : `No first call over ${flagS} s.`;
  return `${head}\n${body}\n\nConfigs: the default, except (no default config) ${configs.length ? configs.join('; ') : 'none'}.\n\n${notes}`;
}

/** The child: one cold first call and one second call of `id` at head dim `d`; prints one result line. */
async function child(id: string, d: number, profile: boolean): Promise<void> {
  try {
    await initBackend('webgpu');
  } catch (e) {
    console.error(`compile child: ${(e as Error).message}`);
    process.exit(NO_WEBGPU);
  }
  const detail = backendReport()!.detail;
  const entry = catalog.find((e) => e.id === id);
  if (!entry) throw new Error(`no catalog entry '${id}'`);
  const factory = await entry.load();
  const { batch, heads, n } = COMPILE_PROBLEM;
  const tour = tourEntries[id];
  const kvHeads = tour?.kvHeads?.(heads) ?? heads;
  const x = makeQKV({ batch, heads, kvHeads, n, m: n, d, dv: d });
  await Promise.all([x.q.data(), x.k.data(), x.v.data()]);
  // The default config where the entry has one for this problem, else the tour's. (A config is
  // rejected by the factory or by apply's validation, both before anything is dispatched.)
  const fromTour = () => {
    if (!tour) throw new Error(`'${id}' needs a config and bench/entries.ts has none`);
    return tour.config(n, heads);
  };
  let configSource: ChildResult['configSource'] = 'default';
  let config: Record<string, unknown> = {};
  let attn: Attention<unknown>;
  try {
    attn = factory({} as never);
  } catch {
    configSource = 'tour';
    config = fromTour();
    attn = factory(config as never);
  }
  const programs: NonNullable<ChildResult['programs']> = [];
  if (profile) profileSubmits(programs);
  const call = async () => {
    const t0 = performance.now();
    const out = attn.apply(x.q, x.k, x.v);
    await out.data();
    const ms = performance.now() - t0;
    out.dispose();
    return ms;
  };
  let first: number;
  try {
    first = await call();
  } catch (e) {
    if (configSource === 'tour' || !(e instanceof AttentionError)) throw e;
    attn.dispose();
    programs.length = 0;
    configSource = 'tour';
    config = fromTour();
    attn = factory(config as never);
    first = await call();
  }
  const result: ChildResult = { detail, config, configSource, firstS: first / 1000, secondMs: profile ? NaN : await call() };
  if (profile) result.programs = programs;
  x.dispose();
  attn.dispose();
  console.log(MARK + JSON.stringify(result));
}

/**
 * Profile runs: one queue submission per program (tfjs's WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE = 1),
 * each timed and attributed to the program just recorded. On the software adapter a shader is
 * compiled when its first dispatch is submitted, so a slow shader shows as a slow submission.
 */
function profileSubmits(into: NonNullable<ChildResult['programs']>): void {
  const backend = tf.backend() as unknown as {
    device: GPUDevice;
    runWebGPUProgram: (program: { constructor: { name: string }; shaderKey: string }, ...rest: unknown[]) => unknown;
  };
  tf.env().set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', 1);
  let current = { program: '?', shaderKey: '?' };
  const run = backend.runWebGPUProgram.bind(backend);
  backend.runWebGPUProgram = (program, ...rest) => {
    current = { program: program.constructor.name, shaderKey: program.shaderKey };
    return run(program, ...rest);
  };
  const queue = backend.device.queue;
  const submit = queue.submit.bind(queue);
  queue.submit = (buffers: Iterable<GPUCommandBuffer>) => {
    const t0 = performance.now();
    submit(buffers);
    into.push({ ...current, s: (performance.now() - t0) / 1000 });
  };
}

if (process.argv[1] && resolve(process.argv[1]) === self && process.argv.includes('--compile-child')) {
  const i = process.argv.indexOf('--compile-child');
  try {
    await child(process.argv[i + 1], Number(process.argv[i + 2]), process.argv.includes('--compile-profile'));
    process.exit(0);
  } catch (e) {
    console.error(`compile child failed: ${(e as Error).message}`);
    process.exit(1);
  }
}
