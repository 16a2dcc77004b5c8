/**
 * The fused flash-attention WGSL program: online softmax over a query row's keys, never an
 * n×m matrix. One invocation per (query row, batch·head, key split). The head-dim loops are
 * unrolled into `vec4` statements, so the only loop is the key loop (its trip count is the
 * plan's `chunk`, kept under the software adapter's loop cap).
 *
 * With one split the program writes the normalized output `[batch, heads, n, dv]`; with
 * several it writes partial rows `[batch·heads, splits, n, dv + 4]` holding the unnormalized
 * accumulator followed by `(rowMax, rowSum, 0, 0)`, which {@link MergeProgram} combines.
 *
 * Values written into the WGSL source (head dims, causal, split mode) are in `shaderKey`;
 * sizes, scale and chunk are uniforms.
 *
 * @module
 */
import type { WebGPUProgram } from './webgpu_types.js';
import { ROWS_PER_WORKGROUP } from './plan.js';

/** Uniform values of {@link FlashAttentionProgram}, in declaration order. */
export interface FlashUniforms {
  scale: number;
  n: number;
  m: number;
  heads: number;
  group: number;
  kvHeads: number;
  chunk: number;
  splits: number;
}

/** Unrolled WGSL: one statement per vec4 of a head dim. */
export function unroll(count: number, line: (t: number) => string, sep = '\n'): string {
  return Array.from({ length: count }, (_, t) => line(t)).join(sep);
}

export class FlashAttentionProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0], y: [1] };
  dispatch: [number, number, number];
  variableNames = ['q', 'k', 'v', 'keyLength'];
  variableComponents = [4, 4, 4, 1];
  outputComponent = 4;
  workgroupSize: [number, number, number] = [ROWS_PER_WORKGROUP, 1, 1];
  uniforms = 'scale : f32, n : i32, m : i32, heads : i32, group : i32, kvHeads : i32, chunk : i32, splits : i32,';
  private readonly d4: number;
  private readonly dv4: number;

  constructor(
    batch: number,
    heads: number,
    n: number,
    dPad: number,
    dvPad: number,
    private readonly causal: boolean,
    private readonly splits: number,
  ) {
    this.d4 = dPad / 4;
    this.dv4 = dvPad / 4;
    this.outputShape = splits === 1 ? [batch, heads, n, dvPad] : [batch * heads, splits, n, dvPad + 4];
    this.dispatch = [Math.ceil(n / ROWS_PER_WORKGROUP), batch * heads, splits];
    this.shaderKey = `AttnCatalogFlash_${this.d4}_${this.dv4}_${causal ? 'c' : 'nc'}_${splits === 1 ? 'single' : 'split'}`;
  }

  /** Uniform list for `runWebGPUProgram`, matching `uniforms`. */
  static uniformData(u: FlashUniforms) {
    return [
      { type: 'float32', data: [u.scale] },
      { type: 'int32', data: [u.n] },
      { type: 'int32', data: [u.m] },
      { type: 'int32', data: [u.heads] },
      { type: 'int32', data: [u.group] },
      { type: 'int32', data: [u.kvHeads] },
      { type: 'int32', data: [u.chunk] },
      { type: 'int32', data: [u.splits] },
    ];
  }

  getUserCode(): string {
    const { d4, dv4 } = this;
    const split = this.splits !== 1;
    return `
  fn main() {
    let row = i32(globalId.x);
    let bh = i32(globalId.y);
    let part = i32(globalId.z);
    if (row >= uniforms.n) { return; }
    let b = bh / uniforms.heads;
    let h = bh - b * uniforms.heads;
    let kvh = h / uniforms.group;
    // Bottom-right alignment: query row i sits at absolute position i + (m - n).
    let p = row + uniforms.m - uniforms.n;
    var kEnd = clamp(keyLength[b], 0, uniforms.m);
    ${this.causal ? 'kEnd = min(kEnd, p + 1);' : ''}
    let jStart = part * uniforms.chunk;
    let jEnd = min(jStart + uniforms.chunk, kEnd);
    let qBase = (bh * uniforms.n + row) * ${d4};
${unroll(d4, (t) => `    let q${t} = q[qBase + ${t}] * uniforms.scale;`)}
${unroll(dv4, (t) => `    var acc${t} = vec4<f32>(0.0);`)}
    var rowMax = -3.0e38;
    var rowSum = 0.0;
    let kvBase = (b * uniforms.kvHeads + kvh) * uniforms.m;
    for (var j = jStart; j < jEnd; j = j + 1) {
      let kb = (kvBase + j) * ${d4};
      let s = ${unroll(d4, (t) => `dot(q${t}, k[kb + ${t}])`, ' + ')};
      let newMax = max(rowMax, s);
      let c = exp(rowMax - newMax);
      let e = exp(s - newMax);
      rowSum = rowSum * c + e;
      let vb = (kvBase + j) * ${dv4};
${unroll(dv4, (t) => `      acc${t} = acc${t} * c + e * v[vb + ${t}];`)}
      rowMax = newMax;
    }
${
  split
    ? `    let ob = ((bh * uniforms.splits + part) * uniforms.n + row) * ${dv4 + 1};
${unroll(dv4, (t) => `    result[ob + ${t}] = acc${t};`)}
    result[ob + ${dv4}] = vec4<f32>(rowMax, rowSum, 0.0, 0.0);`
    : `    // A query with no allowed key outputs zeros, never NaN.
    var inv = 0.0;
    if (rowSum > 0.0) { inv = 1.0 / rowSum; }
    let ob = (bh * uniforms.n + row) * ${dv4};
${unroll(dv4, (t) => `    result[ob + ${t}] = acc${t} * inv;`)}`
}
  }
`;
  }
}

/**
 * Merges split-KV partials: `out = Σ_s exp(max_s − M)·acc_s / Σ_s exp(max_s − M)·sum_s` with
 * `M = max_s max_s`; rows with no allowed key (total sum 0) output zeros.
 */
export class MergeProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0], y: [1] };
  dispatch: [number, number, number];
  variableNames = ['partial'];
  variableComponents = [4];
  outputComponent = 4;
  workgroupSize: [number, number, number] = [ROWS_PER_WORKGROUP, 1, 1];
  uniforms = 'n : i32, splits : i32,';
  private readonly dv4: number;

  constructor(batch: number, heads: number, n: number, dvPad: number) {
    this.dv4 = dvPad / 4;
    this.outputShape = [batch, heads, n, dvPad];
    this.dispatch = [Math.ceil(n / ROWS_PER_WORKGROUP), batch * heads, 1];
    this.shaderKey = `AttnCatalogFlashMerge_${this.dv4}`;
  }

  static uniformData(n: number, splits: number) {
    return [
      { type: 'int32', data: [n] },
      { type: 'int32', data: [splits] },
    ];
  }

  getUserCode(): string {
    const dv4 = this.dv4;
    const stride = dv4 + 1;
    return `
  fn main() {
    let row = i32(globalId.x);
    let bh = i32(globalId.y);
    if (row >= uniforms.n) { return; }
    var gMax = -3.0e38;
    for (var s = 0; s < uniforms.splits; s = s + 1) {
      let st = partial[((bh * uniforms.splits + s) * uniforms.n + row) * ${stride} + ${dv4}];
      if (st.y > 0.0) { gMax = max(gMax, st.x); }
    }
    var total = 0.0;
${unroll(dv4, (t) => `    var acc${t} = vec4<f32>(0.0);`)}
    for (var s = 0; s < uniforms.splits; s = s + 1) {
      let pb = ((bh * uniforms.splits + s) * uniforms.n + row) * ${stride};
      let st = partial[pb + ${dv4}];
      if (st.y > 0.0) {
        let w = exp(st.x - gMax);
        total = total + w * st.y;
${unroll(dv4, (t) => `        acc${t} = acc${t} + w * partial[pb + ${t}];`)}
      }
    }
    var inv = 0.0;
    if (total > 0.0) { inv = 1.0 / total; }
    let ob = (bh * uniforms.n + row) * ${dv4};
${unroll(dv4, (t) => `    result[ob + ${t}] = acc${t} * inv;`)}
  }
`;
  }
}
