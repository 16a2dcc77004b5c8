/**
 * Robustness of every public entry point (issue 8, points 3–7), as fast-check properties over
 * every catalog entry (its conformance spec's random cases) on every backend this machine has:
 *
 * - malformed problems and inputs: `memoryBytes`, `apply`, `pattern`, `decode` and the entries'
 *   other methods throw `AttentionError` before any dispatch and leak no tensor;
 * - dispose: after `dispose()` every method throws `AttentionError('this')` and dispatches
 *   nothing; `dispose()` again is harmless;
 * - decode states know their origin: a state from another variant, config, seed, batch, kvHeads,
 *   d or dv throws `AttentionError('state')` (and is not consumed); the right instance still
 *   decodes it, equal to a full causal recompute;
 * - the host-memory budget: a composite whose `memoryBytes()` exceeds the budget throws before
 *   dispatch (and runs at exactly its bound), and a 64 GiB dense composite is an AttentionError,
 *   not tfjs's RangeError.
 */
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { catalog, DEFAULT_HOST_MEMORY_BUDGET, hostMemoryBudget, setHostMemoryBudget } from '../src/index.js';
import { AttentionError } from '../src/core/errors.js';
import { kernelAvailable } from '../src/core/dispatch.js';
import type { Attention } from '../src/core/types.js';
import { denseAttention } from '../src/variants/baseline/dense.js';
import { localAttention } from '../src/variants/fixed/local.js';
import { setupBackends, useBackend, withGpuErrorScope } from './backends.js';
import { RUNS, describeCase, makeInputs } from './harness.js';
import { disposeDeep, expectRefused } from './expect.js';
import { maxAbsDiff, seededTensor } from './reference.js';
import { specs } from './specs/index.js';
import { matMulBT } from '../kernels/shared/matmul.js';
import { performerAttention } from '../src/variants/kernelized/performer.js';
import type { Case } from './specs/types.js';

const backends = await setupBackends();

type Dyn = Record<string, unknown> & Attention<unknown>;
type AnyFn = (...args: unknown[]) => unknown;
const call = (obj: object, name: string, args: unknown[]): unknown => (obj as Record<string, AnyFn>)[name](...args);
const has = (obj: object, name: string): boolean => typeof (obj as Record<string, unknown>)[name] === 'function';

/** A copy of a decode state whose tensors are clones (decode consumes the state it is given). */
function cloneState<S extends object>(s: S): S {
  return Object.fromEntries(Object.entries(s).map(([k, v]) => [k, v instanceof tf.Tensor ? tf.clone(v) : v])) as S;
}

/** Sorted-key JSON of a resolved config: the test's own notion of "the same config". */
function stableJson(x: unknown): string {
  if (Array.isArray(x)) return `[${x.map(stableJson).join(',')}]`;
  if (x && typeof x === 'object') return `{${Object.keys(x).sort().map((k) => `${k}:${stableJson((x as Record<string, unknown>)[k])}`).join(',')}}`;
  return JSON.stringify(x);
}
/** Same resolved config and no explicit parameters (explicit ones are never "the same features"). */
const sameConfig = (a: Attention<unknown>, b: Attention<unknown>) =>
  stableJson(a.config) === stableJson(b.config) && !Object.values(a.config as object).includes('explicit');

// ---- malformed values --------------------------------------------------------------------

/** Values no positive-integer size accepts (`undefined` excluded: where it means "the default"). */
const badSize = fc.constantFrom<unknown>(Number.NaN, -8, 0, -1, 1.5, 2.25, Infinity, -Infinity, '4', null, true, [4], {});
const badSizeOrMissing = fc.oneof(badSize, fc.constant(undefined));
const problemKeys = ['batch', 'heads', 'kvHeads', 'n', 'm', 'd', 'dv', 'implementation', 'keyLength'];
const unknownKey = (known: string[]) => fc.string({ minLength: 1, maxLength: 8 }).filter((s) => !known.includes(s) && s !== '__proto__');

/** A malformed copy of a valid problem. */
type ProblemMutation = (p: Record<string, unknown>) => unknown;
const problemMutations: fc.Arbitrary<[string, ProblemMutation]> = fc.oneof(
  fc.tuple(fc.constantFrom('batch', 'heads', 'n', 'd'), badSizeOrMissing).map(([f, x]): [string, ProblemMutation] => [`${f} = ${String(x)}`, (p) => ({ ...p, [f]: x })]),
  fc.tuple(fc.constantFrom('kvHeads', 'm', 'dv'), badSize).map(([f, x]): [string, ProblemMutation] => [`${f} = ${String(x)}`, (p) => ({ ...p, [f]: x })]),
  fc.constantFrom('batch', 'heads', 'n', 'd').map((f): [string, ProblemMutation] => [`missing ${f}`, (p) => { const c = { ...p }; delete c[f]; return c; }]),
  fc.integer({ min: 1, max: 7 }).map((extra): [string, ProblemMutation] => [`kvHeads = heads + ${extra}`, (p) => ({ ...p, kvHeads: (p.heads as number) + extra })]),
  fc.constant<[string, ProblemMutation]>(['kvHeads not dividing heads', (p) => ({ ...p, heads: 3, kvHeads: 2 })]),
  unknownKey(problemKeys).map((k): [string, ProblemMutation] => [`unknown field '${k}'`, (p) => ({ ...p, [k]: 1 })]),
  fc.constantFrom<unknown>('bogus', 'fast', 'Kernel', 1, null, true).map((x): [string, ProblemMutation] => [`implementation = ${String(x)}`, (p) => ({ ...p, implementation: x })]),
  fc.constantFrom<unknown>(1, 0, 'yes', [3], null).map((x): [string, ProblemMutation] => [`keyLength = ${String(x)}`, (p) => ({ ...p, keyLength: x })]),
  fc.constantFrom<unknown>(null, undefined, 42, 'problem', [1, 2], true).map((x): [string, ProblemMutation] => [`problem = ${String(x)}`, () => x]),
);

type Which = 'q' | 'k' | 'v';
/** A malformed (q, k, v, options) for a case; `made` are the tensors to free afterwards. */
interface BadCall {
  label: string;
  q?: unknown;
  k?: unknown;
  v?: unknown;
  options?: unknown;
  made: tf.Tensor[];
}
type InputMutation = (c: Case) => BadCall;
const shapeOf = (c: Case, w: Which) => (w === 'q' ? [c.batch, c.heads, c.n, c.d] : w === 'k' ? [c.batch, c.kvHeads, c.m, c.d] : [c.batch, c.kvHeads, c.m, c.dv]);
const one = (w: Which, t: unknown, label: string, made: tf.Tensor[] = []): BadCall => ({ label, [w]: t, made });

/** Malformed q, k, v (shared by apply and decode). */
const tensorMutations: fc.Arbitrary<InputMutation> = fc.oneof(
  fc.tuple(fc.constantFrom<Which>('q', 'k', 'v'), fc.constantFrom(1, 2, 3, 5)).map(([w, rank]): InputMutation => (c) => {
    const s = shapeOf(c, w);
    const t = tf.zeros(rank < 4 ? s.slice(4 - rank) : [...s, 1]);
    return one(w, t, `${w} of rank ${rank}`, [t]);
  }),
  fc.tuple(fc.constantFrom<Which>('q', 'k', 'v'), fc.constantFrom<'int32' | 'bool'>('int32', 'bool')).map(([w, dtype]): InputMutation => (c) => {
    const t = tf.zeros(shapeOf(c, w), dtype);
    return one(w, t, `${w} of dtype ${dtype}`, [t]);
  }),
  fc.tuple(fc.constantFrom<Which>('q', 'k', 'v'), fc.constantFrom<unknown>(null, undefined, 3, 'q', [[1]], {})).map(([w, x]): InputMutation => () => one(w, x, `${w} = ${JSON.stringify(x)}`)),
  fc.constantFrom<Which>('q', 'k', 'v').map((w): InputMutation => (c) => {
    const t = tf.zeros(shapeOf(c, w));
    t.dispose();
    return one(w, t, `${w} disposed`);
  }),
  fc.tuple(fc.constantFrom<Which>('q', 'k', 'v'), fc.nat(3)).map(([w, axis]): InputMutation => (c) => {
    const s = shapeOf(c, w);
    s[axis] = 0;
    const t = tf.zeros(s);
    return one(w, t, `${w} with a zero-sized dim ${axis}`, [t]);
  }),
  fc.integer({ min: 1, max: 3 }).map((extra): InputMutation => (c) => {
    const k = tf.zeros([c.batch, c.heads + extra, c.m, c.d]);
    const v = tf.zeros([c.batch, c.heads + extra, c.m, c.dv]);
    return { label: `kvHeads = heads + ${extra}`, k, v, made: [k, v] };
  }),
  fc.constantFrom<Which>('k', 'v').map((w): InputMutation => (c) => {
    const s = shapeOf(c, w);
    s[0] += 1;
    const t = tf.zeros(s);
    return one(w, t, `${w} batch + 1`, [t]);
  }),
  fc.constant<InputMutation>((c) => {
    const k = tf.zeros([c.batch, c.kvHeads, c.m, c.d + 1]);
    return { label: 'k head dim + 1', k, made: [k] };
  }),
  fc.constant<InputMutation>((c) => {
    const v = tf.zeros([c.batch, c.kvHeads, c.m + 1, c.dv]);
    return { label: 'v length + 1', v, made: [v] };
  }),
);

const badImplementation = fc.oneof(
  fc.string({ maxLength: 8 }).filter((s) => !['auto', 'kernel', 'composite'].includes(s)),
  fc.constantFrom<unknown>(1, null, true, ['auto'], {}),
);
const badOptions = fc.constantFrom<unknown>(5, 'auto', [1], null, true);

/** Malformed apply options (on backends without fused kernels, `implementation: 'kernel'` too). */
const applyOptionMutations = (backend: string): fc.Arbitrary<InputMutation> =>
  fc.oneof(
    unknownKey(['implementation', 'keyLength']).map((key): InputMutation => () => ({ label: `unknown option '${key}'`, options: { [key]: 1 }, made: [] })),
    badImplementation.map((x): InputMutation => () => ({ label: `implementation ${JSON.stringify(x)}`, options: { implementation: x }, made: [] })),
    badOptions.map((x): InputMutation => () => ({ label: `options = ${JSON.stringify(x)}`, options: x, made: [] })),
    fc.constantFrom<unknown>(Number.NaN, -1, 1.5, 'm+1', '3', Infinity).map((x): InputMutation => (c) => {
      const kl = new Array(c.batch).fill(0);
      kl[c.batch - 1] = x === 'm+1' ? c.m + 1 : x;
      return { label: `keyLength ${JSON.stringify(kl)}`, options: { keyLength: kl }, made: [] };
    }),
    fc.constantFrom(-1, 1).map((delta): InputMutation => (c) => ({ label: `keyLength of ${c.batch + delta} entries`, options: { keyLength: new Array(Math.max(0, c.batch + delta)).fill(1) }, made: [] })),
    fc.constantFrom<unknown>(3, 'all', {}, true).map((x): InputMutation => () => ({ label: `keyLength = ${JSON.stringify(x)}`, options: { keyLength: x }, made: [] })),
    fc.constantFrom('float32', 'wrong shape').map((kind): InputMutation => (c) => {
      const t = kind === 'float32' ? tf.zeros([c.batch]) : tf.zeros([c.batch + 1], 'int32');
      return { label: `keyLength tensor (${kind})`, options: { keyLength: t }, made: [t] };
    }),
    ...(backend === 'webgpu' ? [] : [fc.constant<InputMutation>(() => ({ label: `implementation 'kernel' on ${backend}`, options: { implementation: 'kernel' }, made: [] }))]),
  );

/** Malformed decode options and states (decode's one option is `implementation`). */
const decodeOptionMutations = (backend: string): fc.Arbitrary<InputMutation> =>
  fc.oneof(
    unknownKey(['implementation']).map((key): InputMutation => () => ({ label: `unknown decode option '${key}'`, options: { [key]: 1 }, made: [] })),
    fc.constant<InputMutation>(() => ({ label: 'decode option keyLength', options: { keyLength: [1] }, made: [] })),
    badImplementation.map((x): InputMutation => () => ({ label: `decode implementation ${JSON.stringify(x)}`, options: { implementation: x }, made: [] })),
    badOptions.map((x): InputMutation => () => ({ label: `decode options = ${JSON.stringify(x)}`, options: x, made: [] })),
    ...(backend === 'webgpu' ? [] : [fc.constant<InputMutation>(() => ({ label: `decode implementation 'kernel' on ${backend}`, options: { implementation: 'kernel' }, made: [] }))]),
  );
const badStates = fc.constantFrom<unknown>(5, 'state', {}, { k: 1, v: 2, length: 0 }, [1], { s: 1, z: 2, length: 0 });

/** The entries' other public methods, with arguments they must refuse. */
const extraMethods: Record<string, fc.Arbitrary<unknown[]>> = {
  omegaFor: badSizeOrMissing.map((x) => [x]),
  convKernels: fc.oneof(badSizeOrMissing.map((x) => [x]), badSize.map((x) => [4, x])),
  randomBlocksFor: badSizeOrMissing.map((x) => [x]),
  redraw: fc.constantFrom<unknown>(-1, 1.5, Number.NaN, '1', null, undefined).map((x) => [x]),
};
/** Valid arguments of those methods for a case (used after dispose). */
const extraArgs = (c: Case): Record<string, unknown[]> => ({
  omegaFor: [c.d],
  convKernels: [c.d, c.dv],
  randomBlocksFor: [1],
  redraw: [1],
  spanLoss: [],
  clampSpan: [],
  projections: [],
  updateCentroids: [],
});

const problemOf = (c: Case, extra: Record<string, unknown> = {}) => ({ batch: c.batch, heads: c.heads, kvHeads: c.kvHeads, n: c.n, m: c.m, d: c.d, dv: c.dv, ...extra });

describe('host-memory budget setting', () => {
  afterEach(() => {
    setHostMemoryBudget(DEFAULT_HOST_MEMORY_BUDGET);
  });
  it('defaults to 4 GiB, returns the previous budget, refuses values that are not > 0', () => {
    expect(DEFAULT_HOST_MEMORY_BUDGET).toBe(4 * 1024 ** 3);
    expect(hostMemoryBudget()).toBe(DEFAULT_HOST_MEMORY_BUDGET);
    expect(setHostMemoryBudget(1 << 20)).toBe(DEFAULT_HOST_MEMORY_BUDGET);
    expect(hostMemoryBudget()).toBe(1 << 20);
    for (const bad of [0, -1, Number.NaN, '1', null, undefined]) {
      expect(() => setHostMemoryBudget(bad as number), String(bad)).toThrow(AttentionError);
    }
    expect(hostMemoryBudget()).toBe(1 << 20);
    expect(setHostMemoryBudget(Infinity)).toBe(1 << 20);
  });
});

describe.each(backends)('backend %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
  });

  it("a · bᵀ with long inner dims equals the float64 product (tfjs-backend-webgpu's split-K matMul is wrong with transposeB)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(16, 32, 64), fc.constantFrom(16, 64), fc.constantFrom(1024, 2048, 4096), fc.integer({ min: 1, max: 1e6 }), async (M, N, K, seed) => {
        const a = seededTensor([1, 1, M, K], seed);
        const b = seededTensor([1, 1, N, K], seed + 1);
        const [ah, bh] = [(await a.data()) as Float32Array, (await b.data()) as Float32Array];
        const got = matMulBT(a, b);
        const g = (await got.data()) as Float32Array;
        let worst = 0;
        for (let i = 0; i < M; i++)
          for (let j = 0; j < N; j++) {
            let dot = 0;
            for (let t = 0; t < K; t++) dot += ah[i * K + t] * bh[j * K + t];
            worst = Math.max(worst, Math.abs(g[i * N + j] - dot) / Math.sqrt(K));
          }
        tf.dispose([a, b, got]);
        expect(worst, `M ${M} N ${N} K ${K}`).toBeLessThan(1e-4);
      }),
      { numRuns: Math.max(4, Math.floor(RUNS / 2)) },
    );
  });

  if (backend === 'webgpu') it('the causal performer composite with 2048 features equals the fused kernel', async () => {
    const x = makeInputs({ config: {}, batch: 1, heads: 2, kvHeads: 1, n: 70, m: 70, d: 16, dv: 8, keyLength: [61], seed: 9 });
    const attn = performerAttention({ features: 2048, causal: true, seed: 4 });
    try {
      const [a, b] = await withGpuErrorScope(async () => {
        const k = attn.apply(x.q, x.k, x.v, { implementation: 'kernel', keyLength: [61] });
        const c = attn.apply(x.q, x.k, x.v, { implementation: 'composite', keyLength: [61] });
        const out = [(await k.data()) as Float32Array, (await c.data()) as Float32Array];
        tf.dispose([k, c]);
        return out;
      });
      expect(maxAbsDiff(a, b)).toBeLessThan(2e-5);
    } finally {
      x.dispose();
      attn.dispose();
    }
  });

  it('a dense composite needing 64 GiB of scores throws AttentionError (not RangeError), before any dispatch', () => {
    // q, k, v are 2 MiB each; the [1, 16, 32768, 32768] score matrix alone would be 64 GiB.
    const x = makeInputs({ config: {}, batch: 1, heads: 16, kvHeads: 16, n: 32768, m: 32768, d: 1, dv: 1, keyLength: null, seed: 5 });
    try {
      for (const attn of [denseAttention(), denseAttention({ causal: true })]) {
        const err = expectRefused(() => attn.apply(x.q, x.k, x.v, { implementation: 'composite' }), 'dense composite, 64 GiB');
        if (backend !== 'webgpu') expect(err.message).toMatch(/host-memory budget .*the dense composite needing \d+ bytes/);
        if (backend !== 'webgpu') expectRefused(() => attn.apply(x.q, x.k, x.v), "dense 'auto' on a backend without the fused kernel", /options\.implementation/);
      }
    } finally {
      x.dispose();
    }
  });

  for (const entry of catalog) {
    const spec = specs[entry.id];
    if (!spec) continue;
    const causalCases = spec.cases.filter((c) => spec.causal(c));

    describe(entry.id, () => {
      it('memoryBytes: random malformed problems throw AttentionError before any dispatch, leaking nothing', () => {
        fc.assert(
          fc.property(spec.cases, problemMutations, (c, [label, mutate]) => {
            const attn = spec.make(c.config);
            try {
              const base = problemOf(c);
              const bytes = attn.memoryBytes(base);
              expect(Number.isFinite(bytes) && bytes > 0, `valid problem ${JSON.stringify(base)}: ${bytes}`).toBe(true);
              expectRefused(() => attn.memoryBytes(mutate(base) as never), `memoryBytes(${label}) ${describeCase(c)}`, /^problem/);
            } finally {
              attn.dispose();
            }
          }),
          { numRuns: RUNS * 2 },
        );
      });

      it('apply: random malformed q, k, v and options throw AttentionError before any dispatch, leaking nothing', () => {
        fc.assert(
          fc.property(spec.cases, fc.oneof(tensorMutations, applyOptionMutations(backend)), (c, mutate) => {
            const attn = spec.make(c.config);
            const x = makeInputs(c);
            const bad = mutate(c);
            try {
              const options = 'options' in bad ? bad.options : c.keyLength ? { keyLength: c.keyLength } : undefined;
              expectRefused(
                () => attn.apply(('q' in bad ? bad.q : x.q) as tf.Tensor4D, ('k' in bad ? bad.k : x.k) as tf.Tensor4D, ('v' in bad ? bad.v : x.v) as tf.Tensor4D, options as never),
                `apply(${bad.label}) ${describeCase(c)}`,
              );
            } finally {
              bad.made.forEach((t) => t.dispose());
              x.dispose();
              attn.dispose();
            }
          }),
          { numRuns: RUNS * 2 },
        );
      });

      const probe = spec.make(fc.sample(spec.cases, { numRuns: 1, seed: 1 })[0].config);
      const extras = Object.keys(extraMethods).filter((name) => has(probe, name));
      const hasPattern = has(probe, 'pattern');
      probe.dispose();
      if (hasPattern || extras.length > 0) {
        it(`${[hasPattern ? 'pattern' : '', ...extras].filter(Boolean).join(', ')}: malformed arguments throw AttentionError before any dispatch`, () => {
          const calls: fc.Arbitrary<[string, unknown[]]>[] = extras.map((name) => extraMethods[name].map((args): [string, unknown[]] => [name, args]));
          if (hasPattern) {
            calls.push(
              badSizeOrMissing.map((n): [string, unknown[]] => ['pattern', [n, 8]]),
              badSize.map((m): [string, unknown[]] => ['pattern', [4, m]]),
              fc.constantFrom<unknown>(-1, 1.5, Number.NaN, '0', null).map((h): [string, unknown[]] => ['pattern', [4, 8, h]]),
              fc.integer({ min: 1, max: 40 }).map((m): [string, unknown[]] => ['pattern', [m + 1, m]]),
            );
          }
          fc.assert(
            fc.property(spec.cases, fc.oneof(...calls), (c, [name, args]) => {
              const attn = spec.make(c.config);
              try {
                expectRefused(() => call(attn, name, args), `${name}(${args.map((a) => JSON.stringify(a)).join(', ')}) ${describeCase(c)}`);
              } finally {
                attn.dispose();
              }
            }),
            { numRuns: RUNS * 2 },
          );
        });
      }

      if (entry.capabilities.decode) {
        it('decode: random malformed inputs, options and states throw AttentionError before any dispatch, leaking nothing', () => {
          const mutations = fc.oneof(
            tensorMutations.map((m): InputMutation => (c) => m({ ...c, m: c.n })),
            fc.constant<InputMutation>((c) => {
              const k = tf.zeros([c.batch, c.kvHeads, c.n + 1, c.d]);
              const v = tf.zeros([c.batch, c.kvHeads, c.n + 1, c.dv]);
              return { label: 'k, v of t + 1 positions', k, v, made: [k, v] };
            }),
            decodeOptionMutations(backend),
          );
          fc.assert(
            fc.property(causalCases, fc.oneof(mutations.map((m) => ({ m, state: null as unknown })), badStates.map((s) => ({ m: null, state: s }))), (c0, { m, state }) => {
              const c = { ...c0, m: c0.n, keyLength: null };
              const attn = spec.make(c.config) as Dyn;
              const x = makeInputs(c);
              const bad: BadCall = m ? m(c) : { label: `state ${JSON.stringify(state)}`, made: [] };
              try {
                expectRefused(
                  () => call(attn, 'decode', ['q' in bad ? bad.q : x.q, 'k' in bad ? bad.k : x.k, 'v' in bad ? bad.v : x.v, state ?? undefined, bad.options]),
                  `decode(${bad.label}) ${describeCase(c)}`,
                );
              } finally {
                bad.made.forEach((t) => t.dispose());
                x.dispose();
                attn.dispose();
              }
            }),
            { numRuns: RUNS * 2 },
          );
        });
      }

      it('after dispose(), every method throws AttentionError(this) and dispatches nothing; dispose() again is harmless', () => {
        fc.assert(
          fc.property(spec.cases, (c) => {
            const attn = spec.make(c.config) as Dyn;
            const x = makeInputs(c);
            try {
              attn.dispose();
              const opts = c.keyLength ? { keyLength: c.keyLength } : undefined;
              const methods: [string, () => unknown][] = [
                ['apply', () => attn.apply(x.q, x.k, x.v, opts)],
                ['apply composite', () => attn.apply(x.q, x.k, x.v, { implementation: 'composite' })],
                ['memoryBytes', () => attn.memoryBytes(problemOf(c))],
                // The disposed check comes first: even malformed arguments get AttentionError('this').
                ['memoryBytes(malformed)', () => attn.memoryBytes({ batch: Number.NaN } as never)],
              ];
              if (has(attn, 'pattern')) methods.push(['pattern', () => call(attn, 'pattern', [c.n, c.m])], ['pattern(malformed)', () => call(attn, 'pattern', [-1])]);
              if (has(attn, 'decode')) methods.push(['decode', () => call(attn, 'decode', [x.q, x.q, x.q])], ['decode(malformed)', () => call(attn, 'decode', [null, null, null, 'state', { bogus: 1 }])]);
              const args = extraArgs(c);
              for (const name of Object.keys(args)) if (has(attn, name)) methods.push([name, () => call(attn, name, args[name])]);
              for (const name of entry.capabilities.learned) methods.push([`get ${name}`, () => (attn as Record<string, unknown>)[name]]);
              for (const [name, fn] of methods) expectRefused(fn, `${name} after dispose ${describeCase(c)}`, /^this$/);
              const before = tf.memory().numTensors;
              expect(() => attn.dispose()).not.toThrow();
              expect(tf.memory().numTensors).toBe(before);
              expectRefused(() => attn.apply(x.q, x.k, x.v), 'apply after a second dispose', /^this$/);
            } finally {
              x.dispose();
            }
          }),
          { numRuns: RUNS },
        );
      });

      if (entry.capabilities.decode) {
        it('decode states: foreign or mismatched states throw AttentionError(state) and are not consumed; the right instance equals a full causal recompute', async () => {
          const foreignOf = () => (entry.id === 'dense' ? localAttention({ window: 2, causal: true }) : denseAttention({ causal: true })) as unknown as Dyn;
          await fc.assert(
            fc.asyncProperty(causalCases, causalCases, fc.integer({ min: 2, max: 9 }), fc.nat(), async (c0, o, T, cut) => {
              const { batch, heads, kvHeads, d, dv, seed } = c0;
              const prefix = 1 + (cut % (T - 1));
              const attn = spec.make(c0.config) as Dyn;
              const q = seededTensor([batch, heads, T, d], seed);
              const k = seededTensor([batch, kvHeads, T, d], seed + 1);
              const v = seededTensor([batch, kvHeads, T, dv], seed + 2);
              const others: Dyn[] = [];
              const made: tf.Tensor[] = [q, k, v];
              const slice = (t: tf.Tensor4D, s: number, e: number) => {
                const r = tf.slice(t, [0, 0, s, 0], [-1, -1, e - s, -1]) as tf.Tensor4D;
                made.push(r);
                return r;
              };
              const label = describeCase({ ...c0, n: T, m: T });
              const decode = (a: Dyn, qs: unknown, ks: unknown, vs: unknown, state?: unknown) => call(a, 'decode', [qs, ks, vs, state]) as { output: tf.Tensor4D; state: object };
              /** Whether `a` decodes these inputs from scratch (then a refusal with a state is about the state). */
              const fresh = (a: Dyn, qs: tf.Tensor, ks: tf.Tensor, vs: tf.Tensor) => {
                try {
                  disposeDeep(decode(a, qs, ks, vs));
                  return true;
                } catch (e) {
                  expect(e).toBeInstanceOf(AttentionError);
                  return false;
                }
              };
              try {
                const full = await withGpuErrorScope(() => attn.apply(q, k, v));
                const want = await full.data();
                full.dispose();
                const outs: Float32Array[] = [];
                const first = await withGpuErrorScope(() => decode(attn, slice(q, 0, prefix), slice(k, 0, prefix), slice(v, 0, prefix)));
                outs.push((await first.output.data()) as Float32Array);
                first.output.dispose();
                let state = first.state as Record<string, unknown>;
                expect(state.origin, 'a decode state carries its origin').toMatchObject({ variant: entry.id, batch, kvHeads, d, dv });

                // Inputs of one more step, as this instance would take them, and mismatched ones.
                const q1 = slice(q, prefix, prefix + 1);
                const k1 = slice(k, prefix, prefix + 1);
                const v1 = slice(v, prefix, prefix + 1);
                const refuse = (a: Dyn, qs: tf.Tensor, ks: tf.Tensor, vs: tf.Tensor, st: unknown, what: string) => {
                  if (a !== attn && !fresh(a, qs, ks, vs)) return;
                  if (a === attn && (qs !== q1 || ks !== k1 || vs !== v1) && !fresh(a, qs, ks, vs)) return;
                  expectRefused(() => decode(a, qs, ks, vs, st), `${what}: ${label}`, /^state/);
                };
                // Another instance: refused when its config differs (or has explicit parameters); accepted, with the same output, when equal.
                const other = spec.make(o.config) as Dyn;
                others.push(other);
                if (sameConfig(attn, other)) {
                  const a = decode(attn, q1, k1, v1, cloneState(state));
                  const b = decode(other, q1, k1, v1, cloneState(state));
                  expect(maxAbsDiff(await a.output.data(), await b.output.data()), `same config, other instance: ${label}`).toBeLessThanOrEqual(1e-6);
                  disposeDeep([a, b]);
                } else {
                  refuse(other, q1, k1, v1, state, `a state of another config (${stableJson(attn.config)} vs ${stableJson(other.config)})`);
                }
                // Another seed (a twin redrawn, or built with another seed): other random features.
                const cfg = attn.config as Record<string, unknown>;
                if (typeof cfg.seed === 'number') {
                  const reseeded = Object.fromEntries(Object.entries(c0.config).filter(([key]) => cfg[key] !== 'explicit'));
                  const reseed = spec.make({ ...reseeded, seed: cfg.seed + 1 }) as Dyn;
                  others.push(reseed);
                  refuse(reseed, q1, k1, v1, state, 'a state of another seed');
                }
                if (has(attn, 'redraw')) {
                  const twin = spec.make(c0.config) as Dyn;
                  others.push(twin);
                  call(twin, 'redraw', [(cfg.seed as number) + 1]);
                  refuse(twin, q1, k1, v1, state, 'a state of the features before redraw');
                }
                // Another head dim, value dim, batch or kvHeads, on this instance.
                const z = (s: number[]) => {
                  const t = seededTensor(s, seed + 9);
                  made.push(t);
                  return t;
                };
                refuse(attn, z([batch, heads, 1, d + 1]), z([batch, kvHeads, 1, d + 1]), v1, state, 'another head dim d');
                refuse(attn, q1, k1, z([batch, kvHeads, 1, dv + 1]), state, 'another value dim dv');
                refuse(attn, z([batch + 1, heads, 1, d]), z([batch + 1, kvHeads, 1, d]), z([batch + 1, kvHeads, 1, dv]), state, 'another batch');
                const otherKv = [1, 2, 4].find((x) => x !== kvHeads && heads % x === 0);
                if (otherKv !== undefined) refuse(attn, q1, z([batch, otherKv, 1, d]), z([batch, otherKv, 1, dv]), state, 'another kvHeads');
                // Forged origins, and a real state of another entry.
                const origin = state.origin as Record<string, unknown>;
                refuse(attn, q1, k1, v1, { ...state, origin: undefined }, 'a state without origin');
                refuse(attn, q1, k1, v1, { ...state, origin: { ...origin, variant: 'other' } }, 'a state of another variant id');
                refuse(attn, q1, k1, v1, { ...state, origin: { ...origin, config: '{}' } }, 'a state of another config fingerprint');
                const foreign = foreignOf();
                others.push(foreign);
                const f = decode(foreign, q1, k1, v1);
                f.output.dispose();
                refuse(attn, q1, k1, v1, f.state, `a state made by '${foreign.id}'`);
                disposeDeep(f.state);

                // The refused calls consumed nothing: the right instance goes on, equal to the full recompute.
                for (let t = prefix; t < T; t++) {
                  const step = await withGpuErrorScope(() => decode(attn, slice(q, t, t + 1), slice(k, t, t + 1), slice(v, t, t + 1), state));
                  outs.push((await step.output.data()) as Float32Array);
                  step.output.dispose();
                  state = step.state as Record<string, unknown>;
                }
                disposeDeep(state);
                for (let b = 0; b < batch; b++)
                  for (let h = 0; h < heads; h++) {
                    let s = 0;
                    for (const out of outs) {
                      const len = out.length / (batch * heads * dv);
                      const have = out.subarray((b * heads + h) * len * dv, ((b * heads + h) * len + len) * dv);
                      const wantRows = want.subarray(((b * heads + h) * T + s) * dv, ((b * heads + h) * T + s + len) * dv);
                      expect(maxAbsDiff(have, wantRows), `rows [${s}, ${s + len}) of ${label}`).toBeLessThan(5e-5);
                      s += len;
                    }
                  }
              } finally {
                made.forEach((t) => t.isDisposed || t.dispose());
                others.forEach((a) => a.dispose());
                attn.dispose();
              }
            }),
            { numRuns: Math.max(4, Math.floor(RUNS / 2)) },
          );
        });
      }

      it('host-memory budget: a composite over its memoryBytes() throws before any dispatch; at exactly its bound it runs', async () => {
        await fc.assert(
          fc.asyncProperty(spec.cases, async (c) => {
            const attn = spec.make(c.config);
            const x = makeInputs(c);
            const previous = hostMemoryBudget();
            try {
              const options = { implementation: 'composite' as const, ...(c.keyLength ? { keyLength: c.keyLength } : {}) };
              const bytes = attn.memoryBytes(problemOf(c, { implementation: 'composite', keyLength: c.keyLength !== null }));
              setHostMemoryBudget(bytes - 1);
              const err = expectRefused(() => attn.apply(x.q, x.k, x.v, options), `composite over a budget of ${bytes - 1} bytes: ${describeCase(c)}`, /options\.implementation/);
              expect(err.message).toContain(`needing ${bytes} bytes`);
              expect(err.message).toMatch(/composite/);
              expect(err.message).toMatch(/fused kernel|split the batch/);
              setHostMemoryBudget(bytes);
              const out = await withGpuErrorScope(() => attn.apply(x.q, x.k, x.v, options));
              out.dispose();
            } finally {
              setHostMemoryBudget(previous);
              x.dispose();
              attn.dispose();
            }
          }),
          { numRuns: RUNS },
        );
      });

      it('host-memory budget: only composites are refused (auto is refused where it runs the composite, never the fused kernel)', async () => {
        const c = fc.sample(spec.cases, { numRuns: 1, seed: 3 })[0];
        const attn = spec.make(c.config);
        const x = makeInputs(c);
        const previous = setHostMemoryBudget(1);
        try {
          if (!kernelAvailable()) {
            expectRefused(() => attn.apply(x.q, x.k, x.v), `auto on ${backend} over the budget`, /options\.implementation/);
          } else {
            const out = await withGpuErrorScope(() => attn.apply(x.q, x.k, x.v, { implementation: 'kernel' }));
            out.dispose();
          }
        } finally {
          setHostMemoryBudget(previous);
          x.dispose();
          attn.dispose();
        }
      });
    });
  }
});
