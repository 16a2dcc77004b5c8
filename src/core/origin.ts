/**
 * Decode states know where they come from. Every `decode` step stamps the state it returns with
 * a {@link DecodeOrigin} (the variant's id, a fingerprint of its config including the identity
 * of explicit parameters such as performer's `omega` and its seed, and the batch, kvHeads, d and
 * dv of the call), and checks the origin of the state it is given against its own: a state made
 * by another variant, another config or seed, or for other shapes throws `AttentionError('state', …)`.
 *
 * @module
 */
import { AttentionError, show } from './errors.js';
import type { DecodeOrigin, Dims } from './types.js';

let serial = 0;

/** A process-unique identity for an explicit parameter a variant copied (two copies are never "the same features"). */
export function nextIdentity(): number {
  return ++serial;
}

/** JSON with object keys sorted: the same config always gives the same string. */
function stable(x: unknown): string {
  if (Array.isArray(x)) return `[${x.map(stable).join(',')}]`;
  if (x !== null && typeof x === 'object') {
    return `{${Object.keys(x)
      .sort()
      .filter((k) => (x as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${stable((x as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(x) ?? 'undefined';
}

/** A fingerprint of a variant's resolved config (plus `extra`: identities of explicit parameters). */
export function configFingerprint(config: object, extra: Record<string, unknown> = {}): string {
  return stable({ ...config, ...extra });
}

/** The origin a decode step of variant `variant` with this config fingerprint stamps for `dims`. */
export function decodeOrigin(variant: string, config: string, dims: Dims): DecodeOrigin {
  return Object.freeze({ variant, config, batch: dims.batch, kvHeads: dims.kvHeads, d: dims.d, dv: dims.dv });
}

/**
 * Checks that `state.origin` is `want` (the origin this step would stamp).
 * @throws AttentionError('state', …) for a state with no origin, or one from another variant,
 * config (seed, explicit parameters) or batch, kvHeads, d or dv.
 */
export function checkOrigin(state: { origin?: unknown }, want: DecodeOrigin): void {
  const got = state.origin as Partial<DecodeOrigin> | undefined;
  if (got === null || typeof got !== 'object') {
    throw new AttentionError('state', `a state returned by a '${want.variant}' decode step (it carries its origin)`, `a state with origin ${show(got)}`);
  }
  if (got.variant !== want.variant) {
    throw new AttentionError('state', `a '${want.variant}' decode state`, `a state made by ${show(got.variant)}`);
  }
  if (got.config !== want.config) {
    throw new AttentionError(
      'state',
      `a state made by a '${want.variant}' variant with config ${want.config}`,
      `one made with config ${show(got.config)}`,
      'A decode state belongs to the variant configuration (seed, explicit parameters) that made it.',
    );
  }
  for (const key of ['batch', 'kvHeads', 'd', 'dv'] as const) {
    if (got[key] !== want[key]) {
      throw new AttentionError('state', `a state for ${key} = ${want[key]} (as this step's inputs)`, `one made for ${key} = ${show(got[key])}`);
    }
  }
}
