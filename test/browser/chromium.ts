/**
 * What the browser suite (test/browser.test.ts) and the browser bench (bench/browser.ts) share:
 * where Chromium is, how a page module is bundled for it, and how it is launched (headless, with
 * WebGPU and WebGL2 through SwiftShader).
 */
import { build } from 'esbuild';
import { chromium, type Browser } from 'playwright-core';

/** Debian's Chromium, or CHROMIUM_PATH. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/**
 * Bundles a page module (and everything it imports) into one ES module for the browser. The
 * page sees an empty `process` (test helpers read `process.env`, the bench's `process.argv`).
 */
export async function bundleForBrowser(entry: string): Promise<string> {
  const bundle = await build({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    write: false,
    logLevel: 'error',
    banner: { js: 'globalThis.process ??= { env: {}, versions: {}, argv: [] };' },
    // The Node-only branch of initBackend imports the 'webgpu' package; never reached in a browser.
    external: ['webgpu', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-backend-wasm'],
  });
  return bundle.outputFiles[0].text;
}

/** Launches headless Chromium with WebGPU (SwiftShader) and WebGL2 (ANGLE over SwiftShader). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--enable-unsafe-webgpu',
      '--use-angle=swiftshader',
      '--enable-features=Vulkan',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}
