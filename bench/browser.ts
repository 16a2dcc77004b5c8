/**
 * The browser benchmark (`npm run bench -- --suites browser`): in ONE headless Chromium page
 * (Debian's /usr/bin/chromium, or CHROMIUM_PATH; WebGPU and WebGL2 through SwiftShader), the
 * fused dense kernel (kernelStrategy auto / rows / tiled), local and causal linear attention on
 * the kernel path, the dense composite on webgpu and on webgl, and onnxruntime-web's WebGPU
 * MultiHeadAttention on the same q, k, v. bench/browser_page.ts is the page side.
 *
 * Node side: bundles the page with esbuild, serves it, the html and onnxruntime-web's dist/
 * (.wasm, .mjs) from 127.0.0.1 (a secure context, which navigator.gpu needs; with COOP/COEP
 * headers when onnxruntime-web gets more than one thread), launches Chromium with
 * playwright-core (the flags of test/browser.test.ts) and calls `runBrowserBench` in the page.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, extname, join, resolve } from 'node:path';
import type { Browser } from 'playwright-core';
import { bundleForBrowser, CHROMIUM, launchChromium } from '../test/browser/chromium.js';
import { IMPLS, type BrowserBenchOptions, type BrowserResult, type BrowserRow, type PairedRatio } from './browser_shared.js';

export type { BrowserRow, BrowserResult } from './browser_shared.js';

/** What {@link benchBrowser} measured, and where. */
export interface BrowserBench extends Omit<BrowserResult, 'rows'> {
  /** `browser.version()` as playwright reports it. */
  browserVersion: string;
  runs: number;
  rows: BrowserRow[];
}

/** Runs the page benchmark once; throws (with the reason) when Chromium is missing or the page fails. */
export async function benchBrowser(
  opts: Omit<BrowserBenchOptions, 'ortWasmPaths'>,
  log: (line: string) => void = console.log,
): Promise<BrowserBench> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`suite browser: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH to a Chromium binary)`);
  }
  const js = await bundleForBrowser(resolve(import.meta.dirname, 'browser_page.ts'));
  const ortDist = dirname(createRequire(import.meta.url).resolve('onnxruntime-web/webgpu'));
  const isolate = opts.ortThreads > 1;
  const html = '<!doctype html><meta charset="utf-8"><title>attention-catalog browser bench</title><script type="module" src="/bundle.js"></script>';
  const types: Record<string, string> = { '.wasm': 'application/wasm', '.mjs': 'text/javascript', '.js': 'text/javascript' };
  const server: Server = createServer((req, res) => {
    const headers: Record<string, string> = isolate ? { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' } : {};
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/bundle.js') return res.writeHead(200, { ...headers, 'content-type': 'text/javascript' }).end(js);
    if (path.startsWith('/ort/')) {
      const name = path.slice('/ort/'.length);
      const file = join(ortDist, name);
      if (!/^[\w.-]+$/.test(name) || !existsSync(file)) return res.writeHead(404, headers).end();
      return res.writeHead(200, { ...headers, 'content-type': types[extname(name)] ?? 'application/octet-stream' }).end(readFileSync(file));
    }
    if (path === '/') return res.writeHead(200, { ...headers, 'content-type': 'text/html' }).end(html);
    if (path === '/favicon.ico') return res.writeHead(204, headers).end();
    res.writeHead(404, headers).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  const url = `http://127.0.0.1:${port}/`;
  let browser: Browser | null = null;
  try {
    browser = await launchChromium();
    const browserVersion = browser.version();
    log(`browser: Chromium ${browserVersion} (${CHROMIUM})`);
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'log' || m.type() === 'error') log(`[page] ${m.text()}`);
    });
    await page.goto(url);
    await page.waitForFunction(() => 'runBrowserBench' in globalThis, null, { timeout: 60_000 }).catch((e) => {
      throw new Error(`the page bundle did not load: ${errors.join('; ') || (e as Error).message}`);
    });
    const pageOpts: BrowserBenchOptions = { ...opts, ortWasmPaths: `${url}ort/` };
    const result = (await page.evaluate(
      (o) => (globalThis as unknown as { runBrowserBench: (o: BrowserBenchOptions) => Promise<BrowserResult> }).runBrowserBench(o),
      pageOpts,
    )) as BrowserResult;
    if (errors.length) log(`page errors: ${errors.join('; ')}`);
    return { ...result, browserVersion, runs: opts.runs };
  } finally {
    await browser?.close();
    server.close();
  }
}

/** The lines above the table: browser, adapter, what onnxruntime-web was given, runs. */
export function browserHeader(b: BrowserBench): string {
  const a = b.adapter;
  const adapter = [a.vendor, a.architecture, a.device, a.description].filter(Boolean).join(' / ') || 'unknown';
  const sub = b.adapterSubgroups
    ? b.ortDeviceSubgroups === false
      ? "subgroups disabled for onnxruntime-web (navigator.gpu.requestAdapter wrapped: its adapters' `features` lack 'subgroups' and 'subgroup-size-control', and their requestDevice drops them; its device has no 'subgroups')"
      : b.ortDeviceSubgroups
        ? "onnxruntime-web's device HAS 'subgroups' (not hidden: its flash-attention path is known to be wrong on SwiftShader's 4-wide subgroups)"
        : "'subgroups' hidden from onnxruntime-web (its device could not be inspected)"
    : "the adapter offers no 'subgroups'";
  const threads =
    b.ortThreads > 1
      ? `${b.ortThreads} wasm threads (COOP/COEP headers sent, crossOriginIsolated = ${b.crossOriginIsolated})`
      : `1 wasm thread (env.wasm.numThreads = 1, no COOP/COEP; the MHA runs on the GPU)`;
  return [
    `Chromium ${b.browserVersion} (headless; ${b.userAgent}).`,
    `WebGPU adapter: ${adapter}${a.fallback ? ' (fallback adapter)' : ''}; tfjs: ${b.tfjsWebgpu}; WebGL: ${b.webglRenderer}.`,
    `onnxruntime-web 1.30.0, WebGPU EP: ${sub}; ${threads}.`,
    `Batch 1, d = 64 per head, n = m, non-causal except linear (causal). Each cell: median of ${b.runs} timed runs after one warm-up, ` +
      'every call awaited with its output read back to the CPU (tfjs: `await out.data()`; onnxruntime-web: CPU tensors in, ' +
      '`session.run` resolving with the CPU output), the implementations interleaved round-robin (one call each per round, order rotated). ' +
      'err: max |error| over 16 sampled query rows per head against a float64 reference (dense softmax attention; local: its band ' +
      '|i − j| ≤ 128; linear: its own elu+1 definition, causal). Ratios: ours ÷ onnxruntime-web paired by round, median (min–max).',
  ].join('\n\n');
}

/** The markdown table: one row per case, ms and error per implementation, then the ratio columns. */
export function browserTable(rows: BrowserRow[]): string {
  const ms = (r: BrowserRow, id: (typeof IMPLS)[number]['id']) => {
    const c = r.cells[id];
    if (c.error) return `error: ${c.error.replace(/\|/g, '\\|')}`;
    return c.ms === null ? '—' : c.ms.toFixed(1);
  };
  const err = (r: BrowserRow, id: (typeof IMPLS)[number]['id']) => {
    const c = r.cells[id];
    return c.err === null ? '—' : c.err.toExponential(1);
  };
  const ratio = (x: PairedRatio | null) => (x ? `${x.median.toFixed(2)}× (${x.min.toFixed(2)}–${x.max.toFixed(2)})` : '—');
  const head = ['case', ...IMPLS.flatMap((i) => [`${i.label} ms`, 'err']), 'fused dense (auto) ÷ onnxruntime-web', 'rows ÷ ort', 'tiled ÷ ort'];
  const lines = [
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
    ...rows.map(
      (r) =>
        `| n = ${r.n}, ${r.heads} head${r.heads > 1 ? 's' : ''} | ${IMPLS.map((i) => `${ms(r, i.id)} | ${err(r, i.id)}`).join(' | ')} | ` +
        `${ratio(r.ratios.auto)} | ${ratio(r.ratios.rows)} | ${ratio(r.ratios.tiled)} |`,
    ),
  ];
  return lines.join('\n');
}
