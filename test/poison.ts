/**
 * The "padding and masked keys never reach an output" check, shared by test/padding.test.ts (Node:
 * cpu, wasm, webgpu) and the browser suite (webgl, webgpu in Chromium): NaN, +Inf or −Inf placed at
 * random in keys and values past `keyLength` and — for causal cases — in keys from position
 * `future` on, must leave every output that may not see them bit-identical to the output with
 * finite values there (every row for padding; rows at positions below `future` for causality).
 */
import * as tf from '@tensorflow/tfjs-core';
import { describeCase } from './harness.js';
import { seededTensor } from './reference.js';
import type { Case, VariantSpec } from './specs/types.js';
import type { KernelStrategy } from '../src/core/types.js';

const POISON = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];

/** Where to poison one case. */
export interface Poison {
  /** Valid keys per batch element (keys at or past them are padding). */
  lengths: number[];
  /** Pass `lengths` as an int32 tensor rather than numbers. */
  asTensor: boolean;
  /** First poisoned future key (causal cases only), or null. */
  future: number | null;
  /** Which poisoned entries get which non-finite value. */
  seed: number;
}

function poisoned(c: Case, p: Poison, which: 'k' | 'v', clean: Float32Array, dim: number): Float32Array {
  const out = clean.slice();
  let s = p.seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
  for (let b = 0; b < c.batch; b++)
    for (let h = 0; h < c.kvHeads; h++)
      for (let j = 0; j < c.m; j++) {
        if (j < p.lengths[b] && (p.future === null || j < p.future)) continue;
        for (let t = 0; t < dim; t++) {
          // About half the entries of each poisoned key, in k or in v.
          if (next() < 0.5 !== (which === 'k')) continue;
          if (next() < 0.5) out[((b * c.kvHeads + h) * c.m + j) * dim + t] = POISON[Math.floor(next() * 3)];
        }
      }
  return out;
}

/** Runs the check on the active backend; resolves to null when it holds, else to what differed. */
export async function poisonCheck(
  spec: VariantSpec,
  c: Case,
  p: Poison,
  implementation: 'auto' | 'kernel' | 'composite',
  around?: <T>(f: () => Promise<T>) => Promise<T>,
  kernelStrategy?: KernelStrategy,
): Promise<string | null> {
  const scope = around ?? (<T>(f: () => Promise<T>) => f());
  const attn = spec.make(c.config);
  const q = seededTensor([c.batch, c.heads, c.n, c.d], c.seed);
  const kt0 = seededTensor([c.batch, c.kvHeads, c.m, c.d], c.seed + 1);
  const vt0 = seededTensor([c.batch, c.kvHeads, c.m, c.dv], c.seed + 2);
  const kHost = (await kt0.data()) as Float32Array;
  const vHost = (await vt0.data()) as Float32Array;
  kt0.dispose();
  vt0.dispose();
  const run = (k: Float32Array, v: Float32Array) =>
    scope(async () => {
      const kt = tf.tensor4d(k, [c.batch, c.kvHeads, c.m, c.d]);
      const vt = tf.tensor4d(v, [c.batch, c.kvHeads, c.m, c.dv]);
      const kl = p.asTensor ? tf.tensor1d(p.lengths, 'int32') : p.lengths;
      try {
        // Shared-QK (lsh): the keys are the queries (apply(k, k, v)).
        const out = attn.apply(c.sharedQK ? kt : q, kt, vt, { implementation, keyLength: kl, ...(kernelStrategy ? { kernelStrategy } : {}) });
        const data = (await out.data()) as Float32Array;
        out.dispose();
        return data;
      } finally {
        kt.dispose();
        vt.dispose();
        if (kl instanceof tf.Tensor) kl.dispose();
      }
    });
  try {
    const clean = await run(kHost, vHost);
    // With shared QK future keys are future queries, whose hashes decide the chunks of past
    // positions (and routing picks clusters' keys among all real keys): only padding is poisoned
    // in the keys there; future values still are.
    const dirty = await run(poisoned(c, spec.routesOnKeys ? { ...p, future: null } : p, 'k', kHost, c.d), poisoned(c, p, 'v', vHost, c.dv));
    // Rows that may see a poisoned future key: positions at or past it.
    const rows = p.future === null ? c.n : Math.min(c.n, Math.max(0, p.future - (c.m - c.n)));
    for (let b = 0; b < c.batch; b++)
      for (let h = 0; h < c.heads; h++)
        for (let i = 0; i < rows; i++)
          for (let t = 0; t < c.dv; t++) {
            const at = ((b * c.heads + h) * c.n + i) * c.dv + t;
            if (dirty[at] !== clean[at]) {
              return `output (${b}, ${h}, ${i}, ${t}) = ${dirty[at]}, ${clean[at]} with finite values; lengths ${JSON.stringify(p.lengths)} future ${p.future} poison seed ${p.seed} case seed ${c.seed}: ${describeCase(c)}`;
            }
          }
    return null;
  } finally {
    q.dispose();
    attn.dispose();
  }
}
