/**
 * The one error type of the catalog.
 *
 * Every invalid input (rank, shape, dtype, head grouping, option combination, a size past
 * the device's limits) throws an `AttentionError` before anything is dispatched. The
 * message names the argument, what was expected and what was given.
 *
 * @module
 */

/**
 * Thrown for every invalid input, before any GPU or CPU work is dispatched.
 *
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import { AttentionError } from 'attention-catalog';
 * import { localAttention } from 'attention-catalog/local';
 * const q = tf.randomNormal([1, 4, 64, 32]) as tf.Tensor4D;
 * const k = tf.randomNormal([1, 3, 64, 32]) as tf.Tensor4D;   // 4 query heads over 3 kv heads: not a grouping
 * try { localAttention({ window: 8 }).apply(q, k, k); } catch (e) { if (e instanceof AttentionError) console.log(e.argument); }
 * ```
 */
export class AttentionError extends Error {
  /** The argument or config field at fault, e.g. `'q'`, `'config.window'`. */
  readonly argument: string;
  /** What was expected, in words. */
  readonly expected: string;
  /** What was given, in words. */
  readonly given: string;

  constructor(argument: string, expected: string, given: string, hint?: string) {
    super(`${argument}: expected ${expected}, got ${given}${hint ? `. ${hint}` : ''}`);
    this.name = 'AttentionError';
    this.argument = argument;
    this.expected = expected;
    this.given = given;
  }
}

/** Render a value for an error message (shapes as `[a, b]`, strings quoted). */
export function show(x: unknown): string {
  if (Array.isArray(x)) return `[${x.map(show).join(', ')}]`;
  if (typeof x === 'string') return `'${x}'`;
  if (x === undefined) return 'undefined';
  if (x === null) return 'null';
  if (typeof x === 'object' && x !== null && 'shape' in x && 'dtype' in x) {
    const t = x as { shape: number[]; dtype: string };
    return `a ${t.dtype} tensor of shape ${show(t.shape)}`;
  }
  return String(x);
}
