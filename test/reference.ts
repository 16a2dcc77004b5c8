/**
 * Float64 references written from DESIGN.md's definitions, independent of the library's code.
 * Arrays are plain row-major Float64Arrays.
 */
import * as tf from '@tensorflow/tfjs-core';

/** A host copy of a 4-D tensor in float64. */
export interface Host4 {
  shape: [number, number, number, number];
  data: Float64Array;
}

export async function toHost(t: tf.Tensor): Promise<Host4> {
  return { shape: t.shape as unknown as Host4["shape"], data: Float64Array.from(await t.data()) };
}

/** A deterministic float32 tensor from a seed (values in [-amp, amp]), created on the active backend. */
export function seededTensor(shape: number[], seed: number, amp = 1): tf.Tensor4D {
  let s = seed >>> 0 || 1;
  const size = shape.reduce((a, b) => a * b, 1);
  const vals = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    vals[i] = ((s / 4294967296) * 2 - 1) * amp;
  }
  const t: tf.Tensor = tf.tensor(vals, shape, 'float32');
  return t as tf.Tensor4D;
}

/**
 * Generic softmax attention with a per-pair weight: `o_i = Σ_j w_ij e^{s q_i·k_j} v_j / Σ_j w_ij e^{s q_i·k_j}`,
 * weight 0 = not allowed; a row with no allowed key is 0. Query head h reads kv head floor(h / (H / KH)).
 */
export function referenceWeighted(
  q: Host4,
  k: Host4,
  v: Host4,
  scale: number,
  weight: (b: number, h: number, i: number, j: number) => number,
): Host4 {
  const [B, H, n, d] = q.shape;
  const [, KH, m] = k.shape;
  const dv = v.shape[3];
  const G = H / KH;
  const out = new Float64Array(B * H * n * dv);
  const s = new Float64Array(m);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const kh = Math.floor(h / G);
      for (let i = 0; i < n; i++) {
        let mx = -Infinity;
        const qo = ((b * H + h) * n + i) * d;
        for (let j = 0; j < m; j++) {
          if (weight(b, h, i, j) <= 0) {
            s[j] = -Infinity;
            continue;
          }
          const ko = ((b * KH + kh) * m + j) * d;
          let dot = 0;
          for (let t = 0; t < d; t++) dot += q.data[qo + t] * k.data[ko + t];
          s[j] = scale * dot;
          mx = Math.max(mx, s[j]);
        }
        const oo = ((b * H + h) * n + i) * dv;
        if (mx === -Infinity) continue;
        let den = 0;
        for (let j = 0; j < m; j++) {
          if (s[j] === -Infinity) continue;
          const w = weight(b, h, i, j) * Math.exp(s[j] - mx);
          den += w;
          const vo = ((b * KH + kh) * m + j) * dv;
          for (let t = 0; t < dv; t++) out[oo + t] += w * v.data[vo + t];
        }
        for (let t = 0; t < dv; t++) out[oo + t] /= den;
      }
    }
  return { shape: [B, H, n, dv], data: out };
}

/** DESIGN.md `dense`: all j < keyLength[b] (and j <= p_i = i + m − n if causal). */
export function referenceDense(q: Host4, k: Host4, v: Host4, opts: { causal: boolean; scale?: number; keyLength?: number[] | null }): Host4 {
  const n = q.shape[2];
  const m = k.shape[2];
  const scale = opts.scale ?? 1 / Math.sqrt(q.shape[3]);
  return referenceWeighted(q, k, v, scale, (b, _h, i, j) => {
    if (opts.keyLength && j >= opts.keyLength[b]) return 0;
    if (opts.causal && j > i + (m - n)) return 0;
    return 1;
  });
}

/** Max |a − b| and max |b| over two arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let mx = 0;
  for (let i = 0; i < a.length; i++) {
    const diff = Math.abs(a[i] - b[i]);
    if (!(diff <= mx)) mx = Number.isNaN(diff) ? Infinity : diff;
  }
  return mx;
}
