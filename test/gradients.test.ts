/**
 * Issue 12's gradient property (DESIGN.md "Training"), for every catalog entry (every spec in
 * test/specs/index.ts), on every backend this machine has:
 *
 * - tf.grads of L = Σ W ⊙ apply(q, k, v, { keyLength }) (W fixed, random) with respect to q, k
 *   and v (shared-QK entries: k is q, one gradient) equal central finite differences, in float64,
 *   of Σ W ⊙ spec.reference(q, k, v, c) over every element, on tiny random cases.
 * - Keys past keyLength, and causally masked future keys (a loss over the rows i <= t only: keys
 *   j > p_t), get exactly zero gradient in k and v.
 * - Learned parameters (spec.learned: built with `trainable: true`, listed by `variables`):
 *   tf.variableGrads equals finite differences of the reference with the parameter perturbed.
 * - webgpu, entries with a fused kernel: the kernel path's gradients equal the composite's.
 * - Nothing leaks: numTensors is unchanged after the gradients (and everything made) are freed.
 *
 * Each (entry, backend, property) is its own `it`. Finite differences step h = 1e-5 in float64;
 * tolerance |g − fd| <= REL·(|fd| + max(max|fd|, FLOOR)) per tensor (float32 gradients of these
 * tiny problems are accurate to ~1e-5 of the tensor's largest entry; REL leaves ~50× margin and
 * still rejects a gradient off by 1%: see the self-check). Elements where the loss is not smooth
 * (a relu kink, an LSH bucket or routing top-w boundary within h) are recognized by one-sided
 * differences that disagree, and skipped (at most 10% of a tensor).
 */
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
// tfjs-core registers no gradient functions by itself (@tensorflow/tfjs does): this file's fork only.
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Attention, Implementation } from '../src/core/types.js';
import { setupBackends, useBackend, withGpuErrorScope } from './backends.js';
import { describeCase, makeInputs, type Inputs } from './harness.js';
import { AttentionError } from '../src/core/errors.js';
import { catalog } from '../src/index.js';
import { seededTensor, toHost, type Host4 } from './reference.js';
import { specs } from './specs/index.js';
import type { Case, VariantSpec } from './specs/types.js';

const backends = await setupBackends();
const catalogEntry = (id: string) => {
  const e = catalog.find((x) => x.id === id);
  if (!e) throw new Error(`no catalog entry ${id}`);
  return e;
};
/** fast-check runs per (entry, backend, property); GRAD_RUNS overrides. */
const RUNS = Number(process.env.GRAD_RUNS ?? 4);
/** Finite-difference step (float64). */
const STEP = 1e-5;
/** Relative tolerance of a gradient element against its finite difference (see the module comment). */
const REL = 2e-3;
/** Floor of the tensor scale in the tolerance (a tensor whose gradients are all ~0). */
const FLOOR = 0.05;
/** Kernel vs composite gradients (both float32): relative to the tensor's largest entry. */
const REL_KERNEL = 2e-4;
/** The entries DESIGN.md's "Training" lists as learned (each must have spec.learned). */
const LEARNED = ['adaptive-span', 'linformer', 'compressed', 'sinkhorn', 'set-transformer', 'transformer-xl', 'compressive'];

/** Tiny shapes: finite differences over every element stay cheap. */
function small(c: Case): boolean {
  const cost = (c.batch * c.heads * c.n * c.d + c.batch * c.kvHeads * c.m * (c.d + c.dv)) * c.batch * c.heads * c.n * c.m * (c.d + c.dv);
  return c.batch <= 2 && c.n <= 14 && c.m <= 16 && c.d <= 6 && c.dv <= 6 && c.heads * c.batch <= 4 && cost <= 4e6;
}

/** The gradient suite's cases of an entry: its gradCases, or its cases filtered to tiny shapes. */
export function gradCasesOf(spec: VariantSpec): fc.Arbitrary<Case> {
  return spec.gradCases ?? spec.cases.filter(small);
}

/** fast-check parameters: few runs, no shrinking (each run is a full finite-difference sweep), many skips (the size filter). */
const fcParams = { numRuns: RUNS, endOnFailure: true, maxSkipsPerRun: 5000 } as const;

/** The output shape of a case. */
const outShape = (c: Case): [number, number, number, number] => [c.batch, c.heads, c.n, c.dv];

/** `[b, h, i, t]` of flat index `at` in `shape` (for messages). */
function coords(shape: readonly number[], at: number): string {
  const out: number[] = [];
  for (let a = shape.length - 1; a >= 0; a--) {
    out.unshift(at % shape[a]);
    at = Math.floor(at / shape[a]);
  }
  return `[${out.join(',')}]`;
}

/**
 * Compares `got` (a gradient, float32 from the device) with central finite differences of the
 * float64 `loss` around `base` (which it perturbs in place and restores). Returns the failures
 * (empty if it matches) and the worst error relative to the tolerance's scale.
 */
function compareFD(
  name: string,
  shape: readonly number[],
  got: ArrayLike<number>,
  base: Float64Array,
  loss: (x: Float64Array) => number,
): { failures: string[]; skipped: number; worst: number; maxFd: number } {
  const size = base.length;
  const fd = new Float64Array(size);
  const plus = new Float64Array(size);
  const minus = new Float64Array(size);
  for (let i = 0; i < size; i++) {
    const b = base[i];
    base[i] = b + STEP;
    plus[i] = loss(base);
    base[i] = b - STEP;
    minus[i] = loss(base);
    base[i] = b;
    fd[i] = (plus[i] - minus[i]) / (2 * STEP);
  }
  let maxFd = 0;
  for (const x of fd) maxFd = Math.max(maxFd, Math.abs(x));
  const scale = Math.max(maxFd, FLOOR);
  const center = loss(base);
  const failures: string[] = [];
  let skipped = 0;
  let worst = 0;
  for (let i = 0; i < size; i++) {
    const err = Math.abs(got[i] - fd[i]);
    const tol = REL * (Math.abs(fd[i]) + scale);
    if (!(err <= tol)) {
      // Not smooth here (a kink or a jump within the step)? Then one-sided differences disagree.
      const fwd = (plus[i] - center) / STEP;
      const bwd = (center - minus[i]) / STEP;
      if (Math.abs(fwd - bwd) > Math.max(1e-3, tol)) {
        skipped++;
        continue;
      }
      if (failures.length < 6) failures.push(`d${name}${coords(shape, i)}: got ${got[i]}, finite difference ${fd[i]} (tolerance ${tol.toExponential(2)})`);
      else failures.length === 6 && failures.push('…');
    }
    worst = Math.max(worst, err / (REL * (Math.abs(fd[i]) + scale)));
  }
  return { failures, skipped, worst, maxFd };
}

/** Σ W ⊙ out in float64. */
function weighted(out: Host4, w: Float64Array): number {
  if (out.data.length !== w.length) throw new Error(`reference output has ${out.data.length} elements, W ${w.length}`);
  let s = 0;
  for (let i = 0; i < w.length; i++) s += out.data[i] * w[i];
  return s;
}

/** Expects one compareFD result to pass (few non-smooth elements skipped). */
function expectMatch(r: ReturnType<typeof compareFD>, size: number, label: string): void {
  expect(r.failures, `${label}\n${r.failures.join('\n')}`).toEqual([]);
  // (Up to 10%: on these tiny cases routing's top-w and LSH's bucket decisions flip within the step more often.)
  expect(r.skipped, `${label}: ${r.skipped} of ${size} elements not smooth within the step`).toBeLessThanOrEqual(Math.max(2, Math.ceil(size * 0.1)));
}

/** Whether key j of batch b is padding. */
const isPadding = (c: Case, b: number, j: number) => !!c.keyLength && j >= c.keyLength[b];

/**
 * Indices (flat, into a `[batch, kvHeads, m, dim]` gradient) whose value must be exactly zero:
 * padding keys, and keys with j > cut (when `cut` is given: the loss only sees rows up to p_t = cut).
 */
function zeroKeys(c: Case, heads: number, m: number, dim: number, cut: number | null): number[] {
  const out: number[] = [];
  for (let b = 0; b < c.batch; b++)
    for (let h = 0; h < heads; h++)
      for (let j = 0; j < m; j++) {
        if (!isPadding(c, b, j) && !(cut !== null && j > cut)) continue;
        for (let t = 0; t < dim; t++) out.push(((b * heads + h) * m + j) * dim + t);
      }
  return out;
}

/** The tensors a case differentiates: [q, k, v], or [q, v] for shared-QK entries (k is q). */
function wrt(x: Inputs): tf.Tensor4D[] {
  return x.k === x.q ? [x.q, x.v] : [x.q, x.k, x.v];
}

/** tf.grads of Σ W ⊙ apply with respect to {@link wrt}; downloads and frees them. */
async function deviceGrads(attn: Attention<unknown>, x: Inputs, c: Case, w: tf.Tensor, implementation: Implementation = 'auto'): Promise<Host4[]> {
  return withGpuErrorScope(async () => {
    const shared = x.k === x.q;
    const opts = { implementation, ...(c.keyLength ? { keyLength: c.keyLength } : {}) };
    const f = (...args: tf.Tensor[]) => {
      const [q, k, v] = (shared ? [args[0], args[0], args[1]] : args) as tf.Tensor4D[];
      return tf.sum(tf.mul(attn.apply(q, k, v, opts), w));
    };
    const grads = tf.grads(f)(wrt(x));
    try {
      return await Promise.all(grads.map((g) => toHost(g)));
    } finally {
      grads.forEach((g) => g.dispose());
    }
  });
}

/**
 * Expects two paths' gradients (`names` of the inputs, in {@link wrt} order) to agree elementwise
 * within REL_KERNEL of the larger one's scale (at least FLOOR); lists the first few that do not.
 */
function expectGradsAgree(got: Host4[], want: Host4[], names: string[], label: string, detail: string): void {
  got.forEach((g, t) => {
    let scale = FLOOR;
    for (const y of want[t].data) scale = Math.max(scale, Math.abs(y));
    const bad: string[] = [];
    g.data.forEach((y, i) => {
      if (!(Math.abs(y - want[t].data[i]) <= REL_KERNEL * scale) && bad.length < 6) bad.push(`d${names[t]}${coords(g.shape, i)}: kernel ${y}, composite ${want[t].data[i]}`);
    });
    expect(bad, `${label} d${names[t]}: ${detail}`).toEqual([]);
  });
}

/** W: fixed random loss weights for a case's output (optionally only rows i <= cut). */
function lossWeights(c: Case, cut: number | null): tf.Tensor {
  return tf.tidy(() => {
    const w = seededTensor(outShape(c), c.seed + 99);
    if (cut === null) return w;
    const rows = tf.reshape(tf.range(0, c.n, 1, 'int32'), [1, 1, c.n, 1]);
    return tf.where(tf.broadcastTo(tf.lessEqual(rows, cut), w.shape), w, tf.zerosLike(w));
  });
}

/**
 * The q/k/v gradient check of one case: device gradients vs float64 finite differences, exact
 * zeros for padding keys (and, with `cut`, for keys past p_cut), no leaks.
 */
async function checkCase(spec: VariantSpec, c: Case, cut: number | null): Promise<void> {
  const attn = spec.make(c.config);
  const x = makeInputs(c);
  const w = lossWeights(c, cut);
  try {
    const [qh, kh, vh, wh] = await Promise.all([toHost(x.q), toHost(x.k), toHost(x.v), toHost(w)]);
    const before = tf.memory().numTensors;
    const grads = await deviceGrads(attn, x, c, w);
    expect(tf.memory().numTensors, `tensors leaked by tf.grads: ${describeCase(c)}`).toBe(before);
    const shared = x.k === x.q;
    const label = (what: string) => `${spec.id} ${what}${cut !== null ? ` (loss over rows <= ${cut})` : ''}: ${describeCase(c)}`;
    // Exact zeros: padding keys; with a cut, keys past p_cut (= cut + m − n).
    const pCut = cut === null ? null : cut + c.m - c.n;
    const kvTargets: [string, Host4, number][] = shared ? [['q', grads[0], c.d], ['v', grads[1], c.dv]] : [['k', grads[1], c.d], ['v', grads[2], c.dv]];
    for (const [name, g, dim] of kvTargets) {
      const zeros = zeroKeys(c, shared ? c.heads : c.kvHeads, c.m, dim, pCut);
      const nonzero = zeros.filter((at) => g.data[at] !== 0);
      expect(nonzero.map((at) => `d${name}${coords(g.shape, at)} = ${g.data[at]}`).slice(0, 6), label(`d${name} of padding / masked keys must be exactly 0`)).toEqual([]);
    }
    // Finite differences of the float64 reference over every element of q, k, v.
    const ref = (q: Host4, k: Host4, v: Host4) => weighted(spec.reference(q, k, v, c), wh.data);
    const targets: [string, Host4, Host4, (t: Host4) => number][] = shared
      ? [
          ['q', qh, grads[0], (t) => ref(t, t, vh)],
          ['v', vh, grads[1], (t) => ref(qh, qh, t)],
        ]
      : [
          ['q', qh, grads[0], (t) => ref(t, kh, vh)],
          ['k', kh, grads[1], (t) => ref(qh, t, vh)],
          ['v', vh, grads[2], (t) => ref(qh, kh, t)],
        ];
    for (const [name, host, g, fn] of targets) {
      const base = Float64Array.from(host.data);
      const r = compareFD(name, host.shape, g.data, base, (data) => fn({ shape: host.shape, data }));
      expectMatch(r, base.length, label(`d${name} vs finite differences`));
    }
  } finally {
    w.dispose();
    x.dispose();
    attn.dispose();
  }
}

/** The causal cut of a case: a row t < n − 1 (so that some key j > p_t exists), or null. */
function cutOf(c: Case): number | null {
  if (c.n < 2) return null;
  return c.seed % (c.n - 1);
}

it('every entry DESIGN.md lists as learned has spec.learned; every spec has gradient cases', () => {
  for (const id of LEARNED) expect(specs[id]?.learned, `spec.learned for ${id}`).toBeDefined();
  for (const spec of Object.values(specs)) expect(fc.sample(gradCasesOf(spec), 1).length, spec.id).toBe(1);
});

it('self-check: the comparison rejects a gradient off by 1% and accepts the exact one', () => {
  // f(x) = Σ a_i x_i² + (Σ x)³ / 30: gradient 2 a_i x_i + (Σ x)² / 10.
  const n = 40;
  const a = Float64Array.from({ length: n }, (_, i) => Math.sin(i + 1));
  const x0 = Float64Array.from({ length: n }, (_, i) => Math.cos(3 * i));
  const f = (x: Float64Array) => {
    let s = 0;
    let t = 0;
    for (let i = 0; i < n; i++) {
      s += a[i] * x[i] * x[i];
      t += x[i];
    }
    return s + t ** 3 / 30;
  };
  const sum = x0.reduce((p, y) => p + y, 0);
  const exact = Float32Array.from(x0, (y, i) => 2 * a[i] * y + sum ** 2 / 10);
  expect(compareFD('x', [n], exact, Float64Array.from(x0), f).failures).toEqual([]);
  const off = Float32Array.from(exact, (g) => g * 1.01);
  expect(compareFD('x', [n], off, Float64Array.from(x0), f).failures.length).toBeGreaterThan(0);
  const one = Float32Array.from(exact);
  one[7] += 0.01 * Math.max(...Array.from(exact, Math.abs));
  expect(compareFD('x', [n], one, Float64Array.from(x0), f).failures.length).toBeGreaterThan(0);
});

describe.each(backends)('backend %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
  });

  for (const spec of Object.values(specs)) {
    describe(spec.id, () => {
      const cases = gradCasesOf(spec);

      it('d/dq, d/dk, d/dv of Σ W ⊙ apply equal float64 finite differences of the reference; padding keys get exactly 0; no leaks', async () => {
        await fc.assert(
          fc.asyncProperty(cases, async (c) => checkCase(spec, c, null)),
          fcParams,
        );
      });

      if (!spec.nonCausal) it('causal: a loss over rows i <= t gives keys j > p_t exactly zero gradient (and matches finite differences)', async () => {
        await fc.assert(
          fc.asyncProperty(cases.filter((c) => spec.causal(c) && cutOf(c) !== null), async (c) => checkCase(spec, c, cutOf(c))),
          fcParams,
        );
      });

      const learned = spec.learned;
      if (learned) it('learned parameters (trainable: true): variables, and tf.variableGrads equals finite differences of the reference', async () => {
        const lcases = learned.cases ?? cases.map((c) => ({ ...c, config: { ...c.config, trainable: true } }));
        await fc.assert(
          fc.asyncProperty(lcases, async (c) => {
            const attn = spec.make(c.config) as Attention<unknown> & { variables?: tf.Variable[] };
            const params = learned.params(c);
            const made: { dispose(): void }[] = [];
            try {
              expect(Array.isArray(attn.variables), `${spec.id}: a 'variables' getter listing the learned tf.Variables`).toBe(true);
              const vars = attn.variables!;
              expect(vars.map((v) => v.shape), `${spec.id}: variables = ${params.map((p) => p.name).join(', ')}`).toEqual(params.map((p) => p.shape));
              expect(vars.every((v) => v instanceof tf.Variable && v.trainable)).toBe(true);
              let lossFn: () => tf.Scalar;
              let reference: (c2: Case) => number;
              if (learned.objective) {
                const o = await learned.objective.prepare(attn, c);
                made.push(o);
                lossFn = o.loss;
                reference = o.reference;
              } else {
                const x = makeInputs(c);
                const w = lossWeights(c, null);
                made.push(x, w);
                const [qh, kh, vh, wh] = await Promise.all([toHost(x.q), toHost(x.k), toHost(x.v), toHost(w)]);
                const opts = c.keyLength ? { keyLength: c.keyLength } : {};
                lossFn = () => tf.sum(tf.mul(attn.apply(x.q, x.k, x.v, opts), w)) as tf.Scalar;
                reference = (c2) => weighted(spec.reference(qh, kh, vh, c2), wh.data);
              }
              const before = tf.memory().numTensors;
              const got = await withGpuErrorScope(async () => {
                const { value, grads } = tf.variableGrads(lossFn, vars);
                try {
                  return await Promise.all(vars.map((v) => grads[v.name].data()));
                } finally {
                  value.dispose();
                  Object.values(grads).forEach((g) => g.dispose());
                }
              });
              expect(tf.memory().numTensors, `tensors leaked by tf.variableGrads: ${describeCase(c)}`).toBe(before);
              const values = params.map((p) => Float64Array.from(p.data));
              params.forEach((p, i) => {
                const r = compareFD(p.name, p.shape, got[i], values[i], () => reference(learned.withParams(c, values)));
                expectMatch(r, p.data.length, `${spec.id} d${p.name} vs finite differences: ${describeCase(c)}`);
              });
            } finally {
              made.forEach((t) => t.dispose());
              attn.dispose();
            }
          }),
          fcParams,
        );
      });

      if (backend === 'webgpu' && spec.fused && !catalogEntry(spec.id).capabilities.fusedBackward) it('webgpu: \'kernel\' while gradients are recorded throws AttentionError where the fused path is forward-only, else equals the composite', async () => {
        await fc.assert(
          fc.asyncProperty(cases, async (c) => {
            const attn = spec.make(c.config);
            const x = makeInputs(c);
            const w = lossWeights(c, null);
            try {
              // (performer's relu kernel has a fused backward; its softmax kernel does not.)
              let kernel: Awaited<ReturnType<typeof deviceGrads>> | null = null;
              let err: unknown = null;
              try {
                kernel = await deviceGrads(attn, x, c, w, 'kernel');
              } catch (e) {
                err = e;
              }
              if (!kernel) expect(err, `${spec.id}: ${describeCase(c)}`).toBeInstanceOf(AttentionError);
              else {
                const composite = await deviceGrads(attn, x, c, w, 'composite');
                expectGradsAgree(kernel, composite, x.k === x.q ? ['q', 'v'] : ['q', 'k', 'v'], `${spec.id} kernel vs composite`, describeCase(c));
              }
            } finally {
              w.dispose();
              x.dispose();
              attn.dispose();
            }
          }),
          fcParams,
        );
      });

      if (backend === 'webgpu' && spec.fused && catalogEntry(spec.id).capabilities.fusedBackward) it('webgpu: the fused kernel path\'s gradients (the fused backward) equal the composite path\'s', async () => {
        await fc.assert(
          fc.asyncProperty(cases, async (c) => {
            const attn = spec.make(c.config);
            const x = makeInputs(c);
            const w = lossWeights(c, null);
            try {
              const composite = await deviceGrads(attn, x, c, w, 'composite');
              // 'auto': the fused path wherever its fused backward covers the call (linear's causal n != m runs the composite).
              const kernel = await deviceGrads(attn, x, c, w, 'auto');
              expectGradsAgree(kernel, composite, x.k === x.q ? ['q', 'v'] : ['q', 'k', 'v'], `${spec.id} kernel vs composite`, describeCase(c));
            } finally {
              w.dispose();
              x.dispose();
              attn.dispose();
            }
          }),
          fcParams,
        );
      });
    });
  }
});
