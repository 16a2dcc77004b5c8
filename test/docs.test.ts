/**
 * The docs build's generators, without typedoc or a browser (test/site.test.ts builds and opens
 * the site):
 * - every entry's pictures are drawn, and say what the entry computes: a pattern picture's
 *   attended cells are the entry's `pattern()` rows (causal and keyLength applied as DESIGN.md
 *   states), a weight picture's rows are distributions where the entry's are;
 * - bench/results may be missing or broken: the pages still build and say what is missing;
 * - the plots and the "overtakes dense" rule on known data.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { catalog, type Attention } from '../src/index.js';
import { initBackend } from '../src/core/backend.js';
import { loadBench, overtakeN, type BenchData } from '../scripts/docs/bench.js';
import { benchmarksPage, choosingPage, entrySections, overviewPage, type PageContext } from '../scripts/docs/pages.js';
import { COLORS, entryPictures, type EntryPictures } from '../scripts/docs/pictures.js';
import { PICTURES } from '../scripts/docs/picture-cases.js';
import { linePlotSvg, matrixSvg } from '../scripts/docs/svg.js';

const root = join(import.meta.dirname, '..');
let pictures: EntryPictures[] = [];
const tmp = mkdtempSync(join(tmpdir(), 'attention-catalog-docs-'));

beforeAll(async () => {
  await initBackend('cpu');
  pictures = await entryPictures(catalog);
}, 120_000);

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const ctxFor = (bench: BenchData): PageContext => ({ root, catalog, pictures: new Map(pictures.map((p) => [p.id, p])), bench, importPath: (e) => `attention-catalog/${e.id}` });

describe('pictures', () => {
  it('every entry is drawn, every case, with no problem', () => {
    expect(pictures.map((p) => p.id)).toEqual(catalog.map((e) => e.id));
    for (const p of pictures) {
      expect(p.problems, p.id).toEqual([]);
      expect(p.figures.length, p.id).toBe(PICTURES[p.id].cases.length);
    }
  });

  it("a pattern picture's attended cells are the entry's pattern() rows, with causal and keyLength on top", async () => {
    for (const e of catalog.filter((x) => x.capabilities.pattern)) {
      const spec = PICTURES[e.id];
      const make = (await e.load()) as (c?: never) => Attention<unknown>;
      for (const [ci, c] of spec.cases.entries()) {
        const m = c.m ?? c.n;
        const a = make(c.config as never);
        const rows = a.pattern!(c.n, m).rows;
        a.dispose();
        const [plain, causal, padded] = pictures.find((p) => p.id === e.id)!.figures[ci].panels;
        const L = padded.paddingFrom!;
        for (let i = 0; i < c.n; i++) {
          for (let j = 0; j < m; j++) {
            const inRow = rows[i].includes(j);
            expect(plain.cell(i, j) === COLORS.attended, `${e.id} case ${ci} (${i}, ${j})`).toBe(inRow);
            expect(causal.cell(i, j) === COLORS.attended, `${e.id} case ${ci} causal (${i}, ${j})`).toBe(inRow && j <= i + m - c.n);
            expect(padded.cell(i, j) === COLORS.attended, `${e.id} case ${ci} keyLength (${i}, ${j})`).toBe(inRow && j < L);
          }
        }
      }
    }
  });

  it('weight pictures of exact-softmax entries have rows that sum to 1 (or 0: no allowed key; routing: at most 1), padding keys 0', () => {
    for (const p of pictures.filter((x) => x.how === 'weights' && catalog.find((e) => e.id === x.id)!.exactSoftmax)) {
      for (const f of p.figures) {
        for (const panel of f.panels) {
          expect(panel.weights, `${p.id}: weights kept`).toBeDefined();
          for (const [i, row] of panel.weights!.entries()) {
            const sum = row.reduce((a, b) => a + b, 0);
            // routing: the mean over the clusters that took the query, a cluster leaving it no key counting as 0 (DESIGN.md).
            // sinkhorn: sorted rows are Σ_j P[i, j]·block j with P doubly stochastic only up to its T rounds' convergence,
            // and with keyLength, padding enters the sorted blocks as zero rows (DESIGN.md): then at most 1.
            const tol = p.id === 'sinkhorn' ? 0.05 : 1e-4;
            const atMostOne = p.id === 'routing' || (p.id === 'sinkhorn' && panel.paddingFrom !== undefined);
            const ok = atMostOne ? sum > -1e-6 && sum < 1 + tol : Math.abs(sum - 1) < tol || Math.abs(sum) < 1e-6;
            expect(ok, `${p.id} ${f.caption} ${panel.label} row ${i}: sum ${sum}`).toBe(true);
            if (panel.paddingFrom !== undefined) expect(row.slice(panel.paddingFrom).every((w) => w === 0), `${p.id}: padding keys get no weight`).toBe(true);
          }
        }
      }
    }
  });
});

describe('pages from missing or broken bench results', () => {
  it('an empty bench/results still gives every page, saying what is missing', () => {
    const empty = loadBench(join(tmp, 'none'));
    expect(empty.rows).toEqual([]);
    expect(empty.missing.length).toBeGreaterThanOrEqual(6);
    const ctx = ctxFor(empty);
    expect(benchmarksPage(ctx)).toContain('No benchmark results found');
    expect(overviewPage(ctx)).toContain('ac-card');
    expect(choosingPage(ctx)).toContain('| [`local`]');
    for (const e of catalog) expect(entrySections(ctx, e, 'docs/generated/entries/x.md').benchmarks).toContain('No measurements');
  });

  it('a broken file or row is skipped and named', () => {
    const dir = join(tmp, 'broken');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'dense.json'), '{ not json');
    writeFileSync(join(dir, 'patterns.json'), JSON.stringify({ rows: [{ backend: 'webgpu', id: 'local', n: 512, ms: 2, denseMs: 4, bytes: 10 }, { id: 'local' }, 'junk'] }));
    writeFileSync(join(dir, 'kernelized.json'), JSON.stringify({ date: 'x' }));
    const b = loadBench(dir);
    expect(b.missing.find((m) => m.startsWith('dense.json'))).toBeDefined();
    expect(b.missing.find((m) => m.startsWith('kernelized.json'))).toContain('no "rows"');
    expect(b.rows).toHaveLength(1);
    const page = benchmarksPage(ctxFor(b));
    expect(page).toContain('Pattern entries (webgpu)');
    expect(page).toContain('`dense.json`');
  });
});

describe('plots and measurements', () => {
  it('"overtakes dense" is the smallest n from which the entry stays faster', () => {
    const rows = (pairs: [number, number, number][]) =>
      ({ rows: pairs.map(([n, ms, denseMs]) => ({ suite: 'patterns', backend: 'webgpu', id: 'x', n, path: 'kernel', ms, bytes: null, denseMs, errDense: null, config: '', note: '' })) }) as unknown as BenchData;
    expect(overtakeN(rows([[256, 3, 2], [512, 1, 2], [1024, 3, 2], [2048, 1, 2], [4096, 1, 3]]), 'x', 'webgpu')).toBe(2048);
    expect(overtakeN(rows([[256, 3, 2], [512, 3, 2]]), 'x', 'webgpu')).toBeNull();
    expect(overtakeN(rows([]), 'x', 'webgpu')).toBeUndefined();
  });

  it('a plot draws a polyline per series with drawable points, and says so when there is none', () => {
    const svg = linePlotSvg({ title: 't', xLabel: 'n', yLabel: 'ms', series: [{ label: 'a', points: [[1, 1], [2, 4]], color: '#000' }, { label: 'zero', points: [[1, 0]], color: '#111' }] });
    expect(svg.match(/<polyline/g)).toHaveLength(1);
    expect(linePlotSvg({ title: 't', xLabel: 'n', yLabel: 'ms', series: [] })).toContain('no measurements');
  });

  it('a matrix picture is one rect per run of equal cells', () => {
    const svg = matrixSvg({ rows: 2, cols: 4, cell: (i, j) => (j >= i ? '#00f' : null), title: 't', axes: false });
    // background + frame + row 0 (one run of 4) + row 1 (one run of 3)
    expect(svg.match(/<rect/g)).toHaveLength(4);
  });
});
