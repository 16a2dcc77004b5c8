/**
 * Pass 4 of the fused linear-attention kernel: one invocation per (query row, head) computes
 * the row's features φ(q_i) and
 *
 * - non-causal: `o_i = φ(q_i)ᵀS / φ(q_i)ᵀz` from the merged state of its kv head;
 * - causal: the state of the chunks before its own chunk (pass 3's exclusive scan) plus the keys
 *   of its own chunk up to its position p_i = i + m − n (the small causal C × C part), so the row
 *   never reads a state or key past p_i.
 *
 * The softmax kernel works with exponents: the row's bound `A` is the largest of
 * `q'·ω_f + R_f` (state) and `q'·ω_f + L_jf` (its own chunk's allowed keys), so every weight
 * `exp(· − A)` is at most 1 and the largest is 1. Where the denominator is 0 the output is 0.
 *
 * @module
 */
import { unroll } from '../shared/wgsl.js';
import type { WebGPUProgram } from '../shared/webgpu_types.js';
import { elementwiseWgsl, isExpKind, isProjectedKind, lastLaneMask, NO_KEY_WGSL, type FeatureKind } from './feature_maps.js';
import { LINEAR_WORKGROUP } from './plan.js';

/** Uniform values of {@link LinearQueryProgram}. */
export interface LinearQueryUniforms {
  n: number;
  m: number;
  heads: number;
  group: number;
  kvHeads: number;
  chunk: number;
  chunks: number;
  xscale: number;
}

export class LinearQueryProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [2], y: [0, 1] };
  dispatch: [number, number, number];
  variableNames: string[];
  variableComponents: number[];
  outputComponent = 4;
  workgroupSize: [number, number, number] = [LINEAR_WORKGROUP, 1, 1];
  uniforms = 'n : i32, m : i32, heads : i32, group : i32, kvHeads : i32, chunk : i32, chunks : i32, xscale : f32,';
  private readonly d4: number;
  private readonly dv4: number;
  private readonly f4: number;

  constructor(
    batch: number,
    heads: number,
    n: number,
    dPad: number,
    dvPad: number,
    private readonly features: number,
    private readonly kind: FeatureKind,
    private readonly causal: boolean,
  ) {
    this.d4 = dPad / 4;
    this.dv4 = dvPad / 4;
    this.f4 = Math.ceil(features / 4);
    const projected = isProjectedKind(kind);
    this.variableNames = ['q', ...(causal ? [projected ? 'phik' : 'k', 'v', 'keyLength'] : []), 'state', ...(projected ? ['omegaT'] : [])];
    this.variableComponents = this.variableNames.map((x) => (x === 'keyLength' ? 1 : 4));
    this.outputShape = [batch, heads, n, dvPad];
    this.dispatch = [Math.ceil(n / LINEAR_WORKGROUP), batch * heads, 1];
    this.shaderKey = `AttnCatalogLinearQuery_${kind}_${this.d4}_${this.dv4}_${features}_${causal ? 'c' : 'nc'}`;
  }

  static uniformData(u: LinearQueryUniforms) {
    const i = (x: number) => ({ type: 'int32', data: [x] });
    return [i(u.n), i(u.m), i(u.heads), i(u.group), i(u.kvHeads), i(u.chunk), i(u.chunks), { type: 'float32', data: [u.xscale] }];
  }

  getUserCode(): string {
    const { d4, dv4, f4, causal, features } = this;
    const fPad = 4 * f4;
    const exp = isExpKind(this.kind);
    const projected = isProjectedKind(this.kind);
    const stride = dv4 + 1;
    const padded = features % 4 !== 0;
    // Query features into fq[]; for the softmax kernel also the bound A over the state's R_f.
    const queryFeatures = projected
      ? `${unroll(d4, (u) => `    let q${u} = q[qb + ${u}] * uniforms.xscale;`)}
    for (var f4 = 0; f4 < ${f4}; f4 = f4 + 1) {
      var x = vec4<f32>(${[0, 1, 2, 3].map((c) => unroll(d4, (u) => `dot(q${u}, omegaT[(f4 * 4 + ${c}) * ${d4} + ${u}])`, ' + ')).join(',\n        ')});
      ${exp ? '' : 'x = max(x, vec4<f32>(0.0));'}
      ${padded ? `if (f4 == ${f4 - 1}) { x = ${exp ? `select(vec4<f32>(${NO_KEY_WGSL}), x, ${lastLaneMask(features)} > vec4<f32>(0.5))` : `x * ${lastLaneMask(features)}`}; }` : ''}
      fq[f4] = x;
      ${
        exp
          ? `let rr = vec4<f32>(${[0, 1, 2, 3].map((c) => `state[(sb + f4 * 4 + ${c}) * ${stride} + ${dv4}].y`).join(', ')});
      let e = x + rr;
      A = max(A, max(max(e.x, e.y), max(e.z, e.w)));`
          : ''
      }
    }`
      : `${unroll(d4, (u) => `    fq[${u}] = featureMap(q[qb + ${u}]);`)}
    ${padded ? `fq[${d4 - 1}] = fq[${d4 - 1}] * ${lastLaneMask(features)};` : ''}`;
    const keyFeat = (f: string) => (projected ? `phik[(kvBase + j) * ${f4} + ${f}]` : `featureMap(k[(kvBase + j) * ${d4} + ${f}])`);
    const inter = `    for (var f = 0; f < ${fPad}; f = f + 1) {
      let sr = (sb + f) * ${stride};
      let st = state[sr + ${dv4}];
      let w = ${exp ? 'exp(fq[f / 4][f % 4] + st.y - A)' : 'fq[f / 4][f % 4]'};
      den = den + w * st.x;
${unroll(dv4, (u) => `      acc${u} = acc${u} + w * state[sr + ${u}];`)}
    }`;
    const intraWeight = exp
      ? `      for (var f4 = 0; f4 < ${f4}; f4 = f4 + 1) {
        w = w + dot(exp(fq[f4] + ${keyFeat('f4')} - vec4<f32>(A)), vec4<f32>(1.0));
      }`
      : projected
        ? `      for (var f4 = 0; f4 < ${f4}; f4 = f4 + 1) {
        w = w + dot(fq[f4], ${keyFeat('f4')});
      }`
        : unroll(d4, (u) => `      w = w + dot(fq[${u}], ${keyFeat(String(u))});`);
    const body = causal
      ? `    let p = row + uniforms.m - uniforms.n;
    if (p >= 0) {
      let b = bh / uniforms.heads;
      let t = p / uniforms.chunk;
      let sb = (bk * uniforms.chunks + t) * ${fPad};
      let kvBase = bk * uniforms.m;
${queryFeatures}
      let kEnd = clamp(keyLength[b], 0, uniforms.m);
      let j0 = t * uniforms.chunk;
      let j1 = min(p + 1, kEnd);
${
  exp
    ? `      for (var j = j0; j < j1; j = j + 1) {
        for (var f4 = 0; f4 < ${f4}; f4 = f4 + 1) {
          let e = fq[f4] + ${keyFeat('f4')};
          A = max(A, max(max(e.x, e.y), max(e.z, e.w)));
        }
      }`
    : ''
}
${inter}
      for (var j = j0; j < j1; j = j + 1) {
        var w = 0.0;
${intraWeight}
        den = den + w;
        let vb = (kvBase + j) * ${dv4};
${unroll(dv4, (u) => `        acc${u} = acc${u} + w * v[vb + ${u}];`)}
      }
    }`
      : `    let sb = bk * ${fPad};
${queryFeatures}
${inter}`;
    return `
  ${projected ? '' : elementwiseWgsl(this.kind)}

  fn main() {
    let row = i32(globalId.x);
    let bh = i32(globalId.y);
    if (row >= uniforms.n) { return; }
    let h = bh % uniforms.heads;
    let bk = (bh / uniforms.heads) * uniforms.kvHeads + h / uniforms.group;
    let qb = (bh * uniforms.n + row) * ${d4};
    var fq : array<vec4<f32>, ${f4}>;
    var A = -3.0e38;
    var den = 0.0;
${unroll(dv4, (u) => `    var acc${u} = vec4<f32>(0.0);`)}
${body}
    // Where the denominator is 0 the output is 0.
    var inv = 0.0;
    if (den > 0.0) { inv = 1.0 / den; }
    let ob = (bh * uniforms.n + row) * ${dv4};
${unroll(dv4, (u) => `    result[ob + ${u}] = acc${u} * inv;`)}
  }
`;
  }
}
