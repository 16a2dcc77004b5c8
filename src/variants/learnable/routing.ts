/**
 * `routing`: balanced Routing Transformer attention (Roy et al., "Efficient Content-Based Sparse
 * Attention with Routing Transformers"). Queries and keys are routed to `kc` clusters by their
 * similarity to unit centroids μ; each cluster attends densely among the queries and keys it took.
 *
 * ```text
 * q̂ = q/‖q‖, k̂ = k/‖k‖ (‖x‖ floored at 1e-12), μ_{h,c} a unit vector (query head h, cluster c)
 * cluster c of head h takes Q_c = the w queries i with the largest q̂_i·μ_{h,c}
 *                         K_c = the w real keys j  with the largest k̂_j·μ_{h,c} (all of them if fewer)
 *                         (k from kv head floor(h / (heads / kvHeads)); ties: lower position first)
 * out_c(i) = Σ_{j ∈ K_c, allowed} softmax_j(s · q_i·k_j) v_j   for i ∈ Q_c   (0 when no key is allowed)
 *            allowed: every j ∈ K_c, or j <= p_i = i + m − n when causal
 * o_i = mean over the clusters c with i ∈ Q_c of out_c(i)        (0 when no cluster took i)
 *
 *        queries (n)              clusters (kc)                   keys (m)
 *   ┌──────────────┐  top-w by q̂·μ_c ┌────┐ dense w×w ┌────┐ top-w by k̂·μ_c ┌──────────────┐
 *   │ ■ □ □ ■ □ ■  │ ──────────────▶ │ c0 │ ◀───────▶ │ c0 │ ◀───────────── │ □ ■ ■ □ □ ■  │
 *   │ □ ■ ■ □ ■ □  │ ──────────────▶ │ c1 │ ◀───────▶ │ c1 │ ◀───────────── │ ■ □ □ ■ ■ □  │
 *   └──────────────┘                 └────┘           └────┘                └──────────────┘
 *        outputs scattered back to their query positions, averaged over the clusters that took them
 * ```
 *
 * Window `w` defaults to ceil(m / kc) (w queries per cluster are capped at n, w keys at m).
 * Padding keys (at or past `keyLength[b]`) are never routed nor attended. The scores inside a
 * cluster are `s·q_i·k_j` on the un-normalized q and k, `s = scale ?? 1/√d`.
 *
 * Causal: the mask j <= p_i applies *inside* each cluster. Cluster membership is chosen over all
 * real keys (the definition above, as in the paper), so a future key's *content* can change which
 * past keys a cluster took: the outputs never read a future key's value, but they are not
 * invariant to future keys.
 *
 * Centroids: `centroids` `[heads, kc, d]` (tensor or nested array; each row is l2-normalized
 * when the variant is built, a zero row stays zero) or seeded (`seed`, standard normals,
 * normalized; see {@link routingCentroids}) — then the config needs `heads` and `dim` (= d).
 * The instance is tied to that (heads, d): other shapes throw AttentionError at apply.
 * Centroids are not trained by gradient: {@link RoutingAttention.updateCentroids} is the paper's
 * EMA k-means step.
 *
 * Paths (both O(n·w) memory for kc·w ≈ n):
 * - routing (both): routing scores are computed a fixed number of clusters at a time
 *   ([batch, heads, 8, n] at most), top-w per cluster with `tf.topk` (values descending, ties to
 *   the lower index on every backend), gathers of the chosen rows into `[batch·heads·kc, w, d]`.
 * - fused (webgpu): ONE flash-kernel call over the gathered sequences (batch, head and cluster
 *   folded into the head axis), dense within a cluster; causal and padding slots are an element
 *   rule comparing the original positions read from device tables (`kpos`, `qpos`), spliced into
 *   the rule's params buffer on the device: nothing is read back.
 * - composite (every backend): per-cluster dense attention from tfjs ops, a chunk of clusters at
 *   a time (scores `[chunk, w, w]`, ~4096 scores per chunk, freed before the next chunk).
 * - scatter-mean back to `[batch, heads, n, dv]`: on cpu and wasm one `tf.scatterND` of
 *   (output, 1) rows (summed sequentially, in cluster order); on webgpu (both paths) the slots are
 *   sorted by target row (`tf.topk`, stable) and a small kernel (`kernels/routing/combine.ts`) sums
 *   each row's run in cluster order — tfjs's webgpu scatter adds floats with atomics, in an order
 *   (and so a rounding) that changes from run to run. Deterministic everywhere: the same inputs give
 *   bit-identical outputs.
 *
 * `updateCentroids` needs O(n·kc) memory (the nearest-centroid scores); `apply` O(n·w).
 * Gradients: the centroids never receive one (they move only by `updateCentroids`). The
 * composite is a chain of tfjs ops (gathers, matMul, softmax, scatterND) whose gradients with
 * respect to q, k, v are tfjs's registered ones; this entry's tests do not cover training yet.
 *
 * Paper: Roy et al., "Efficient Content-Based Sparse Attention with Routing Transformers", 2021,
 * https://arxiv.org/abs/2003.05997 .
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { webgpuLimits } from '../../core/backend.js';
import { ownedVariable } from '../../core/variables.js';
import { checkHostBudget } from '../../core/budget.js';
import { constantOf, gatherDifferentiable } from '../../core/grad.js';
import { forwardOnlyKernel, recordingGradients, resolveImplementation } from '../../core/dispatch.js';
import { AttentionError, show } from '../../core/errors.js';
import { Lifetime } from '../../core/lifecycle.js';
import { DEFAULT_SEED, SeededRandom } from '../../core/rng.js';
import type { ApplyOptions, Attention, Complexity, Dims, Problem } from '../../core/types.js';
import { checkBool, checkConfigKeys, checkInt, checkScale, problemDims, problemPath, resolveKeyLength, validateCall, validateQKV } from '../../core/validate.js';
import { planFor, runFlash } from '../../../kernels/flash/kernel.js';
import type { ElementRule } from '../../../kernels/flash/layout.js';
import { deviceParams } from '../../../kernels/flash/device_params.js';
import { add, bindRule, compileRule, H, J, le, mul, P, param, sub, table, type BoundRule, type RuleDecl } from '../../../kernels/flash/rule.js';
import { DISPATCH_OVERHEAD_BYTES, LOOP_BUDGET, padCopyBytes, planningLimits } from '../../../kernels/shared/limits.js';
import { routingCombine, routingCombineBytes, ROUTING_COMBINE_MAX } from '../../../kernels/routing/combine.js';
import { finiteKV, finiteKVBytes, poisonRows } from '../../../kernels/shared/finite.js';
import { meta } from './routing.meta.js';

export { meta };

/** Config of {@link routingAttention}. */
export interface RoutingConfig {
  /** Number of clusters kc (an integer >= 1). Required unless `centroids` are given. */
  clusters?: number;
  /** Queries and keys per cluster w (an integer >= 1). Default ceil(m / kc) per call. */
  window?: number;
  /** Keep only keys j <= p_i inside each cluster. Default false. */
  causal?: boolean;
  /** Explicit centroids `[heads, kc, d]` (rows are l2-normalized). */
  centroids?: tf.Tensor3D | number[][][];
  /** Seed of the centroids (standard normals, normalized). Default: the catalog's fixed seed. */
  seed?: number;
  /** Query heads (required with seeded centroids; must match explicit ones). */
  heads?: number;
  /** Head dim d (required with seeded centroids; must match explicit ones). */
  dim?: number;
  /** Score scale. Default `1 / sqrt(d)`. */
  scale?: number;
}

/** The resolved config. */
export interface ResolvedRoutingConfig {
  clusters: number;
  /** Undefined: ceil(m / kc) per call. */
  window?: number;
  causal: boolean;
  heads: number;
  dim: number;
  seed: number;
  scale?: number;
  /** `'explicit'` when centroids were given, else `'seeded'`. */
  centroids: 'explicit' | 'seeded';
}

/** Options of {@link RoutingAttention.updateCentroids}. */
export interface UpdateCentroidsOptions {
  /** One valid key length per batch element: padding keys are not assigned. */
  keyLength?: number[] | tf.Tensor1D;
}

/** Clusters whose routing scores are computed at once (keeps the score chunk O(n), not O(n·kc)). */
export const ROUTING_CLUSTER_CHUNK = 8;
/** Scores per chunk of the composite's per-cluster attention. */
const COMPOSITE_CHUNK_SCORES = 4096;
/** Routing score given to padding keys: below every cosine similarity (which lie in [-1, 1]). */
const PAD_SCORE = -3;
/** A key position past every real one (exact in float32): padding slots in the kernel's `kpos` table. */
const NO_KEY = 1 << 24;
const EPS = 1e-12;

/**
 * The seeded centroids, row-major `[heads, kc, dim]`: standard normals from the catalog's
 * generator, each row divided by its norm (in float64, then rounded to float32).
 */
export function routingCentroids(heads: number, clusters: number, dim: number, seed: number): Float32Array {
  const rng = new SeededRandom(seed);
  const raw = new Float64Array(heads * clusters * dim);
  for (let i = 0; i < raw.length; i++) raw[i] = rng.normal();
  const out = new Float32Array(raw.length);
  for (let r = 0; r < heads * clusters; r++) {
    let s = 0;
    for (let t = 0; t < dim; t++) s += raw[r * dim + t] ** 2;
    const nrm = Math.max(Math.sqrt(s), EPS);
    for (let t = 0; t < dim; t++) out[r * dim + t] = raw[r * dim + t] / nrm;
  }
  return out;
}

/** x / max(‖x‖, 1e-12) along the last axis. */
function l2normalize(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.div(x, tf.maximum(tf.sqrt(tf.sum(tf.square(x), -1, true)), EPS)));
}

/**
 * The kernel's rule over the folded problem (head axis = batch·heads·kc clusters, n' = wq, m' = wk):
 * the key slot's original position must be <= a limit: the query slot's original position
 * (causal), or `last` = m − 1 (padding slots carry a position past every real one).
 */
const CAUSAL_RULE: RuleDecl = {
  allow: le(table('kpos', add(mul(H, param('wk')), J)), table('qpos', add(mul(H, param('wq')), sub(P, param('shift'))))),
};
const PADDING_RULE: RuleDecl = { allow: le(table('kpos', add(mul(H, param('wk')), J)), param('last')) };

/** The routed slots of one call: original positions per (batch, head, cluster, slot). */
interface Routed {
  /** `[B, H, kc, wq]` int32 query positions i. */
  qIdx: tf.Tensor4D;
  /** `[B, H, kc, wk]` int32 key positions j. */
  kIdx: tf.Tensor4D;
  /** `[B]` int32 key lengths, or null. */
  lens: tf.Tensor1D | null;
}

/** Routing attention; see the module comment. */
export class RoutingAttention implements Attention<ResolvedRoutingConfig> {
  readonly id = meta.id;
  readonly family = meta.family;
  readonly complexity: Complexity = meta.complexity;
  private readonly lifetime = new Lifetime();
  private mu: tf.Variable<tf.Rank.R3> | null;
  private readonly bound = new Map<string, BoundRule>();

  constructor(
    readonly config: Readonly<ResolvedRoutingConfig>,
    centroids: tf.Variable<tf.Rank.R3>,
  ) {
    this.mu = centroids;
  }

  /** The unit centroids `[heads, kc, d]` (a new tensor the caller owns). */
  centroids(): tf.Tensor3D {
    this.lifetime.check(this.id);
    return tf.clone(this.mu!) as tf.Tensor3D;
  }

  private checkDims(dims: { heads: number; d: number }, arg: string): void {
    const { heads, dim } = this.config;
    if (dims.heads !== heads || dims.d !== dim) {
      throw new AttentionError(arg, `${heads} query heads of dim ${dim} (the centroids' shape [${heads}, ${this.config.clusters}, ${dim}])`, `${dims.heads} heads of dim ${dims.d}`);
    }
  }

  /** Queries and keys per cluster for this call: (wq, wk) = (min(w, n), min(w, m)). */
  private windows(n: number, m: number): { wq: number; wk: number } {
    const w = this.config.window ?? Math.ceil(m / this.config.clusters);
    return { wq: Math.min(w, n), wk: Math.min(w, m) };
  }

  private foldDims(dims: Dims, wq: number, wk: number): Dims {
    const f = dims.batch * dims.heads * this.config.clusters;
    return { batch: 1, heads: f, kvHeads: f, group: 1, n: wq, m: wk, d: dims.d, dv: dims.dv };
  }

  /** The kernel's rule for this call (null: every slot allowed), bound with placeholder tables. */
  private boundRule(dims: Dims, wq: number, wk: number, padded: boolean): BoundRule | null {
    const causal = this.config.causal;
    if (!causal && !padded) return null;
    const f = dims.batch * dims.heads * this.config.clusters;
    const key = `${causal},${f},${wq},${wk},${dims.m},${dims.n}`;
    let b = this.bound.get(key);
    if (!b) {
      const kpos = new Int32Array(f * wk);
      b = causal
        ? bindRule(compileRule(CAUSAL_RULE), { wk, wq, shift: wk - wq, kpos, qpos: new Int32Array(f * wq) }, f)
        : bindRule(compileRule(PADDING_RULE), { wk, last: dims.m - 1, kpos }, f);
      if (this.bound.size > 16) this.bound.clear();
      this.bound.set(key, b);
    }
    return b;
  }

  private elementRule(bound: BoundRule, params: tf.Tensor1D | null): ElementRule {
    return {
      key: bound.compiled.key,
      wgsl: bound.compiled.wgsl,
      params: params ? null : bound.params,
      paramsTensor: params,
      // The positions live on the device; the host twin sees the placeholders only (never used to plan).
      weight: (p, j, h) => bound.weight(p, j, h),
      init: true,
    };
  }

  /** Key lengths as an int32 device tensor clamped to [0, m] (the caller owns it), or null. */
  private lengths(keyLength: number[] | tf.Tensor1D | null, m: number): tf.Tensor1D | null {
    if (keyLength === null) return null;
    if (Array.isArray(keyLength)) return tf.tensor1d(keyLength, 'int32');
    return tf.tidy(() => tf.cast(tf.clipByValue(keyLength, 0, m), 'int32')) as tf.Tensor1D;
  }

  /**
   * Routes queries and keys: per chunk of clusters the scores q̂·μ `[B, H, C, n]` and k̂·μ
   * `[B, H, C, m]` (padding keys at {@link PAD_SCORE}) and their top-w indices.
   */
  private route(q: tf.Tensor4D, k: tf.Tensor4D, dims: Dims, wq: number, wk: number, lens: tf.Tensor1D | null): { qIdx: tf.Tensor4D; kIdx: tf.Tensor4D } {
    const { batch: B, heads: Hh, kvHeads: KH, group: G, m, d } = dims;
    const kc = this.config.clusters;
    const mu = this.mu!;
    return tf.tidy(() => {
      const qn = l2normalize(q);
      const valid = lens ? tf.less(tf.reshape(tf.range(0, m, 1, 'int32'), [1, 1, 1, m]), tf.reshape(lens, [B, 1, 1, 1])) : null;
      // Padding keys are selected out before any product: a NaN there must not reach a real key's
      // score (webgpu's matMul spreads a NaN across its output tile).
      const kn = valid ? tf.where(tf.reshape(valid, [B, 1, m, 1]), l2normalize(k), tf.scalar(0)) : l2normalize(k);
      const qParts: tf.Tensor[] = [];
      const kParts: tf.Tensor[] = [];
      for (let c0 = 0; c0 < kc; c0 += ROUTING_CLUSTER_CHUNK) {
        const cc = Math.min(ROUTING_CLUSTER_CHUNK, kc - c0);
        const [qi, ki] = tf.tidy(() => {
          const muc = tf.slice(mu, [0, c0, 0], [Hh, cc, d]);
          const qs = tf.matMul(tf.reshape(muc, [1, Hh, cc, d]), qn, false, true); // [B, H, cc, n]
          // Keys: each query head's centroids against its kv head's keys, without repeating K.
          let ks: tf.Tensor = tf.matMul(tf.reshape(muc, [1, KH, G * cc, d]), kn, false, true); // [B, KH, G·cc, m]
          if (valid) ks = tf.where(valid, ks, tf.scalar(PAD_SCORE));
          ks = tf.reshape(ks, [B, Hh, cc, m]);
          return [tf.topk(qs, wq).indices, tf.topk(ks, wk).indices];
        });
        qParts.push(qi);
        kParts.push(ki);
      }
      const cat = (parts: tf.Tensor[]) => (parts.length === 1 ? parts[0] : tf.concat(parts, 2));
      return { qIdx: cat(qParts) as tf.Tensor4D, kIdx: cat(kParts) as tf.Tensor4D };
    });
  }

  /** Gathers the routed rows: q `[B·H·kc·wq, d]`, k `[B·H·kc·wk, d]`, v `[B·H·kc·wk, dv]`, padding slots zeroed. */
  private gather(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, dims: Dims, r: Routed): { qg: tf.Tensor2D; kg: tf.Tensor2D; vg: tf.Tensor2D; slotValid: tf.Tensor | null } {
    const { batch: B, heads: Hh, group: G, kvHeads: KH, n, m, d, dv } = dims;
    type Gathered = { qg: tf.Tensor2D; kg: tf.Tensor2D; vg: tf.Tensor2D; slotValid: tf.Tensor | null };
    return tf.tidy((): tf.TensorContainer => {
      const qBase = new Int32Array(B * Hh);
      const kBase = new Int32Array(B * Hh);
      for (let b = 0; b < B; b++)
        for (let h = 0; h < Hh; h++) {
          qBase[b * Hh + h] = (b * Hh + h) * n;
          kBase[b * Hh + h] = (b * KH + Math.floor(h / G)) * m;
        }
      const qRows = tf.reshape(tf.add(r.qIdx, tf.tensor4d(qBase, [B, Hh, 1, 1], 'int32')), [-1]);
      let kRows: tf.Tensor = tf.reshape(tf.add(r.kIdx, tf.tensor4d(kBase, [B, Hh, 1, 1], 'int32')), [-1]);
      let kSrc: tf.Tensor = tf.reshape(k, [B * KH * m, d]);
      let vSrc: tf.Tensor = tf.reshape(v, [B * KH * m, dv]);
      let slotValid: tf.Tensor | null = null;
      if (r.lens) {
        // A slot holds a real key iff its position is below the batch element's length; the
        // others gather an appended zero row, so that no padding value is ever copied.
        slotValid = tf.less(r.kIdx, tf.reshape(r.lens, [B, 1, 1, 1])); // [B, H, kc, wk]
        kRows = tf.where(tf.reshape(slotValid, [-1]), kRows, tf.scalar(B * KH * m, 'int32'));
        kSrc = tf.concat([kSrc, tf.zeros([1, d])], 0);
        vSrc = tf.concat([vSrc, tf.zeros([1, dv])], 0);
      }
      // (Differentiable on wasm too, which has no UnsortedSegmentSum for tf.gather's gradient.)
      const qg = gatherDifferentiable(tf.reshape(q, [B * Hh * n, d]), qRows) as tf.Tensor2D;
      const kg = gatherDifferentiable(kSrc, kRows) as tf.Tensor2D;
      const vg = gatherDifferentiable(vSrc, kRows) as tf.Tensor2D;
      return { qg, kg, vg, slotValid } as unknown as tf.TensorContainer;
    }) as unknown as Gathered;
  }

  /** Clusters (of the folded batch·heads·kc axis) attended at once by the composite: ~4096 scores per chunk. */
  private compositeChunk(wq: number, wk: number): number {
    return Math.max(1, Math.floor(COMPOSITE_CHUNK_SCORES / (wq * wk)));
  }

  /**
   * Per-cluster dense attention from tfjs ops, a chunk of clusters at a time (each chunk's scores
   * `[chunk, wq, wk]` are freed before the next: the working set stays O(kc·w·d), not O(kc·w²)):
   * `[B·H·kc·wq, dv]`.
   */
  private attendComposite(g: { qg: tf.Tensor2D; kg: tf.Tensor2D; vg: tf.Tensor2D; slotValid: tf.Tensor | null }, r: Routed, dims: Dims, wq: number, wk: number, scale: number): tf.Tensor2D {
    const { batch: B, heads: Hh, n, m, d, dv } = dims;
    const f = B * Hh * this.config.clusters;
    const chunk = this.compositeChunk(wq, wk);
    const causal = this.config.causal;
    return tf.tidy(() => {
      const kIdx = tf.reshape(r.kIdx, [f, wk]);
      const qPos = tf.reshape(tf.add(r.qIdx, m - n), [f, wq]);
      const valid = g.slotValid ? tf.reshape(g.slotValid, [f, wk]) : null;
      const parts: tf.Tensor[] = [];
      // The gathered rows, cut into the chunks once by a split: its gradient is one concat, where a
      // slice per chunk would give a full-size pad per chunk in the backward pass (O(f²) bytes).
      const sizes: number[] = [];
      for (let f0 = 0; f0 < f; f0 += chunk) sizes.push(Math.min(chunk, f - f0));
      const cut = (x: tf.Tensor2D, per: number) => (sizes.length === 1 ? [x] : tf.split(x, sizes.map((fc) => fc * per), 0));
      const qs = cut(g.qg, wq);
      const ks = cut(g.kg, wk);
      const vs = cut(g.vg, wk);
      for (let ci = 0, f0 = 0; ci < sizes.length; f0 += sizes[ci], ci++) {
        const fc = sizes[ci];
        parts.push(
          tf.tidy(() => {
            const rows = (x: tf.Tensor, per: number, dim: number) => tf.reshape(x, [fc, per, dim]);
            const qc = rows(qs[ci], wq, d);
            // Finite copies of the keys and values, and which keys had a non-finite entry: a key a
            // row may not see never reaches it through 0·NaN (kernels/shared/finite.ts).
            const fin = finiteKV(rows(ks[ci], wk, d), rows(vs[ci], wk, dv));
            const kc = fin.k as tf.Tensor3D;
            const vc = fin.v as tf.Tensor3D;
            const s = tf.mul(tf.matMul(qc, kc, false, true), scale); // [fc, wq, wk]
            let allowed: tf.Tensor | null = valid ? tf.reshape(tf.slice(valid, [f0, 0], [fc, wk]), [fc, 1, wk]) : null;
            if (causal) {
              const kp = tf.reshape(tf.slice(kIdx, [f0, 0], [fc, wk]), [fc, 1, wk]);
              const qp = tf.reshape(tf.slice(qPos, [f0, 0], [fc, wq]), [fc, wq, 1]);
              const c = tf.lessEqual(kp, qp);
              allowed = allowed ? tf.logicalAnd(allowed, c) : c;
            }
            let p: tf.Tensor;
            if (!allowed) p = tf.softmax(s);
            else {
              const masked = tf.where(tf.broadcastTo(allowed, [fc, wq, wk]), s, tf.scalar(-Infinity));
              // A row with no allowed key: max -Infinity, taken as 0, so that exp(-Infinity - 0) = 0 everywhere.
              // The shift is a constant of the gradient (softmax does not depend on it; IsFinite has no gradient).
              const shift = constantOf([masked], (x) => {
                const mx = tf.max(x, -1, true);
                return tf.where(tf.isFinite(mx), mx, tf.zerosLike(mx));
              });
              const e = tf.exp(tf.sub(masked, shift));
              // Σ e >= 1 where a key is allowed (its max contributes exp(0) = 1) and 0 where none is:
              // max(Σ e, 1) changes no value, and unlike max(Σ e, 1e-30) its square does not
              // underflow in the division's gradient (0/0 = NaN for the empty rows).
              p = tf.div(e, tf.maximum(tf.sum(e, -1, true), 1));
            }
            return tf.reshape(poisonRows(tf.matMul(p, vc), p, fin.poison), [fc * wq, dv]);
          }),
        );
        if (sizes.length > 1) [qs[ci], ks[ci], vs[ci]].forEach((t) => t.dispose());
      }
      return (parts.length === 1 ? parts[0] : tf.concat(parts, 0)) as tf.Tensor2D;
    });
  }

  /** The fused path: one flash call over the folded clusters: `[B·H·kc·wq, dv]`. */
  private attendKernel(
    g: { qg: tf.Tensor2D; kg: tf.Tensor2D; vg: tf.Tensor2D },
    r: Routed,
    dims: Dims,
    wq: number,
    wk: number,
    scale: number,
    bound: BoundRule | null,
    plan: ReturnType<typeof planFor>,
  ): tf.Tensor2D {
    const { batch: B, n, m, d, dv } = dims;
    const fd = this.foldDims(dims, wq, wk);
    const f = fd.heads;
    let params: tf.Tensor1D | null = null;
    if (bound) {
      params = tf.tidy(() => {
        const kpos = r.lens ? tf.where(tf.less(r.kIdx, tf.reshape(r.lens, [B, 1, 1, 1])), r.kIdx, tf.fill(r.kIdx.shape, NO_KEY, 'int32')) : r.kIdx;
        const tables: Record<string, tf.Tensor> = { kpos };
        if (this.config.causal) tables.qpos = tf.add(r.qIdx, m - n);
        return deviceParams(bound, { tables });
      });
    }
    try {
      return tf.tidy(() => {
        const out = runFlash(
          tf.reshape(g.qg, [1, f, wq, d]),
          tf.reshape(g.kg, [1, f, wk, d]),
          tf.reshape(g.vg, [1, f, wk, dv]),
          fd,
          { causal: false, scale, keyLength: null, rule: bound ? this.elementRule(bound, params) : null },
          plan,
        );
        return tf.reshape(out, [f * wq, dv]) as tf.Tensor2D;
      });
    } finally {
      params?.dispose();
    }
  }

  /** Mean over the clusters that took each query: `[B, H, n, dv]` (0 where none did). */
  private scatterMean(out: tf.Tensor2D, r: Routed, dims: Dims): tf.Tensor4D {
    const { batch: B, heads: Hh, n, dv } = dims;
    const rowsTotal = B * Hh * n;
    return tf.tidy(() => {
      const qBase = new Int32Array(B * Hh);
      for (let i = 0; i < B * Hh; i++) qBase[i] = i * n;
      const rows = tf.reshape(tf.add(r.qIdx, tf.tensor4d(qBase, [B, Hh, 1, 1], 'int32')), [-1]) as tf.Tensor1D; // (batch, head, cluster, slot) order
      if (tf.getBackend() === 'webgpu' && !recordingGradients()) {
        // (While gradients are recorded, the scatter below: the combine kernel is forward-only.)
        // Sorted by row and summed in cluster order by a small kernel: webgpu's scatter adds floats
        // with atomics, in an order (and so with a rounding) that varies from run to run.
        return tf.reshape(routingCombine(out, rows, rowsTotal), [B, Hh, n, dv]) as tf.Tensor4D;
      }
      // cpu, wasm: one scatter of (output, 1), accumulated sequentially in entry order.
      const aug = tf.concat([out, tf.ones([out.shape[0], 1])], 1);
      // tfjs registers no gradient for ScatterNd: d(scatter)/d(updates) is the gather of dy at the same indices.
      const index = tf.reshape(rows, [-1, 1]);
      // (The indices are saved: this tidy frees its own copy before the backward pass runs.)
      const scatter = tf.customGrad(((upd: tf.Tensor, save: tf.GradSaveFunc) => {
        save([index]);
        return { value: tf.scatterND(index, upd, [rowsTotal, dv + 1]), gradFunc: (dy: tf.Tensor, [idx]: tf.Tensor[]) => tf.gatherND(dy, idx) };
      }) as unknown as Parameters<typeof tf.customGrad>[0]);
      const acc = scatter(aug);
      const sum = tf.slice(acc, [0, 0], [rowsTotal, dv]);
      const cnt = tf.slice(acc, [0, dv], [rowsTotal, 1]);
      return tf.reshape(tf.div(sum, tf.maximum(cnt, 1)), [B, Hh, n, dv]) as tf.Tensor4D;
    });
  }

  /**
   * Webgpu only, before anything is dispatched: every tensor of the call fits one storage binding
   * (llvmpipe returns zeros past it, silently), and the combine's limits.
   */
  private checkDevice(dims: Dims, wq: number, wk: number, path: 'kernel' | 'composite'): void {
    const limits = webgpuLimits();
    if (!limits) return;
    const { batch: B, heads: Hh, kvHeads: KH, n, m, d, dv } = dims;
    const f = B * Hh * this.config.clusters;
    const max = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
    const largest = 4 * Math.max(
      B * Hh * n * (d + 1), B * KH * m * Math.max(d, dv),
      B * Hh * Math.min(ROUTING_CLUSTER_CHUNK, this.config.clusters) * Math.max(n, m),
      f * Math.max(wq, wk) * Math.max(d, dv, 4),
      path === 'composite' ? f * wq * wk : 0,
    );
    if (largest > max) {
      throw new AttentionError('q', `a problem whose largest routing tensor fits the device's ${max}-byte binding limit`, `one of ${largest} bytes`, 'Split the batch or heads across calls.');
    }
    const entries = dims.batch * dims.heads * this.config.clusters * wq;
    const rows = dims.batch * dims.heads * dims.n;
    if (Math.max(entries, rows) > ROUTING_COMBINE_MAX || this.config.clusters + 32 > LOOP_BUDGET) {
      throw new AttentionError('q', `at most ${ROUTING_COMBINE_MAX} routed slots and query rows, and kc + 32 <= ${LOOP_BUDGET} (the webgpu combine's limits)`, `${entries} slots, ${rows} rows, kc = ${this.config.clusters}`);
    }
  }

  /**
   * Attention of `q [batch, heads, n, d]` over `k [batch, kvHeads, m, d]`, `v [batch, kvHeads, m, dv]`
   * (heads and d as the centroids').
   *
   * @returns `[batch, heads, n, dv]`
   * @throws AttentionError on any invalid input, before dispatch.
   */
  apply(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, options?: ApplyOptions): tf.Tensor4D {
    this.lifetime.check(this.id);
    const { dims, implementation, keyLength, kernelStrategy } = validateCall(q, k, v, options);
    this.checkDims(dims, 'q');
    const { wq, wk } = this.windows(dims.n, dims.m);
    const scale = this.config.scale ?? 1 / Math.sqrt(dims.d);
    // The combine kernel is forward-only: while gradients are recorded, the composite.
    const path = resolveImplementation(forwardOnlyKernel(implementation));
    this.checkDevice(dims, wq, wk, path);
    let bound: BoundRule | null = null;
    let plan: ReturnType<typeof planFor> | null = null;
    if (path === 'kernel') {
      bound = this.boundRule(dims, wq, wk, keyLength !== null);
      plan = planFor(this.foldDims(dims, wq, wk), { rule: bound ? this.elementRule(bound, null) : null, strategy: kernelStrategy });
    } else {
      checkHostBudget('the routing composite', this.bytes(dims, 'composite', keyLength !== null));
    }
    const lens = this.lengths(keyLength, dims.m);
    let routed: Routed | null = null;
    let g: ReturnType<RoutingAttention['gather']> | null = null;
    let out: tf.Tensor2D | null = null;
    try {
      // The routing (top-w indices) is discrete: a constant of the gradient (TopK has none).
      routed = { ...constantOf([q, k], () => this.route(q, k, dims, wq, wk, lens)), lens };
      g = this.gather(q, k, v, dims, routed);
      out = path === 'kernel' ? this.attendKernel(g, routed, dims, wq, wk, scale, bound, plan!) : this.attendComposite(g, routed, dims, wq, wk, scale);
      g.qg.dispose();
      g.kg.dispose();
      g.vg.dispose();
      g.slotValid?.dispose();
      g = null;
      return this.scatterMean(out, routed, dims);
    } finally {
      out?.dispose();
      if (g) {
        g.qg.dispose();
        g.kg.dispose();
        g.vg.dispose();
        g.slotValid?.dispose();
      }
      routed?.qIdx.dispose();
      routed?.kIdx.dispose();
      lens?.dispose();
    }
  }

  /** The bound of {@link memoryBytes} for resolved dims and path. */
  private bytes(dims: Dims, path: 'kernel' | 'composite', keyLength: boolean): number {
    const { batch: B, heads: Hh, kvHeads: KH, n, m, d, dv } = dims;
    const kc = this.config.clusters;
    const { wq, wk } = this.windows(n, m);
    const C = Math.min(ROUTING_CLUSTER_CHUNK, kc);
    const f = B * Hh * kc;
    const F = 4;
    const kl = keyLength ? 1 : 0;
    // The routed indices [B, H, kc, wq] and [B, H, kc, wk]: alive from the routing to the end.
    const idx = f * (wq + wk) * F;
    const gathered = (f * wq * d + f * wk * (d + dv)) * F;
    // Phase 1, routing: q̂ and k̂ (with the squares of the normalization, and k̂'s padding
    // selection), the key mask, one chunk of scores with tfjs's top-k copies, the index chunks and
    // their concatenation.
    const normalized = (B * Hh * n * d + B * KH * m * d * (1 + kl)) * F * 2;
    const routing = normalized + kl * B * m * F * 2 + B * Hh * C * (n + m) * F * 4 + 2 * idx;
    // Phase 2, gathers: the row offsets, the gathered rows, and with key lengths the slot mask,
    // the selected key rows and K, V with a zero row appended.
    const gather = 3 * idx + gathered + kl * (f * wk * F * 2 + B * KH * (m + 1) * (d + dv) * F);
    // Phase 3, attention.
    let attend: number;
    if (path === 'composite') {
      // One chunk's scores, masks, exp and probabilities with its slices, the per-chunk outputs and
      // their concatenation, the position tables.
      const fc = Math.min(f, this.compositeChunk(wq, wk));
      // The finite copies of the chunk's keys and values and the rows marked NaN where a weighed key was not finite.
      const finite = finiteKVBytes(fc, wk, d, dv) + 3 * fc * wq * (dv + 1) * F;
      attend = fc * wq * wk * (F * 6 + 4) + fc * (wq + wk) * (d + dv) * F + 2 * f * wq * dv * F + 2 * idx + finite;
    } else {
      const fd = this.foldDims(dims, wq, wk);
      const bound = this.boundRule(dims, wq, wk, keyLength);
      const plan = planFor(fd, { rule: bound ? this.elementRule(bound, null) : null }, planningLimits());
      // The rule's position tables and params buffer (with the splice's pieces), the split
      // partials, the padded copies, the output (and its slice when dv is padded).
      const params = bound ? bound.params.length * F * 3 + 2 * idx : 0;
      attend = params + plan.partialBytes + padCopyBytes(fd, plan.dPad, plan.dvPad) + f * wq * (plan.dvPad + dv) * F + 3 * DISPATCH_OVERHEAD_BYTES;
    }
    attend += idx + gathered + kl * f * wk * F;
    // Phase 4, scatter-mean: the cluster outputs and their target rows; cpu, wasm: the (output, 1)
    // rows, the accumulator and its slices; webgpu: the sort of the rows and the combine's output.
    const rowsTotal = B * Hh * n;
    const scatter = idx + f * wq * dv * F + 2 * f * wq * F + Math.max(f * wq * (dv + 1) * F + rowsTotal * (dv + 1) * F * 3, routingCombineBytes(f * wq) + rowsTotal * dv * F);
    const peak = Math.max(routing, gather, attend, scatter);
    // Webgpu releases a disposed buffer only when the queue is next submitted (every 15
    // dispatches): the buffers of the last dispatches are still counted as in use (top-k's
    // bitonic buffers are padded to a power of two).
    let pow2 = 1;
    while (pow2 < Math.max(n, m)) pow2 *= 2;
    const largest = F * Math.max(B * Hh * n * (d + 1), B * KH * (m + 1) * Math.max(d, dv), 2 * B * Hh * C * pow2, f * Math.max(wq, wk) * Math.max(d, dv), rowsTotal * (dv + 1));
    const deferred = tf.getBackend() === 'webgpu' ? 6 * largest : 0;
    return Math.ceil(peak * 1.25) + deferred + 16384 + 3 * DISPATCH_OVERHEAD_BYTES;
  }

  /**
   * Upper bound of the intermediate bytes of `apply`: O(n·d) normalized copies and gathers, one
   * chunk of routing scores O(n), the routed indices O(kc·w), and the per-cluster attention:
   * O(kc·w) fused, O(kc·w²) composite — O(n·w) in all for kc·w ≈ n.
   */
  memoryBytes(problem: Problem): number {
    this.lifetime.check(this.id);
    const dims = problemDims(problem);
    this.checkDims(dims, 'problem');
    return this.bytes(dims, problemPath(problem), !!problem.keyLength);
  }

  /**
   * One EMA k-means step of the centroids (the Routing Transformer's update, in its mean form):
   * for query head h and cluster c, let A = the normalized queries q̂ of head h (every batch
   * element) and the normalized real keys k̂ of its kv head (j < keyLength[b]) whose nearest
   * centroid (argmax over c' of x̂·μ_{h,c'}, ties to the lower c') is c, and x̄ = the mean of A.
   * Then μ_{h,c} ← normalize(decay·μ_{h,c} + (1 − decay)·x̄); a centroid with A empty (or whose
   * update has norm < 1e-12) stays as it is. Nothing is returned; every temporary is freed.
   *
   * @param decay - in [0, 1] (the paper uses 0.999).
   * @throws AttentionError on invalid inputs, before dispatch.
   */
  updateCentroids(q: tf.Tensor4D, k: tf.Tensor4D, decay: number, options?: UpdateCentroidsOptions): void {
    this.lifetime.check(this.id);
    const dims = validateQKV(q, k, k);
    this.checkDims(dims, 'q');
    if (typeof decay !== 'number' || !Number.isFinite(decay) || decay < 0 || decay > 1) throw new AttentionError('decay', 'a number in [0, 1]', show(decay));
    if (options !== undefined && (typeof options !== 'object' || options === null || Array.isArray(options))) throw new AttentionError('options', 'an object { keyLength? }', show(options));
    for (const key of Object.keys(options ?? {})) if (key !== 'keyLength') throw new AttentionError(`options.${key}`, 'keyLength', `unknown option '${key}'`);
    const kl = resolveKeyLength(options?.keyLength, dims);
    const { batch: B, heads: Hh, kvHeads: KH, group: G, m, d } = dims;
    const kc = this.config.clusters;
    const mu = this.mu!;
    tf.tidy(() => {
      const lens = this.lengths(kl.values ?? kl.tensor, m);
      const qn = l2normalize(q); // [B, H, n, d]
      let kn = l2normalize(k); // [B, KH, m, d]
      let kvalid: tf.Tensor | null = null;
      if (lens) {
        const valid = tf.less(tf.reshape(tf.range(0, m, 1, 'int32'), [1, 1, m, 1]), tf.reshape(lens, [B, 1, 1, 1])); // [B, 1, m, 1]
        kn = tf.where(valid, kn, tf.zerosLike(kn));
        kvalid = tf.broadcastTo(tf.cast(valid, 'float32'), [B, KH, m, 1]);
      }
      // One-hot of the nearest centroid (tf.oneHot needs depth >= 2: with one cluster, every vector is its).
      const nearest = (scores: tf.Tensor): tf.Tensor => tf.cast(kc === 1 ? tf.onesLike(scores) : tf.oneHot(tf.argMax(scores, -1), kc), 'float32');
      // Sums and counts per (head, cluster) in one product: the vectors with a column of ones (0 for padding keys).
      const qAug = tf.concat([qn, tf.ones([B, Hh, dims.n, 1])], -1);
      const qOne = nearest(tf.matMul(qn, tf.reshape(mu, [1, Hh, kc, d]), false, true)); // [B, H, n, kc]
      const qStats = tf.sum(tf.matMul(qOne, qAug, true, false), 0); // [H, kc, d + 1]
      // Keys: each query head's centroids against its kv head's keys.
      const kAug = tf.concat([kn, kvalid ?? tf.ones([B, KH, m, 1])], -1); // [B, KH, m, d + 1]
      const kScores = tf.reshape(tf.matMul(kn, tf.reshape(mu, [1, KH, G * kc, d]), false, true), [B, KH, m, G, kc]);
      const kOne = tf.reshape(nearest(kScores), [B, KH, m, G * kc]);
      const kStats = tf.reshape(tf.sum(tf.matMul(kOne, kAug, true, false), 0), [Hh, kc, d + 1]);
      const stats = tf.add(qStats, kStats);
      const cnt = tf.slice(stats, [0, 0, d], [Hh, kc, 1]);
      const mean = tf.div(tf.slice(stats, [0, 0, 0], [Hh, kc, d]), tf.maximum(cnt, 1));
      const moved = tf.add(tf.mul(mu, decay), tf.mul(mean, 1 - decay));
      const nrm = tf.sqrt(tf.sum(tf.square(moved), -1, true));
      const keep = tf.logicalOr(tf.equal(cnt, 0), tf.less(nrm, EPS));
      const next = tf.where(tf.broadcastTo(keep, [Hh, kc, d]), mu, tf.div(moved, tf.maximum(nrm, EPS)));
      mu.assign(next as tf.Tensor3D);
    });
  }

  /** Frees the centroids and ends the variant (every later call throws AttentionError('this')); again, a no-op. */
  dispose(): void {
    if (!this.lifetime.end()) return;
    this.mu?.dispose();
    this.mu = null;
  }
}

/** Validates explicit centroids `[heads, kc, d]` without dispatching anything. */
function checkCentroids(value: unknown): { shape: [number, number, number]; source: tf.Tensor3D | number[][][] } {
  const name = 'config.centroids';
  if (value instanceof tf.Tensor) {
    if (value.isDisposed) throw new AttentionError(name, 'a live tensor', 'a disposed tensor');
    if (value.rank !== 3 || value.shape.some((s: number) => s === 0)) throw new AttentionError(name, 'a tensor of shape [heads, kc, d]', `shape ${show(value.shape)}`);
    if (value.dtype !== 'float32') throw new AttentionError(name, "dtype 'float32'", show(value.dtype));
    return { shape: value.shape as [number, number, number], source: value as tf.Tensor3D };
  }
  if (!Array.isArray(value) || value.length === 0) throw new AttentionError(name, 'a tf.Tensor3D or a nested number array [heads, kc, d]', show(typeof value));
  const rows0 = value[0];
  if (!Array.isArray(rows0) || rows0.length === 0 || !Array.isArray(rows0[0]) || rows0[0].length === 0) {
    throw new AttentionError(name, 'a non-empty nested number array [heads, kc, d]', show(value));
  }
  const kc = rows0.length;
  const d = (rows0[0] as unknown[]).length;
  value.forEach((hRows: unknown, h) => {
    if (!Array.isArray(hRows) || hRows.length !== kc) throw new AttentionError(`${name}[${h}]`, `${kc} centroids`, show(hRows));
    hRows.forEach((row: unknown, c) => {
      if (!Array.isArray(row) || row.length !== d || !row.every((x) => typeof x === 'number' && Number.isFinite(x))) {
        throw new AttentionError(`${name}[${h}][${c}]`, `${d} finite numbers`, show(row));
      }
    });
  });
  return { shape: [value.length, kc, d], source: value as number[][][] };
}

/**
 * Builds Routing Transformer attention.
 *
 * @param config - `clusters` kc (required unless `centroids`), `window` w (ceil(m/kc)), `causal`
 * (false), `centroids` `[heads, kc, d]` or `seed` with `heads` and `dim`, `scale` (1/√d).
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import { routingAttention } from 'attention-catalog/routing';
 * const attn = routingAttention({ clusters: 16, heads: 8, dim: 64, causal: true });
 * const q = tf.randomNormal([1, 8, 4096, 64]) as tf.Tensor4D;
 * const out = attn.apply(q, q, q);      // each cluster: 256 queries × 256 keys
 * attn.updateCentroids(q, q, 0.999);    // EMA k-means step (no gradient)
 * attn.dispose();
 * ```
 */
export function routingAttention(config: RoutingConfig): RoutingAttention {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new AttentionError('config', 'an object', show(config));
  checkConfigKeys(meta.id, config, ['clusters', 'window', 'causal', 'centroids', 'seed', 'heads', 'dim', 'scale']);
  const causal = config.causal === undefined ? false : checkBool('config.causal', config.causal);
  const scale = checkScale(config.scale);
  const window = config.window === undefined ? undefined : checkInt('config.window', config.window, 1);
  const clustersGiven = config.clusters === undefined ? undefined : checkInt('config.clusters', config.clusters, 1);
  const headsGiven = config.heads === undefined ? undefined : checkInt('config.heads', config.heads, 1);
  const dimGiven = config.dim === undefined ? undefined : checkInt('config.dim', config.dim, 1);
  if (config.seed !== undefined && config.centroids !== undefined) throw new AttentionError('config.centroids', 'either seed or centroids, not both', 'both');
  const seed = config.seed === undefined ? DEFAULT_SEED : checkInt('config.seed', config.seed, 0);
  let heads: number;
  let clusters: number;
  let dim: number;
  let init: tf.Tensor3D;
  if (config.centroids !== undefined) {
    const c = checkCentroids(config.centroids);
    [heads, clusters, dim] = c.shape;
    const problem =
      (clustersGiven !== undefined && clustersGiven !== clusters && { arg: 'config.clusters', want: `the centroids' second dimension ${clusters}`, got: `${clustersGiven}` }) ||
      (headsGiven !== undefined && headsGiven !== heads && { arg: 'config.heads', want: `the centroids' first dimension ${heads}`, got: `${headsGiven}` }) ||
      (dimGiven !== undefined && dimGiven !== dim && { arg: 'config.dim', want: `the centroids' third dimension ${dim}`, got: `${dimGiven}` });
    if (problem) throw new AttentionError(problem.arg, problem.want, problem.got);
    const src = c.source;
    init = tf.tidy(() => l2normalize(src instanceof tf.Tensor ? src : tf.tensor3d(src, c.shape, 'float32'))) as tf.Tensor3D;
  } else {
    if (clustersGiven === undefined) throw new AttentionError('config.clusters', 'the number of clusters (an integer >= 1), or explicit centroids', 'undefined');
    if (headsGiven === undefined) throw new AttentionError('config.heads', 'the number of query heads (seeded centroids are [heads, clusters, dim])', 'undefined');
    if (dimGiven === undefined) throw new AttentionError('config.dim', 'the head dim d (seeded centroids are [heads, clusters, dim])', 'undefined');
    [heads, clusters, dim] = [headsGiven, clustersGiven, dimGiven];
    const host = routingCentroids(heads, clusters, dim, seed);
    init = tf.tidy(() => tf.add(tf.tensor3d(host, [heads, clusters, dim], 'float32'), 0)) as tf.Tensor3D;
  }
  const mu = ownedVariable(init as tf.Tensor3D, false);
  const cfg: ResolvedRoutingConfig = { clusters, causal, heads, dim, seed, centroids: config.centroids !== undefined ? 'explicit' : 'seeded' };
  if (window !== undefined) cfg.window = window;
  if (scale !== undefined) cfg.scale = scale;
  return new RoutingAttention(Object.freeze(cfg), mu);
}
