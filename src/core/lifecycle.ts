/**
 * Dispose semantics, shared by every variant: `dispose()` frees what the variant owns and ends
 * it for good. From then on every method (`apply`, `memoryBytes`, `pattern`, `decode`,
 * `spanLoss`, the getters of owned tensors, …) throws `AttentionError('this', …)` before it
 * validates or dispatches anything, also for variants that own no tensors. `dispose()` again
 * is a no-op.
 *
 * @module
 */
import { AttentionError } from './errors.js';

/** Whether one variant instance is still live; each base class holds one and checks it first in every method. */
export class Lifetime {
  private ended = false;

  /** Whether `dispose()` has been called. */
  get disposed(): boolean {
    return this.ended;
  }

  /** Throws `AttentionError('this', …)` once the variant `id` is disposed. */
  check(id: string): void {
    if (this.ended) {
      throw new AttentionError('this', `a live '${id}' variant`, 'a disposed one', 'dispose() ends a variant for good: build a new instance.');
    }
  }

  /** Ends the variant: true the first time (free what it owns then), false on every later call. */
  end(): boolean {
    if (this.ended) return false;
    this.ended = true;
    return true;
  }
}
