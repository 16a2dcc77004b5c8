/**
 * The flash kernel's backward WGSL programs (FlashAttention-2's scheme, no float atomics): the
 * forward's partial rows give each query row's logsumexp ({@link LseProgram}); then
 *
 * - {@link FlashBackwardQProgram}: one invocation per (query row, batch·head, key split) walks
 *   exactly the keys the forward visited (the same loops: `rowKeyLoops`) and accumulates
 *   `dq_i = s·Σ_j dS_ij·k_j`, with `P_ij = w_ij·exp(s·q_i·k_j − lse_i)`, `dP_ij = dO_i·v_j` and
 *   `dS_ij = P_ij·(dP_ij − D_i)`, `D_i = dO_i·O_i`;
 * - {@link FlashBackwardKVProgram}: one invocation per (key j, batch·query head, query split)
 *   walks the queries that visit key j — all rows (dense, from the first causal one) or the
 *   query blocks of the transposed layout — and accumulates `dv_j = Σ_i P_ij·dO_i` and
 *   `dk_j = s·Σ_i dS_ij·q_i`. Grouped heads write one partial per query head, summed afterwards.
 *
 * Every split writes its own partial (`[splits, batch·heads, rows, ·]`), summed by the caller:
 * the probabilities are recomputed from the saved logsumexp, so splits need no merge. Never an
 * n×m tensor. The element rule is the forward's (`ruleWeight`, `ruleInit`); full runs skip it.
 *
 * @module
 */
import type { WebGPUProgram } from '../shared/webgpu_types.js';
import { unroll } from '../shared/wgsl.js';
import { ROWS_PER_WORKGROUP } from './plan.js';
import { ROW_MAX_START, ruleKeyPart, rowKeyLoops, rowPrologue, underRule, type FlashVariant } from './flash_program.js';

/** What the backward programs are specialised on (written into the WGSL source, so in `shaderKey`). */
export type BackwardVariant = Pick<FlashVariant, 'causal' | 'sparse' | 'rule'>;

const int = (x: number) => ({ type: 'int32', data: [x] });

/** Uniform values of both backward programs, in declaration order. */
export interface BackwardUniforms {
  scale: number;
  n: number;
  m: number;
  heads: number;
  group: number;
  kvHeads: number;
  /** dQ: keys per split (dense) / a row's visited keys per split (block-sparse); dK/dV: query rows per split. */
  chunk: number;
  splits: number;
  blockQ: number;
  blockK: number;
  /** dQ: query blocks of the layout; dK/dV: key blocks of the transposed layout. */
  numBlocks: number;
  layoutHeads: number;
  rowOffset: number;
  /** batch · heads. */
  rows: number;
}

const UNIFORMS =
  'scale : f32, n : i32, m : i32, heads : i32, group : i32, kvHeads : i32, chunk : i32, splits : i32, ' +
  'blockQ : i32, blockK : i32, numQBlocks : i32, layoutHeads : i32, rowOffset : i32, bhRows : i32,';

/** Uniform list for `runWebGPUProgram`, matching both programs' `uniforms`. */
export function backwardUniformData(u: BackwardUniforms) {
  return [
    { type: 'float32', data: [u.scale] },
    int(u.n), int(u.m), int(u.heads), int(u.group), int(u.kvHeads), int(u.chunk), int(u.splits),
    int(u.blockQ), int(u.blockK), int(u.numBlocks), int(u.layoutHeads), int(u.rowOffset), int(u.rows),
  ];
}

/** The optional bindings after q, k, v and keyLength, then dy and `stats` `[batch·heads·n, 2]`: each query row's (lse, D). */
function bindings(variant: BackwardVariant): { names: string[]; components: number[] } {
  const names = ['q', 'k', 'v', 'keyLength', ...(variant.sparse ? ['rowStart', 'entries'] : []), ...(variant.rule?.usesParams ? ['params'] : []), 'dy', 'stats'];
  const components = names.map((n) => (n === 'q' || n === 'k' || n === 'v' || n === 'dy' ? 4 : 1));
  return { names, components };
}

/** The rule part of a backward shaderKey (the seek is unused by dK/dV, but the rule source is the same). */
const keyOf = (v: BackwardVariant) => `${v.causal ? 'c' : 'nc'}_${v.sparse ? 'csr' : 'dense'}_${ruleKeyPart(v.rule)}`;

/** dQ partials `[splits, batch·heads, n, dPad]`: see the module comment. */
export class FlashBackwardQProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0], y: [1] };
  dispatch: [number, number, number];
  variableNames: string[];
  variableComponents: number[];
  outputComponent = 4;
  workgroupSize: [number, number, number] = [ROWS_PER_WORKGROUP, 1, 1];
  uniforms = UNIFORMS;
  private readonly d4: number;
  private readonly dv4: number;

  constructor(batch: number, heads: number, n: number, dPad: number, dvPad: number, splits: number, private readonly variant: BackwardVariant) {
    this.d4 = dPad / 4;
    this.dv4 = dvPad / 4;
    ({ names: this.variableNames, components: this.variableComponents } = bindings(variant));
    this.outputShape = [splits, batch * heads, n, dPad];
    this.dispatch = [Math.ceil(n / ROWS_PER_WORKGROUP), batch * heads, splits];
    this.shaderKey = `AttnCatalogFlashBwdQ_${this.d4}_${this.dv4}_${keyOf(variant)}`;
  }

  getUserCode(): string {
    const { d4, dv4 } = this;
    const { rule, causal } = this.variant;
    const body = (indent: string, withRule: boolean) => {
      const lines = [
        `let kb = (kvBase + j) * ${d4};`,
        `let s = ${unroll(d4, (t) => `dot(q${t}, k[kb + ${t}])`, ' + ')};`,
        `let pr = ${withRule ? 'w * ' : ''}exp(s - rowLse);`,
        `let vb = (kvBase + j) * ${dv4};`,
        `let dp = ${unroll(dv4, (t) => `dot(do${t}, v[vb + ${t}])`, ' + ')};`,
        'let ds = pr * (dp - dRow);',
        ...Array.from({ length: d4 }, (_, t) => `dq${t} = dq${t} + ds * k[kb + ${t}];`),
      ];
      return withRule ? underRule(lines, indent) : lines.map((l) => indent + l).join('\n');
    };
    return `
  ${rule ? rule.wgsl : ''}

  fn main() {
${rowPrologue(d4, causal)}
    let oBase = (bh * uniforms.n + row) * ${dv4};
${unroll(dv4, (t) => `    let do${t} = dy[oBase + ${t}];`)}
    let rowLse = stats[2 * (bh * uniforms.n + row)];
    let dRow = stats[2 * (bh * uniforms.n + row) + 1];
${unroll(d4, (t) => `    var dq${t} = vec4<f32>(0.0);`)}
    let kvBase = (b * uniforms.kvHeads + kvh) * uniforms.m;
    ${rule?.init ? 'ruleInit(p, h);' : ''}
${rowKeyLoops(this.variant, body)}
    let ob = ((part * uniforms.bhRows + bh) * uniforms.n + row) * ${d4};
${unroll(d4, (t) => `    result[ob + ${t}] = dq${t} * uniforms.scale;`)}
  }
`;
  }
}

/**
 * dK | dV partials `[splits, batch·heads, m, dPad + dvPad]` (per query head; the caller sums the
 * splits and each K/V head's group): see the module comment. In block-sparse mode `rowStart` and
 * `entries` hold the transposed layout (rows: key blocks; entries: runs of query blocks, with
 * the visited query rows before each run, counted in whole blocks of `blockQ`).
 */
export class FlashBackwardKVProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0], y: [1] };
  dispatch: [number, number, number];
  variableNames: string[];
  variableComponents: number[];
  outputComponent = 4;
  workgroupSize: [number, number, number] = [ROWS_PER_WORKGROUP, 1, 1];
  uniforms = UNIFORMS;
  private readonly d4: number;
  private readonly dv4: number;

  constructor(batch: number, heads: number, m: number, dPad: number, dvPad: number, splits: number, private readonly variant: BackwardVariant) {
    this.d4 = dPad / 4;
    this.dv4 = dvPad / 4;
    ({ names: this.variableNames, components: this.variableComponents } = bindings(variant));
    this.outputShape = [splits, batch * heads, m, dPad + dvPad];
    this.dispatch = [Math.ceil(m / ROWS_PER_WORKGROUP), batch * heads, splits];
    this.shaderKey = `AttnCatalogFlashBwdKV_${this.d4}_${this.dv4}_${keyOf(variant)}`;
  }

  /** The per-query body (query row `i`). */
  private body(indent: string, withRule: boolean): string {
    const { d4, dv4 } = this;
    const { rule } = this.variant;
    const lines = [
      `let qb = (bh * uniforms.n + i) * ${d4};`,
      `let s = ${unroll(d4, (t) => `dot(q[qb + ${t}], k${t})`, ' + ')};`,
      `let pr = ${withRule ? 'w * ' : ''}exp(s - stats[2 * (bh * uniforms.n + i)]);`,
      `let ob = (bh * uniforms.n + i) * ${dv4};`,
      ...Array.from({ length: dv4 }, (_, t) => `dv${t} = dv${t} + pr * dy[ob + ${t}];`),
      `let dp = ${unroll(dv4, (t) => `dot(dy[ob + ${t}], v${t})`, ' + ')};`,
      'let ds = pr * (dp - stats[2 * (bh * uniforms.n + i) + 1]);',
      ...Array.from({ length: d4 }, (_, t) => `dk${t} = dk${t} + ds * q[qb + ${t}];`),
    ];
    if (!withRule) return lines.map((l) => indent + l).join('\n');
    return [`${indent}let p = i + uniforms.m - uniforms.n;`, ...(rule?.init ? [`${indent}ruleInit(p, h);`] : []), underRule(lines, indent)].join('\n');
  }

  getUserCode(): string {
    const { d4, dv4 } = this;
    const { rule, causal, sparse } = this.variant;
    const loops = !sparse
      ? `      let iStart = max(part * uniforms.chunk, iLo);
      let iEnd = min(part * uniforms.chunk + uniforms.chunk, uniforms.n);
      for (var i = iStart; i < iEnd; i = i + 1) {
${this.body('        ', !!rule)}
      }`
      : `      // The query blocks that visit key j's block (the transposed layout), this split's share.
      let lh = min(h, uniforms.layoutHeads - 1);
      let rs = lh * (uniforms.numQBlocks + 1) + j / uniforms.blockK;
      let e0 = rowStart[rs];
      let e1 = rowStart[rs + 1];
      var wLo = 0;
      var wHi = 0;
      if (e1 > e0) {
        let total = entries[3 * (e1 - 1) + 2] + (entries[3 * (e1 - 1) + 1] >> 1) * uniforms.blockQ;
        let share = (total + uniforms.splits - 1) / uniforms.splits;
        wLo = part * share;
        wHi = wLo + share;
      }
      for (var ei = e0; ei < e1; ei = ei + 1) {
        let r0 = entries[3 * ei] * uniforms.blockQ - uniforms.rowOffset;
        let run = entries[3 * ei + 1];
        let c0 = entries[3 * ei + 2];
        let len = (run >> 1) * uniforms.blockQ;
        let i0 = max(r0 + clamp(wLo - c0, 0, len), iLo);
        let i1 = min(r0 + clamp(wHi - c0, 0, len), uniforms.n);
${
  rule
    ? `        if ((run & 1) == 1) {
          for (var i = i0; i < i1; i = i + 1) {
${this.body('            ', false)}
          }
        } else {
          for (var i = i0; i < i1; i = i + 1) {
${this.body('            ', true)}
          }
        }`
    : `        for (var i = i0; i < i1; i = i + 1) {
${this.body('          ', false)}
        }`
}
      }`;
    return `
  ${rule ? rule.wgsl : ''}

  fn main() {
    let j = i32(globalId.x);
    let bh = i32(globalId.y);
    let part = i32(globalId.z);
    if (j >= uniforms.m) { return; }
    let b = bh / uniforms.heads;
    let h = bh - b * uniforms.heads;
    let kvh = h / uniforms.group;
${unroll(d4, (t) => `    var dk${t} = vec4<f32>(0.0);`)}
${unroll(dv4, (t) => `    var dv${t} = vec4<f32>(0.0);`)}
    if (j < clamp(keyLength[b], 0, uniforms.m)) {
      let kBase = ((b * uniforms.kvHeads + kvh) * uniforms.m + j) * ${d4};
${unroll(d4, (t) => `      let k${t} = k[kBase + ${t}] * uniforms.scale;`)}
      let vBase = ((b * uniforms.kvHeads + kvh) * uniforms.m + j) * ${dv4};
${unroll(dv4, (t) => `      let v${t} = v[vBase + ${t}];`)}
      // The first query row that may see key j: position i + m − n >= j when causal.
      let iLo = ${causal ? 'max(0, j - (uniforms.m - uniforms.n))' : '0'};
${loops}
    }
    let ob = ((part * uniforms.bhRows + bh) * uniforms.m + j) * ${d4 + dv4};
${unroll(d4, (t) => `    result[ob + ${t}] = dk${t} * uniforms.scale;`)}
${unroll(dv4, (t) => `    result[ob + ${d4 + t}] = dv${t};`)}
  }
`;
  }
}

/**
 * Each query row's logsumexp `[batch, heads, n]` from the forward's partial rows
 * `[batch·heads, S, n, dvPad + 4]`: `M + log Σ_s e^{max_s − M}·sum_s`, 0 for a row with no allowed
 * key (no key of it is ever recomputed).
 */
export class LseProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0], y: [1] };
  dispatch: [number, number, number];
  variableNames = ['partial'];
  variableComponents = [4];
  workgroupSize: [number, number, number] = [ROWS_PER_WORKGROUP, 1, 1];
  uniforms = 'n : i32, splits : i32,';
  private readonly dv4: number;

  constructor(batch: number, heads: number, n: number, dvPad: number) {
    this.dv4 = dvPad / 4;
    this.outputShape = [batch, heads, n];
    this.dispatch = [Math.ceil(n / ROWS_PER_WORKGROUP), batch * heads, 1];
    this.shaderKey = `AttnCatalogFlashLse_${this.dv4}`;
  }

  static uniformData(n: number, splits: number) {
    return [int(n), int(splits)];
  }

  getUserCode(): string {
    const stride = this.dv4 + 1;
    return `
  fn main() {
    let row = i32(globalId.x);
    let bh = i32(globalId.y);
    if (row >= uniforms.n) { return; }
    var gMax = ${ROW_MAX_START};
    for (var s = 0; s < uniforms.splits; s = s + 1) {
      let st = partial[((bh * uniforms.splits + s) * uniforms.n + row) * ${stride} + ${this.dv4}];
      if (st.y > 0.0) { gMax = max(gMax, st.x); }
    }
    var total = 0.0;
    for (var s = 0; s < uniforms.splits; s = s + 1) {
      let st = partial[((bh * uniforms.splits + s) * uniforms.n + row) * ${stride} + ${this.dv4}];
      if (st.y > 0.0) { total = total + exp(st.x - gMax) * st.y; }
    }
    var lse = 0.0;
    if (total > 0.0) { lse = gMax + log(total); }
    result[bh * uniforms.n + row] = lse;
  }
`;
  }
}
