/**
 * The shared `Attention` interface and its types.
 *
 * Shape legend used throughout the catalog:
 *
 * | name | shape | meaning |
 * |---|---|---|
 * | `q` | `[batch, heads, n, d]` | queries |
 * | `k` | `[batch, kvHeads, m, d]` | keys |
 * | `v` | `[batch, kvHeads, m, dv]` | values |
 * | output | `[batch, heads, n, dv]` | float32 |
 *
 * `heads % kvHeads == 0`; query head `h` reads kv head `floor(h / (heads / kvHeads))`.
 * When `n != m` the queries are the *last* n positions (bottom-right alignment):
 *
 * ```
 *            keys j = 0 … m-1
 *   q i=0    . . . . . x            p_0 = m - n
 *   q i=1    . . . . . x x          causal: key j allowed iff j <= p_i = i + (m - n)
 *   q i=n-1  . . . . . x x x  (= key m-1)
 * ```
 *
 * @module
 */
import type { Tensor, Tensor1D, Tensor4D } from '@tensorflow/tfjs-core';

/** The families of the efficient-transformer taxonomy. */
export type Family =
  | 'baseline'
  | 'fixed'
  | 'combined'
  | 'learnable'
  | 'recurrence'
  | 'side memory'
  | 'memory saving'
  | 'kernelized'
  | 'adaptive';

/** Which implementation `apply` runs. `auto`: the fused kernel where registered for the active backend, else the composite. */
export type Implementation = 'auto' | 'kernel' | 'composite';

/**
 * How the fused flash kernel walks the keys. `'rows'`: one invocation per query row, keys read
 * from storage. `'tiled'`: a workgroup takes a block of query rows and loads each key/value tile
 * once into workgroup memory for all of them. `'auto'`: the faster one for the adapter and
 * problem (see `docs/kernels.md`).
 */
export type KernelStrategy = 'auto' | 'rows' | 'tiled';

/** Options of {@link Attention.apply}. */
export interface ApplyOptions {
  /** `'auto'` (default) | `'kernel'` | `'composite'`. An explicit choice that cannot be honoured throws `AttentionError`. */
  implementation?: Implementation;
  /**
   * `'auto'` (default) | `'rows'` | `'tiled'`: the flash kernel's strategy, for entries that run
   * on it (dense, multi-query and the pattern entries) when the call takes the kernel path;
   * other paths ignore it. An explicit `'tiled'` that the device cannot run throws `AttentionError`.
   */
  kernelStrategy?: KernelStrategy;
  /**
   * One valid key length per batch element (`number[]` or an int32 `Tensor1D` of shape `[batch]`).
   * Keys at or past it are padding: never attended. Default: all `m` keys are real.
   */
  keyLength?: number[] | Tensor1D;
}

/** Time and memory complexity, as strings such as `'O(n·m·d)'`, `'O(n)'`. */
export interface Complexity {
  time: string;
  memory: string;
}

/** A problem size, for {@link Attention.memoryBytes}. */
export interface Problem {
  batch: number;
  heads: number;
  /** Default: `heads`. */
  kvHeads?: number;
  n: number;
  /** Default: `n`. */
  m?: number;
  d: number;
  /** Default: `d`. */
  dv?: number;
  /** `'kernel'` or `'composite'`; default: what `'auto'` picks on the active backend. */
  implementation?: Implementation;
  /** Whether a `keyLength` option will be passed (some paths then build a mask). Default false. */
  keyLength?: boolean;
}

/** The resolved dimensions of one call. */
export interface Dims {
  batch: number;
  heads: number;
  kvHeads: number;
  /** `heads / kvHeads`: query heads per kv head. */
  group: number;
  n: number;
  m: number;
  d: number;
  dv: number;
}

/** The attended-keys structure of a pattern variant: for each query row, the sorted allowed keys. */
export interface Pattern {
  n: number;
  m: number;
  /** `rows[i]` lists the keys query `i` may attend (before `keyLength` and `causal`, which are applied on top). */
  rows: number[][];
}

/**
 * The interface every catalog entry implements.
 *
 * @typeParam C - the variant's config type.
 */
export interface Attention<C = unknown> {
  /** Catalog id, e.g. `'dense'`. */
  readonly id: string;
  readonly family: Family;
  /** The config the variant was built with, defaults filled in. */
  readonly config: Readonly<C>;
  readonly complexity: Complexity;
  /**
   * Attention of `q [batch, heads, n, d]` over `k [batch, kvHeads, m, d]`, `v [batch, kvHeads, m, dv]`.
   * Returns `[batch, heads, n, dv]`. Frees every intermediate tensor.
   * @throws AttentionError on any invalid input, before anything is dispatched.
   */
  apply(q: Tensor4D, k: Tensor4D, v: Tensor4D, options?: ApplyOptions): Tensor4D;
  /** Upper bound of the intermediate bytes `apply` needs (excluding its inputs and output). */
  memoryBytes(problem: Problem): number;
  /** For pattern variants: the attended keys of each query. */
  pattern?(n: number, m?: number): Pattern;
  /** Frees weights the variant owns (a no-op for weightless variants). */
  dispose(): void;
}

/**
 * Where a decode state comes from: stamped by every `decode` step on the state it returns, and
 * checked by every step on the state it is given (a mismatch throws `AttentionError('state', …)`).
 */
export interface DecodeOrigin {
  /** Catalog id of the variant that made the state, e.g. `'dense'`. */
  readonly variant: string;
  /**
   * Fingerprint of the variant's resolved config (keys sorted), including the seed and the
   * identity of explicit parameters (performer's `omega`): another config, seed or set of
   * explicit features gives another fingerprint.
   */
  readonly config: string;
  /** Batch, kvHeads and head dims of the inputs that made it. */
  readonly batch: number;
  readonly kvHeads: number;
  readonly d: number;
  readonly dv: number;
}

/** The key/value cache of an incremental decode path. */
export interface DecodeState {
  /** Cached keys `[batch, kvHeads, length, d]`. */
  k: Tensor4D;
  /** Cached values `[batch, kvHeads, length, dv]`. */
  v: Tensor4D;
  /** Number of cached positions. */
  length: number;
  /** Which variant (config) and shapes made this state; every step checks it. */
  readonly origin: DecodeOrigin;
}

/** Anything that is a tensor, for type guards. */
export type AnyTensor = Tensor;
