/**
 * Runs typedoc with typedoc.json plus what the docs build adds, in-process:
 * - the generated pages (docs/generated/*.md) before the hand-written guides, and the site's CSS;
 * - module names = import paths (modules.ts), so that `variants/fixed/local` is shown and linked
 *   as `attention-catalog/local`;
 * - on each catalog entry's module page, after the definition (before its "Complexity"
 *   paragraph, else after its doc): its pictures; after the module doc: "At a glance", "Backends", the config table (the config
 *   interface's properties, their docs, and the defaults a built instance reports), the main
 *   factory's `@example`, and the benchmark figures.
 */
import { join, relative } from 'node:path';
import {
  Application,
  Comment,
  Converter,
  DeclarationReflection,
  MinimalSourceFile,
  ReflectionKind,
  type CommentDisplayPart,
  type NormalizedPath,
  type Context,
  type ProjectReflection,
  type SomeType,
} from 'typedoc';
import type { CatalogEntry } from '../../src/index.js';

/** What the site adds to an entry's module page (markdown), and the defaults of a built instance. */
export interface EntryPage {
  pictures: string;
  glance: string;
  benchmarks: string;
  /** The resolved config of an instance built with `given` (defaults filled in). */
  defaults: Record<string, unknown>;
  /** Config keys the docs build had to give (the factory needs them). */
  given: string[];
  /** The path (relative to the root) the page's markdown is parsed as, for its relative links. */
  virtualFile: string;
}

export interface SiteInput {
  root: string;
  out: string;
  /** Generated documents, in navigation order, before typedoc.json's projectDocuments. */
  generatedDocuments: string[];
  customCss: string;
  catalog: readonly CatalogEntry[];
  /** Source file (relative to the root) -> import path. */
  importPaths: ReadonlyMap<string, string>;
  entryPages: ReadonlyMap<string, EntryPage>;
}

export interface SiteResult {
  errors: number;
  warnings: number;
  /** Module names as published. */
  modules: string[];
  /** Entry points that kept typedoc's name (no package.json export builds them). */
  unnamed: string[];
}

const text = (t: string): CommentDisplayPart => ({ kind: 'text', text: t });

/** Whether a default value fits the declared type (so that e.g. performer's resolved `omega: 'seeded'` is not shown as omega's default). */
function fits(type: SomeType | undefined, value: unknown): boolean {
  if (!type || value === undefined) return false;
  switch (type.type) {
    case 'intrinsic':
      return type.name === typeof value || (type.name === 'unknown' && value !== null);
    case 'literal':
      return type.value === value;
    case 'union':
      return type.types.some((t) => fits(t, value));
    case 'array':
      return Array.isArray(value) && value.every((v) => fits(type.elementType, v));
    case 'tuple':
      return Array.isArray(value) && value.length === type.elements.length;
    default:
      return false;
  }
}

/** The interface (or object type) behind a config parameter's type. */
function configProperties(type: SomeType | undefined): DeclarationReflection[] {
  if (!type) return [];
  if (type.type === 'reference') {
    const target = type.reflection;
    if (target instanceof DeclarationReflection) {
      if (target.kindOf(ReflectionKind.Interface) || target.kindOf(ReflectionKind.Class)) return (target.children ?? []).filter((c) => c.kindOf(ReflectionKind.Property));
      if (target.kindOf(ReflectionKind.TypeAlias)) return configProperties(target.type);
    }
    return [];
  }
  if (type.type === 'intersection') return type.types.flatMap(configProperties);
  if (type.type === 'reflection') return (type.declaration.children ?? []).filter((c) => c.kindOf(ReflectionKind.Property));
  return [];
}

const cellText = (s: string) => s.replace(/\s+/g, ' ').replace(/\|/g, '\\|').trim();

/** The config table of an entry: its factory's config properties, their docs and defaults. */
function configTable(factory: DeclarationReflection | undefined, page: EntryPage): string {
  const sig = factory?.signatures?.[0];
  const props = configProperties(sig?.parameters?.[0]?.type);
  const seen = new Set<string>();
  const rows: string[] = [];
  for (const p of props) {
    if (seen.has(p.name)) continue;
    seen.add(p.name);
    const doc = cellText(Comment.combineDisplayParts(p.comment?.summary));
    const dflt = page.given.includes(p.name)
      ? 'required (see description)'
      : fits(p.type, page.defaults[p.name])
        ? `\`${JSON.stringify(page.defaults[p.name]).replace(/"/g, "'")}\``
        : '—';
    rows.push(`| \`${p.name}\`${p.flags.isOptional ? '' : ' (required)'} | \`${cellText(p.type?.toString() ?? '')}\` | ${dflt} | ${doc} |`);
  }
  if (rows.length === 0) return '';
  return [
    '',
    '## Config',
    '',
    `\`${factory!.name}(config)\`. "Default" is what an instance built by the docs reports in its \`config\` (defaults filled in); "—": no single value (see the description).`,
    '',
    '| key | type | default | description |',
    '|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}

/**
 * Splits a module doc's summary where the pictures go: before its "Complexity" paragraph (the
 * entries' docs put the definition first, then complexity, paths and the paper), else at its end.
 */
function splitBeforeComplexity(parts: CommentDisplayPart[]): [CommentDisplayPart[], CommentDisplayPart[]] {
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    if (p.kind !== 'text') continue;
    const at = p.text.search(/\n\n(?=Complexity)/);
    if (at < 0) continue;
    return [
      [...parts.slice(0, i), text(p.text.slice(0, at))],
      [text(p.text.slice(at)), ...parts.slice(i + 1)],
    ];
  }
  return [parts, []];
}

/** Builds the site into `input.out`. */
export async function buildSite(input: SiteInput): Promise<SiteResult> {
  const app = await Application.bootstrapWithPlugins({ options: join(input.root, 'typedoc.json') });
  const documents = app.options.getValue('projectDocuments');
  app.options.setValue('projectDocuments', [...input.generatedDocuments, ...documents]);
  app.options.setValue('out', input.out);
  app.options.setValue('customCss', input.customCss);
  app.options.setValue('navigation', { ...app.options.getValue('navigation'), includeFolders: false });
  const result: SiteResult = { errors: 0, warnings: 0, modules: [], unnamed: [] };
  const parse = (md: string, file: string, project: ProjectReflection) =>
    app.converter.parseRawComment(new MinimalSourceFile(md, join(input.root, file).replace(/\\/g, '/') as NormalizedPath), project.files).content;

  app.converter.on(Converter.EVENT_RESOLVE_BEGIN, (context: Context) => {
    const project = context.project;
    for (const mod of project.getReflectionsByKind(ReflectionKind.Module) as DeclarationReflection[]) {
      const abs = project.files.getReflectionPath(mod);
      const source = abs ? relative(input.root, abs).replace(/\\/g, '/') : undefined;
      const name = source ? input.importPaths.get(source) : undefined;
      if (name) mod.name = name;
      else result.unnamed.push(source ?? mod.name);
      const entry = input.catalog.find((e) => `src/${e.module}.ts` === source);
      const page = entry ? input.entryPages.get(entry.id) : undefined;
      if (!entry || !page) continue;
      mod.comment ??= new Comment();
      const [definition, rest] = splitBeforeComplexity(mod.comment.summary);
      const factory = mod.getChildByName(entry.factories[0]);
      const fn = factory instanceof DeclarationReflection ? factory : undefined;
      const example = fn?.signatures?.[0]?.comment?.getTag('@example')?.content;
      mod.comment.summary = [
        ...definition,
        text('\n\n'),
        ...parse(page.pictures, page.virtualFile, project),
        text('\n\n'),
        ...rest,
        text('\n\n'),
        ...parse(page.glance + configTable(fn, page), page.virtualFile, project),
        ...(example ? [text(`\n\n## Example\n\n<div class="ac-example">\n\n`), ...Comment.cloneDisplayParts(example), text('\n\n</div>\n\n')] : []),
        text('\n\n'),
        ...parse(page.benchmarks, page.virtualFile, project),
      ];
    }
  });

  const project = await app.convert();
  if (!project) throw new Error('typedoc could not convert the project (see the errors above)');
  result.modules = project.getReflectionsByKind(ReflectionKind.Module).map((m) => m.name);
  await app.generateDocs(project, input.out);
  result.errors = app.logger.errorCount;
  result.warnings = app.logger.warningCount;
  return result;
}
