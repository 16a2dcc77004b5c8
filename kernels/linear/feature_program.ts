/**
 * The feature passes of the fused linear-attention kernel (FAVOR+ maps only): the features of
 * the keys `[batch·kvHeads, m, F]` (the first pass, read by the chunk sums and the causal
 * queries) and of the queries `[batch·heads, n, F]` (read by the query pass), one invocation per
 * (row, head, 4 features) with one loop over the head dim's vec4s.
 *
 * - keys: the softmax kernel stores the exponents `k'·ω − ‖k'‖²/2`, the relu kernel `relu(k'·ω)`;
 * - queries: the softmax kernel stores `q'·ω` (its −‖q'‖²/2 is one factor per row, which
 *   cancels), the relu kernel `relu(q'·ω)`; padding features (past F) are written as "no key"
 *   (exponents) or 0, so that they never weigh anything.
 *
 * Sizes are uniforms: the shader depends only on the kind and the mode.
 *
 * @module
 */
import type { WebGPUProgram } from '../shared/webgpu_types.js';
import { isExpKind, NO_KEY_WGSL, type FeatureKind } from './feature_maps.js';
import { LINEAR_WORKGROUP } from './plan.js';

/** Uniform values of {@link LinearFeatureProgram}. */
export interface LinearFeatureUniforms {
  /** Rows per head: m (keys) or n (queries). */
  rows: number;
  d4: number;
  f4: number;
  features: number;
  xscale: number;
}

export class LinearFeatureProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [1], y: [0], z: [2] };
  dispatch: [number, number, number];
  variableNames = ['x', 'omegaT'];
  variableComponents = [4, 4];
  outputComponent = 4;
  workgroupSize: [number, number, number] = [LINEAR_WORKGROUP, 1, 1];
  uniforms = 'rows : i32, d4 : i32, f4 : i32, features : i32, xscale : f32,';

  /**
   * @param heads batch·kvHeads (keys) or batch·heads (queries)
   * @param rows m (keys) or n (queries)
   */
  constructor(
    heads: number,
    rows: number,
    fPad: number,
    private readonly kind: FeatureKind,
    private readonly mode: 'key' | 'query',
  ) {
    this.outputShape = [heads, rows, fPad];
    this.dispatch = [Math.ceil(rows / LINEAR_WORKGROUP), heads, fPad / 4];
    this.shaderKey = `AttnCatalogLinearFeatures_${kind}_${mode}`;
  }

  static uniformData(u: LinearFeatureUniforms) {
    const i = (x: number) => ({ type: 'int32', data: [x] });
    return [i(u.rows), i(u.d4), i(u.f4), i(u.features), { type: 'float32', data: [u.xscale] }];
  }

  getUserCode(): string {
    const exp = isExpKind(this.kind);
    const key = this.mode === 'key';
    const finish = key
      ? exp
        ? 'r = r - vec4<f32>(0.5 * sq);'
        : 'r = max(r, vec4<f32>(0.0));'
      : `let inF = vec4<i32>(4 * f4) + vec4<i32>(0, 1, 2, 3) < vec4<i32>(uniforms.features);
    r = select(vec4<f32>(${exp ? NO_KEY_WGSL : '0.0'}), ${exp ? 'r' : 'max(r, vec4<f32>(0.0))'}, inF);`;
    return `
  fn main() {
    let j = i32(globalId.x);
    let hb = i32(globalId.y);
    let f4 = i32(globalId.z);
    if (j >= uniforms.rows) { return; }
    let d4 = uniforms.d4;
    let xb = (hb * uniforms.rows + j) * d4;
    let ob = f4 * 4 * d4;
    var r = vec4<f32>(0.0);
    ${key && exp ? 'var sq = 0.0;' : ''}
    for (var t = 0; t < d4; t = t + 1) {
      let xs = x[xb + t] * uniforms.xscale;
      r = r + vec4<f32>(dot(xs, omegaT[ob + t]), dot(xs, omegaT[ob + d4 + t]), dot(xs, omegaT[ob + 2 * d4 + t]), dot(xs, omegaT[ob + 3 * d4 + t]));
      ${key && exp ? 'sq = sq + dot(xs, xs);' : ''}
    }
    ${finish}
    result[(hb * uniforms.rows + j) * uniforms.f4 + f4] = r;
  }
`;
  }
}
