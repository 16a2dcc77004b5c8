/**
 * The host-memory budget of composites. A composite (the tfjs-op path, every backend but the
 * fused kernels) allocates its intermediates through the backend: on cpu and wasm as JavaScript
 * `ArrayBuffer`s, where a call too big for the process would end in tfjs's
 * `RangeError: Array buffer allocation failed` half-way through. Before a composite dispatches
 * anything, its `memoryBytes()` (the composite path's bound) is compared with this budget, and a
 * call over it throws an `AttentionError` naming the path and the bytes instead.
 *
 * The budget is {@link DEFAULT_HOST_MEMORY_BUDGET} (4 GiB) unless changed with
 * {@link setHostMemoryBudget} (exported by the root module `attention-catalog`).
 *
 * @module
 */
import { AttentionError, show } from './errors.js';

/** The default host-memory budget of one composite call: 4 GiB. */
export const DEFAULT_HOST_MEMORY_BUDGET = 4 * 1024 ** 3;

let budget = DEFAULT_HOST_MEMORY_BUDGET;

/** The current host-memory budget of one composite call, in bytes. */
export function hostMemoryBudget(): number {
  return budget;
}

/**
 * Sets the host-memory budget of one composite call (bytes > 0; `Infinity` turns the check off)
 * and returns the previous one, e.g. to restore it.
 *
 * @example
 * ```ts
 * import { setHostMemoryBudget } from 'attention-catalog';
 * const previous = setHostMemoryBudget(16 * 1024 ** 3); // a machine with room for 16 GiB per call
 * ```
 * @throws AttentionError for a value that is not a number > 0.
 */
export function setHostMemoryBudget(bytes: number): number {
  if (typeof bytes !== 'number' || Number.isNaN(bytes) || bytes <= 0) {
    throw new AttentionError('bytes', 'a number of bytes > 0 (Infinity: no budget)', show(bytes));
  }
  const previous = budget;
  budget = bytes;
  return previous;
}

/**
 * Throws before dispatch when a composite's bound `bytes` (its `memoryBytes()` on the composite
 * path) exceeds the host-memory budget. `what` names the path, e.g. `'the dense composite'`.
 */
export function checkHostBudget(what: string, bytes: number): void {
  if (bytes > budget) {
    throw new AttentionError(
      'options.implementation',
      `a composite within the host-memory budget of ${budget} bytes (setHostMemoryBudget)`,
      `${what} needing ${bytes} bytes`,
      "Use the fused kernel (implementation 'auto' or 'kernel' on webgpu), split the batch or heads across calls, or raise the budget with setHostMemoryBudget(bytes).",
    );
  }
}
