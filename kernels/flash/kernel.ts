/**
 * The fused flash-attention kernel for tfjs's webgpu backend: its `KernelConfig`, and
 * `runFlash`, which pads head dims to a multiple of 4, uploads the layout and rule parameters,
 * and calls the kernel through the engine (so tfjs tracks the output like any op's).
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';
import type { Dims } from '../../src/core/types.js';
import { FlashAttentionProgram, MergeProgram, type FlashVariant } from './flash_program.js';
import { TiledFlashProgram } from './tiled_program.js';
import type { KernelStrategy } from '../../src/core/types.js';
import { layoutEntryData, layoutShape, type BlockLayout, type ElementRule } from './layout.js';
import { activeKernelLimits, type KernelLimits } from '../shared/limits.js';
import { registerOnce } from '../shared/register.js';
import { kernelInputs } from '../shared/inputs.js';
import { planFlash, type FlashPlan } from './plan.js';
import { LseProgram } from './backward_program.js';
import { FLASH_SAVED_INPUTS, planBackward, registerFlashGradient, type BackwardPlan } from './backward.js';
import { recordingGradients } from '../../src/core/dispatch.js';
import type { WebGPUBackend } from '../shared/webgpu_types.js';

/** Name in tfjs's kernel registry. */
export const FLASH_KERNEL = 'AttnCatalogFlashAttention';

/** The forward kernel's attributes (what the flash call records, and its gradient reads: `BackwardAttrs`). */
export interface FlashAttrs {
  causal: boolean;
  scale: number;
  splits: number;
  chunk: number;
  blockQ: number;
  blockK: number;
  numQBlocks: number;
  layoutHeads: number;
  rowOffset: number;
  sparse: boolean;
  ruleKey: string;
  ruleWgsl: string;
  ruleParams: boolean;
  ruleSeeks: boolean;
  ruleInit: boolean;
  ruleExactSeek: boolean;
  /** Tiled strategy: query rows per workgroup and keys per tile (0: one invocation per row). */
  tileRows: number;
  tileKeys: number;
  tileStage: boolean;
  queryGroups: number;
  partials: boolean;
  relative: boolean;
  /**
   * Also return each query row's logsumexp `[batch, heads, n]` (second output): set while tfjs
   * records gradients, for the backward (`backward.ts`).
   */
  saveLse: boolean;
}

const flashKernelFunc = ({ inputs, backend, attrs }: { inputs: Record<string, TensorInfo>; backend: unknown; attrs?: NamedAttrMap }) => {
  const gpu = backend as WebGPUBackend;
  const a = attrs as unknown as FlashAttrs;
  const { q, k, v, keyLength, rowStart, entries, params } = inputs;
  const [batch, heads, n, dPad] = q.shape;
  const [, kvHeads, m] = k.shape;
  const dvPad = v.shape[3];
  const variant: FlashVariant = {
    causal: a.causal,
    splits: a.splits,
    sparse: a.sparse,
    rule: a.ruleKey ? { key: a.ruleKey, wgsl: a.ruleWgsl, usesParams: a.ruleParams, seeks: a.ruleSeeks, init: a.ruleInit, exactSeek: a.ruleExactSeek } : null,
    partials: a.partials || a.saveLse,
    relative: a.relative,
  };
  const program = a.tileRows
    ? new TiledFlashProgram(batch, heads, n, dPad, dvPad, variant, { rows: a.tileRows, keys: a.tileKeys, stage: a.tileStage }, a.queryGroups)
    : new FlashAttentionProgram(batch, heads, n, dPad, dvPad, variant);
  const uniforms = FlashAttentionProgram.uniformData({
    scale: a.scale, n, m, heads, group: heads / kvHeads, kvHeads, chunk: a.chunk, splits: a.splits,
    blockQ: a.blockQ, blockK: a.blockK, numQBlocks: a.numQBlocks, layoutHeads: a.layoutHeads, rowOffset: a.rowOffset,
  });
  const programInputs = [q, k, v, keyLength, ...(a.sparse ? [rowStart, entries] : []), ...(a.ruleParams ? [params] : []), ...(a.relative ? [inputs.qRel, inputs.rel] : [])];
  const first = gpu.runWebGPUProgram(program as never, programInputs, 'float32', uniforms as never);
  if (a.saveLse) {
    // The output and each row's logsumexp, both from the partial rows.
    const out = gpu.runWebGPUProgram(new MergeProgram(batch, heads, n, dvPad) as never, [first], 'float32', MergeProgram.uniformData(n, a.splits) as never);
    const lse = gpu.runWebGPUProgram(new LseProgram(batch, heads, n, dvPad) as never, [first], 'float32', LseProgram.uniformData(n, a.splits) as never);
    gpu.disposeData(first.dataId);
    return [out, lse];
  }
  if (a.splits === 1 || a.partials) return first;
  const merge = new MergeProgram(batch, heads, n, dvPad);
  const out = gpu.runWebGPUProgram(merge as never, [first], 'float32', MergeProgram.uniformData(n, a.splits) as never);
  gpu.disposeData(first.dataId);
  return out;
};

/** Name in tfjs's kernel registry of the merge of partial rows (see {@link mergeFlashPartials}). */
export const FLASH_MERGE_KERNEL = 'AttnCatalogFlashMerge';

const mergeKernelFunc = ({ inputs, backend, attrs }: { inputs: Record<string, TensorInfo>; backend: unknown; attrs?: NamedAttrMap }) => {
  const gpu = backend as WebGPUBackend;
  const { batch, heads } = attrs as unknown as { batch: number; heads: number };
  const [, splits, n, stride] = inputs.partials.shape;
  const merge = new MergeProgram(batch, heads, n, stride - 4);
  return gpu.runWebGPUProgram(merge as never, [inputs.partials], 'float32', MergeProgram.uniformData(n, splits) as never);
};

/** The merge kernel's registration record (registered on first use). */
export const flashMergeKernelConfig: KernelConfig = {
  kernelName: FLASH_MERGE_KERNEL,
  backendName: 'webgpu',
  kernelFunc: mergeKernelFunc as unknown as KernelFunc,
};

/**
 * Merges partial rows `[batch·heads, S, n, dvPad + 4]` (from {@link runFlash} with `partials`,
 * possibly several calls concatenated along axis 1, rows in the same order) into the output
 * `[batch, heads, n, dv]`: `Σ_s e^{max_s − M}·acc_s / Σ_s e^{max_s − M}·sum_s`, zeros where every
 * sum is 0. Webgpu only.
 */
export function mergeFlashPartials(partials: tf.Tensor4D, batch: number, heads: number, dv: number): tf.Tensor4D {
  registerOnce(flashMergeKernelConfig);
  return tf.tidy(() => {
    const out = tf.engine().runKernel(FLASH_MERGE_KERNEL, { partials }, { batch, heads } as unknown as NamedAttrMap) as tf.Tensor4D;
    return out.shape[3] === dv ? out : tf.slice(out, [0, 0, 0, 0], [-1, -1, -1, dv]);
  });
}

/** The kernel's registration record (registered by {@link runFlash} on first use, never on import). */
export const flashKernelConfig: KernelConfig = {
  kernelName: FLASH_KERNEL,
  backendName: 'webgpu',
  kernelFunc: flashKernelFunc as unknown as KernelFunc,
};

/** Options of {@link runFlash}. */
export interface FlashOptions {
  causal: boolean;
  scale: number;
  keyLength: number[] | tf.Tensor1D | null;
  /** Block-sparse layout (query/key blocks visited), or null/undefined for all keys. */
  layout?: BlockLayout | null;
  /** Element rule inside visited blocks, or null/undefined for "all allowed". */
  rule?: ElementRule | null;
  /** `'auto'` (default), `'rows'` or `'tiled'`: see `planFlash`. */
  strategy?: KernelStrategy;
  /**
   * Return the unmerged partial rows `[batch·heads, splits, n, dvPad + 4]` (unnormalized
   * accumulator, then `(rowMax, rowSum, 0, 0)`) instead of the output, for a caller that merges
   * several calls over disjoint key sets ({@link mergeFlashPartials}). Default false.
   */
  partials?: boolean;
  /**
   * Transformer-XL's relative score modifier: every score gains `scale · q_i^rel · table[h, p − j]`
   * (`q` `[batch, heads, n, d]`, `table` `[heads, m, d]`, indexed by the query head). Needs
   * `causal` (so that p − j ∈ [0, m)); runs on the per-row strategy.
   */
  relative?: { q: tf.Tensor4D; table: tf.Tensor3D } | null;
}

/** Plans a call (checks every device limit; throws AttentionError before any dispatch). */
export function planFor(
  dims: Dims,
  opts: Pick<FlashOptions, 'layout' | 'rule' | 'strategy'> & { relative?: boolean; rowsOnly?: string },
  limits: KernelLimits = activeKernelLimits(),
): FlashPlan {
  const layout = opts.layout;
  return planFlash(dims, limits, {
    strategy: opts.strategy,
    ruleStrides: !!opts.rule?.strides,
    rowsOnly: opts.relative ? 'the relative score modifier runs one query row per invocation' : opts.rowsOnly,
    layout: layout ? layoutShape(layout) : undefined,
    extraBindings: (layout ? 2 : 0) + (opts.rule?.params || opts.rule?.paramsTensor ? 1 : 0) + (opts.relative ? 2 : 0),
  });
}

const dispatched = { rows: 0, tiled: 0 };

/** Fused flash dispatches so far, per strategy (for tests and the bench: which program a call ran). */
export function flashDispatches(): { rows: number; tiled: number } {
  return { ...dispatched };
}

/**
 * Runs the fused kernel. `plan` must come from {@link planFor} for these dims and options
 * (it is where limits are checked, before dispatch).
 */
export function runFlash(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, dims: Dims, opts: FlashOptions, plan: FlashPlan): tf.Tensor4D {
  return tf.tidy(() => {
    const layout = opts.layout ?? null;
    const rule = opts.rule ?? null;
    const inputs: Record<string, tf.Tensor> = { ...kernelInputs(q, k, v, dims, opts.keyLength, plan.dPad, plan.dvPad) };
    if (layout) {
      inputs.rowStart = tf.tensor1d(layout.rowStart, 'int32');
      inputs.entries = tf.tensor1d(layoutEntryData(layout), 'int32');
    }
    if (opts.relative) {
      if (!opts.causal) throw new Error('internal: the relative score modifier needs causal');
      const pad = plan.dPad - dims.d;
      inputs.qRel = pad ? tf.pad(opts.relative.q, [[0, 0], [0, 0], [0, 0], [0, pad]]) : opts.relative.q;
      inputs.rel = pad ? tf.pad(opts.relative.table, [[0, 0], [0, 0], [0, pad]]) : opts.relative.table;
    }
    if (rule?.paramsTensor) inputs.params = rule.paramsTensor;
    else if (rule?.params) inputs.params = tf.tensor1d(rule.params.length ? rule.params : new Float32Array(1), 'float32');
    // While tfjs records gradients the forward saves each row's logsumexp and the fused backward
    // is planned now (before any dispatch); the gradient saves every input (placeholders for absent ones).
    const saveLse = recordingGradients();
    let backward: BackwardPlan | null = null;
    if (saveLse) {
      if (opts.relative || opts.partials) throw new Error('internal: the fused flash backward covers neither the relative modifier nor partial rows (callers run their composite while recording)');
      const rowsPlan = plan.tile ? planFor(dims, { layout, rule, strategy: 'rows' }) : plan;
      backward = planBackward(dims, activeKernelLimits(), rowsPlan, layout, (layout ? 2 : 0) + (rule?.params || rule?.paramsTensor ? 1 : 0));
      for (const name of FLASH_SAVED_INPUTS) if (!inputs[name]) inputs[name] = tf.zeros([1], name === 'params' ? 'float32' : 'int32');
      registerFlashGradient();
    }
    const attrs: FlashAttrs & Partial<BackwardPlan> & { layoutRef?: BlockLayout | null } = {
      ...(backward ? { ...backward, layoutRef: layout } : {}),
      saveLse,
      causal: opts.causal,
      scale: opts.scale,
      splits: plan.splits,
      chunk: plan.chunk,
      blockQ: layout?.blockQ ?? 0,
      blockK: layout?.blockK ?? 0,
      numQBlocks: layout?.numQBlocks ?? 0,
      layoutHeads: layout?.layoutHeads ?? 1,
      rowOffset: layout?.rowOffset ?? 0,
      sparse: !!layout,
      ruleKey: rule?.key ?? '',
      ruleWgsl: rule?.wgsl ?? '',
      ruleParams: !!(rule?.params || rule?.paramsTensor),
      ruleSeeks: !!rule?.seeks,
      ruleInit: !!rule?.init,
      ruleExactSeek: !!rule?.exactSeek,
      tileRows: plan.tile?.rows ?? 0,
      tileKeys: plan.tile?.keys ?? 0,
      tileStage: plan.tile?.stage ?? false,
      queryGroups: plan.queryGroups,
      partials: !!opts.partials,
      relative: !!opts.relative,
    };
    registerOnce(flashKernelConfig);
    dispatched[plan.tile ? 'tiled' : 'rows']++;
    const result = tf.engine().runKernel(FLASH_KERNEL, inputs, attrs as unknown as NamedAttrMap) as tf.Tensor4D | tf.Tensor[];
    // (The tape keeps its own copy of the saved logsumexp.)
    const out = (Array.isArray(result) ? result[0] : result) as tf.Tensor4D;
    return opts.partials || plan.dvPad === dims.dv ? out : tf.slice(out, [0, 0, 0, 0], [-1, -1, -1, dims.dv]);
  });
}

export { planFlash, activeKernelLimits };
