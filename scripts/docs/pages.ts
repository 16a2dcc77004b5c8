/**
 * The generated pages of the docs site, as markdown (with inline SVG in HTML blocks): the
 * catalog overview, the benchmarks, the "choosing an entry" guide, and the sections added to
 * each entry's module page. Links are relative file links (to `src/<module>.ts`, `docs/*.md`),
 * which typedoc resolves to the pages it makes of those files.
 */
import { dirname, join, relative } from 'node:path';
import type { CatalogEntry } from '../../src/index.js';
import { backendsOf, denseBaselineName, entryRows, hasFusedDense, overtakeN, SUITE_TITLES, SUITES, type BenchData, type Suite } from './bench.js';
import { entryPlots, errorPlot, suitePlots } from './plots.js';
import { panelSvg, pictureLegend, type EntryPictures } from './pictures.js';
import { esc, formatBytes } from './svg.js';

export interface PageContext {
  root: string;
  catalog: readonly CatalogEntry[];
  pictures: ReadonlyMap<string, EntryPictures>;
  bench: BenchData;
  /** The import path of each entry (`attention-catalog/<id>`). */
  importPath(e: CatalogEntry): string;
}

/** The taxonomy's order of families (DESIGN.md), for the overview. */
const FAMILY_ORDER: string[] = ['baseline', 'fixed', 'combined', 'learnable', 'recurrence', 'side memory', 'memory saving', 'kernelized', 'adaptive'];

/** Where the generated pages live (git-ignored). */
export const GENERATED_DIR = 'docs/generated';

/** A relative link from a page at `fromFile` (relative to the root) to `target` (relative to the root). */
function rel(ctx: PageContext, fromFile: string, target: string): string {
  return relative(dirname(join(ctx.root, fromFile)), join(ctx.root, target)).replace(/\\/g, '/');
}
const entryFile = (e: CatalogEntry) => `src/${e.module}.ts`;
const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
const yes = (b: boolean) => (b ? 'yes' : 'no');
const msText = (x: number | null) => (x === null ? '—' : x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(1)} ms`);
const bytesText = (x: number | null | undefined) => (x === null || x === undefined ? '—' : formatBytes(x));
const ratio = (a: number | null, b: number | null) => (a !== null && b !== null && b > 0 ? `${(a / b).toFixed(2)}×` : '—');

/** Fused or composite per backend, from the metadata. */
export function backendPaths(e: CatalogEntry): { backend: string; forward: string; backward: string }[] {
  const composite = 'composite (tfjs ops)';
  const fwd = e.capabilities.fused ? 'fused WGSL kernel' : composite;
  const bwd = e.capabilities.fused ? (e.capabilities.fusedBackward ? 'fused (registered gradient)' : 'composite (the kernel is forward-only)') : 'composite (tfjs autodiff)';
  return [
    { backend: 'webgpu (browsers; Node via Dawn)', forward: fwd, backward: bwd },
    { backend: 'wasm, cpu, webgl', forward: composite, backward: 'composite (tfjs autodiff)' },
    { backend: 'tensorflow (tfjs-node, tfjs-node-gpu)', forward: `${composite} on TensorFlow's kernels`, backward: 'composite (tfjs autodiff)' },
  ];
}

/** What the measurements say about an entry on a backend, in a few words ("from n = 1024", "not up to n = 16384", "—"). */
function overtakeText(ctx: PageContext, e: CatalogEntry, backend: string): string {
  const over = overtakeN(ctx.bench, e.id, backend);
  if (over === undefined) return '—';
  if (over === null) {
    const ns = entryRows(ctx.bench, e.id, backend).map((r) => r.n);
    return `not up to n = ${Math.max(...ns)}`;
  }
  return `from n = ${over}`;
}

/** The measured growth of intermediate bytes between the two largest n on a backend: "×4.0 per 4× n", or null. */
function bytesGrowth(ctx: PageContext, e: CatalogEntry, backend: string): { text: string; exponent: number } | null {
  // dense's own measurements are dense.json's fused rows (the baseline of every suite).
  const rows =
    e.id === 'dense'
      ? ctx.bench.dense.filter((r) => r.backend === backend && r.kernelBytes !== null && r.kernelBytes > 0).map((r) => ({ n: r.n, bytes: r.kernelBytes }))
      : entryRows(ctx.bench, e.id, backend).filter((r) => r.bytes !== null && r.bytes > 0);
  if (rows.length < 2) return null;
  const [a, b] = rows.slice(-2);
  const exponent = Math.log(b.bytes! / a.bytes!) / Math.log(b.n / a.n);
  return { text: `n^${exponent.toFixed(2)}`, exponent };
}

function thumbnail(ctx: PageContext, e: CatalogEntry): string {
  const pics = ctx.pictures.get(e.id);
  const panel = pics?.figures[0]?.panels[0];
  return panel ? panelSvg(panel, e.id, true) : `<span class="ac-nopic">not drawn</span>`;
}

function badges(e: CatalogEntry): string {
  const b: string[] = [];
  b.push(e.capabilities.fused ? '<span class="ac-badge ac-fused">fused on webgpu</span>' : '<span class="ac-badge">composite only</span>');
  b.push(e.exactSoftmax ? '<span class="ac-badge">exact softmax</span>' : '<span class="ac-badge ac-approx">approximation</span>');
  if (e.capabilities.causal) b.push('<span class="ac-badge">causal</span>');
  if (e.capabilities.decode) b.push('<span class="ac-badge">decode</span>');
  if (e.capabilities.learned.length) b.push('<span class="ac-badge">learned</span>');
  return b.join(' ');
}

/** The catalog overview: a card per entry, by family, then one table of all of them. */
export function overviewPage(ctx: PageContext): string {
  const file = `${GENERATED_DIR}/catalog.md`;
  const link = (e: CatalogEntry) => rel(ctx, file, entryFile(e));
  const families = [...new Set(ctx.catalog.map((e) => e.family))].sort((a, b) => (FAMILY_ORDER.indexOf(a) + 1 || 99) - (FAMILY_ORDER.indexOf(b) + 1 || 99));
  const out: string[] = [
    '---',
    'title: The catalog',
    '---',
    '',
    '# The catalog',
    '',
    `${ctx.catalog.length} entries of the efficient-transformer taxonomy, each one import path behind the same \`Attention\` interface. ` +
      `Each card shows the entry's pattern (drawn at docs-build time from its own \`pattern()\`, or from the attention weights it computes on a small seeded input), ` +
      'its family, complexity and what runs it; its page has the definition, more pictures (causal, padding), its config, an example and its benchmark figures. ' +
      `To pick one, see [Choosing an entry](./choosing.md); for the measurements, [Benchmarks](./benchmarks.md).`,
    '',
  ];
  for (const family of families) {
    out.push(`## ${family}`, '');
    const cards = ctx.catalog
      .filter((e) => e.family === family)
      .map(
        (e) =>
          `<div class="ac-card" data-entry="${esc(e.id)}"><a class="ac-card-thumb" href="${link(e)}">${thumbnail(ctx, e)}</a><div class="ac-card-body">` +
          `<a class="ac-card-title" href="${link(e)}"><code>${esc(ctx.importPath(e))}</code></a>` +
          `<div class="ac-card-line">${esc(e.factories.join(', '))}</div>` +
          `<div class="ac-card-line">time ${esc(e.complexity.time)}</div><div class="ac-card-line">memory ${esc(e.complexity.memory)}</div>` +
          `<div class="ac-card-line">${badges(e)}</div>` +
          `<div class="ac-card-line"><a href="${esc(e.paper.url)}">${esc(e.paper.title)}</a> (${e.paper.year})</div></div></div>`,
      );
    out.push(`<div class="ac-cards">${cards.join('')}</div>`, '');
  }
  out.push('## All entries at a glance', '');
  out.push('| entry | family | time | memory | exact softmax | fused on webgpu | causal | decode | faster than fused dense on webgpu |', '|---|---|---|---|---|---|---|---|---|');
  for (const e of ctx.catalog) {
    out.push(
      `| [\`${e.id}\`](${link(e)}) | ${e.family} | ${cell(e.complexity.time)} | ${cell(e.complexity.memory)} | ${yes(e.exactSoftmax)} | ${e.capabilities.fused ? (e.capabilities.fusedBackward ? 'forward + backward' : 'forward') : 'no'} | ${yes(e.capabilities.causal)} | ${yes(e.capabilities.decode)} | ${overtakeText(ctx, e, 'webgpu')} |`,
    );
  }
  out.push('');
  return out.join('\n');
}

/** The benchmark plots and tables, from bench/results. */
export function benchmarksPage(ctx: PageContext): string {
  const file = `${GENERATED_DIR}/benchmarks.md`;
  const b = ctx.bench;
  const out: string[] = [
    '---',
    'title: Benchmarks',
    '---',
    '',
    '# Benchmarks',
    '',
    'Every figure on this page is generated by `npm run docs` from the JSON files in `bench/results/` (written by `npm run bench`), ' +
      'so rerunning the bench and the docs redraws them. All suites time batch 1, one head, d = 64 (recurrence: a segment of n queries over a memory of L = 1024), ' +
      'median of 3 runs after a warm-up. The baselines are `dense.json`\'s fused dense and dense composite on the same backend; ' +
      '"faster than dense" compares an entry with dense timed in the same run at the same n (fused on webgpu, the composite elsewhere), as the bench tables do.',
    '',
  ];
  out.push('Read: ' + (b.read.length ? b.read.map((r) => `\`${r.file}\`${r.date ? ` (${r.date.slice(0, 10)})` : ''}`).join(', ') : 'nothing') + '.');
  if (b.missing.length) out.push('', `Not available: ${b.missing.map((m) => `\`${m.split(':')[0]}\` (${m.split(':').slice(1).join(':').trim()})`).join(', ')}.`);
  out.push('');
  const backends = backendsOf(b);
  if (backends.length === 0) out.push('_No benchmark results found in `bench/results/`: run `npm run bench`, then `npm run docs`._', '');
  for (const backend of backends) {
    out.push(`## ${backend}`, '');
    const fusedThere = hasFusedDense(b, backend);
    out.push(fusedThere ? 'Fused dense (black, solid) and the dense composite (grey, dashed) are the baselines.' : `No fused dense on ${backend}: the dense composite (grey, dashed) is the baseline.`, '');
    for (const suite of SUITES) {
      const plots = suitePlots(b, suite, backend);
      if (!plots) continue;
      out.push(`### ${SUITE_TITLES[suite]} (${backend})`, '');
      out.push(`<div class="ac-plots" data-suite="${suite}" data-backend="${esc(backend)}">${plots.time}${plots.bytes}</div>`, '');
      if (plots.zeroBytes.length) out.push(`Intermediate bytes of 0 (nothing beyond the output) are not drawn on the log scale: ${plots.zeroBytes.map((id) => `\`${id}\``).join(', ')}.`, '');
    }
  }
  // Where each entry overtakes dense.
  const measured = ctx.catalog.filter((e) => b.rows.some((r) => r.id === e.id));
  if (measured.length) {
    out.push('## Where each entry overtakes dense', '');
    out.push('The smallest measured n from which the entry stays faster than dense measured in the same run (fused dense on webgpu; on backends without a fused dense, the dense composite; recurrence: dense over the same n + L keys).', '');
    const bks = backends.filter((bk) => measured.some((e) => entryRows(b, e.id, bk).length));
    out.push(`| entry | suite | ${bks.map((bk) => `${bk} (vs ${denseBaselineName(b, 'patterns', bk)})`).join(' | ')} |`, `|---|---|${bks.map(() => '---|').join('')}`);
    for (const e of measured) {
      const suite = b.rows.find((r) => r.id === e.id)!.suite;
      out.push(`| [\`${e.id}\`](${rel(ctx, file, entryFile(e))}) | ${suite} | ${bks.map((bk) => overtakeText(ctx, e, bk)).join(' | ')} |`);
    }
    out.push('');
  }
  const err = errorPlot(b, ctx.catalog);
  out.push('## Error against dense', '');
  if (err) {
    out.push(
      'Solid: the approximate entries (`exactSoftmax: false`: kernel feature maps, low-rank projections); dashed: entries that are exact softmax attention over their own key set (chosen from the data, or soft-masked), whose difference from dense is what that set leaves out. Max |difference| against exact dense softmax attention over 16 sampled query rows, from `kernelized.json` and `learnable.json`.',
      '',
      `<div class="ac-plots" data-plot="error">${err}</div>`,
      '',
    );
  } else out.push('_No error measurements (`errDense`) in bench/results._', '');
  if (b.training.length) {
    out.push('## Training: one forward + backward on webgpu', '', '| entry | n | fused ms | composite ms | fused bytes | composite bytes |', '|---|---|---|---|---|---|');
    for (const r of b.training) out.push(`| ${r.id} | ${r.n} | ${msText(r.fusedMs)} | ${msText(r.compositeMs)} | ${bytesText(r.fusedBytes)} | ${bytesText(r.compositeBytes)} |`);
    out.push('');
  }
  if (b.compile.length) {
    const ds = [...new Set(b.compile.map((r) => r.d))].sort((x, y) => x - y);
    out.push('## First call (shader compilation) on webgpu', '');
    if (b.compileInfo) out.push(`${b.compileInfo.detail}${b.compileInfo.problem ? `; ${b.compileInfo.problem}` : ''}. Seconds for a cold first call, milliseconds for the second.`, '');
    out.push(`| entry | ${ds.map((d) => `d = ${d}`).join(' | ')} |`, `|---|${ds.map(() => '---|').join('')}`);
    for (const id of [...new Set(b.compile.map((r) => r.id))]) {
      const cells = ds.map((d) => {
        const r = b.compile.find((x) => x.id === id && x.d === d);
        return r && r.firstS !== null ? `${r.firstS.toFixed(2)} s / ${r.secondMs?.toFixed(1) ?? '—'} ms` : r ? r.status : '—';
      });
      out.push(`| ${id} | ${cells.join(' | ')} |`);
    }
    out.push('');
  }
  return out.join('\n');
}

/** "Choosing an entry": a decision table from the metadata and the measurements. */
export function choosingPage(ctx: PageContext): string {
  const file = `${GENERATED_DIR}/choosing.md`;
  const link = (e: CatalogEntry) => `[\`${e.id}\`](${rel(ctx, file, entryFile(e))})`;
  const list = (es: CatalogEntry[]) => (es.length ? es.map(link).join(', ') : '_none_');
  const c = ctx.catalog;
  const subQuadratic = (e: CatalogEntry) => e.complexity.time !== c.find((x) => x.id === 'dense')?.complexity.time;
  const out: string[] = [
    '---',
    'title: Choosing an entry',
    '---',
    '',
    '# Choosing an entry',
    '',
    'Generated by `npm run docs` from each entry\'s metadata (`src/variants/<family>/<id>.meta.ts`) and the measurements in `bench/results/` ' +
      '(webgpu: the software adapter the bench ran on; see [Benchmarks](./benchmarks.md)). Start from what you need, then compare the measured columns.',
    '',
    '## Questions first',
    '',
    `- **Need exact softmax attention over every key?** ${list(c.filter((e) => e.exactSoftmax && !subQuadratic(e)))} (fused dense never holds an n×m matrix: O(n) memory on webgpu).`,
    `- **Exact softmax over a sub-quadratic set of keys (a pattern)?** ${list(c.filter((e) => e.exactSoftmax && subQuadratic(e) && e.capabilities.pattern))}; chosen from the data: ${list(c.filter((e) => e.exactSoftmax && e.family === 'learnable'))}.`,
    `- **An approximation of all of dense attention (kernel features, projections, soft spans)?** ${list(c.filter((e) => !e.exactSoftmax))}.`,
    `- **Autoregressive generation token by token (\`decode\`)?** ${list(c.filter((e) => e.capabilities.decode))}; segment by segment with a memory: ${list(c.filter((e) => e.family === 'recurrence'))}.`,
    `- **Causal (no look-ahead)?** Every entry but ${list(c.filter((e) => !e.capabilities.causal))} takes \`causal: true\`.`,
    `- **Training on webgpu with a fused backward?** ${list(c.filter((e) => e.capabilities.fusedBackward))}; the others run their composite while gradients are recorded.`,
    `- **Learned parameters?** ${list(c.filter((e) => e.capabilities.learned.length > 0))}.`,
    `- **Composite only (no fused kernel on webgpu)?** ${list(c.filter((e) => !e.capabilities.fused))}.`,
    '',
    '## The decision table',
    '',
    'Measured columns are on webgpu (fused kernels): "bytes ~" is the exponent of intermediate bytes between the two largest measured n ' +
      '(1: linear, 2: quadratic; configs whose strides or grids scale with n grow accordingly), "beats dense" the smallest n from which the entry stays faster than fused dense in the same run, ' +
      'and "error" the max |error| against exact dense attention at the largest n measured (approximations, learnable entries). "fused": fwd (forward) and bwd (backward) on webgpu.',
    '',
    '| entry | family | memory (declared) | bytes ~ | exact | causal | decode | fused | beats dense | error |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const e of c) {
    const growth = bytesGrowth(ctx, e, 'webgpu');
    const errRows = entryRows(ctx.bench, e.id, 'webgpu').filter((r) => r.errDense !== null);
    const err = errRows.length ? `${errRows[errRows.length - 1].errDense!.toExponential(1)} at ${errRows[errRows.length - 1].n}` : '—';
    const fused = e.capabilities.fused ? (e.capabilities.fusedBackward ? 'fwd, bwd' : 'fwd') : 'no';
    const over = overtakeN(ctx.bench, e.id, 'webgpu');
    const beats = over === undefined ? '—' : over === null ? 'no' : `n ≥ ${over}`;
    out.push(
      `| ${link(e)} | ${e.family} | ${cell(e.complexity.memory)} | ${growth ? growth.text : '—'} | ${e.exactSoftmax ? 'yes' : 'approx.'} | ${yes(e.capabilities.causal)} | ${yes(e.capabilities.decode)} | ${fused} | ${beats} | ${err} |`,
    );
  }
  out.push(
    '',
    'Entries without measured columns are not in a bench suite against dense at growing n (dense and multi-query have dense\'s time class; an entry can also be missing from the results that were run).',
    '',
  );
  return out.join('\n');
}

/**
 * The markdown added to an entry's module page: the pictures (after the definition), "At a glance" and "Backends" (after the module doc), and the benchmark figures (last;
 * the site puts the config table and the example in between). `fromFile` is the path the
 * markdown is parsed as, for its relative links.
 */
export function entrySections(ctx: PageContext, e: CatalogEntry, fromFile: string): { pictures: string; glance: string; benchmarks: string } {
  const pics = ctx.pictures.get(e.id);
  const p: string[] = ['', '## Pattern', ''];
  if (!pics || pics.figures.length === 0) {
    p.push(`_Not drawn: ${esc(pics?.problems.join('; ') || 'no picture cases')}._`, '');
  } else {
    p.push(`<div class="ac-legend">${pictureLegend(pics.how)}</div>`, '');
    for (const f of pics.figures) {
      const panels = f.panels.map((x) => `<figure class="ac-panel">${panelSvg(x, e.id)}<figcaption>${esc(x.label)}</figcaption></figure>`).join('');
      p.push(`<div class="ac-figure" data-entry="${esc(e.id)}"><div class="ac-figure-caption"><code>${esc(f.caption)}</code>${f.note ? ` — ${esc(f.note)}` : ''}</div><div class="ac-panels">${panels}</div></div>`, '');
    }
    if (pics.problems.length) p.push(`Not drawn: ${pics.problems.map((x) => esc(x)).join('; ')}.`, '');
  }
  const s: string[] = ['', '## At a glance', '', '| property | value |', '|---|---|'];
  s.push(`| import | \`import { ${e.factories.join(', ')} } from '${ctx.importPath(e)}'\` |`);
  s.push(`| family | ${e.family} |`, `| time | ${cell(e.complexity.time)} |`, `| memory | ${cell(e.complexity.memory)} |`);
  s.push(`| exact softmax | ${e.exactSoftmax ? 'yes: exact softmax attention over its allowed set' : 'no: an approximation of dense softmax attention'} |`);
  s.push(`| causal | ${e.capabilities.causal ? 'yes (`causal: true`)' : 'no (`causal: true` throws)'} |`, `| decode | ${yes(e.capabilities.decode)} |`);
  s.push(`| pattern() | ${yes(e.capabilities.pattern)} |`, `| learned parameters | ${e.capabilities.learned.length ? e.capabilities.learned.map((x) => `\`${x}\``).join(', ') : 'none'} |`);
  s.push(`| paper | [${cell(e.paper.title)}](${e.paper.url}) (${e.paper.year}) |`, '');
  s.push('## Backends', '', '| backend | forward | backward (training) |', '|---|---|---|');
  for (const r of backendPaths(e)) s.push(`| ${r.backend} | ${r.forward} | ${r.backward} |`);
  const measuredPaths = [...new Set(entryRows(ctx.bench, e.id).map((r) => `${r.backend}: ${r.path}`))];
  if (measuredPaths.length) s.push('', `Measured paths in bench/results: ${measuredPaths.join(', ')}.`);
  s.push('');
  const glance = s.splice(0, s.length);
  // The benchmark figures.
  s.push('## Benchmarks', '');
  const backends = backendsOf(ctx.bench).filter((bk) => entryRows(ctx.bench, e.id, bk).length > 0);
  if (backends.length === 0) {
    s.push(`_No measurements of \`${e.id}\` against dense in bench/results_${e.complexity.time === ctx.catalog.find((x) => x.id === 'dense')?.complexity.time ? " (it has dense's time class: see the dense baselines on the [Benchmarks](BENCHMARKS) page)" : ''}._`, '');
  }
  for (const bk of backends) {
    const rows = entryRows(ctx.bench, e.id, bk);
    const suite: Suite = rows[0].suite;
    const plots = entryPlots(ctx.bench, e.id, bk);
    s.push(`### ${bk}`, '');
    if (plots) s.push(`<div class="ac-plots" data-entry="${esc(e.id)}" data-backend="${esc(bk)}">${plots.time}${plots.bytes}</div>`, '');
    const over = overtakeText(ctx, e, bk);
    s.push(`Faster than ${denseBaselineName(ctx.bench, suite, bk)} (same run): ${over}.`, '');
    const hasErr = rows.some((r) => r.errDense !== null);
    const hasState = rows.some((r) => r.stateBytes !== undefined);
    const hasNote = rows.some((r) => r.note !== '');
    s.push(
      `| n | config | path | ms | dense ms (same run) | speed-up | intermediate |${hasErr ? ' error vs dense |' : ''}${hasState ? ' state |' : ''}${hasNote ? ' note |' : ''}`,
      `|---|---|---|---|---|---|---|${hasErr ? '---|' : ''}${hasState ? '---|' : ''}${hasNote ? '---|' : ''}`,
    );
    for (const r of rows) {
      s.push(
        `| ${r.n}${r.memLength ? ` (L = ${r.memLength})` : ''} | ${cell(r.config ? `\`${r.config}\`` : '')} | ${r.path} | ${msText(r.ms)} | ${msText(r.denseMs)} | ${ratio(r.denseMs, r.ms)} | ${bytesText(r.bytes)} |` +
          `${hasErr ? ` ${r.errDense === null ? '—' : r.errDense.toExponential(2)} |` : ''}${hasState ? ` ${bytesText(r.stateBytes)} |` : ''}${hasNote ? ` ${cell(r.note)} |` : ''}`,
      );
    }
    s.push('');
  }
  const training = ctx.bench.training.filter((r) => r.id === e.id);
  if (training.length) {
    s.push('### Training (one forward + backward, webgpu)', '', '| n | fused ms | composite ms | fused bytes | composite bytes |', '|---|---|---|---|---|');
    for (const r of training) s.push(`| ${r.n} | ${msText(r.fusedMs)} | ${msText(r.compositeMs)} | ${bytesText(r.fusedBytes)} | ${bytesText(r.compositeBytes)} |`);
    s.push('');
  }
  const compile = ctx.bench.compile.filter((r) => r.id === e.id);
  if (compile.length) {
    s.push('### First call (shader compilation, webgpu)', '', compile.map((r) => `d = ${r.d}: ${r.firstS === null ? r.status : `${r.firstS.toFixed(2)} s (second call ${r.secondMs?.toFixed(1) ?? '—'} ms)`}`).join('; ') + '.', '');
  }
  s.push(`All entries side by side: [Benchmarks](BENCHMARKS), [The catalog](CATALOG), [Choosing an entry](CHOOSING).`, '');
  const links = (md: string) =>
    md
      .replace(/\]\(BENCHMARKS\)/g, `](${rel(ctx, fromFile, `${GENERATED_DIR}/benchmarks.md`)})`)
      .replace(/\]\(CATALOG\)/g, `](${rel(ctx, fromFile, `${GENERATED_DIR}/catalog.md`)})`)
      .replace(/\]\(CHOOSING\)/g, `](${rel(ctx, fromFile, `${GENERATED_DIR}/choosing.md`)})`);
  return { pictures: p.join('\n'), glance: glance.join('\n'), benchmarks: links(s.join('\n')) };
}
