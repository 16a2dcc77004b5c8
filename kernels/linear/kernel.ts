/**
 * The fused linear-attention kernel for tfjs's webgpu backend (one kernel serves `linear` and
 * `performer`): its `KernelConfig` and {@link runLinearKernel}, which pads head dims to a multiple
 * of 4, prepares ωᵀ for FAVOR+ maps, and calls the kernel through the engine (so tfjs tracks the
 * output like any op's).
 *
 * Inside the kernel, up to five passes (see `plan.ts`): key features (FAVOR+ only) → chunk
 * sums → scan (causal) or merge (non-causal) → query features (FAVOR+ only) → queries.
 * Intermediate buffers are freed as soon as the next pass has been recorded. Every shader takes
 * its sizes (head dims, feature count, chunk) as uniforms, so one compiled shader per pass serves
 * every size (see `plan.ts` for what is unrolled).
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';
import type { Dims } from '../../src/core/types.js';
import type { WebGPUBackend } from '../shared/webgpu_types.js';
import { registerOnce } from '../shared/register.js';
import { kernelInputs } from '../shared/inputs.js';
import { LinearChunkSumProgram } from './chunk_program.js';
import { isProjectedKind, type FeatureKind } from './feature_maps.js';
import { LinearFeatureProgram } from './feature_program.js';
import type { LinearPlan } from './plan.js';
import { LinearQueryProgram } from './query_program.js';
import { LinearScanProgram } from './scan_program.js';
import { LINEAR_SAVED_INPUTS, rawScanPlan, registerLinearGradient, setRawScan } from './backward.js';
import { recordingGradients } from '../../src/core/dispatch.js';

/** Name in tfjs's kernel registry. */
export const LINEAR_KERNEL = 'AttnCatalogLinearAttention';

interface LinearAttrs {
  kind: FeatureKind;
  causal: boolean;
  features: number;
  chunk: number;
  chunks: number;
  intraSlots: number;
  xscale: number;
  /** Write the numerator alone (the backward's reverse scans). */
  raw: boolean;
}

const linearKernelFunc = ({ inputs, backend, attrs }: { inputs: Record<string, TensorInfo>; backend: unknown; attrs?: NamedAttrMap }) => {
  const gpu = backend as WebGPUBackend;
  const a = attrs as unknown as LinearAttrs;
  const { q, k, v, keyLength, omegaT } = inputs;
  const [batch, heads, n, dPad] = q.shape;
  const [, kvHeads, m] = k.shape;
  const dvPad = v.shape[3];
  const bk = batch * kvHeads;
  const fPad = Math.ceil(a.features / 4) * 4;
  const f4 = fPad / 4;
  const dv4 = dvPad / 4;
  const projected = isProjectedKind(a.kind);
  const run = (program: object, ins: TensorInfo[], uniforms: unknown) => gpu.runWebGPUProgram(program as never, ins, 'float32', uniforms as never);
  const features = (x: TensorInfo, mode: 'key' | 'query', hb: number, rows: number) =>
    run(new LinearFeatureProgram(hb, rows, fPad, a.kind, mode), [x, omegaT], LinearFeatureProgram.uniformData({ rows, d4: dPad / 4, f4, features: a.features, xscale: a.xscale }));

  const phik = projected ? features(k, 'key', bk, m) : null;
  const keys = phik ?? k;
  const sums = run(
    new LinearChunkSumProgram(bk, a.chunks, fPad, dvPad, a.kind),
    [keys, v, keyLength],
    LinearChunkSumProgram.uniformData({ m, kvHeads, chunk: a.chunk, chunks: a.chunks, f4, dv4 }),
  );
  const state = run(new LinearScanProgram(bk, a.chunks, fPad, dvPad, a.kind, a.causal), [sums], LinearScanProgram.uniformData(a.chunks, fPad, dv4));
  gpu.disposeData(sums.dataId);
  const phiq = projected ? features(q, 'query', batch * heads, n) : null;
  const queryInputs = [phiq ?? q, ...(a.causal ? [keys, v, keyLength] : []), state];
  const out = run(
    new LinearQueryProgram(batch, heads, n, dvPad, a.kind, a.causal, a.intraSlots, a.raw),
    queryInputs,
    LinearQueryProgram.uniformData({ n, m, heads, group: heads / kvHeads, kvHeads, chunk: a.chunk, chunks: a.chunks, f4, dv4, features: a.features }),
  );
  gpu.disposeData(state.dataId);
  if (phik) gpu.disposeData(phik.dataId);
  if (phiq) gpu.disposeData(phiq.dataId);
  return out;
};

/** The kernel's registration record (registered by {@link runLinearKernel} on first use, never on import). */
export const linearKernelConfig: KernelConfig = {
  kernelName: LINEAR_KERNEL,
  backendName: 'webgpu',
  kernelFunc: linearKernelFunc as unknown as KernelFunc,
};

/** Options of {@link runLinearKernel}. */
export interface LinearKernelOptions {
  kind: FeatureKind;
  causal: boolean;
  /** FAVOR+ maps: the random features `[d, M]` (caller-owned) and the input scale x' = x·xscale. */
  omega: tf.Tensor2D | null;
  xscale: number;
  keyLength: number[] | tf.Tensor1D | null;
  /** Output the numerator φ(q)ᵀS alone (identity features: the backward's reverse scans). Default false. */
  raw?: boolean;
}

/**
 * Runs the fused kernel. `plan` must come from `planLinear` for these dims and options (that is
 * where limits are checked, before dispatch).
 */
export function runLinearKernel(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, dims: Dims, opts: LinearKernelOptions, plan: LinearPlan): tf.Tensor4D {
  return tf.tidy(() => {
    const inputs: Record<string, tf.Tensor> = { ...kernelInputs(q, k, v, dims, opts.keyLength, plan.dPad, plan.dvPad) };
    if (isProjectedKind(opts.kind)) {
      if (!opts.omega) throw new Error(`feature map ${opts.kind} needs omega`);
      // ωᵀ, zero-padded to [F padded, d padded]: feature f's vector is row f (vec4 loads).
      const [d, features] = opts.omega.shape;
      inputs.omegaT = tf.pad(tf.transpose(opts.omega), [[0, plan.fPad - features], [0, plan.dPad - d]]);
    }
    const attrs: LinearAttrs = {
      kind: opts.kind,
      causal: opts.causal,
      features: plan.features,
      chunk: plan.chunk,
      chunks: plan.chunks,
      intraSlots: plan.intraSlots,
      xscale: opts.xscale,
      raw: !!opts.raw,
    };
    if (recordingGradients()) {
      // The gradient (backward.ts) saves every input: placeholders for the absent ones.
      for (const name of LINEAR_SAVED_INPUTS) if (!inputs[name]) inputs[name] = tf.zeros([1]);
      setRawScan(rawScan);
      registerLinearGradient();
    }
    registerOnce(linearKernelConfig);
    const out = tf.engine().runKernel(LINEAR_KERNEL, inputs, attrs as unknown as NamedAttrMap) as tf.Tensor4D;
    return plan.dvPad === dims.dv ? out : tf.slice(out, [0, 0, 0, 0], [-1, -1, -1, dims.dv]);
  });
}

/**
 * The backward's scans: causal linear attention with identity features, numerator only:
 * `Σ_{j <= p_i} (q_i·k_j) v_j` for `q [B, H, n, d]`, `k [B, KH, m, d]`, `v [B, KH, m, dv]`
 * (`keyLength`: keys past it excluded; null: all).
 */
function rawScan(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, keyLength: tf.Tensor1D | null): tf.Tensor4D {
  const [batch, heads, n, d] = q.shape;
  const [, kvHeads, m] = k.shape;
  const dims: Dims = { batch, heads, kvHeads, group: heads / kvHeads, n, m, d, dv: v.shape[3] };
  return runLinearKernel(q, k, v, dims, { kind: 'identity', causal: true, omega: null, xscale: 1, keyLength, raw: true }, rawScanPlan(dims));
}
