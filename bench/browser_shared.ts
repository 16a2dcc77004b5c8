/**
 * What the browser benchmark's two sides share: its options, the implementations in table
 * order, and the shape of its result (plain data, passed through `page.evaluate`).
 */

/** Options of the page's `runBrowserBench` (bench/browser_page.ts). */
export interface BrowserBenchOptions {
  /** Single-head cases (d = 64). */
  ns: number[];
  /** Multi-head cases: n values, each with `mhHeads` heads of d = 64. */
  mhNs: number[];
  mhHeads: number;
  /** Timed rounds after the warm-up round. */
  runs: number;
  /** Where the server serves onnxruntime-web's dist/ (the .wasm and .mjs files), e.g. '/ort/'. */
  ortWasmPaths: string;
  /** onnxruntime-web's `env.wasm.numThreads` (more than 1 needs the page cross-origin isolated). */
  ortThreads: number;
  /** Leave the adapter's 'subgroups' feature visible to onnxruntime-web (default: hidden). */
  ortSubgroups: boolean;
  /** Local attention's window. */
  window: number;
}

/** The implementations, in table order. */
export const IMPLS = [
  { id: 'auto', label: 'fused dense (auto)' },
  { id: 'rows', label: 'fused dense (rows)' },
  { id: 'tiled', label: 'fused dense (tiled)' },
  { id: 'local', label: 'local w=128 (kernel)' },
  { id: 'linear', label: 'linear causal (kernel)' },
  { id: 'composite-webgpu', label: 'composite webgpu' },
  { id: 'composite-webgl', label: 'composite webgl' },
  { id: 'ort', label: 'onnxruntime-web MHA' },
] as const;
export type ImplId = (typeof IMPLS)[number]['id'];

/** One implementation in one case. */
export interface BrowserCell {
  /** Median of the timed runs (ms); null when it failed. */
  ms: number | null;
  /** Every timed run (ms), in round order. */
  times: number[];
  /** Max |error| against the float64 reference over 16 sampled query rows per head. */
  err: number | null;
  /** Why it did not run (the first failure). */
  error?: string;
}

/** Ratio of one of ours to onnxruntime-web, paired by round. */
export interface PairedRatio {
  median: number;
  min: number;
  max: number;
}

export interface BrowserRow {
  n: number;
  heads: number;
  d: number;
  cells: Record<ImplId, BrowserCell>;
  /** ours ÷ ort per round, for the fused dense strategies. */
  ratios: Record<'auto' | 'rows' | 'tiled', PairedRatio | null>;
}

export interface BrowserResult {
  userAgent: string;
  adapter: { vendor?: string; architecture?: string; device?: string; description?: string; features: string[]; fallback?: boolean };
  tfjsWebgpu: string;
  webglRenderer: string;
  /** Whether the adapter offers 'subgroups' at all. */
  adapterSubgroups: boolean;
  /** Whether onnxruntime-web's device has 'subgroups' (false when hidden from it). */
  ortDeviceSubgroups: boolean | null;
  /** The features of onnxruntime-web's device (null when it could not be read). */
  ortDeviceFeatures: string[] | null;
  ortThreads: number;
  crossOriginIsolated: boolean;
  rows: BrowserRow[];
}
