/**
 * `compressive` (Compressive Transformer) on every backend this machine has: step sequences
 * equal the float64 simulation of the whole recurrence (all three compression fns, grouped
 * heads, segment padding by keyLength as numbers or a tensor), kernel == composite, states are
 * consumed and refused when foreign or mismatched, the state's size is flat over 100 segments,
 * no leaks, AttentionError for bad configs and segments, and the gradient of the
 * reconstruction loss reaches only the conv weights (the memories are constants).
 */
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { AttentionError } from '../src/core/errors.js';
import { compressiveAttention, CompressiveAttention, CompressiveState } from '../src/variants/recurrence/compressive.js';
import { denseAttention } from '../src/variants/baseline/dense.js';
import { setupBackends, useBackend, withGpuErrorScope } from './backends.js';
import { maxAbsDiff, seededTensor, toHost, type Host4 } from './reference.js';
import { compressiveConfig, compressiveSpec as spec, configParts, referenceCompressiveSteps, type Segment } from './specs/compressive.js';
// tfjs-core registers no gradient functions by itself (@tensorflow/tfjs does): this file's fork only.
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';

const backends = await setupBackends();
const TOL = 2e-5;
const RUNS = Number(process.env.FC_RUNS ?? 10);

/** A random step sequence: a config, shapes, 3 to 5 segments (lengths multiples of rate), per-segment key lengths. */
interface Sequence {
  config: Record<string, unknown>;
  batch: number;
  heads: number;
  kvHeads: number;
  d: number;
  dv: number;
  lengths: number[];
  keyLengths: (number[] | null)[];
  seed: number;
}

const sequences: fc.Arbitrary<Sequence> = fc
  .record({
    parts: configParts,
    batch: fc.integer({ min: 1, max: 2 }),
    heads: fc.constantFrom(1, 2, 4),
    blocks: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 3, maxLength: 5 }),
    padded: fc.constantFrom('none', 'none', 'some', 'end'),
  })
  .chain((r) => {
    const lengths = r.blocks.map((b) => b * r.parts.rate);
    const S = lengths.length;
    const kl = (n: number) => fc.array(fc.integer({ min: 0, max: n }), { minLength: r.batch, maxLength: r.batch });
    const keyLengths: fc.Arbitrary<(number[] | null)[]> =
      r.padded === 'none'
        ? fc.constant(lengths.map(() => null))
        : r.padded === 'end'
          ? // The end of shorter sequences: padding in one segment, then every later key of that element padding too.
            kl(lengths[S - 2]).map((last) => lengths.map((n, s) => (s < S - 2 ? null : s === S - 2 ? last : last.map((l) => (l < lengths[S - 2] ? 0 : n)))))
          : fc.tuple(...lengths.map((n) => fc.option(kl(n), { nil: null })));
    return fc.record({ kvHeads: fc.constantFrom(...[1, 2, 4].filter((x) => r.heads % x === 0)), keyLengths }).map(
      (x): Sequence => ({
        config: compressiveConfig(r.parts),
        batch: r.batch,
        heads: r.heads,
        kvHeads: x.kvHeads,
        d: r.parts.d,
        dv: r.parts.dv,
        lengths,
        keyLengths: x.keyLengths,
        seed: r.parts.seed,
      }),
    );
  });

const describeSeq = (s: Sequence) =>
  `B${s.batch} H${s.heads}/${s.kvHeads} d${s.d} dv${s.dv} n=${JSON.stringify(s.lengths)} kl=${JSON.stringify(s.keyLengths)} ${JSON.stringify({ ...s.config, convWeights: s.config.convWeights ? 'explicit' : undefined })}`;

/** Seeded q, k, v of every segment, on the active backend. */
function segmentInputs(s: Sequence): { q: tf.Tensor4D; k: tf.Tensor4D; v: tf.Tensor4D }[] {
  const onDevice = (t: tf.Tensor4D) => {
    const r = tf.add(t, 0) as tf.Tensor4D;
    t.dispose();
    return r;
  };
  return s.lengths.map((n, i) => ({
    q: onDevice(seededTensor([s.batch, s.heads, n, s.d], s.seed + 10 * i)),
    k: onDevice(seededTensor([s.batch, s.kvHeads, n, s.d], s.seed + 10 * i + 1)),
    v: onDevice(seededTensor([s.batch, s.kvHeads, n, s.dv], s.seed + 10 * i + 2)),
  }));
}

/** Runs the step sequence; returns host outputs, the final reconstruction loss, and frees everything. */
async function runSteps(attn: CompressiveAttention, s: Sequence, inputs: ReturnType<typeof segmentInputs>, implementation: 'auto' | 'kernel' | 'composite' | 'recording'): Promise<{ outputs: Host4[]; loss: number }> {
  let state = attn.initState(s.batch);
  const outputs: Host4[] = [];
  try {
    for (let i = 0; i < inputs.length; i++) {
      const { q, k, v } = inputs[i];
      const kl = s.keyLengths[i];
      const opts = { implementation: implementation === 'recording' ? ('auto' as const) : implementation, ...(kl ? { keyLength: kl } : {}) };
      if (implementation === 'recording') {
        // The step inside tf.grad: tfjs records, and the step takes its differentiable composite.
        let out: tf.Tensor4D | null = null;
        const dq = await withGpuErrorScope(() =>
          tf.grad((x: tf.Tensor) => {
            const r = attn.step(x as tf.Tensor4D, k, v, state, opts);
            state = r.state;
            out = tf.keep(tf.clone(r.output));
            return tf.sum(r.output);
          })(q),
        );
        dq.dispose();
        outputs.push(await toHost(out!));
        (out as tf.Tensor | null)?.dispose();
        continue;
      }
      const step = await withGpuErrorScope(() => attn.step(q, k, v, state, opts));
      state = step.state;
      outputs.push(await toHost(step.output));
      step.output.dispose();
    }
    const lossT = attn.reconstructionLoss(state);
    const loss = (await lossT.data())[0];
    lossT.dispose();
    return { outputs, loss };
  } finally {
    state.dispose();
  }
}

async function hostSegments(s: Sequence, inputs: ReturnType<typeof segmentInputs>): Promise<Segment[]> {
  return Promise.all(inputs.map(async (x, i) => ({ q: await toHost(x.q), k: await toHost(x.k), v: await toHost(x.v), keyLength: s.keyLengths[i] })));
}

/** Max |a − b| relative to the output scale (at least 1). */
function relDiff(a: Host4, b: Host4): number {
  const size = b.data.reduce((m, x) => Math.max(m, Math.abs(x)), 1);
  return maxAbsDiff(a.data, b.data) / size;
}

describe.each(backends)('compressive on %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
  });
  const impls: ('auto' | 'composite' | 'recording')[] = backend === 'webgpu' ? ['auto', 'composite', 'recording'] : ['auto', 'recording'];

  it('k segments stepped equal the float64 recurrence over the whole sequence (mean, max, conv; grouped heads; padding)', async () => {
    await fc.assert(
      fc.asyncProperty(sequences, async (s) => {
        const attn = compressiveAttention(s.config as never);
        const inputs = segmentInputs(s);
        try {
          const want = referenceCompressiveSteps(await hostSegments(s, inputs), s.config);
          for (const impl of impls) {
            const got = await runSteps(attn, s, inputs, impl);
            got.outputs.forEach((o, i) => {
              expect(o.shape).toEqual(want.outputs[i].shape);
              expect(relDiff(o, want.outputs[i]), `segment ${i} (${impl}) ${describeSeq(s)}`).toBeLessThan(TOL);
            });
            expect(Math.abs(got.loss - want.reconstructionLoss), `reconstruction loss ${got.loss} vs ${want.reconstructionLoss} (${impl}) ${describeSeq(s)}`).toBeLessThan(1e-5 * Math.max(1, want.reconstructionLoss));
          }
        } finally {
          inputs.forEach((x) => [x.q, x.k, x.v].forEach((t) => t.dispose()));
          attn.dispose();
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('apply equals one step from an empty state', async () => {
    await fc.assert(
      fc.asyncProperty(spec.cases, async (c) => {
        const attn = compressiveAttention(c.config as never);
        const q = seededTensor([c.batch, c.heads, c.n, c.d], c.seed);
        const k = seededTensor([c.batch, c.kvHeads, c.n, c.d], c.seed + 1);
        const v = seededTensor([c.batch, c.kvHeads, c.n, c.dv], c.seed + 2);
        try {
          const opts = c.keyLength ? { keyLength: c.keyLength } : undefined;
          const a = attn.apply(q, k, v, opts);
          const step = attn.step(q, k, v, attn.initState(c.batch), opts);
          expect(maxAbsDiff(await a.data(), await step.output.data())).toBeLessThan(1e-6);
          a.dispose();
          step.output.dispose();
          step.state.dispose();
        } finally {
          [q, k, v].forEach((t) => t.dispose());
          attn.dispose();
        }
      }),
      { numRuns: Math.max(4, RUNS / 2) },
    );
  });

  if (backend === 'webgpu') {
    it('fused kernel == composite over step sequences', async () => {
      await fc.assert(
        fc.asyncProperty(sequences, async (s) => {
          const attn = compressiveAttention(s.config as never);
          const inputs = segmentInputs(s);
          try {
            const a = await runSteps(attn, s, inputs, 'kernel');
            const b = await runSteps(attn, s, inputs, 'composite');
            a.outputs.forEach((o, i) => expect(relDiff(o, b.outputs[i]), `segment ${i} ${describeSeq(s)}`).toBeLessThan(TOL));
          } finally {
            inputs.forEach((x) => [x.q, x.k, x.v].forEach((t) => t.dispose()));
            attn.dispose();
          }
        }),
        { numRuns: RUNS },
      );
    });
  }

  it('a step consumes its state; consumed, foreign and mismatched states throw AttentionError(state) and consume nothing', () => {
    const config = { memLength: 4, compressedLength: 2, rate: 2, fn: 'mean' as const };
    const attn = compressiveAttention(config);
    const twin = compressiveAttention(config);
    const dense = denseAttention({ causal: true });
    const B = 2;
    const x = (b: number, h: number, n: number, d: number, seed: number) => seededTensor([b, h, n, d], seed);
    const q = x(B, 2, 4, 8, 1);
    const k = x(B, 1, 4, 8, 2);
    const v = x(B, 1, 4, 8, 3);
    const made: tf.Tensor[] = [q, k, v];
    try {
      const first = attn.step(q, k, v, attn.initState(B));
      first.output.dispose();
      const s1 = first.state;
      const second = attn.step(q, k, v, s1);
      second.output.dispose();
      // s1 was consumed: its tensors are disposed, and it cannot be stepped again.
      expect(s1.isLive).toBe(false);
      expect(s1.tensors.every((t) => t.isDisposed)).toBe(true);
      const s2 = second.state;
      expect(s2.memoryLength).toBe(4);
      expect(s2.compressedLength).toBe(2);
      const refuse = (f: () => unknown, what: string) => {
        const before = tf.memory().numTensors;
        let err: unknown = null;
        try {
          f();
        } catch (e) {
          err = e;
        }
        expect(err, what).toBeInstanceOf(AttentionError);
        expect((err as AttentionError).argument, what).toBe('state');
        expect(tf.memory().numTensors, `${what}: nothing dispatched or leaked`).toBe(before);
        expect(s2.isLive, `${what}: the state is not consumed`).toBe(true);
      };
      refuse(() => attn.step(q, k, v, s1), 'a consumed state');
      refuse(() => twin.step(q, k, v, s2), 'a state of another instance (same config)');
      const dec = dense.decode(x(B, 2, 1, 8, 4), x(B, 1, 1, 8, 5), x(B, 1, 1, 8, 6));
      made.push(dec.output, dec.state.k, dec.state.v);
      refuse(() => attn.step(q, k, v, dec.state as never), "a dense decode state");
      refuse(() => attn.step(q, k, v, { ...s2 } as never), 'a copy of a state (not made by step)');
      refuse(() => attn.step(q, k, v, undefined as never), 'no state');
      refuse(() => attn.step(q, k, v, attn.initState(B + 1)), 'a state for another batch');
      const q9 = x(B, 2, 4, 9, 7);
      const k9 = x(B, 1, 4, 9, 8);
      const v9 = x(B, 1, 4, 5, 9);
      const k2 = x(B, 2, 4, 8, 10);
      const v2 = x(B, 2, 4, 8, 11);
      made.push(q9, k9, v9, k2, v2);
      refuse(() => attn.step(q9, k9, v, s2), 'another head dim d');
      refuse(() => attn.step(q, k, v9, s2), 'another value dim dv');
      refuse(() => attn.step(q, k2, v2, s2), 'another kvHeads');
      refuse(() => attn.reconstructionLoss(s1), 'reconstructionLoss of a consumed state');
      refuse(() => twin.reconstructionLoss(s2), 'reconstructionLoss of another instance');
      // The refused calls consumed nothing: the state goes on.
      const third = attn.step(q, k, v, s2);
      third.output.dispose();
      expect(s2.isLive).toBe(false);
      third.state.dispose();
      expect(third.state.tensors.every((t) => t.isDisposed)).toBe(true);
      third.state.dispose(); // again: harmless
    } finally {
      made.forEach((t) => t.isDisposed || t.dispose());
      attn.dispose();
      twin.dispose();
      dense.dispose();
    }
  });

  it('bad segments throw AttentionError before any dispatch, leaving the state usable', () => {
    const attn = compressiveAttention({ memLength: 6, compressedLength: 3, rate: 3, fn: 'conv', headDim: 4 });
    const state = attn.initState(1);
    const t = (shape: number[], seed: number) => seededTensor(shape, seed);
    const ok = [t([1, 2, 6, 4], 1), t([1, 2, 6, 4], 2), t([1, 2, 6, 4], 3)] as const;
    const bad: [string, tf.Tensor[], unknown?][] = [
      ['q', [t([1, 2, 4, 4], 4), t([1, 2, 4, 4], 5), t([1, 2, 4, 4], 6)]], // n = 4 not a multiple of 3
      ['k', [ok[0], t([1, 2, 3, 4], 7), t([1, 2, 3, 4], 8)]], // m != n
      ['q', [t([1, 2, 6, 5], 9), t([1, 2, 6, 5], 10), ok[2]]], // d = 5 vs the conv weights' 4
      ['v', [ok[0], ok[1], t([1, 2, 6, 3], 11)]], // dv = 3 vs 4
      ['options.keyLength', [...ok], { keyLength: [7] }],
      ['options.keyLength', [...ok], { keyLength: tf.tensor1d([3], 'int32') }], // step takes numbers
      ['options.implementation', [...ok], { implementation: 'fast' }],
    ];
    try {
      for (const [arg, [q, k, v], options] of bad) {
        const before = tf.memory().numTensors;
        let err: unknown = null;
        try {
          attn.step(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, state, options as never);
        } catch (e) {
          err = e;
        }
        expect(err, arg).toBeInstanceOf(AttentionError);
        expect((err as AttentionError).argument.startsWith(arg), `${arg}: ${(err as Error).message}`).toBe(true);
        expect(tf.memory().numTensors).toBe(before);
      }
      expect(() => attn.memoryBytes({ batch: 1, heads: 2, n: 4, d: 4 })).toThrow(AttentionError);
      expect(() => attn.memoryBytes({ batch: 1, heads: 2, n: 6, m: 12, d: 4 })).toThrow(AttentionError);
      expect(state.isLive).toBe(true);
      const step = attn.step(ok[0] as tf.Tensor4D, ok[1] as tf.Tensor4D, ok[2] as tf.Tensor4D, state);
      step.output.dispose();
      step.state.dispose();
    } finally {
      for (const [, ts, o] of bad) {
        ts.forEach((x) => x.isDisposed || x.dispose());
        const kl = (o as { keyLength?: unknown } | undefined)?.keyLength;
        if (kl instanceof tf.Tensor) kl.dispose();
      }
      ok.forEach((x) => x.isDisposed || x.dispose());
      attn.dispose();
    }
  });

  it('bad configs throw AttentionError (L not a multiple of rate, bad fn, wrong convWeights shapes, …), creating nothing', () => {
    fc.assert(
      fc.property(spec.badConfigs, (config) => {
        const before = tf.memory().numTensors;
        let thrown: unknown = null;
        try {
          const attn = compressiveAttention(config as never);
          const c = { batch: 1, heads: 2, n: 4, d: 4 };
          const q = seededTensor([1, 2, 4, 4], 1);
          try {
            try {
              attn.apply(q, q, q).dispose();
            } finally {
              q.dispose();
            }
          } finally {
            attn.dispose();
          }
          void c;
        } catch (e) {
          thrown = e;
        }
        expect(thrown, JSON.stringify(config)).toBeInstanceOf(AttentionError);
        expect(tf.memory().numTensors, JSON.stringify(config)).toBe(before);
      }),
      { numRuns: 40 },
    );
  });

  it('the state stays the same size over 100 segments, and nothing leaks', async () => {
    const attn = compressiveAttention({ memLength: 8, compressedLength: 6, rate: 2, fn: 'conv', headDim: 8, valueDim: 4, seed: 5 });
    const B = 2;
    const n = 4;
    let state = attn.initState(B);
    const sizes: { bytes: number; memBytes: number; tensors: number }[] = [];
    const base = tf.memory();
    try {
      for (let s = 0; s < 100; s++) {
        const q = seededTensor([B, 2, n, 8], 100 + s);
        const k = seededTensor([B, 1, n, 8], 300 + s);
        const v = seededTensor([B, 1, n, 4], 500 + s);
        const step = await withGpuErrorScope(() => attn.step(q, k, v, state, s % 7 === 3 ? { keyLength: [n, 1] } : undefined));
        state = step.state;
        step.output.dispose();
        [q, k, v].forEach((t) => t.dispose());
        const mem = tf.memory();
        sizes.push({ bytes: state.bytes, memBytes: mem.numBytes - base.numBytes, tensors: mem.numTensors - base.numTensors });
      }
      // Full after ceil((L + Lc·c) / n) = 5 segments; from then on the same bytes, the same tensors.
      const steady = sizes.slice(5);
      expect(new Set(steady.map((x) => x.bytes)).size, JSON.stringify(sizes.slice(0, 8))).toBe(1);
      expect(new Set(steady.map((x) => x.memBytes)).size, JSON.stringify(steady.slice(0, 8))).toBe(1);
      expect(new Set(steady.map((x) => x.tensors)).size).toBe(1);
      expect(steady[0].tensors).toBe(state.tensors.length);
      // memory + compressed K/V, last queries, pushed-out K/V: B·(kvHeads·(L·(d+dv) + Lc·(d+dv) + n·(d+dv)) + heads·n·d)·4
      expect(steady[0].bytes).toBe(B * (1 * (8 * 12 + 6 * 12 + 4 * 12) + 2 * 4 * 8) * 4);
      expect(steady[0].memBytes).toBe(steady[0].bytes);
      console.log(`compressive on ${backend}: state bytes over 100 segments (L=8, Lc=6, c=2, n=4, B=2, heads=2/1, d=8, dv=4): first ${JSON.stringify(sizes.slice(0, 6).map((x) => x.bytes))}, then ${steady[0].bytes} at every segment 6..100 (tf.memory() delta ${steady[0].memBytes} B, ${steady[0].tensors} tensors)`);
    } finally {
      state.dispose();
      attn.dispose();
    }
    expect(tf.memory().numTensors).toBe(base.numTensors - 2); // the two conv variables are gone too
  });

  it('apply leaks nothing and memoryBytes is finite', () => {
    const attn = compressiveAttention({ memLength: 4, rate: 2, fn: 'max' });
    const q = seededTensor([1, 2, 8, 4], 3);
    try {
      const before = tf.memory().numTensors;
      const out = attn.apply(q, q, q, { keyLength: [5] });
      expect(tf.memory().numTensors).toBe(before + 1);
      out.dispose();
      expect(attn.memoryBytes({ batch: 1, heads: 2, n: 8, d: 4 })).toBeGreaterThan(0);
    } finally {
      q.dispose();
      attn.dispose();
    }
  });

  it('reconstructionLoss trains only the conv weights; the memories are constants', async () => {
    const total = async (t: tf.Tensor) => {
      const x = tf.sum(tf.abs(t));
      const r = (await x.data())[0];
      x.dispose();
      return r;
    };
    const attn = compressiveAttention({ memLength: 0, compressedLength: 4, rate: 2, fn: 'conv', headDim: 4, trainable: true, seed: 9 });
    const B = 1;
    const seg = (s: number) => ({ q: seededTensor([B, 2, 4, 4], s), k: seededTensor([B, 1, 4, 4], s + 1), v: seededTensor([B, 1, 4, 4], s + 2) });
    const a = seg(10);
    const b = seg(20);
    const made = [a.q, a.k, a.v, b.q, b.k, b.v];
    try {
      expect(attn.variables).toEqual([attn.convK, attn.convV]);
      expect(attn.convK.trainable && attn.convV.trainable).toBe(true);
      const s1 = attn.step(a.q, a.k, a.v, attn.initState(B));
      s1.output.dispose();
      // The gradient of the reconstruction loss reaches the conv weights, nonzero.
      const { value, grads } = tf.variableGrads(() => attn.reconstructionLoss(s1.state), attn.variables);
      expect(Object.keys(grads).sort()).toEqual([attn.convK.name, attn.convV.name].sort());
      for (const g of Object.values(grads)) expect(await total(g)).toBeGreaterThan(0);
      expect(await total(value)).toBeGreaterThan(0);
      value.dispose();
      Object.values(grads).forEach((g) => g.dispose());
      // The main task does not train them: a loss on the next step's output (which attends the
      // compressed memory) sends zero gradient into the weights…
      const { value: v2, grads: g2 } = tf.variableGrads(() => {
        const one = attn.step(a.q, a.k, a.v, attn.initState(B));
        const two = attn.step(b.q, b.k, b.v, one.state);
        two.state.dispose();
        return tf.sum(two.output) as tf.Scalar;
      }, attn.variables);
      for (const g of Object.values(g2)) expect(await total(g)).toBe(0);
      v2.dispose();
      Object.values(g2).forEach((g) => g.dispose());
      // … and into the earlier segment's keys and values.
      const [dk, dv, dq2] = tf.grads((k1: tf.Tensor, v1: tf.Tensor, q2: tf.Tensor) => {
        const one = attn.step(a.q, k1 as tf.Tensor4D, v1 as tf.Tensor4D, attn.initState(B));
        const two = attn.step(q2 as tf.Tensor4D, b.k, b.v, one.state);
        two.state.dispose();
        return tf.sum(two.output);
      })([a.k, a.v, b.q]);
      expect(await total(dk)).toBe(0);
      expect(await total(dv)).toBe(0);
      expect(await total(dq2)).toBeGreaterThan(0); // the current segment's queries do get one
      [dk, dv, dq2].forEach((t) => t.dispose());
      // A fresh state (nothing pushed out yet) gives a zero loss.
      const empty = attn.initState(B);
      const zero = attn.reconstructionLoss(empty);
      expect(await total(zero)).toBe(0);
      zero.dispose();
      s1.state.dispose();
      if (backend === 'webgpu') {
        expect(() => tf.grad((k1: tf.Tensor) => attn.apply(a.q, k1 as tf.Tensor4D, a.v, { implementation: 'kernel' }))(a.k)).toThrow(AttentionError);
      }
    } finally {
      made.forEach((t) => t.dispose());
      attn.dispose();
    }
    expect(() => attn.convK).toThrow(AttentionError);
    expect(() => attn.variables).toThrow(AttentionError);
  });

  it('while recording gradients a step computes the same output, and padding keys get exactly zero gradient', async () => {
    const attn = compressiveAttention({ memLength: 4, compressedLength: 2, rate: 2, fn: 'max' });
    const B = 2;
    const seg = (s: number) => ({ q: seededTensor([B, 2, 4, 4], s), k: seededTensor([B, 1, 4, 4], s + 1), v: seededTensor([B, 1, 4, 4], s + 2) });
    const a = seg(30);
    const b = seg(40);
    const c = seg(50);
    const made = [a, b, c].flatMap((x) => [x.q, x.k, x.v]);
    // A state with padding in its memory (element 1's second segment ends after 1 key).
    const prefix = () => {
      const one = attn.step(a.q, a.k, a.v, attn.initState(B));
      one.output.dispose();
      const two = attn.step(b.q, b.k, b.v, one.state, { keyLength: [4, 1] });
      two.output.dispose();
      return two.state;
    };
    try {
      const plain = attn.step(c.q, c.k, c.v, prefix(), { keyLength: [3, 4] });
      const want = await plain.output.data();
      plain.output.dispose();
      plain.state.dispose();
      const s0 = prefix();
      let next: CompressiveState | null = null;
      const { value, grads } = tf.valueAndGrads((q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) => {
        const r = attn.step(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, s0, { keyLength: [3, 4] });
        next = r.state;
        return tf.sum(tf.mul(r.output, tf.reshape(tf.range(1, 1 + r.output.size), r.output.shape)));
      })([c.q, c.k, c.v]);
      (next as CompressiveState | null)?.dispose();
      const again = attn.step(c.q, c.k, c.v, prefix(), { keyLength: [3, 4] });
      const got = tf.tidy(() => tf.sum(tf.mul(again.output, tf.reshape(tf.range(1, 1 + again.output.size), again.output.shape))));
      expect(Math.abs((await value.data())[0] - (await got.data())[0])).toBeLessThan(1e-3 * Math.max(1, Math.abs((await got.data())[0])));
      expect(maxAbsDiff(await again.output.data(), want)).toBe(0);
      again.output.dispose();
      again.state.dispose();
      got.dispose();
      // Element 0's key 3 is padding (keyLength 3): its gradient is exactly zero; real keys get one.
      const dk = (await grads[1].data()) as Float32Array;
      const at = (b0: number, j: number) => Array.from(dk.subarray((b0 * 4 + j) * 4, (b0 * 4 + j + 1) * 4));
      expect(at(0, 3).every((x) => x === 0)).toBe(true);
      expect(at(0, 0).some((x) => x !== 0)).toBe(true);
      expect(at(1, 3).some((x) => x !== 0)).toBe(true);
      value.dispose();
      grads.forEach((g) => g.dispose());
    } finally {
      made.forEach((t) => t.dispose());
      attn.dispose();
    }
  });

  it('mean / max have no weights; the state is an instance of CompressiveState', () => {
    const attn = compressiveAttention({ fn: 'max' });
    try {
      expect(attn.variables).toEqual([]);
      expect(() => attn.convK).toThrow(AttentionError);
      expect(attn.initState(1)).toBeInstanceOf(CompressiveState);
      expect(attn.config).toMatchObject({ memLength: 16, compressedLength: 16, rate: 2, fn: 'max', causal: true });
    } finally {
      attn.dispose();
    }
  });
});
