/**
 * Pass 1 of the fused linear-attention kernel (FAVOR+ maps only): the key features
 * `[batch·kvHeads, m, F]`, one invocation per (key, kv head, 4 features). The softmax kernel
 * stores exponents `k'·ω − ‖k'‖²/2`, the relu kernel `relu(k'·ω)`. Head dims are unrolled into
 * vec4 statements; there is no loop.
 *
 * @module
 */
import { unroll } from '../shared/wgsl.js';
import type { WebGPUProgram } from '../shared/webgpu_types.js';
import { isExpKind, type FeatureKind } from './feature_maps.js';
import { LINEAR_WORKGROUP } from './plan.js';

export class LinearFeatureProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [1], y: [0], z: [2] };
  dispatch: [number, number, number];
  variableNames = ['k', 'omegaT'];
  variableComponents = [4, 4];
  outputComponent = 4;
  workgroupSize: [number, number, number] = [LINEAR_WORKGROUP, 1, 1];
  uniforms = 'm : i32, xscale : f32,';
  private readonly d4: number;
  private readonly f4: number;

  constructor(
    bk: number,
    m: number,
    dPad: number,
    fPad: number,
    private readonly kind: FeatureKind,
  ) {
    this.d4 = dPad / 4;
    this.f4 = fPad / 4;
    this.outputShape = [bk, m, fPad];
    this.dispatch = [Math.ceil(m / LINEAR_WORKGROUP), bk, this.f4];
    this.shaderKey = `AttnCatalogLinearFeatures_${kind}_${this.d4}_${this.f4}`;
  }

  static uniformData(m: number, xscale: number) {
    return [
      { type: 'int32', data: [m] },
      { type: 'float32', data: [xscale] },
    ];
  }

  getUserCode(): string {
    const { d4, f4 } = this;
    const exp = isExpKind(this.kind);
    const dotF = (c: number) => unroll(d4, (t) => `dot(k${t}, omegaT[(f4 * 4 + ${c}) * ${d4} + ${t}])`, ' + ');
    return `
  fn main() {
    let j = i32(globalId.x);
    let bk = i32(globalId.y);
    let f4 = i32(globalId.z);
    if (j >= uniforms.m) { return; }
    let kb = (bk * uniforms.m + j) * ${d4};
${unroll(d4, (t) => `    let k${t} = k[kb + ${t}] * uniforms.xscale;`)}
    var r = vec4<f32>(${[0, 1, 2, 3].map(dotF).join(',\n      ')});
    ${exp ? `let half = 0.5 * (${unroll(d4, (t) => `dot(k${t}, k${t})`, ' + ')});
    r = r - vec4<f32>(half);` : 'r = max(r, vec4<f32>(0.0));'}
    result[(bk * uniforms.m + j) * ${f4} + f4] = r;
  }
`;
  }
}
