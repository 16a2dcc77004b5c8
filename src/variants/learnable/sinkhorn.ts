/**
 * `sinkhorn`: Sparse Sinkhorn Attention (Tay et al., "Sparse Sinkhorn Attention"). The keys are
 * cut into blocks of b positions; a learned, differentiable sorting (a Sinkhorn-balanced soft
 * permutation of the blocks) gives every block a second, "sorted" block, and each query block
 * attends its own key block and its sorted block in one softmax:
 *
 * ```text
 * S_j    = Σ_{real keys t of block j} k_t                      block summaries   [nb, d]
 * R[i,a] = relu(S_i · W[:, a])                                 W = sortWeights   [d, nb]
 * L      = R / τ;  T times: L -= rowLSE(L); L -= colLSE(L)     log-domain Sinkhorn
 * P      = exp(L)                                              ≈ doubly stochastic [nb, nb]
 * K'_i   = Σ_j P[i,j] · K_j,   V'_i = Σ_j P[i,j] · V_j         sorted blocks (b rows each)
 * o_p    = softmax(s · q_p · [K_i(real keys) ; K'_i]) · [V_i ; V'_i],   i = floor(p / b)
 *
 *            key blocks  0    1    2    3
 *   query block 2      [    |    | own|    ]   +   [ sorted 2 = Σ_j P[2,j]·block j ]
 *                                 ^ b keys          ^ b rows, always attended
 * ```
 *
 * Conventions, decided here:
 * - **Blocks and lengths.** nb = ceil(m / b) key blocks; when m is not a multiple of b the last
 *   block is padded internally with zero rows, never attended. `sortWeights` is
 *   `[d, ceil(maxLength / b)]`; a call with m <= maxLength uses its first ceil(m / b) columns
 *   (as Linformer uses the first m columns of its projections); m > maxLength, or a head dim
 *   other than the weights' d, is an AttentionError.
 * - **n != m.** Queries are the last n positions, p_i = i + m − n, and query i belongs to
 *   block floor(p_i / b). With n > m the first n − m queries sit at negative positions: they
 *   have no block, hence no allowed key, and output zeros.
 * - **Padding.** Keys at or past keyLength[b] are replaced by zero rows before anything reads
 *   them (a selection, so NaN or ±Inf there never propagates): they add nothing to the
 *   summaries, enter the sorted blocks as zero rows, and are not attended in their own block. A
 *   block with no real key has S_j = 0 and stays in the nb × nb matrix. The b rows of the sorted
 *   block are always attended, so every query at a position >= 0 has an allowed key.
 * - **Heads.** Summaries come from the keys, so the sorting is per (batch, kv head); W is
 *   shared by all heads; query head h uses the sorted blocks of kv head floor(h / (heads / kvHeads)).
 *   No repeated K/V is built.
 * - **Training.** W lives in a `tf.Variable` the instance owns (getter `sortWeights`);
 *   `trainable: true` makes it trainable and lists it in `variables`. While tfjs records
 *   gradients, `'auto'` takes the composite (differentiable through tfjs's autodiff); `'kernel'`
 *   then throws (the fused path is forward-only).
 * - Non-causal: `causal: true` is an AttentionError.
 *
 * Paths:
 * - fused (webgpu): summaries, the Sinkhorn iterations on the small [batch·kvHeads, nb, nb]
 *   matrix and the sorted blocks (one batched matMul [nb, nb] × [nb, b·d]) are tfjs ops; then ONE
 *   flash-kernel call attends an interleaved key sequence (per block: its b own keys, then its b
 *   sorted keys; length 2·nb·b) with batch folded into the head axis, a block layout where query
 *   block i visits key block i of 2b keys, and an element rule dropping own keys past the
 *   batch element's length (a per-"head" length read from the rule's params, built on the device
 *   when keyLength is a tensor). Nothing is read back; no n × m tensor.
 * - composite (every backend): the same sorted blocks, then per query block its 2b keys gathered:
 *   scores [batch·kvHeads, blocks, group·b, 2b].
 *
 * Memory O(n·b + (m/b)²) (plus the O(m·d) sorted keys and values); time O(n·b·d + m·(m/b)·d + T·(m/b)²).
 *
 * Paper: Tay et al., "Sparse Sinkhorn Attention", 2020, https://arxiv.org/abs/2002.11296 .
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { webgpuLimits } from '../../core/backend.js';
import { ownedVariable } from '../../core/variables.js';
import { checkHostBudget } from '../../core/budget.js';
import { forwardOnlyKernel, resolveImplementation } from '../../core/dispatch.js';
import { Lifetime } from '../../core/lifecycle.js';
import { AttentionError, show } from '../../core/errors.js';
import { DEFAULT_SEED, SeededRandom } from '../../core/rng.js';
import type { ApplyOptions, Attention, Complexity, Dims, Problem } from '../../core/types.js';
import { checkBool, checkConfigKeys, checkInt, checkMatrix, checkPositive, checkScale, ownMatrix, problemDims, problemPath, validateCall } from '../../core/validate.js';
import { planFor, runFlash } from '../../../kernels/flash/kernel.js';
import { buildLayoutFromEntries, type BlockLayout, type ElementRule } from '../../../kernels/flash/layout.js';
import { add, bindRule, compileRule, div, ge, headParam, J, lt, mod, mul, or, param, type BoundRule, type RuleDecl } from '../../../kernels/flash/rule.js';
import { deviceParams } from '../../../kernels/flash/device_params.js';
import { DISPATCH_OVERHEAD_BYTES, padCopyBytes, planningLimits } from '../../../kernels/shared/limits.js';
import { DISALLOWED_SCORE } from '../../../kernels/shared/masking.js';
import { whereCopies } from '../../../kernels/shared/finite.js';
import { elementRuleOf } from '../pattern.js';
import { meta } from './sinkhorn.meta.js';

export { meta };

/** Config of {@link sinkhornAttention}. */
export interface SinkhornConfig {
  /** Block size b (an integer >= 1). Required. */
  block: number;
  /** Sinkhorn rounds T (an integer >= 0). Default 8. */
  iterations?: number;
  /** Temperature τ (> 0). Default 0.75. */
  temperature?: number;
  /** Longest key sequence the sort weights cover (nb = ceil(maxLength / b) columns). Required unless `sortWeights` is given. */
  maxLength?: number;
  /** Head dim d of q and k (the sort weights' rows). Required unless `sortWeights` is given. */
  headDim?: number;
  /** Explicit sort weights W `[d, ceil(maxLength / b)]` (tensor or nested array), e.g. trained ones; instead of `seed`. */
  sortWeights?: tf.Tensor2D | number[][];
  /** Seed of the sort weights (entries N(0, 1/d)). Default: the catalog's fixed seed. */
  seed?: number;
  /** Whether W is a trainable variable (listed by `variables`). Default false. */
  trainable?: boolean;
  /** Must be false: Sinkhorn attention here is non-causal. */
  causal?: boolean;
  /** Score scale. Default `1 / sqrt(d)`. */
  scale?: number;
}

/** The resolved config. */
export interface ResolvedSinkhornConfig {
  block: number;
  iterations: number;
  temperature: number;
  /** Key blocks the sort weights cover × block. */
  maxLength: number;
  headDim: number;
  seed: number;
  trainable: boolean;
  causal: false;
  scale?: number;
  /** `'explicit'` when sortWeights were given, else `'seeded'`. */
  sortWeights: 'explicit' | 'seeded';
}

/**
 * The seeded sort weights, row-major `[d, blocks]` (`out[t·blocks + a]` = W[t, a]): standard
 * normals from the catalog's generator scaled by 1/√d, so that S_i·W[:, a] is on the scale of
 * one summary's entries.
 */
export function sinkhornSortWeights(d: number, blocks: number, seed: number): Float32Array {
  const vals = new SeededRandom(seed).normals(d * blocks);
  const sd = 1 / Math.sqrt(d);
  for (let i = 0; i < vals.length; i++) vals[i] *= sd;
  return vals;
}

/**
 * The fused path's element rule, in the interleaved key sequence (per block i: 2b keys, own keys
 * at offsets < b): sorted keys always, own key at original position i·b + t only below the
 * (batch element's) length `len`, one value per folded head (batch·heads).
 */
export const SINKHORN_RULE: RuleDecl = {
  allow: or(ge(mod(J, param('b2')), param('b')), lt(add(mul(div(J, param('b2')), param('b')), mod(J, param('b2'))), headParam('len'))),
};

/** Block geometry of one call. */
interface Geometry {
  b: number;
  /** Key blocks ceil(m / b), and the padded key length nb·b. */
  nb: number;
  mp: number;
  /** First query with a position >= 0, and how many queries have one. */
  i0: number;
  nv: number;
  /** First query block (of positions) holding a query, and the blocks from it to the end. */
  qb0: number;
  nq: number;
  /** Zero rows before the first query (inside block qb0) and after the last key (in block nb − 1). */
  front: number;
  back: number;
}

function geometry(dims: Dims, b: number): Geometry {
  const { n, m } = dims;
  const nb = Math.ceil(m / b);
  const mp = nb * b;
  const i0 = Math.max(0, n - m);
  const nv = n - i0;
  const pFirst = Math.max(0, m - n);
  const qb0 = Math.floor(pFirst / b);
  return { b, nb, mp, i0, nv, qb0, nq: nb - qb0, front: pFirst - qb0 * b, back: mp - m };
}

const F = 4;

/** Sinkhorn attention; see the module comment. */
export class SinkhornAttention implements Attention<ResolvedSinkhornConfig> {
  readonly id = meta.id;
  readonly family = meta.family;
  readonly complexity: Complexity = meta.complexity;
  /** Disposed or live: every public method checks it first. */
  private readonly lifetime = new Lifetime();
  private readonly layouts = new Map<string, BlockLayout>();
  private w: tf.Variable<tf.Rank.R2> | null;

  constructor(
    readonly config: Readonly<ResolvedSinkhornConfig>,
    w: tf.Variable<tf.Rank.R2>,
  ) {
    this.w = w;
  }

  /** The sort weights W `[d, ceil(maxLength / b)]` (a `tf.Variable` owned by the variant; trainable with `trainable: true`). */
  get sortWeights(): tf.Variable<tf.Rank.R2> {
    this.lifetime.check(this.id);
    return this.w!;
  }

  /** The variant's trainable variables: `[sortWeights]` with `trainable: true`, else none. */
  get variables(): tf.Variable[] {
    this.lifetime.check(this.id);
    return this.config.trainable ? [this.w!] : [];
  }

  /** Number of key blocks the sort weights cover. */
  private get maxBlocks(): number {
    return Math.ceil(this.config.maxLength / this.config.block);
  }

  private checkShape(dims: Dims): void {
    const { headDim, maxLength } = this.config;
    if (dims.d !== headDim) {
      throw new AttentionError('q', `head dim d = ${headDim} (the sort weights' rows)`, `d = ${dims.d}`);
    }
    if (dims.m > maxLength) {
      throw new AttentionError('k', `a sequence of length m <= maxLength = ${maxLength} (the sort weights cover ${this.maxBlocks} blocks of ${this.config.block})`, `m = ${dims.m}`, 'Build the variant with a larger maxLength.');
    }
  }

  /** Dims of the one flash call: batch folded into heads, keys the interleaved own/sorted sequence. */
  private flashDims(dims: Dims, g: Geometry): Dims {
    return { batch: 1, heads: dims.batch * dims.heads, kvHeads: dims.batch * dims.kvHeads, group: dims.group, n: dims.n, m: 2 * g.mp, d: dims.d, dv: dims.dv };
  }

  /** Query block i (of positions) visits interleaved key block i (2b keys); blocks of negative positions visit nothing. */
  private layoutFor(n: number, m: number): BlockLayout {
    const key = `${n},${m}`;
    let layout = this.layouts.get(key);
    if (!layout) {
      const b = this.config.block;
      const nb = Math.ceil(m / b);
      const off = m - n;
      const rowOffset = ((off % b) + b) % b;
      const shift = Math.floor(off / b);
      const numQBlocks = Math.ceil((n + rowOffset) / b);
      const rows = Array.from({ length: numQBlocks }, (_, r) => {
        const kb = r + shift;
        return kb >= 0 && kb < nb ? [{ start: kb, blocks: 1, full: false }] : [];
      });
      layout = buildLayoutFromEntries({ blockQ: b, blockK: 2 * b, rowOffset, numQBlocks, layoutHeads: 1, rows });
      if (this.layouts.size > 16) this.layouts.clear();
      this.layouts.set(key, layout);
    }
    return layout;
  }

  /** The rule bound for a call: lengths per folded head on the host, or placeholders (keyLength as a tensor). */
  private boundRule(dims: Dims, keyLength: number[] | tf.Tensor1D | null): BoundRule {
    const b = this.config.block;
    const heads = dims.batch * dims.heads;
    const values: Record<string, number | number[]> = { b, b2: 2 * b };
    if (keyLength instanceof tf.Tensor) return bindRule(compileRule(SINKHORN_RULE), values, heads, { len: [0, dims.m] });
    values.len = Array.from({ length: heads }, (_, x) => (keyLength ? Math.min(dims.m, keyLength[Math.floor(x / dims.heads)]) : dims.m));
    return bindRule(compileRule(SINKHORN_RULE), values, heads);
  }

  /**
   * Own and sorted blocks of keys and values, interleaved: `[batch·kvHeads, nb, 2b, dim]` (per
   * block its b own rows, padding zeroed, then its b sorted rows).
   */
  private sortedBlocks(k: tf.Tensor4D, v: tf.Tensor4D, dims: Dims, g: Geometry, keyLength: number[] | tf.Tensor1D | null, w: tf.Tensor2D): { kAll: tf.Tensor4D; vAll: tf.Tensor4D } {
    const { batch, kvHeads, m, d, dv } = dims;
    const { b, nb, mp } = g;
    const G = batch * kvHeads;
    const { iterations, temperature } = this.config;
    return tf.tidy(() => {
      const valid = validity(dims, keyLength);
      const blocks = (x: tf.Tensor4D, dim: number) => {
        // Padding keys are selected out (a product with 0 would keep their NaN or ±Inf).
        const xm = valid ? tf.where(valid, x, tf.zerosLike(x)) : x;
        const xp = mp === m ? xm : tf.pad(xm, [[0, 0], [0, 0], [0, mp - m], [0, 0]]);
        return tf.reshape(xp, [G, nb, b, dim]) as tf.Tensor4D;
      };
      const kb = blocks(k, d);
      const vb = blocks(v, dv);
      const summaries = tf.reshape(tf.sum(kb, 2), [G * nb, d]);
      const wn = nb === this.maxBlocks ? w : tf.slice(w, [0, 0], [d, nb]);
      let L = tf.reshape(tf.div(tf.relu(tf.matMul(summaries, wn)), temperature), [G, nb, nb]) as tf.Tensor3D;
      for (let t = 0; t < iterations; t++) {
        L = tf.sub(L, tf.logSumExp(L, 2, true));
        L = tf.sub(L, tf.logSumExp(L, 1, true));
      }
      const P = tf.exp(L);
      const sorted = (x: tf.Tensor4D, dim: number) => tf.reshape(tf.matMul(P, tf.reshape(x, [G, nb, b * dim])), [G, nb, b, dim]);
      return { kAll: tf.concat([kb, sorted(kb, d)], 2) as tf.Tensor4D, vAll: tf.concat([vb, sorted(vb, dv)], 2) as tf.Tensor4D };
    });
  }

  /**
   * Attention of `q [batch, heads, n, d]` over `k [batch, kvHeads, m, d]`, `v [batch, kvHeads, m, dv]`
   * with m <= maxLength.
   *
   * @returns `[batch, heads, n, dv]`
   * @throws AttentionError on any invalid input (including m > maxLength, d other than the weights'), before dispatch.
   */
  apply(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, options?: ApplyOptions): tf.Tensor4D {
    this.lifetime.check(this.id);
    const { dims, implementation, keyLength, kernelStrategy } = validateCall(q, k, v, options);
    this.checkShape(dims);
    const path = resolveImplementation(forwardOnlyKernel(implementation));
    const scale = this.config.scale ?? 1 / Math.sqrt(dims.d);
    const g = geometry(dims, this.config.block);
    const w = this.w!;
    if (path === 'kernel') {
      const fd = this.flashDims(dims, g);
      const layout = this.layoutFor(dims.n, dims.m);
      const bound = this.boundRule(dims, keyLength);
      const hostRule = elementRuleOf(bound);
      // Everything that can refuse the call does so here, before the first dispatch.
      const plan = planFor(fd, { layout, rule: hostRule, strategy: kernelStrategy });
      const { kAll, vAll } = this.sortedBlocks(k, v, dims, g, keyLength, w);
      let params: tf.Tensor1D | null = null;
      try {
        let rule: ElementRule = hostRule;
        if (keyLength instanceof tf.Tensor) {
          const len = tf.tidy(() => tf.reshape(tf.tile(tf.reshape(tf.clipByValue(tf.cast(keyLength, 'float32'), 0, dims.m), [dims.batch, 1]), [1, dims.heads]), [-1]));
          try {
            params = deviceParams(bound, { heads: { len } });
          } finally {
            len.dispose();
          }
          rule = { ...hostRule, params: null, paramsTensor: params };
        }
        return tf.tidy(() => {
          const q1 = tf.reshape(q, [1, fd.heads, dims.n, dims.d]) as tf.Tensor4D;
          const k1 = tf.reshape(kAll, [1, fd.kvHeads, fd.m, dims.d]) as tf.Tensor4D;
          const v1 = tf.reshape(vAll, [1, fd.kvHeads, fd.m, dims.dv]) as tf.Tensor4D;
          const out = runFlash(q1, k1, v1, fd, { causal: false, scale, keyLength: null, layout, rule }, plan);
          return tf.reshape(out, [dims.batch, dims.heads, dims.n, dims.dv]) as tf.Tensor4D;
        });
      } finally {
        kAll.dispose();
        vAll.dispose();
        params?.dispose();
      }
    }
    this.checkCompositeFits(dims, g);
    checkHostBudget('the sinkhorn composite', this.compositeBytes(dims, keyLength !== null));
    return this.composite(q, k, v, dims, g, keyLength, scale, w);
  }

  /** The composite's [batch·kvHeads, blocks, group·b, 2b] scores must fit the device's binding limit (webgpu only). */
  private checkCompositeFits(dims: Dims, g: Geometry): void {
    const limits = webgpuLimits();
    if (!limits) return;
    const bytes = dims.batch * dims.heads * g.nq * g.b * 2 * g.b * F;
    const max = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
    if (bytes > max) {
      throw new AttentionError('options.implementation', `a composite whose block scores fit the device's ${max}-byte binding limit`, `'composite' needing ${bytes} bytes`, "Use implementation 'auto' or 'kernel', or split the batch or heads across calls.");
    }
  }

  private composite(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, dims: Dims, g: Geometry, keyLength: number[] | tf.Tensor1D | null, scale: number, w: tf.Tensor2D): tf.Tensor4D {
    const { batch: B, heads: H, kvHeads: KH, group: G, m, d, dv } = dims;
    const { b, i0, nv, qb0, nq, front, back } = g;
    const BK = B * KH;
    return tf.tidy(() => {
      const { kAll, vAll } = this.sortedBlocks(k, v, dims, g, keyLength, w);
      // The queries with a position, scaled, padded to whole blocks qb0 … nb − 1 and grouped by kv head.
      const qv = i0 > 0 ? tf.slice(q, [0, 0, i0, 0], [-1, -1, nv, -1]) : q;
      const qs = tf.mul(qv, scale);
      const qp = front || back ? tf.pad(qs, [[0, 0], [0, 0], [front, back], [0, 0]]) : qs;
      const qg = tf.reshape(tf.transpose(tf.reshape(qp, [BK, G, nq, b * d]), [0, 2, 1, 3]), [BK, nq, G * b, d]);
      const kq = qb0 > 0 ? tf.slice(kAll, [0, qb0, 0, 0], [-1, nq, -1, -1]) : kAll;
      const vq = qb0 > 0 ? tf.slice(vAll, [0, qb0, 0, 0], [-1, nq, -1, -1]) : vAll;
      let s = tf.matMul(qg, kq, false, true) as tf.Tensor; // [BK, nq, G·b, 2b]
      if (keyLength !== null || g.mp !== m) {
        // Own keys at or past the length (or past m) are not attended; sorted rows always are.
        const pos = new Int32Array(nq * 2 * b);
        for (let i = 0; i < nq; i++) for (let t = 0; t < 2 * b; t++) pos[i * 2 * b + t] = t < b ? (qb0 + i) * b + t : -1;
        const len = keyLength instanceof tf.Tensor ? tf.minimum(keyLength, m) : tf.tensor1d(keyLength ?? new Array(B).fill(m), 'int32');
        // Built at rank 3 (webgpu's select stops at rank 4), then broadcast over kv heads and query rows.
        const allowed = tf.less(tf.tensor3d(pos, [1, nq, 2 * b], 'int32'), tf.reshape(len, [B, 1, 1]));
        const bias = tf.reshape(tf.where(allowed, tf.zeros(allowed.shape), tf.fill(allowed.shape, DISALLOWED_SCORE)), [B, 1, nq, 1, 2 * b]);
        s = tf.reshape(tf.add(tf.reshape(s, [B, KH, nq, G * b, 2 * b]), bias), [BK, nq, G * b, 2 * b]);
      }
      const o = tf.matMul(tf.softmax(s), vq); // [BK, nq, G·b, dv]
      const og = tf.reshape(tf.transpose(tf.reshape(o, [BK, nq, G, b * dv]), [0, 2, 1, 3]), [B, H, nq * b, dv]);
      const out = front || back ? tf.slice(og, [0, 0, front, 0], [-1, -1, nv, -1]) : og;
      return (i0 > 0 ? tf.concat([tf.zeros([B, H, i0, dv]), out], 2) : out) as tf.Tensor4D;
    });
  }

  /**
   * Bytes of the sorted blocks (both paths): masked copies (with keyLength), padding, summaries,
   * the Sinkhorn iterations on [G, nb, nb], the sorted blocks and their interleaving. `views`:
   * whether reshapes count (the engine counts every handle on cpu and wasm; on webgpu a
   * reshape shares its buffer).
   */
  private sortedBytes(dims: Dims, g: Geometry, keyLength: boolean, views: number): number {
    const { batch, kvHeads, m, d, dv } = dims;
    const { nb, mp } = g;
    const G = batch * kvHeads;
    const dd = d + dv;
    // tf.where: zerosLike, the selection and its broadcast handles (cpu, wasm); the validity mask.
    const masked = keyLength ? (2 + whereCopies()) * G * m * dd + 6 * batch * m : 0;
    const padded = mp !== m ? G * mp * dd : 0;
    const small = G * nb * d * (1 + views) + (nb === this.maxBlocks ? 0 : d * nb);
    const nn = G * nb * nb;
    // matMul, relu, div (and a reshape); per round two logSumExp (max, sub, exp, sum, log, add)
    // and two subtractions; exp.
    const sinkhorn = (3 + views) * nn + this.config.iterations * 2 * (3 * nn + 6 * G * nb) + nn;
    // P·blocks (a reshape in, the product, a reshape out), then the interleaved concat; the blocks' reshape.
    const sorted = (1 + 3 * views) * G * mp * dd + 2 * G * mp * dd;
    return (masked + padded + small + sinkhorn + sorted) * F + (12 + 8 * this.config.iterations) * 256;
  }

  /** The composite's bound: sorted blocks, the grouped queries, O(n·b) block scores and softmax, the output reshapes. */
  private compositeBytes(dims: Dims, keyLength: boolean): number {
    const { batch: B, heads: H, kvHeads: KH, d, dv } = dims;
    const views = viewCopies();
    const g = geometry(dims, this.config.block);
    const { b, nq, nv, i0 } = g;
    const Lq = nq * b;
    const BK = B * KH;
    // Slice, scale, pad, transpose (and two reshapes).
    const qBytes = B * H * (nv * d * 2 + Lq * d * (2 + 2 * views));
    const kvSlices = g.qb0 > 0 ? BK * nq * 2 * b * (d + dv) : 0;
    const E = B * H * Lq * 2 * b;
    // The bias add and its reshapes, the small mask tensors.
    const mask = keyLength || g.mp !== dims.m ? (1 + 2 * views) * E + 12 * B * nq * 2 * b : 0;
    // Scores, softmax (its output, and max, sub, exp, sum, div while it runs), the product.
    const scores = E + 4 * E + 2 * B * H * Lq;
    // Product, transpose (and two reshapes), slice, the zeros and concat.
    const outBytes = B * H * ((2 + 2 * views) * Lq * dv + nv * dv + (i0 > 0 ? (i0 + dims.n) * dv : 0));
    const bytes = this.sortedBytes(dims, g, keyLength, views) + (qBytes + kvSlices + mask + scores + outBytes) * F + 24 * 256;
    return Math.ceil(bytes * 1.1) + 4096;
  }

  /** The fused path's bound: sorted blocks, the rule's params, the flash call's partials, padding copies and uploads. */
  private kernelBytes(dims: Dims, keyLength: boolean): number {
    const views = viewCopies();
    const g = geometry(dims, this.config.block);
    const fd = this.flashDims(dims, g);
    const layout = this.layoutFor(dims.n, dims.m);
    const bound = this.boundRule(dims, null);
    const plan = planFor(fd, { layout, rule: elementRuleOf(bound) }, planningLimits());
    const padCopies = padCopyBytes(fd, plan.dPad, plan.dvPad);
    const layoutBytes = 2 * (layout.rowStart.length + Math.max(3, 3 * layout.keyBlocks.length)) * 4;
    const params = (keyLength ? 6 : 2) * bound.params.length * 4 + 4 * dims.batch * dims.heads * 4;
    // The reshaped views of q, the interleaved keys and values and the output.
    const reshapes = views * (dims.batch * dims.heads * dims.n * (dims.d + dims.dv) + fd.kvHeads * fd.m * (dims.d + dims.dv)) * F;
    const bytes = this.sortedBytes(dims, g, keyLength, views) + plan.partialBytes + padCopies + layoutBytes + params + reshapes + 3 * DISPATCH_OVERHEAD_BYTES;
    return Math.ceil(bytes * 1.1) + 4096;
  }

  /**
   * Upper bound of the intermediate bytes of `apply`: the sorted blocks (O(m·d) plus
   * O(T·(m/b)²) for the Sinkhorn iterations), then O(n) split partials (fused) or O(n·b) block
   * scores (composite).
   */
  memoryBytes(problem: Problem): number {
    this.lifetime.check(this.id);
    const dims = problemDims(problem);
    this.checkShape(dims);
    const path = problemPath(problem);
    return path === 'kernel' ? this.kernelBytes(dims, !!problem.keyLength) : this.compositeBytes(dims, !!problem.keyLength);
  }

  /** Frees the sort weights and ends the variant (every later call throws AttentionError('this')); again, a no-op. */
  dispose(): void {
    if (!this.lifetime.end()) return;
    this.w?.dispose();
    this.w = null;
  }
}

/** Whether the engine counts a reshape's handle as new bytes (cpu, wasm, tensorflow: 1) or it shares a buffer the backend sees once (webgpu: 0). */
function viewCopies(): number {
  return tf.getBackend() === 'webgpu' ? 0 : 1;
}

/** Keys below each batch element's length: bool `[batch, 1, m, 1]`, or null when every key is real. */
function validity(dims: Dims, keyLength: number[] | tf.Tensor1D | null): tf.Tensor | null {
  const { batch, m } = dims;
  if (keyLength === null || (!(keyLength instanceof tf.Tensor) && keyLength.every((l) => l >= m))) return null;
  const kl = tf.reshape(keyLength instanceof tf.Tensor ? keyLength : tf.tensor1d(keyLength, 'int32'), [batch, 1, 1, 1]);
  return tf.less(tf.reshape(tf.range(0, m, 1, 'int32'), [1, 1, m, 1]), kl);
}

/**
 * Builds Sparse Sinkhorn attention.
 *
 * @param config - `block` b (required), `iterations` T (8), `temperature` τ (0.75),
 * `sortWeights` `[d, ceil(maxLength / b)]` or `maxLength` + `headDim` (+ `seed`),
 * `trainable` (false), `scale` (1/√d). `causal: true` throws.
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import { sinkhornAttention } from 'attention-catalog/sinkhorn';
 * const attn = sinkhornAttention({ block: 64, maxLength: 4096, headDim: 64 });
 * const q = tf.randomNormal([1, 8, 4096, 64]) as tf.Tensor4D;
 * const out = attn.apply(q, q, q); // each block of 64 queries: its own 64 keys + 64 sorted rows
 * attn.dispose();
 * ```
 */
export function sinkhornAttention(config: SinkhornConfig): SinkhornAttention {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new AttentionError('config', 'an object', show(config));
  checkConfigKeys(meta.id, config, ['block', 'iterations', 'temperature', 'maxLength', 'headDim', 'sortWeights', 'seed', 'trainable', 'causal', 'scale']);
  if (config.causal !== undefined && checkBool('config.causal', config.causal)) {
    throw new AttentionError('config.causal', 'false (Sinkhorn attention sorts blocks over the whole sequence, so it has no causal form here)', 'true');
  }
  const block = checkInt('config.block', config.block, 1);
  const iterations = config.iterations === undefined ? 8 : checkInt('config.iterations', config.iterations, 0, 1000);
  const temperature = config.temperature === undefined ? 0.75 : checkPositive('config.temperature', config.temperature);
  const trainable = config.trainable === undefined ? false : checkBool('config.trainable', config.trainable);
  const scale = checkScale(config.scale);
  if (config.seed !== undefined && config.sortWeights !== undefined) {
    throw new AttentionError('config.sortWeights', 'either seed or sortWeights, not both', 'both');
  }
  const seed = config.seed === undefined ? DEFAULT_SEED : checkInt('config.seed', config.seed, 0);
  const maxGiven = config.maxLength === undefined ? undefined : checkInt('config.maxLength', config.maxLength, 1);
  const dGiven = config.headDim === undefined ? undefined : checkInt('config.headDim', config.headDim, 1);
  let init: tf.Tensor2D;
  let maxLength: number;
  let headDim: number;
  if (config.sortWeights !== undefined) {
    const arg = checkMatrix('config.sortWeights', config.sortWeights, '[d, ceil(maxLength / block)]');
    const [d, cols] = arg.shape;
    if (dGiven !== undefined && dGiven !== d) throw new AttentionError('config.headDim', `the sort weights' first dimension ${d}`, `${dGiven}`);
    if (maxGiven !== undefined && Math.ceil(maxGiven / block) !== cols) {
      throw new AttentionError('config.sortWeights', `shape [d, ${Math.ceil(maxGiven / block)}] (ceil(maxLength / block) columns)`, `shape ${show(arg.shape)}`);
    }
    maxLength = maxGiven ?? cols * block;
    headDim = d;
    init = ownMatrix(arg);
  } else {
    if (maxGiven === undefined) throw new AttentionError('config.maxLength', 'the longest key sequence length (an integer >= 1), or explicit sortWeights', 'undefined');
    if (dGiven === undefined) throw new AttentionError('config.headDim', 'the head dim d of q and k (an integer >= 1), or explicit sortWeights', 'undefined');
    maxLength = maxGiven;
    headDim = dGiven;
    const blocks = Math.ceil(maxLength / block);
    const host = sinkhornSortWeights(headDim, blocks, seed);
    // Through one op, so that the weights live on the active backend's device from the start.
    init = tf.tidy(() => tf.add(tf.tensor2d(host, [headDim, blocks], 'float32'), 0)) as tf.Tensor2D;
  }
  const w = ownedVariable(init as tf.Tensor2D, trainable);
  const cfg: ResolvedSinkhornConfig = {
    block,
    iterations,
    temperature,
    maxLength,
    headDim,
    seed,
    trainable,
    causal: false,
    sortWeights: config.sortWeights !== undefined ? 'explicit' : 'seeded',
  };
  if (scale !== undefined) cfg.scale = scale;
  return new SinkhornAttention(Object.freeze(cfg), w);
}
