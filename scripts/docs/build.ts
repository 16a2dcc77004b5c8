/**
 * `npm run docs`: builds the docs site.
 *
 * 1. Draws every catalog entry's pictures on the cpu backend (pictures.ts, picture-cases.ts).
 * 2. Reads whatever is in bench/results/*.json (bench.ts) and draws the benchmark plots (plots.ts).
 * 3. Writes the generated pages (the catalog overview, the benchmarks, "choosing an entry") into
 *    docs/generated/ (git-ignored; rewritten on every build).
 * 4. Runs typedoc with typedoc.json plus those pages, module names = import paths and each
 *    entry's page completed (site.ts), into typedoc.json's `out` (docs/api) or `--out <dir>`.
 *
 * Exits with 1 when typedoc reports an error. `buildDocs` is the same, for the site test.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { catalog, type CatalogEntry } from '../../src/index.js';
import { initBackend } from '../../src/core/backend.js';
import type { Attention } from '../../src/core/types.js';
import { loadBench } from './bench.js';
import { importPathsBySource } from './modules.js';
import { benchmarksPage, choosingPage, entrySections, GENERATED_DIR, overviewPage, type PageContext } from './pages.js';
import { REQUIRED_CONFIG } from './picture-cases.js';
import { entryPictures } from './pictures.js';
import { buildSite, type EntryPage, type SiteResult } from './site.js';

export const ROOT = resolve(import.meta.dirname, '../..');

export interface DocsResult extends SiteResult {
  out: string;
  /** Entries with a case that could not be drawn, and why. */
  notDrawn: { id: string; problems: string[] }[];
  ms: number;
}

/** The resolved config of an instance built with the keys its factory needs. */
async function defaultsOf(e: CatalogEntry): Promise<{ defaults: Record<string, unknown>; given: string[] }> {
  const given = REQUIRED_CONFIG[e.id];
  const make = (await e.load()) as (c?: never) => Attention<unknown>;
  const a = make(given as never);
  try {
    return { defaults: { ...(a.config as Record<string, unknown>) }, given: Object.keys(given ?? {}) };
  } finally {
    a.dispose();
  }
}

export async function buildDocs(options: { out?: string; benchDir?: string; log?: (s: string) => void } = {}): Promise<DocsResult> {
  const t0 = performance.now();
  const log = options.log ?? ((s: string) => console.log(s));
  const root = ROOT;
  await initBackend('cpu');
  const pictures = await entryPictures(catalog);
  const bench = loadBench(options.benchDir ?? join(root, 'bench/results'));
  const importPaths = importPathsBySource(root);
  const ctx: PageContext = {
    root,
    catalog,
    pictures: new Map(pictures.map((p) => [p.id, p])),
    bench,
    importPath: (e) => importPaths.get(`src/${e.module}.ts`) ?? `attention-catalog/${e.id}`,
  };
  const gen = join(root, GENERATED_DIR);
  rmSync(gen, { recursive: true, force: true });
  mkdirSync(gen, { recursive: true });
  const pages: [string, string][] = [
    ['catalog.md', overviewPage(ctx)],
    ['choosing.md', choosingPage(ctx)],
    ['benchmarks.md', benchmarksPage(ctx)],
  ];
  for (const [f, md] of pages) writeFileSync(join(gen, f), md);
  const entryPages = new Map<string, EntryPage>();
  for (const e of catalog) {
    const virtualFile = `${GENERATED_DIR}/entries/${e.id}.md`;
    const sections = entrySections(ctx, e, virtualFile);
    entryPages.set(e.id, { ...sections, ...(await defaultsOf(e)), virtualFile });
  }
  const out = resolve(root, options.out ?? 'docs/api');
  const site = await buildSite({
    root,
    out,
    generatedDocuments: pages.map(([f]) => `${GENERATED_DIR}/${f}`),
    customCss: join(root, 'scripts/docs/site.css'),
    catalog,
    importPaths,
    entryPages,
  });
  const notDrawn = pictures.filter((p) => p.problems.length > 0).map((p) => ({ id: p.id, problems: p.problems }));
  for (const p of notDrawn) log(`docs: ${p.id}: not drawn: ${p.problems.join('; ')}`);
  for (const m of bench.missing) log(`docs: bench/results: ${m}`);
  for (const u of site.unnamed) log(`docs: ${u}: no package.json export builds it; it keeps typedoc's module name`);
  const ms = performance.now() - t0;
  log(`docs: ${site.modules.length} modules, ${pages.length} generated pages, ${site.errors} errors, ${site.warnings} warnings, ${(ms / 1000).toFixed(1)} s -> ${out}`);
  return { ...site, out, notDrawn, ms };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const i = process.argv.indexOf('--out');
  const result = await buildDocs({ out: i >= 0 ? process.argv[i + 1] : undefined });
  process.exit(result.errors > 0 ? 1 : 0);
}
