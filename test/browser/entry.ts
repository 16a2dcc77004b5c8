/**
 * The browser check: bundled by test/browser.test.ts and run in headless Chromium. On webgpu
 * (the fused kernels, through navigator.gpu) and on webgl (the composites) it runs dense
 * (causal, grouped heads, keyLength) and local attention, and three conformance cases of every
 * catalog entry, against the float64 references (on webgpu also with each flash strategy: one
 * row per invocation, tiled, tiled with staged tiles); and two cases of the padding check per entry.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-webgl';
import { backendReport, initBackend } from '../../src/core/backend.js';
import { kernelAvailable } from '../../src/core/dispatch.js';
import { denseAttention } from '../../src/variants/baseline/dense.js';
import { localAttention } from '../../src/variants/fixed/local.js';
import fc from 'fast-check';
import { catalog } from '../../src/index.js';
import { makeInputs, runCase } from '../harness.js';
import { maxAbsDiff, referenceDense, referenceWeighted, seededTensor, toHost } from '../reference.js';
import { specs } from '../specs/index.js';
import { poisonCheck } from '../poison.js';
import { setTileStaging } from '../../kernels/flash/plan.js';
import { AttentionError } from '../../src/core/errors.js';
import type { KernelStrategy } from '../../src/core/types.js';

/**
 * Every catalog entry: two sampled cases of the padding check (non-finite values past keyLength
 * and in causally masked keys leave every other output bit-identical), on the active path.
 */
async function paddingProblems(): Promise<Record<string, string | null>> {
  const out: Record<string, string | null> = {};
  for (const entry of catalog) {
    const spec = specs[entry.id];
    try {
      const draws = fc.sample(
        spec.cases.chain((c) =>
          fc.record({
            c: fc.constant(c),
            lengths: fc.array(fc.integer({ min: 0, max: c.m }), { minLength: c.batch, maxLength: c.batch }),
            asTensor: fc.boolean(),
            futureAt: fc.integer({ min: 0, max: c.m - 1 }),
            seed: fc.integer({ min: 1, max: 1e9 }),
          }),
        ),
        { seed: 11, numRuns: 2 },
      );
      let problem: string | null = null;
      for (const d of draws) {
        problem ??= await poisonCheck(spec, d.c, { lengths: d.lengths, asTensor: d.asTensor, future: spec.causal(d.c) ? d.futureAt : null, seed: d.seed }, 'auto');
      }
      out[entry.id] = problem;
    } catch (e) {
      out[entry.id] = `error: ${(e as Error).message}`;
    }
  }
  return out;
}

/**
 * Every catalog entry: a few of its conformance cases against its float64 reference, on the
 * path 'auto' picks, or (webgpu) on the fused kernel with one strategy.
 */
async function catalogErrors(kernelStrategy?: KernelStrategy): Promise<Record<string, number | string>> {
  const out: Record<string, number | string> = {};
  for (const entry of catalog) {
    const spec = specs[entry.id];
    if (kernelStrategy && !spec.fused) continue;
    let worst = 0;
    try {
      for (const c of fc.sample(spec.cases, { seed: 7, numRuns: 3 })) {
        const attn = spec.make(c.config);
        const x = makeInputs(c);
        try {
          const [qh, kh, vh] = await Promise.all([toHost(x.q), toHost(x.k), toHost(x.v)]);
          // An entry whose fused path runs one strategy (spec.kernelStrategies) must refuse the other.
          if (kernelStrategy && kernelStrategy !== 'auto' && !(spec.kernelStrategies ?? ['rows', 'tiled']).includes(kernelStrategy)) {
            const refused = await runCase(attn, x, c, 'kernel', kernelStrategy).then(
              () => false,
              (e) => e instanceof AttentionError,
            );
            if (!refused) throw new Error(`'${kernelStrategy}' was not refused with AttentionError`);
            continue;
          }
          const got = await runCase(attn, x, c, kernelStrategy ? 'kernel' : 'auto', kernelStrategy);
          worst = Math.max(worst, maxAbsDiff(got.data, spec.reference(qh, kh, vh, c).data));
        } finally {
          x.dispose();
          attn.dispose();
        }
      }
      out[entry.id] = worst;
    } catch (e) {
      out[entry.id] = `error: ${(e as Error).message}`;
    }
  }
  return out;
}

async function check() {
  const [B, H, KH, n, m, d, dv] = [2, 4, 2, 37, 50, 8, 12];
  const keyLength = [50, 41];
  const q = seededTensor([B, H, n, d], 1);
  const k = seededTensor([B, KH, m, d], 2);
  const v = seededTensor([B, KH, m, dv], 3);
  const [qh, kh, vh] = await Promise.all([toHost(q), toHost(k), toHost(v)]);
  const before = tf.memory().numTensors;
  const dense = await toHost(denseAttention({ causal: true }).apply(q, k, v, { keyLength }));
  const wantDense = referenceDense(qh, kh, vh, { causal: true, keyLength });
  const w = 5;
  const local = await toHost(localAttention({ window: w }).apply(q, k, v, { keyLength }));
  const wantLocal = referenceWeighted(qh, kh, vh, 1 / Math.sqrt(d), (b, _h, i, j) =>
    j < keyLength[b] && Math.abs(i + m - n - j) <= w ? 1 : 0,
  );
  const leaked = tf.memory().numTensors - before - 2;
  [q, k, v].forEach((t) => t.dispose());
  const kernel = kernelAvailable();
  const strategies: Record<string, Record<string, number | string>> = {};
  if (kernel) {
    strategies.rows = await catalogErrors('rows');
    strategies.tiled = await catalogErrors('tiled');
    setTileStaging(true);
    try {
      strategies.tiledStaged = await catalogErrors('tiled');
    } finally {
      setTileStaging(null);
    }
  }
  return {
    path: kernel ? 'kernel' : 'composite',
    catalog: await catalogErrors(),
    strategies,
    padding: await paddingProblems(),
    denseErr: maxAbsDiff(dense.data, wantDense.data),
    localErr: maxAbsDiff(local.data, wantLocal.data),
    leaked,
  };
}

(globalThis as unknown as { runChecks: () => Promise<unknown> }).runChecks = async () => {
  const out: Record<string, unknown> = {};
  try {
    await initBackend('webgpu');
    out.webgpu = { detail: backendReport()?.detail, ...(await check()) };
  } catch (e) {
    out.webgpu = { error: String((e as Error).message ?? e) };
  }
  try {
    if (!(await tf.setBackend('webgl'))) throw new Error('tf.setBackend("webgl") returned false');
    out.webgl = { detail: 'webgl', ...(await check()) };
  } catch (e) {
    out.webgl = { error: String((e as Error).message ?? e) };
  }
  return out;
};
