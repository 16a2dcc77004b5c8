/**
 * Float64 references of the kernelized entries, written from DESIGN.md's definitions and
 * independent of the library's code: `o_i = φ(q_i)·Σ_j φ(k_j) v_jᵀ / φ(q_i)·Σ_j φ(k_j)` over
 * allowed j, 0 where the denominator is 0. Computed in log space (log φ, log-sum-exp over
 * features and keys), so FAVOR+ features of large inputs neither overflow nor underflow.
 */
import type { Host4 } from '../reference.js';

/** log φ(x) for one row x (length d): an array of F values (−Infinity where φ = 0). */
export type LogFeatureMap = (x: Float64Array) => Float64Array;

const logsumexp = (xs: ArrayLike<number>): number => {
  let mx = -Infinity;
  for (let i = 0; i < xs.length; i++) if (xs[i] > mx) mx = xs[i];
  if (mx === -Infinity) return -Infinity;
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += Math.exp(xs[i] - mx);
  return mx + Math.log(s);
};

/** elu(x) + 1 and relu, as log-feature maps. */
export const logElu1: LogFeatureMap = (x) => x.map((t) => (t > 0 ? Math.log(t + 1) : t));
export const logRelu: LogFeatureMap = (x) => x.map((t) => (t > 0 ? Math.log(t) : -Infinity));

/**
 * FAVOR+ (DESIGN.md `performer`): x' = x·xscale (xscale = d^(−1/4) by default); softmax kernel
 * φ(x) = exp(x'·ω − ‖x'‖²/2)/√M, relu kernel φ(x) = relu(x'·ω)/√M. `omega` is `[d][M]`.
 */
export function logFavor(omega: number[][], kernel: 'softmax' | 'relu', xscale: number): LogFeatureMap {
  const d = omega.length;
  const M = omega[0].length;
  return (x) => {
    const out = new Float64Array(M);
    let norm = 0;
    for (let t = 0; t < d; t++) norm += (x[t] * xscale) ** 2;
    for (let f = 0; f < M; f++) {
      let dot = 0;
      for (let t = 0; t < d; t++) dot += x[t] * xscale * omega[t][f];
      out[f] = (kernel === 'softmax' ? dot - norm / 2 : dot > 0 ? Math.log(dot) : -Infinity) - 0.5 * Math.log(M);
    }
    return out;
  };
}

/** Kernelized attention with a feature map, query head h reading kv head floor(h / (H / KH)). */
export function referenceKernelized(
  q: Host4,
  k: Host4,
  v: Host4,
  opts: { causal: boolean; keyLength?: number[] | null; phi: LogFeatureMap },
): Host4 {
  const [B, H, n, d] = q.shape;
  const [, KH, m] = k.shape;
  const dv = v.shape[3];
  const G = H / KH;
  const out = new Float64Array(B * H * n * dv);
  const row = (t: Host4, idx: number, len: number) => Float64Array.from(t.data.subarray(idx * len, (idx + 1) * len));
  for (let b = 0; b < B; b++)
    for (let kh = 0; kh < KH; kh++) {
      const lk = Array.from({ length: m }, (_, j) => opts.phi(row(k, (b * KH + kh) * m + j, d)));
      for (let g = 0; g < G; g++) {
        const h = kh * G + g;
        for (let i = 0; i < n; i++) {
          const lq = opts.phi(row(q, (b * H + h) * n + i, d));
          const lw = new Float64Array(m).fill(-Infinity);
          for (let j = 0; j < m; j++) {
            if (opts.keyLength && j >= opts.keyLength[b]) continue;
            if (opts.causal && j > i + (m - n)) continue;
            lw[j] = logsumexp(lq.map((x, f) => x + lk[j][f]));
          }
          const top = Math.max(...lw);
          if (top === -Infinity) continue;
          let den = 0;
          const o = ((b * H + h) * n + i) * dv;
          for (let j = 0; j < m; j++) {
            if (lw[j] === -Infinity) continue;
            const w = Math.exp(lw[j] - top);
            den += w;
            for (let t = 0; t < dv; t++) out[o + t] += w * v.data[((b * KH + kh) * m + j) * dv + t];
          }
          for (let t = 0; t < dv; t++) out[o + t] /= den;
        }
      }
    }
  return { shape: [B, H, n, dv], data: out };
}
