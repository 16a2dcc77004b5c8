/**
 * Float64 references of `attention-catalog/moe`, written from DESIGN.md "Mixture of experts"
 * directly (plain loops over host arrays, nothing shared with src/moe).
 */

export interface RefRules {
  experts: number;
  k: number;
  capacityFactor: number;
  policy: 'natural' | 'batch-priority';
  priority: 'max' | 'sum';
  normalize: boolean;
}

export interface RefRoute {
  expert: number[][];
  slot: number[][];
  gate: number[][];
  load: number[];
  capacity: number;
  auxLoss: number;
  zLoss: number;
  /** Per token: its priority (batch-priority's key), its probabilities. */
  priority: number[];
  p: number[][];
  logits: number[][];
}

const matVec = (x: number[], W: number[][]): number[] => W[0].map((_, e) => x.reduce((s, xi, i) => s + xi * W[i][e], 0));

/** A token's top-k experts by p, ties to the lower index. */
export function topK(p: number[], k: number): number[] {
  return p
    .map((v, e) => [v, e])
    .sort((a, b) => b[0] - a[0] || a[1] - b[1])
    .slice(0, k)
    .map(([, e]) => e);
}

/** The route of DESIGN.md's top-k router: x [T][d], W [d][E], mask [T] (1 real) or null. `fixedChoices` freezes the experts (finite differences). */
export function referenceRoute(x: number[][], W: number[][], rules: RefRules, mask: number[] | null, fixed?: { expert: number[][]; slot: number[][] }): RefRoute {
  const T = x.length;
  const { experts: E, k } = rules;
  const real = (t: number) => !mask || mask[t] === 1;
  const logits = x.map((row, t) => (real(t) ? matVec(row, W) : new Array(E).fill(0)));
  const p = logits.map((l) => {
    const mx = Math.max(...l);
    const ex = l.map((v) => Math.exp(v - mx));
    const s = ex.reduce((a, b) => a + b, 0);
    return ex.map((v) => v / s);
  });
  const expert = fixed ? fixed.expert.map((r) => r.slice()) : p.map((row, t) => (real(t) ? topK(row, k) : new Array(k).fill(0)));
  const chosen = expert.map((ex, t) => ex.map((e) => p[t][e]));
  const priority = chosen.map((c) => (rules.priority === 'max' ? Math.max(...c) : c.reduce((a, b) => a + b, 0)));
  const Treal = x.filter((_, t) => real(t)).length;
  const counts = new Array(E).fill(0);
  for (let t = 0; t < T; t++) if (real(t)) for (const e of expert[t]) counts[e]++;
  const capacity = rules.capacityFactor === 0 ? Math.max(0, ...counts) : Math.max(0, Math.ceil((k * rules.capacityFactor * Treal) / E - 1e-9));
  const order = Array.from({ length: T }, (_, t) => t);
  if (rules.policy === 'batch-priority') order.sort((a, b) => priority[b] - priority[a] || a - b);
  const slot = expert.map(() => new Array(k).fill(-1));
  const load = new Array(E).fill(0);
  if (fixed) {
    for (let t = 0; t < T; t++) for (let r = 0; r < k; r++) slot[t][r] = fixed.slot[t][r];
  } else {
    for (let r = 0; r < k; r++)
      for (const t of order) {
        if (!real(t)) continue;
        const e = expert[t][r];
        if (load[e] < capacity) slot[t][r] = load[e]++;
      }
  }
  const gate = chosen.map((c, t) => {
    const norm = rules.normalize ? c.reduce((a, b) => a + b, 0) : 1;
    return c.map((v, r) => (real(t) && slot[t][r] >= 0 ? v / norm : 0));
  });
  let aux = 0;
  let z = 0;
  if (Treal > 0) {
    for (let e = 0; e < E; e++) {
      let f = 0;
      let P = 0;
      for (let t = 0; t < T; t++) {
        if (!real(t)) continue;
        if (expert[t][0] === e) f++;
        P += p[t][e];
      }
      aux += (f / Treal) * (P / Treal);
    }
    aux *= E;
    for (let t = 0; t < T; t++) {
      if (!real(t)) continue;
      const mx = Math.max(...logits[t]);
      const lse = mx + Math.log(logits[t].reduce((s, v) => s + Math.exp(v - mx), 0));
      z += lse * lse;
    }
    z /= Treal;
  }
  return { expert, slot, gate, load, capacity, auxLoss: aux, zLoss: z, priority, p, logits };
}

/** erf in float64: Taylor series for |x| <= 2.5, Lentz's continued fraction of erfc beyond. */
export function erf(x: number): number {
  const a = Math.abs(x);
  let r: number;
  if (a <= 2.5) {
    let term = a;
    let sum = a;
    for (let n = 1; n < 80; n++) {
      term *= (-a * a) / n;
      sum += term / (2 * n + 1);
    }
    r = (2 / Math.sqrt(Math.PI)) * sum;
  } else {
    // erfc(a) = exp(-a²)/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + 2/(a + …)))))
    let f = a;
    let C = a;
    let D = 0;
    for (let n = 1; n < 200; n++) {
      const an = n / 2;
      D = a + an * D;
      D = 1 / D;
      C = a + an / C;
      const delta = C * D;
      f *= delta;
      if (Math.abs(delta - 1) < 1e-16) break;
    }
    r = 1 - Math.exp(-a * a) / Math.sqrt(Math.PI) / f;
  }
  return x < 0 ? -r : r;
}

export type RefAct = 'relu' | 'gelu';
export const activation = (v: number, a: RefAct) => (a === 'relu' ? Math.max(0, v) : 0.5 * v * (1 + erf(v / Math.SQRT2)));

/** One FFN d → h → d: x·w1 + b1, activation, ·w2 + b2. */
export function ffn(x: number[], w1: number[][], b1: number[], w2: number[][], b2: number[], a: RefAct): number[] {
  const h = b1.map((b, j) => activation(x.reduce((s, xi, i) => s + xi * w1[i][j], b), a));
  return b2.map((b, o) => h.reduce((s, hj, j) => s + hj * w2[j][o], b));
}

export interface RefWeights {
  router: number[][];
  w1: number[][][];
  b1: number[][];
  w2: number[][][];
  b2: number[][];
  rw1?: number[][];
  rb1?: number[];
  rw2?: number[][];
  rb2?: number[];
  coefficient?: number[][];
}

/** moeLayer's output [T][d] for a route (from referenceRoute). */
export function referenceMoE(x: number[][], w: RefWeights, route: RefRoute, a: RefAct, residual: 'none' | 'add' | 'coefficient', mask: number[] | null): number[][] {
  const d = x[0].length;
  return x.map((row, t) => {
    if (mask && mask[t] !== 1) return new Array(d).fill(0);
    const y = new Array(d).fill(0);
    route.expert[t].forEach((e, r) => {
      if (route.slot[t][r] < 0) return;
      const o = ffn(row, w.w1[e], w.b1[e], w.w2[e], w.b2[e], a);
      for (let i = 0; i < d; i++) y[i] += route.gate[t][r] * o[i];
    });
    if (residual === 'none') return y;
    const m = ffn(row, w.rw1!, w.rb1!, w.rw2!, w.rb2!, a);
    if (residual === 'add') return y.map((v, i) => v + m[i]);
    const l = [0, 1].map((c) => row.reduce((s, xi, i) => s + xi * w.coefficient![i][c], 0));
    const mx = Math.max(...l);
    const ex = l.map((v) => Math.exp(v - mx));
    const c0 = ex[0] / (ex[0] + ex[1]);
    return y.map((v, i) => c0 * v + (1 - c0) * m[i]);
  });
}
