/**
 * Every catalog entry fully wired. An entry's metadata is written once, in its
 * `src/variants/<family>/<id>.meta.ts` (`meta`, re-exported by the variant module); the catalog
 * lists it, and every other place that names the entry is checked against it here:
 * - the meta file's place (`module`, family folder, id) and the variant module (re-exports the
 *   same `meta`, exports exactly the listed factories, `load()` returns the first one);
 * - instances: id, family and complexity come from the metadata; `capabilities` match what
 *   instances can do (`pattern()`, `decode`, learned parameters, causal) and the spec's flags;
 * - package.json `exports`, typedoc.json `entryPoints` (and the docs site's module names, the
 *   import paths), the docs build's pictures of each entry, the README catalog table (and the
 *   `./layers` subpath: its export, its typedoc entry point, and `"sideEffects"`, which names its
 *   built files and nothing else);
 * - the conformance specs (test/specs/index.ts), the tour's and the bench suites' entries.
 * A failure prints what the place should say.
 */
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { catalog, type CatalogEntry, type EntryMeta } from '../src/index.js';
import { initBackend } from '../src/core/backend.js';
import { AttentionError } from '../src/core/errors.js';
import { specs } from './specs/index.js';
import { tourEntries } from '../bench/entries.js';
import { PATTERN_CONFIGS } from '../bench/patterns.js';
import { KERNELIZED_ENTRIES } from '../bench/kernelized.js';
import { LEARNABLE_ENTRIES } from '../bench/learnable.js';
import { RECURRENCE_ENTRIES } from '../bench/recurrence.js';
import { importPathsBySource } from '../scripts/docs/modules.js';
import { PICTURES, REQUIRED_CONFIG } from '../scripts/docs/picture-cases.js';

const root = resolve(import.meta.dirname, '..');
/** The module behind `attention-catalog/layers` (relative to the root, without extension). */
const LAYERS_MODULE = 'src/layers/catalog-attention';
/** The module behind `attention-catalog/moe` (side-effect free; its tfjs-layers form lives in src/layers). */
const MOE_MODULE = 'src/moe/index';
const read = (p: string) => readFileSync(join(root, p), 'utf8');
const ids = catalog.map((e) => e.id);
const familyFolder = (e: EntryMeta) => e.family.replace(/ /g, '-');
/** The metadata part of a catalog entry (without `load`). */
const metaOf = (e: CatalogEntry): EntryMeta => {
  const { load: _load, ...meta } = e;
  return meta;
};

beforeAll(async () => {
  await initBackend('cpu');
});

describe('the metadata', () => {
  it('ids are unique', () => {
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('every meta file under src/variants/<family>/ is in the catalog, and sits at its module path', () => {
    const metaFiles = readdirSync(join(root, 'src/variants'), { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .flatMap((d) => readdirSync(join(root, 'src/variants', d.name)).filter((f) => f.endsWith('.meta.ts')).map((f) => `variants/${d.name}/${f.replace(/\.meta\.ts$/, '')}`));
    expect(metaFiles.sort(), 'meta files vs catalog modules').toEqual(catalog.map((e) => e.module).sort());
    for (const e of catalog) {
      expect(e.module, `${e.id}: module`).toBe(`variants/${familyFolder(e)}/${e.id}`);
      expect(existsSync(join(root, 'src', `${e.module}.ts`)), `src/${e.module}.ts exists`).toBe(true);
    }
  });

  it('src/index.ts imports each entry only through its meta file', () => {
    const src = read('src/index.ts');
    const statics = [...src.matchAll(/^import \{[^}]*\} from '\.\/(variants\/[^']+)\.js';$/gm)].map((m) => m[1]);
    expect(statics.sort(), 'static imports of src/index.ts').toEqual(catalog.map((e) => `${e.module}.meta`).sort());
  });

  for (const e of catalog) {
    it(`${e.id}: the module re-exports the same meta and exactly its factories; load() returns the first`, async () => {
      const mod = (await import(/* @vite-ignore */ `../src/${e.module}.js`)) as Record<string, unknown>;
      expect(mod.meta, `${e.module}.ts must \`export { meta }\` from './${e.id}.meta.js'`).toEqual(metaOf(e));
      const factories = Object.keys(mod).filter((k) => /^[a-z]\w*Attention$/.test(k) && typeof mod[k] === 'function');
      expect(factories.sort(), `${e.id}: exported factories`).toEqual([...e.factories].sort());
      expect(await e.load(), `${e.id}: load() (src/index.ts's dynamic import) returns ${e.factories[0]} of ${e.module}`).toBe(mod[e.factories[0]]);
    });
  }
});

describe('instances and specs agree with the metadata', () => {
  for (const e of catalog) {
    it(e.id, () => {
      const spec = specs[e.id];
      expect(spec, `test/specs/index.ts has no spec for '${e.id}'`).toBeDefined();
      expect(spec.id).toBe(e.id);
      expect(spec.fused, `${e.id}: spec.fused vs capabilities.fused`).toBe(e.capabilities.fused);
      expect(!spec.nonCausal, `${e.id}: spec.nonCausal vs capabilities.causal`).toBe(e.capabilities.causal);
      const [c] = fc.sample(spec.cases, { seed: 3, numRuns: 1 });
      const attn = spec.make(c.config);
      try {
        expect(attn.id).toBe(e.id);
        expect(attn.family).toBe(e.family);
        expect(attn.complexity, `${e.id}: the instance's complexity must be meta.complexity`).toEqual(e.complexity);
        expect(typeof attn.pattern === 'function', `${e.id}: pattern() vs capabilities.pattern`).toBe(e.capabilities.pattern);
        expect(typeof (attn as { decode?: unknown }).decode === 'function', `${e.id}: decode vs capabilities.decode`).toBe(e.capabilities.decode);
        for (const name of e.capabilities.learned) {
          const p = (attn as unknown as Record<string, unknown>)[name];
          expect(p instanceof tf.Variable, `${e.id}: learned '${name}' is a tf.Variable`).toBe(true);
        }
      } finally {
        attn.dispose();
      }
      if (e.capabilities.learned.length) {
        // With trainable: true each learned getter is a trainable variable, and `variables` lists them.
        const trained = spec.make({ ...c.config, trainable: true }) as unknown as Record<string, unknown> & { variables: tf.Variable[]; dispose(): void };
        try {
          for (const name of e.capabilities.learned) {
            const p = trained[name];
            expect(p instanceof tf.Variable && p.trainable, `${e.id}: learned '${name}' is a trainable tf.Variable with trainable: true`).toBe(true);
            expect(trained.variables.includes(p as tf.Variable), `${e.id}: 'variables' lists '${name}'`).toBe(true);
          }
        } finally {
          trained.dispose();
        }
      }
      if (!e.capabilities.causal) {
        expect(() => spec.make({ ...c.config, causal: true }), `${e.id}: causal: true must throw`).toThrow(AttentionError);
      }
    });
  }

  it('test/specs/index.ts has one spec per entry and no other', () => {
    expect(Object.keys(specs).sort()).toEqual([...ids].sort());
  });
});

describe('the package, the docs and the README', () => {
  const pkg = JSON.parse(read('package.json')) as { exports: Record<string, unknown>; sideEffects: unknown };

  it('package.json exports ".", "./backend", one subpath per entry, to dist/src/<module>, "./layers" and "./moe"', () => {
    const expected: Record<string, unknown> = {
      '.': { types: './dist/src/index.d.ts', default: './dist/src/index.js' },
      './backend': { types: './dist/src/core/backend.d.ts', default: './dist/src/core/backend.js' },
    };
    for (const e of catalog) expected[`./${e.id}`] = { types: `./dist/src/${e.module}.d.ts`, default: `./dist/src/${e.module}.js` };
    expected['./layers'] = { types: `./dist/${LAYERS_MODULE}.d.ts`, default: `./dist/${LAYERS_MODULE}.js` };
    expected['./moe'] = { types: `./dist/${MOE_MODULE}.d.ts`, default: `./dist/${MOE_MODULE}.js` };
    expect(pkg.exports, `package.json "exports" should be:\n${JSON.stringify(expected, null, 2)}`).toEqual(expected);
  });

  it('"sideEffects" names only the layers module\'s built files (its class registration); every other export is side-effect free', () => {
    expect(pkg.sideEffects).toEqual(['./dist/src/layers/*.js']);
    // The glob as bundlers read it ('*' within one path segment).
    const globs = (pkg.sideEffects as string[]).map((g) => new RegExp(`^${g.replace(/[.]/g, '\\.').replace(/\*/g, '[^/]*')}$`));
    const marked = (path: string) => globs.some((re) => re.test(path));
    const builtFiles = Object.values(pkg.exports as Record<string, { default: string }>).map((x) => x.default);
    expect(builtFiles.filter(marked), 'exports whose files are marked as having side effects').toEqual([`./dist/${LAYERS_MODULE}.js`]);
    // Nothing under src/ but src/layers/ would be marked once built (dist mirrors src/ and kernels/).
    const walk = (dir: string): string[] =>
      readdirSync(join(root, dir), { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? walk(`${dir}/${d.name}`) : d.name.endsWith('.ts') ? [`${dir}/${d.name}`] : []));
    const sources = [...walk('src'), ...walk('kernels')].map((f) => `./dist/${f.replace(/\.ts$/, '.js')}`);
    expect(sources.filter(marked).sort()).toEqual(sources.filter((f) => f.startsWith('./dist/src/layers/')).sort());
    // And the layers modules (CatalogAttention, and MoE, which the layers module re-exports) are the only sources that register anything with tfjs at import.
    const registering = [...walk('src'), ...walk('kernels')].filter((f) => /^tf\.serialization\.registerClass\(/m.test(read(f)));
    expect(registering.sort()).toEqual([`${LAYERS_MODULE}.ts`, 'src/layers/moe.ts']);
    expect(read(`${LAYERS_MODULE}.ts`)).toMatch(/^export \{ MoE, mixtureOfExperts, type MoEArgs \} from '\.\/moe\.js';$/m);
  });

  it('typedoc.json has one entry point per entry, the layers module and the moe module', () => {
    const typedoc = JSON.parse(read('typedoc.json')) as { entryPoints: string[] };
    const expected = ['src/index.ts', 'src/core/backend.ts', ...catalog.map((e) => `src/${e.module}.ts`), `${LAYERS_MODULE}.ts`, `${MOE_MODULE}.ts`];
    expect([...typedoc.entryPoints].sort(), `typedoc.json "entryPoints" should be:\n${JSON.stringify(expected, null, 2)}`).toEqual([...expected].sort());
  });

  it('the docs site names every typedoc entry point by its import path (package.json exports): attention-catalog/<id> for each entry', () => {
    const names = importPathsBySource(root);
    const typedoc = JSON.parse(read('typedoc.json')) as { entryPoints: string[] };
    for (const entry of typedoc.entryPoints) expect(names.get(entry), `${entry}: no package.json export builds it, so its docs module has no import path`).toBeDefined();
    for (const e of catalog) expect(names.get(`src/${e.module}.ts`)).toBe(`attention-catalog/${e.id}`);
    expect(names.get('src/index.ts')).toBe('attention-catalog');
    expect(names.get(`${LAYERS_MODULE}.ts`)).toBe('attention-catalog/layers');
  });

  it('the docs build draws every entry (scripts/docs/picture-cases.ts): from pattern() exactly for the pattern entries', () => {
    expect(Object.keys(PICTURES).sort()).toEqual([...ids].sort());
    for (const e of catalog) {
      expect(PICTURES[e.id].how === 'pattern', `${e.id}: drawn from pattern() iff capabilities.pattern`).toBe(e.capabilities.pattern);
      expect(PICTURES[e.id].cases.length, `${e.id}: picture cases`).toBeGreaterThan(0);
    }
    for (const id of Object.keys(REQUIRED_CONFIG)) expect(ids, `REQUIRED_CONFIG '${id}' is a catalog id`).toContain(id);
  });

  it("README's catalog table lists every entry, in catalog order, with its metadata", () => {
    const readme = read('README.md');
    const header = '| id (subpath) | factory | family | time | memory |';
    const start = readme.indexOf(header);
    expect(start, 'README.md has the catalog table').toBeGreaterThanOrEqual(0);
    const lines = readme.slice(start).split('\n');
    const rows = lines.slice(2, lines.findIndex((l, i) => i > 1 && !l.startsWith('|')));
    const cells = (l: string) => l.slice(1, -1).split(' | ').map((c) => c.trim());
    // The id links to the entry's module (its page on the docs site, its source on GitHub).
    const expected = catalog.map((e) => `| [\`${e.id}\`](src/${e.module}.ts) | ${e.factories.map((f) => `\`${f}\``).join(', ')} | ${e.family} | ${e.complexity.time} | ${e.complexity.memory} |`);
    expect(rows.map((r) => cells(r).join(' | ')), `README catalog rows should be:\n${expected.join('\n')}`).toEqual(expected.map((r) => cells(r).join(' | ')));
  });
});

describe('the tour and the bench', () => {
  it('the tour (bench/entries.ts) has an entry for every catalog entry and no other', () => {
    expect(Object.keys(tourEntries).sort()).toEqual([...ids].sort());
  });

  it('every sub-quadratic entry is in exactly one bench suite against dense (patterns, kernelized, learnable or recurrence)', () => {
    const patterns = Object.keys(PATTERN_CONFIGS);
    const kernelized = KERNELIZED_ENTRIES.map((e) => e.id);
    const learnable = LEARNABLE_ENTRIES.map((e) => e.id);
    const recurrence = RECURRENCE_ENTRIES.map((e) => e.id);
    for (const id of [...patterns, ...kernelized, ...learnable, ...recurrence]) expect(ids, `bench suite entry '${id}' is a catalog id`).toContain(id);
    const denseTime = catalog.find((e) => e.id === 'dense')!.complexity.time;
    for (const e of catalog) {
      const suites = [patterns, kernelized, learnable, recurrence].filter((s) => s.includes(e.id)).length;
      expect(suites, `${e.id}: bench suites holding it`).toBe(e.complexity.time === denseTime ? 0 : 1);
    }
    for (const e of catalog.filter((x) => x.capabilities.pattern)) expect(patterns, `bench/patterns.ts has '${e.id}' (a pattern variant)`).toContain(e.id);
  });
});
