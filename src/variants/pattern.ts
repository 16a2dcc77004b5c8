/**
 * What every fixed, combined and global-token pattern variant shares: config checks, input
 * validation, the per-size cache of layouts and gather plans, dispatch to the block-sparse
 * kernel or composite, `memoryBytes` and `pattern()`. A variant only says which pairs are
 * allowed (`weight`), which key blocks each query block visits (the kernel's layout and rule)
 * and how the composite groups rows and keys (its parts).
 *
 * Not a catalog entry (no subpath of its own).
 *
 * @module
 */
import type * as tf from '@tensorflow/tfjs-core';
import { Tensor } from '@tensorflow/tfjs-core';
import { attendBlockSparse, attendBlockSparseBytes, type SparseKernelPlan, type SparseSpec } from '../../kernels/flash/sparse_attend.js';
import { buildPart, type GatherPart, type PartDef } from '../../kernels/flash/parts.js';
import { kernelAvailable } from '../core/dispatch.js';
import { AttentionError, show } from '../core/errors.js';
import type { ApplyOptions, Attention, Complexity, Dims, Family, Implementation, Pattern, Problem } from '../core/types.js';
import { checkBaseConfig, checkInt, validateCall } from '../core/validate.js';
import { problemDims } from '../core/validate.js';

/** Config fields every pattern variant has. */
export interface PatternBaseConfig {
  /** Key j is allowed only if `j <= p_i = i + (m − n)`, on top of the pattern. Default `false`. */
  causal?: boolean;
  /** Score scale. Default `1 / sqrt(d)`. */
  scale?: number;
}

/** Checks the config object, its keys, `causal` and `scale` (the prologue every factory shares). */
export const checkPatternConfig = checkBaseConfig;

/** Non-negative remainder. */
export const mod = (a: number, t: number): number => ((a % t) + t) % t;

/** A dilation: one integer >= 1, or one per query head. */
export function checkDilation(name: string, value: unknown): number | number[] {
  if (Array.isArray(value)) {
    if (value.length === 0) throw new AttentionError(name, 'an integer >= 1 or a non-empty array of them (one per query head)', '[]');
    return value.map((r, h) => checkInt(`${name}[${h}]`, r, 1));
  }
  if (value instanceof Tensor) {
    throw new AttentionError(name, 'an integer >= 1 or a number[] (one per query head)', show(value));
  }
  return checkInt(name, value, 1);
}

/** Checks that a per-head dilation array has one entry per query head. */
export function checkDilationHeads(name: string, dilation: number | number[], heads: number): void {
  if (Array.isArray(dilation) && dilation.length !== heads) {
    throw new AttentionError(name, `one dilation per query head: ${heads} entries (heads of q)`, `${dilation.length} entries ${show(dilation)}`);
  }
}

/** The dilation of query head h. */
export const dilationOf = (dilation: number | number[], h: number): number => (Array.isArray(dilation) ? dilation[h] : dilation);

/** Smallest power of two >= x, clamped to [lo, hi]. */
export function pow2Clamp(x: number, lo: number, hi: number): number {
  let p = 1;
  while (p < x) p *= 2;
  return Math.min(hi, Math.max(lo, p));
}

/** A kernel block size for pattern blocks of `b` positions: b itself up to 1024, else its largest divisor <= 1024. */
export function kernelBlockFor(b: number): number {
  if (b <= 1024) return b;
  for (let x = 1024; x > 1; x--) if (b % x === 0) return x;
  return 1;
}

/** WGSL `i32` literal. */
export const i32 = (x: number): string => `${Math.trunc(x)}`;

interface CachedSpec {
  kernel?: SparseKernelPlan;
  composite?: GatherPart[];
}

const CACHE_SIZE = 4;

/**
 * Base class of the block-sparse pattern variants.
 *
 * @typeParam C - the variant's config type (defaults filled in).
 */
export abstract class PatternAttention<C extends PatternBaseConfig> implements Attention<C> {
  private readonly cache = new Map<string, CachedSpec>();

  constructor(
    readonly id: string,
    readonly family: Family,
    readonly config: Readonly<C & { causal: boolean }>,
    readonly complexity: Complexity,
  ) {}

  /** The pattern's weight of key j for the query at position p and query head h (0: not allowed), before causal and keyLength. */
  protected abstract weight(p: number, j: number, h: number, n: number, m: number): number;

  /** The fused kernel's layout and rule for this size. */
  protected abstract kernelPlan(n: number, m: number, heads: number): SparseKernelPlan;

  /** The composite's parts (disjoint, union = the pattern) for this size. */
  protected abstract partDefs(n: number, m: number, heads: number): PartDef[];

  /**
   * Length rules of the pattern. Default: n <= m (the queries are the last n of the m
   * positions, so every query has a position in the pattern).
   */
  protected checkSizes(n: number, m: number): void {
    if (n > m) {
      throw new AttentionError('q', `at most m = ${m} queries (the queries are the last n of the m key positions)`, `n = ${n}`);
    }
  }

  /** Head rules of the pattern (per-head parameters). Default: none. */
  protected checkHeads(_heads: number): void {}

  /** Which query heads `pattern()` can describe. Default: any. */
  protected checkHead(_head: number): void {}

  private checkDims(dims: Dims): void {
    this.checkSizes(dims.n, dims.m);
    this.checkHeads(dims.heads);
  }

  /** The cached spec of one size (layouts and gather plans are built on first use). */
  protected spec(n: number, m: number, heads: number): SparseSpec {
    const key = `${n},${m},${heads}`;
    let entry = this.cache.get(key);
    if (entry) {
      this.cache.delete(key);
    } else {
      entry = {};
      if (this.cache.size >= CACHE_SIZE) this.cache.delete(this.cache.keys().next().value as string);
    }
    this.cache.set(key, entry);
    const e = entry;
    return {
      kernel: () => (e.kernel ??= this.kernelPlan(n, m, heads)),
      composite: () =>
        (e.composite ??= this.partDefs(n, m, heads)
          .map((def) => buildPart(def, n, m, heads, this.config.causal))
          .filter((p): p is GatherPart => p !== null)),
    };
  }

  protected scaleFor(d: number): number {
    return this.config.scale ?? 1 / Math.sqrt(d);
  }

  /**
   * Attention of `q [batch, heads, n, d]` over `k [batch, kvHeads, m, d]`, `v [batch, kvHeads, m, dv]`
   * restricted to the pattern. Returns `[batch, heads, n, dv]`.
   *
   * @param options - `implementation` ('auto' | 'kernel' | 'composite'), `keyLength` (valid keys per batch element).
   * @throws AttentionError on any invalid input, before anything is dispatched.
   */
  apply(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, options?: ApplyOptions): tf.Tensor4D {
    const { dims, implementation, keyLength } = validateCall(q, k, v, options);
    this.checkDims(dims);
    const spec = this.spec(dims.n, dims.m, dims.heads);
    return attendBlockSparse(
      q,
      k,
      v,
      dims,
      { causal: this.config.causal, scale: this.scaleFor(dims.d), keyLength },
      spec,
      implementation,
    );
  }

  /**
   * Upper bound of the intermediate bytes of `apply` for `problem` (inputs and output excluded):
   * the fused kernel's split partials and layout (O(n)), or the composite's gathered keys and
   * scores (O(n · keys per query)).
   */
  memoryBytes(problem: Problem): number {
    const dims = problemDims(problem);
    this.checkDims(dims);
    const impl: Implementation = problem.implementation ?? 'auto';
    const path = impl === 'auto' ? (kernelAvailable() ? 'kernel' : 'composite') : impl;
    return attendBlockSparseBytes(dims, path, this.spec(dims.n, dims.m, dims.heads), !!problem.keyLength);
  }

  /**
   * The attended keys of each of `n` queries over `m` keys (default m = n), for query head
   * `head` (default 0; only variants with per-head parameters differ by head), before `causal`
   * and `keyLength`, which apply on top. Used by the docs' pictures and the tests.
   */
  pattern(n: number, m: number = n, head = 0): Pattern {
    checkInt('n', n, 1);
    checkInt('m', m, 1);
    checkInt('head', head, 0);
    this.checkSizes(n, m);
    this.checkHead(head);
    const rows: number[][] = [];
    for (let i = 0; i < n; i++) {
      const p = i + m - n;
      const row: number[] = [];
      for (let j = 0; j < m; j++) if (this.weight(p, j, head, n, m) > 0) row.push(j);
      rows.push(row);
    }
    return { n, m, rows };
  }

  /** Pattern variants own no tensors: a no-op. */
  dispose(): void {}
}
