/**
 * The training-step suite: one forward + backward (`tf.grads` of Σ apply with respect to q, k
 * and v) of dense, local and causal linear attention on webgpu, the fused path (the flash or
 * linear kernel and its fused backward) against the composite (tfjs ops, tfjs autodiff), at n = 1024 and 4096 (batch 1,
 * 1 head, d = dv = 64, causal; local window 256): median time of several runs and intermediate
 * bytes, and the composite/fused ratios measured in the same run.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Attention, Implementation } from '../src/core/types.js';
import { denseAttention } from '../src/variants/baseline/dense.js';
import { localAttention } from '../src/variants/fixed/local.js';
import { linearAttention } from '../src/variants/kernelized/linear.js';
import { intermediateBytes, makeQKV, medianMs, mib, startBackends } from './common.js';

export interface TrainingRow {
  id: string;
  n: number;
  fusedMs: number;
  compositeMs: number | null;
  fusedBytes: number;
  compositeBytes: number | null;
  /** Why the composite was not measured (e.g. its score matrices exceed the device's binding limit). */
  note?: string;
}

const ENTRIES: [string, () => Attention<unknown>][] = [
  ['dense', () => denseAttention({ causal: true })],
  ['local', () => localAttention({ window: 256, causal: true })],
  ['linear', () => linearAttention({ causal: true })],
];

/** One training step's gradients as one tensor (dk, dv freed: their bytes are in the peak). */
function step(attn: Attention<unknown>, x: { q: tf.Tensor4D; k: tf.Tensor4D; v: tf.Tensor4D }, implementation: Implementation): tf.Tensor {
  const [dq, dk, dv] = tf.grads((q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) => tf.sum(attn.apply(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, { implementation })))([x.q, x.k, x.v]);
  dk.dispose();
  dv.dispose();
  return dq;
}

export async function benchTraining(opts: { ns: number[]; runs: number }): Promise<TrainingRow[]> {
  const started = await startBackends(['webgpu'], (l) => console.log(l));
  if (!started.includes('webgpu')) throw new Error('the training suite needs webgpu');
  await tf.setBackend('webgpu');
  const rows: TrainingRow[] = [];
  for (const [id, make] of ENTRIES) {
    for (const n of opts.ns) {
      const attn = make();
      const x = makeQKV({ batch: 1, heads: 1, kvHeads: 1, n, m: n, d: 64, dv: 64 });
      const fusedMs = await medianMs(() => step(attn, x, 'kernel'), opts.runs);
      const fusedBytes = await intermediateBytes(() => step(attn, x, 'kernel'));
      let compositeMs: number | null = null;
      let compositeBytes: number | null = null;
      let note: string | undefined;
      try {
        compositeMs = await medianMs(() => step(attn, x, 'composite'), opts.runs);
        compositeBytes = await intermediateBytes(() => step(attn, x, 'composite'));
      } catch (e) {
        note = (e as Error).message.slice(0, 120);
      }
      const row: TrainingRow = { id, n, fusedMs, compositeMs, fusedBytes, compositeBytes, ...(note ? { note } : {}) };
      console.log(`training ${id} n=${n}: fused ${fusedMs.toFixed(1)} ms ${mib(fusedBytes)}, composite ${compositeMs?.toFixed(1) ?? '-'} ms ${compositeBytes === null ? '-' : mib(compositeBytes)}${note ? ` (${note})` : ''}`);
      rows.push(row);
      x.dispose();
      attn.dispose();
    }
  }
  return rows;
}

export function trainingTable(rows: TrainingRow[]): string {
  const head = '| entry | n | fused ms | composite ms | composite / fused (time) | fused bytes | composite bytes | composite / fused (bytes) |\n|---|---|---|---|---|---|---|---|';
  const lines = rows.map((r) =>
    `| ${r.id} | ${r.n} | ${r.fusedMs.toFixed(1)} | ${r.compositeMs?.toFixed(1) ?? '–'} | ${r.compositeMs ? (r.compositeMs / r.fusedMs).toFixed(2) + '×' : '–'} | ` +
    `${mib(r.fusedBytes)} | ${r.compositeBytes === null ? '–' : mib(r.compositeBytes)} | ${r.compositeBytes ? (r.compositeBytes / r.fusedBytes).toFixed(1) + '×' : '–'} |`,
  );
  return [head, ...lines].join('\n');
}
