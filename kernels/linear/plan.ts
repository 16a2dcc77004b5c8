/**
 * Planning of the fused linear-attention kernel (the four passes of `kernel.ts`): chunk sizes,
 * buffer sizes and per-invocation loop counts, checked against the device's limits and the
 * software adapter's loop cap before anything is dispatched.
 *
 * Passes, with F the feature count (d for elementwise maps, M for FAVOR+), F4 = ceil(F/4),
 * C the chunk length and T = ceil(m / C) the number of chunks:
 *
 * | pass | invocation | loop iterations |
 * |---|---|---|
 * | features (FAVOR+ only) | (key, kv head, 4 features) | 0 (head dims unrolled) |
 * | chunk sums | (chunk, 4 features, kv head) | C (×2 for the softmax kernel: max, then sums) |
 * | scan / merge | (feature, kv head) | T |
 * | queries | (query row, head) | F4 + F, causal: + C·(F4 + 1) (×2 for the softmax kernel) |
 *
 * @module
 */
import { AttentionError } from '../../src/core/errors.js';
import type { Dims } from '../../src/core/types.js';
import { LOOP_BUDGET } from '../shared/limits.js';
import { checkBinding, checkBindingCount, checkIOLimits, maxBindingBytes, pad4, padCopyBytes, type KernelLimits } from '../shared/limits.js';
import { isExpKind, isProjectedKind, type FeatureKind } from './feature_maps.js';

/** Invocations per workgroup along x in every pass. */
export const LINEAR_WORKGROUP = 64;
/** Preferred chunk length of the causal scan. */
export const CAUSAL_CHUNK = 64;
/** Non-causal: keys per split below which splitting further stops paying off. */
export const MIN_KEYS_PER_SPLIT = 256;
/** Non-causal: splits used when the loop budget does not force more. */
export const BASE_SPLITS = 16;
/** Bytes of uniforms and other small per-dispatch buffers (an upper bound, per pass). */
export const LINEAR_DISPATCH_OVERHEAD = 1024;

/** A planned dispatch of the linear-attention kernel. */
export interface LinearPlan {
  kind: FeatureKind;
  causal: boolean;
  /** Number of features F and F padded to a multiple of 4. */
  features: number;
  fPad: number;
  dPad: number;
  dvPad: number;
  /** Keys per chunk (causal: the scan's chunk; non-causal: one split of the reduction). */
  chunk: number;
  /** Number of chunks T. */
  chunks: number;
  /** Bytes of the key-feature buffer (FAVOR+ only, else 0). */
  featureBytes: number;
  /** Bytes of the per-chunk sums, and of the scanned (causal) or merged (non-causal) state. */
  sumBytes: number;
  stateBytes: number;
  /** Worst-case loop iterations of one invocation, per pass. */
  loops: { sums: number; scan: number; query: number };
  maxLoopIterations: number;
}

/**
 * Plans the kernel for `dims` with `features` features of `kind`.
 *
 * @throws AttentionError when a buffer would exceed the device's binding limit, a dispatch its
 * workgroup limit, a shader its storage-buffer limit, or an invocation the loop budget.
 */
export function planLinear(dims: Dims, kind: FeatureKind, features: number, causal: boolean, limits: KernelLimits): LinearPlan {
  const { batch, kvHeads, n, m } = dims;
  const { dPad, dvPad } = checkIOLimits(dims, limits);
  const fPad = pad4(features);
  const f4 = fPad / 4;
  const exp = isExpKind(kind);
  const projected = isProjectedKind(kind);
  const passes = exp ? 2 : 1;
  const maxBind = maxBindingBytes(limits);
  const check = (name: string, bytes: number) => checkBinding(limits, name, bytes);
  const maxGroups = limits.maxComputeWorkgroupsPerDimension;
  for (const [name, len] of [['q', n], ['k', m]] as const) {
    if (Math.ceil(len / LINEAR_WORKGROUP) > maxGroups) {
      throw new AttentionError(name, `length <= ${maxGroups * LINEAR_WORKGROUP}`, `${len}`);
    }
  }
  // Storage bindings of the widest pass (queries, causal): q, keys, v, keyLength, state, omega, output.
  const bindings = 1 + (causal ? 5 : 2) + (projected ? 1 : 0);
  checkBindingCount(limits, bindings);
  const queryBase = f4 + fPad;
  let chunk: number;
  if (causal) {
    const perKey = passes * (f4 + 1);
    const room = Math.floor((LOOP_BUDGET - queryBase) / perKey);
    if (room < 1) {
      throw new AttentionError('config.features', `a feature count whose causal query pass fits the ${LOOP_BUDGET}-iteration loop budget`, `${features}`, "Use fewer features or implementation 'composite'.");
    }
    chunk = Math.min(CAUSAL_CHUNK, room);
  } else {
    const maxChunk = Math.floor(LOOP_BUDGET / passes);
    const splits = Math.max(Math.min(BASE_SPLITS, Math.ceil(m / MIN_KEYS_PER_SPLIT)), Math.ceil(m / maxChunk), 1);
    chunk = Math.ceil(m / splits);
    if (queryBase > LOOP_BUDGET) {
      throw new AttentionError('config.features', `a feature count whose query pass fits the ${LOOP_BUDGET}-iteration loop budget`, `${features}`);
    }
  }
  let chunks = Math.ceil(m / chunk);
  const rowBytes = (dvPad + 4) * 4;
  const sumsFor = (t: number) => batch * kvHeads * t * fPad * rowBytes;
  // A causal scan state per chunk must fit one binding: longer chunks (fewer states) while the loop budget allows.
  if (causal) {
    const perKey = passes * (f4 + 1);
    while (sumsFor(chunks) > maxBind && queryBase + 2 * chunk * perKey <= LOOP_BUDGET && chunk < m) {
      chunk *= 2;
      chunks = Math.ceil(m / chunk);
    }
  }
  if (chunks > LOOP_BUDGET) {
    throw new AttentionError('k', `at most ${LOOP_BUDGET * chunk} keys (the scan's loop budget)`, `${m}`);
  }
  if (Math.ceil((chunks * f4) / LINEAR_WORKGROUP) > maxGroups) {
    throw new AttentionError('k', `at most ${Math.floor((maxGroups * LINEAR_WORKGROUP) / f4) * chunk} keys (the device's workgroups per dimension)`, `${m}`);
  }
  const featureBytes = projected ? batch * kvHeads * m * fPad * 4 : 0;
  check('k (features)', featureBytes);
  const sumBytes = sumsFor(chunks);
  check('k (chunk sums)', sumBytes);
  const stateBytes = causal ? sumBytes : sumsFor(1);
  check('omega', fPad * dPad * 4);
  const loops = {
    sums: passes * chunk,
    scan: chunks,
    query: queryBase + (causal ? passes * chunk * (f4 + 1) : 0),
  };
  return {
    kind,
    causal,
    features,
    fPad,
    dPad,
    dvPad,
    chunk,
    chunks,
    featureBytes,
    sumBytes,
    stateBytes,
    loops,
    maxLoopIterations: Math.max(loops.sums, loops.scan, loops.query),
  };
}

/**
 * Upper bound of the kernel path's intermediate bytes: the key features, the chunk sums and the
 * state (all may be alive at once: the webgpu backend frees buffers at its next submit), the
 * padded copies of q, k, v (when d or dv is not a multiple of 4) and of omega, the key-length
 * upload, and per-pass uniforms.
 */
export function linearKernelBytes(dims: Dims, plan: LinearPlan, keyLength: boolean): number {
  const { batch } = dims;
  const { dPad, dvPad, fPad } = plan;
  const padCopies = padCopyBytes(dims, dPad, dvPad);
  const omega = isProjectedKind(plan.kind) ? 2 * fPad * dPad * 4 + plan.features * dims.d * 4 : 0;
  return plan.featureBytes + plan.sumBytes + plan.stateBytes + padCopies + omega + (keyLength ? 0 : batch * 4) + 4 * LINEAR_DISPATCH_OVERHEAD;
}
