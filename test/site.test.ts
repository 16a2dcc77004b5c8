/**
 * The docs site, built from scratch (`buildDocs`, what `npm run docs` runs) into a temporary
 * folder, served from 127.0.0.1 and opened in headless Chromium (the browser suite's helper):
 * - typedoc reports no error, and every module is named by its import path;
 * - every internal link of every page resolves (to a file of the site, and to an element with
 *   that id when it has an anchor), in the built HTML and in the DOM of the pages opened;
 * - every catalog entry's page loads without a console error, a failed request or a page error,
 *   has its pattern SVG and its example, and the overview links to every entry;
 * - the benchmark plots exist for every backend in bench/results, drawn (a polyline each);
 * - screenshots of the overview and of one entry page go to scratch/site/ (git-ignored).
 * Without Chromium the suite fails when REQUIRE_BROWSER=1 (CI sets it) and is reported as not
 * run otherwise.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, extname, join, relative, resolve } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, launchChromium } from './browser/chromium.js';
import { catalog } from '../src/index.js';
import { buildDocs, type DocsResult } from '../scripts/docs/build.js';
import { backendsOf, loadBench } from '../scripts/docs/bench.js';

const present = existsSync(CHROMIUM);
if (!present && process.env.REQUIRE_BROWSER === '1') {
  throw new Error(`REQUIRE_BROWSER=1 but no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);
}
if (!present) console.warn(`site suite not run: no Chromium at ${CHROMIUM}`);

const root = resolve(import.meta.dirname, '..');
const SCREENSHOTS = join(root, 'scratch/site');
const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.json': 'application/json', '.png': 'image/png' };

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? walk(join(dir, d.name)) : [join(dir, d.name)]));
}

/** The ids (and names) a page defines, for anchors. */
const idsCache = new Map<string, Set<string>>();
function idsOf(file: string): Set<string> {
  let ids = idsCache.get(file);
  if (!ids) {
    const text = readFileSync(file, 'utf8');
    ids = new Set([...text.matchAll(/\s(?:id|name)="([^"]+)"/g)].map((m) => m[1]));
    idsCache.set(file, ids);
  }
  return ids;
}

/** Why an internal link from `fromFile` does not resolve, or null. External links are not checked. */
function brokenLink(site: string, fromFile: string, href: string): string | null {
  if (/^(https?:|mailto:|data:|javascript:)/.test(href) || href === '#' || href === '') return null;
  const decoded = href.replace(/&amp;/g, '&');
  const [path, anchor] = decoded.split('#');
  const target = path === '' ? fromFile : resolve(dirname(fromFile), decodeURIComponent(path.split('?')[0]));
  if (relative(site, target).startsWith('..')) return `${href}: outside the site`;
  if (!existsSync(target) || statSync(target).isDirectory()) return `${href}: no such file`;
  if (anchor && extname(target) !== '.svg' && !idsOf(target).has(decodeURIComponent(anchor))) return `${href}: no element with id "${anchor}"`;
  if (anchor && extname(target) === '.svg' && !readFileSync(target, 'utf8').includes(`id="${anchor}"`)) return `${href}: no symbol "${anchor}"`;
  return null;
}

describe.runIf(present)('the docs site in headless Chromium', () => {
  let site = '';
  let result: DocsResult;
  let server: Server;
  let browser: Browser;
  let base = '';
  const buildLog: string[] = [];
  /** Console errors, page errors and failed requests of every page opened, by URL. */
  const problems: string[] = [];

  beforeAll(async () => {
    site = mkdtempSync(join(tmpdir(), 'attention-catalog-site-'));
    result = await buildDocs({ out: site, log: (s) => buildLog.push(s) });
    server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      // Browsers ask every server for a favicon; it is not part of the site.
      if (url.pathname === '/favicon.ico') return void res.writeHead(204).end();
      const file = join(site, decodeURIComponent(url.pathname));
      if (relative(site, file).startsWith('..') || !existsSync(file) || statSync(file).isDirectory()) return void res.writeHead(404).end('not found');
      res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
    browser = await launchChromium();
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    server?.close();
    if (site) rmSync(site, { recursive: true, force: true });
  });

  /** Opens a page of the site and records everything that goes wrong on it. */
  async function open(path: string, viewport = { width: 1400, height: 1000 }): Promise<Page> {
    const page = await browser.newPage({ viewport });
    const url = base + path;
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`${path}: console error: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`${path}: page error: ${e.message}`));
    page.on('requestfailed', (r) => problems.push(`${path}: request failed: ${r.url()} (${r.failure()?.errorText})`));
    page.on('response', (r) => {
      if (r.status() >= 400) problems.push(`${path}: ${r.status()} for ${r.url()}`);
    });
    const response = await page.goto(url, { waitUntil: 'load' });
    expect(response?.status(), url).toBe(200);
    // typedoc's scripts build the navigation after load.
    await page.waitForSelector('.tsd-navigation a', { timeout: 30_000 });
    return page;
  }

  /** Every link of the page's DOM (navigation included) resolves to a file of the site. */
  async function checkDomLinks(page: Page, path: string) {
    const hrefs = await page.$$eval('a[href], [src]', (els) => els.map((el) => el.getAttribute('href') ?? el.getAttribute('src') ?? ''));
    const broken = hrefs.map((h) => brokenLink(site, join(site, path), h)).filter((x): x is string => x !== null);
    expect(broken, `${path}: links in the DOM`).toEqual([]);
  }

  it('builds with no typedoc error, every module named by its import path', () => {
    expect(result.errors, buildLog.join('\n')).toBe(0);
    expect(result.unnamed, 'entry points no package.json export builds').toEqual([]);
    const expected = ['attention-catalog', 'attention-catalog/backend', 'attention-catalog/layers', ...catalog.map((e) => `attention-catalog/${e.id}`)];
    for (const name of expected) expect(result.modules, `module ${name}`).toContain(name);
    expect(result.modules.every((m) => m === 'attention-catalog' || m.startsWith('attention-catalog/')), result.modules.join(', ')).toBe(true);
    expect(result.notDrawn, 'entries whose pictures could not be drawn').toEqual([]);
  });

  it('every internal link of every page resolves', () => {
    const pages = walk(site).filter((f) => f.endsWith('.html'));
    expect(pages.length).toBeGreaterThan(50);
    const broken: string[] = [];
    let links = 0;
    for (const file of pages) {
      const html = readFileSync(file, 'utf8');
      for (const m of html.matchAll(/\s(?:href|src)="([^"]*)"/g)) {
        links++;
        const why = brokenLink(site, file, m[1]);
        if (why) broken.push(`${relative(site, file)}: ${why}`);
      }
    }
    expect(links).toBeGreaterThan(1000);
    expect(broken).toEqual([]);
  });

  it('the overview has a card with a thumbnail for every catalog entry, linking to its page', async () => {
    const page = await open('documents/The_catalog.html');
    const cards = await page.$$eval('.ac-card[data-entry]', (els) =>
      els.map((el) => ({ id: el.getAttribute('data-entry'), href: el.querySelector('a.ac-card-title')?.getAttribute('href'), thumb: !!el.querySelector('svg.ac-thumb') })),
    );
    expect(cards.map((c) => c.id).sort()).toEqual(catalog.map((e) => e.id).sort());
    for (const c of cards) {
      expect(c.thumb, `${c.id}: thumbnail`).toBe(true);
      const target = resolve(site, 'documents', c.href!);
      expect(existsSync(target), `${c.id}: ${c.href}`).toBe(true);
      expect(readFileSync(target, 'utf8'), `${c.id}: the card links to its module page`).toContain(`<h1>Module attention-catalog/${c.id}</h1>`);
    }
    // The table links every entry too.
    const tableLinks = await page.$$eval('table a[href*="modules/"]', (els) => els.map((el) => el.textContent));
    expect(new Set(tableLinks)).toEqual(new Set(catalog.map((e) => e.id)));
    await checkDomLinks(page, 'documents/The_catalog.html');
    mkdirSync(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: join(SCREENSHOTS, 'overview.png'), fullPage: true });
    expect(statSync(join(SCREENSHOTS, 'overview.png')).size).toBeGreaterThan(20_000);
    await page.close();
  });

  it('every entry page loads without errors, with its pattern SVG and its example', async () => {
    for (const e of catalog) {
      const path = `modules/attention-catalog_${e.id}.html`;
      const page = await open(path);
      expect(await page.textContent('h1'), path).toBe(`Module attention-catalog/${e.id}`);
      const patterns = await page.$$eval('.ac-figure svg.ac-pattern', (els) => els.map((el) => el.querySelectorAll('rect').length));
      expect(patterns.length, `${e.id}: pattern SVGs`).toBeGreaterThanOrEqual(2);
      for (const rects of patterns) expect(rects, `${e.id}: a drawn pattern has cells`).toBeGreaterThan(3);
      const example = await page.$eval('.ac-example pre code', (el) => el.textContent ?? '').catch(() => '');
      expect(example, `${e.id}: its example imports it`).toContain(`from 'attention-catalog/${e.id}'`);
      expect(await page.$('table'), `${e.id}: tables (at a glance, backends, config)`).not.toBeNull();
      await checkDomLinks(page, path);
      if (e.id === 'local') await page.screenshot({ path: join(SCREENSHOTS, 'entry-local.png'), fullPage: true });
      await page.close();
    }
    expect(problems).toEqual([]);
    expect(statSync(join(SCREENSHOTS, 'entry-local.png')).size).toBeGreaterThan(20_000);
  });

  it('the benchmark plots exist for every backend measured, each with its lines drawn', async () => {
    const bench = loadBench(join(root, 'bench/results'));
    const page = await open('documents/Benchmarks.html');
    const plots = await page.$$eval('.ac-plots', (els) =>
      els.map((el) => ({ backend: el.getAttribute('data-backend'), suite: el.getAttribute('data-suite'), kind: el.getAttribute('data-plot'), lines: Array.from(el.querySelectorAll('svg.ac-plot')).map((s) => s.querySelectorAll('polyline').length) })),
    );
    for (const backend of backendsOf(bench).filter((b) => bench.rows.some((r) => r.backend === b))) {
      const mine = plots.filter((p) => p.backend === backend);
      const suites = new Set(bench.rows.filter((r) => r.backend === backend).map((r) => r.suite));
      expect(new Set(mine.map((p) => p.suite)), `${backend}: a time and a bytes plot per suite measured`).toEqual(suites);
      for (const p of mine) {
        expect(p.lines.length, `${backend} ${p.suite}`).toBe(2);
        expect(Math.min(...p.lines), `${backend} ${p.suite}: lines drawn`).toBeGreaterThan(0);
      }
    }
    if (bench.rows.some((r) => r.errDense !== null)) expect(plots.find((p) => p.kind === 'error')?.lines[0] ?? 0, 'the error chart').toBeGreaterThan(0);
    await checkDomLinks(page, 'documents/Benchmarks.html');
    // An entry page has its own plots for each backend it was measured on.
    const local = await open('modules/attention-catalog_local.html');
    const localPlots = await local.$$eval('.ac-plots[data-entry="local"] svg.ac-plot', (els) => els.length);
    expect(localPlots).toBe(2 * new Set(bench.rows.filter((r) => r.id === 'local').map((r) => r.backend)).size);
    await page.close();
    await local.close();
    const choosing = await open('documents/Choosing_an_entry.html');
    expect(await choosing.$$eval('table a[href*="modules/"]', (els) => els.length)).toBeGreaterThanOrEqual(catalog.length);
    await checkDomLinks(choosing, 'documents/Choosing_an_entry.html');
    await choosing.close();
    expect(problems).toEqual([]);
  });
});
