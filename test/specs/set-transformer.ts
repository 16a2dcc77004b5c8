import fc from 'fast-check';
import { setTransformerAttention, setTransformerInducing } from '../../src/variants/side-memory/set-transformer.js';
import { referenceDense, referenceWeighted, type Host4 } from '../reference.js';
import { divisors } from './dense.js';
import type { Case, VariantSpec } from './types.js';

/** Seeded values uniform in [-amp, amp] (xorshift; host only). */
function hostUniform(count: number, seed: number, amp: number): Float64Array {
  let x = seed >>> 0 || 1;
  return Float64Array.from({ length: count }, () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return ((x / 4294967296) * 2 - 1) * amp;
  });
}

/** Explicit inducing points `[heads][mi][d]`, uniform in [-1, 1]. */
export function explicitInducing(heads: number, mi: number, d: number, seed: number): number[][][] {
  const vals = hostUniform(heads * mi * d, seed, 1);
  return Array.from({ length: heads }, (_, h) => Array.from({ length: mi }, (_, r) => Array.from(vals.subarray((h * mi + r) * d, (h * mi + r + 1) * d))));
}

/** I `[heads][mi][d]` of a case's variant: explicit, or the seeded generator's. */
export function inducingOf(c: Case): number[][][] {
  const given = c.config.inducing as number[][][] | undefined;
  if (given) return given;
  const heads = c.config.heads as number;
  const d = c.config.headDim as number;
  const mi = (c.config.inducingPoints as number | undefined) ?? 32;
  const host = setTransformerInducing(heads, mi, d, (c.config.seed as number | undefined) ?? 0x5eed);
  return Array.from({ length: heads }, (_, h) => Array.from({ length: mi }, (_, r) => Array.from(host.subarray((h * mi + r) * d, (h * mi + r + 1) * d))));
}

/**
 * DESIGN.md `set-transformer`, in float64, from the definition: per query head h,
 * H_h = attn(I_h, k, v) over the real keys (j < keyLength[b]) of h's kv head (zeros where a batch
 * element has none), then o = attn(q_h, H_h, H_h) over all mi rows.
 */
export function referenceSetTransformer(q: Host4, k: Host4, v: Host4, c: Case): Host4 {
  const [B, H, , d] = q.shape;
  const I = inducingOf(c);
  const mi = I[0].length;
  const scale = (c.config.scale as number | undefined) ?? 1 / Math.sqrt(d);
  // The inducing points as queries [B, H, mi, d] (the same for every batch element).
  const pts = new Float64Array(B * H * mi * d);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let r = 0; r < mi; r++) for (let t = 0; t < d; t++) pts[((b * H + h) * mi + r) * d + t] = I[h][r][t];
  const induced = referenceWeighted({ shape: [B, H, mi, d], data: pts }, k, v, scale, (b, _h, _i, j) => (c.keyLength && j >= c.keyLength[b] ? 0 : 1));
  return referenceDense(q, induced, induced, { causal: false, scale });
}

/**
 * Random cases: grouped heads (kvHeads dividing heads), n != m, odd head dims, key lengths
 * (0 included), dv = d, explicit inducing points in a third of them, a scale now and then; every
 * case trainable (the coverage test reads `inducing` as a trainable variable).
 */
export const setTransformerCases: fc.Arbitrary<Case> = fc
  .record({
    batch: fc.integer({ min: 1, max: 2 }),
    heads: fc.constantFrom(1, 2, 4),
    n: fc.integer({ min: 1, max: 40 }),
    m: fc.integer({ min: 1, max: 60 }),
    d: fc.oneof(fc.constantFrom(4, 8, 16), fc.integer({ min: 1, max: 20 })),
    mi: fc.oneof(fc.constantFrom(1, 4, 16), fc.integer({ min: 1, max: 24 })),
    useLength: fc.boolean(),
    scale: fc.option(fc.constantFrom(0.3, 0.5), { nil: undefined }),
    seed: fc.integer({ min: 1, max: 1e9 }),
  })
  .chain((r) =>
    fc
      .record({
        kvHeads: divisors(r.heads),
        keyLength: r.useLength ? fc.array(fc.integer({ min: 0, max: r.m }), { minLength: r.batch, maxLength: r.batch }) : fc.constant(null),
      })
      .map((x) => {
        const config: Record<string, unknown> = { trainable: true };
        if (r.seed % 3 === 0) config.inducing = explicitInducing(r.heads, r.mi, r.d, r.seed);
        else Object.assign(config, { inducingPoints: r.mi, heads: r.heads, headDim: r.d, seed: r.seed % 1000 });
        if (r.scale !== undefined) config.scale = r.scale;
        const c: Case = { config, batch: r.batch, heads: r.heads, kvHeads: x.kvHeads, n: r.n, m: r.m, d: r.d, dv: r.d, keyLength: x.keyLength, seed: r.seed };
        return c;
      }),
  );

/**
 * The memory property's case: mi = 32 fixed, so that every term grows linearly with n = m:
 * the composite's [.., mi, m] and [.., n, mi] scores; on the fused path, the head-dim padding
 * copies (d = 6 pads to 8) of q, k, v and the output, next to the O(mi·d) induced rows and the
 * first call's O(mi) split partials, which do not grow with n.
 */
export function setTransformerMemoryCase(n: number, seed: number): Case {
  return { config: { inducingPoints: 32, heads: 2, headDim: 6, seed: seed % 1000 }, batch: 1, heads: 2, kvHeads: 1, n, m: n, d: 6, dv: 6, keyLength: null, seed };
}

/** DESIGN.md `set-transformer`. */
export const setTransformerSpec: VariantSpec = {
  id: 'set-transformer',
  make: (config) => setTransformerAttention(config as never),
  cases: setTransformerCases,
  reference: referenceSetTransformer,
  causal: () => false,
  nonCausal: true,
  // Outputs are convex combinations of the induced rows, not of v's rows (weights of v do sum to
  // 1 over the real keys, but the identity-v trick needs dv = m, and dv must equal d here).
  convexCombination: false,
  growth: { kernel: 'linear', composite: 'linear' },
  memoryCase: setTransformerMemoryCase,
  badConfigs: fc.oneof(
    fc.record({ heads: fc.constant(2), headDim: fc.constant(4), causal: fc.constant(true) }),
    fc.record({ heads: fc.constant(2), headDim: fc.constant(4), inducingPoints: fc.constantFrom(0, -1, 1.5, '4', null) }),
    fc.record({ headDim: fc.constant(4) }), // seeded: heads required
    fc.record({ heads: fc.constant(2) }), // seeded: headDim required
    fc.record({ heads: fc.constant(2), headDim: fc.constant(5) }), // d = 4: throws at apply
    fc.record({ heads: fc.constant(3), headDim: fc.constant(5), inducingPoints: fc.constant(2) }), // d = 4: throws at apply
    fc.record({ heads: fc.constant(2), headDim: fc.constant(4), trainable: fc.constantFrom('yes', 1) }),
    fc.record({ heads: fc.constant(2), headDim: fc.constant(4), scale: fc.constantFrom(0, -1, Number.NaN, Infinity) }),
    fc.record({ heads: fc.constant(2), headDim: fc.constant(4), seed: fc.constantFrom(-1, 1.5, 'x') }),
    fc.record({ inducing: fc.constant(explicitInducing(3, 2, 4, 7)) }), // 3 heads vs q's 2: throws at apply
    fc.record({ inducing: fc.constant(explicitInducing(2, 2, 5, 7)) }), // d = 5 vs 4: throws at apply
    fc.record({ inducing: fc.constant(explicitInducing(2, 2, 4, 7)), seed: fc.constant(1) }),
    fc.record({ inducing: fc.constant(explicitInducing(2, 2, 4, 7)), inducingPoints: fc.constant(3) }),
    fc.record({ inducing: fc.constant(explicitInducing(2, 2, 4, 7)), heads: fc.constant(4) }),
    fc.record({ inducing: fc.constant(explicitInducing(2, 2, 4, 7)), headDim: fc.constant(8) }),
    fc.record({ inducing: fc.constantFrom([[[1, 2, 3, 4]], [[1, 2, 3]]], [[[1, 2, 3, 4]], [[1, 2, 3, Number.NaN]]], [[1, 2, 3, 4]], [], 'I') }),
    fc.record({ heads: fc.constant(2), headDim: fc.constant(4), window: fc.integer() }),
  ),
  fused: true,
  learned: {
    params: (c) => {
      const I = inducingOf(c);
      return [{ name: 'inducing', shape: [I.length, I[0].length, I[0][0].length], data: Float64Array.from(I.flat(2)) }];
    },
    withParams: (c, [x]) => {
      const I = inducingOf(c);
      const [H, mi, d] = [I.length, I[0].length, I[0][0].length];
      const inducing = Array.from({ length: H }, (_, h) => Array.from({ length: mi }, (_, r) => Array.from(x.subarray((h * mi + r) * d, (h * mi + r + 1) * d))));
      return { ...c, config: { ...c.config, inducing } };
    },
  },
};
