/**
 * The last pass of the fused linear-attention kernel: the output rows. A row reads its features
 * φ(q_i) (FAVOR+: the query-feature pass's output; elementwise maps: φ of q on the fly) and computes
 *
 * - non-causal: `o_i = φ(q_i)ᵀS / φ(q_i)ᵀz` from the merged state of its kv head, one invocation
 *   per (query row, head, block of {@link DV_BLOCK} vec4 columns of the output);
 * - causal: the state of the chunks before its own chunk (pass 3's exclusive scan) plus the keys
 *   of its own chunk up to its position p_i = i + m − n (the small causal C × C part), so the row
 *   never reads a state or key past p_i. One invocation per (query row, head): it computes the
 *   weights of its chunk's keys once, into a private array of `intraSlots` ≥ C floats, then
 *   walks the output's column blocks.
 *
 * Loops run over the features (a vec4 at a time), the chunk's keys and the column blocks; the
 * unrolled code is one vec4 of features × one block of columns, whatever F and dv are. Sizes are
 * uniforms: the shader depends only on the kind, causality and (causal) `intraSlots`.
 *
 * The softmax kernel works with exponents: the row's bound `A` is the largest of
 * `q'·ω_f + R_f` (state) and `q'·ω_f + L_jf` (its own chunk's allowed keys), so every weight
 * `exp(· − A)` is at most 1 and the largest is 1. Where the denominator is 0 the output is 0.
 *
 * @module
 */
import { unroll } from '../shared/wgsl.js';
import type { WebGPUProgram } from '../shared/webgpu_types.js';
import { elementwiseWgsl, isExpKind, isProjectedKind, type FeatureKind } from './feature_maps.js';
import { DV_BLOCK, LINEAR_WORKGROUP } from './plan.js';

/** Uniform values of {@link LinearQueryProgram}. */
export interface LinearQueryUniforms {
  n: number;
  m: number;
  heads: number;
  group: number;
  kvHeads: number;
  chunk: number;
  chunks: number;
  f4: number;
  dv4: number;
  features: number;
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
  uniforms = 'n : i32, m : i32, heads : i32, group : i32, kvHeads : i32, chunk : i32, chunks : i32, f4 : i32, dv4 : i32, features : i32,';

  /** @param intraSlots causal: size of the private array of the chunk's key weights (>= the plan's chunk). */
  constructor(
    batch: number,
    heads: number,
    n: number,
    dvPad: number,
    private readonly kind: FeatureKind,
    private readonly causal: boolean,
    private readonly intraSlots: number,
    /** Write the numerator φ(q)ᵀS alone (no division by φ(q)ᵀz): the backward's reverse scans. */
    private readonly raw = false,
  ) {
    const projected = isProjectedKind(kind);
    this.variableNames = [projected ? 'phiq' : 'q', ...(causal ? [projected ? 'phik' : 'k', 'v', 'keyLength'] : []), 'state'];
    this.variableComponents = this.variableNames.map((x) => (x === 'keyLength' ? 1 : 4));
    this.outputShape = [batch, heads, n, dvPad];
    this.dispatch = [Math.ceil(n / LINEAR_WORKGROUP), batch * heads, causal ? 1 : Math.ceil(dvPad / 4 / DV_BLOCK)];
    this.shaderKey = `AttnCatalogLinearQuery_${kind}_${causal ? `c${intraSlots}` : 'nc'}_${DV_BLOCK}${raw ? '_raw' : ''}`;
  }

  static uniformData(u: LinearQueryUniforms) {
    const i = (x: number) => ({ type: 'int32', data: [x] });
    return [u.n, u.m, u.heads, u.group, u.kvHeads, u.chunk, u.chunks, u.f4, u.dv4, u.features].map(i);
  }

  getUserCode(): string {
    const { causal } = this;
    const exp = isExpKind(this.kind);
    const projected = isProjectedKind(this.kind);
    const G = DV_BLOCK;
    const lanes = ['x', 'y', 'z', 'w'];
    // The row's features, vec4 f4 (elementwise maps: F = d, padding lanes masked to 0).
    const fq = projected ? 'phiq[qb + f4]' : 'queryFeature(q[qb + f4], f4)';
    const keyFeat = projected ? 'phik[(kvBase + j) * f4s + f4]' : 'featureMap(k[(kvBase + j) * f4s + f4])';
    const maxOf = (e: string) => `max(max(${e}.x, ${e}.y), max(${e}.z, ${e}.w))`;
    const ind = (s: string, by: number) => s.replace(/^/gm, ' '.repeat(by));
    // Bound A over the state's R_f (softmax kernel).
    const stateBound = `for (var f4 = 0; f4 < f4s; f4 = f4 + 1) {
  let rr = vec4<f32>(${lanes.map((_, c) => `state[(sb + f4 * 4 + ${c}) * stride + dv4].y`).join(', ')});
  let e = ${fq} + rr;
  A = max(A, ${maxOf('e')});
}`;
    // Columns c0.. of the block starting at u0; a column past dv4 re-reads the last one and is never written.
    const columns = unroll(G, (g) => `let c${g} = min(u0 + ${g}, dv4 - 1);`);
    const zero = `var den = 0.0;\n${unroll(G, (g) => `var acc${g} = vec4<f32>(0.0);`)}`;
    // φ(q_i)ᵀ·state (and ·z) for this block of columns.
    const inter = `for (var f4 = 0; f4 < f4s; f4 = f4 + 1) {
  let x = ${fq};
${unroll(4, (c) => `  {
    let sr = (sb + f4 * 4 + ${c}) * stride;
    let st = state[sr + dv4];
    let w = ${exp ? `exp(x.${lanes[c]} + st.y - A)` : `x.${lanes[c]}`};
    den = den + w * st.x;
${unroll(G, (g) => `    acc${g} = acc${g} + w * state[sr + c${g}];`)}
  }`)}
}`;
    // Where the denominator is 0 the output is 0.
    const write = this.raw
      ? unroll(G, (g) => `if (u0 + ${g} < dv4) { result[ob + u0 + ${g}] = acc${g}; }`)
      : `var inv = 0.0;
if (den > 0.0) { inv = 1.0 / den; }
${unroll(G, (g) => `if (u0 + ${g} < dv4) { result[ob + u0 + ${g}] = acc${g} * inv; }`)}`;
    const intraWeight = exp
      ? `for (var f4 = 0; f4 < f4s; f4 = f4 + 1) {
  w = w + dot(exp(${fq} + ${keyFeat} - vec4<f32>(A)), vec4<f32>(1.0));
}`
      : `for (var f4 = 0; f4 < f4s; f4 = f4 + 1) {
  w = w + dot(${fq}, ${keyFeat});
}`;
    const body = causal
      ? `    let p = row + uniforms.m - uniforms.n;
    // A row before every key (n > m) has no allowed key: it reads nothing and writes zeros.
    let live = p >= 0;
    let pc = max(p, 0);
    let b = bh / uniforms.heads;
    let t = pc / uniforms.chunk;
    let sb = (bk * uniforms.chunks + t) * 4 * f4s;
    let kvBase = bk * uniforms.m;
    let j0 = t * uniforms.chunk;
    var j1 = j0;
    if (live) { j1 = min(p + 1, clamp(keyLength[b], 0, uniforms.m)); }
    // The weights of the chunk's allowed keys, once for all column blocks.
    var wj : array<f32, ${this.intraSlots}>;
    if (live) {
${
  exp
    ? `${ind(stateBound, 6)}
      for (var j = j0; j < j1; j = j + 1) {
        for (var f4 = 0; f4 < f4s; f4 = f4 + 1) {
          let e = ${fq} + ${keyFeat};
          A = max(A, ${maxOf('e')});
        }
      }`
    : ''
}
${
  projected
    ? `      for (var j = j0; j < j1; j = j + 1) {
        var w = 0.0;
${ind(intraWeight, 8)}
        wj[j - j0] = w;
      }`
    : `      // φ(q) is computed on the fly: once per vec4 of features, for all the chunk's keys.
      for (var j = j0; j < j1; j = j + 1) { wj[j - j0] = 0.0; }
      for (var f4 = 0; f4 < f4s; f4 = f4 + 1) {
        let x = ${fq};
        for (var j = j0; j < j1; j = j + 1) {
          wj[j - j0] = wj[j - j0] + dot(x, ${keyFeat});
        }
      }`
}
    }
    for (var u0 = 0; u0 < dv4; u0 = u0 + ${G}) {
${ind(columns, 6)}
${ind(zero, 6)}
      if (live) {
${ind(inter, 8)}
        for (var j = j0; j < j1; j = j + 1) {
          let w = wj[j - j0];
          den = den + w;
          let vb = (kvBase + j) * dv4;
${unroll(G, (g) => `          acc${g} = acc${g} + w * v[vb + c${g}];`)}
        }
      }
${ind(write, 6)}
    }`
      : `    let sb = bk * 4 * f4s;
    let u0 = i32(globalId.z) * ${G};
${ind(columns, 4)}
${ind(zero, 4)}
${exp ? ind(stateBound, 4) : ''}
${ind(inter, 4)}
${ind(write, 4)}`;
    return `
  ${
    projected
      ? ''
      : `${elementwiseWgsl(this.kind)}
  fn queryFeature(x : vec4<f32>, f4 : i32) -> vec4<f32> {
    return select(vec4<f32>(0.0), featureMap(x), vec4<i32>(4 * f4) + vec4<i32>(0, 1, 2, 3) < vec4<i32>(uniforms.features));
  }`
  }

  fn main() {
    let row = i32(globalId.x);
    let bh = i32(globalId.y);
    if (row >= uniforms.n) { return; }
    let f4s = uniforms.f4;
    let dv4 = uniforms.dv4;
    let stride = dv4 + 1;
    let h = bh % uniforms.heads;
    let bk = (bh / uniforms.heads) * uniforms.kvHeads + h / uniforms.group;
    let qb = (bh * uniforms.n + row) * f4s;
    let ob = (bh * uniforms.n + row) * dv4;
    var A = -3.0e38;
${body}
  }
`;
  }
}
