/**
 * What every fixed, combined and global-token pattern variant shares: config checks, input
 * validation, the per-size cache of bound rules, layouts and gather plans, dispatch to the
 * block-sparse kernel or composite, `memoryBytes` and `pattern()`. A variant states its pattern
 * once — a rule built from `kernels/flash/rule.ts`'s pieces and its parameter values — and the
 * kernel's layout and WGSL rule, the composite's parts and `pattern()` are derived from it.
 *
 * Not a catalog entry (no subpath of its own).
 *
 * @module
 */
import type * as tf from '@tensorflow/tfjs-core';
import { Tensor } from '@tensorflow/tfjs-core';
import { attendBlockSparse, attendBlockSparseBytes, type SparseKernelPlan, type SparseSpec } from '../../kernels/flash/sparse_attend.js';
import { buildPart, type GatherPart, type PartDef } from '../../kernels/flash/parts.js';
import { deriveLayout, deriveParts } from '../../kernels/flash/derive.js';
import { layoutAllFull, type ElementRule } from '../../kernels/flash/layout.js';
import { bindRule, compileRule, type BoundRule, type ParamValues, type RuleDecl } from '../../kernels/flash/rule.js';
import { AttentionError, show } from '../core/errors.js';
import type { ApplyOptions, Attention, Complexity, Dims, Family, Pattern, Problem } from '../core/types.js';
import { checkBaseConfig, checkInt, validateCall } from '../core/validate.js';
import { Lifetime } from '../core/lifecycle.js';
import { problemDims, problemPath } from '../core/validate.js';

/** A config array with one value per query head: its config name, what one value is, the values. */
export interface HeadArray {
  name: string;
  noun: string;
  values: readonly number[];
}

/** Config fields every pattern variant has. */
export interface PatternBaseConfig {
  /** Key j is allowed only if `j <= p_i = i + (m − n)`, on top of the pattern. Default `false`. */
  causal?: boolean;
  /** Score scale. Default `1 / sqrt(d)`. */
  scale?: number;
}

/** Checks the config object, its keys, `causal` and `scale` (the prologue every factory shares). */
export const checkPatternConfig = checkBaseConfig;

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

/** A dilation config as a per-head array for the base class's head checks (null: one dilation for all heads). */
export function dilationHeads(dilation: number | readonly number[]): HeadArray | null {
  return Array.isArray(dilation) ? { name: 'config.dilation', noun: 'dilation', values: dilation } : null;
}

/** The kernel block and composite group size of a band of `window` dilated steps. */
export function dilatedBandBlock(window: number, dilation: number | readonly number[]): number {
  return pow2Clamp(window * (Array.isArray(dilation) ? Math.max(...dilation) : (dilation as number)), 8, 64);
}

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


interface CachedSpec {
  bound?: BoundRule;
  kernel?: SparseKernelPlan;
  composite?: GatherPart[];
}

const CACHE_SIZE = 4;

/** The kernel reads rule parameters (positions, table offsets) as f32: exact up to 2^24. */
const MAX_EXACT_F32 = 1 << 24;

/** The kernel's element rule of a bound pattern rule (its WGSL reads every parameter from `params`). */
export function elementRuleOf(bound: BoundRule): ElementRule {
  return {
    key: bound.compiled.key,
    wgsl: bound.compiled.wgsl,
    params: bound.params,
    weight: (p, j, h) => bound.weight(p, j, h),
    seeks: true,
    init: true,
    exactSeek: bound.compiled.exactSeek,
    strides: bound.compiled.strides,
    seek: (p, j, h) => bound.seek(p, j, h),
  };
}

/**
 * Base class of the block-sparse pattern variants. A variant states its pattern once — the
 * rule's shape ({@link PatternAttention.rule}, built from `kernels/flash/rule.ts`'s pieces) and
 * its parameter values ({@link PatternAttention.params}) — and everything else is derived here:
 * `pattern()`, the kernel's layout (full and partial runs) and rule, the composite's parts,
 * `memoryBytes`.
 *
 * @typeParam C - the variant's config type (defaults filled in).
 */
export abstract class PatternAttention<C extends PatternBaseConfig> implements Attention<C> {
  private readonly cache = new Map<string, CachedSpec>();
  /** Disposed or live: every public method checks it first ({@link PatternAttention.checkLive}). */
  private readonly lifetime = new Lifetime();

  constructor(
    readonly id: string,
    readonly family: Family,
    readonly config: Readonly<C & { causal: boolean }>,
    readonly complexity: Complexity,
  ) {}

  /** Throws AttentionError('this') once the variant is disposed: the first statement of every public method (subclasses' too). */
  protected checkLive(): void {
    this.lifetime.check(this.id);
  }

  /** The pattern's rule (its shape: one pipeline serves every parameter value), before causal and keyLength. */
  protected abstract get rule(): RuleDecl;

  /** The rule's parameter values for n queries over m keys and `heads` query heads. */
  protected abstract params(n: number, m: number, heads: number): ParamValues;

  /**
   * Kernel block size and composite row-group size, in positions, for this size. Default 64.
   * Block-structured patterns use a divisor of their block, so their runs are exactly full.
   */
  protected block(_n: number, _m: number): number {
    return 64;
  }

  private entry(n: number, m: number, heads: number): CachedSpec {
    const key = `${n},${m},${heads}`;
    let entry = this.cache.get(key);
    if (entry) {
      this.cache.delete(key);
    } else {
      entry = {};
      if (this.cache.size >= CACHE_SIZE) this.cache.delete(this.cache.keys().next().value as string);
    }
    this.cache.set(key, entry);
    return entry;
  }

  /** The rule bound to this size's parameter values (cached). */
  protected bound(n: number, m: number, heads: number): BoundRule {
    const e = this.entry(n, m, heads);
    return (e.bound ??= bindRule(compileRule(this.rule), this.params(n, m, heads), heads));
  }

  /** The fused kernel's layout and rule for this size (derived from the rule). */
  protected kernelPlan(n: number, m: number, heads: number): SparseKernelPlan {
    const bound = this.bound(n, m, heads);
    if (bound.params.length > MAX_EXACT_F32) {
      throw new AttentionError('k', `a rule parameter buffer of at most ${MAX_EXACT_F32} entries (f32 holds positions exactly up to 2^24)`, `${bound.params.length} for m = ${m}`, "Use implementation 'composite'.");
    }
    const layout = deriveLayout(bound, n, m, this.config.causal, this.block(n, m));
    // Where every visited run is full the kernel needs no rule: one pipeline for all such patterns.
    if (layoutAllFull(layout)) return { layout, rule: null };
    const rule = elementRuleOf(bound);
    return { layout, rule: this.rowsPreferred ? { ...rule, strides: true } : rule };
  }

  /**
   * Whether `kernelStrategy: 'auto'` should run one query row per invocation although the rule
   * is not a pure lattice (see `chooseStrategy`): a variant whose lattice part is as large as the
   * rest, measured faster on rows (bench/results/strategies.md). Default false.
   */
  protected get rowsPreferred(): boolean {
    return false;
  }

  /** The composite's parts (disjoint, union = the pattern) for this size (derived from the rule). */
  protected partDefs(n: number, m: number, heads: number): PartDef[] {
    return deriveParts(this.bound(n, m, heads), n, m, this.config.causal, this.block(n, m));
  }

  /**
   * Length rules of the pattern. Default: n <= m (the queries are the last n of the m
   * positions, so every query has a position in the pattern).
   */
  protected checkSizes(n: number, m: number): void {
    if (n > m) {
      throw new AttentionError('q', `at most m = ${m} queries (the queries are the last n of the m key positions)`, `n = ${n}`);
    }
  }

  /** A config array with one value per query head (e.g. a per-head dilation), or null. */
  protected headArray(): HeadArray | null {
    return null;
  }

  /** Head rules of the pattern: a per-head array needs one entry per query head. */
  protected checkHeads(heads: number): void {
    const a = this.headArray();
    if (a && a.values.length !== heads) {
      throw new AttentionError(a.name, `one ${a.noun} per query head: ${heads} entries (heads of q)`, `${a.values.length} entries ${show(a.values)}`);
    }
  }

  /** Which query heads `pattern()` can describe: with a per-head array, those it has entries for. */
  protected checkHead(head: number): void {
    const a = this.headArray();
    if (a && head >= a.values.length) throw new AttentionError('head', `a query head below ${a.values.length} (entries of ${a.name})`, `${head}`);
  }

  private checkDims(dims: Dims): void {
    this.checkSizes(dims.n, dims.m);
    this.checkHeads(dims.heads);
  }

  /** The cached spec of one size (layouts and gather plans are built on first use). */
  protected spec(n: number, m: number, heads: number): SparseSpec {
    const e = this.entry(n, m, heads);
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
   * @param options - `implementation` ('auto' | 'kernel' | 'composite'), `keyLength` (valid keys per batch element), `kernelStrategy` ('auto' | 'rows' | 'tiled', the fused kernel's).
   * @throws AttentionError on any invalid input, before anything is dispatched.
   */
  apply(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, options?: ApplyOptions): tf.Tensor4D {
    this.checkLive();
    const { dims, implementation, keyLength, kernelStrategy } = validateCall(q, k, v, options);
    this.checkDims(dims);
    const spec = this.spec(dims.n, dims.m, dims.heads);
    return attendBlockSparse(
      q,
      k,
      v,
      dims,
      { causal: this.config.causal, scale: this.scaleFor(dims.d), keyLength, strategy: kernelStrategy },
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
    this.checkLive();
    const dims = problemDims(problem);
    this.checkDims(dims);
    const path = problemPath(problem);
    return attendBlockSparseBytes(dims, path, this.spec(dims.n, dims.m, dims.heads), !!problem.keyLength);
  }

  /**
   * The attended keys of each of `n` queries over `m` keys (default m = n), for query head
   * `head` (default 0; only variants with per-head parameters differ by head), before `causal`
   * and `keyLength`, which apply on top. Used by the docs' pictures and the tests.
   */
  pattern(n: number, m: number = n, head = 0): Pattern {
    this.checkLive();
    checkInt('n', n, 1);
    checkInt('m', m, 1);
    checkInt('head', head, 0);
    this.checkSizes(n, m);
    this.checkHead(head);
    const bound = this.bound(n, m, head + 1);
    const rows: number[][] = [];
    for (let i = 0; i < n; i++) {
      const p = i + m - n;
      const row: number[] = [];
      for (let j = bound.seek(p, 0, head); j < m; j = bound.seek(p, j + 1, head)) if (bound.weight(p, j, head) > 0) row.push(j);
      rows.push(row);
    }
    return { n, m, rows };
  }

  /** Pattern variants own no tensors: ends the variant (every later call throws AttentionError('this')); again, a no-op. */
  dispose(): void {
    if (this.lifetime.end()) this.cache.clear();
  }
}
