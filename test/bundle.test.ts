/**
 * What a bundler ships (esbuild, tree-shaken, platform browser, the tfjs packages external; the
 * package's `"sideEffects": false` applies to its sources):
 * - `attention-catalog/local` alone (src/variants/fixed/local.ts) carries the flash kernel and
 *   nothing of the linear-attention kernel (its kernel name, shader keys, program classes);
 * - `attention-catalog` (src/index.ts, with code splitting) loads, on import, no WGSL at all: the
 *   catalog is metadata, and every variant sits in a chunk that only `entry.load()` fetches; and
 *   none of `attention-catalog/layers` (whose import registers a class) is in any of its chunks.
 *   (That a bare `import 'attention-catalog/layers'` keeps its registration, through the built
 *   files and package.json's `"sideEffects"`, is checked on the packed package: test/package.test.ts.)
 * The kernel names, shader-key prefixes and program classes are read from kernels/<k>/*.ts, so
 * the test follows renames.
 */
import { build, type Metafile } from 'esbuild';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const external = ['@tensorflow/*', 'webgpu'];

/** The names that identify kernel k's code in a bundle: kernel names, shader-key prefixes, program classes. */
function kernelMarkers(k: string): string[] {
  const dir = join(root, 'kernels', k);
  const names = new Set<string>();
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.ts'))) {
    const src = readFileSync(join(dir, f), 'utf8');
    for (const m of src.matchAll(/['`](AttnCatalog[A-Za-z0-9]+)/g)) names.add(m[1]);
    for (const m of src.matchAll(/export class (\w+Program)\b/g)) names.add(m[1]);
  }
  return [...names];
}

/** WGSL in a bundle: shader bodies and the programs' WGSL-facing members. */
const WGSL = [/\bfn main\s*\(/, /vec4<f32>/, /var<(storage|workgroup|uniform)/, /\bgetUserCode\b/, /\bshaderKey\b/, /AttnCatalog/];

describe('bundles', () => {
  it("'attention-catalog/local' alone carries the flash kernel and no linear-attention kernel", async () => {
    const linear = kernelMarkers('linear');
    const flash = kernelMarkers('flash');
    expect(linear.length, 'markers found in kernels/linear').toBeGreaterThan(2);
    expect(flash.length, 'markers found in kernels/flash').toBeGreaterThan(0);
    const out = await build({
      entryPoints: [join(root, 'src/variants/fixed/local.ts')],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      write: false,
      logLevel: 'error',
      external,
    });
    const js = out.outputFiles[0].text;
    for (const name of linear) expect(js.includes(name), `linear-attention '${name}' in the local bundle`).toBe(false);
    expect(flash.filter((name) => js.includes(name)), 'flash kernel names in the local bundle').not.toEqual([]);
    expect(WGSL.some((re) => re.test(js)), 'the local bundle has WGSL (the flash kernel)').toBe(true);
  });

  it("'attention-catalog' loads no WGSL on import; the variants are in chunks that load() fetches", async () => {
    const out = await build({
      entryPoints: [join(root, 'src/index.ts')],
      bundle: true,
      splitting: true,
      format: 'esm',
      platform: 'browser',
      outdir: join(root, 'bundle-out'), // not written
      write: false,
      metafile: true,
      logLevel: 'error',
      external,
    });
    const meta = out.metafile as Metafile;
    const text = new Map(out.outputFiles.map((f) => [f.path.slice(root.length + 1), f.text]));
    const entry = Object.keys(meta.outputs).find((o) => meta.outputs[o].entryPoint === 'src/index.ts');
    expect(entry).toBeDefined();
    // The entry chunk and the chunks it imports statically: what `import 'attention-catalog'` loads.
    const eager = new Set<string>();
    const visit = (o: string) => {
      if (eager.has(o)) return;
      eager.add(o);
      for (const i of meta.outputs[o].imports) if (i.kind === 'import-statement' && !i.external) visit(i.path);
    };
    visit(entry!);
    for (const o of eager) {
      const js = text.get(o)!;
      for (const re of WGSL) expect(re.test(js), `${o} (loaded on import of the catalog) matches ${re}`).toBe(false);
      const inputs = Object.keys(meta.outputs[o].inputs);
      expect(inputs.filter((i) => i.startsWith('kernels/')), `${o}: kernel modules loaded on import`).toEqual([]);
    }
    // The layers module (the package's one side effect) is in no chunk of the catalog, eager or lazy.
    const everyInput = Object.values(meta.outputs).flatMap((o) => Object.keys(o.inputs));
    expect(everyInput.filter((i) => i.startsWith('src/layers/')), 'src/layers modules in the catalog bundle').toEqual([]);
    // The kernels are there, behind load(): the test can tell the two apart.
    const lazy = [...text.keys()].filter((o) => !eager.has(o) && o.endsWith('.js'));
    expect(lazy.some((o) => /AttnCatalog/.test(text.get(o)!)), 'the variant chunks carry the kernels').toBe(true);
  });
});
