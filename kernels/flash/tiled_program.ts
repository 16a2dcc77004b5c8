/**
 * The tiled flash-attention WGSL program (FlashAttention's tiling). A workgroup takes a block
 * of `tile.rows` consecutive query rows, four per invocation, and walks their keys in tiles of
 * `tile.keys`; with `tile.stage` the group first loads each key/value tile once into workgroup
 * memory (every invocation an equal share, vec4 loads, {@link LOAD_UNROLL} per loop trip) and
 * all its rows read it from there. No subgroup operations.
 *
 * An invocation's four rows are the four lanes of its vectors: the query is held transposed
 * (`qt{x}`: dimension x of the four rows), the scores of one key are one `vec4`, and the output
 * accumulators are `at{x}` (output dimension x of the four rows). One key's K and V vec4 loads
 * serve four rows, and the update has no branch (the running max is raised with `max`, the
 * state rescaled every key). That is what makes it fast on the CPU-backed adapters too
 * (SwiftShader, llvmpipe), where the per-row kernel's per-key branch and per-row loads dominate.
 * (Keys taken in groups of four, one max update per group, measured no faster there and
 * compiled about 1.5× slower, so there are none.)
 *
 * It computes what {@link FlashAttentionProgram} computes (up to float rounding): dense and
 * block-sparse layouts with full/partial runs, element rules and their parameters, seeking rules (the four rows seek to the nearest of their candidates),
 * split-KV partials for {@link MergeProgram}, causal alignment, grouped heads and `keyLength`.
 * A key a row may not see gets weight 0 and a score that cannot raise the row max; rows past
 * `n` or outside the query block compute nothing.
 *
 * With staged tiles the tile loop is workgroup-uniform (bounds from uniforms, the workgroup id
 * and read-only buffers, as WGSL's barriers require): a tile spans the keys of the group's last
 * row, and each invocation stops at its rows' end. In block-sparse mode each such workgroup lies
 * in one query block (workgroup x is sub-tile `x % ceil(blockQ / tile.rows)` of query block
 * `x / ceil(blockQ / tile.rows)`), so its rows share the block's layout entries, and `tile.rows`
 * follows the block size. Without staging there are no barriers: each invocation takes the next
 * four rows of a query block, and `tile.rows` is fixed (one pipeline for every block size).
 *
 * Written into the WGSL source (and `shaderKey`): head dims, tile shape, causal, split mode,
 * layout mode and the rule; sizes, scale, chunk and block sizes are uniforms.
 *
 * @module
 */
import type { WebGPUProgram } from '../shared/webgpu_types.js';
import { unroll } from '../shared/wgsl.js';
import { SEEK_END } from './rule.js';
import { FlashAttentionProgram, layoutRunsHead, ROW_MAX_START, ruleKeyPart, writeRow, writesPartials, type FlashVariant } from './flash_program.js';

/** Query rows each invocation holds (the lanes of a vec4). */
export const ROWS_PER_INVOCATION = 4;
/** Tile vec4 loads per invocation per loop trip (staged tiles). */
export const LOAD_UNROLL = 4;

/** Loop trips of one invocation's share of one tile's loads (K and V). */
export function tileLoadTrips(tile: TileShape, d4: number, dv4: number): number {
  const perTrip = LOAD_UNROLL * (tile.rows / ROWS_PER_INVOCATION);
  return Math.ceil((tile.keys * d4) / perTrip) + Math.ceil((tile.keys * dv4) / perTrip);
}

/** Tile shape of {@link TiledFlashProgram} (chosen from the device's limits by the plan). */
export interface TileShape {
  /** Query rows per workgroup (a multiple of {@link ROWS_PER_INVOCATION}). */
  rows: number;
  /** Keys per tile. */
  keys: number;
  /** Whether K/V tiles are staged in workgroup memory (else read from storage where used). */
  stage: boolean;
}

const LANES = ['x', 'y', 'z', 'w'];

export class TiledFlashProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0], y: [1] };
  dispatch: [number, number, number];
  variableNames: string[];
  variableComponents: number[];
  outputComponent = 4;
  workgroupSize: [number, number, number];
  uniforms: string;
  private readonly d4: number;
  private readonly dv4: number;

  /**
   * @param queryGroups - workgroups along x: `ceil(n / tile.rows)` (dense); block-sparse,
   *   `numQBlocks · ceil(blockQ / tile.rows)` staged, else enough for `ceil(blockQ / 4)`
   *   invocations per query block (`FlashPlan.queryGroups`).
   */
  constructor(
    batch: number,
    heads: number,
    n: number,
    dPad: number,
    dvPad: number,
    private readonly variant: FlashVariant,
    private readonly tile: TileShape,
    queryGroups: number,
  ) {
    this.d4 = dPad / 4;
    this.dv4 = dvPad / 4;
    const { splits, sparse, rule, causal } = variant;
    const base = new FlashAttentionProgram(batch, heads, n, dPad, dvPad, variant);
    this.variableNames = base.variableNames;
    this.variableComponents = base.variableComponents;
    this.outputShape = base.outputShape;
    this.uniforms = base.uniforms;
    this.workgroupSize = [tile.rows / ROWS_PER_INVOCATION, 1, 1];
    this.dispatch = [queryGroups, batch * heads, splits];
    this.shaderKey =
      `AttnCatalogFlashTiled_${this.d4}_${this.dv4}_${tile.rows}x${tile.keys}${tile.stage ? 's' : ''}_${causal ? 'c' : 'nc'}_${writesPartials(variant) ? 'split' : 'single'}` +
      `_${sparse ? 'csr' : 'dense'}_${ruleKeyPart(rule)}`;
  }

  private get invocations(): number {
    return this.tile.rows / ROWS_PER_INVOCATION;
  }

  /**
   * The cooperative load of keys `[t0, tEnd)` into the tiles (zeros past `tEnd`), between
   * barriers: a loop over the tile's vec4s, {@link LOAD_UNROLL} per trip per invocation.
   */
  private loadTile(indent: string): string {
    const { d4, dv4 } = this;
    const { keys } = this.tile;
    const inv = this.invocations;
    const one = (name: 'k' | 'v', w: number) => {
      const total = keys * w;
      const loads = unroll(LOAD_UNROLL, (u) =>
        [
          `  {`,
          `    let x = x0 + ${u * inv};`,
          `    if (x < ${total}) {`,
          `      let kk = x / ${w};`,
          `      let j = t0 + kk;`,
          `      var val = vec4<f32>(0.0);`,
          `      if (j < tEnd) { val = ${name}[(kvBase + j) * ${w} + x - kk * ${w}]; }`,
          `      ${name}Tile[x] = val;`,
          `    }`,
          `  }`,
        ]
          .map((l) => indent + l)
          .join('\n'),
      );
      return [`${indent}for (var x0 = lid; x0 < ${total}; x0 = x0 + ${LOAD_UNROLL * inv}) {`, loads, `${indent}}`].join('\n');
    };
    return [`${indent}workgroupBarrier();`, one('k', d4), one('v', dv4), `${indent}workgroupBarrier();`].join('\n');
  }

  /** WGSL expression of vec4 `t` of key `j`'s K (or V). */
  private at(name: 'k' | 'v', j: string, t: number): string {
    const w = name === 'k' ? this.d4 : this.dv4;
    return this.tile.stage ? `${name}Tile[(${j} - t0) * ${w} + ${t}]` : `${name}[(kvBase + ${j}) * ${w} + ${t}]`;
  }

  /**
   * Key `j` for the four rows, with weight `w` (a vec4, 0 where a row may not see it): the
   * scores, the max update and rescale, the accumulation. A key of weight 0 for a row cannot
   * raise its max, and its value never reaches it, even when it is padding or that row's causal
   * future holding NaN or ±Inf (`select`, never `0·v`).
   */
  private keyStep(indent: string): string {
    const { d4, dv4 } = this;
    const L: string[] = ['var s = vec4<f32>(0.0);'];
    for (let t = 0; t < d4; t++) {
      L.push(`{ let kk = ${this.at('k', 'j', t)}; s = s + qt${4 * t} * kk.x + qt${4 * t + 1} * kk.y + qt${4 * t + 2} * kk.z + qt${4 * t + 3} * kk.w; }`);
    }
    L.push('let seen = w > vec4<f32>(0.0);', `s = select(vec4<f32>(${ROW_MAX_START}), s, seen);`);
    L.push('let tm = max(rowMax, s);', 'let c = exp(rowMax - tm);', 'rowSum = rowSum * c;');
    for (let x = 0; x < dv4 * 4; x++) L.push(`at${x} = at${x} * c;`);
    L.push('rowMax = tm;', 'let e = w * exp(s - rowMax);', 'rowSum = rowSum + e;');
    for (let t = 0; t < dv4; t++) {
      L.push(`{ let vv = ${this.at('v', 'j', t)}; ${unroll(4, (c) => `at${4 * t + c} = at${4 * t + c} + select(vec4<f32>(0.0), e * vv.${LANES[c]}, seen);`, ' ')} }`);
    }
    return L.map((l) => indent + l).join('\n');
  }

  /** The rule's weight of key `j` for the four rows. */
  private ruleWeight4(j: string): string {
    const init = this.variant.rule?.init;
    const one = (l: number) => (init ? `ruleW(${l}, ${j})` : `ruleWeight(rowP[${l}], ${j}, rowH)`);
    return `vec4<f32>(${[0, 1, 2, 3].map(one).join(', ')})`;
  }

  /**
   * This invocation's keys `[from, rEnd)` of the current range, one at a time with each row's
   * weight (its causal end and `keyLength`, and the rule where `ruled`), stepping from seek to
   * seek where the rule seeks.
   */
  private keyLoop(indent: string, from: string): string {
    const rule = this.variant.rule;
    const seeks = !!rule?.seeks;
    return [
      `${indent}var j = ${seeks ? `select(${from}, seek4(${from}), ruled && ${from} < rEnd)` : from};`,
      `${indent}loop {`,
      `${indent}  if (j >= rEnd) { break; }`,
      `${indent}  var w = select(vec4<f32>(0.0), vec4<f32>(1.0), vec4<i32>(j) < kEnd4);`,
      ...(rule ? [`${indent}  if (ruled) { w = w * ${this.ruleWeight4('j')}; }`] : []),
      this.keyStep(`${indent}  `),
      `${indent}  continuing { ${seeks ? 'if (ruled) { j = seek4(j + 1); } else { j = j + 1; }' : 'j = j + 1;'} }`,
      `${indent}}`,
    ].join('\n');
  }

  /** One key range `[from, toGroup)` (workgroup-uniform), staged tile by tile or read directly. */
  private range(indent: string, from: string, toGroup: string, toRow: string): string {
    if (!this.tile.stage) {
      return [`${indent}{`, `${indent}  let rEnd = ${toRow};`, this.keyLoop(`${indent}  `, from), `${indent}}`].join('\n');
    }
    const { keys } = this.tile;
    return [
      `${indent}for (var t0 = ${from}; t0 < ${toGroup}; t0 = t0 + ${keys}) {`,
      `${indent}  let tEnd = min(t0 + ${keys}, ${toGroup});`,
      this.loadTile(`${indent}  `),
      `${indent}  let rEnd = min(tEnd, ${toRow});`,
      this.keyLoop(`${indent}  `, 't0'),
      `${indent}}`,
    ].join('\n');
  }

  /** Helpers for rules: per-lane weight (re-running `ruleInit` for that lane) and the four-row seek. */
  private ruleHelpers(): string {
    const rule = this.variant.rule;
    if (!rule) return '';
    const out: string[] = [];
    if (rule.init) {
      out.push(`  fn ruleW(l : i32, j : i32) -> f32 {
    let pl = rowP[l];
    ruleInit(pl, rowH);
    return ruleWeight(pl, j, rowH);
  }`);
    }
    if (rule.seeks) {
      const seekOne = (l: number) =>
        rule.init ? `ruleInit(rowP[${l}], rowH); let c${l} = ruleSeek(rowP[${l}], j0, rowH);` : `let c${l} = ruleSeek(rowP[${l}], j0, rowH);`;
      out.push(`  fn seek4(j0 : i32) -> i32 {
    var best = ${SEEK_END};
${[0, 1, 2, 3].map((l) => `    if (rowLive[${l}]) { ${seekOne(l)} best = min(best, c${l}); }`).join('\n')}
    return best;
  }`);
    }
    return out.join('\n');
  }

  getUserCode(): string {
    const { d4, dv4 } = this;
    const { rows, keys, stage } = this.tile;
    const { sparse, rule, causal } = this.variant;
    const split = writesPartials(this.variant);
    const inv = this.invocations;
    // The group's rows [rowLo, rowHi) (this invocation's: rowLo + 4·lid + l). Staged tiles keep a
    // workgroup in one query block (its tile loop and barriers are uniform); read directly,
    // each invocation takes the next four rows of a block, whatever the block size.
    const rowsOf = !sparse
      ? `    let rowLo = gid.x * ${rows};
    let rowHi = min(rowLo + ${rows}, uniforms.n);`
      : stage
        ? `    let subTiles = (uniforms.blockQ + ${rows - 1}) / ${rows};
    let qb = gid.x / subTiles;
    let blockRow0 = qb * uniforms.blockQ - uniforms.rowOffset;
    let rowLo = blockRow0 + (gid.x - qb * subTiles) * ${rows};
    let rowHi = min(min(rowLo + ${rows}, blockRow0 + uniforms.blockQ), uniforms.n);`
        : `    let perBlock = (uniforms.blockQ + ${ROWS_PER_INVOCATION - 1}) / ${ROWS_PER_INVOCATION};
    let g = gid.x * ${inv} + lid;
    let qbAt = g / perBlock;
    let qb = min(qbAt, uniforms.numQBlocks - 1);
    let blockRow0 = qb * uniforms.blockQ - uniforms.rowOffset;
    let rowLo = blockRow0 + (g - qbAt * perBlock) * ${ROWS_PER_INVOCATION} - ${ROWS_PER_INVOCATION} * lid;
    var rowHi = min(blockRow0 + uniforms.blockQ, uniforms.n);
    if (qbAt >= uniforms.numQBlocks) { rowHi = -${SEEK_END}; }`;
    const loops = sparse
      ? `    let lh = min(h, uniforms.layoutHeads - 1);
    let rs = lh * (uniforms.numQBlocks + 1) + qb;
${layoutRunsHead()}
      let gEnd = min(jRun, groupEnd);
      let jEnd = min(jRun, kEndMax);
      // A full run skips the rule.
      let ruled = ${rule ? '(run & 1) == 0' : 'false'};
${this.range('      ', 'j0', 'gEnd', 'jEnd')}
    }`
      : `    let jStart = part * uniforms.chunk;
    let gEnd = min(jStart + uniforms.chunk, groupEnd);
    let jEnd = min(jStart + uniforms.chunk, kEndMax);
    let ruled = ${rule ? 'true' : 'false'};
${this.range('    ', 'jStart', 'gEnd', 'jEnd')}`;
    const writeLane = (l: number) => {
      const lane = LANES[l];
      const acc = (t: number) => `vec4<f32>(${[0, 1, 2, 3].map((c) => `at${4 * t + c}.${lane}`).join(', ')})`;
      return [`    if (rowLive[${l}]) {`, writeRow(dv4, split, '      ', { row: `row${l}`, acc, max: `rowMax.${lane}`, sum: `rowSum.${lane}` }), '    }'].join('\n');
    };
    return `
  ${rule ? rule.wgsl : ''}

  ${stage ? `var<workgroup> kTile : array<vec4<f32>, ${keys * d4}>;\n  var<workgroup> vTile : array<vec4<f32>, ${keys * dv4}>;` : ''}
${
  stage
    ? `  // tfjs copies the builtins into private variables, which WGSL's uniformity analysis treats as
  // non-uniform; the workgroup id is passed through workgroup memory to make it uniform again,
  // so that the tile loop's barriers are in uniform control flow.
  var<workgroup> groupIds : vec3<u32>;`
    : ''
}
  var<private> rowP : array<i32, 4>;
  var<private> rowLive : array<bool, 4>;
  var<private> rowH : i32;
${this.ruleHelpers()}

  fn main() {
    let lid = i32(localId.x);
${
  stage
    ? `    if (lid == 0) { groupIds = workgroupId; }
    let gid = vec3<i32>(workgroupUniformLoad(&groupIds));`
    : '    let gid = vec3<i32>(workgroupId);'
}
    let bh = gid.y;
    let part = gid.z;
    let b = bh / uniforms.heads;
    let h = bh - b * uniforms.heads;
    rowH = h;
    let kvh = h / uniforms.group;
    let kvBase = (b * uniforms.kvHeads + kvh) * uniforms.m;
${rowsOf}
    let kLen = clamp(keyLength[b], 0, uniforms.m);
    // Keys the group's tiles span (its last row's end).
    var groupEnd = kLen;
    ${causal ? 'groupEnd = min(kLen, rowHi - 1 + uniforms.m - uniforms.n + 1);' : ''}
    // This invocation's four rows; bottom-right alignment: row i sits at position i + (m - n).
${unroll(4, (l) => `    let row${l} = rowLo + ${ROWS_PER_INVOCATION} * lid + ${l};\n    rowLive[${l}] = row${l} >= 0 && row${l} < rowHi;\n    rowP[${l}] = row${l} + uniforms.m - uniforms.n;`)}
    let p4 = vec4<i32>(rowP[0], rowP[1], rowP[2], rowP[3]);
    // Each row's key end (0 for a row that computes nothing).
    var kEnd4 = vec4<i32>(kLen);
    ${causal ? 'kEnd4 = min(kEnd4, p4 + vec4<i32>(1));' : ''}
    kEnd4 = select(vec4<i32>(0), kEnd4, vec4<bool>(rowLive[0], rowLive[1], rowLive[2], rowLive[3]));
    let kEndMax = max(max(kEnd4.x, kEnd4.y), max(kEnd4.z, kEnd4.w));
${unroll(4, (l) => `    let qb${l} = (bh * uniforms.n + clamp(row${l}, 0, uniforms.n - 1)) * ${d4};`)}
${unroll(d4, (t) => `    let q${t}x = q[qb0 + ${t}]; let q${t}y = q[qb1 + ${t}]; let q${t}z = q[qb2 + ${t}]; let q${t}w = q[qb3 + ${t}];`)}
${unroll(d4 * 4, (x) => `    let qt${x} = vec4<f32>(q${x >> 2}x.${LANES[x & 3]}, q${x >> 2}y.${LANES[x & 3]}, q${x >> 2}z.${LANES[x & 3]}, q${x >> 2}w.${LANES[x & 3]}) * uniforms.scale;`)}
${unroll(dv4 * 4, (x) => `    var at${x} = vec4<f32>(0.0);`)}
    var rowMax = vec4<f32>(${ROW_MAX_START});
    var rowSum = vec4<f32>(0.0);
${loops}
${unroll(4, writeLane)}
  }
`;
  }
}
