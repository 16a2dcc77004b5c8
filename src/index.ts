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
  {
    id: 'local',
    family: 'fixed',
    factories: ['localAttention'],
    paper: { title: 'Longformer: The Long-Document Transformer', year: 2020, url: 'https://arxiv.org/abs/2004.05150' },
    complexity: { time: 'O(n·w·d)', memory: 'O(n·w); decode state O(w)' },
    fused: true,
    exact: true,
    load: async () => (await import('./variants/fixed/local.js')).localAttention as never,
  },
  {
    id: 'blockwise',
    family: 'fixed',
    factories: ['blockwiseAttention'],
    paper: { title: 'Image Transformer', year: 2018, url: 'https://arxiv.org/abs/1802.05751' },
    complexity: { time: 'O(n·b·(L+1)·d)', memory: 'O(n·b·(L+1))' },
    fused: true,
    exact: true,
    load: async () => (await import('./variants/fixed/blockwise.js')).blockwiseAttention as never,
  },
  {
    id: 'strided',
    family: 'fixed',
    factories: ['stridedAttention'],
    paper: { title: 'Generating Long Sequences with Sparse Transformers', year: 2019, url: 'https://arxiv.org/abs/1904.10509' },
    complexity: { time: 'O(n·m/t·d)', memory: 'O(n·m/t)' },
    fused: true,
    exact: true,
    load: async () => (await import('./variants/fixed/strided.js')).stridedAttention as never,
  },
  {
    id: 'dilated',
    family: 'fixed',
    factories: ['dilatedAttention'],
    paper: { title: 'Longformer: The Long-Document Transformer', year: 2020, url: 'https://arxiv.org/abs/2004.05150' },
    complexity: { time: 'O(n·w·d)', memory: 'O(n·w)' },
    fused: true,
    exact: true,
    load: async () => (await import('./variants/fixed/dilated.js')).dilatedAttention as never,
  },
  {
    id: 'compressed',
    family: 'fixed',
    factories: ['compressedAttention'],
    paper: { title: 'Generating Wikipedia by Summarizing Long Sequences', year: 2018, url: 'https://arxiv.org/abs/1801.10198' },
    complexity: { time: 'O(n·m/t·d + m·d)', memory: 'O(n·m/t)' },
    fused: true,
    exact: true,
    load: async () => (await import('./variants/fixed/compressed.js')).compressedAttention as never,
  },
  {
    id: 'sparse-transformer',
    family: 'combined',
    factories: ['sparseTransformerAttention'],
    paper: { title: 'Generating Long Sequences with Sparse Transformers', year: 2019, url: 'https://arxiv.org/abs/1904.10509' },
    complexity: { time: 'O(n·(t + m/t)·d)', memory: 'O(n·(t + m/t))' },
    fused: true,
    exact: true,
    load: async () => (await import('./variants/combined/sparse-transformer.js')).sparseTransformerAttention as never,
  },
  {
    id: 'axial',
    family: 'combined',
    factories: ['axialAttention'],
    paper: { title: 'Axial Attention in Multidimensional Transformers', year: 2019, url: 'https://arxiv.org/abs/1912.12180' },
    complexity: { time: 'O(n·(rows + cols)·d)', memory: 'O(n·(rows + cols))' },
    fused: true,
    exact: true,
    load: async () => (await import('./variants/combined/axial.js')).axialAttention as never,
  },
  {
    id: 'big-bird',
    family: 'combined',
    factories: ['bigBirdAttention'],
    paper: { title: 'Big Bird: Transformers for Longer Sequences', year: 2020, url: 'https://arxiv.org/abs/2007.14062' },
    complexity: { time: 'O(n·b·(w + g + r)·d)', memory: 'O(n·b·(w + g + r))' },
    fused: true,
    exact: true,
    load: async () => (await import('./variants/combined/big-bird.js')).bigBirdAttention as never,
  },
  {
    id: 'longformer',
    family: 'side memory',
    factories: ['longformerAttention'],
    paper: { title: 'Longformer: The Long-Document Transformer', year: 2020, url: 'https://arxiv.org/abs/2004.05150' },
    complexity: { time: 'O(n·(w + g)·d)', memory: 'O(n·(w + g))' },
    fused: true,
    exact: true,
    load: async () => (await import('./variants/side-memory/longformer.js')).longformerAttention as never,
  },
  {
    id: 'etc',
    family: 'side memory',
    factories: ['etcAttention'],
    paper: { title: 'ETC: Encoding Long and Structured Inputs in Transformers', year: 2020, url: 'https://arxiv.org/abs/2004.08483' },
    complexity: { time: 'O(n·(r + g)·d)', memory: 'O(n·(r + g))' },
    fused: true,
    exact: true,
    load: async () => (await import('./variants/side-memory/etc.js')).etcAttention as never,
  },
  {
    id: 'linformer',
    family: 'memory saving',
    factories: ['linformerAttention'],
    paper: { title: 'Linformer: Self-Attention with Linear Complexity', year: 2020, url: 'https://arxiv.org/abs/2006.04768' },
    complexity: { time: 'O(n·k·d + m·k·d)', memory: 'O(n·k)' },
    fused: true,
    exact: false,
    load: async () => (await import('./variants/memory-saving/linformer.js')).linformerAttention as never,
  },
  {
    id: 'linear',
    family: 'kernelized',
    factories: ['linearAttention'],
    paper: { title: 'Transformers are RNNs: Fast Autoregressive Transformers with Linear Attention', year: 2020, url: 'https://arxiv.org/abs/2006.16236' },
    complexity: { time: 'O(n·d·dv)', memory: 'O(n·d + d·dv); decode state O(d·dv)' },
    fused: true,
    exact: false,
    load: async () => (await import('./variants/kernelized/linear.js')).linearAttention as never,
  },
  {
    id: 'performer',
    family: 'kernelized',
    factories: ['performerAttention'],
    paper: { title: 'Rethinking Attention with Performers', year: 2020, url: 'https://arxiv.org/abs/2009.14794' },
    complexity: { time: 'O(n·M·(d + dv))', memory: 'O(n·M + M·dv); decode state O(M·dv)' },
    fused: true,
    exact: false,
    load: async () => (await import('./variants/kernelized/performer.js')).performerAttention as never,
  },
  {
    id: 'adaptive-span',
    family: 'adaptive',
    factories: ['adaptiveSpanAttention'],
    paper: { title: 'Adaptive Attention Span in Transformers', year: 2019, url: 'https://arxiv.org/abs/1905.07799' },
    complexity: { time: 'O(n·(z+R)·d)', memory: 'O(n·(z+R))' },
    fused: true,
    exact: true,
    load: async () => (await import('./variants/adaptive/adaptive-span.js')).adaptiveSpanAttention as never,
  },
];

/** The entry with this id, or undefined. */
export function catalogEntry(id: string): CatalogEntry | undefined {
  return catalog.find((e) => e.id === id);
}
