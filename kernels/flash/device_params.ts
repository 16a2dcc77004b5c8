/**
 * Rule parameters that live on the device. A rule's params buffer (see `rule.ts`, {@link bindRule})
 * is laid out on the host; a data-dependent pattern (LSH bucket ids, routing positions, key
 * lengths given as a tensor) computes some of its tables or head arrays on the device, where
 * webgpu cannot read them back inside `apply`. The rule is bound on the host with placeholders
 * of the right length (zeros), and {@link deviceParams} splices the device values into the
 * buffer with one `concat`, so nothing is read back and one pipeline serves every call.
 *
 * Tables are read by the kernel as `i32(params[base + x])`: integer values must stay below
 * 2^24 in magnitude to be exact in float32 (a bucket id, a position, a head·length offset).
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import type { BoundRule } from './rule.js';

/** Where a table's values sit in a bound rule's params buffer. */
export function tableSlot(bound: BoundRule, name: string): { offset: number; length: number } {
  const s = bound.compiled.schema;
  const k = s.tables.indexOf(name);
  if (k < 0) throw new Error(`internal: the rule has no table '${name}'`);
  const offset = bound.params[s.scalars.length + k];
  const end = bound.params[s.scalars.length + k + 1];
  return { offset, length: end - offset };
}

/** Where a head parameter's `heads` values sit in a bound rule's params buffer. */
export function headSlot(bound: BoundRule, name: string): { offset: number; length: number } {
  const s = bound.compiled.schema;
  const k = s.heads.indexOf(name);
  if (k < 0) throw new Error(`internal: the rule has no head parameter '${name}'`);
  return { offset: s.scalars.length + s.tables.length + 1 + k * bound.heads, length: bound.heads };
}

/**
 * The bound rule's params buffer as a float32 tensor, with the named tables and head parameters
 * replaced by device tensors (any dtype, any shape: flattened, and of exactly the slot's length).
 * The caller owns the result.
 */
export function deviceParams(bound: BoundRule, device: { tables?: Record<string, tf.Tensor>; heads?: Record<string, tf.Tensor> }): tf.Tensor1D {
  const slots: { offset: number; length: number; value: tf.Tensor; name: string }[] = [];
  for (const [name, value] of Object.entries(device.tables ?? {})) slots.push({ ...tableSlot(bound, name), value, name });
  for (const [name, value] of Object.entries(device.heads ?? {})) slots.push({ ...headSlot(bound, name), value, name });
  slots.sort((a, b) => a.offset - b.offset);
  for (const s of slots) {
    if (s.value.size !== s.length) throw new Error(`internal: device parameter '${s.name}' has ${s.value.size} values, its slot ${s.length}`);
  }
  return tf.tidy(() => {
    const host = bound.params;
    const parts: tf.Tensor1D[] = [];
    let at = 0;
    for (const s of slots) {
      if (s.offset > at) parts.push(tf.tensor1d(host.subarray(at, s.offset), 'float32'));
      parts.push(tf.cast(tf.reshape(s.value, [-1]), 'float32') as tf.Tensor1D);
      at = s.offset + s.length;
    }
    if (at < host.length) parts.push(tf.tensor1d(host.subarray(at), 'float32'));
    return (parts.length === 1 ? tf.add(parts[0], 0) : tf.concat(parts)) as tf.Tensor1D;
  });
}
