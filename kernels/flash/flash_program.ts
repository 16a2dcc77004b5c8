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
 * Two key-loop modes: dense (keys `[0, m)` cut into split chunks) and block-sparse (the runs of
 * key blocks a CSR layout lists for the query block, cut into split chunks of layout entries;
 * a run marked full skips the element rule).
 * Either can apply an element rule `ruleWeight(p, j, h)` (0 skip, 1 keep, between: a soft
 * weight, giving `l = l·c + w·e`, `acc = acc·c + w·e·v`); a seeking rule also defines
 * `ruleSeek(p, j, h)`, and the key loop jumps from one candidate key to the next (band starts,
 * lattice steps) instead of visiting every key of a range. In block-sparse mode, query row i
 * belongs to query block `(i + rowOffset) / blockQ` (rowOffset aligns blocks to positions).
 *
 * Values written into the WGSL source (head dims, causal, split mode, layout mode, the rule)
 * are in `shaderKey`; sizes, scale, chunk and block sizes are uniforms.
 *
 * @module
 */
import type { WebGPUProgram } from '../shared/webgpu_types.js';
import { unroll } from '../shared/wgsl.js';
import { ROWS_PER_WORKGROUP } from './plan.js';

/** Uniform values of {@link FlashAttentionProgram}, in declaration order. */
export interface FlashUniforms {
  scale: number;
  n: number;
  m: number;
  heads: number;
  group: number;
  kvHeads: number;
  /** Keys per split (dense mode; block-sparse rows compute their own share). */
  chunk: number;
  splits: number;
  /** Block-sparse mode only (0 otherwise). */
  blockQ: number;
  blockK: number;
  numQBlocks: number;
  layoutHeads: number;
  /** Block-sparse mode: query row i is in query block `(i + rowOffset) / blockQ`. Default 0. */
  rowOffset?: number;
}

/** What the program is specialised on (everything here is written into the WGSL source). */
export interface FlashVariant {
  causal: boolean;
  splits: number;
  /** Block-sparse: keys come from a CSR layout (`rowStart`, and `entries`: (first block, blocks·2 + full, visited keys before it in its row) triples). */
  sparse: boolean;
  /**
   * Element rule WGSL (defines `ruleWeight`, and `ruleSeek` when `seeks`) and its shaderKey
   * part, or null for "all allowed".
   */
  rule: { key: string; wgsl: string; usesParams: boolean; seeks?: boolean; init?: boolean; exactSeek?: boolean } | null;
  /** Write the unnormalized partial rows (as with several splits) even with one split: the caller merges them. */
  partials?: boolean;
  /**
   * A relative-position score modifier (Transformer-XL's `(q_i + v_h)·R_h[p − j]`): inputs `qRel`
   * `[batch, heads, n, d]` and `rel` `[heads, m, d]` (vec4), and each score gains
   * `scale · qRel_i · rel[h, p − j]`. Needs causal (p − j in [0, m)). Per-row strategy only.
   */
  relative?: boolean;
}

/** Whether a variant writes partial rows `[batch·heads, splits, n, dv + 4]` rather than the output. */
export const writesPartials = (v: FlashVariant) => v.splits !== 1 || !!v.partials;

export class FlashAttentionProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0], y: [1] };
  dispatch: [number, number, number];
  variableNames: string[];
  variableComponents: number[];
  outputComponent = 4;
  workgroupSize: [number, number, number] = [ROWS_PER_WORKGROUP, 1, 1];
  uniforms =
    'scale : f32, n : i32, m : i32, heads : i32, group : i32, kvHeads : i32, chunk : i32, splits : i32, ' +
    'blockQ : i32, blockK : i32, numQBlocks : i32, layoutHeads : i32, rowOffset : i32,';
  private readonly d4: number;
  private readonly dv4: number;

  constructor(
    batch: number,
    heads: number,
    n: number,
    dPad: number,
    dvPad: number,
    private readonly variant: FlashVariant,
  ) {
    this.d4 = dPad / 4;
    this.dv4 = dvPad / 4;
    const { splits, sparse, rule, causal } = variant;
    const rel = variant.relative ? ['qRel', 'rel'] : [];
    this.variableNames = ['q', 'k', 'v', 'keyLength', ...(sparse ? ['rowStart', 'entries'] : []), ...(rule?.usesParams ? ['params'] : []), ...rel];
    this.variableComponents = [4, 4, 4, ...this.variableNames.slice(3, this.variableNames.length - rel.length).map(() => 1), ...rel.map(() => 4)];
    this.outputShape = writesPartials(variant) ? [batch * heads, splits, n, dvPad + 4] : [batch, heads, n, dvPad];
    this.dispatch = [Math.ceil(n / ROWS_PER_WORKGROUP), batch * heads, splits];
    this.shaderKey =
      `AttnCatalogFlash_${this.d4}_${this.dv4}_${causal ? 'c' : 'nc'}_${writesPartials(variant) ? 'split' : 'single'}` +
      `_${sparse ? 'csr' : 'dense'}_${ruleKeyPart(rule)}${variant.relative ? '_rel' : ''}`;
  }

  /** Uniform list for `runWebGPUProgram`, matching `uniforms`. */
  static uniformData(u: FlashUniforms) {
    const i = (x: number) => ({ type: 'int32', data: [x] });
    return [
      { type: 'float32', data: [u.scale] },
      i(u.n), i(u.m), i(u.heads), i(u.group), i(u.kvHeads), i(u.chunk), i(u.splits),
      i(u.blockQ), i(u.blockK), i(u.numQBlocks), i(u.layoutHeads), i(u.rowOffset ?? 0),
    ];
  }

  /** The per-key body, reading the key and value from storage. */
  private keyBody(indent: string, withRule = !!this.variant.rule): string {
    const { d4, dv4 } = this;
    const relative = this.variant.relative
      ? { base: `let rb = (relBase + p - j) * ${d4};`, score: unroll(d4, (t) => `dot(qr${t}, rel[rb + ${t}])`, ' + ') }
      : undefined;
    return keyUpdate({ d4, dv4, indent, withRule, kAt: (t) => `k[kb + ${t}]`, vAt: (t) => `v[vb + ${t}]`, kBase: `let kb = (kvBase + j) * ${d4};`, vBase: `let vb = (kvBase + j) * ${dv4};`, relative });
  }

  getUserCode(): string {
    const { d4, dv4 } = this;
    const { rule, causal } = this.variant;
    const split = writesPartials(this.variant);
    const loops = rowKeyLoops(this.variant, (indent, withRule) => this.keyBody(indent, withRule));
    return `
  ${rule ? rule.wgsl : ''}

  fn main() {
${rowPrologue(d4, causal)}
${this.variant.relative ? `    // Relative term: scale·qRel_i·rel[h, p − j], rows of rel from h·m.
    let relBase = h * uniforms.m;
${unroll(d4, (t) => `    let qr${t} = qRel[qBase + ${t}] * uniforms.scale;`)}` : ''}
${unroll(dv4, (t) => `    var acc${t} = vec4<f32>(0.0);`)}
    var rowMax = ${ROW_MAX_START};
    var rowSum = 0.0;
    let kvBase = (b * uniforms.kvHeads + kvh) * uniforms.m;
    ${rule?.init ? 'ruleInit(p, h);' : ''}
${loops}
${writeRow(dv4, split, '    ', { row: 'row', acc: (t) => `acc${t}`, max: 'rowMax', sum: 'rowSum' })}
  }
`;
  }
}

/**
 * The key loops of one query row (`row`, position `p`, head `h`, split `part`; keys below `kEnd`)
 * over the keys a variant visits: dense (this split's chunk of `[0, m)`) or block-sparse (this
 * split's share of the runs the layout lists for the row's query block; a full run skips the
 * rule), stepping by `ruleSeek` for a seeking rule. `body(indent, withRule)` is the per-key
 * statement list (key `j`), evaluating `ruleWeight` into `w` when `withRule`. Shared by the
 * forward program and the backward dQ program, so that both visit exactly the same keys.
 */
export function rowKeyLoops(variant: Pick<FlashVariant, 'sparse' | 'rule'>, body: (indent: string, withRule: boolean) => string): string {
  const { sparse, rule } = variant;
  const keyLoop = (from: string, to: string) =>
    rule?.seeks
      ? `for (var j = ruleSeek(p, ${from}, h); j < ${to}; j = ruleSeek(p, j + 1, h))`
      : `for (var j = ${from}; j < ${to}; j = j + 1)`;
  if (!sparse) {
    return `    let jStart = part * uniforms.chunk;
    let jEnd = min(jStart + uniforms.chunk, kEnd);
    ${keyLoop('jStart', 'jEnd')} {
${body('      ', !!rule && !(rule.seeks && rule.exactSeek))}
    }`;
  }
  return `    // Block-sparse: visit only the key blocks the layout lists for this query block.
    let lh = min(h, uniforms.layoutHeads - 1);
    let rs = lh * (uniforms.numQBlocks + 1) + (row + uniforms.rowOffset) / uniforms.blockQ;
${layoutRunsHead()}
      let j1 = min(jRun, kEnd);
${
  rule
    ? `      if ((run & 1) == 1) {
        // A full run: every pair is allowed, the rule is skipped.
        for (var j = j0; j < j1; j = j + 1) {
${body('          ', false)}
        }
      } else {
        ${keyLoop('j0', 'j1')} {
${body('          ', !(rule.seeks && rule.exactSeek))}
        }
      }`
    : `      for (var j = j0; j < j1; j = j + 1) {
${body('        ', false)}
      }`
}
    }`;
}

/**
 * The head of both flash programs' block-sparse loop, given `rs` (the query block's row in
 * `rowStart`) and `part` (the split): this split's equal share `[wLo, wHi)` of the block's
 * visited keys, counted along its runs, then the loop over its layout entries, each giving its
 * run (`r0`, `run`: blocks·2 + full) and the share's keys in it, `[j0, jRun)`. The caller
 * writes the loop's body and closes it.
 */
export function layoutRunsHead(): string {
  return `    let e0 = rowStart[rs];
    let e1 = rowStart[rs + 1];
    var wLo = 0;
    var wHi = 0;
    if (e1 > e0) {
      let total = entries[3 * (e1 - 1) + 2] + (entries[3 * (e1 - 1) + 1] >> 1) * uniforms.blockK;
      let share = (total + uniforms.splits - 1) / uniforms.splits;
      wLo = part * share;
      wHi = wLo + share;
    }
    for (var ei = e0; ei < e1; ei = ei + 1) {
      let r0 = entries[3 * ei] * uniforms.blockK;
      let run = entries[3 * ei + 1];
      let c0 = entries[3 * ei + 2];
      let len = (run >> 1) * uniforms.blockK;
      let j0 = r0 + clamp(wLo - c0, 0, len);
      let jRun = r0 + clamp(wHi - c0, 0, len);`;
}

/** Options of {@link keyUpdate}. */
export interface KeyUpdateOptions {
  d4: number;
  dv4: number;
  indent: string;
  /** Whether `ruleWeight(p, j, h)` is evaluated (false: a full run, or an exact seek). */
  withRule: boolean;
  /** The vec4 `t` of key `j` and of its value (after `kBase`/`vBase`). */
  kAt: (t: number) => string;
  vAt: (t: number) => string;
  kBase: string;
  vBase: string;
  /** A score modifier: `base` (statements) and `score` (added to the dot product), or none. */
  relative?: { base: string; score: string };
}

/**
 * The per-key body of both flash programs: the online softmax update of `rowMax`, `rowSum` and
 * `acc0…` with key `j` (weighted by the element rule where it applies: `l = l·c + w·e`,
 * `acc = acc·c + w·e·v`). The running state is rescaled only when the row max grows (rare
 * after the first keys), so the common case costs one exp and one multiply-add per vec4.
 */
export function keyUpdate(o: KeyUpdateOptions): string {
  const { d4, dv4, indent, withRule } = o;
  const body = [
    o.kBase,
    ...(o.relative ? [o.relative.base] : []),
    `let s = ${unroll(d4, (t) => `dot(q${t}, ${o.kAt(t)})`, ' + ')}${o.relative ? ` + ${o.relative.score}` : ''};`,
    'if (s > rowMax) {',
    '  let c = exp(rowMax - s);',
    '  rowSum = rowSum * c;',
    ...Array.from({ length: dv4 }, (_, t) => `  acc${t} = acc${t} * c;`),
    '  rowMax = s;',
    '}',
    `let e = ${withRule ? 'w * ' : ''}exp(s - rowMax);`,
    'rowSum = rowSum + e;',
    o.vBase,
    ...Array.from({ length: dv4 }, (_, t) => `acc${t} = acc${t} + e * ${o.vAt(t)};`),
  ];
  return withRule ? underRule(body, indent) : body.map((l) => indent + l).join('\n');
}

/**
 * `lines` (a key's statements, for key `j` of query position `p`, head `h`) evaluated only where
 * the element rule allows the pair: `let w = ruleWeight(p, j, h); if (w > 0.0) { … }`, so the
 * lines may read the weight `w`. Shared by the forward and both backward programs.
 */
export function underRule(lines: string[], indent: string): string {
  return [`${indent}let w = ruleWeight(p, j, h);`, `${indent}if (w > 0.0) {`, ...lines.map((l) => `${indent}  ${l}`), `${indent}}`].join('\n');
}

/**
 * The start of a program with one query row per invocation (the forward's per-row program and
 * the backward's dQ): the row, batch·head and split from the invocation id (returning past the
 * last row), the query's head, kv head and absolute position `p` (bottom-right alignment: row i
 * sits at i + m − n), the end `kEnd` of its keys (keyLength, and causal), and its scaled query
 * `q0…` (vec4s).
 */
export function rowPrologue(d4: number, causal: boolean): string {
  return `    let row = i32(globalId.x);
    let bh = i32(globalId.y);
    let part = i32(globalId.z);
    if (row >= uniforms.n) { return; }
    let b = bh / uniforms.heads;
    let h = bh - b * uniforms.heads;
    let kvh = h / uniforms.group;
    // Bottom-right alignment: query row i sits at absolute position i + (m - n).
    let p = row + uniforms.m - uniforms.n;
    var kEnd = clamp(keyLength[b], 0, uniforms.m);
    ${causal ? 'kEnd = min(kEnd, p + 1);' : ''}
    let qBase = (bh * uniforms.n + row) * ${d4};
${unroll(d4, (t) => `    let q${t} = q[qBase + ${t}] * uniforms.scale;`)}`;
}

/** One query row's online-softmax state, as WGSL expressions (see {@link writeRow}). */
export interface RowState {
  /** The row's index in `[0, n)`. */
  row: string;
  /** Vec4 `t` of the unnormalized accumulator. */
  acc: (t: number) => string;
  max: string;
  sum: string;
}

/** The running max's start, below any real score. */
export const ROW_MAX_START = '-3.0e38';

/**
 * The end of both flash programs: with one split the normalized row (a query with no allowed
 * key outputs zeros, never NaN); with several the unnormalized partial row and `(rowMax, rowSum)`.
 */
export function writeRow(dv4: number, split: boolean, indent: string, st: RowState): string {
  const lines = split
    ? [
        `let ob = ((bh * uniforms.splits + part) * uniforms.n + ${st.row}) * ${dv4 + 1};`,
        ...Array.from({ length: dv4 }, (_, t) => `result[ob + ${t}] = ${st.acc(t)};`),
        `result[ob + ${dv4}] = vec4<f32>(${st.max}, ${st.sum}, 0.0, 0.0);`,
      ]
    : [
        'var inv = 0.0;',
        `if (${st.sum} > 0.0) { inv = 1.0 / ${st.sum}; }`,
        `let ob = (bh * uniforms.n + ${st.row}) * ${dv4};`,
        ...Array.from({ length: dv4 }, (_, t) => `result[ob + ${t}] = ${st.acc(t)} * inv;`),
      ];
  return lines.map((l) => indent + l).join('\n');
}

/** The shaderKey part of an element rule (shared by both flash programs). */
export function ruleKeyPart(rule: FlashVariant['rule']): string {
  return rule ? `rule${rule.seeks ? (rule.exactSeek ? 'SeekExact' : 'Seek') : ''}${rule.init ? 'Init' : ''}[${rule.key}]` : 'all';
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
    var gMax = ${ROW_MAX_START};
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
