/**
 * Pass 3 of the fused linear-attention kernel: combines the chunk sums of pass 2, one
 * invocation per (feature row, kv head, vec4 column of the row) walking the T chunks in order
 * and carrying that part of one F·dv state row (never an n × F × dv tensor).
 *
 * - `scan` (causal): writes, for every chunk t, the state of all chunks before it (an exclusive
 *   prefix): `[batch·kvHeads, T, F, dv + 4]`.
 * - `merge` (non-causal): writes only the total: `[batch·kvHeads, 1, F, dv + 4]`.
 *
 * Rows are `(S row, (z, R, 0, 0))`; every invocation of a row tracks z and R, the one of column 0
 * writes them. For the softmax kernel a row is held at the scale `exp(−R)` with R the running max
 * of the chunk maxima, rescaled as chunks come in (as an online softmax rescales its
 * accumulator); for other maps R is unused and sums add up. Sizes are uniforms: the shader
 * depends only on the kind and the mode.
 *
 * @module
 */
import type { WebGPUProgram } from '../shared/webgpu_types.js';
import { isExpKind, NO_KEY_WGSL, type FeatureKind } from './feature_maps.js';
import { LINEAR_WORKGROUP } from './plan.js';

export class LinearScanProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [2], y: [0] };
  dispatch: [number, number, number];
  variableNames = ['sums'];
  variableComponents = [4];
  outputComponent = 4;
  workgroupSize: [number, number, number] = [LINEAR_WORKGROUP, 1, 1];
  uniforms = 'chunks : i32, fPad : i32, dv4 : i32,';

  constructor(
    bk: number,
    chunks: number,
    fPad: number,
    dvPad: number,
    private readonly kind: FeatureKind,
    private readonly scan: boolean,
  ) {
    this.outputShape = [bk, scan ? chunks : 1, fPad, dvPad + 4];
    this.dispatch = [Math.ceil(fPad / LINEAR_WORKGROUP), bk, dvPad / 4];
    this.shaderKey = `AttnCatalogLinearScan_${kind}_${scan ? 'scan' : 'merge'}`;
  }

  static uniformData(chunks: number, fPad: number, dv4: number) {
    const i = (x: number) => ({ type: 'int32', data: [x] });
    return [i(chunks), i(fPad), i(dv4)];
  }

  getUserCode(): string {
    const { scan } = this;
    const exp = isExpKind(this.kind);
    const write = (base: string) => `      result[${base} + u] = s;
      if (u == 0) { result[${base} + dv4] = vec4<f32>(z, r, 0.0, 0.0); }`;
    return `
  fn main() {
    let f = i32(globalId.x);
    let bk = i32(globalId.y);
    let u = i32(globalId.z);
    if (f >= uniforms.fPad) { return; }
    let dv4 = uniforms.dv4;
    var s = vec4<f32>(0.0);
    var z = 0.0;
    var r = ${exp ? NO_KEY_WGSL : '0.0'};
    for (var t = 0; t < uniforms.chunks; t = t + 1) {
      let ib = ((bk * uniforms.chunks + t) * uniforms.fPad + f) * (dv4 + 1);
${scan ? write('ib') : ''}
      let st = sums[ib + dv4];
${
  exp
    ? `      let rn = max(r, st.y);
      let a = exp(r - rn);
      let c = exp(st.y - rn);
      s = s * a + sums[ib + u] * c;
      z = z * a + st.x * c;
      r = rn;`
    : `      s = s + sums[ib + u];
      z = z + st.x;`
}
    }
${scan ? '' : `    {\n      let ob = (bk * uniforms.fPad + f) * (dv4 + 1);\n${write('ob')}\n    }`}
  }
`;
  }
}
