/**
 * In a real browser: headless Chromium (Debian's package) with WebGPU and WebGL2 through
 * SwiftShader. The library is bundled with esbuild and served from 127.0.0.1 (a secure
 * context, which navigator.gpu needs). Without Chromium the suite fails when
 * REQUIRE_BROWSER=1 (CI sets it) and is reported as not run otherwise.
 */
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { resolve } from 'node:path';
import type { Browser } from 'playwright-core';
import { bundleForBrowser, CHROMIUM, launchChromium } from './browser/chromium.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const present = existsSync(CHROMIUM);
if (!present && process.env.REQUIRE_BROWSER === '1') {
  throw new Error(`REQUIRE_BROWSER=1 but no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);
}
if (!present) console.warn(`browser suite not run: no Chromium at ${CHROMIUM}`);

describe.runIf(present)('headless Chromium', () => {
  let server: Server;
  let browser: Browser;
  let url = '';

  beforeAll(async () => {
    const js = await bundleForBrowser(resolve(import.meta.dirname, 'browser/entry.ts'));
    const html = '<!doctype html><meta charset="utf-8"><script type="module" src="/bundle.js"></script>';
    server = createServer((req, res) => {
      if (req.url === '/bundle.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(js);
      else res.writeHead(200, { 'content-type': 'text/html' }).end(html);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    url = `http://127.0.0.1:${port}/`;
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    server?.close();
  });

  it('dense, local and three conformance cases of every catalog entry match the float64 references on webgpu (fused, with each flash strategy) and webgl (composite); padding and masked keys never reach an output', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(url);
    await page.waitForFunction(() => 'runChecks' in globalThis, null, { timeout: 60_000 }).catch((e) => {
      throw new Error(`the bundle did not load: ${errors.join('; ') || (e as Error).message}`);
    });
    const r = (await page.evaluate(() => (globalThis as unknown as { runChecks: () => Promise<unknown> }).runChecks())) as Record<
      string,
      {
        error?: string;
        path?: string;
        denseErr?: number;
        localErr?: number;
        leaked?: number;
        detail?: string;
        catalog?: Record<string, number | string>;
        strategies?: Record<string, Record<string, number | string>>;
        padding?: Record<string, string | null>;
      }
    >;
    console.log(`browser: ${JSON.stringify(r)}`);
    expect(errors).toEqual([]);
    for (const name of ['webgpu', 'webgl']) {
      expect(r[name].error, name).toBeUndefined();
      expect(r[name].denseErr!, name).toBeLessThan(2e-5);
      expect(r[name].localErr!, name).toBeLessThan(2e-5);
      expect(r[name].leaked, name).toBe(0);
      for (const [id, err] of Object.entries(r[name].catalog!)) expect(err, `${name} ${id}`).toBeLessThan(2e-5);
      // Non-finite padding and masked keys leave every other output bit-identical (null: held).
      expect(Object.keys(r[name].padding!).length, name).toBeGreaterThan(0);
      for (const [id, problem] of Object.entries(r[name].padding!)) expect(problem, `${name} ${id} padding`).toBeNull();
    }
    expect(r.webgpu.path).toBe('kernel');
    // On webgpu, every entry with a fused kernel also with each flash strategy.
    const fused = Object.keys(r.webgpu.catalog!).length;
    for (const strategy of ['rows', 'tiled', 'tiledStaged']) {
      const errs = r.webgpu.strategies![strategy];
      expect(Object.keys(errs).length, strategy).toBeGreaterThan(fused / 2);
      for (const [id, err] of Object.entries(errs)) expect(err, `webgpu ${strategy} ${id}`).toBeLessThan(2e-5);
    }
    expect(r.webgl.path).toBe('composite');
  });
});
