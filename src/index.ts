/**
 * attention-catalog: efficient-attention mechanisms for TensorFlow.js behind one `Attention`
 * interface. This module is the catalog (every entry's metadata) and the shared types; it
 * registers no kernel and loads no variant: it imports only each entry's metadata module
 * (`src/variants/<family>/<id>.meta.ts`, where that metadata is written once). Each variant is
 * its own subpath export (`attention-catalog/dense`, …), loaded on demand by
 * {@link CatalogEntry.load}.
 *
 * @example
 * ```ts
 * import { catalog } from 'attention-catalog';
 * for (const e of catalog) console.log(e.id, e.family, e.complexity.memory, e.paper.url);
 * const make = await catalog[0].load(); // the entry's main factory (import its subpath for a typed config)
 * const dense = make();                 // denseAttention with its defaults
 * ```
 *
 * @module
 */
import type { CatalogEntry, EntryMeta, Factory } from './core/catalog-types.js';
import { meta as denseMeta } from './variants/baseline/dense.meta.js';
import { meta as multiQueryMeta } from './variants/memory-saving/multi-query.meta.js';
import { meta as localMeta } from './variants/fixed/local.meta.js';
import { meta as blockwiseMeta } from './variants/fixed/blockwise.meta.js';
import { meta as stridedMeta } from './variants/fixed/strided.meta.js';
import { meta as dilatedMeta } from './variants/fixed/dilated.meta.js';
import { meta as compressedMeta } from './variants/fixed/compressed.meta.js';
import { meta as sparseTransformerMeta } from './variants/combined/sparse-transformer.meta.js';
import { meta as axialMeta } from './variants/combined/axial.meta.js';
import { meta as bigBirdMeta } from './variants/combined/big-bird.meta.js';
import { meta as lshMeta } from './variants/learnable/lsh.meta.js';
import { meta as routingMeta } from './variants/learnable/routing.meta.js';
import { meta as sinkhornMeta } from './variants/learnable/sinkhorn.meta.js';
import { meta as transformerXLMeta } from './variants/recurrence/transformer-xl.meta.js';
import { meta as compressiveMeta } from './variants/recurrence/compressive.meta.js';
import { meta as longformerMeta } from './variants/side-memory/longformer.meta.js';
import { meta as etcMeta } from './variants/side-memory/etc.meta.js';
import { meta as setTransformerMeta } from './variants/side-memory/set-transformer.meta.js';
import { meta as linformerMeta } from './variants/memory-saving/linformer.meta.js';
import { meta as linearMeta } from './variants/kernelized/linear.meta.js';
import { meta as performerMeta } from './variants/kernelized/performer.meta.js';
import { meta as adaptiveSpanMeta } from './variants/adaptive/adaptive-span.meta.js';

export type { Attention, ApplyOptions, Complexity, DecodeOrigin, DecodeState, Dims, Family, Implementation, KernelStrategy, Pattern, Problem } from './core/types.js';
export type { Capabilities, CatalogEntry, EntryMeta, Factory, Paper } from './core/catalog-types.js';
export { AttentionError } from './core/errors.js';
export { DEFAULT_HOST_MEMORY_BUDGET, hostMemoryBudget, setHostMemoryBudget } from './core/budget.js';
export { measureIntermediateBytes, type Measurement } from './core/measure.js';
export { SeededRandom, DEFAULT_SEED } from './core/rng.js';

/** An entry: its metadata plus a loader of its module's main factory (the import path is checked against `meta.module` by test/coverage.test.ts). */
function entry(meta: EntryMeta, importModule: () => Promise<unknown>): CatalogEntry {
  return Object.freeze({ ...meta, load: async () => (await importModule() as Record<string, Factory>)[meta.factories[0]] });
}

/** Every entry of the catalog, in taxonomy order. */
export const catalog: readonly CatalogEntry[] = [
  /* @__PURE__ */ entry(denseMeta, () => import('./variants/baseline/dense.js')),
  /* @__PURE__ */ entry(multiQueryMeta, () => import('./variants/memory-saving/multi-query.js')),
  /* @__PURE__ */ entry(localMeta, () => import('./variants/fixed/local.js')),
  /* @__PURE__ */ entry(blockwiseMeta, () => import('./variants/fixed/blockwise.js')),
  /* @__PURE__ */ entry(stridedMeta, () => import('./variants/fixed/strided.js')),
  /* @__PURE__ */ entry(dilatedMeta, () => import('./variants/fixed/dilated.js')),
  /* @__PURE__ */ entry(compressedMeta, () => import('./variants/fixed/compressed.js')),
  /* @__PURE__ */ entry(sparseTransformerMeta, () => import('./variants/combined/sparse-transformer.js')),
  /* @__PURE__ */ entry(axialMeta, () => import('./variants/combined/axial.js')),
  /* @__PURE__ */ entry(bigBirdMeta, () => import('./variants/combined/big-bird.js')),
  /* @__PURE__ */ entry(lshMeta, () => import('./variants/learnable/lsh.js')),
  /* @__PURE__ */ entry(routingMeta, () => import('./variants/learnable/routing.js')),
  /* @__PURE__ */ entry(sinkhornMeta, () => import('./variants/learnable/sinkhorn.js')),
  /* @__PURE__ */ entry(transformerXLMeta, () => import('./variants/recurrence/transformer-xl.js')),
  /* @__PURE__ */ entry(compressiveMeta, () => import('./variants/recurrence/compressive.js')),
  /* @__PURE__ */ entry(longformerMeta, () => import('./variants/side-memory/longformer.js')),
  /* @__PURE__ */ entry(etcMeta, () => import('./variants/side-memory/etc.js')),
  /* @__PURE__ */ entry(setTransformerMeta, () => import('./variants/side-memory/set-transformer.js')),
  /* @__PURE__ */ entry(linformerMeta, () => import('./variants/memory-saving/linformer.js')),
  /* @__PURE__ */ entry(linearMeta, () => import('./variants/kernelized/linear.js')),
  /* @__PURE__ */ entry(performerMeta, () => import('./variants/kernelized/performer.js')),
  /* @__PURE__ */ entry(adaptiveSpanMeta, () => import('./variants/adaptive/adaptive-span.js')),
];

/** The entry with this id, or undefined. */
export function catalogEntry(id: string): CatalogEntry | undefined {
  return catalog.find((e) => e.id === id);
}
