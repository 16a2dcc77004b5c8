/**
 * The published package: `npm pack` yields a tarball a consumer can install and import by its
 * subpaths (`attention-catalog/dense`, `/backend`, …), with types, and nothing else on the path.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'attn-catalog-pack-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('npm pack', () => {
  it('installs into a fresh project and imports by subpath (cpu, and webgpu where present)', () => {
    execFileSync('npm', ['pack', '--pack-destination', work, '--silent'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
    expect(tarball).toBeDefined();
    const consumer = join(work, 'consumer');
    execFileSync('mkdir', ['-p', consumer]);
    writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    execFileSync('npm', ['install', join(work, tarball!), '--no-audit', '--no-fund', '--prefer-offline', '--silent'], {
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
      console.log(JSON.stringify({ ids: catalog.map((e) => e.id), results }));
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
    // Types ship with every subpath.
    const types = execFileSync('ls', [join(consumer, 'node_modules/attention-catalog/dist/src/variants/baseline')], { encoding: 'utf8' });
    expect(types).toMatch(/dense\.d\.ts/);
  });
});
