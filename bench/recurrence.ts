/**
 * The recurrence entries (`transformer-xl`, and `compressive` where the catalog has it): one
 * `step` of a segment of n positions over a full memory (batch 1, 1 head, d = dv = 64, memory
 * L = 1024), for segment lengths n = 256 … 2048: median time and intermediate bytes of the step,
 * next to fused dense attention of the segment over the same n + L keys (causal), the state's
 * bytes, and the error of the step against the entry's float64 definition on sampled rows.
 */
import * as tf from '@tensorflow/tfjs-core';
import { kernelAvailable } from '../src/core/dispatch.js';
import type { Attention } from '../src/core/types.js';
import { catalogEntry } from '../src/index.js';
import { denseAttention } from '../src/variants/baseline/dense.js';
import { measureIntermediateBytes } from '../src/core/measure.js';
import { makeQKV, medianMs, mib, startBackends } from './common.js';
import { referenceXL } from '../test/specs/transformer-xl.js';
import { toHost } from '../test/reference.js';

/** A state as the suite handles it: transformer-xl's { k, v }, or one that frees itself (compressive's, with `bytes`). */
type AnyState = { k: tf.Tensor; v: tf.Tensor } | { dispose(): void; bytes: number };
const freeState = (s: AnyState) => ('dispose' in s ? s.dispose() : (s.k.dispose(), s.v.dispose()));
const stateBytesOf = (s: AnyState) => ('bytes' in s ? s.bytes : (s.k.size + s.v.size) * 4);

/** A stateful entry as the suite drives it. */
interface Stateful extends Attention<unknown> {
  initState(batch: number): AnyState;
  step(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, state: unknown): { output: tf.Tensor4D; state: AnyState };
}

export interface RecurrenceEntry {
  id: string;
  config(L: number): Record<string, unknown>;
  /** Max error of one step's output against the definition, on 16 sampled rows (keys = [memory; segment]). */
  error(attn: Attention<unknown>, q: tf.Tensor4D, keys: tf.Tensor4D, values: tf.Tensor4D, out: tf.Tensor4D): Promise<number>;
}

export const RECURRENCE_ENTRIES: RecurrenceEntry[] = [
  {
    id: 'transformer-xl',
    config: (L) => ({ memLength: L, heads: 1, headDim: 64 }),
    error: async (attn, q, keys, values, out) => {
      const [qh, kh, vh, oh] = await Promise.all([q, keys, values, out].map((t) => toHost(t)));
      const n = q.shape[2];
      const rows = Array.from({ length: 16 }, (_, r) => Math.min(n - 1, Math.floor(((r + 0.5) * n) / 16)));
      const want = referenceXL(qh, kh, vh, { config: attn.config as unknown as Record<string, unknown>, heads: 1, d: 64, keyLength: null }, rows);
      let worst = 0;
      for (const i of rows) for (let t = 0; t < 64; t++) worst = Math.max(worst, Math.abs(oh.data[i * 64 + t] - want.data[i * 64 + t]));
      return worst;
    },
  },
  {
    id: 'compressive',
    // Memory L, compressed memory L / 4 at rate 4 (the paper's ratio), learned conv compression.
    config: (L) => ({ memLength: L, compressedLength: L / 4, rate: 4, fn: 'conv', headDim: 64 }),
    // After the one step over the L memory rows the memory holds them and nothing is compressed
    // yet, so the measured step is causal attention over [memory; segment] = keys, values.
    error: async (_attn, q, keys, values, out) => {
      const [qh, kh, vh, oh] = await Promise.all([q, keys, values, out].map((t) => toHost(t)));
      const n = q.shape[2];
      const m = keys.shape[2];
      const rows = Array.from({ length: 16 }, (_, r) => Math.min(n - 1, Math.floor(((r + 0.5) * n) / 16)));
      let worst = 0;
      for (const i of rows) {
        const p = i + m - n;
        const s = Array.from({ length: p + 1 }, (_, j) => {
          let dot = 0;
          for (let t = 0; t < 64; t++) dot += qh.data[i * 64 + t] * kh.data[j * 64 + t];
          return dot / 8; // 1/sqrt(64)
        });
        const mx = Math.max(...s);
        const e = s.map((x) => Math.exp(x - mx));
        const den = e.reduce((a, x) => a + x, 0);
        for (let t = 0; t < 64; t++) {
          let o = 0;
          for (let j = 0; j <= p; j++) o += e[j] * vh.data[j * 64 + t];
          worst = Math.max(worst, Math.abs(oh.data[i * 64 + t] - o / den));
        }
      }
      return worst;
    },
  },
];

export interface RecurrenceRow {
  backend: string;
  id: string;
  n: number;
  memLength: number;
  path: 'kernel' | 'composite';
  ms: number | null;
  bytes: number | null;
  stateBytes: number | null;
  denseMs: number | null;
  err: number | null;
  note: string;
}

export async function benchRecurrence(
  opts: { ns: number[]; memLength: number; runs: number; maxCpuN: number; backends: string[]; only?: string[] | null },
  log = console.log,
): Promise<RecurrenceRow[]> {
  const rows: RecurrenceRow[] = [];
  const available = await startBackends(opts.backends, log);
  const entries = RECURRENCE_ENTRIES.filter((e) => catalogEntry(e.id) && (!opts.only || opts.only.includes(e.id)));
  const dense = denseAttention({ causal: true });
  const L = opts.memLength;
  for (const backend of available) {
    await tf.setBackend(backend);
    const path = kernelAvailable() ? 'kernel' : 'composite';
    for (const n of opts.ns) {
      if (path === 'composite' && n + L > opts.maxCpuN) {
        log(`  ${backend} n=${n}: skipped (n + L > --max-cpu-n ${opts.maxCpuN})`);
        continue;
      }
      const seg = makeQKV({ batch: 1, heads: 1, kvHeads: 1, n, m: n, d: 64, dv: 64 });
      const mem = makeQKV({ batch: 1, heads: 1, kvHeads: 1, n: L, m: L, d: 64, dv: 64 }, 7);
      const keys = tf.concat([mem.k, seg.k], 2) as tf.Tensor4D;
      const values = tf.concat([mem.v, seg.v], 2) as tf.Tensor4D;
      let denseMs: number | null = null;
      try {
        denseMs = await medianMs(() => dense.apply(seg.q, keys, values), opts.runs);
      } catch (e) {
        log(`  ${backend} n=${n}: dense failed (${(e as Error).message})`);
      }
      for (const entry of entries) {
        const attn = (await catalogEntry(entry.id)!.load())(entry.config(L) as never) as Stateful;
        const row: RecurrenceRow = { backend, id: entry.id, n, memLength: L, path, ms: null, bytes: null, stateBytes: null, denseMs, err: null, note: '' };
        // A state whose memory holds the L memory rows: one step over them fills it.
        const full = () => {
          const s = attn.step(mem.q, mem.k, mem.v, attn.initState(1));
          s.output.dispose();
          return s.state;
        };
        try {
          // Full states made before the clock starts: only the step is timed.
          const ready = Array.from({ length: opts.runs + 1 }, full);
          const once = () => {
            const r = attn.step(seg.q, seg.k, seg.v, ready.pop()!);
            freeState(r.state);
            return r.output;
          };
          row.ms = await medianMs(once, opts.runs);
          let state = full();
          const measured = await measureIntermediateBytes(() => {
            const r = attn.step(seg.q, seg.k, seg.v, state);
            state = r.state;
            return r.output;
          });
          row.bytes = measured.bytes;
          row.stateBytes = stateBytesOf(state);
          row.err = await entry.error(attn, seg.q, keys, values, measured.result);
          measured.result.dispose();
          freeState(state);
        } catch (e) {
          row.note = `failed: ${(e as Error).message}`;
        }
        attn.dispose();
        rows.push(row);
        log(`    ${entry.id} n=${n}: ${row.ms === null ? row.note : `${row.ms.toFixed(1)} ms, ${mib(row.bytes!)}, err ${row.err?.toExponential(2)}`}`);
      }
      [keys, values].forEach((t) => t.dispose());
      seg.dispose();
      mem.dispose();
    }
  }
  return rows;
}

export function recurrenceTable(rows: RecurrenceRow[]): string {
  const f = (v: number | null) => (v === null ? '—' : v.toFixed(1));
  return [
    '| backend | entry | segment n | memory L | path | step ms | dense ms (n over n + L keys) | intermediate | state | error vs definition | note |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.backend} | ${r.id} | ${r.n} | ${r.memLength} | ${r.path} | ${f(r.ms)} | ${f(r.denseMs)} | ${r.bytes === null ? '—' : mib(r.bytes)} | ` +
        `${r.stateBytes === null ? '—' : mib(r.stateBytes)} | ${r.err === null ? '—' : r.err.toExponential(2)} | ${r.note} |`,
    ),
  ].join('\n');
}
