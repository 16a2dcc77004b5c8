/**
 * `multi-query`: dense attention over shared K/V heads. Multi-query attention (Shazeer, 2019)
 * has one kv head for all query heads; grouped-query attention (Ainslie et al., 2023) has
 * `groups` kv heads, query head h reading kv head `floor(h / (heads / groups))`. Neither
 * repeats K/V: the fused kernel indexes the shared head, the composite reshapes the queries.
 * The decode cache is `[batch, kvHeads, m, d]`: O(m·kvHeads·d), a `heads / kvHeads` saving.
 *
 * ```text
 *   query heads  0 1 2 3 | 4 5 6 7      (heads = 8, groups = 2)
 *   kv head          0   |    1
 * ```
 *
 * Papers: "Fast Transformer Decoding: One Write-Head is All You Need", 2019,
 * https://arxiv.org/abs/1911.02150 ; "GQA: Training Generalized Multi-Query Transformer
 * Models from Multi-Head Checkpoints", 2023, https://arxiv.org/abs/2305.13245 .
 *
 * @module
 */
import { AttentionError } from '../../core/errors.js';
import type { Dims } from '../../core/types.js';
import { checkInt } from '../../core/validate.js';
import { checkBaseConfig } from '../../core/validate.js';
import { DenseAttention, type DenseConfig } from '../dense-base.js';
import { meta } from './multi-query.meta.js';

export { meta };

/** Config of {@link multiQueryAttention}. */
export type MultiQueryConfig = DenseConfig;

/** Config of {@link groupedQueryAttention}. */
export interface GroupedQueryConfig extends DenseConfig {
  /** Number of kv heads (= `kvHeads` of k and v). Required; must divide `heads`. */
  groups: number;
}

class SharedKVAttention<C extends DenseConfig> extends DenseAttention<C> {
  constructor(
    config: Readonly<C & { causal: boolean }>,
    private readonly kvHeadsRequired: number,
  ) {
    super(meta.id, meta.family, config, meta.complexity);
  }

  protected override checkHeads(dims: Dims): void {
    if (dims.kvHeads !== this.kvHeadsRequired) {
      const what = this.kvHeadsRequired === 1 ? 'kvHeads = 1 (multi-query: one shared K/V head)' : `kvHeads = groups = ${this.kvHeadsRequired}`;
      throw new AttentionError('k', what, `kvHeads = ${dims.kvHeads}`);
    }
  }
}

/**
 * Multi-query attention: every query head reads the one K/V head.
 *
 * @param config - `causal` (default false), `scale` (default 1/sqrt(d)).
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import { multiQueryAttention } from 'attention-catalog/multi-query';
 * const q = tf.randomNormal([1, 8, 256, 64]) as tf.Tensor4D;
 * const kv = tf.randomNormal([1, 1, 256, 64]) as tf.Tensor4D;
 * const out = multiQueryAttention({ causal: true }).apply(q, kv, kv); // [1, 8, 256, 64]
 * ```
 */
export function multiQueryAttention(config: MultiQueryConfig = {}): DenseAttention<MultiQueryConfig> {
  const checked = checkBaseConfig(meta.id, config);
  return new SharedKVAttention<MultiQueryConfig>(Object.freeze({ ...checked }), 1);
}

/**
 * Grouped-query attention: `groups` K/V heads, each shared by `heads / groups` query heads.
 *
 * @param config - `groups` (required, = kvHeads), `causal` (default false), `scale` (default 1/sqrt(d)).
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import { groupedQueryAttention } from 'attention-catalog/multi-query';
 * const q = tf.randomNormal([1, 8, 256, 64]) as tf.Tensor4D;
 * const kv = tf.randomNormal([1, 2, 256, 64]) as tf.Tensor4D;
 * const out = groupedQueryAttention({ groups: 2 }).apply(q, kv, kv); // [1, 8, 256, 64]
 * ```
 */
export function groupedQueryAttention(config: GroupedQueryConfig): DenseAttention<GroupedQueryConfig> {
  const checked = checkBaseConfig(meta.id, config ?? ({} as GroupedQueryConfig), ['groups']);
  const groups = checkInt('config.groups', config.groups, 1);
  return new SharedKVAttention<GroupedQueryConfig>(Object.freeze({ ...checked, groups }), groups);
}
