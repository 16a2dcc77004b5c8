/**
 * Fresh-process A/B of one pattern entry (or dense) at one n: `tsx bench/fresh_ab.ts <tree> <id> <n> [kernelStrategy]`
 * times `apply` (batch 1, 1 head, d = dv = 64, non-causal, the patterns suite's configs), median of 9 calls
 * after two warm-ups, in a process that runs nothing else. `<tree>` is this checkout or a worktree of an
 * older commit (e.g. `git worktree add /tmp/prev2 5f3d462`, with node_modules linked), so that before and
 * after run the same script, alternated (bench/results/patterns-before-after.md).
 */
import * as tf from '@tensorflow/tfjs-core';
const root = process.argv[2];
const id = process.argv[3];
const n = Number(process.argv[4]);
const { initBackend } = await import(`${root}/src/core/backend.ts`);
await initBackend('webgpu');
await tf.setBackend('webgpu');
const sqrtPow2 = (x: number) => 2 ** Math.round(Math.log2(Math.sqrt(x)));
const grid = (x: number): [number, number] => { let r = Math.floor(Math.sqrt(x)); while (x % r !== 0) r--; return [r, x / r]; };
let attn: any;
if (id === 'strided') attn = (await import(`${root}/src/variants/fixed/strided.ts`)).stridedAttention({ stride: sqrtPow2(n) });
if (id === 'sparse-transformer') attn = (await import(`${root}/src/variants/combined/sparse-transformer.ts`)).sparseTransformerAttention({ stride: sqrtPow2(n) });
if (id === 'axial') attn = (await import(`${root}/src/variants/combined/axial.ts`)).axialAttention({ shape: grid(n) });
if (id === 'compressed') attn = (await import(`${root}/src/variants/fixed/compressed.ts`)).compressedAttention({ stride: 8 });
if (id === 'dense') attn = (await import(`${root}/src/variants/baseline/dense.ts`)).denseAttention({});
const mk = (s: number) => tf.tidy(() => tf.add(tf.randomUniform([1, 1, n, 64], -1, 1, 'float32', s), 0) as tf.Tensor4D);
const q = mk(1), k = mk(2), v = mk(3);
const opts = process.argv[5] ? { kernelStrategy: process.argv[5] } : {};
const run = () => attn.apply(q, k, v, opts);
for (let w = 0; w < 2; w++) { const o = run(); await o.data(); o.dispose(); }
const times: number[] = [];
for (let r = 0; r < 9; r++) { const t0 = performance.now(); const o = run(); await o.data(); times.push(performance.now() - t0); o.dispose(); }
times.sort((a, b) => a - b);
console.log(`RESULT ${id} ${n} ${times[4].toFixed(2)}`);
