/**
 * The catalog's seeded random generator.
 *
 * All randomness (random features, hash rotations, random blocks, initial weights) comes
 * from here, computed on the CPU in JavaScript: the same seed gives the same parameters on
 * every backend and every run. The generator is SplitMix32-style (Mulberry32); normals use
 * Box–Muller.
 *
 * @module
 */

/** Default seed used when a config does not give one. */
export const DEFAULT_SEED = 0x5eed;

/** A small deterministic generator. */
export class SeededRandom {
  private state: number;

  constructor(seed: number = DEFAULT_SEED) {
    // Mix the seed so that nearby seeds give unrelated streams.
    let s = (Math.floor(seed) ^ 0x9e3779b9) >>> 0;
    s = Math.imul(s ^ (s >>> 16), 0x85ebca6b) >>> 0;
    s = Math.imul(s ^ (s >>> 13), 0xc2b2ae35) >>> 0;
    this.state = (s ^ (s >>> 16)) >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Standard normal. */
  normal(): number {
    let u = this.next();
    while (u <= 0) u = this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** `count` standard normals as a Float32Array. */
  normals(count: number): Float32Array {
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = this.normal();
    return out;
  }

  /** `count` distinct integers from [0, n), in the order drawn (partial Fisher–Yates). */
  sample(n: number, count: number): number[] {
    const pool = Array.from({ length: n }, (_, i) => i);
    const out: number[] = [];
    for (let i = 0; i < Math.min(count, n); i++) {
      const j = i + this.int(n - i);
      [pool[i], pool[j]] = [pool[j], pool[i]];
      out.push(pool[i]);
    }
    return out;
  }
}

/**
 * Seeded convolution weights over groups of `c` positions (compressed's kernels, compressive's
 * conv weights): `K [c, d, d]` then `V [c, dv, dv]`, standard normals scaled by 1/sqrt(c·dim),
 * drawn in that order from one `SeededRandom(seed)`.
 */
export function seededConvWeights(c: number, d: number, dv: number, seed: number): { k: Float32Array; v: Float32Array } {
  const rng = new SeededRandom(seed);
  const k = rng.normals(c * d * d).map((x) => x / Math.sqrt(c * d));
  const v = rng.normals(c * dv * dv).map((x) => x / Math.sqrt(c * dv));
  return { k, v };
}
