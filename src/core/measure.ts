/**
 * Measuring the intermediate memory of a call: what `memoryBytes()` promises an upper bound of.
 *
 * Intermediate bytes = peak bytes alive during the call, minus what was alive before it
 * (the inputs), minus the output:
 * - on webgpu, the backend's buffer manager (bytes of GPU buffers in use): it sees every
 *   tensor's buffer, the buffers a fused kernel allocates internally (split partials,
 *   uniforms) that the engine never sees, and buffers whose release tfjs defers to the next
 *   queue submission;
 * - elsewhere, the tfjs engine's view (`tf.profile`'s peak over kernels).
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';

/** The result of {@link measureIntermediateBytes}. */
export interface Measurement<T> {
  /** Intermediate bytes: max(engine view, backend view). */
  bytes: number;
  /** The engine's view alone (0 on webgpu, where the backend's view is taken instead). */
  engineBytes: number;
  /** The webgpu buffer manager's view alone (0 on other backends). */
  backendBytes: number;
  result: T;
}

interface BufferManagerLike {
  numBytesUsed: number;
  acquireBuffer: (...args: unknown[]) => unknown;
  releaseBuffer: (...args: unknown[]) => unknown;
}

/**
 * Runs `fn` (which returns one tensor, the output) and measures its intermediate bytes.
 * The output is returned to the caller, who owns it.
 *
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import { measureIntermediateBytes } from 'attention-catalog';
 * import { localAttention } from 'attention-catalog/local';
 * const attn = localAttention({ window: 128 });
 * const q = tf.randomNormal([1, 8, 4096, 64]) as tf.Tensor4D;
 * const { bytes, result } = await measureIntermediateBytes(() => attn.apply(q, q, q));
 * console.log(bytes, attn.memoryBytes({ batch: 1, heads: 8, n: 4096, d: 64 }));
 * result.dispose();
 * ```
 */
export async function measureIntermediateBytes<T extends tf.Tensor>(fn: () => T): Promise<Measurement<T>> {
  const backend = tf.backend() as unknown as {
    bufferManager?: BufferManagerLike;
    submitQueue?: () => void;
    endComputePassEncoder?: () => void;
    commandEncoder?: unknown;
  };
  const bm = tf.getBackend() === 'webgpu' ? backend.bufferManager : undefined;
  const checkFlag = tf.env().getBool('CHECK_COMPUTATION_FOR_ERRORS');
  tf.env().set('CHECK_COMPUTATION_FOR_ERRORS', false);
  let backendPeak = 0;
  let backendStart = 0;
  let restore = () => {};
  if (bm) {
    // Flush deferred releases so that the start value is settled. An open compute pass is ended
    // first: finishing the encoder with a pass still open invalidates the whole command buffer
    // (silently: every queued dispatch is dropped).
    if (backend.commandEncoder) {
      backend.endComputePassEncoder?.();
      backend.submitQueue?.();
    }
    backendStart = bm.numBytesUsed;
    backendPeak = backendStart;
    const acquire = bm.acquireBuffer;
    bm.acquireBuffer = function (this: BufferManagerLike, ...args: unknown[]) {
      const r = acquire.apply(this, args);
      backendPeak = Math.max(backendPeak, bm.numBytesUsed);
      return r;
    };
    restore = () => {
      bm.acquireBuffer = acquire;
    };
  }
  const startBytes = tf.memory().numBytes;
  let result: T;
  let engineBytes = 0;
  try {
    if (bm) {
      // The buffer manager sees every buffer the engine sees, and more; tf.profile would add
      // per-kernel timing queries on top, so it is not used here.
      result = fn();
    } else {
      const info = await tf.profile(() => fn() as unknown as tf.Tensor);
      result = info.result as T;
      const peak = info.kernels.length ? info.peakBytes : startBytes + result.size * 4;
      engineBytes = Math.max(0, peak - startBytes - result.size * 4);
    }
  } finally {
    restore();
    tf.env().set('CHECK_COMPUTATION_FOR_ERRORS', checkFlag);
  }
  const outBytes = result.size * 4;
  const backendBytes = bm ? Math.max(0, backendPeak - backendStart - outBytes) : 0;
  return { bytes: Math.max(engineBytes, backendBytes), engineBytes, backendBytes, result };
}
