/**
 * attention-catalog: efficient-attention mechanisms for TensorFlow.js behind one `Attention`
 * interface. This module is the catalog (every entry's metadata) and the shared types; it
 * registers no kernel and imports no variant. Each variant is its own subpath export
 * (`attention-catalog/dense`, …), loaded on demand by {@link CatalogEntry.load}.
 *
 * @example
 * ```ts
 * import { catalog } from 'attention-catalog';
 * for (const e of catalog) console.log(e.id, e.family, e.complexity.memory, e.paper.url);
 * const dense = (await catalog[0].load())({ causal: true });
 * ```
 *
 * @module
 */
import type { Attention, Complexity, Family } from './core/types.js';

export type { Attention, ApplyOptions, Complexity, DecodeState, Dims, Family, Implementation, Pattern, Problem } from './core/types.js';
export { AttentionError } from './core/errors.js';
export { measureIntermediateBytes, type Measurement } from './core/measure.js';
export { SeededRandom, DEFAULT_SEED } from './core/rng.js';

/** A paper reference. */
export interface Paper {
  title: string;
  year: number;
  url: string;
}

/** One catalog entry's metadata. */
export interface CatalogEntry {
  /** Catalog id and subpath: `attention-catalog/<id>`. */
  id: string;
  family: Family;
  /** Factory function names exported by the subpath. */
  factories: string[];
  paper: Paper;
  complexity: Complexity;
  /** Whether the fused webgpu path exists. */
  fused: boolean;
  /** Whether the variant computes exact softmax attention over its allowed set (error vs dense is meaningful). */
  exact: boolean;
  /** Loads the subpath and returns its main factory. */
  load(): Promise<(config?: never) => Attention<unknown>>;
}

/** Every entry of the catalog, in taxonomy order. */
export const catalog: readonly CatalogEntry[] = [
  {
    id: 'dense',
    family: 'baseline',
    factories: ['denseAttention'],
    paper: { title: 'Attention Is All You Need', year: 2017, url: 'https://arxiv.org/abs/1706.03762' },
    complexity: { time: 'O(n·m·d)', memory: 'O(n) fused; O(n·m) composite' },
    fused: true,
    exact: true,
    load: async () => (await import('./variants/baseline/dense.js')).denseAttention as never,
  },
  {
    id: 'multi-query',
    family: 'memory saving',
    factories: ['multiQueryAttention', 'groupedQueryAttention'],
    paper: { title: 'Fast Transformer Decoding: One Write-Head is All You Need', year: 2019, url: 'https://arxiv.org/abs/1911.02150' },
    complexity: { time: 'O(n·m·d)', memory: 'O(n) fused; decode cache O(m·kvHeads·d)' },
    fused: true,
    exact: true,
    load: async () => (await import('./variants/memory-saving/multi-query.js')).multiQueryAttention as never,
  },
];

/** The entry with this id, or undefined. */
export function catalogEntry(id: string): CatalogEntry | undefined {
  return catalog.find((e) => e.id === id);
}
