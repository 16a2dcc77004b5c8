/**
 * Block pooling on webgpu in one dispatch: memory-compressed attention's reduction of K (or V)
 * `[B, KH, m, dim]` to one key per block of t positions, `[B, KH, ⌈m/t⌉, dimOut]`:
 * - `'mean'`: the mean of the block's real keys (positions below `lim[b]`; 0 for a block with none);
 * - `'conv'`: Σ_u x_{c·t+u} · W[u] over the block's real positions, W `[t·dimIn, dimOut]`.
 * A block with a non-finite real entry pools to NaN (the definition's value); padding and keys
 * past the length are never read. The op-by-op composite (src/variants/fixed/compressed.ts) does
 * the same with about fifteen dispatches per tensor, which on a software adapter cost more than
 * the attention at small n.
 *
 * One workgroup of 64 invocations per block: they test the block's real entries for non-finite
 * values together (a workgroup flag), then each writes output components j = lid, lid + 64, ….
 * Loops per invocation: ⌈t·dimIn/64⌉ + ⌈dimOut/64⌉·t (mean) or ⌈dimOut/64⌉·t·dimIn (conv); the
 * caller checks {@link poolFits} against the loop budget. Forward only: while gradients are
 * recorded the composite runs (it is differentiable).
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';
import { LOOP_BUDGET } from '../shared/limits.js';
import { registerOnce } from '../shared/register.js';
import type { WebGPUBackend, WebGPUProgram } from '../shared/webgpu_types.js';

/** Name in tfjs's kernel registry. */
export const BLOCK_POOL_KERNEL = 'AttnCatalogBlockPool';
const WORKGROUP = 64;
/** Workgroups per dispatch dimension (WebGPU's default maxComputeWorkgroupsPerDimension). */
const MAX_GROUPS = 65535;

export type PoolMode = 'mean' | 'conv';

class BlockPoolProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  // Not a flat layout (tfjs would then call main(index)); the dispatch is set explicitly.
  dispatchLayout = { x: [0, 1], y: [2, 3] };
  dispatch: [number, number, number];
  variableNames: string[];
  workgroupSize: [number, number, number] = [WORKGROUP, 1, 1];
  uniforms = 'blocks : i32, gridX : i32, kvHeads : i32, C : i32, t : i32, m : i32, dimIn : i32, dimOut : i32, nanBits : i32,';
  private readonly mode: PoolMode;

  constructor(mode: PoolMode, outputShape: [number, number, number, number]) {
    this.mode = mode;
    // Only the structure in the key: every size is a uniform.
    this.shaderKey = `AttnCatalogBlockPool_${mode}`;
    this.variableNames = mode === 'conv' ? ['x', 'lim', 'w'] : ['x', 'lim'];
    this.outputShape = outputShape;
    const blocks = outputShape[0] * outputShape[1] * outputShape[2];
    const gridX = Math.min(blocks, MAX_GROUPS);
    this.dispatch = [gridX, Math.ceil(blocks / gridX), 1];
  }

  getUserCode(): string {
    const sum =
      this.mode === 'mean'
        ? `        for (var u = 0; u < cnt; u++) { acc = acc + x[base + u * uniforms.dimIn + j]; }
        if (cnt > 0) { acc = acc / f32(cnt); }`
        : `        for (var u = 0; u < cnt; u++) {
          for (var i = 0; i < uniforms.dimIn; i++) {
            acc = acc + x[base + u * uniforms.dimIn + i] * w[(u * uniforms.dimIn + i) * uniforms.dimOut + j];
          }
        }`;
    return `
  // tfjs copies the builtins into private variables, which WGSL's uniformity analysis treats as
  // non-uniform; the workgroup id goes through workgroup memory to make it uniform again.
  var<workgroup> groupIds : vec3<u32>;
  var<workgroup> badFlag : atomic<u32>;

  fn main() {
    let lid = i32(localId.x);
    if (lid == 0) {
      groupIds = workgroupId;
      atomicStore(&badFlag, 0u);
    }
    let gid = vec3<i32>(workgroupUniformLoad(&groupIds));
    let blk = gid.x + gid.y * uniforms.gridX;
    var cnt = 0;
    var base = 0;
    if (blk < uniforms.blocks) {
      let bkh = blk / uniforms.C;
      let c = blk - bkh * uniforms.C;
      let b = bkh / uniforms.kvHeads;
      let start = c * uniforms.t;
      cnt = clamp(min(lim[b], uniforms.m) - start, 0, uniforms.t);
      base = (bkh * uniforms.m + start) * uniforms.dimIn;
      // Non-finite real entries (exponent bits all ones: ±Inf and NaN), tested together.
      var bad = false;
      for (var e = lid; e < cnt * uniforms.dimIn; e = e + ${WORKGROUP}) {
        if ((bitcast<u32>(x[base + e]) & 0x7f800000u) == 0x7f800000u) { bad = true; }
      }
      if (bad) { atomicOr(&badFlag, 1u); }
    }
    workgroupBarrier();
    if (blk >= uniforms.blocks) { return; }
    let poisoned = atomicLoad(&badFlag) != 0u;
    for (var j = lid; j < uniforms.dimOut; j = j + ${WORKGROUP}) {
      var acc = 0.0;
      if (poisoned) {
        // NaN from a uniform: WGSL rejects a constant expression that evaluates to NaN.
        acc = bitcast<f32>(uniforms.nanBits);
      } else {
${sum}
      }
      result[blk * uniforms.dimOut + j] = acc;
    }
  }
`;
  }
}

const poolKernelFunc = ({ inputs, backend, attrs }: { inputs: Record<string, TensorInfo>; backend: unknown; attrs?: NamedAttrMap }) => {
  const gpu = backend as WebGPUBackend;
  const { mode, t } = attrs as unknown as { mode: PoolMode; t: number };
  const { x, lim, w } = inputs;
  const [B, KH, m, dimIn] = x.shape;
  const C = Math.ceil(m / t);
  const dimOut = mode === 'conv' ? w.shape[1] : dimIn;
  const blocks = B * KH * C;
  const program = new BlockPoolProgram(mode, [B, KH, C, dimOut]);
  const uniforms = [blocks, program.dispatch[0], KH, C, t, m, dimIn, dimOut, 0x7fc00000].map((v) => ({ type: 'int32', data: [v] }));
  return gpu.runWebGPUProgram(program as never, mode === 'conv' ? [x, lim, w] : [x, lim], 'float32', uniforms as never);
};

/** The kernel's registration record (registered on first use). */
export const blockPoolKernelConfig: KernelConfig = {
  kernelName: BLOCK_POOL_KERNEL,
  backendName: 'webgpu',
  kernelFunc: poolKernelFunc as unknown as KernelFunc,
};

/** Whether one invocation's loops stay within the loop budget (llvmpipe stops loops past 65,535 iterations). */
export function poolFits(mode: PoolMode, t: number, dimIn: number, dimOut: number): boolean {
  const outer = Math.ceil(dimOut / WORKGROUP);
  const loops = Math.ceil((t * dimIn) / WORKGROUP) + outer * (mode === 'conv' ? t * (dimIn + 1) : t + 1);
  return loops <= LOOP_BUDGET;
}

/**
 * Pools `x [B, KH, m, dimIn]` into `[B, KH, ⌈m/t⌉, dimOut]` over blocks of t positions, the real
 * positions of batch element b being those below `lim[b]` (int32 `[B]`). `w [t·dimIn, dimOut]`
 * for `'conv'`. Webgpu only; the caller checks {@link poolFits} and that no gradient is recorded.
 */
export function blockPool(mode: PoolMode, x: tf.Tensor4D, lim: tf.Tensor1D, t: number, w?: tf.Tensor2D): tf.Tensor4D {
  registerOnce(blockPoolKernelConfig);
  const inputs: tf.NamedTensorMap = { x, lim };
  if (mode === 'conv') inputs.w = w!;
  return tf.engine().runKernel(BLOCK_POOL_KERNEL, inputs, { mode, t } as unknown as NamedAttrMap) as tf.Tensor4D;
}
