/**
 * Backend set-up: `initBackend(name)` makes a tfjs backend active and says what it chose.
 *
 * - `'webgpu'`: the browser's `navigator.gpu`; in Node the optional `webgpu` package (Dawn).
 *   A hardware adapter (Vulkan, Metal, D3D12) is preferred; without one, Dawn's OpenGL
 *   backend over Mesa's software renderer (llvmpipe) in compatibility mode (needs Debian's
 *   libegl1, libegl-mesa0, libgles2, libgl1-mesa-dri; `EGL_PLATFORM=surfaceless` is set for you).
 * - `'wasm'`, `'cpu'`: tfjs's own backends; the catalog runs its composites there.
 * - `'tensorflow'`: `@tensorflow/tfjs-node-gpu` or `@tensorflow/tfjs-node`, optional peers,
 *   loaded only when asked (their install downloads libtensorflow, so they are not bundled).
 * - `'auto'` (default): webgpu if an adapter is found, else wasm, else cpu.
 *
 * @example
 * ```ts
 * import { initBackend, backendReport } from 'attention-catalog/backend';
 * const name = await initBackend();          // 'webgpu' | 'wasm' | 'cpu'
 * console.log(backendReport()?.detail);      // e.g. "webgpu: software adapter llvmpipe (compatibility mode)"
 * ```
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';

/** Names accepted by {@link initBackend}. */
export type BackendName = 'auto' | 'webgpu' | 'wasm' | 'cpu' | 'tensorflow';

/** What {@link initBackend} chose, and why. */
export interface BackendReport {
  /** The tfjs backend now active. */
  name: Exclude<BackendName, 'auto'>;
  /** One line, e.g. `"webgpu: software adapter llvmpipe (compatibility mode)"`. */
  detail: string;
  /** For webgpu: whether the adapter is a software renderer (no hardware GPU). */
  software?: boolean;
  /** Backends tried before this one, with the reason each failed. */
  skipped: { name: string; reason: string }[];
}

let report: BackendReport | null = null;
// Keep Dawn's GPU object alive for the life of the process (its devices hang off it).
let dawnGpu: unknown = null;
/** @internal Dawn's GPU instance in Node (kept referenced so it is never collected). */
export const dawnInstance = () => dawnGpu;

/** The report of the last successful {@link initBackend}, or null before one. */
export function backendReport(): BackendReport | null {
  return report;
}

/** Why an asked-for backend could not start. */
export class BackendUnavailableError extends Error {
  constructor(readonly backend: string, reason: string) {
    super(`backend '${backend}' cannot start: ${reason}`);
    this.name = 'BackendUnavailableError';
  }
}

const isNode = typeof process !== 'undefined' && !!process.versions?.node;

interface AdapterChoice {
  gpu: GPU;
  adapter: GPUAdapter;
  software: boolean;
  detail: string;
}

async function findAdapter(): Promise<AdapterChoice> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) {
    const adapter = await nav.gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) throw new Error('navigator.gpu.requestAdapter() returned null');
    const info = adapter.info;
    const name = [info?.vendor, info?.architecture, info?.device || info?.description].filter(Boolean).join(' ') || 'unknown adapter';
    const software =
      !!(adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter || /swiftshader|llvmpipe|software/i.test(name);
    return { gpu: nav.gpu, adapter, software, detail: `browser ${software ? 'software ' : ''}adapter ${name}` };
  }
  if (!isNode) throw new Error('no navigator.gpu in this environment');
  let mod: { create(flags: string[]): GPU; globals: Record<string, unknown> };
  try {
    mod = (await import('webgpu')) as unknown as typeof mod;
  } catch (e) {
    throw new Error(`the optional 'webgpu' package (Dawn for Node) is not installed: npm install webgpu (${(e as Error).message})`);
  }
  for (const [key, value] of Object.entries(mod.globals)) {
    if (!(key in globalThis)) (globalThis as Record<string, unknown>)[key] = value;
  }
  // 1. A hardware adapter through Dawn's default backends (Vulkan on Linux).
  if (process.env.ATTN_CATALOG_NO_HARDWARE_GPU !== '1') {
    const gpu = mod.create([]);
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' }).catch(() => null);
    if (adapter) {
      dawnGpu = gpu;
      const info = adapter.info;
      const name = [info.vendor, info.device || info.description].filter(Boolean).join(' ');
      const software = SOFTWARE_ADAPTER.test(`${info.device} ${info.description} ${info.architecture}`);
      return { gpu, adapter, software, detail: `${software ? 'software' : 'hardware'} adapter ${name || 'unknown'}` };
    }
  }
  // 2. Dawn's OpenGL backend over Mesa's software renderer, in compatibility mode.
  if (!process.env.EGL_PLATFORM) process.env.EGL_PLATFORM = 'surfaceless';
  const gpu = mod.create(['backend=opengl']);
  const adapter = await gpu
    .requestAdapter({ featureLevel: 'compatibility' } as GPURequestAdapterOptions)
    .catch(() => null);
  if (!adapter) {
    throw new Error(
      'no hardware adapter, and no OpenGL (Mesa) adapter in compatibility mode: install libegl1 libegl-mesa0 libgles2 libgl1-mesa-dri',
    );
  }
  dawnGpu = gpu;
  const info = adapter.info;
  const name = (info.device || info.description || 'OpenGL').split('-')[0];
  return { gpu, adapter, software: /llvmpipe|softpipe/i.test(`${info.device} ${info.description}`), detail: `software adapter ${name} (compatibility mode)` };
}

/** Adapter names of renderers that run shaders on the CPU (Mesa's llvmpipe, lavapipe and softpipe, SwiftShader). */
export const SOFTWARE_ADAPTER = /llvmpipe|swiftshader|lavapipe|softpipe|software/i;

let webgpuStarted: { detail: string; software: boolean } | null = null;

async function startWebGPU(): Promise<{ detail: string; software: boolean }> {
  // One device per process: a second initBackend('webgpu') re-activates the backend already made.
  if (webgpuStarted && tf.findBackend('webgpu')) {
    if (!(await tf.setBackend('webgpu'))) throw new Error('tf.setBackend("webgpu") returned false');
    return webgpuStarted;
  }
  const choice = await findAdapter();
  const { adapter } = choice;
  const l = adapter.limits;
  const requiredFeatures: GPUFeatureName[] = [];
  if (adapter.features.has('timestamp-query')) requiredFeatures.push('timestamp-query');
  const device = await adapter.requestDevice({
    requiredFeatures,
    requiredLimits: {
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    },
  });
  // tfjs-backend-webgpu checks for navigator.gpu before it will construct a backend (Node 20
  // has no navigator): expose the Dawn instance that gave the adapter.
  const g = globalThis as { navigator?: { gpu?: unknown } };
  if (!g.navigator) Object.defineProperty(globalThis, 'navigator', { value: {}, configurable: true, writable: true });
  if (!g.navigator!.gpu) Object.defineProperty(g.navigator!, 'gpu', { value: choice.gpu, configurable: true });
  const webgpu = await import('@tensorflow/tfjs-backend-webgpu');
  if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
  tf.registerBackend('webgpu', () => new webgpu.WebGPUBackend(device, adapter.info as never), 3);
  const ok = await tf.setBackend('webgpu');
  if (!ok || tf.getBackend() !== 'webgpu') throw new Error('tf.setBackend("webgpu") returned false after the adapter was found');
  webgpuStarted = { detail: choice.detail, software: choice.software };
  return webgpuStarted;
}

async function startWasm(): Promise<void> {
  await import('@tensorflow/tfjs-backend-wasm');
  const ok = await tf.setBackend('wasm');
  if (!ok) throw new Error('tf.setBackend("wasm") returned false (the .wasm binary could not be loaded)');
}

async function startCpu(): Promise<void> {
  await import('@tensorflow/tfjs-backend-cpu');
  const ok = await tf.setBackend('cpu');
  if (!ok) throw new Error('tf.setBackend("cpu") returned false');
}

const TENSORFLOW_HELP =
  "neither @tensorflow/tfjs-node-gpu nor @tensorflow/tfjs-node is installed. They are optional peer dependencies: " +
  'their install script downloads libtensorflow from outside the npm registry, so they cannot be installed offline ' +
  'or bundled here. Install one (npm install @tensorflow/tfjs-node-gpu, with CUDA, or @tensorflow/tfjs-node) where that download is possible.';

async function startTensorflow(): Promise<string> {
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      await import(/* @vite-ignore */ pkg);
    } catch {
      continue;
    }
    const ok = await tf.setBackend('tensorflow');
    if (!ok) throw new Error(`${pkg} loaded but tf.setBackend("tensorflow") returned false`);
    return pkg;
  }
  throw new Error(TENSORFLOW_HELP);
}

/**
 * Makes a tfjs backend active and resolves to its name.
 *
 * @param name - `'auto'` (default) | `'webgpu'` | `'wasm'` | `'cpu'` | `'tensorflow'`.
 * @returns the name of the backend now active.
 * @throws BackendUnavailableError (as a rejection) when the asked backend cannot start, with the reason.
 *
 * @example
 * ```ts
 * import { initBackend } from 'attention-catalog/backend';
 * await initBackend('cpu');           // always available
 * const chosen = await initBackend(); // 'webgpu' where an adapter exists
 * ```
 */
export async function initBackend(name: BackendName = 'auto'): Promise<Exclude<BackendName, 'auto'>> {
  const skipped: BackendReport['skipped'] = [];
  const attempt = async (which: Exclude<BackendName, 'auto'>): Promise<BackendReport> => {
    switch (which) {
      case 'webgpu': {
        const { detail, software } = await startWebGPU();
        return { name: 'webgpu', detail: `webgpu: ${detail}`, software, skipped };
      }
      case 'wasm':
        await startWasm();
        return { name: 'wasm', detail: 'wasm: tfjs-backend-wasm (composites)', skipped };
      case 'cpu':
        await startCpu();
        return { name: 'cpu', detail: 'cpu: tfjs-backend-cpu (composites)', skipped };
      case 'tensorflow': {
        const pkg = await startTensorflow();
        return { name: 'tensorflow', detail: `tensorflow: ${pkg} (composites on TensorFlow kernels)`, skipped };
      }
    }
  };
  if (name !== 'auto') {
    if (!['webgpu', 'wasm', 'cpu', 'tensorflow'].includes(name)) {
      throw new BackendUnavailableError(String(name), "unknown backend; expected 'auto', 'webgpu', 'wasm', 'cpu' or 'tensorflow'");
    }
    try {
      report = await attempt(name);
    } catch (e) {
      throw new BackendUnavailableError(name, (e as Error).message);
    }
    return report.name;
  }
  for (const which of ['webgpu', 'wasm', 'cpu'] as const) {
    try {
      report = await attempt(which);
      return report.name;
    } catch (e) {
      skipped.push({ name: which, reason: (e as Error).message });
    }
  }
  throw new BackendUnavailableError('auto', skipped.map((s) => `${s.name}: ${s.reason}`).join('; '));
}

/** The device limits of the active webgpu backend, or null on other backends. */
export function webgpuLimits(): GPUSupportedLimits | null {
  if (tf.getBackend() !== 'webgpu') return null;
  const device = (tf.backend() as unknown as { device?: GPUDevice }).device;
  return device ? device.limits : null;
}

/** The GPUDevice of the active webgpu backend, or null (for error scopes in tests and debugging). */
export function webgpuDevice(): GPUDevice | null {
  if (tf.getBackend() !== 'webgpu') return null;
  return (tf.backend() as unknown as { device?: GPUDevice }).device ?? null;
}

