/**
 * Every `@example` of the public modules' doc comments type-checks, as a user would write it.
 * The public modules are the files that declare what the typedoc entry points export (the entry
 * points themselves, and e.g. `dense-base.ts` for `DenseAttention`): their doc comments are the
 * site's. Each example's first code block becomes its own ES module; `attention-catalog` and
 * `attention-catalog/<subpath>` resolve (through `paths` built from package.json `exports`) to
 * the sources, and the set is checked with the TypeScript API (strict, as the project).
 * `@tensorflow/tfjs` (the umbrella package the layers examples import; not a dependency here)
 * is given its type surface for these examples: tfjs-core and tfjs-layers, which it re-exports.
 * Unused locals are allowed (examples bind results to show their shapes).
 * Also: every catalog entry's module has an example that imports it.
 *
 * Not yet checked: src/moe/ (being written in parallel; its owner adds it here when done).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { catalog } from '../src/index.js';
import { importPathsBySource, typedocEntryPoints } from '../scripts/docs/modules.js';

/** Source folders whose examples are not checked yet, and why. */
const NOT_YET: Record<string, string> = {};

const root = resolve(import.meta.dirname, '..');

interface Example {
  file: string;
  line: number;
  code: string;
}

/** The `@example` blocks of a source file's doc comments: the code of the first fence after each tag. */
function extractExamples(file: string, text: string): Example[] {
  const out: Example[] = [];
  for (const m of text.matchAll(/\/\*\*[\s\S]*?\*\//g)) {
    const body = m[0]
      .slice(3, -2)
      .split('\n')
      .map((l) => l.replace(/^\s*\* ?/, ''));
    for (let i = 0; i < body.length; i++) {
      if (!/^@example\b/.test(body[i].trim())) continue;
      const start = body.findIndex((l, j) => j > i && /^```(ts|typescript)?\s*$/.test(l.trim()));
      if (start < 0) throw new Error(`${file}: an @example without a code block`);
      const end = body.findIndex((l, j) => j > start && l.trim() === '```');
      const line = text.slice(0, m.index).split('\n').length + start + 1;
      out.push({ file, line, code: body.slice(start + 1, end).join('\n') });
    }
  }
  return out;
}

const options: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  strict: true,
  noEmit: true,
  skipLibCheck: true,
  lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
  types: ['node', '@webgpu/types'],
  typeRoots: [join(root, 'node_modules/@types')],
};

/** The files declaring what the typedoc entry points export (and the entry points). */
function publicFiles(): { files: string[]; program: ts.Program } {
  const entries = typedocEntryPoints(root).filter((f) => !Object.keys(NOT_YET).some((d) => f.startsWith(d))).map((f) => join(root, f));
  const program = ts.createProgram(entries, options);
  const checker = program.getTypeChecker();
  const files = new Set<string>();
  for (const f of entries) {
    const sf = program.getSourceFile(f)!;
    files.add(f);
    const mod = checker.getSymbolAtLocation(sf);
    for (const sym of mod ? checker.getExportsOfModule(mod) : []) {
      const target = sym.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(sym) : sym;
      for (const d of target.declarations ?? []) files.add(d.getSourceFile().fileName);
    }
  }
  const rel = [...files].map((f) => relative(root, f).replace(/\\/g, '/')).filter((f) => f.startsWith('src/') || f.startsWith('kernels/'));
  return { files: rel.sort(), program };
}

const { files: sources, program: entryProgram } = publicFiles();
const examples = sources.flatMap((f) => extractExamples(f, readFileSync(join(root, f), 'utf8')));

describe('doc-comment examples', () => {
  it('every catalog entry has an example importing its subpath', () => {
    for (const e of catalog) {
      const mine = examples.filter((x) => x.file === `src/${e.module}.ts`);
      expect(
        mine.some((x) => x.code.includes(`from 'attention-catalog/${e.id}'`)),
        `src/${e.module}.ts: an @example that imports from 'attention-catalog/${e.id}'`,
      ).toBe(true);
    }
  });

  it('the public files include the entry points and the files of what they export', () => {
    for (const e of catalog) expect(sources).toContain(`src/${e.module}.ts`);
    expect(sources).toContain('src/variants/dense-base.ts');
    expect(sources).toContain('src/core/errors.ts');
    expect(sources).not.toContain('src/core/grad.ts');
  });

  it(`all ${examples.length} examples of the ${sources.length} public files type-check`, () => {
    expect(examples.length).toBeGreaterThan(catalog.length);
    const paths: Record<string, string[]> = {};
    for (const [source, name] of importPathsBySource(root)) if (existsSync(join(root, source))) paths[name] = [join(root, source)];
    const virtualDir = join(root, '.doc-examples');
    const shim = join(virtualDir, 'tfjs.d.ts');
    paths['@tensorflow/tfjs'] = [shim];
    const files = new Map<string, string>(examples.map((x, i) => [join(virtualDir, `example-${i}.mts`), `${x.code}\nexport {};\n`]));
    files.set(shim, "export * from '@tensorflow/tfjs-core';\nexport * from '@tensorflow/tfjs-layers';\n");
    const host = ts.createCompilerHost({ ...options, paths });
    const readFile = host.readFile.bind(host);
    const fileExists = host.fileExists.bind(host);
    const getSourceFile = host.getSourceFile.bind(host);
    host.readFile = (f) => files.get(f) ?? readFile(f);
    host.fileExists = (f) => files.has(f) || fileExists(f);
    host.getSourceFile = (f, lang, onError, create) => (files.has(f) ? ts.createSourceFile(f, files.get(f)!, lang, true) : getSourceFile(f, lang, onError, create));
    const exampleFiles = [...files.keys()].filter((f) => f.endsWith('.mts'));
    const program = ts.createProgram(exampleFiles, { ...options, paths }, host, entryProgram);
    const diagnostics = exampleFiles.flatMap((f) => [...program.getSyntacticDiagnostics(program.getSourceFile(f)), ...program.getSemanticDiagnostics(program.getSourceFile(f))]);
    const where = (d: ts.Diagnostic) => {
      const i = exampleFiles.indexOf(d.file?.fileName ?? '');
      const x = examples[i];
      const pos = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line : 0;
      return x ? `${x.file}:${x.line + pos}` : (d.file?.fileName ?? '?');
    };
    const messages = diagnostics.map((d) => `${where(d)}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
    expect(messages).toEqual([]);
  });
});
