/**
 * The page side of the browser benchmark (bench/browser.ts bundles it with esbuild and calls
 * `runBrowserBench` in headless Chromium). In one page it times, per case (n, heads):
 *
 * - the fused dense kernel with `kernelStrategy` 'auto', 'rows' and 'tiled' (webgpu);
 * - `localAttention({ window: 128 })` and causal `linearAttention` on the kernel path (webgpu);
 * - the dense composite on webgpu and on webgl (tfjs ops);
 * - onnxruntime-web's WebGPU `MultiHeadAttention` (com.microsoft) on a model built in code
 *   (bench/onnx_mha.ts), fed the same q, k, v transposed once on the host to [B, S, H·D].
 *
 * Every call is awaited with its output read back to the CPU. The implementations run in a
 * round robin: round 0 is everyone's warm-up (its output gives the error column), rounds
 * 1…runs are timed, one call per implementation per round, the order rotated each round.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-webgl';
import * as ort from 'onnxruntime-web/webgpu';
import { backendReport, initBackend } from '../src/core/backend.js';
import type { KernelStrategy } from '../src/core/types.js';
import { denseAttention } from '../src/variants/baseline/dense.js';
import { localAttention } from '../src/variants/fixed/local.js';
import { linearAttention } from '../src/variants/kernelized/linear.js';
import { makeQKV, sampledError } from './common.js';
import { sampledKernelizedError } from './kernelized.js';
import { multiHeadAttentionModel } from './onnx_mha.js';
import { logElu1 } from '../test/specs/kernelized-reference.js';
import type { BrowserBenchOptions, BrowserCell, BrowserResult, BrowserRow, ImplId, PairedRatio } from './browser_shared.js';

export type { BrowserBenchOptions, BrowserCell, BrowserResult, BrowserRow, ImplId, PairedRatio } from './browser_shared.js';

interface Impl {
  id: ImplId;
  /** One awaited call with readback; returns the output (caller disposes). */
  call(): Promise<{ dispose(): void; tensor?: tf.Tensor4D; host?: Float32Array }>;
  backend: 'webgpu' | 'webgl' | null;
}

const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const message = (e: unknown) => String((e as Error)?.message ?? e).split('\n')[0].slice(0, 200);

/** [B, H, S, D] → [B, S, H·D]. */
function toBSNH(x: Float32Array, B: number, H: number, S: number, D: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let s = 0; s < S; s++) out.set(x.subarray(((b * H + h) * S + s) * D, ((b * H + h) * S + s + 1) * D), ((b * S + s) * H + h) * D);
  return out;
}

/** [B, S, H·D] → [B, H, S, D]. */
function fromBSNH(x: Float32Array, B: number, H: number, S: number, D: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let s = 0; s < S; s++) out.set(x.subarray(((b * S + s) * H + h) * D, ((b * S + s) * H + h + 1) * D), ((b * H + h) * S + s) * D);
  return out;
}

/** Features that give a device subgroups: 'subgroups' itself, and those that imply it ('subgroup-size-control', which Chromium grants together with 'subgroups'; the experimental subgroup matrices). */
const isSubgroupFeature = (f: string) => /subgroup/.test(f);

/**
 * Makes `navigator.gpu.requestAdapter` hand out adapters whose `features` lack every subgroup
 * feature, and whose `requestDevice` drops any that is asked for anyway (onnxruntime-web asks
 * for 'subgroup-size-control' when the adapter lists it, and Chromium's device then has
 * 'subgroups' too). Installed after the library's own device is made, so only
 * onnxruntime-web's adapter and device are affected.
 */
function hideSubgroups(): void {
  const gpu = navigator.gpu;
  const original = gpu.requestAdapter.bind(gpu);
  gpu.requestAdapter = async (options?: GPURequestAdapterOptions) => {
    const adapter = await original(options);
    if (!adapter) return adapter;
    const features = new Set([...adapter.features].filter((f) => !isSubgroupFeature(f)));
    Object.defineProperty(adapter, 'features', { value: features, configurable: true });
    const requestDevice = adapter.requestDevice.bind(adapter);
    adapter.requestDevice = (desc?: GPUDeviceDescriptor) =>
      requestDevice(desc && { ...desc, requiredFeatures: [...(desc.requiredFeatures ?? [])].filter((f) => !isSubgroupFeature(f)) });
    return adapter;
  };
}

async function runCase(n: number, heads: number, opts: BrowserBenchOptions, log: (s: string) => void): Promise<BrowserRow> {
  const d = 64;
  const p = { batch: 1, heads, kvHeads: heads, n, m: n, d, dv: d };
  await tf.setBackend('webgpu');
  const gpuX = makeQKV(p);
  const [qh, kh, vh] = (await Promise.all([gpuX.q.data(), gpuX.k.data(), gpuX.v.data()])) as Float32Array[];
  await tf.setBackend('webgl');
  const glX = {
    q: tf.tensor4d(qh, gpuX.q.shape),
    k: tf.tensor4d(kh, gpuX.k.shape),
    v: tf.tensor4d(vh, gpuX.v.shape),
  };
  await tf.setBackend('webgpu');

  const dense = denseAttention({ causal: false });
  const local = localAttention({ window: opts.window });
  const linear = linearAttention({ causal: true });
  const tfCall = (fn: () => tf.Tensor4D) => async () => {
    const out = fn();
    await out.data();
    return { tensor: out, dispose: () => out.dispose() };
  };
  const fused = (s: KernelStrategy) => tfCall(() => dense.apply(gpuX.q, gpuX.k, gpuX.v, { implementation: 'kernel', kernelStrategy: s }));

  // onnxruntime-web: its own session (and device), the inputs as CPU tensors made once.
  let session: ort.InferenceSession | null = null;
  let sessionError: string | null = null;
  try {
    session = await ort.InferenceSession.create(multiHeadAttentionModel({ batch: 1, n, heads, d }), {
      executionProviders: ['webgpu'],
    });
  } catch (e) {
    sessionError = `session: ${message(e)}`;
  }
  const feeds = {
    query: new ort.Tensor('float32', toBSNH(qh, 1, heads, n, d), [1, n, heads * d]),
    key: new ort.Tensor('float32', toBSNH(kh, 1, heads, n, d), [1, n, heads * d]),
    value: new ort.Tensor('float32', toBSNH(vh, 1, heads, n, d), [1, n, heads * d]),
  };

  const impls: Impl[] = [
    { id: 'auto', backend: 'webgpu', call: fused('auto') },
    { id: 'rows', backend: 'webgpu', call: fused('rows') },
    { id: 'tiled', backend: 'webgpu', call: fused('tiled') },
    { id: 'local', backend: 'webgpu', call: tfCall(() => local.apply(gpuX.q, gpuX.k, gpuX.v, { implementation: 'kernel' })) },
    { id: 'linear', backend: 'webgpu', call: tfCall(() => linear.apply(gpuX.q, gpuX.k, gpuX.v, { implementation: 'kernel' })) },
    { id: 'composite-webgpu', backend: 'webgpu', call: tfCall(() => dense.apply(gpuX.q, gpuX.k, gpuX.v, { implementation: 'composite' })) },
    { id: 'composite-webgl', backend: 'webgl', call: tfCall(() => dense.apply(glX.q, glX.k, glX.v, { implementation: 'composite' })) },
    {
      id: 'ort',
      backend: null,
      call: async () => {
        if (!session) throw new Error(sessionError!);
        const r = await session.run(feeds);
        const out = r.output;
        // CPU output location (the default): the data is already read back when run() resolves.
        const host = out.data as Float32Array;
        return { host, dispose: () => out.dispose() };
      },
    },
  ];

  const cells = Object.fromEntries(impls.map((i) => [i.id, { ms: null, times: [], err: null } as BrowserCell])) as Record<ImplId, BrowserCell>;
  const failed = new Set<ImplId>();
  const scale = 1 / Math.sqrt(d);
  const w = opts.window;
  const error = async (id: ImplId, out: { tensor?: tf.Tensor4D; host?: Float32Array }): Promise<number> => {
    const t = out.tensor ?? tf.tensor4d(fromBSNH(out.host!, 1, heads, n, d), [1, heads, n, d]);
    try {
      if (id === 'local') return await sampledError(t, gpuX.q, gpuX.k, gpuX.v, scale, (_h, i, j) => (Math.abs(i - j) <= w ? 1 : 0));
      if (id === 'linear') return await sampledKernelizedError(t, gpuX.q, gpuX.k, gpuX.v, logElu1, true);
      return await sampledError(t, gpuX.q, gpuX.k, gpuX.v, scale, () => 1);
    } finally {
      if (!out.tensor) t.dispose();
    }
  };

  for (let round = 0; round <= opts.runs; round++) {
    for (let s = 0; s < impls.length; s++) {
      const impl = impls[(s + round) % impls.length];
      if (failed.has(impl.id)) continue;
      const cell = cells[impl.id];
      try {
        if (impl.backend && tf.getBackend() !== impl.backend) await tf.setBackend(impl.backend);
        const t0 = performance.now();
        const out = await impl.call();
        const ms = performance.now() - t0;
        try {
          if (round === 0) cell.err = await error(impl.id, out);
          else cell.times.push(ms);
        } finally {
          out.dispose();
        }
      } catch (e) {
        cell.error = message(e);
        cell.times = [];
        failed.add(impl.id);
        log(`  n=${n} heads=${heads} ${impl.id}: error: ${cell.error}`);
      }
    }
  }
  await tf.setBackend('webgpu');
  for (const c of Object.values(cells)) c.ms = c.times.length ? median(c.times) : null;

  const ratio = (id: 'auto' | 'rows' | 'tiled'): PairedRatio | null => {
    const a = cells[id].times;
    const o = cells.ort.times;
    if (!a.length || a.length !== o.length) return null;
    const r = a.map((x, i) => x / o[i]);
    return { median: median(r), min: Math.min(...r), max: Math.max(...r) };
  };

  gpuX.dispose();
  [glX.q, glX.k, glX.v].forEach((t) => t.dispose());
  dense.dispose();
  local.dispose();
  linear.dispose();
  await session?.release();
  const f = (c: BrowserCell) => (c.ms === null ? 'error' : `${c.ms.toFixed(1)} ms (err ${c.err?.toExponential(1)})`);
  log(`  n=${n} heads=${heads}: ${impls.map((i) => `${i.id} ${f(cells[i.id])}`).join(', ')}`);
  return { n, heads, d, cells, ratios: { auto: ratio('auto'), rows: ratio('rows'), tiled: ratio('tiled') } };
}

async function runBrowserBench(opts: BrowserBenchOptions): Promise<BrowserResult> {
  const log = (s: string) => console.log(s);
  const probe = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!probe) throw new Error('navigator.gpu.requestAdapter() returned null');
  const info = probe.info;
  const adapter = {
    vendor: info?.vendor,
    architecture: info?.architecture,
    device: info?.device,
    description: info?.description,
    fallback: (probe as { isFallbackAdapter?: boolean }).isFallbackAdapter ?? (info as { isFallbackAdapter?: boolean })?.isFallbackAdapter,
    features: [...probe.features].sort(),
  };
  const adapterSubgroups = probe.features.has('subgroups');

  // The library's backends: webgpu through initBackend (its device has every feature the adapter offers), webgl as tfjs makes it.
  await initBackend('webgpu');
  const tfjsWebgpu = backendReport()?.detail ?? 'webgpu';
  if (!(await tf.setBackend('webgl'))) throw new Error('tf.setBackend("webgl") returned false');
  const gl = (tf.backend() as unknown as { gpgpu?: { gl?: WebGL2RenderingContext } }).gpgpu?.gl;
  const dbg = gl?.getExtension('WEBGL_debug_renderer_info');
  const webglRenderer = gl ? String(gl.getParameter(dbg ? dbg.UNMASKED_RENDERER_WEBGL : gl.RENDERER)) : 'webgl';
  await tf.setBackend('webgpu');

  // onnxruntime-web: its wasm from our server, and (by default) adapters without 'subgroups'.
  ort.env.wasm.wasmPaths = opts.ortWasmPaths;
  ort.env.wasm.numThreads = opts.ortThreads;
  ort.env.logLevel = 'error';
  if (!opts.ortSubgroups) hideSubgroups();

  const rows: BrowserRow[] = [];
  for (const n of opts.ns) rows.push(await runCase(n, 1, opts, log));
  for (const n of opts.mhNs) rows.push(await runCase(n, opts.mhHeads, opts, log));

  // onnxruntime-web's device (set once its first session was made).
  let ortDeviceFeatures: string[] | null = null;
  try {
    const device = (await Promise.race([ort.env.webgpu.device, new Promise((r) => setTimeout(() => r(null), 1000))])) as GPUDevice | null;
    ortDeviceFeatures = device ? [...device.features].sort() : null;
  } catch {
    ortDeviceFeatures = null;
  }
  return {
    userAgent: navigator.userAgent,
    adapter,
    tfjsWebgpu,
    webglRenderer,
    adapterSubgroups,
    ortDeviceSubgroups: ortDeviceFeatures ? ortDeviceFeatures.includes('subgroups') : null,
    ortDeviceFeatures,
    ortThreads: opts.ortThreads,
    crossOriginIsolated: globalThis.crossOriginIsolated ?? false,
    rows,
  };
}

(globalThis as unknown as { runBrowserBench: typeof runBrowserBench }).runBrowserBench = runBrowserBench;
