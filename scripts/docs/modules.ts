/**
 * Module names on the docs site are import paths: each typedoc entry point is named by the
 * package.json `exports` subpath whose `types` is built from it (`src/variants/fixed/local.ts`
 * -> `./local` -> `attention-catalog/local`; `src/index.ts` -> `.` -> `attention-catalog`). An
 * entry point that no export builds keeps typedoc's name (the site says so when it is built).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

interface PackageJson {
  name: string;
  exports: Record<string, string | { types?: string; default?: string }>;
}

/** Source file (relative to the root, e.g. `src/variants/fixed/local.ts`) -> import path. */
export function importPathsBySource(root: string): Map<string, string> {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as PackageJson;
  const out = new Map<string, string>();
  for (const [sub, target] of Object.entries(pkg.exports)) {
    const built = typeof target === 'string' ? target : (target.types ?? target.default);
    if (!built) continue;
    // ./dist/<p>.d.ts or ./dist/<p>.js -> <p>.ts
    const m = /^\.\/dist\/(.+?)(\.d\.ts|\.js)$/.exec(built);
    if (!m) continue;
    const name = sub === '.' ? pkg.name : `${pkg.name}/${sub.replace(/^\.\//, '')}`;
    out.set(`${m[1]}.ts`, name);
  }
  return out;
}

/** The typedoc entry points (typedoc.json `entryPoints`). */
export function typedocEntryPoints(root: string): string[] {
  const t = JSON.parse(readFileSync(join(root, 'typedoc.json'), 'utf8')) as { entryPoints?: string[] };
  return t.entryPoints ?? [];
}
