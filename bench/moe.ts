/**
 * `npm run bench -- --suites moe`: the mixture-of-experts module.
 *
 * 1. Time per token of `moeLayer` (k = 2, C = 1.25, d = 128, hidden 256) against a dense FFN with
 *    the same active parameters per token (hidden k·256 = 512), at E = 8 and 32, for each T and
 *    backend, in the same run; with the parts of an MoE call measured alone: the router
 *    (`route`), the experts' batched FFN on a `[E, capacity, d]` buffer, and what is left
 *    (dispatch and combine: the gathers and the scatter of the slot table).
 * 2. The seed's claim (V-MoE's batch-priority routing): at C = 0.25, 0.5, 1, 1.25, the fraction of
 *    tokens dropped (all k choices over capacity), of choices dropped, and of router probability
 *    mass kept (Σ p of kept choices / Σ p of all choices), natural vs batch-priority routing.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/core/backend.js';
import { SeededRandom } from '../src/core/rng.js';
import { moeLayer, topKRouter } from '../src/moe/index.js';
import { expertFFN, paramsOf } from '../src/moe/layer.js';
import { medianMs } from './common.js';

export interface MoETimeRow {
  backend: string;
  experts: number;
  T: number;
  capacity: number;
  moeMs: number;
  routeMs: number;
  expertsMs: number;
  denseMs: number;
  note: string;
}

export interface MoEDropRow {
  experts: number;
  k: number;
  capacityFactor: number;
  policy: 'natural' | 'batch-priority';
  tokensDropped: number;
  choicesDropped: number;
  massKept: number;
}

const D = 128;
const HIDDEN = 256;
const K = 2;
const C = 1.25;

/** A dense FFN d → hidden → d (relu), the baseline with the MoE's active parameters per token. */
function denseFFN(x: tf.Tensor2D, w1: tf.Tensor2D, w2: tf.Tensor2D): tf.Tensor {
  return tf.tidy(() => tf.matMul(tf.relu(tf.matMul(x, w1)), w2));
}

export async function benchMoETime(opts: { ns: number[]; runs: number; maxCpuN: number; backends: string[]; experts: number[] }): Promise<MoETimeRow[]> {
  const rows: MoETimeRow[] = [];
  for (const backend of opts.backends) {
    try {
      await initBackend(backend as 'webgpu' | 'wasm' | 'cpu');
    } catch (e) {
      console.log(`moe: ${backend} not available (${(e as Error).message})`);
      continue;
    }
    const w1 = tf.randomNormal([D, K * HIDDEN], 0, 1 / Math.sqrt(D), 'float32', 1) as tf.Tensor2D;
    const w2 = tf.randomNormal([K * HIDDEN, D], 0, 1 / Math.sqrt(K * HIDDEN), 'float32', 2) as tf.Tensor2D;
    for (const E of opts.experts) {
      const moe = moeLayer({ experts: E, k: K, capacityFactor: C, dim: D, hidden: HIDDEN, seed: 3 });
      const router = topKRouter({ experts: E, k: K, capacityFactor: C, dim: D, seed: 3 });
      for (const T of opts.ns) {
        if (backend !== 'webgpu' && T > opts.maxCpuN) continue;
        const x = tf.randomNormal([T, D], 0, 1, 'float32', 4) as tf.Tensor2D;
        const capacity = Math.ceil((K * C * T) / E - 1e-9);
        const X = tf.randomNormal([E, capacity, D], 0, 1, 'float32', 5) as tf.Tensor3D;
        const params = paramsOf(moe.shape, moe.weights);
        const moeMs = await medianMs(() => moe.apply(x), opts.runs);
        const routeMs = await medianMs(() => {
          const r = router.route(x);
          tf.dispose([r.expert, r.gate, r.load, r.auxLoss, r.zLoss]);
          return r.slot;
        }, opts.runs);
        // The experts exactly as moeLayer runs them (src/moe/layer.ts expertFFN).
        const expertsMs = await medianMs(() => tf.tidy(() => expertFFN(X, params, moe.shape)), opts.runs);
        const denseMs = await medianMs(() => denseFFN(x, w1, w2), opts.runs);
        rows.push({ backend, experts: E, T, capacity, moeMs, routeMs, expertsMs, denseMs, note: '' });
        console.log(`moe ${backend} E=${E} T=${T}: moe ${moeMs.toFixed(1)} ms (route ${routeMs.toFixed(1)}, experts ${expertsMs.toFixed(1)}), dense FFN ${denseMs.toFixed(1)} ms`);
        tf.dispose([x, X]);
      }
      moe.dispose();
      router.dispose();
    }
    tf.dispose([w1, w2]);
  }
  return rows;
}

/** Drop statistics on the host (routing decisions are the same on every backend; see test/moe.test.ts). */
export async function benchMoEDrops(opts: { T: number; experts: number; seeds: number }): Promise<MoEDropRow[]> {
  await initBackend('cpu');
  const rows: MoEDropRow[] = [];
  const d = 64;
  for (const k of [1, 2])
    for (const capacityFactor of [0.25, 0.5, 1, 1.25])
      for (const policy of ['natural', 'batch-priority'] as const) {
        let tokensDropped = 0;
        let choicesDropped = 0;
        let massKept = 0;
        for (let s = 0; s < opts.seeds; s++) {
          // A confident router (logits of standard deviation ≈ 2, as after training) on Gaussian tokens.
          const rng = new SeededRandom(100 + s);
          const weights = tf.tensor2d(rng.normals(d * opts.experts).map((v) => (v * 2) / Math.sqrt(d)), [d, opts.experts]);
          const x = tf.tensor2d(rng.normals(opts.T * d), [opts.T, d]);
          const router = topKRouter({ experts: opts.experts, k, capacityFactor, policy, weights, normalize: false });
          const r = router.route(x);
          const slot = (await r.slot.array()) as number[][];
          // Ungated probabilities: with normalize false, gate = p of the choice when kept; p of every choice from the logits.
          const p = tf.tidy(() => tf.softmax(tf.matMul(x, weights)));
          const top = tf.topk(p, k);
          const probs = (await top.values.array()) as number[][];
          let all = 0;
          let kept = 0;
          let dropped = 0;
          let droppedTokens = 0;
          for (let t = 0; t < opts.T; t++) {
            let any = false;
            for (let q = 0; q < k; q++) {
              all += probs[t][q];
              if (slot[t][q] >= 0) {
                kept += probs[t][q];
                any = true;
              } else dropped++;
            }
            if (!any) droppedTokens++;
          }
          tokensDropped += droppedTokens / opts.T;
          choicesDropped += dropped / (opts.T * k);
          massKept += kept / all;
          tf.dispose([r.expert, r.slot, r.gate, r.load, r.auxLoss, r.zLoss, p, top.values, top.indices, x, weights]);
          router.dispose();
        }
        rows.push({ experts: opts.experts, k, capacityFactor, policy, tokensDropped: tokensDropped / opts.seeds, choicesDropped: choicesDropped / opts.seeds, massKept: massKept / opts.seeds });
      }
  return rows;
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

export function moeTimeTable(rows: MoETimeRow[]): string {
  const head = '| backend | E | T | capacity | MoE ms | µs/token | dense FFN ms | µs/token | MoE / dense | route ms | experts ms | dispatch + combine ms (rest) |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n';
  return (
    head +
    rows
      .map((r) => {
        const rest = Math.max(0, r.moeMs - r.routeMs - r.expertsMs);
        return `| ${r.backend} | ${r.experts} | ${r.T} | ${r.capacity} | ${r.moeMs.toFixed(1)} | ${((1000 * r.moeMs) / r.T).toFixed(2)} | ${r.denseMs.toFixed(1)} | ${((1000 * r.denseMs) / r.T).toFixed(2)} | ${(r.moeMs / r.denseMs).toFixed(2)}× | ${r.routeMs.toFixed(1)} | ${r.expertsMs.toFixed(1)} | ${rest.toFixed(1)} |`;
      })
      .join('\n')
  );
}

export function moeDropTable(rows: MoEDropRow[]): string {
  const head = '| E | k | C | policy | tokens dropped | choices dropped | router mass kept |\n|---|---|---|---|---|---|---|\n';
  return head + rows.map((r) => `| ${r.experts} | ${r.k} | ${r.capacityFactor} | ${r.policy} | ${pct(r.tokensDropped)} | ${pct(r.choicesDropped)} | ${pct(r.massKept)} |`).join('\n');
}
