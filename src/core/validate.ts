/**
 * Input and config validation. Every check throws {@link AttentionError} naming the
 * argument, what was expected and what was given, before anything is dispatched.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { Tensor } from '@tensorflow/tfjs-core';
import type { Tensor1D, Tensor4D } from '@tensorflow/tfjs-core';
import { kernelAvailable } from './dispatch.js';
import { AttentionError, show } from './errors.js';
import type { ApplyOptions, Dims, Implementation, KernelStrategy, Problem } from './types.js';

/** Checks that `t` is a live float32 tensor of rank 4. */
export function checkTensor4D(name: string, t: unknown): asserts t is Tensor4D {
  if (!(t instanceof Tensor)) {
    throw new AttentionError(name, 'a tf.Tensor of rank 4', show(t === null ? 'null' : typeof t));
  }
  if (t.isDisposed) throw new AttentionError(name, 'a live tensor', 'a disposed tensor');
  if (t.rank !== 4) throw new AttentionError(name, 'rank 4 [batch, heads, length, dim]', `rank ${t.rank} (shape ${show(t.shape)})`);
  if (t.dtype !== 'float32') throw new AttentionError(name, "dtype 'float32'", show(t.dtype));
  if (t.shape.some((s: number) => s === 0)) throw new AttentionError(name, 'no zero-sized dimension', `shape ${show(t.shape)}`);
}

/** Validates q, k, v against the shape conventions and returns the resolved dimensions. */
export function validateQKV(q: unknown, k: unknown, v: unknown): Dims {
  checkTensor4D('q', q);
  checkTensor4D('k', k);
  checkTensor4D('v', v);
  const [batch, heads, n, d] = q.shape;
  const [kb, kvHeads, m, kd] = k.shape;
  const [vb, vh, vm, dv] = v.shape;
  if (kb !== batch) throw new AttentionError('k', `batch ${batch} (as q)`, `batch ${kb} (shape ${show(k.shape)})`);
  if (vb !== batch) throw new AttentionError('v', `batch ${batch} (as q)`, `batch ${vb} (shape ${show(v.shape)})`);
  if (kd !== d) throw new AttentionError('k', `head dim d = ${d} (as q)`, `${kd} (shape ${show(k.shape)})`);
  if (vh !== kvHeads) throw new AttentionError('v', `kvHeads = ${kvHeads} (as k)`, `${vh} (shape ${show(v.shape)})`);
  if (vm !== m) throw new AttentionError('v', `length m = ${m} (as k)`, `${vm} (shape ${show(v.shape)})`);
  if (heads % kvHeads !== 0) {
    throw new AttentionError('k', `a kv head count dividing heads = ${heads}`, `kvHeads = ${kvHeads}`, 'Query head h reads kv head floor(h / (heads / kvHeads)).');
  }
  return { batch, heads, kvHeads, group: heads / kvHeads, n, m, d, dv };
}

/** A resolved `keyLength` option: per-batch values when given as numbers, or the int32 tensor. */
export interface KeyLength {
  values: number[] | null;
  tensor: Tensor1D | null;
}

/** Validates `options.keyLength`. Tensor values are clamped to [0, m] where used; numbers must lie in [0, m]. */
export function resolveKeyLength(keyLength: ApplyOptions['keyLength'], dims: Dims): KeyLength {
  if (keyLength === undefined || keyLength === null) return { values: null, tensor: null };
  const name = 'options.keyLength';
  if (keyLength instanceof Tensor) {
    if (keyLength.isDisposed) throw new AttentionError(name, 'a live tensor', 'a disposed tensor');
    if (keyLength.dtype !== 'int32') throw new AttentionError(name, "an int32 tensor", `dtype ${show(keyLength.dtype)}`);
    if (keyLength.rank !== 1 || keyLength.shape[0] !== dims.batch) {
      throw new AttentionError(name, `shape [${dims.batch}] (one length per batch element)`, `shape ${show(keyLength.shape)}`);
    }
    return { values: null, tensor: keyLength as Tensor1D };
  }
  if (!Array.isArray(keyLength)) throw new AttentionError(name, 'a number[] or an int32 tf.Tensor1D', show(typeof keyLength));
  if (keyLength.length !== dims.batch) {
    throw new AttentionError(name, `${dims.batch} lengths (one per batch element)`, `${keyLength.length}`);
  }
  keyLength.forEach((l, b) => {
    if (!Number.isInteger(l) || l < 0 || l > dims.m) {
      throw new AttentionError(`${name}[${b}]`, `an integer in [0, m = ${dims.m}]`, show(l));
    }
  });
  return { values: keyLength.slice(), tensor: null };
}

/** A validated `apply` call: dimensions, implementation and key lengths (numbers, tensor, or null). */
export interface CheckedCall {
  dims: Dims;
  implementation: Implementation;
  keyLength: number[] | Tensor1D | null;
  /** The flash kernel's strategy (`'auto'` unless given). */
  kernelStrategy: KernelStrategy;
}

/**
 * The checks every `apply` starts with: options (known keys only), q/k/v shapes and dtypes,
 * `implementation` and `keyLength`. Variant-specific checks follow it, still before dispatch.
 */
export function validateCall(q: unknown, k: unknown, v: unknown, options: unknown): CheckedCall {
  const opts = checkOptions(options);
  const dims = validateQKV(q, k, v);
  const implementation = checkImplementation(opts.implementation);
  const kl = resolveKeyLength(opts.keyLength, dims);
  return { dims, implementation, keyLength: kl.values ?? kl.tensor, kernelStrategy: checkKernelStrategy(opts.kernelStrategy) };
}

/** Validates `options.kernelStrategy`. */
export function checkKernelStrategy(strategy: unknown): KernelStrategy {
  if (strategy === undefined) return 'auto';
  if (strategy !== 'auto' && strategy !== 'rows' && strategy !== 'tiled') throw new AttentionError('options.kernelStrategy', "'auto', 'rows' or 'tiled'", show(strategy));
  return strategy;
}

/** Validates `options.implementation`. */
export function checkImplementation(impl: unknown): Implementation {
  if (impl === undefined) return 'auto';
  return checkImplementationName('options.implementation', impl);
}

function checkImplementationName(name: string, impl: unknown): Implementation {
  if (impl !== 'auto' && impl !== 'kernel' && impl !== 'composite') throw new AttentionError(name, "'auto', 'kernel' or 'composite'", show(impl));
  return impl;
}

/** Checks that `options` only has known keys (catches typos such as `keyLengths`). */
export function checkOptions(options: unknown): ApplyOptions {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new AttentionError('options', 'an object { implementation?, keyLength?, kernelStrategy? }', show(options));
  }
  for (const key of Object.keys(options)) {
    if (key !== 'implementation' && key !== 'keyLength' && key !== 'kernelStrategy') {
      throw new AttentionError(`options.${key}`, 'one of implementation, keyLength, kernelStrategy', `unknown option '${key}'`);
    }
  }
  return options as ApplyOptions;
}

/**
 * Validates the options of a `decode` step: undefined, or an object with only `implementation`
 * ('auto' | 'kernel' | 'composite'); returns the implementation.
 */
export function checkDecodeOptions(options: unknown): Implementation {
  if (options === undefined) return 'auto';
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new AttentionError('options', 'an object { implementation? }', show(options));
  }
  for (const key of Object.keys(options)) {
    if (key !== 'implementation') throw new AttentionError(`options.${key}`, 'implementation (the one option of decode)', `unknown option '${key}'`);
  }
  return checkImplementation((options as { implementation?: unknown }).implementation);
}

// ---- config field checks -------------------------------------------------------------

/** Checks that a config object has only the given keys. */
export function checkConfigKeys(id: string, config: object, allowed: readonly string[]): void {
  for (const key of Object.keys(config)) {
    if (!allowed.includes(key)) {
      throw new AttentionError(`config.${key}`, `one of ${allowed.join(', ')} (config of '${id}')`, `unknown key '${key}'`);
    }
  }
}

/** An integer config field in [min, max]. */
export function checkInt(name: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`;
    throw new AttentionError(name, `an integer ${range}`, show(value));
  }
  return value;
}

/** A finite positive number. */
export function checkPositive(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new AttentionError(name, 'a finite number > 0', show(value));
  }
  return value;
}

/** A boolean config field. */
export function checkBool(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new AttentionError(name, 'true or false', show(value));
  return value;
}

/** The shared `scale` field: undefined (1/sqrt(d)) or a finite positive number. */
export function checkScale(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  return checkPositive('config.scale', value);
}

/**
 * Validates a {@link Problem} (every `memoryBytes` starts here) and resolves it to dims.
 * @throws AttentionError naming the field, for a non-object, unknown keys, non-integer or
 * non-positive sizes, `heads` not a multiple of `kvHeads`, or a bad `implementation` / `keyLength`.
 */
export function problemDims(p: Problem): Dims {
  if (typeof p !== 'object' || p === null || Array.isArray(p)) throw new AttentionError('problem', 'an object { batch, heads, kvHeads?, n, m?, d, dv?, implementation?, keyLength? }', show(p));
  const known = ['batch', 'heads', 'kvHeads', 'n', 'm', 'd', 'dv', 'implementation', 'keyLength'];
  for (const key of Object.keys(p)) if (!known.includes(key)) throw new AttentionError(`problem.${key}`, `one of the fields ${known.join(', ')}`, 'an unknown field');
  const batch = checkInt('problem.batch', p.batch, 1);
  const heads = checkInt('problem.heads', p.heads, 1);
  const kvHeads = p.kvHeads === undefined ? heads : checkInt('problem.kvHeads', p.kvHeads, 1);
  if (heads % kvHeads !== 0) throw new AttentionError('problem.kvHeads', `a divisor of heads = ${heads}`, `${kvHeads}`);
  const n = checkInt('problem.n', p.n, 1);
  const m = p.m === undefined ? n : checkInt('problem.m', p.m, 1);
  const d = checkInt('problem.d', p.d, 1);
  const dv = p.dv === undefined ? d : checkInt('problem.dv', p.dv, 1);
  if (p.implementation !== undefined) checkImplementationName('problem.implementation', p.implementation);
  if (p.keyLength !== undefined) checkBool('problem.keyLength', p.keyLength);
  return { batch, heads, kvHeads, group: heads / kvHeads, n, m, d, dv };
}

/**
 * The path a {@link Problem} is sized for: its explicit `implementation`, or what `'auto'` picks
 * on the active backend (the fused kernel where one is registered, else the composite).
 */
export function problemPath(p: Problem, hasKernel = true): 'kernel' | 'composite' {
  const impl = p.implementation ?? 'auto';
  if (impl !== 'auto') return impl;
  return hasKernel && kernelAvailable() ? 'kernel' : 'composite';
}

/**
 * The prologue of every factory: `config` is an object with only the entry's keys (`causal`,
 * `scale` and `keys`); returns `causal` (default false) and `scale` (when given).
 */
export function checkBaseConfig(id: string, config: unknown, keys: readonly string[] = []): { causal: boolean; scale?: number } {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new AttentionError('config', 'an object', show(config));
  checkConfigKeys(id, config, ['causal', 'scale', ...keys]);
  const c = config as { causal?: unknown; scale?: unknown };
  const causal = c.causal === undefined ? false : checkBool('config.causal', c.causal);
  const scale = checkScale(c.scale);
  return scale === undefined ? { causal } : { causal, scale };
}

/** An explicit matrix parameter (tensor or nested array), validated but not yet copied: nothing dispatched. */
export interface MatrixArg {
  readonly name: string;
  readonly shape: [number, number];
  readonly source: tf.Tensor2D | number[][];
}

/**
 * Validates an explicit matrix parameter of shape `what` (e.g. `'[d, M]'`): a live float32
 * `tf.Tensor2D` or a rectangular nested array of finite numbers. Dispatches nothing: check every
 * other constraint on its shape, then {@link ownMatrix} it.
 */
export function checkMatrix(name: string, value: unknown, what: string): MatrixArg {
  if (value instanceof tf.Tensor) {
    if (value.isDisposed) throw new AttentionError(name, 'a live tensor', 'a disposed tensor');
    if (value.rank !== 2 || value.shape.some((s: number) => s === 0)) throw new AttentionError(name, `a tensor of shape ${what}`, `shape ${show(value.shape)}`);
    if (value.dtype !== 'float32') throw new AttentionError(name, "dtype 'float32'", show(value.dtype));
    return { name, shape: [value.shape[0], value.shape[1]], source: value as tf.Tensor2D };
  }
  if (!Array.isArray(value) || value.length === 0 || !value.every((r) => Array.isArray(r))) {
    throw new AttentionError(name, `a tf.Tensor2D or a nested number array ${what}`, show(typeof value));
  }
  const cols = (value[0] as unknown[]).length;
  if (cols === 0 || !value.every((r: unknown[]) => r.length === cols && r.every((x) => typeof x === 'number' && Number.isFinite(x)))) {
    throw new AttentionError(name, `a rectangular ${what} array of finite numbers`, `rows of lengths ${show(value.map((r: unknown[]) => r.length))}`);
  }
  return { name, shape: [value.length, cols], source: value as number[][] };
}

/** A float32 copy of a checked matrix, owned by the caller, living on the active backend's device (made through one op). */
export function ownMatrix(arg: MatrixArg): tf.Tensor2D {
  const src = arg.source;
  if (src instanceof tf.Tensor) return tf.clone(src);
  return tf.tidy(() => tf.add(tf.tensor2d(src, arg.shape, 'float32'), 0)) as tf.Tensor2D;
}

/**
 * An explicit stack of `count` square matrices `[count, dim, dim]` (compressed's and
 * compressive's convolution weights), checked and then copied to the host: a live float32
 * tensor, or a rectangular nested array of finite numbers. `letter` names the count in messages
 * (`[t, dim, dim]`), `unit` what one matrix is per (`one square matrix per offset in a block`).
 * The shape is checked before any data is read.
 */
export function hostSquareStack(name: string, value: unknown, count: number, letter: string, unit: string): { data: Float32Array; dim: number } {
  let shape: number[];
  if (value instanceof tf.Tensor) {
    if (value.isDisposed) throw new AttentionError(name, 'a live tensor', 'a disposed tensor');
    if (value.dtype !== 'float32') throw new AttentionError(name, "dtype 'float32'", show(value.dtype));
    shape = value.shape;
  } else if (Array.isArray(value) && Array.isArray(value[0]) && Array.isArray(value[0][0])) {
    const a = value as number[][][];
    shape = [a.length, a[0].length, a[0][0].length];
    if (a.some((m) => !Array.isArray(m) || m.length !== shape[1] || m.some((r) => !Array.isArray(r) || r.length !== shape[2]))) throw new AttentionError(name, `a rectangular [${letter}, dim, dim] array`, 'a ragged array');
  } else {
    throw new AttentionError(name, `a tf.Tensor or number[][][] of shape [${letter}, dim, dim]`, show(value));
  }
  if (shape.length !== 3 || shape[0] !== count || shape[1] !== shape[2] || shape[1] < 1) {
    throw new AttentionError(name, `shape [${letter} = ${count}, dim, dim] (one square matrix per offset in a ${unit})`, `shape ${show(shape)}`);
  }
  if (value instanceof tf.Tensor) return { data: Float32Array.from(value.dataSync()), dim: shape[1] };
  const flat = (value as unknown[][][]).flat(2);
  if (flat.some((x) => typeof x !== 'number' || !Number.isFinite(x))) throw new AttentionError(name, 'finite numbers', 'a non-finite or non-number entry');
  return { data: Float32Array.from(flat as number[]), dim: shape[1] };
}
