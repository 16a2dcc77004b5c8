/**
 * The fused flash kernel's gradient, registered with tfjs's gradient registry for
 * `AttnCatalogFlashAttention` (on first use, never on import): while tfjs records gradients the
 * forward also returns each query row's logsumexp, and the backward runs two fused programs
 * over the same layout and element rule (`backward_program.ts`): dQ per query row, dK and dV per
 * key row over the transposed layout. Memory: the dQ, dK and dV partials of the splits and the
 * per-row (lse, D) pairs — O(n + m), never an n×m tensor.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GradConfig, KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';
import { AttentionError } from '../../src/core/errors.js';
import type { Dims } from '../../src/core/types.js';
import { registerGradientOnce, registerOnce } from '../shared/register.js';
import type { FlashAttrs } from './kernel.js';
import { checkBinding, checkBindingCount, LOOP_BUDGET, type KernelLimits } from '../shared/limits.js';
import type { WebGPUBackend } from '../shared/webgpu_types.js';
import { sumGroups } from '../shared/heads.js';
import { backwardUniformData, FlashBackwardKVProgram, FlashBackwardQProgram, type BackwardVariant } from './backward_program.js';
import { buildLayoutFromEntries, layoutEntries, layoutEntryData, type BlockLayout, type LayoutEntry } from './layout.js';

/** Kernel names of the two backward programs. */
export const FLASH_BWD_Q_KERNEL = 'AttnCatalogFlashBackwardQ';
export const FLASH_BWD_KV_KERNEL = 'AttnCatalogFlashBackwardKV';

/** The inputs of the forward kernel the gradient saves, in order (absent ones get 1-element placeholders while recording). */
export const FLASH_SAVED_INPUTS = ['q', 'k', 'v', 'keyLength', 'rowStart', 'entries', 'params'] as const;

/** The backward plan: splits and chunk of each program (computed before the forward dispatch). */
export interface BackwardPlan {
  qSplits: number;
  qChunk: number;
  kvSplits: number;
  kvChunk: number;
}

/** The attributes the backward reads from the forward call (a subset of the forward's attrs, plus the plan and the layout). */
export interface BackwardAttrs
  extends BackwardPlan,
    Pick<FlashAttrs, 'causal' | 'scale' | 'sparse' | 'ruleKey' | 'ruleWgsl' | 'ruleParams' | 'ruleSeeks' | 'ruleInit' | 'ruleExactSeek' | 'blockQ' | 'blockK' | 'numQBlocks' | 'layoutHeads' | 'rowOffset'> {
  /** The forward's layout (host data, for the transposition), or null. */
  layoutRef: BlockLayout | null;
}

const transposed = new WeakMap<BlockLayout, { m: number; layout: BlockLayout }>();

/**
 * The transposed layout: per key block (and layout head), the runs of query blocks that visit
 * it, full where the forward's run was full. Rows are key blocks (`blockQ` of the result is the
 * forward's `blockK`), entries count whole query blocks of the forward's `blockQ` rows. Cached
 * per layout.
 */
export function transposeLayout(layout: BlockLayout, m: number): BlockLayout {
  const hit = transposed.get(layout);
  if (hit && hit.m === m) return hit.layout;
  const numKBlocks = Math.ceil(m / layout.blockK);
  const per: { qb: number; full: boolean }[][] = Array.from({ length: layout.layoutHeads * numKBlocks }, () => []);
  for (let h = 0; h < layout.layoutHeads; h++) {
    for (let qb = 0; qb < layout.numQBlocks; qb++) {
      for (const e of layoutEntries(layout, qb, h)) {
        for (let kb = e.start; kb < e.start + e.blocks && kb < numKBlocks; kb++) per[h * numKBlocks + kb].push({ qb, full: e.full });
      }
    }
  }
  const rows: LayoutEntry[][] = per.map((list) => {
    const out: LayoutEntry[] = [];
    for (const { qb, full } of list) {
      const last = out[out.length - 1];
      if (last && last.full === full && last.start + last.blocks === qb) last.blocks++;
      else out.push({ start: qb, blocks: 1, full });
    }
    return out;
  });
  const t = buildLayoutFromEntries({ blockQ: layout.blockK, blockK: layout.blockQ, rowOffset: 0, numQBlocks: numKBlocks, layoutHeads: layout.layoutHeads, rows });
  transposed.set(layout, { m, layout: t });
  return t;
}

/** The most query rows any key visits in the transposed layout (in whole query blocks), and the most entries of a key block. */
function transposedReach(t: BlockLayout, blockQ: number): { rows: number; entries: number } {
  return { rows: t.maxBlocksPerRow * blockQ, entries: t.maxEntriesPerRow ?? t.maxBlocksPerRow };
}

/**
 * Plans the backward before the forward runs (so that a call that cannot be differentiated on
 * this device throws before any dispatch). `qPlan` is the per-row forward plan of the same call
 * (the dQ program walks the same keys in the same splits).
 * @throws AttentionError when a partial buffer or a loop exceeds the device's limits
 */
export function planBackward(dims: Dims, limits: KernelLimits, qPlan: { splits: number; chunk: number; dPad: number; dvPad: number }, layout: BlockLayout | null, extraBindings: number): BackwardPlan {
  const { batch, heads, n, m } = dims;
  // q, k, v, keyLength, dy, stats, the output, and the layout and rule bindings.
  checkBindingCount(limits, 7 + extraBindings);
  const reach = layout ? transposedReach(transposeLayout(layout, m), layout.blockQ) : { rows: n, entries: 0 };
  const maxGroups = limits.maxComputeWorkgroupsPerDimension;
  let kvSplits = 1;
  while (reach.entries + Math.ceil(reach.rows / kvSplits) > LOOP_BUDGET && kvSplits < maxGroups) kvSplits *= 2;
  if (reach.entries + Math.ceil(reach.rows / kvSplits) > LOOP_BUDGET) {
    throw new AttentionError('q', `fewer queries per key for the fused backward (the loop budget allows ${maxGroups} splits)`, `${reach.rows}`);
  }
  checkBinding(limits, 'dK/dV partials', kvSplits * batch * heads * m * (qPlan.dPad + qPlan.dvPad) * 4);
  checkBinding(limits, 'dQ partials', qPlan.splits * batch * heads * n * qPlan.dPad * 4);
  return { qSplits: qPlan.splits, qChunk: qPlan.chunk, kvSplits, kvChunk: Math.ceil(n / kvSplits) };
}

/** Upper bound of the backward's intermediate bytes (the partials, their sums, the row stats and D). */
export function backwardBytes(dims: Dims, plan: BackwardPlan, dPad: number, dvPad: number): number {
  const { batch, heads, kvHeads, n, m } = dims;
  const q = (plan.qSplits + 1) * batch * heads * n * dPad;
  const kv = (plan.kvSplits + 1) * batch * heads * m * (dPad + dvPad) + 2 * batch * kvHeads * m * (dPad + dvPad);
  const rows = 6 * batch * heads * n + batch * heads * n * dvPad;
  return (q + kv + rows) * 4 + 16 * 1024;
}

function variantOf(a: BackwardAttrs): BackwardVariant {
  return {
    causal: a.causal,
    sparse: a.sparse,
    rule: a.ruleKey ? { key: a.ruleKey, wgsl: a.ruleWgsl, usesParams: a.ruleParams, seeks: a.ruleSeeks, init: a.ruleInit, exactSeek: a.ruleExactSeek } : null,
  };
}

type KernelArgs = { inputs: Record<string, TensorInfo>; backend: unknown; attrs?: NamedAttrMap };

function programInputs(inputs: Record<string, TensorInfo>, variant: BackwardVariant): TensorInfo[] {
  const { q, k, v, keyLength, rowStart, entries, params, dy, stats } = inputs;
  return [q, k, v, keyLength, ...(variant.sparse ? [rowStart, entries] : []), ...(variant.rule?.usesParams ? [params] : []), dy, stats];
}

/**
 * One backward kernel function per side: dQ runs over the query rows (its chunk and splits, the
 * layout's query blocks), dK/dV over the key rows (theirs, the transposed layout's key blocks).
 */
const backwardFunc =
  (side: 'q' | 'kv') =>
  ({ inputs, backend, attrs }: KernelArgs) => {
    const a = attrs as unknown as BackwardAttrs & { numKBlocks: number };
    const [batch, heads, n, dPad] = inputs.q.shape;
    const [, kvHeads, m] = inputs.k.shape;
    const dvPad = inputs.v.shape[3];
    const variant = variantOf(a);
    const splits = side === 'q' ? a.qSplits : a.kvSplits;
    const program = side === 'q' ? new FlashBackwardQProgram(batch, heads, n, dPad, dvPad, splits, variant) : new FlashBackwardKVProgram(batch, heads, m, dPad, dvPad, splits, variant);
    const u = backwardUniformData({
      scale: a.scale, n, m, heads, group: heads / kvHeads, kvHeads, chunk: side === 'q' ? a.qChunk : a.kvChunk, splits,
      blockQ: a.blockQ, blockK: a.blockK, numBlocks: side === 'q' ? a.numQBlocks : a.numKBlocks, layoutHeads: a.layoutHeads, rowOffset: a.rowOffset, rows: batch * heads,
    });
    return (backend as WebGPUBackend).runWebGPUProgram(program as never, programInputs(inputs, variant), 'float32', u as never);
  };
export const flashBackwardQConfig: KernelConfig = { kernelName: FLASH_BWD_Q_KERNEL, backendName: 'webgpu', kernelFunc: backwardFunc('q') as unknown as KernelFunc };
export const flashBackwardKVConfig: KernelConfig = { kernelName: FLASH_BWD_KV_KERNEL, backendName: 'webgpu', kernelFunc: backwardFunc('kv') as unknown as KernelFunc };

/**
 * The backward of one forward call: `dys` (the output's gradient, and null for the lse output),
 * `saved` = {@link FLASH_SAVED_INPUTS} then the output and the lse.
 */
function flashGrad(dys: tf.Tensor | (tf.Tensor | null)[], saved: tf.Tensor[], attrs: NamedAttrMap): Record<string, () => tf.Tensor> {
  const a = attrs as unknown as BackwardAttrs;
  const dy = (Array.isArray(dys) ? dys[0] : dys) as tf.Tensor4D;
  const [q, k, v, keyLength, rowStart, entries, params, out, lse] = saved;
  const [batch, heads, n, dPad] = q.shape;
  const [, kvHeads, m] = k.shape;
  const dvPad = v.shape[3] as number;
  registerOnce(flashBackwardQConfig);
  registerOnce(flashBackwardKVConfig);
  // Per query row: (lse, D = dO·O), interleaved.
  const stats = tf.tidy(() => tf.stack([lse, tf.sum(tf.mul(dy, out), -1)], -1));
  const common = { q, k, v, keyLength, params, dy, stats };
  const dq = tf.tidy(() => {
    const parts = tf.engine().runKernel(FLASH_BWD_Q_KERNEL, { ...common, rowStart, entries }, attrs) as tf.Tensor;
    return tf.reshape(a.qSplits === 1 ? parts : tf.sum(parts, 0), [batch, heads, n, dPad]);
  });
  const [dk, dv] = tf.tidy(() => {
    let kvLayout: { rowStart: tf.Tensor; entries: tf.Tensor; numKBlocks: number } | null = null;
    if (a.sparse) {
      if (!a.layoutRef) throw new Error('internal: the flash backward needs the forward layout');
      const t = transposeLayout(a.layoutRef, m);
      kvLayout = { rowStart: tf.tensor1d(t.rowStart, 'int32'), entries: tf.tensor1d(layoutEntryData(t), 'int32'), numKBlocks: t.numQBlocks };
    }
    const parts = tf.engine().runKernel(
      FLASH_BWD_KV_KERNEL,
      { ...common, rowStart: kvLayout?.rowStart ?? rowStart, entries: kvLayout?.entries ?? entries },
      { ...attrs, numKBlocks: kvLayout?.numKBlocks ?? 0 } as unknown as NamedAttrMap,
    ) as tf.Tensor;
    const summed = tf.reshape(a.kvSplits === 1 ? parts : tf.sum(parts, 0), [batch, heads, m, dPad + dvPad]);
    const perKV = sumGroups(summed, kvHeads); // per query head → per K/V head
    return tf.split(perKV, [dPad, dvPad], 3);
  });
  stats.dispose();
  return { q: () => dq, k: () => dk, v: () => dv };
}

/** The gradient's registration record (registered by `runFlash` on first use while gradients are recorded). */
export const flashGradConfig: GradConfig = {
  kernelName: 'AttnCatalogFlashAttention',
  inputsToSave: [...FLASH_SAVED_INPUTS],
  outputsToSave: [true, true],
  gradFunc: flashGrad as unknown as GradConfig['gradFunc'],
};

/** Registers {@link flashGradConfig} once. */
export const registerFlashGradient = (): void => registerGradientOnce(flashGradConfig);
