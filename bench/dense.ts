/**
 * Fused dense vs composite dense on each backend present, n from 512 to 16384, d = 64, one
 * head: median time and intermediate bytes side by side. Rows the composite cannot run (score
 * matrix over the device's binding limit, or past --max-cpu-n on cpu/wasm) say so.
 */
import * as tf from '@tensorflow/tfjs-core';
import { webgpuLimits } from '../src/core/backend.js';
import { AttentionError } from '../src/core/errors.js';
import { denseAttention } from '../src/variants/baseline/dense.js';
import { applier, intermediateBytes, makeQKV, medianMs, mib, startBackends } from './common.js';

export interface DenseRow {
  backend: string;
  n: number;
  kernelMs: number | null;
  kernelBytes: number | null;
  compositeMs: number | null;
  compositeBytes: number | null;
  note: string;
}

export async function benchDense(opts: { ns: number[]; runs: number; maxCpuN: number; backends: string[] }, log = console.log) {
  const rows: DenseRow[] = [];
  const available = await startBackends(opts.backends, log);
  const attn = denseAttention({ causal: false });
  for (const backend of available) {
    await tf.setBackend(backend);
    for (const n of opts.ns) {
      const row: DenseRow = { backend, n, kernelMs: null, kernelBytes: null, compositeMs: null, compositeBytes: null, note: '' };
      const x = makeQKV({ batch: 1, heads: 1, kvHeads: 1, n, m: n, d: 64, dv: 64 });
      const notes: string[] = [];
      if (backend === 'webgpu') {
        row.kernelMs = await medianMs(applier(attn, x, 'kernel'), opts.runs);
        row.kernelBytes = await intermediateBytes(applier(attn, x, 'kernel'));
      }
      if (backend !== 'webgpu' && n > opts.maxCpuN) {
        notes.push(`composite not run: n > --max-cpu-n ${opts.maxCpuN} on ${backend} (n² time and memory)`);
      } else {
        try {
          row.compositeMs = await medianMs(applier(attn, x, 'composite'), opts.runs);
          row.compositeBytes = await intermediateBytes(applier(attn, x, 'composite'));
        } catch (e) {
          if (!(e instanceof AttentionError)) throw e;
          const limit = webgpuLimits()?.maxStorageBufferBindingSize ?? 0;
          notes.push(`composite cannot run: its n×n score matrix (${mib(n * n * 4)}) is over the device's binding limit (${mib(limit)})`);
        }
      }
      x.dispose();
      row.note = notes.join('; ');
      rows.push(row);
      const f = (v: number | null, u: string) => (v === null ? '—' : `${v.toFixed(1)}${u}`);
      log(`  ${backend} n=${n}: kernel ${f(row.kernelMs, ' ms')}, composite ${f(row.compositeMs, ' ms')} ${row.note}`);
    }
  }
  return rows;
}

export function denseTable(rows: DenseRow[]): string {
  const f = (v: number | null) => (v === null ? '—' : v.toFixed(1));
  const b = (v: number | null) => (v === null ? '—' : mib(v));
  const speed = (r: DenseRow) => (r.kernelMs !== null && r.compositeMs !== null ? `${(r.compositeMs / r.kernelMs).toFixed(2)}×` : '—');
  const lines = [
    '| backend | n | fused ms | composite ms | fused speed-up | fused bytes | composite bytes | note |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.backend} | ${r.n} | ${f(r.kernelMs)} | ${f(r.compositeMs)} | ${speed(r)} | ${b(r.kernelBytes)} | ${b(r.compositeBytes)} | ${r.note} |`),
  ];
  return lines.join('\n');
}
