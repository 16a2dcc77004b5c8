/** Shared helpers of the conformance, memory and decode suites. */
import * as tf from '@tensorflow/tfjs-core';
import type { Attention, Implementation, KernelStrategy } from '../src/core/types.js';
import { seededTensor, toHost, type Host4 } from './reference.js';
import type { Case } from './specs/types.js';
import { withGpuErrorScope } from './backends.js';

/** Number of fast-check runs per property (FC_RUNS overrides; CI keeps the default). */
export const RUNS = Number(process.env.FC_RUNS ?? 12);

export interface Inputs {
  q: tf.Tensor4D;
  k: tf.Tensor4D;
  v: tf.Tensor4D;
  dispose(): void;
}

/** Seeded q, k, v for a case, on the active backend. Shared-QK variants get k = q. */
export function makeInputs(c: Case, opts: { sharedQK?: boolean; amp?: number } = {}): Inputs {
  const amp = opts.amp ?? 1;
  // Route through one op so the data lives on the active backend (webgpu: a GPU buffer).
  const onDevice = (t: tf.Tensor4D) => {
    const r = tf.add(t, 0) as tf.Tensor4D;
    t.dispose();
    return r;
  };
  const q = onDevice(seededTensor([c.batch, c.heads, c.n, c.d], c.seed, amp));
  const k = opts.sharedQK ?? c.sharedQK ? q : onDevice(seededTensor([c.batch, c.kvHeads, c.m, c.d], c.seed + 1, amp));
  const v = onDevice(seededTensor([c.batch, c.kvHeads, c.m, c.dv], c.seed + 2, amp));
  return {
    q,
    k,
    v,
    dispose() {
      q.dispose();
      if (k !== q) k.dispose();
      v.dispose();
    },
  };
}

/** Runs `attn.apply` for a case inside a GPU error scope and downloads the result (freed). */
export async function runCase(attn: Attention<unknown>, x: Inputs, c: Case, implementation: Implementation = 'auto', kernelStrategy?: KernelStrategy): Promise<Host4> {
  return withGpuErrorScope(async () => {
    const out = attn.apply(x.q, x.k, x.v, { implementation, ...(c.keyLength ? { keyLength: c.keyLength } : {}), ...(kernelStrategy ? { kernelStrategy } : {}) });
    try {
      return await toHost(out);
    } finally {
      out.dispose();
    }
  });
}

/** Counts `runKernel` calls (dispatches) made while `fn` runs. */
export function countDispatches(fn: () => void): number {
  const engine = tf.engine() as unknown as { runKernel: (...a: unknown[]) => unknown };
  const orig = engine.runKernel;
  let count = 0;
  engine.runKernel = function (this: unknown, ...args: unknown[]) {
    count++;
    return orig.apply(this, args);
  };
  try {
    fn();
  } finally {
    engine.runKernel = orig;
  }
  return count;
}

/** Describes a case in one line for failure messages. */
export function describeCase(c: Case): string {
  return `B${c.batch} H${c.heads}/${c.kvHeads} n${c.n} m${c.m} d${c.d} dv${c.dv} kl=${JSON.stringify(c.keyLength)} ${JSON.stringify(c.config)}`;
}
