/**
 * Block-sparse attention on whichever path a call resolves to: the fused flash kernel driven by
 * a layout and an element rule on webgpu, the gather composite elsewhere. Shared by every
 * fixed, combined and global-token pattern variant: a variant only describes its pattern
 * (a {@link SparseSpec}); validation, planning, dispatch and the memory bound live here.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { webgpuLimits } from '../../src/core/backend.js';
import { resolveImplementation } from '../../src/core/dispatch.js';
import { AttentionError } from '../../src/core/errors.js';
import { checkHostBudget } from '../../src/core/budget.js';
import type { Dims, Implementation, KernelStrategy } from '../../src/core/types.js';
import type { BlockLayout, ElementRule } from './layout.js';
import { planFor, runFlash } from './kernel.js';
import { DISPATCH_OVERHEAD_BYTES } from '../shared/limits.js';
import { padCopyBytes, planningLimits } from '../shared/limits.js';
import { blockSparseComposite, blockSparseCompositeBytes, freesOnDispose } from './sparse_composite.js';
import type { GatherPart } from './parts.js';

/** What the fused kernel runs for one problem size. */
export interface SparseKernelPlan {
  /** Key blocks each query block visits, or null for every key (dense mode, e.g. with a seeking rule). */
  layout: BlockLayout | null;
  /** Element rule inside visited blocks, or null when the layout is exact. */
  rule: ElementRule | null;
}

/** A pattern for one problem size (n, m, heads): both paths, each built on first use. */
export interface SparseSpec {
  kernel(): SparseKernelPlan;
  /** Disjoint parts whose union is the allowed set, causal already applied. */
  composite(): GatherPart[];
}

/** Options of {@link attendBlockSparse}. */
export interface BlockSparseOptions {
  /** Applied by the kernel on top of its layout and rule (`j <= p`); the composite's parts already include it. */
  causal: boolean;
  scale: number;
  keyLength: number[] | tf.Tensor1D | null;
  /** The flash kernel's strategy on the kernel path (default `'auto'`). */
  strategy?: KernelStrategy;
}

/**
 * Resolves the path and checks it against the device's limits (planning the kernel, or sizing
 * the composite) without dispatching anything; returns the call to make. Throws
 * AttentionError for a problem the chosen path cannot run.
 */
export function prepareBlockSparse(
  dims: Dims,
  opts: BlockSparseOptions,
  spec: SparseSpec,
  implementation: Implementation,
): (q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, keyLength?: number[] | tf.Tensor1D | null) => tf.Tensor4D {
  const path = resolveImplementation(implementation);
  if (path === 'kernel') {
    const { layout, rule } = spec.kernel();
    const flashOpts = { causal: opts.causal, scale: opts.scale, keyLength: opts.keyLength, layout, rule, strategy: opts.strategy };
    const plan = planFor(dims, flashOpts);
    return (q, k, v, keyLength = opts.keyLength) => {
      return runFlash(q, k, v, dims, { ...flashOpts, keyLength }, plan);
    };
  }
  const parts = spec.composite();
  const sized = blockSparseCompositeBytes(dims, parts, opts.keyLength !== null);
  const limits = webgpuLimits();
  if (limits) {
    const max = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
    const { largest } = sized;
    if (largest > max) {
      throw new AttentionError(
        'options.implementation',
        `a composite whose largest gathered tensor fits the device's ${max}-byte binding limit`,
        `'composite' needing ${largest} bytes`,
        "Use implementation 'auto' or 'kernel', or split the batch or heads across calls.",
      );
    }
  }
  // The same bound memoryBytes() reports for the composite path (attendBlockSparseBytes).
  checkHostBudget('the block-sparse composite', freesOnDispose() ? sized.peak : sized.bytes);
  return (q, k, v, keyLength = opts.keyLength) => blockSparseComposite(q, k, v, dims, { scale: opts.scale, keyLength }, parts);
}

/**
 * Validates the plan (device limits) before any dispatch, then runs the chosen path.
 * @returns `[batch, heads, n, dv]`
 */
export function attendBlockSparse(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  dims: Dims,
  opts: BlockSparseOptions,
  spec: SparseSpec,
  implementation: Implementation,
): tf.Tensor4D {
  return prepareBlockSparse(dims, opts, spec, implementation)(q, k, v);
}

/**
 * Upper bound of the intermediate bytes of {@link attendBlockSparse} on `path`.
 * Kernel: split partials (O(n)), head-dim padding copies, the layout, rule parameters and
 * key lengths as uploaded (twice: webgpu may stage uploads), per-dispatch uniforms.
 * Composite: every tensor its ops allocate on webgpu, the peak alive elsewhere (see
 * `blockSparseCompositeBytes`).
 */
export function attendBlockSparseBytes(dims: Dims, path: 'kernel' | 'composite', spec: SparseSpec, keyLength: boolean): number {
  if (path === 'composite') {
    const b = blockSparseCompositeBytes(dims, spec.composite(), keyLength);
    return freesOnDispose() ? b.peak : b.bytes;
  }
  const { layout, rule } = spec.kernel();
  const limits = planningLimits();
  const plan = planFor(dims, { layout, rule }, limits);
  const { batch } = dims;
  const padCopies = padCopyBytes(dims, plan.dPad, plan.dvPad);
  const uploads = 2 * 4 * (batch + (layout ? layout.rowStart.length + Math.max(3, 3 * layout.keyBlocks.length) : 0) + (rule?.params ? Math.max(1, rule.params.length) : 0));
  return plan.partialBytes + padCopies + uploads + 3 * DISPATCH_OVERHEAD_BYTES;
}
