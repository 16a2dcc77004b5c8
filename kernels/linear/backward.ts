/**
 * The fused linear-attention kernel's gradient, registered with tfjs's gradient registry for
 * `AttnCatalogLinearAttention` on first use (never on import). With features φ, the state
 * `S = Σ_j φk_j v_jᵀ`, `z = Σ_j φk_j` (causal: over j <= p_i), `o_i = φq_iᵀS / φq_iᵀz`, and
 * `g_i = dO_i / den_i`, `e_i = −g_i·o_i`:
 *
 * - `dφq_i = S_i g_i + e_i z_i` — a forward scan: causal linear attention of (g, v, φk) with
 *   identity features, numerator only, plus the running sum of φk;
 * - `dφk_j = Σ_{i: p_i ≥ j} φq_i (g_i·v_j + e_i)` and `dv_j = Σ_{i: p_i ≥ j} (φq_i·φk_j) g_i` —
 *   **reverse scans**: the same kernel over the reversed sequences (queries v_j resp. φk_j, keys
 *   g_i resp. φq_i, values φq_i resp. g_i), plus the reverse running sum of e_i φq_i;
 * - non-causal: the three are products with the F×dv states (`Σ_i φq_i g_iᵀ`, …).
 *
 * Then the feature maps' derivatives (elu+1, relu, FAVOR+ relu). Memory O(n·(F + dv)): the
 * features, the running sums and the reversed copies, never an n×m tensor. Covered: every kind but
 * the stabilized FAVOR+ softmax kernel, and causal calls with n = m (the reversal then keeps the
 * alignment); see {@link fusedLinearBackwardCovers}. Others run their composite while recording.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { registerGradientOnce } from '../shared/register.js';
import type { GradConfig, NamedAttrMap } from '@tensorflow/tfjs-core';
import type { Dims } from '../../src/core/types.js';
import { constantOf } from '../../src/core/grad.js';
import { activeKernelLimits } from '../shared/limits.js';
import { isExpKind, isProjectedKind, type FeatureKind } from './feature_maps.js';
import { planLinear } from './plan.js';
import { perQueryHead, sumGroups } from '../shared/heads.js';

/** The inputs of the forward kernel the gradient saves, in order (absent ones get placeholders while recording). */
export const LINEAR_SAVED_INPUTS = ['q', 'k', 'v', 'keyLength', 'omegaT'] as const;

/** Whether the fused backward covers a call (else the call runs its composite while gradients are recorded). */
export function fusedLinearBackwardCovers(kind: FeatureKind, causal: boolean, dims: Pick<Dims, 'n' | 'm'>): boolean {
  return !isExpKind(kind) && (!causal || dims.n === dims.m);
}

interface LinearGradAttrs {
  kind: FeatureKind;
  causal: boolean;
  features: number;
  xscale: number;
}

/** Runs the fused kernel with identity features, numerator only (causal; heads `q`, kv heads `k`). */
type RawScan = (q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, keyLength: tf.Tensor1D | null) => tf.Tensor4D;

let rawScan: RawScan | null = null;

/** Set by kernel.ts (which owns the kernel call), so that this module imports no kernel code of its own. */
export function setRawScan(f: RawScan): void {
  rawScan = f;
}

function linearGrad(dys: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: NamedAttrMap): Record<string, () => tf.Tensor> {
  const a = attrs as unknown as LinearGradAttrs;
  const dy = (Array.isArray(dys) ? dys[0] : dys) as tf.Tensor4D;
  const [q, k, v, keyLength, omegaT, out] = saved as tf.Tensor4D[];
  const [B, H, n, dPad] = q.shape;
  const [, KH, m] = k.shape;
  const dvPad = v.shape[3];
  const F = a.features;
  if (!rawScan) throw new Error('internal: the linear backward has no kernel');
  const scan = rawScan;
  const [dq, dk, dvOut] = tf.tidy(() => {
    // Key validity [B, 1, m, 1] (keys past keyLength take no part) from the saved lengths.
    const kvalid = tf.cast(tf.less(tf.reshape(tf.range(0, m, 1, 'int32'), [1, 1, m, 1]), tf.reshape(keyLength as unknown as tf.Tensor1D, [B, 1, 1, 1])), 'float32');
    // Features and their derivative factors (elementwise: on the d real lanes; FAVOR+ relu: projected).
    const projected = isProjectedKind(a.kind);
    const pre = (x: tf.Tensor4D) => (projected ? tf.reshape(tf.matMul(tf.reshape(tf.mul(x, a.xscale), [-1, dPad]), omegaT as unknown as tf.Tensor2D, false, true), [...x.shape.slice(0, 3), -1]) : tf.slice(x, [0, 0, 0, 0], [-1, -1, -1, F]));
    const phiOf = (x: tf.Tensor): tf.Tensor => (a.kind === 'elu+1' ? tf.add(tf.elu(x), 1) : tf.relu(x));
    const dphiOf = (x: tf.Tensor): tf.Tensor => constantOf([x], (y) => (a.kind === 'elu+1' ? tf.where(tf.greater(y, 0), tf.onesLike(y), tf.exp(y)) : tf.cast(tf.greater(y, 0), 'float32')));
    const xq = pre(q);
    const xk = pre(k);
    const pq = phiOf(xq); // [B, H, n, F']
    const pk = tf.mul(phiOf(xk), kvalid); // [B, KH, m, F'], padding keys 0
    const Fp = pq.shape[3] as number;
    const G = H / KH;
    // den_i = φq_i·z_i, g = dO / den (0 where den = 0), e = −g·o.
    let zAt: tf.Tensor; // [B, H, n, F']: z_i of each query row
    if (a.causal) zAt = perQueryHead(tf.cumsum(pk, 2), H);
    else zAt = perQueryHead(tf.sum(pk, 2, true), H);
    const den = tf.sum(tf.mul(pq, zAt), -1, true);
    const ok = constantOf([den], (x) => tf.greater(x, 0));
    const g = tf.where(tf.broadcastTo(ok, dy.shape), tf.div(dy, tf.where(ok, den, tf.onesLike(den))), tf.zerosLike(dy)) as tf.Tensor4D; // [B, H, n, dvPad]
    const e = tf.neg(tf.sum(tf.mul(g, out), -1, true)); // [B, H, n, 1]
    let dpq: tf.Tensor;
    let dpk: tf.Tensor;
    let dvv: tf.Tensor;
    if (!a.causal) {
      // States per K/V head over its group's rows: S [F', dv], P = Σ φq gᵀ [F', dv], Σ e φq [1, F'].
      const S = tf.matMul(pk as tf.Tensor4D, v, true, false);
      const rowsG = (x: tf.Tensor) => tf.reshape(x, [B, KH, G * n, x.shape[3] as number]) as tf.Tensor4D;
      const P = tf.matMul(rowsG(pq), rowsG(g), true, false);
      const eq = tf.sum(tf.mul(rowsG(pq), rowsG(e)), 2, true); // [B, KH, 1, F']
      dpq = tf.reshape(tf.add(tf.matMul(rowsG(g), S, false, true), tf.mul(rowsG(e), tf.sum(pk, 2, true))), [B, H, n, Fp]);
      dpk = tf.add(tf.matMul(v, P, false, true), eq);
      dvv = tf.matMul(pk as tf.Tensor4D, P);
    } else {
      // Forward scan: Σ_{j <= i} (g_i·v_j) φk_j, then e_i z_i.
      dpq = tf.add(scan(g, v, pk as tf.Tensor4D, keyLength as unknown as tf.Tensor1D), tf.mul(e, zAt));
      // Reverse scans (n = m): the reversed sequences are causal again.
      const rev = (x: tf.Tensor) => tf.reverse(x, 2);
      const rq = rev(pq) as tf.Tensor4D;
      const rg = rev(g) as tf.Tensor4D;
      const dkRev = scan(rev(perQueryHead(v, H)) as tf.Tensor4D, rg, rq, null); // Σ_{i >= j} (g_i·v_j) φq_i, per query head
      // Σ_{i >= j} e_i φq_i, as a forward cumsum of the reversed rows: tfjs-backend-webgpu 4.22 writes the
      // axis length into its reverse cumsum's shader without keying the pipeline on it (a later call
      // of another length reuses the wrong one).
      const eSum = rev(tf.cumsum(rev(tf.mul(e, pq)), 2));
      dpk = sumGroups(tf.add(rev(dkRev), eSum), KH);
      const dvRev = scan(rev(perQueryHead(pk, H)) as tf.Tensor4D, rq, rg, null); // Σ_{i >= j} (φq_i·φk_j) g_i
      dvv = sumGroups(rev(dvRev), KH);
    }
    // Keys past keyLength: exactly zero.
    dpk = tf.mul(dpk, kvalid);
    dvv = tf.mul(dvv, kvalid);
    // Back through the feature maps.
    const back = (dphi: tf.Tensor, x: tf.Tensor, shape: number[]): tf.Tensor => {
      const dx = tf.mul(dphi, dphiOf(x));
      if (projected) return tf.reshape(tf.mul(tf.matMul(tf.reshape(dx, [-1, Fp]), omegaT as unknown as tf.Tensor2D), a.xscale), shape);
      return dPad === F ? dx : tf.pad(dx, [[0, 0], [0, 0], [0, 0], [0, dPad - F]]);
    };
    return [back(dpq, xq, [B, H, n, dPad]), back(dpk, xk, [B, KH, m, dPad]), dvv.shape[3] === dvPad ? dvv : tf.slice(dvv, [0, 0, 0, 0], [-1, -1, -1, dvPad])];
  });
  return { q: () => dq, k: () => dk, v: () => dvOut };
}

/** The gradient's registration record (registered by `runLinearKernel` on first use while gradients are recorded). */
export const linearGradConfig: GradConfig = {
  kernelName: 'AttnCatalogLinearAttention',
  inputsToSave: [...LINEAR_SAVED_INPUTS],
  outputsToSave: [true],
  gradFunc: linearGrad as unknown as GradConfig['gradFunc'],
};

/** Registers {@link linearGradConfig} once. */
export const registerLinearGradient = (): void => registerGradientOnce(linearGradConfig);

/** The plan of a raw scan (identity features over d = the query width, values of width dv). */
export function rawScanPlan(dims: Dims) {
  return planLinear(dims, 'identity', dims.d, true, activeKernelLimits());
}
