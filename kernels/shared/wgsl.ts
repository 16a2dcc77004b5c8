/**
 * WGSL generation helpers shared by every kernel.
 *
 * @module
 */

/** Unrolled WGSL: one statement per vec4 of a head dim. */
export function unroll(count: number, line: (t: number) => string, sep = '\n'): string {
  return Array.from({ length: count }, (_, t) => line(t)).join(sep);
}
