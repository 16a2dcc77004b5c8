/**
 * The shape of a catalog entry's metadata. Each entry writes its metadata once, as
 * `export const meta = { … } as const satisfies EntryMeta` in `src/variants/<family>/<id>.meta.ts`
 * (a module with no imports but this type, so that the catalog can read every entry's metadata
 * without loading a single kernel); the variant module re-exports it as `meta` and builds its
 * instances from it, `src/index.ts` lists it in the catalog, and `test/coverage.test.ts` checks
 * every other place that names the entry (package.json exports, typedoc.json, the README
 * table, the conformance specs, the bench and the tour) against it.
 *
 * @module
 */
import type { Attention, Complexity, Family } from './types.js';

/** A paper reference. */
export interface Paper {
  title: string;
  year: number;
  url: string;
}

/** What an entry can do beyond `apply`, `memoryBytes` and `dispose`. */
export interface Capabilities {
  /** A fused WGSL kernel runs it on webgpu (elsewhere, and with `implementation: 'composite'`, the composite of tfjs ops). */
  readonly fused: boolean;
  /**
   * Whether the fused path is differentiable on webgpu (its kernels register their gradients:
   * `tf.grad` runs the fused backward). False: while tfjs records gradients the composite runs,
   * and an explicit `implementation: 'kernel'` throws AttentionError.
   */
  readonly fusedBackward: boolean;
  /** Whether the config accepts `causal: true` (false: the variant has no causal form, e.g. linformer). */
  readonly causal: boolean;
  /** Whether instances built with `causal: true` have an incremental `decode(q, k, v, state)` path. */
  readonly decode: boolean;
  /** Whether instances have `pattern(n, m)` (the attended keys of every query). */
  readonly pattern: boolean;
  /** Learned parameters the variant owns as trainable `tf.Variable`s (getters of the same name). */
  readonly learned: readonly string[];
}

/** One catalog entry's metadata, written once in its `<id>.meta.ts`. */
export interface EntryMeta {
  /** Catalog id and subpath: `attention-catalog/<id>`. */
  readonly id: string;
  readonly family: Family;
  /** Factory function names the subpath exports; the first is the one {@link CatalogEntry.load} returns. */
  readonly factories: readonly string[];
  readonly paper: Paper;
  readonly complexity: Complexity;
  /**
   * The module behind the subpath, relative to `src/` and without extension (e.g.
   * `'variants/fixed/local'`): package.json maps `./<id>` to `dist/src/<module>.js`, and
   * typedoc.json lists `src/<module>.ts`.
   */
  readonly module: string;
  /**
   * Whether the entry computes exact softmax attention over its allowed set (true), or an
   * approximation of dense softmax attention (false: low-rank projections, kernel feature maps),
   * for which an error against dense attention is what measures it.
   */
  readonly exactSoftmax: boolean;
  readonly capabilities: Capabilities;
}

/** A variant factory as the catalog loads it. */
export type Factory = (config?: never) => Attention<unknown>;

/** One catalog entry: its metadata, and a loader of its subpath's main factory. */
export interface CatalogEntry extends EntryMeta {
  /** Loads the subpath and returns its main factory (`factories[0]`). */
  load(): Promise<Factory>;
}
