/**
 * The routing scatter-mean on webgpu, deterministic: the outputs of the clusters that took a query
 * are averaged in a fixed order (cluster order), with no float atomics (tfjs's webgpu scatter adds
 * floats with atomics, whose order, and so whose rounding, varies from run to run).
 *
 * The entries `(row, value)` (one per cluster slot, in (batch, head, cluster, slot) order) are
 * sorted by row with `tf.topk` (stable: ties keep the lower entry first); then one invocation
 * per (output row, component) binary-searches its run in the sorted rows and sums it in order.
 * Loops per invocation: log2(entries) + the row's run length (at most kc).
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';
import { registerOnce } from '../shared/register.js';
import type { WebGPUBackend, WebGPUProgram } from '../shared/webgpu_types.js';

/** Name in tfjs's kernel registry. */
export const ROUTING_COMBINE_KERNEL = 'AttnCatalogRoutingCombine';
const WORKGROUP = 64;

class RoutingCombineProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey = 'AttnCatalogRoutingCombine';
  dispatchLayout = { x: [0], y: [1] };
  dispatch: [number, number, number];
  variableNames = ['vals', 'perm', 'sortedRow'];
  workgroupSize: [number, number, number] = [WORKGROUP, 1, 1];
  uniforms = 'rows : i32, entries : i32, dv : i32,';

  constructor(rows: number, dv: number) {
    this.outputShape = [rows, dv];
    this.dispatch = [Math.ceil(rows / WORKGROUP), dv, 1];
  }

  getUserCode(): string {
    return `
  fn main() {
    let row = i32(globalId.x);
    let u = i32(globalId.y);
    if (row >= uniforms.rows) { return; }
    var lo = 0;
    var hi = uniforms.entries;
    loop {
      if (lo >= hi) { break; }
      let mid = (lo + hi) / 2;
      if (sortedRow[mid] < row) { lo = mid + 1; } else { hi = mid; }
    }
    var acc = 0.0;
    var cnt = 0;
    var e = lo;
    loop {
      if (e >= uniforms.entries) { break; }
      if (sortedRow[e] != row) { break; }
      acc = acc + vals[perm[e] * uniforms.dv + u];
      cnt = cnt + 1;
      e = e + 1;
    }
    var out = 0.0;
    if (cnt > 0) { out = acc / f32(cnt); }
    result[row * uniforms.dv + u] = out;
  }
`;
  }
}

const combineKernelFunc = ({ inputs, backend, attrs }: { inputs: Record<string, TensorInfo>; backend: unknown; attrs?: NamedAttrMap }) => {
  const gpu = backend as WebGPUBackend;
  const { rows } = attrs as unknown as { rows: number };
  const { vals, perm, sortedRow } = inputs;
  const [entries, dv] = vals.shape;
  const program = new RoutingCombineProgram(rows, dv);
  const uniforms = [
    { type: 'int32', data: [rows] },
    { type: 'int32', data: [entries] },
    { type: 'int32', data: [dv] },
  ];
  return gpu.runWebGPUProgram(program as never, [vals, perm, sortedRow], 'float32', uniforms as never);
};

/** The kernel's registration record (registered on first use). */
export const routingCombineKernelConfig: KernelConfig = {
  kernelName: ROUTING_COMBINE_KERNEL,
  backendName: 'webgpu',
  kernelFunc: combineKernelFunc as unknown as KernelFunc,
};

/** Largest number of output rows / entries the combine accepts (positions exact in float32, workgroups per dimension). */
export const ROUTING_COMBINE_MAX = Math.min(1 << 24, 65535 * WORKGROUP);

/**
 * Mean of `vals [entries, dv]` per target row `rows [entries]` (int32, in [0, total)), in entry
 * order, into `[total, dv]` (0 for a row no entry targets). Webgpu only; the caller checks
 * {@link ROUTING_COMBINE_MAX} before dispatching anything.
 */
export function routingCombine(vals: tf.Tensor2D, rows: tf.Tensor1D, total: number): tf.Tensor2D {
  registerOnce(routingCombineKernelConfig);
  return tf.tidy(() => {
    const entries = rows.shape[0];
    // Sorted by row, ascending; tf.topk keeps ties in index order (the lower entry first).
    const { values, indices } = tf.topk(tf.neg(tf.cast(rows, 'float32')), entries);
    const sortedRow = tf.cast(tf.neg(values), 'int32');
    return tf.engine().runKernel(ROUTING_COMBINE_KERNEL, { vals, perm: indices, sortedRow }, { rows: total } as unknown as NamedAttrMap) as tf.Tensor2D;
  });
}

/** Upper bound of the intermediate bytes of {@link routingCombine} (the sort's buffers, padded to a power of two, and the sorted rows). */
export function routingCombineBytes(entries: number): number {
  let pow2 = 1;
  while (pow2 < entries) pow2 *= 2;
  return 4 * (6 * pow2 + 4 * entries) + 4 * 1024;
}
