/**
 * `local`: sliding-window attention. Query i (at position `p_i = i + m − n`) attends the keys
 * within `window` positions of it: `|p_i − j| <= w` (causal: `p_i − w <= j <= p_i`).
 *
 * Complexity: time O(n·w·d), memory O(n·w) (composite: each group of rows gathers its band of
 * keys, never an n×m matrix; fused kernel: O(n), a query block visits only the key blocks of
 * its band). Causal decode keeps a ring buffer of the last `window` keys and values: O(w) state
 * however long the sequence grows.
 *
 * Paper: Beltagy et al., "Longformer: The Long-Document Transformer", 2020 (sliding window),
 * https://arxiv.org/abs/2004.05150 ; also Parmar et al., "Image Transformer", 2018.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { prepareBlockSparse } from '../../../kernels/flash/sparse_attend.js';
import { add, keyIn, P, param, sub, type ParamValues, type RuleDecl } from '../../../kernels/flash/rule.js';
import { AttentionError, show } from '../../core/errors.js';
import type { DecodeOrigin, Implementation } from '../../core/types.js';
import { checkDecodeOptions, checkInt, checkTensor4D, validateQKV } from '../../core/validate.js';
import { checkOrigin, configFingerprint, decodeOrigin } from '../../core/origin.js';
import { checkPatternConfig, PatternAttention, pow2Clamp, type PatternBaseConfig } from '../pattern.js';
import { meta } from './local.meta.js';

export { meta };

/** Config of {@link localAttention}. */
export interface LocalConfig extends PatternBaseConfig {
  /** Window w: keys with `|p_i − j| <= w` are attended. Integer >= 0. Default 128. */
  window?: number;
}

/** The state of {@link LocalAttention.decode}: a ring buffer of the last `max(window, 1)` keys and values. */
export interface LocalDecodeState {
  /** `[batch, kvHeads, capacity, d]`; slot s holds the latest position x with `x mod capacity == s`. */
  k: tf.Tensor4D;
  /** `[batch, kvHeads, capacity, dv]`. */
  v: tf.Tensor4D;
  /** Positions decoded so far. */
  seen: number;
  /** Which variant (config) and shapes made this state; every step checks it. */
  readonly origin: DecodeOrigin;
}

/** The result of one {@link LocalAttention.decode} step. */
export interface LocalDecodeResult {
  /** `[batch, heads, t, dv]` for the t new positions. */
  output: tf.Tensor4D;
  /** The updated ring buffer (the state passed in has been disposed). */
  state: LocalDecodeState;
}

/** The pattern, stated once: a band of keys `p − w … p + w`. */
export const LOCAL_RULE: RuleDecl = { allow: keyIn(sub(P, param('w')), add(P, param('w'))) };

/** Sliding-window attention; see the module doc. */
export class LocalAttention extends PatternAttention<LocalConfig & { window: number }> {
  protected get rule(): RuleDecl {
    return LOCAL_RULE;
  }

  protected params(): ParamValues {
    return { w: this.config.window };
  }

  protected override block(): number {
    return pow2Clamp(this.config.window, 8, 64);
  }

  /**
   * One incremental decode step (needs `causal: true`): attends the t new queries over the
   * cached window plus the t new keys, and writes the new keys and values into the ring
   * buffer. The state is `[batch, kvHeads, max(window, 1), d]` keys and `[…, dv]` values from the
   * first step on: O(window) memory, flat as the sequence grows.
   *
   * @param q - `[batch, heads, t, d]` queries of the t new positions
   * @param k - `[batch, kvHeads, t, d]`
   * @param v - `[batch, kvHeads, t, dv]`
   * @param state - the previous step's state (consumed: its tensors are disposed), or undefined to
   *   start. It must come from this variant's decode (same config, batch, kvHeads, d, dv: its
   *   `origin` is checked), else AttentionError('state').
   * @param options - `implementation` ('auto' | 'kernel' | 'composite'), checked before anything is dispatched.
   * @example
   * ```ts
   * import * as tf from '@tensorflow/tfjs-core';
   * import { localAttention, type LocalDecodeState } from 'attention-catalog/local';
   * declare const tokens: [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D][]; // q, k, v of each new position: [batch, heads, 1, d]
   * declare function use(output: tf.Tensor4D): void;
   * const attn = localAttention({ window: 128, causal: true });
   * let state: LocalDecodeState | undefined;
   * for (const [q, k, v] of tokens) {
   *   const step = attn.decode(q, k, v, state);
   *   state = step.state;
   *   use(step.output); step.output.dispose();
   * }
   * state?.k.dispose(); state?.v.dispose();
   * ```
   */
  decode(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, state?: LocalDecodeState | null, options?: { implementation?: Implementation }): LocalDecodeResult {
    this.checkLive();
    if (!this.config.causal) throw new AttentionError('config.causal', 'true for decode (incremental decoding is causal)', 'false');
    const implementation = checkDecodeOptions(options);
    const dims = validateQKV(q, k, v);
    if (dims.n !== dims.m) throw new AttentionError('k', `the new positions' keys: length t = ${dims.n} (as q)`, `${dims.m}`);
    const origin = decodeOrigin(this.id, configFingerprint(this.config), dims);
    const cap = Math.max(this.config.window, 1);
    const t = dims.n;
    let seen = 0;
    if (state) {
      checkTensor4D('state.k', state.k);
      checkTensor4D('state.v', state.v);
      seen = checkInt('state.seen', state.seen, 0);
      const [sb, sh, sl, sd] = state.k.shape;
      const [vb, vh, vl, vd] = state.v.shape;
      if (sb !== dims.batch || sh !== dims.kvHeads || sl !== cap || sd !== dims.d || vb !== sb || vh !== sh || vl !== cap || vd !== dims.dv) {
        throw new AttentionError(
          'state',
          `a ring buffer of [${dims.batch}, ${dims.kvHeads}, ${cap}, ${dims.d}] keys and [${dims.batch}, ${dims.kvHeads}, ${cap}, ${dims.dv}] values`,
          `${show(state.k.shape)} keys, ${show(state.v.shape)} values`,
        );
      }
      checkOrigin(state, origin);
    }
    const valid = Math.min(seen, cap);
    const m = valid + t;
    const spec = this.spec(t, m, dims.heads);
    const scale = this.scaleFor(dims.d);
    // Validate first, then compute: the path is resolved and checked before any slice or concat.
    const attend = prepareBlockSparse({ ...dims, m }, { causal: true, scale, keyLength: null }, spec, implementation);
    // Cached positions seen − valid … seen − 1 in order, then the new ones.
    const ordered = (ring: tf.Tensor4D | undefined, fresh: tf.Tensor4D): tf.Tensor4D =>
      tf.tidy(() => {
        if (!ring || valid === 0) return tf.clone(fresh);
        const start = seen % cap;
        const prev = seen < cap ? tf.slice(ring, [0, 0, 0, 0], [-1, -1, seen, -1]) : start === 0 ? ring : tf.concat([tf.slice(ring, [0, 0, start, 0], [-1, -1, cap - start, -1]), tf.slice(ring, [0, 0, 0, 0], [-1, -1, start, -1])], 2);
        return tf.concat([prev, fresh], 2);
      });
    // The ring after writing positions seen … seen + t − 1, from the last min(cap, m) of `all`.
    const nextRing = (all: tf.Tensor4D): tf.Tensor4D =>
      tf.tidy(() => {
        const newSeen = seen + t;
        const L = Math.min(cap, m);
        const last = tf.slice(all, [0, 0, m - L, 0], [-1, -1, L, -1]);
        if (newSeen <= cap) return L === cap ? last : tf.pad(last, [[0, 0], [0, 0], [0, cap - L], [0, 0]]);
        const r = newSeen % cap;
        if (r === 0) return last;
        return tf.concat([tf.slice(last, [0, 0, cap - r, 0], [-1, -1, r, -1]), tf.slice(last, [0, 0, 0, 0], [-1, -1, cap - r, -1])], 2);
      });
    const allK = ordered(state?.k, k);
    const allV = ordered(state?.v, v);
    try {
      const output = attend(q, allK, allV);
      const next = { k: nextRing(allK), v: nextRing(allV), seen: seen + t, origin };
      if (state) {
        state.k.dispose();
        state.v.dispose();
      }
      return { output, state: next };
    } finally {
      allK.dispose();
      allV.dispose();
    }
  }
}

/**
 * Builds sliding-window attention.
 *
 * @param config - `window` (default 128), `causal` (default false), `scale` (default 1/sqrt(d)).
 * @throws AttentionError for a bad config (e.g. a negative or fractional window).
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import { localAttention } from 'attention-catalog/local';
 * const q = tf.randomNormal([1, 8, 8192, 64]) as tf.Tensor4D;
 * const attn = localAttention({ window: 128, causal: true });
 * const out = attn.apply(q, q, q);          // [1, 8, 8192, 64], O(n·w) work
 * attn.pattern(6).rows[5];                  // [0, 1, 2, 3, 4, 5] (window 128 covers all)
 * ```
 */
export function localAttention(config: LocalConfig = {}): LocalAttention {
  const base = checkPatternConfig(meta.id, config, ['window']);
  const window = config.window === undefined ? 128 : checkInt('config.window', config.window, 0);
  return new LocalAttention(meta.id, meta.family, Object.freeze({ ...base, window }), meta.complexity);
}
