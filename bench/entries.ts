/**
 * How the tour and the bench run each catalog entry: its config on the sample problem, its
 * kv head count, and the float64 reference its error is measured against (its own allowed set
 * for exact variants, full dense attention for approximations). Every catalog entry needs one.
 */
import type { Attention } from '../src/core/types.js';

export interface TourEntry {
  /** Config for the sample problem of length n. */
  config(n: number): Record<string, unknown>;
  /** kv heads for `heads` query heads. */
  kvHeads?(heads: number): number;
  /** Reference weight: 1 allowed, 0 not (soft weights for adaptive span). Default: `pattern()` rows or all keys. */
  weight?(attn: Attention<unknown>, n: number, m: number): (h: number, i: number, j: number) => number;
  /** 'exact': error vs its own definition; 'approx': error vs full dense. */
  kind: 'exact' | 'approx';
}

const causalWeight = (causal: boolean, n: number, m: number) => (_h: number, i: number, j: number) =>
  causal && j > i + (m - n) ? 0 : 1;

export const tourEntries: Record<string, TourEntry> = {
  dense: { config: () => ({ causal: true }), weight: (_a, n, m) => causalWeight(true, n, m), kind: 'exact' },
  'multi-query': { config: () => ({ causal: true }), kvHeads: () => 1, weight: (_a, n, m) => causalWeight(true, n, m), kind: 'exact' },
};

/** Reference weight from a variant's `pattern()` (rows of allowed keys), for pattern variants. */
export function patternWeight(attn: Attention<unknown>, n: number, m: number) {
  const p = attn.pattern!(n, m);
  const sets = p.rows.map((r) => new Set(r));
  return (_h: number, i: number, j: number) => (sets[i].has(j) ? 1 : 0);
}
