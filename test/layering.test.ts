/**
 * The import graph (every import, re-export, dynamic import and type import of every .ts file
 * under src/ and kernels/) keeps the layers apart:
 * - `src/core/**` imports only `src/core/**`: never kernels/, src/variants/ or the catalog;
 * - `kernels/<k>/**` imports only `src/core/**`, `kernels/shared/**` and its own `kernels/<k>/**`,
 *   never another kernel's folder, a variant or the catalog (`kernels/shared/**`: core and shared);
 * - an entry, `src/variants/<family>/<id>.ts`, imports only core, kernels, the shared modules
 *   directly in `src/variants/*.ts` and its own `<id>.meta.ts`: never another entry;
 * - a meta file, `src/variants/<family>/<id>.meta.ts`, imports only `src/core/**`;
 * - the shared modules `src/variants/*.ts` import core, kernels and each other, never an entry;
 * - `src/index.ts` (the catalog) imports statically only core and meta files: variant modules
 *   only by dynamic `import()`, so that importing the catalog loads no kernel;
 * - `src/layers/**` (the tfjs-layers layers, the package's one module with a side effect) imports
 *   only core, `src/variants/**`, `src/moe/**` and itself, and nothing else imports it;
 * - `src/moe/**` (mixture of experts) imports only core and itself: no kernel, no variant;
 * - every relative import names a file that exists, and none is computed (but src/core/backend.ts's
 *   import of an optional package by name).
 * The rules are also run on a few synthetic bad trees, so that this test is known to fail on a
 * violation.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, posix, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');

type Kind = 'static' | 'dynamic' | 'type';
interface Edge {
  from: string;
  to: string;
  kind: Kind;
}

/** Every relative import of one file, resolved to a repository path ('.js' → '.ts'). */
function importsOf(path: string, text: string): { spec: string; kind: Kind }[] {
  const sf = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const out: { spec: string; kind: Kind }[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      out.push({ spec: node.moduleSpecifier.text, kind: node.importClause?.isTypeOnly ? 'type' : 'static' });
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      out.push({ spec: node.moduleSpecifier.text, kind: node.isTypeOnly ? 'type' : 'static' });
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference) && ts.isStringLiteral(node.moduleReference.expression)) {
      out.push({ spec: node.moduleReference.expression.text, kind: 'static' });
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [arg] = node.arguments;
      // A computed dynamic import cannot be checked: name it so that the rules reject it.
      out.push({ spec: arg && ts.isStringLiteralLike(arg) ? arg.text : '<computed import()>', kind: 'dynamic' });
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      out.push({ spec: node.argument.literal.text, kind: 'type' });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/** Files allowed a computed `import(name)`: backend.ts loads the optional tfjs-node packages by name. */
const COMPUTED_IMPORTS = new Set(['src/core/backend.ts']);

/** The repository-relative edges of a tree given as path → source (paths with '/'). */
function edgesOf(files: Map<string, string>): { edges: Edge[]; missing: string[] } {
  const edges: Edge[] = [];
  const missing: string[] = [];
  for (const [from, text] of files) {
    for (const { spec, kind } of importsOf(from, text)) {
      if (spec === '<computed import()>') {
        if (!COMPUTED_IMPORTS.has(from)) missing.push(`${from}: a computed import() (cannot be checked; import a string literal)`);
        continue;
      }
      if (!spec.startsWith('.')) continue; // packages
      const to = posix.normalize(posix.join(posix.dirname(from), spec)).replace(/\.js$/, '.ts');
      if (!files.has(to)) missing.push(`${from}: imports '${spec}', and ${to} does not exist`);
      else edges.push({ from, to, kind });
    }
  }
  return { edges, missing };
}

const inCore = (p: string) => p.startsWith('src/core/');
const kernelFolder = (p: string) => /^kernels\/([^/]+)\//.exec(p)?.[1] ?? null;
const isEntry = (p: string) => /^src\/variants\/[^/]+\/[^/]+\.ts$/.test(p) && !p.endsWith('.meta.ts');
const isMeta = (p: string) => /^src\/variants\/[^/]+\/[^/]+\.meta\.ts$/.test(p);
const isSharedVariant = (p: string) => /^src\/variants\/[^/]+\.ts$/.test(p);
const inLayers = (p: string) => p.startsWith('src/layers/');
const inVariants = (p: string) => p.startsWith('src/variants/');
const inMoE = (p: string) => p.startsWith('src/moe/');

/** The broken rule of one edge, or null. */
function violation({ from, to, kind }: Edge): string | null {
  const edge = `${from} → ${to}`;
  if (inLayers(to) && !inLayers(from)) return `${edge}: nothing outside src/layers imports src/layers (it registers a tfjs-layers class on import)`;
  if (inCore(from)) return inCore(to) ? null : `${edge}: src/core imports only src/core`;
  const k = kernelFolder(from);
  if (from.startsWith('kernels/')) {
    if (inCore(to) || kernelFolder(to) === 'shared' || (k !== null && kernelFolder(to) === k)) return null;
    return `${edge}: kernels/${k ?? ''}${k ? '/' : ''} imports only src/core, kernels/shared and ${k ? `kernels/${k}` : 'itself'}`;
  }
  if (isMeta(from)) return inCore(to) ? null : `${edge}: a meta file imports only src/core (so that the catalog loads no kernel)`;
  if (isEntry(from)) {
    if (inCore(to) || to.startsWith('kernels/') || isSharedVariant(to)) return null;
    if (to === from.replace(/\.ts$/, '.meta.ts')) return null;
    return `${edge}: an entry imports only src/core, kernels, src/variants/*.ts and its own meta file, never another entry`;
  }
  if (isSharedVariant(from)) {
    if (inCore(to) || to.startsWith('kernels/') || isSharedVariant(to)) return null;
    return `${edge}: a shared variant module imports core, kernels and src/variants/*.ts, never an entry`;
  }
  if (inLayers(from)) {
    if (inCore(to) || inVariants(to) || inLayers(to) || inMoE(to)) return null;
    return `${edge}: src/layers imports only src/core, src/variants, src/moe and src/layers`;
  }
  if (inMoE(from)) return inCore(to) || inMoE(to) ? null : `${edge}: src/moe imports only src/core and src/moe`;
  if (from === 'src/index.ts') {
    if (inCore(to) || isMeta(to)) return null;
    if (kind === 'dynamic' && isEntry(to)) return null;
    return `${edge}: the catalog imports statically only src/core and meta files (variants by dynamic import())`;
  }
  return null;
}

/** Known violations, each to be removed once fixed (the test fails when one no longer occurs). None today. */
const KNOWN = new Set<string>();

function check(files: Map<string, string>): { broken: string[]; known: string[] } {
  const { edges, missing } = edgesOf(files);
  const broken: string[] = [...missing];
  const known: string[] = [];
  for (const e of edges) {
    const v = violation(e);
    if (!v) continue;
    if (KNOWN.has(`${e.from} → ${e.to}`)) known.push(`${e.from} → ${e.to}`);
    else broken.push(v);
  }
  return { broken: [...new Set(broken)], known: [...new Set(known)] };
}

function readTree(): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.ts')) files.set(relative(root, p).split('\\').join('/'), readFileSync(p, 'utf8'));
    }
  };
  walk(join(root, 'src'));
  walk(join(root, 'kernels'));
  return files;
}

describe('import layering', () => {
  it('src/ and kernels/ keep the layers apart', () => {
    const files = readTree();
    expect(files.size).toBeGreaterThan(30);
    const { broken } = check(files);
    expect(broken, broken.join('\n')).toEqual([]);
  });

  it('every known violation still occurs (remove it from KNOWN once fixed)', () => {
    const { known } = check(readTree());
    expect(known.sort()).toEqual([...KNOWN].sort());
  });

  it('the rules reject a bad tree (self-check on synthetic files)', () => {
    const base = new Map<string, string>([
      ['src/core/types.ts', 'export type T = 1;'],
      ['src/core/validate.ts', "import type { T } from './types.js'; export const v: T = 1;"],
      ['kernels/shared/limits.ts', "import { v } from '../../src/core/validate.js'; export const l = v;"],
      ['kernels/flash/kernel.ts', "import { l } from '../shared/limits.js'; export const f = l;"],
      ['kernels/linear/kernel.ts', "import { l } from '../shared/limits.js'; export const g = l;"],
      ['src/variants/pattern.ts', "import { f } from '../../kernels/flash/kernel.js'; export const p = f;"],
      ['src/variants/fixed/local.meta.ts', "import type { T } from '../../core/types.js'; export const meta = {} as { t?: T };"],
      ['src/variants/fixed/local.ts', "import { p } from '../pattern.js'; import { meta } from './local.meta.js'; export { meta }; export const a = p;"],
      ['src/variants/fixed/strided.ts', "import { p } from '../pattern.js'; export const b = p;"],
      ['src/index.ts', "import { meta } from './variants/fixed/local.meta.js'; export const c = [meta, () => import('./variants/fixed/local.js')];"],
      ['src/layers/layer.ts', "import { a } from '../variants/fixed/local.js'; import { meta } from '../variants/fixed/local.meta.js'; import type { T } from '../core/types.js'; export const l = [a, meta] as unknown as T;"],
    ]);
    expect(check(base).broken, 'the good synthetic tree passes').toEqual([]);
    const bad: [string, string, string][] = [
      ['src/core/dispatch.ts', "import { f } from '../../kernels/flash/kernel.js'; export const d = f;", 'src/core imports only src/core'],
      ['src/core/dispatch.ts', "export type L = import('../variants/fixed/local.js').X;", 'src/core imports only src/core'],
      ['kernels/flash/attend.ts', "import { g } from '../linear/kernel.js'; export const h = g;", 'kernels/flash/ imports only'],
      ['kernels/shared/wgsl.ts', "import { f } from '../flash/kernel.js'; export const w = f;", 'kernels/shared/ imports only'],
      ['kernels/flash/attend.ts', "export { a } from '../../src/variants/fixed/local.js';", 'kernels/flash/ imports only'],
      ['src/variants/fixed/blockwise.ts', "import { b } from './strided.js'; export const e = b;", 'never another entry'],
      ['src/variants/combined/axial.ts', "import { meta } from '../fixed/local.meta.js'; export const e = meta;", 'never another entry'],
      ['src/variants/fixed/local.meta.ts', "import { p } from '../pattern.js'; export const meta = p;", 'a meta file imports only src/core'],
      ['src/variants/global-band.ts', "import { a } from './fixed/local.js'; export const gb = a;", 'never an entry'],
      ['src/index.ts', "import { a } from './variants/fixed/local.js'; export const c = a;", 'the catalog imports statically only'],
      ['src/variants/fixed/dilated.ts', "import { x } from '../nowhere.js'; export const y = x;", 'does not exist'],
      ['src/layers/layer.ts', "import { f } from '../../kernels/flash/kernel.js'; export const l = f;", 'src/layers imports only'],
      ['src/layers/layer.ts', "import { c } from '../index.js'; export const l = c;", 'src/layers imports only'],
      ['src/moe/router.ts', "import { f } from '../../kernels/flash/kernel.js'; export const r = f;", 'src/moe imports only'],
      ['src/moe/layer.ts', "import { a } from '../variants/fixed/local.js'; export const r = a;", 'src/moe imports only'],
      ['src/index.ts', "export const c = () => import('./layers/layer.js');", 'nothing outside src/layers imports src/layers'],
      ['src/variants/fixed/strided.ts', "import { l } from '../../layers/layer.js'; export const b = l;", 'nothing outside src/layers imports src/layers'],
      ['kernels/flash/attend.ts', "import type { l } from '../../src/layers/layer.js'; export type h = typeof l;", 'nothing outside src/layers imports src/layers'],
    ];
    for (const [path, text, rule] of bad) {
      const tree = new Map(base).set(path, text);
      const { broken } = check(tree);
      expect(broken.join('\n'), `${path}: ${text}`).toContain(rule);
    }
  });
});
