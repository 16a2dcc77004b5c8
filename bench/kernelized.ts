/**
 * `linear`, `performer`, `linformer`, `set-transformer` and `adaptive-span` from n = 1024 to 16384 (batch 1, 1 head,
 * d = dv = 64): median time, intermediate bytes, the error against exact dense softmax attention
 * (same causality; sampled rows, float64) and the error against each entry's own definition
 * (sampled rows, float64, with the variant's own random features / projections / spans), next to
 * fused dense attention at the same n. Fused kernels on webgpu; composites on cpu up to
 * --max-cpu-n.
 *
 * Also exports the float64 sampled-row references of kernelized attention used by the tour.
 */
import * as tf from '@tensorflow/tfjs-core';
import { kernelAvailable } from '../src/core/dispatch.js';
import type { Attention } from '../src/core/types.js';
import { catalogEntry } from '../src/index.js';
import { denseAttention } from '../src/variants/baseline/dense.js';
import { applier, intermediateBytes, makeQKV, medianMs, mib, sampledError, startBackends } from './common.js';
// The float64 feature maps are the conformance suite's (one reference for tests and bench).
import { logElu1, logFavor, type LogFeatureMap as LogFeatures } from '../test/specs/kernelized-reference.js';
import { referenceSetTransformer } from '../test/specs/set-transformer.js';
import { maxAbsDiff, toHost } from '../test/reference.js';

/** `set-transformer` against its float64 definition, with the instance's own inducing points and scale: every output row (the reference is O((n + m)·mi·d)). Used by the suite and the tour. */
export async function setTransformerDefinitionError(attn: Attention<unknown>, x: { q: tf.Tensor4D; k: tf.Tensor4D; v: tf.Tensor4D }, out: tf.Tensor4D): Promise<number> {
  const inducing = (await (attn as unknown as { inducing: tf.Tensor3D }).inducing.array()) as number[][][];
  const scale = (attn.config as { scale?: number }).scale;
  const [q, k, v, o] = await Promise.all([x.q, x.k, x.v, out].map((t) => toHost(t)));
  const [B, H, n, d] = x.q.shape;
  const c = { config: scale === undefined ? { inducing } : { inducing, scale }, batch: B, heads: H, kvHeads: x.k.shape[1], n, m: x.k.shape[2], d, dv: x.v.shape[3], keyLength: null, seed: 0 };
  return maxAbsDiff(o.data, referenceSetTransformer(q, k, v, c).data);
}

/**
 * Max |output − float64 kernelized attention| over `rows` sampled query rows of every (batch,
 * head): `o_i = Σ_j w_ij v_j / Σ_j w_ij`, `w_ij = φ(q_i)·φ(k_j)` (in log space), over j allowed
 * (j <= i + m − n when causal); 0 where the denominator is 0.
 */
export async function sampledKernelizedError(
  out: tf.Tensor4D,
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  phi: LogFeatures,
  causal: boolean,
  rows = 16,
): Promise<number> {
  const [B, H, n, d] = q.shape;
  const [, KH, m] = k.shape;
  const dv = v.shape[3];
  const [qd, kd, vd, od] = await Promise.all([q.data(), k.data(), v.data(), out.data()]);
  const row = (a: ArrayLike<number>, i: number, len: number) => Float64Array.from({ length: len }, (_, t) => a[i * len + t]);
  let worst = 0;
  for (let b = 0; b < B; b++)
    for (let kh = 0; kh < KH; kh++) {
      const lk = Array.from({ length: m }, (_, j) => phi(row(kd, (b * KH + kh) * m + j, d)));
      for (let h = kh * (H / KH); h < (kh + 1) * (H / KH); h++)
        for (let r = 0; r < rows; r++) {
          const i = Math.min(n - 1, Math.floor(((r + 0.5) * n) / rows));
          const lq = phi(row(qd, (b * H + h) * n + i, d));
          const last = causal ? Math.min(m - 1, i + m - n) : m - 1;
          const lw = new Float64Array(Math.max(0, last + 1));
          let top = -Infinity;
          for (let j = 0; j <= last; j++) {
            let mx = -Infinity;
            for (let f = 0; f < lq.length; f++) mx = Math.max(mx, lq[f] + lk[j][f]);
            let s = 0;
            if (mx > -Infinity) for (let f = 0; f < lq.length; f++) s += Math.exp(lq[f] + lk[j][f] - mx);
            lw[j] = mx > -Infinity ? mx + Math.log(s) : -Infinity;
            top = Math.max(top, lw[j]);
          }
          const acc = new Float64Array(dv);
          let den = 0;
          if (top > -Infinity)
            for (let j = 0; j <= last; j++) {
              const w = Math.exp(lw[j] - top);
              den += w;
              for (let t = 0; t < dv; t++) acc[t] += w * vd[((b * KH + kh) * m + j) * dv + t];
            }
          for (let t = 0; t < dv; t++) worst = Math.max(worst, Math.abs(od[((b * H + h) * n + i) * dv + t] - (den > 0 ? acc[t] / den : 0)));
        }
    }
  return worst;
}

/** Adaptive span's soft mask as a reference weight (z = one value per head, clamped to [0, S]). */
export function spanWeight(S: number, R: number, z: number[], causal: boolean, n: number, m: number) {
  return (h: number, i: number, j: number) => {
    const p = i + m - n;
    if (causal && j > p) return 0;
    return Math.min(1, Math.max(0, (R + Math.min(S, Math.max(0, z[h])) - Math.abs(p - j)) / R));
  };
}

/** E[:, :m]·X for one `[k][maxLength]` projection, with tfjs ops (reference side). */
function projectRef(p: number[][], x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const m = x.shape[2];
    const e = tf.tensor2d(p.map((r) => r.slice(0, m)));
    return tf.matMul(tf.reshape(e, [1, 1, p.length, m]), x) as tf.Tensor4D;
  });
}

/** One entry of the suite (its factory comes from the catalog: `catalogEntry(id).load()`). */
interface Entry {
  id: string;
  label: string;
  causal: boolean;
  config(n: number): Record<string, unknown>;
  /** Error against the entry's own definition. */
  own(attn: Attention<unknown>, x: { q: tf.Tensor4D; k: tf.Tensor4D; v: tf.Tensor4D }, out: tf.Tensor4D): Promise<number>;
}

const S = 256;
const R = 32;
export const KERNELIZED_ENTRIES: Entry[] = [
  {
    id: 'linear',
    label: 'linear (elu+1, causal)',
    causal: true,
    config: () => ({ causal: true }),
    own: (_a, x, out) => sampledKernelizedError(out, x.q, x.k, x.v, logElu1, true),
  },
  {
    id: 'performer',
    label: 'performer (softmax, M = 256, causal)',
    causal: true,
    config: () => ({ features: 256, causal: true }),
    own: async (a, x, out) => {
      const w = (a as unknown as { omegaFor(d: number): tf.Tensor2D }).omegaFor(x.q.shape[3]);
      const omega = (await w.array()) as number[][];
      w.dispose();
      return sampledKernelizedError(out, x.q, x.k, x.v, logFavor(omega, 'softmax', Math.pow(x.q.shape[3], -0.25)), true);
    },
  },
  {
    id: 'linformer',
    label: 'linformer (k = 256)',
    causal: false,
    config: (n) => ({ k: 256, maxLength: n }),
    own: async (a, x, out) => {
      const p = (a as unknown as { projections(): { e: tf.Tensor2D; f: tf.Tensor2D } }).projections();
      const [e, f] = (await Promise.all([p.e.array(), p.f.array()])) as number[][][];
      p.e.dispose();
      p.f.dispose();
      const kp = projectRef(e, x.k);
      const vp = projectRef(f, x.v);
      try {
        return await sampledError(out, x.q, kp, vp, 1 / Math.sqrt(x.q.shape[3]), () => 1);
      } finally {
        kp.dispose();
        vp.dispose();
      }
    },
  },
  { id: 'set-transformer', label: 'set-transformer (mi = 32)', causal: false, config: () => ({ inducingPoints: 32, heads: 1, headDim: 64 }), own: (a, x, out) => setTransformerDefinitionError(a, x, out) },
  {
    id: 'adaptive-span',
    label: `adaptive-span (S = ${S}, R = ${R}, z = S/2, causal)`,
    causal: true,
    config: () => ({ maxSpan: S, ramp: R, heads: 1, causal: true }),
    own: (_a, x, out) => {
      const [, , n] = x.q.shape;
      const m = x.k.shape[2];
      return sampledError(out, x.q, x.k, x.v, 1 / Math.sqrt(x.q.shape[3]), spanWeight(S, R, [S / 2], true, n, m));
    },
  },
];

export interface KernelizedRow {
  backend: string;
  id: string;
  label: string;
  n: number;
  path: 'kernel' | 'composite';
  ms: number | null;
  bytes: number | null;
  /** Max error vs exact dense softmax attention (same causality), sampled rows. */
  errDense: number | null;
  /** Max error vs the entry's own definition, sampled rows. */
  errOwn: number | null;
  denseMs: number | null;
  note: string;
}

export async function benchKernelized(
  opts: { ns: number[]; runs: number; maxCpuN: number; backends: string[]; only: string[] | null },
  log = console.log,
): Promise<KernelizedRow[]> {
  const rows: KernelizedRow[] = [];
  const available = await startBackends(opts.backends, log);
  const entries = KERNELIZED_ENTRIES.filter((e) => !opts.only || opts.only.includes(e.id));
  for (const backend of available) {
    await tf.setBackend(backend);
    const path = kernelAvailable() ? 'kernel' : 'composite';
    for (const n of opts.ns) {
      if (path === 'composite' && n > opts.maxCpuN) {
        log(`  ${backend} n=${n}: not run (past --max-cpu-n ${opts.maxCpuN})`);
        continue;
      }
      const x = makeQKV({ batch: 1, heads: 1, kvHeads: 1, n, m: n, d: 64, dv: 64 });
      const denseMs: Record<string, number | null> = {};
      for (const causal of [false, true]) {
        try {
          denseMs[String(causal)] = await medianMs(applier(denseAttention({ causal }), x, 'auto'), opts.runs);
        } catch {
          denseMs[String(causal)] = null;
        }
      }
      for (const e of entries) {
        const row: KernelizedRow = { backend, id: e.id, label: e.label, n, path, ms: null, bytes: null, errDense: null, errOwn: null, denseMs: denseMs[String(e.causal)], note: '' };
        const factory = await catalogEntry(e.id)!.load();
        const attn = factory(e.config(n) as never);
        try {
          const run = applier(attn, x, 'auto');
          row.ms = await medianMs(run, opts.runs);
          row.bytes = await intermediateBytes(run);
          const out = run();
          const scale = 1 / Math.sqrt(64);
          row.errDense = await sampledError(out, x.q, x.k, x.v, scale, (_h, i, j) => (e.causal && j > i ? 0 : 1));
          row.errOwn = await e.own(attn, x, out);
          out.dispose();
        } catch (err) {
          row.note = `failed: ${(err as Error).message}`;
        } finally {
          attn.dispose();
        }
        rows.push(row);
        const f = (v: number | null) => (v === null ? '—' : v.toFixed(1));
        log(`  ${backend} ${e.id} n=${n}: ${f(row.ms)} ms (dense ${f(row.denseMs)} ms), ${row.bytes === null ? '—' : mib(row.bytes)}, err vs dense ${row.errDense?.toExponential(2)}, vs own ${row.errOwn?.toExponential(2)} ${row.note}`);
      }
      x.dispose();
    }
  }
  return rows;
}

export function kernelizedTable(rows: KernelizedRow[]): string {
  const f = (v: number | null) => (v === null ? '—' : v.toFixed(1));
  const e = (v: number | null) => (v === null ? '—' : v.toExponential(2));
  return [
    '| backend | variant | n | path | ms | dense ms | intermediate | max err vs dense | max err vs own definition | note |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.backend} | ${r.label} | ${r.n} | ${r.path} | ${f(r.ms)} | ${f(r.denseMs)} | ${r.bytes === null ? '—' : mib(r.bytes)} | ${e(r.errDense)} | ${e(r.errOwn)} | ${r.note} |`),
  ].join('\n');
}
