/**
 * Pass 2 of the fused linear-attention kernel: per chunk of C keys (causal) or per split
 * (non-causal), the chunk's own sums `S_t = Σ_j φ(k_j) v_jᵀ` (F × dv) and `z_t = Σ_j φ(k_j)` over
 * the chunk's real keys (j < keyLength[b]). One invocation per (chunk, 4 features, kv head),
 * accumulating 4 feature rows of S in registers; the dv loop is unrolled into vec4 statements.
 *
 * For the softmax kernel the invocation first finds, per feature, the chunk's largest exponent
 * `c_tf` (a first loop), then sums `exp(L_jf − c_tf)`: every term is at most 1. Output rows are
 * `[batch·kvHeads, T, F, dv + 4]`: the row of S followed by `(z, c, 0, 0)`. Elementwise maps
 * compute φ(k) from k on the fly; FAVOR+ maps read the features of pass 1.
 *
 * @module
 */
import { unroll } from '../shared/wgsl.js';
import type { WebGPUProgram } from '../shared/webgpu_types.js';
import { elementwiseWgsl, isExpKind, isProjectedKind, NO_KEY_WGSL, type FeatureKind } from './feature_maps.js';
import { LINEAR_WORKGROUP } from './plan.js';

export class LinearChunkSumProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [1, 2], y: [0] };
  dispatch: [number, number, number];
  variableNames: string[];
  variableComponents = [4, 4, 1];
  outputComponent = 4;
  workgroupSize: [number, number, number] = [LINEAR_WORKGROUP, 1, 1];
  uniforms = 'm : i32, kvHeads : i32, chunk : i32, chunks : i32,';
  private readonly f4: number;
  private readonly dv4: number;

  constructor(
    bk: number,
    chunks: number,
    fPad: number,
    dvPad: number,
    private readonly kind: FeatureKind,
  ) {
    this.f4 = fPad / 4;
    this.dv4 = dvPad / 4;
    this.variableNames = [isProjectedKind(kind) ? 'phik' : 'k', 'v', 'keyLength'];
    this.outputShape = [bk, chunks, fPad, dvPad + 4];
    this.dispatch = [Math.ceil((chunks * this.f4) / LINEAR_WORKGROUP), bk, 1];
    this.shaderKey = `AttnCatalogLinearChunkSums_${kind}_${this.f4}_${this.dv4}`;
  }

  static uniformData(m: number, kvHeads: number, chunk: number, chunks: number) {
    const i = (x: number) => ({ type: 'int32', data: [x] });
    return [i(m), i(kvHeads), i(chunk), i(chunks)];
  }

  getUserCode(): string {
    const { f4, dv4 } = this;
    const exp = isExpKind(this.kind);
    const projected = isProjectedKind(this.kind);
    const feat = projected ? `phik[(kvBase + j) * ${f4} + f4]` : `featureMap(k[(kvBase + j) * ${f4} + f4])`;
    const lanes = ['x', 'y', 'z', 'w'];
    return `
  ${projected ? '' : elementwiseWgsl(this.kind)}

  fn main() {
    let gid = i32(globalId.x);
    let bk = i32(globalId.y);
    if (gid >= uniforms.chunks * ${f4}) { return; }
    let t = gid / ${f4};
    let f4 = gid - t * ${f4};
    let b = bk / uniforms.kvHeads;
    let kEnd = clamp(keyLength[b], 0, uniforms.m);
    let j0 = t * uniforms.chunk;
    let j1 = min(j0 + uniforms.chunk, kEnd);
    let kvBase = bk * uniforms.m;
${unroll(4, (c) => unroll(dv4, (u) => `    var a${c}_${u} = vec4<f32>(0.0);`))}
    var zs = vec4<f32>(0.0);
    var cmax = vec4<f32>(${exp ? NO_KEY_WGSL : '0.0'});
${exp ? `    for (var j = j0; j < j1; j = j + 1) {
      cmax = max(cmax, ${feat});
    }` : ''}
    for (var j = j0; j < j1; j = j + 1) {
      let e = ${exp ? `exp(${feat} - cmax)` : feat};
      zs = zs + e;
      let vb = (kvBase + j) * ${dv4};
${unroll(dv4, (u) => `      let v${u} = v[vb + ${u}];\n${unroll(4, (c) => `      a${c}_${u} = a${c}_${u} + e.${lanes[c]} * v${u};`)}`)}
    }
${unroll(4, (c) => `    {
      let ob = ((bk * uniforms.chunks + t) * ${4 * f4} + f4 * 4 + ${c}) * ${dv4 + 1};
${unroll(dv4, (u) => `      result[ob + ${u}] = a${c}_${u};`)}
      result[ob + ${dv4}] = vec4<f32>(zs.${lanes[c]}, cmax.${lanes[c]}, 0.0, 0.0);
    }`)}
  }
`;
  }
}
