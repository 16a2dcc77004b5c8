/**
 * The composite twin of the fused linear-attention kernel, from tfjs ops: runs on every backend,
 * is the kernel's test oracle, and carries the incremental decode path of `linear` and
 * `performer`.
 *
 * A *state* holds, per (batch, kv head), `S = Σ_j φ(k_j) v_jᵀ` (F × dv) and `z = Σ_j φ(k_j)` over
 * the keys absorbed so far (for the softmax kernel at the per-feature scale `exp(−R_f)`, R the
 * running max of the key exponents, see `isExpKind`): O(F·dv), whatever the sequence length.
 *
 * - Non-causal: absorb every real key into one state, then read it with every query.
 * - Causal: chunks of C positions, in order: each chunk's queries read the state of the chunks
 *   before it plus the small causal C × C part of their own chunk, then the chunk is absorbed.
 *   One state is carried from chunk to chunk (never an n × F × dv tensor); memory is O(n·F)
 *   for the features plus O(C·(C + F) + F·dv) per chunk.
 *
 * Grouped heads: queries are reshaped to `[batch, kvHeads, group·rows, F]`, so a state is built
 * once per kv head and K/V are never repeated.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { matMulBT } from '../shared/matmul.js';
import type { Dims } from '../../src/core/types.js';
import { NO_KEY, type FeatureOps } from './feature_maps.js';
import { finiteKV } from '../shared/finite.js';
import { divOrZero } from '../shared/masking.js';
import { constantOf } from '../../src/core/grad.js';

/** Positions per chunk of the causal composite. */
export const COMPOSITE_CHUNK = 64;

/** A linear-attention state: `s [batch, kvHeads, F, dv]`, `z [batch, kvHeads, 1, F]`, and for the softmax kernel `r [batch, kvHeads, 1, F]` (running max of key exponents). */
export interface LinearState {
  s: tf.Tensor4D;
  z: tf.Tensor4D;
  r: tf.Tensor4D | null;
}

/** Frees a state's tensors. */
export function disposeState(st: LinearState): void {
  st.s.dispose();
  st.z.dispose();
  st.r?.dispose();
}

/** The state of no keys. */
export function emptyState(batch: number, kvHeads: number, features: number, dv: number, exp: boolean): LinearState {
  return {
    s: tf.zeros([batch, kvHeads, features, dv]) as tf.Tensor4D,
    z: tf.zeros([batch, kvHeads, 1, features]) as tf.Tensor4D,
    r: exp ? (tf.fill([batch, kvHeads, 1, features], NO_KEY) as tf.Tensor4D) : null,
  };
}

/**
 * The state after absorbing keys with features `fk [B, KH, c, F]` (exponents for the softmax
 * kernel), values `v [B, KH, c, dv]` and validity `kvalid [B, 1, c, 1]` (1 real, 0 padding; null:
 * all real). Inputs are not disposed.
 */
export function absorb(st: LinearState, fk: tf.Tensor, v: tf.Tensor, kvalid: tf.Tensor | null, exp: boolean): LinearState {
  const [s, z, r] = tf.tidy(() => {
    if (!exp) {
      const psi = kvalid ? tf.mul(fk, kvalid) : fk;
      return [tf.add(st.s, tf.matMul(psi as tf.Tensor4D, v as tf.Tensor4D, true, false)), tf.add(st.z, tf.sum(psi, 2, true))];
    }
    const lv = kvalid ? tf.add(fk, tf.mul(tf.sub(kvalid, 1), -NO_KEY)) : fk;
    // Running maxima only shift exponents that the output divides out: constants of the gradient.
    const rNew = constantOf([st.r!, lv], (r, l) => tf.maximum(r, tf.max(l, 2, true)));
    let psi = tf.exp(tf.sub(lv, rNew));
    if (kvalid) psi = tf.mul(psi, kvalid);
    const scale = tf.exp(tf.sub(st.r!, rNew)); // [B, KH, 1, F]
    return [
      tf.add(tf.mul(st.s, tf.transpose(scale, [0, 1, 3, 2])), tf.matMul(psi as tf.Tensor4D, v as tf.Tensor4D, true, false)),
      tf.add(tf.mul(st.z, scale), tf.sum(psi, 2, true)),
      rNew,
    ];
  }) as tf.Tensor4D[];
  return { s, z, r: r ?? null };
}

/** Numerator `[B, KH, rows, dv]` and denominator `[B, KH, rows, 1]` of queries `fq [B, KH, rows, F]` reading a state. */
function readState(fq: tf.Tensor, st: LinearState, exp: boolean, bound: tf.Tensor | null = null): { num: tf.Tensor; den: tf.Tensor } {
  if (!exp) return { num: tf.matMul(fq as tf.Tensor4D, st.s), den: tf.sum(tf.mul(fq, st.z), -1, true) };
  const e = tf.add(fq, st.r!);
  const a = bound ?? constantOf([e], (x) => tf.max(x, -1, true));
  const w = tf.exp(tf.sub(e, a));
  return { num: tf.matMul(w as tf.Tensor4D, st.s), den: tf.sum(tf.mul(w, st.z), -1, true) };
}

/** `[G·c, c]` 0/1: row g·c + i may see column j iff j <= i. */
function causalMask(group: number, c: number): tf.Tensor2D {
  const mask = new Float32Array(group * c * c);
  for (let g = 0; g < group; g++) for (let i = 0; i < c; i++) mask.fill(1, (g * c + i) * c, (g * c + i) * c + i + 1);
  return tf.tensor2d(mask, [group * c, c]);
}

/**
 * Causal chunks over aligned positions: query row r of `fq [B, KH, G, c, F]` sits at the same
 * position as key r of `fk [B, KH, c, F]`. Starting from `initial` (not disposed), returns the
 * outputs `[B, KH, G, c, dv]` and the final state (new tensors).
 */
export function causalChunks(
  fq: tf.Tensor,
  fk: tf.Tensor,
  v: tf.Tensor,
  kvalid: tf.Tensor | null,
  initial: LinearState,
  exp: boolean,
  chunk = COMPOSITE_CHUNK,
): { out: tf.Tensor; state: LinearState } {
  const [batch, kvHeads, group, len, features] = fq.shape as [number, number, number, number, number];
  const dv = v.shape[3] as number;
  const outs: tf.Tensor[] = [];
  let st = initial;
  // The chunks, cut once by a split (its gradient is one concat; a slice per chunk would give a
  // full-size pad per chunk in the backward pass: O(n²/c) bytes). Rank 4: webgpu's rank-5 pad
  // (the gradient of a rank-5 slice) does not compile.
  const sizes: number[] = [];
  for (let a = 0; a < len; a += chunk) sizes.push(Math.min(chunk, len - a));
  const cut = (x: tf.Tensor): tf.Tensor[] => (sizes.length === 1 ? [x] : tf.split(x, sizes, 2));
  const fqs = cut(tf.reshape(fq, [batch * kvHeads, group, len, features]));
  const fks = cut(fk);
  const vs = cut(v);
  const kvs = kvalid ? cut(kvalid) : null;
  for (let ci = 0; ci < sizes.length; ci++) {
    const c = sizes[ci];
    const [out, ...next] = tf.tidy(() => {
      const fqc = tf.reshape(fqs[ci], [batch, kvHeads, group * c, features]);
      const fkc = fks[ci];
      const vc = vs[ci];
      const kv = kvs ? kvs[ci] : null;
      // allowed[row = g·c + i, j] = (j <= i) and key j real: [1 or B, 1, G·c, c]
      let allowed: tf.Tensor = causalMask(group, c);
      if (kv) allowed = tf.mul(allowed, tf.reshape(kv, [batch, 1, 1, c]));
      let num: tf.Tensor;
      let den: tf.Tensor;
      if (!exp) {
        const r = readState(fqc, st, false);
        const psi = kv ? tf.mul(fkc, kv) : fkc;
        const wIntra = tf.mul(matMulBT(fqc as tf.Tensor4D, psi as tf.Tensor4D), allowed);
        num = tf.add(r.num, tf.matMul(wIntra as tf.Tensor4D, vc as tf.Tensor4D));
        den = tf.add(r.den, tf.sum(wIntra, -1, true));
      } else {
        // Intra-chunk pair terms in log space: ℓ_ij = log Σ_f exp(qw_if + L_jf), from row-max-shifted
        // factors (each at most 1), so the bound A_i can include exactly the keys row i may see.
        const alpha = constantOf([fqc], (x) => tf.max(x, -1, true));
        const lambda = constantOf([fkc], (x) => tf.max(x, -1, true));
        const mm = matMulBT(tf.exp(tf.sub(fqc, alpha)) as tf.Tensor4D, tf.exp(tf.sub(fkc, lambda)) as tf.Tensor4D);
        const ell = tf.add(tf.add(tf.log(mm), alpha), tf.transpose(lambda, [0, 1, 3, 2]));
        const ellMasked = tf.add(ell, tf.mul(tf.sub(allowed, 1), -NO_KEY));
        const bound = constantOf([fqc, st.r!, ellMasked], (f, r, l) => tf.maximum(tf.max(tf.add(f, r), -1, true), tf.max(l, -1, true)));
        const r = readState(fqc, st, true, bound);
        const wIntra = tf.mul(tf.exp(tf.sub(ellMasked, bound)), allowed);
        num = tf.add(r.num, tf.matMul(wIntra as tf.Tensor4D, vc as tf.Tensor4D));
        den = tf.add(r.den, tf.sum(wIntra, -1, true));
      }
      const out = tf.reshape(divOrZero(num, den), [batch, kvHeads, group, c, dv]);
      const s2 = absorb(st, fkc, vc, kv, exp);
      return [out, s2.s, s2.z, ...(s2.r ? [s2.r] : [])];
    }) as tf.Tensor[];
    if (st !== initial) disposeState(st);
    st = { s: next[0] as tf.Tensor4D, z: next[1] as tf.Tensor4D, r: (next[2] as tf.Tensor4D | undefined) ?? null };
    outs.push(out);
    if (sizes.length > 1) [fqs[ci], fks[ci], vs[ci], ...(kvs ? [kvs[ci]] : [])].forEach((t) => t.dispose());
  }
  if (sizes.length === 1) fqs[0].dispose(); // the rank-4 view of fq
  const out = outs.length === 1 ? outs[0] : tf.concat(outs, 3);
  if (outs.length > 1) outs.forEach((t) => t.dispose());
  if (st === initial) st = { s: tf.clone(initial.s), z: tf.clone(initial.z), r: initial.r ? tf.clone(initial.r) : null };
  return { out, state: st };
}

/** 0/1 key validity `[batch, 1, m, 1]` from keyLength, or null when every key is real. */
export function keyValidity(dims: Dims, keyLength: number[] | tf.Tensor1D | null): tf.Tensor | null {
  const { batch, m } = dims;
  if (keyLength === null || (!(keyLength instanceof tf.Tensor) && keyLength.every((l) => l >= m))) return null;
  return tf.tidy(() => {
    const kl = tf.reshape(keyLength instanceof tf.Tensor ? keyLength : tf.tensor1d(keyLength, 'int32'), [batch, 1, 1, 1]);
    return tf.cast(tf.less(tf.reshape(tf.range(0, m, 1, 'int32'), [1, 1, m, 1]), kl), 'float32');
  });
}

/**
 * Linear attention from tfjs ops (see the module comment).
 *
 * @param q - `[batch, heads, n, d]`
 * @param k - `[batch, kvHeads, m, d]`
 * @param v - `[batch, kvHeads, m, dv]`
 * @returns `[batch, heads, n, dv]`
 */
export function linearComposite(
  q: tf.Tensor4D,
  kIn: tf.Tensor4D,
  vIn: tf.Tensor4D,
  dims: Dims,
  ops: FeatureOps,
  causal: boolean,
  keyLength: number[] | tf.Tensor1D | null,
): tf.Tensor4D {
  // On finite copies of K and V (the masks below are then safe products); queries that see a key
  // with a non-finite entry are marked NaN at the end, every other query is exact.
  const { k, v, poison } = finiteKV(kIn, vIn) as { k: tf.Tensor4D; v: tf.Tensor4D; poison: tf.Tensor };
  try {
    const out = linearOnFinite(q, k, v, dims, ops, causal, keyLength);
    const marked = markPoisoned(out, poison, dims, causal, keyLength);
    out.dispose();
    return marked;
  } finally {
    k.dispose();
    v.dispose();
    poison.dispose();
  }
}

/**
 * `o [batch, heads, n, dv]` with NaN in the queries that see a key with a non-finite entry:
 * every real poisoned key (non-causal), or those at positions `j <= p_i` (causal).
 */
function markPoisoned(o: tf.Tensor4D, poison: tf.Tensor, dims: Dims, causal: boolean, keyLength: number[] | tf.Tensor1D | null): tf.Tensor4D {
  const { batch, heads, kvHeads, group, n, m, dv } = dims;
  return tf.tidy(() => {
    const kvalid = keyValidity(dims, keyLength);
    const real = kvalid ? tf.mul(poison, kvalid) : poison; // [B, KH, m, 1], 0/1
    let seen: tf.Tensor; // [B·KH, 1, n | 1, 1]
    if (!causal) {
      seen = tf.reshape(tf.sum(real, 2), [batch * kvHeads, 1, 1, 1]);
    } else {
      const cum = tf.cumsum(real, 2);
      const pos = Array.from({ length: n }, (_, i) => i + m - n);
      const at = tf.gather(cum, tf.tensor1d(pos.map((p) => Math.max(p, 0)), 'int32'), 2); // [B, KH, n, 1]
      const before = tf.tensor(pos.map((p) => (p >= 0 ? 1 : 0)), [1, 1, n, 1]); // queries before position 0 see nothing
      seen = tf.reshape(tf.mul(at, before), [batch * kvHeads, 1, n, 1]);
    }
    const mark = constantOf([seen], (x) => tf.where(tf.greater(x, 0), tf.fill(x.shape, Number.NaN), tf.zerosLike(x)));
    return tf.reshape(tf.add(tf.reshape(o, [batch * kvHeads, group, n, dv]), mark), [batch, heads, n, dv]) as tf.Tensor4D;
  });
}

function linearOnFinite(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  dims: Dims,
  ops: FeatureOps,
  causal: boolean,
  keyLength: number[] | tf.Tensor1D | null,
): tf.Tensor4D {
  const { batch, heads, kvHeads, group, n, m, d, dv } = dims;
  const kvalid = keyValidity(dims, keyLength);
  const fk = ops.key(k);
  const features = fk.shape[3] as number;
  const empty = emptyState(batch, kvHeads, features, dv, ops.exp);
  try {
    if (!causal) {
      const st = absorb(empty, fk, v, kvalid, ops.exp);
      fk.dispose();
      const out = tf.tidy(() => {
        const fq = ops.query(tf.reshape(q, [batch, kvHeads, group * n, d]));
        const r = readState(fq, st, ops.exp);
        return tf.reshape(divOrZero(r.num, r.den), [batch, heads, n, dv]);
      });
      disposeState(st);
      return out as tf.Tensor4D;
    }
    // Queries are the last n positions: keys before the first query position only feed the state;
    // queries before position 0 (n > m) see no key and output zeros.
    const qStart = Math.max(0, m - n);
    const rows = Math.min(n, m);
    let prefix = empty;
    if (qStart > 0) {
      const part = (t: tf.Tensor) => tf.slice(t, [0, 0, 0, 0], [-1, -1, qStart, -1]);
      const [pk, pv, pm] = [part(fk), part(v), kvalid ? part(kvalid) : null];
      prefix = absorb(empty, pk, pv, pm, ops.exp);
      [pk, pv, ...(pm ? [pm] : [])].forEach((t) => t.dispose());
    }
    const tail = (t: tf.Tensor) => (qStart === 0 ? t : tf.slice(t, [0, 0, qStart, 0], [-1, -1, rows, -1]));
    const fkT = tail(fk);
    if (fkT !== fk) fk.dispose();
    const vT = tail(v);
    const kvT = kvalid ? tail(kvalid) : null;
    const fq = tf.tidy(() => {
      // (A rank-4 slice: its gradient is a pad, and webgpu's rank-5 pad does not compile.)
      const qa = n > m ? tf.slice(tf.reshape(q, [batch * kvHeads, group, n, d]), [0, 0, n - m, 0], [-1, -1, m, -1]) : q;
      return ops.query(tf.reshape(qa, [batch, kvHeads, group, Math.min(n, m), d]));
    });
    const { out, state } = causalChunks(fq, fkT, vT, kvT, prefix, ops.exp);
    [fq, fkT, ...(vT !== v ? [vT] : []), ...(kvT && kvT !== kvalid ? [kvT] : [])].forEach((t) => t.dispose());
    disposeState(state);
    if (prefix !== empty) disposeState(prefix);
    const result = tf.tidy(() => {
      const o = tf.reshape(out, [batch, heads, rows, dv]);
      return n > m ? tf.concat([tf.zeros([batch, heads, n - m, dv]), o], 2) : o;
    });
    out.dispose();
    return result as tf.Tensor4D;
  } finally {
    disposeState(empty);
    kvalid?.dispose();
    if (!fk.isDisposed && causal) fk.dispose();
  }
}
