/**
 * Shared pieces of the tour and the benchmarks: problem set-up, median timing, intermediate
 * bytes, and a float64 error estimate on sampled query rows.
 */
import * as tf from '@tensorflow/tfjs-core';
import { backendReport, initBackend, type BackendName } from '../src/core/backend.js';
import { measureIntermediateBytes } from '../src/core/measure.js';
import type { Attention, Implementation } from '../src/core/types.js';

export interface Problem {
  batch: number;
  heads: number;
  kvHeads: number;
  n: number;
  m: number;
  d: number;
  dv: number;
}

/** Random q, k, v on the active backend (seeded, uniform in [-1, 1]). */
export function makeQKV(p: Problem, seed = 1) {
  const make = (shape: number[], s: number) => tf.tidy(() => tf.add(tf.randomUniform(shape, -1, 1, 'float32', s), 0) as tf.Tensor4D);
  const q = make([p.batch, p.heads, p.n, p.d], seed);
  const k = make([p.batch, p.kvHeads, p.m, p.d], seed + 1);
  const v = make([p.batch, p.kvHeads, p.m, p.dv], seed + 2);
  return { q, k, v, dispose: () => [q, k, v].forEach((t) => t.dispose()) };
}

/** Median wall time (ms) of `runs` calls after one warm-up, each awaited to completion on the device. */
export async function medianMs(fn: () => tf.Tensor, runs: number): Promise<number> {
  const warm = fn();
  await warm.data();
  warm.dispose();
  const times: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    const out = fn();
    await out.data();
    times.push(performance.now() - t0);
    out.dispose();
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

/** Intermediate bytes of one call (see src/core/measure.ts). */
export async function intermediateBytes(fn: () => tf.Tensor): Promise<number> {
  const r = await measureIntermediateBytes(fn);
  await r.result.data();
  r.result.dispose();
  return r.bytes;
}

/**
 * Max |output − float64 reference| over `rows` sampled query rows of every (batch, head).
 * `weight(h, i, j)` is the reference's allowed set (1 allowed, 0 not, or a soft weight).
 */
export async function sampledError(
  out: tf.Tensor4D,
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  scale: number,
  weight: (h: number, i: number, j: number) => number,
  rows = 16,
): Promise<number> {
  const [B, H, n, d] = q.shape;
  const [, KH, m] = k.shape;
  const dv = v.shape[3];
  const [qd, kd, vd, od] = await Promise.all([q.data(), k.data(), v.data(), out.data()]);
  let worst = 0;
  const s = new Float64Array(m);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const kh = Math.floor(h / (H / KH));
      for (let r = 0; r < rows; r++) {
        const i = Math.min(n - 1, Math.floor(((r + 0.5) * n) / rows));
        let mx = -Infinity;
        for (let j = 0; j < m; j++) {
          if (weight(h, i, j) <= 0) {
            s[j] = -Infinity;
            continue;
          }
          let dot = 0;
          for (let t = 0; t < d; t++) dot += qd[((b * H + h) * n + i) * d + t] * kd[((b * KH + kh) * m + j) * d + t];
          s[j] = scale * dot;
          mx = Math.max(mx, s[j]);
        }
        const acc = new Float64Array(dv);
        let den = 0;
        if (mx > -Infinity)
          for (let j = 0; j < m; j++) {
            if (s[j] === -Infinity) continue;
            const w = weight(h, i, j) * Math.exp(s[j] - mx);
            den += w;
            for (let t = 0; t < dv; t++) acc[t] += w * vd[((b * KH + kh) * m + j) * dv + t];
          }
        for (let t = 0; t < dv; t++) {
          const want = den > 0 ? acc[t] / den : 0;
          worst = Math.max(worst, Math.abs(od[((b * H + h) * n + i) * dv + t] - want));
        }
      }
    }
  return worst;
}

/** Runs `attn.apply` with an implementation. */
export function applier(attn: Attention<unknown>, x: { q: tf.Tensor4D; k: tf.Tensor4D; v: tf.Tensor4D }, implementation: Implementation) {
  return () => attn.apply(x.q, x.k, x.v, { implementation });
}

/** Formats bytes as MiB with two decimals. */
export const mib = (b: number) => `${(b / 2 ** 20).toFixed(2)} MiB`;

/** Parses `--key value` / `--key=value` arguments. */
export function args(): Record<string, string> {
  const out: Record<string, string> = {};
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i++) {
    const m = /^--([^=]+)(?:=(.*))?$/.exec(a[i]);
    if (!m) continue;
    out[m[1]] = m[2] ?? (a[i + 1] && !a[i + 1].startsWith('--') ? a[++i] : 'true');
  }
  return out;
}

/** Starts each named backend that this machine has, logging what each is (or why it is absent); returns those started. */
export async function startBackends(names: string[], log: (line: string) => void): Promise<string[]> {
  const available: string[] = [];
  for (const b of names) {
    try {
      await initBackend(b as BackendName);
      available.push(b);
      log(`backend ${b}: ${backendReport()!.detail}`);
    } catch (e) {
      log(`backend ${b}: not present (${(e as Error).message})`);
    }
  }
  return available;
}
