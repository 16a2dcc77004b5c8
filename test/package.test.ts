/**
 * The published package: `npm pack` yields a tarball a consumer can install and import by its
 * subpaths (`attention-catalog/dense`, `/backend`, …), with types, and nothing else on the path;
 * `attention-catalog/layers` (with the optional peer tfjs-layers installed) saves and loads a model
 * by its registered class, and a bundler keeps its registration (package.json `"sideEffects"`).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { build } from 'esbuild';

const root = resolve(import.meta.dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'attn-catalog-pack-'));
const layersVersion = (JSON.parse(readFileSync(join(root, 'node_modules/@tensorflow/tfjs-layers/package.json'), 'utf8')) as { version: string }).version;
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('npm pack', () => {
  it('installs into a fresh project and imports by subpath (cpu, and webgpu where present), attention-catalog/layers included', async () => {
    execFileSync('npm', ['pack', '--pack-destination', work, '--silent'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
    expect(tarball).toBeDefined();
    const consumer = join(work, 'consumer');
    execFileSync('mkdir', ['-p', consumer]);
    writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    // tfjs-layers is an optional peer (for attention-catalog/layers): the consumer installs it, as a user of the layer would.
    execFileSync('npm', ['install', join(work, tarball!), `@tensorflow/tfjs-layers@${layersVersion}`, '--no-audit', '--no-fund', '--prefer-offline', '--silent'], {
      cwd: consumer,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    writeFileSync(
      join(consumer, 'main.mjs'),
      `
      import * as tf from '@tensorflow/tfjs-core';
      import { initBackend } from 'attention-catalog/backend';
      import { denseAttention } from 'attention-catalog/dense';
      import { groupedQueryAttention } from 'attention-catalog/multi-query';
      import { catalog, AttentionError } from 'attention-catalog';
      const results = {};
      for (const name of ['cpu', 'webgpu']) {
        try { await initBackend(name); } catch (e) { results[name] = 'absent: ' + e.message; continue; }
        const q = tf.randomNormal([1, 4, 33, 8], 0, 1, 'float32', 1);
        const k = tf.randomNormal([1, 2, 40, 8], 0, 1, 'float32', 2);
        const v = tf.randomNormal([1, 2, 40, 8], 0, 1, 'float32', 3);
        const out = groupedQueryAttention({ groups: 2, causal: true }).apply(q, k, v);
        const ref = denseAttention({ causal: true }).apply(q, tf.gather(k, [0, 0, 1, 1], 1), tf.gather(v, [0, 0, 1, 1], 1), { implementation: 'composite' });
        const err = (await tf.max(tf.abs(tf.sub(out, ref))).data())[0];
        let threw = false;
        try { denseAttention().apply(q, q, tf.zeros([1, 4, 5, 8])); } catch (e) { threw = e instanceof AttentionError; }
        results[name] = { shape: out.shape, err, threw };
      }
      // attention-catalog/layers: a model with a CatalogAttention layer saves and loads back by class name.
      await initBackend('cpu');
      const tfl = await import('@tensorflow/tfjs-layers');
      const { catalogAttention } = await import('attention-catalog/layers');
      const x = tfl.input({ shape: [12, 6] });
      const y = catalogAttention({ numHeads: 2, keyDim: 4, variant: 'local', variantConfig: { window: 2 } }).apply([x, x]);
      const model = tfl.model({ inputs: x, outputs: y });
      let saved;
      await model.save(tf.io.withSaveHandler(async (a) => { saved = a; return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } }; }));
      const loaded = await tfl.loadLayersModel(tf.io.fromMemory(saved));
      const input = tf.randomNormal([2, 12, 6], 0, 1, 'float32', 4);
      const layersErr = (await tf.max(tf.abs(tf.sub(model.predict(input), loaded.predict(input)))).data())[0];
      console.log(JSON.stringify({ ids: catalog.map((e) => e.id), results, layers: { err: layersErr, className: loaded.layers[1].getClassName() } }));
      `,
    );
    const printed = execFileSync('node', ['main.mjs'], { cwd: consumer, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const r = JSON.parse(printed.trim().split('\n').pop()!);
    expect(r.ids).toContain('dense');
    expect(r.results.cpu.shape).toEqual([1, 4, 33, 8]);
    expect(r.results.cpu.err).toBeLessThan(1e-5);
    expect(r.results.cpu.threw).toBe(true);
    if (process.env.REQUIRE_WEBGPU === '1') {
      expect(r.results.webgpu.err).toBeLessThan(1e-5);
      expect(r.results.webgpu.threw).toBe(true);
    }
    expect(r.layers.className).toBe('CatalogAttention');
    expect(r.layers.err).toBe(0);
    // A bundler keeps a bare `import 'attention-catalog/layers'` (package.json "sideEffects" names its built
    // files) and drops a bare import of any other subpath (side-effect free): the registration survives.
    const bundle = async (contents: string) =>
      (
        await build({ stdin: { contents, resolveDir: consumer, loader: 'js' }, bundle: true, format: 'esm', platform: 'browser', write: false, logLevel: 'error', external: ['@tensorflow/*', 'webgpu'] })
      ).outputFiles[0].text;
    const layersBundle = await bundle("import 'attention-catalog/layers';");
    expect(layersBundle).toMatch(/registerClass\(\s*CatalogAttention\s*\)/);
    const localBundle = await bundle("import 'attention-catalog/local';");
    expect(localBundle, 'a bare import of a side-effect-free subpath is dropped').not.toMatch(/AttnCatalog|LocalAttention/);
    // Types ship with every subpath.
    const types = execFileSync('ls', [join(consumer, 'node_modules/attention-catalog/dist/src/variants/baseline')], { encoding: 'utf8' });
    expect(types).toMatch(/dense\.d\.ts/);
  });
});
