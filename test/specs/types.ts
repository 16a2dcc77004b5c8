import type * as fc from 'fast-check';
import type * as tf from '@tensorflow/tfjs-core';
import type { Attention } from '../../src/core/types.js';
import type { Host4 } from '../reference.js';

/** One random problem: a config plus shapes and key lengths. */
export interface Case {
  config: Record<string, unknown>;
  batch: number;
  heads: number;
  kvHeads: number;
  n: number;
  m: number;
  d: number;
  dv: number;
  keyLength: number[] | null;
  seed: number;
  /** Keys are the queries themselves (`k` is the same tensor as `q`: Reformer's shared-QK); then kvHeads = heads, m = n. */
  sharedQK?: boolean;
}

/**
 * Memory growth class of a path, as the exponent of n when n and m grow together (with the
 * spec's memoryCase scaling its config with n where the class depends on it, e.g. a stride
 * t ≈ sqrt(n) for O(n·(t + m/t)) = O(n^1.5)).
 */
/** How a path's intermediate bytes grow from n to 4n; 'sqrt..linear': between √n and n (a sum of both kinds of terms). */
export type GrowthClass = 'sqrt..linear' | 'linear' | 'n^1.5' | 'quadratic';

/** The measured n → 4n growth each class allows, [lowest, highest] (the memory properties). */
export const GROWTH: Readonly<Record<GrowthClass, readonly [number, number]>> = { 'sqrt..linear': [1.8, 4.5], linear: [3, 4.5], 'n^1.5': [5.5, 9.5], quadratic: [10, 17] };

/** One learned parameter of a case's variant, as a flat row-major float64 array. */
export interface LearnedParam {
  name: string;
  shape: number[];
  data: Float64Array;
}

/**
 * A catalog entry's learned parameters (DESIGN.md "Training"), for the gradient suite
 * (test/gradients.test.ts): built with `trainable: true`, `variables` lists them in this order.
 */
export interface LearnedSpec {
  /** Small random cases whose config builds the variant with `trainable: true` (default: the spec's gradient cases, with `trainable: true` added). */
  cases?: fc.Arbitrary<Case>;
  /** The parameters the case's variant uses, in the order of its `variables` (explicit in the config, or the seeded generator's). */
  params(c: Case): LearnedParam[];
  /** The case with explicit parameter values (same order and shapes as `params`), for the float64 reference. */
  withParams(c: Case, values: Float64Array[]): Case;
  /**
   * The scalar objective when it is not Σ W ⊙ apply(q, k, v): e.g. compressive's conv weights
   * only reach `reconstructionLoss` after a step sequence (its memories are constants elsewhere).
   * `device` runs on the active backend inside `tf.variableGrads` (prepare its inputs from the
   * case's seed outside, in `prepare`); `reference` is the float64 value for a case's parameters.
   */
  objective?: {
    prepare(attn: Attention<unknown>, c: Case): Promise<{ loss(): tf.Scalar; reference(c: Case): number; dispose(): void }>;
  };
}

/**
 * How the conformance suite exercises one catalog entry. Every catalog entry must have one
 * (test/specs/index.ts); adding an entry to the catalog without a spec fails the suite.
 */
export interface VariantSpec {
  id: string;
  /** Builds the variant under test from a case's config. */
  make(config: Record<string, unknown>): Attention<unknown>;
  /** Random valid cases (small enough for the float64 reference). */
  cases: fc.Arbitrary<Case>;
  /**
   * Cases for the gradient suite's finite differences (tiny sizes), when filtering `cases` by
   * size would not do (test/gradients.test.ts: default `cases` filtered to small shapes).
   */
  gradCases?: fc.Arbitrary<Case>;
  /** Learned parameters (DESIGN.md "Training"): their gradients are checked against finite differences. */
  learned?: LearnedSpec;
  /** DESIGN.md's definition in float64, written independently of the library. */
  reference(q: Host4, k: Host4, v: Host4, c: Case): Host4;
  /**
   * Pattern variants: DESIGN.md's allowed(p, j, h) for the case's config, before causal and
   * keyLength, written independently of the library (patterns.test.ts checks `pattern()` with it).
   */
  allowed?(p: number, j: number, h: number, c: Case): boolean;
  /** Whether the case's variant is causal (then the no-look-ahead property runs). */
  causal(c: Case): boolean;
  /** True for variants that have no causal form at all (e.g. linformer): the no-look-ahead property is skipped. */
  nonCausal?: boolean;
  /**
   * Whether every output row is a convex combination of v rows (weights >= 0 summing to 1, or
   * all 0 for a query with no allowed key): then the weights-are-a-distribution property runs
   * (v = identity). Not the catalog's `exactSoftmax` (linear and performer are convex
   * combinations without being softmax attention).
   */
  convexCombination: boolean;
  /** Memory growth class per path, for the n → 4n property. */
  growth: { kernel: GrowthClass; composite: GrowthClass };
  /** A representative case at length n (m = n) for the memory property. */
  memoryCase(n: number, seed: number): Case;
  /** Configs the factory must reject with AttentionError. */
  badConfigs: fc.Arbitrary<Record<string, unknown>>;
  /** Whether a fused kernel exists (then kernel == composite runs on webgpu). */
  fused: boolean;
  /**
   * The flash strategies its fused path runs (default both): Transformer-XL's relative score
   * modifier runs one row per invocation, and an explicit `'tiled'` is an AttentionError there.
   */
  kernelStrategies?: readonly ('rows' | 'tiled')[];
  /**
   * Whether future keys' *contents* decide which past keys a query attends (routing picks each
   * cluster's keys among all real keys; LSH's shared-QK hashes future queries into the sorted
   * order): then causality promises that no future *value* reaches a past row, and the
   * no-look-ahead and padding properties perturb future values only.
   */
  routesOnKeys?: boolean;
  /**
   * Stateful entries (`initState(batch)`, `step(q, k, v, state) -> { output, state }`): the
   * conformance suite steps several segments from `initState` and compares every output with
   * this float64 simulation of the whole recurrence over the concatenated sequence.
   */
  steps?: {
    /** The case as one segment (m = n and whatever else a segment needs); keyLength null. */
    segment(c: Case): Case;
    /** Outputs of the segments stepped in order from an empty state. */
    reference(segments: { q: Host4; k: Host4; v: Host4 }[], c: Case): Host4[];
  };
}
