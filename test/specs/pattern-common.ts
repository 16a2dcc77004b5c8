/**
 * Shared pieces of the pattern variants' specs: random cases (n <= m, grouped heads, odd head
 * dims, key lengths, causal) and a float64 reference from an allowed(p, j, h) predicate that
 * each spec writes from DESIGN.md's table — independently of the library's code.
 */
import fc from 'fast-check';
import { referenceWeighted, type Host4 } from '../reference.js';
import type { Case } from './types.js';

/** What a spec generates: its config and the lengths (and, for per-head configs, the head count). */
export interface PatternDraw {
  config: Record<string, unknown>;
  n: number;
  m: number;
  heads?: number;
}

/** Lengths n in [1, maxN], m in [n, n + extra]. */
export const lengths = (maxN = 40, extra = 40) =>
  fc.integer({ min: 1, max: maxN }).chain((n) => fc.record({ n: fc.constant(n), m: fc.integer({ min: n, max: n + extra }) }));

/** Optional causal and scale fields. */
export const baseFields = { causal: fc.boolean(), scale: fc.oneof(fc.constant(undefined), fc.constantFrom(0.3, 0.5)) };

/** Drops undefined fields (the configs reject nothing for them, but keep cases readable). */
export const clean = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

/** Full random cases from a draw of config and lengths. */
export function patternCases(draw: fc.Arbitrary<PatternDraw>): fc.Arbitrary<Case> {
  return draw.chain((dr) =>
    fc
      .record({
        batch: fc.integer({ min: 1, max: 2 }),
        heads: dr.heads === undefined ? fc.constantFrom(1, 2, 4) : fc.constant(dr.heads),
        d: fc.oneof(fc.constantFrom(4, 8, 16), fc.integer({ min: 1, max: 20 })),
        dv: fc.oneof(fc.constantFrom(4, 8), fc.integer({ min: 1, max: 12 })),
        useLength: fc.boolean(),
        seed: fc.integer({ min: 1, max: 1e9 }),
      })
      .chain((r) =>
        fc
          .record({
            kvHeads: fc.constantFrom(...[1, 2, 4].filter((x) => r.heads % x === 0)),
            keyLength: r.useLength ? fc.array(fc.integer({ min: 0, max: dr.m }), { minLength: r.batch, maxLength: r.batch }) : fc.constant(null),
          })
          .map((x): Case => ({
            config: clean(dr.config),
            batch: r.batch,
            heads: r.heads,
            kvHeads: x.kvHeads,
            n: dr.n,
            m: dr.m,
            d: r.d,
            dv: r.dv,
            keyLength: x.keyLength,
            seed: r.seed,
          })),
      ),
  );
}

/** DESIGN.md's allowed set of a pattern for a case's config (before causal and keyLength). */
export type Allowed = (p: number, j: number, h: number, c: Case) => boolean;

/** Non-negative remainder. */
export const mod = (a: number, t: number) => ((a % t) + t) % t;

/**
 * The float64 reference of a pattern: softmax over the keys j with allowed(p_i, j, h), below
 * keyLength[b], and j <= p_i when causal (p_i = i + m − n).
 */
export function patternReference(allowed: Allowed) {
  return (q: Host4, k: Host4, v: Host4, c: Case): Host4 => {
    const scale = (c.config.scale as number | undefined) ?? 1 / Math.sqrt(c.d);
    return referenceWeighted(q, k, v, scale, (b, h, i, j) => {
      const p = i + c.m - c.n;
      if (c.keyLength && j >= c.keyLength[b]) return 0;
      if (c.config.causal && j > p) return 0;
      return allowed(p, j, h, c) ? 1 : 0;
    });
  };
}

/** The usual memory case: one batch, 2 heads over 2 kv heads (or 1; or 1 head over 1), d = dv = 16. */
export const memoryShape = (n: number, seed: number, config: Record<string, unknown>, kvHeads = 2, heads = 2): Case => ({
  config, batch: 1, heads, kvHeads, n, m: n, d: 16, dv: 16, keyLength: null, seed,
});

/** 2^round(log2(n) / 2): about sqrt(n), a power of two. */
export const sqrtPow2 = (n: number) => 2 ** Math.round(Math.log2(n) / 2);

/** Bad values for an integer field with a minimum. */
export const badInts = (min: number) => fc.constantFrom(min - 1, min + 0.5, -3, Number.NaN, '4', null, Infinity);
