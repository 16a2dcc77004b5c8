/**
 * `performer`: FAVOR+ (Choromanski et al., "Rethinking Attention with Performers"): softmax
 * attention approximated by linear attention over M positive random features.
 *
 * ```text
 * x' = x · d^(−1/4)                       (more generally x·√s, s = config.scale ?? 1/√d)
 * softmax kernel: φ(x) = exp(x'·ω − ‖x'‖²/2) / √M       relu kernel: φ(x) = relu(x'·ω) / √M
 * o_i = φ(q_i)·Σ_j φ(k_j) v_jᵀ / φ(q_i)·Σ_j φ(k_j)       over allowed j, as `linear`
 * ```
 *
 * ω (`omega`, `[d, M]`) holds the random features: by default orthogonal random features drawn
 * from the catalog's seeded generator (blocks of d orthonormal directions from Gram–Schmidt on
 * Gaussian matrices, each scaled by the norm of a fresh Gaussian vector, as in the paper), or
 * i.i.d. Gaussian with `orthogonal: false`, or given explicitly. `redraw(seed)` draws new ones
 * (training redraws them periodically).
 *
 * Numerical stability: the softmax kernel is never evaluated as a raw exp. Keys are kept as
 * exponents and summed at a per-feature scale exp(−R_f), R_f the largest exponent among the keys
 * summed (a constant shared by every key a query sees, so it cancels exactly, for every query
 * head of a kv-head group and with padding keys never part of it); each query row subtracts a
 * bound built only from the keys it may see. No term exceeds 1, so |q|, |k| up to 10 at d = 64
 * (exponents in the hundreds) neither overflow nor produce NaN, and the function is unchanged.
 * The constant 1/√M cancels and is not applied.
 *
 * Runs on the same fused kernel as `linear` on webgpu (one pass projects the keys onto ω);
 * elsewhere the composite. Memory O(n·M + M·dv); causal instances decode incrementally with an
 * O(M·dv) state.
 *
 * Paper: Choromanski et al., "Rethinking Attention with Performers", 2020,
 * https://arxiv.org/abs/2009.14794 .
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { AttentionError, show } from '../../core/errors.js';
import { nextIdentity } from '../../core/origin.js';
import { DEFAULT_SEED, SeededRandom } from '../../core/rng.js';
import type { Complexity } from '../../core/types.js';
import { checkBool, checkConfigKeys, checkInt, checkMatrix, checkScale, ownMatrix } from '../../core/validate.js';
import type { FeatureKind } from '../../../kernels/linear/feature_maps.js';
import { KernelizedAttention, type FeatureSetup } from '../kernelized-base.js';
import { meta } from './performer.meta.js';

export { meta };

export type { KernelizedDecodeState, KernelizedDecodeResult } from '../kernelized-base.js';

/** Config of {@link performerAttention}. */
export interface PerformerConfig {
  /** Number of random features M. Default 256 (or omega's second dimension). */
  features?: number;
  /** `'softmax'` (default: FAVOR+ positive features) or `'relu'`. */
  kernel?: 'softmax' | 'relu';
  /** Orthogonal random features (default true) or i.i.d. Gaussian. */
  orthogonal?: boolean;
  /** Seed of the random features. Default: the catalog's fixed seed. */
  seed?: number;
  /** Explicit random features `[d, M]` (a `tf.Tensor2D` or nested number array), instead of `seed`. */
  omega?: tf.Tensor2D | number[][];
  /** Key j is allowed only if `j <= i + (m − n)`. Default `false`. */
  causal?: boolean;
  /** The softmax scale s being approximated: x' = x·√s. Default `1/√d` (x' = x·d^(−1/4)). */
  scale?: number;
}

/** The resolved config (`omega` says whether explicit features are in use). */
export interface ResolvedPerformerConfig {
  features: number;
  kernel: 'softmax' | 'relu';
  orthogonal: boolean;
  seed: number;
  causal: boolean;
  scale?: number;
  /** `'explicit'` when ω was given (see {@link PerformerAttention.omegaFor}), else `'seeded'`. */
  omega: 'explicit' | 'seeded';
}

const MAX_FEATURES = 8192;

/**
 * `[d, M]` random features from the seeded generator, row-major (`out[t·M + f]` = ω_f[t]).
 * Orthogonal: for each block of d features, d Gaussian vectors orthonormalized by (twice
 * repeated) Gram–Schmidt; the last block keeps its first M mod d directions; then feature f is
 * scaled by the norm of a fresh Gaussian d-vector. Otherwise i.i.d. N(0, 1).
 */
export function randomFeatures(d: number, M: number, seed: number, orthogonal: boolean): Float32Array {
  const rng = new SeededRandom(seed);
  const out = new Float32Array(d * M);
  if (!orthogonal) {
    for (let f = 0; f < M; f++) for (let t = 0; t < d; t++) out[t * M + f] = rng.normal();
    return out;
  }
  const dirs: Float64Array[] = [];
  while (dirs.length < M) {
    const block: Float64Array[] = [];
    while (block.length < d) {
      const g = Float64Array.from({ length: d }, () => rng.normal());
      for (let pass = 0; pass < 2; pass++)
        for (const u of block) {
          let dot = 0;
          for (let t = 0; t < d; t++) dot += g[t] * u[t];
          for (let t = 0; t < d; t++) g[t] -= dot * u[t];
        }
      const norm = Math.hypot(...g);
      if (norm < 1e-6) continue; // (measure zero) draw again
      block.push(g.map((x) => x / norm));
    }
    dirs.push(...block.slice(0, M - dirs.length));
  }
  for (let f = 0; f < M; f++) {
    let sq = 0;
    for (let t = 0; t < d; t++) sq += rng.normal() ** 2;
    const scale = Math.sqrt(sq);
    for (let t = 0; t < d; t++) out[t * M + f] = dirs[f][t] * scale;
  }
  return out;
}

/** FAVOR+ attention; see the module comment. */
export class PerformerAttention extends KernelizedAttention<ResolvedPerformerConfig> {
  readonly id = meta.id;
  readonly family = meta.family;
  readonly complexity: Complexity = meta.complexity;
  private cfg: Readonly<ResolvedPerformerConfig>;
  private explicit: tf.Tensor2D | null;
  /** Identity of the explicit ω (part of decode states' fingerprint: other features, other states). */
  private readonly explicitId: number;
  private readonly cache = new Map<number, Float32Array>();

  constructor(cfg: ResolvedPerformerConfig, explicit: tf.Tensor2D | null) {
    super();
    this.cfg = Object.freeze(cfg);
    this.explicit = explicit;
    this.explicitId = explicit ? nextIdentity() : 0;
  }

  protected override parameterIdentity(): Record<string, unknown> {
    return this.explicit ? { omegaIdentity: this.explicitId } : {};
  }

  get config(): Readonly<ResolvedPerformerConfig> {
    return this.cfg;
  }

  private checkD(d: number): void {
    if (this.explicit && this.explicit.shape[0] !== d) {
      throw new AttentionError('config.omega', `shape [d, M] with d = ${d} (the head dim of q and k)`, `shape ${show(this.explicit.shape)}`);
    }
  }

  private kind(): FeatureKind {
    return this.cfg.kernel === 'softmax' ? 'favor-softmax' : 'favor-relu';
  }

  protected featureShape(d: number) {
    this.checkD(d);
    return { kind: this.kind(), features: this.cfg.features };
  }

  protected override uploadBytes(d: number): number {
    return this.explicit ? 0 : d * this.cfg.features * 4;
  }

  protected setup(d: number): FeatureSetup {
    this.checkD(d);
    const xscale = Math.sqrt(this.cfg.scale ?? 1 / Math.sqrt(d));
    if (this.explicit) return { kind: this.kind(), features: this.cfg.features, omega: this.explicit, ownsOmega: false, xscale };
    return { kind: this.kind(), features: this.cfg.features, omega: tf.tensor2d(this.hostOmega(d), [d, this.cfg.features]), ownsOmega: true, xscale };
  }

  private hostOmega(d: number): Float32Array {
    let w = this.cache.get(d);
    if (!w) {
      w = randomFeatures(d, this.cfg.features, this.cfg.seed, this.cfg.orthogonal);
      this.cache.set(d, w);
    }
    return w;
  }

  /**
   * The random features used for head dim `d`: `[d, M]`, a new tensor the caller owns.
   * @throws AttentionError when explicit features of another d were given.
   */
  omegaFor(d: number): tf.Tensor2D {
    this.checkLive();
    checkInt('d', d, 1);
    this.checkD(d);
    return this.explicit ? (tf.clone(this.explicit) as tf.Tensor2D) : tf.tensor2d(this.hostOmega(d), [d, this.cfg.features]);
  }

  /**
   * Draws new random features from `seed` (the training-time redraw). Explicit features, if
   * any, are released and replaced by seeded ones.
   */
  redraw(seed: number): void {
    this.checkLive();
    checkInt('seed', seed, 0);
    this.explicit?.dispose();
    this.explicit = null;
    this.cache.clear();
    this.cfg = Object.freeze({ ...this.cfg, seed, omega: 'seeded' as const });
  }

  /** Frees the explicit features, if any (once, at the first `dispose()`). */
  protected override release(): void {
    this.explicit?.dispose();
    this.explicit = null;
  }
}

/**
 * Builds FAVOR+ attention.
 *
 * @param config - `features` M (256), `kernel` ('softmax' | 'relu'), `orthogonal` (true),
 * `seed` or `omega` `[d, M]`, `causal` (false), `scale` (1/√d).
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import { performerAttention } from 'attention-catalog/performer';
 * const q = tf.randomNormal([1, 8, 4096, 64]) as tf.Tensor4D;
 * const attn = performerAttention({ features: 256, causal: true, seed: 1 });
 * const out = attn.apply(q, q, q); // ≈ softmax attention, O(n·M) memory
 * attn.redraw(2);                  // new random features
 * ```
 */
export function performerAttention(config: PerformerConfig = {}): PerformerAttention {
  if (typeof config !== 'object' || config === null) throw new AttentionError('config', 'an object', show(config));
  checkConfigKeys(meta.id, config, ['features', 'kernel', 'orthogonal', 'seed', 'omega', 'causal', 'scale']);
  const kernel = config.kernel === undefined ? 'softmax' : config.kernel;
  if (kernel !== 'softmax' && kernel !== 'relu') throw new AttentionError('config.kernel', "'softmax' or 'relu'", show(kernel));
  const orthogonal = config.orthogonal === undefined ? true : checkBool('config.orthogonal', config.orthogonal);
  const causal = config.causal === undefined ? false : checkBool('config.causal', config.causal);
  const scale = checkScale(config.scale);
  if (config.seed !== undefined && config.omega !== undefined) {
    throw new AttentionError('config.omega', 'either seed or omega, not both', 'both');
  }
  const seed = config.seed === undefined ? DEFAULT_SEED : checkInt('config.seed', config.seed, 0);
  const featuresGiven = config.features === undefined ? undefined : checkInt('config.features', config.features, 1, MAX_FEATURES);
  const omega = config.omega === undefined ? null : checkMatrix('config.omega', config.omega, '[d, M]');
  if (omega && featuresGiven !== undefined && featuresGiven !== omega.shape[1]) {
    throw new AttentionError('config.features', `omega's second dimension ${omega.shape[1]}`, `${featuresGiven}`);
  }
  if (omega && omega.shape[1] > MAX_FEATURES) throw new AttentionError('config.omega', `at most ${MAX_FEATURES} features`, `shape ${show(omega.shape)}`);
  // Everything is checked: only now is the explicit omega copied (the one dispatch).
  const explicit = omega ? ownMatrix(omega) : null;
  const features = explicit ? explicit.shape[1] : (featuresGiven ?? 256);
  const cfg: ResolvedPerformerConfig = { features, kernel, orthogonal, seed, causal, omega: explicit ? 'explicit' : 'seeded' };
  if (scale !== undefined) cfg.scale = scale;
  return new PerformerAttention(cfg, explicit);
}
