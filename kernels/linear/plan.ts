/**
 * Planning of the fused linear-attention kernel (the passes of `kernel.ts`): chunk sizes,
 * buffer sizes and per-invocation loop counts, checked against the device's limits and the
 * software adapter's loop cap before anything is dispatched.
 *
 * Passes, with F the feature count (d for elementwise maps, M for FAVOR+), F4 = ceil(F/4),
 * d4 = ceil(d/4), dv4 = ceil(dv/4), G = {@link DV_BLOCK}, C the chunk length and T = ceil(m / C)
 * the number of chunks:
 *
 * | pass | invocation | loop iterations |
 * |---|---|---|
 * | key features (FAVOR+ only) | (key, kv head, 4 features) | d4 |
 * | chunk sums | (chunk, 4 features, kv head, G columns of dv) | C (×2 for the softmax kernel: max, then sums) |
 * | scan / merge | (feature, kv head, 1 column of dv) | T |
 * | query features (FAVOR+ only) | (query row, head, 4 features) | d4 |
 * | queries, non-causal | (query row, head, G columns of dv) | F4 (×2 for the softmax kernel: bound, then sums) |
 * | queries, causal | (query row, head) | C·(F4 + 1) (×2 for the softmax kernel) + F4 (not for FAVOR+ relu) + B·(1 + F4 + C), B = ceil(dv4 / G) |
 *
 * Sizes enter the shaders as uniforms and loop bounds (the one exception: the causal query's
 * private array of its chunk's key weights, {@link LinearPlan.intraSlots} long, which is in that
 * shader's key), and the only unrolled code is a fixed tile (4 features × G vec4 columns of dv,
 * or 4 features × one vec4 of d). So the generated WGSL, and the time the driver takes to
 * compile it on a first call, do not grow with d, dv or F (fully unrolled feature × head-dim
 * products took the software adapter up to minutes to compile), and one shader per pass serves
 * every size. What the loop cap requires is planned here: the chunk length C.
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
/** Passes the kernel dispatches at most (key features, chunk sums, scan, query features, queries). */
export const LINEAR_PASSES = 5;
/**
 * vec4 columns of dv that the chunk-sum and query passes accumulate at once (the unrolled tile,
 * 32 dims): the chunk sums and the non-causal queries split dv across invocations in blocks of
 * this many columns, a causal query row loops over them.
 */
export const DV_BLOCK = 8;
/**
 * Most keys a causal query row's own chunk may have: the row keeps their weights in a private
 * array (4 KiB, under WGSL's 8 KiB of function-address-space memory per invocation).
 */
export const MAX_INTRA_SLOTS = 1024;

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
  /** Causal: slots of a query row's private array of its chunk's key weights (>= chunk); else 0. */
  intraSlots: number;
  /** Bytes of the key-feature buffer (FAVOR+ only, else 0). */
  featureBytes: number;
  /** Bytes of the query-feature buffer (FAVOR+ only, else 0). */
  queryFeatureBytes: number;
  /** Bytes of the per-chunk sums, and of the scanned (causal) or merged (non-causal) state. */
  sumBytes: number;
  stateBytes: number;
  /** Worst-case loop iterations of one invocation, per pass. */
  loops: { features: number; sums: number; scan: number; query: number };
  maxLoopIterations: number;
}

/**
 * Plans the kernel for `dims` with `features` features of `kind`.
 *
 * @throws AttentionError when a buffer would exceed the device's binding limit, a dispatch its
 * workgroup limit, a shader its storage-buffer limit, or an invocation the loop budget.
 */
export function planLinear(dims: Dims, kind: FeatureKind, features: number, causal: boolean, limits: KernelLimits): LinearPlan {
  const { batch, heads, kvHeads, n, m } = dims;
  const { dPad, dvPad } = checkIOLimits(dims, limits);
  const fPad = pad4(features);
  const f4 = fPad / 4;
  const d4 = dPad / 4;
  const dv4 = dvPad / 4;
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
  // Dispatch z: 4-feature groups (feature passes), columns of dv (scan).
  if (f4 > maxGroups) {
    throw new AttentionError('config.features', `at most ${4 * maxGroups} features (the device's workgroups per dimension)`, `${features}`);
  }
  if (dv4 > maxGroups) {
    throw new AttentionError('v', `a head dim of at most ${4 * maxGroups} (the device's workgroups per dimension)`, `${dims.dv}`);
  }
  // Storage bindings of the widest pass, output included: causal queries (features, keys, v,
  // keyLength, state), else the chunk sums (keys, v, keyLength).
  checkBindingCount(limits, causal ? 6 : 4);
  const featureLoops = projected ? d4 : 0;
  if (featureLoops > LOOP_BUDGET) {
    throw new AttentionError('q', `a head dim whose feature pass fits the ${LOOP_BUDGET}-iteration loop budget (d <= ${4 * LOOP_BUDGET})`, `${dims.d}`);
  }
  // Queries. Non-causal: the state part (for the softmax kernel a bound loop, then the sums).
  // Causal: the softmax kernel's bound over the state; per key of the row's own chunk one loop
  // over the features (twice for the softmax kernel: bound, then weight; elementwise maps loop
  // over the features outside, the keys inside, one more iteration per vec4); then per column
  // block the state part and the chunk's keys again (reading their weights).
  const blocks = Math.ceil(dv4 / DV_BLOCK);
  const queryBase = causal ? (exp || !projected ? f4 : 0) + blocks * (1 + f4) : passes * f4;
  const perKey = passes * (f4 + 1) + blocks;
  let chunk: number;
  if (causal) {
    const room = Math.floor((LOOP_BUDGET - queryBase) / perKey);
    if (room < 1) {
      throw new AttentionError('config.features', `a feature count whose causal query pass fits the ${LOOP_BUDGET}-iteration loop budget (at dv = ${dims.dv})`, `${features}`, "Use fewer features or implementation 'composite'.");
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
    while (sumsFor(chunks) > maxBind && queryBase + 2 * chunk * perKey <= LOOP_BUDGET && 2 * chunk <= MAX_INTRA_SLOTS && chunk < m) {
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
  const queryFeatureBytes = projected ? batch * heads * n * fPad * 4 : 0;
  check('q (features)', queryFeatureBytes);
  const sumBytes = sumsFor(chunks);
  check('k (chunk sums)', sumBytes);
  const stateBytes = causal ? sumBytes : sumsFor(1);
  check('omega', fPad * dPad * 4);
  const loops = {
    features: featureLoops,
    sums: passes * chunk,
    scan: chunks,
    query: queryBase + (causal ? chunk * perKey : 0),
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
    intraSlots: causal ? Math.max(chunk, CAUSAL_CHUNK) : 0,
    featureBytes,
    queryFeatureBytes,
    sumBytes,
    stateBytes,
    loops,
    maxLoopIterations: Math.max(loops.features, loops.sums, loops.scan, loops.query),
  };
}

/**
 * Upper bound of the kernel path's intermediate bytes: the key and query features, the chunk sums
 * and the state (all may be alive at once: the webgpu backend frees buffers at its next submit),
 * the padded copies of q, k, v (when d or dv is not a multiple of 4) and of omega, the key-length
 * upload, and per-pass uniforms.
 */
export function linearKernelBytes(dims: Dims, plan: LinearPlan, keyLength: boolean): number {
  const { batch } = dims;
  const { dPad, dvPad, fPad } = plan;
  const padCopies = padCopyBytes(dims, dPad, dvPad);
  const omega = isProjectedKind(plan.kind) ? 2 * fPad * dPad * 4 + plan.features * dims.d * 4 : 0;
  return plan.featureBytes + plan.queryFeatureBytes + plan.sumBytes + plan.stateBytes + padCopies + omega + (keyLength ? 0 : batch * 4) + LINEAR_PASSES * LINEAR_DISPATCH_OVERHEAD;
}
