/**
 * Pass 2 of the fused linear-attention kernel: per chunk of C keys (causal) or per split
 * (non-causal), the chunk's own sums `S_t = Σ_j φ(k_j) v_jᵀ` (F × dv) and `z_t = Σ_j φ(k_j)` over
 * the chunk's real keys (j < keyLength[b]). One invocation per (chunk, 4 features, kv head,
 * block of {@link DV_BLOCK} vec4 columns of v), accumulating a 4 × block tile of S in registers:
 * the only loop is the key loop, and the tile is the only unrolled code, whatever F and dv are.
 *
 * For the softmax kernel the invocation first finds, per feature, the chunk's largest exponent
 * `c_tf` (a first loop), then sums `exp(L_jf − c_tf)`: every term is at most 1. Output rows are
 * `[batch·kvHeads, T, F, dv + 4]`: the row of S followed by `(z, c, 0, 0)` (written by the first
 * block). Elementwise maps compute φ(k) from k on the fly; FAVOR+ maps read the features of pass 1.
 * Sizes are uniforms: the shader depends only on the kind.
 *
 * @module
 */
import { unroll } from '../shared/wgsl.js';
import type { WebGPUProgram } from '../shared/webgpu_types.js';
import { elementwiseWgsl, isExpKind, isProjectedKind, NO_KEY_WGSL, type FeatureKind } from './feature_maps.js';
import { DV_BLOCK, LINEAR_WORKGROUP } from './plan.js';

/** Uniform values of {@link LinearChunkSumProgram}. */
export interface LinearChunkSumUniforms {
  m: number;
  kvHeads: number;
  chunk: number;
  chunks: number;
  f4: number;
  dv4: number;
}

export class LinearChunkSumProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [1, 2], y: [0] };
  dispatch: [number, number, number];
  variableNames: string[];
  variableComponents = [4, 4, 1];
  outputComponent = 4;
  workgroupSize: [number, number, number] = [LINEAR_WORKGROUP, 1, 1];
  uniforms = 'm : i32, kvHeads : i32, chunk : i32, chunks : i32, f4 : i32, dv4 : i32,';

  constructor(
    bk: number,
    chunks: number,
    fPad: number,
    dvPad: number,
    private readonly kind: FeatureKind,
  ) {
    const f4 = fPad / 4;
    this.variableNames = [isProjectedKind(kind) ? 'phik' : 'k', 'v', 'keyLength'];
    this.outputShape = [bk, chunks, fPad, dvPad + 4];
    this.dispatch = [Math.ceil((chunks * f4) / LINEAR_WORKGROUP), bk, Math.ceil(dvPad / 4 / DV_BLOCK)];
    this.shaderKey = `AttnCatalogLinearChunkSums_${kind}_${DV_BLOCK}`;
  }

  static uniformData(u: LinearChunkSumUniforms) {
    const i = (x: number) => ({ type: 'int32', data: [x] });
    return [i(u.m), i(u.kvHeads), i(u.chunk), i(u.chunks), i(u.f4), i(u.dv4)];
  }

  getUserCode(): string {
    const exp = isExpKind(this.kind);
    const projected = isProjectedKind(this.kind);
    const feat = projected ? 'phik[(kvBase + j) * f4s + f4]' : 'featureMap(k[(kvBase + j) * f4s + f4])';
    const lanes = ['x', 'y', 'z', 'w'];
    const G = DV_BLOCK;
    return `
  ${projected ? '' : elementwiseWgsl(this.kind)}

  fn main() {
    let gid = i32(globalId.x);
    let bk = i32(globalId.y);
    let f4s = uniforms.f4;
    let dv4 = uniforms.dv4;
    if (gid >= uniforms.chunks * f4s) { return; }
    let t = gid / f4s;
    let f4 = gid - t * f4s;
    // This invocation's columns of v; a column past dv4 re-reads the last one and is never written.
    let u0 = i32(globalId.z) * ${G};
${unroll(G, (g) => `    let c${g} = min(u0 + ${g}, dv4 - 1);`)}
    let b = bk / uniforms.kvHeads;
    let kEnd = clamp(keyLength[b], 0, uniforms.m);
    let j0 = t * uniforms.chunk;
    let j1 = min(j0 + uniforms.chunk, kEnd);
    let kvBase = bk * uniforms.m;
${unroll(4, (c) => unroll(G, (g) => `    var a${c}_${g} = vec4<f32>(0.0);`))}
    var zs = vec4<f32>(0.0);
    var cmax = vec4<f32>(${exp ? NO_KEY_WGSL : '0.0'});
${exp ? `    for (var j = j0; j < j1; j = j + 1) {
      cmax = max(cmax, ${feat});
    }` : ''}
    for (var j = j0; j < j1; j = j + 1) {
      let e = ${exp ? `exp(${feat} - cmax)` : feat};
      zs = zs + e;
      let vb = (kvBase + j) * dv4;
${unroll(G, (g) => `      let v${g} = v[vb + c${g}];\n${unroll(4, (c) => `      a${c}_${g} = a${c}_${g} + e.${lanes[c]} * v${g};`)}`)}
    }
${unroll(4, (c) => `    {
      let ob = ((bk * uniforms.chunks + t) * 4 * f4s + f4 * 4 + ${c}) * (dv4 + 1);
${unroll(G, (g) => `      if (u0 + ${g} < dv4) { result[ob + u0 + ${g}] = a${c}_${g}; }`)}
      if (u0 == 0) { result[ob + dv4] = vec4<f32>(zs.${lanes[c]}, cmax.${lanes[c]}, 0.0, 0.0); }
    }`)}
  }
`;
  }
}
