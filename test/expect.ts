/**
 * Shared assertions of the test files (vitest's `expect`; test/harness.ts stays free of vitest,
 * since the browser suite bundles it).
 */
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'vitest';
import { AttentionError } from '../src/core/errors.js';
import type { Attention, Implementation } from '../src/core/types.js';
import { countDispatches, describeCase, runCase, type Inputs } from './harness.js';
import { maxAbsDiff, toHost, type Host4 } from './reference.js';
import type { Case } from './specs/types.js';

/** Runs `fn`, expecting AttentionError (argument matching `argument`), no dispatch and no new tensor. */
export function expectRefused(fn: () => unknown, label: string, argument?: RegExp): AttentionError {
  const before = tf.memory().numTensors;
  let thrown: unknown = null;
  let result: unknown;
  const dispatches = countDispatches(() => {
    try {
      result = fn();
    } catch (e) {
      thrown = e;
    }
  });
  if (!thrown) disposeDeep(result);
  expect(thrown, `${label}: expected an AttentionError`).toBeInstanceOf(AttentionError);
  const err = thrown as AttentionError;
  expect(err.message, label).toMatch(/expected .+, got .+/);
  if (argument) expect(err.argument, `${label}: ${err.message}`).toMatch(argument);
  expect(dispatches, `${label}: dispatched before throwing (${err.message})`).toBe(0);
  expect(tf.memory().numTensors, `${label}: leaked a tensor`).toBe(before);
  return err;
}

/** Disposes every tensor in a result (a tensor, or an object / array holding tensors). */
export function disposeDeep(x: unknown): void {
  if (x instanceof tf.Tensor) {
    if (!x.isDisposed) x.dispose();
  } else if (Array.isArray(x)) x.forEach(disposeDeep);
  else if (x && typeof x === 'object') Object.values(x).forEach(disposeDeep);
}

/**
 * Expects `attn.apply` on the case's inputs `x` (path `implementation`) to have `reference`'s shape
 * and to be within `tol` (max |difference|) of it; `reference` gets the inputs as float64 host arrays.
 */
export async function expectReference(
  attn: Attention<unknown>,
  x: Inputs,
  c: Case,
  reference: (q: Host4, k: Host4, v: Host4, c: Case) => Host4,
  implementation: Implementation,
  tol: number,
): Promise<void> {
  const [qh, kh, vh] = await Promise.all([toHost(x.q), toHost(x.k), toHost(x.v)]);
  const got = await runCase(attn, x, c, implementation);
  const want = reference(qh, kh, vh, c);
  expect(got.shape).toEqual(want.shape);
  expect(maxAbsDiff(got.data, want.data), describeCase(c)).toBeLessThan(tol);
}
