/**
 * `npm run train`: the same tiny model, built from `CatalogAttention` layers
 * (`attention-catalog/layers`), trained on a synthetic long-range task for a fixed number of
 * steps, once per variant, on the best backend available; then a table (variant | steps | final
 * loss | accuracy | ms/step | peak bytes) to stdout and to bench/results/train.md and train.json.
 *
 * The task: associative recall at n = 512. Each sequence holds `pairs` (key, value) tokens at
 * random positions among filler tokens, with distinct keys; the last position asks for one of the
 * keys; the model predicts its value. The pair that answers is anywhere in the sequence, so a
 * variant's reach decides what it can learn (e.g. `local` sees only the last `window` positions).
 * A pair token is the sum of a key embedding and a value embedding (the query token: its key and a
 * `?` value), so one attention layer can solve it by content.
 *
 * Model: key and value embeddings (dim 32), added → CatalogAttention (self-attention, 2 heads of
 * 16) + residual → the last position → dense logits over the values. Adam, softmax cross-entropy,
 * batches of 16 drawn in order from a fixed training set (one epoch = one pass over it); accuracy
 * on a held-out set; everything seeded (src/core/rng.ts, seeded initializers).
 *
 * Two more rows put an MoE FFN (`attention-catalog/layers`' `MoE`: 8 experts, k = 2, hidden 64,
 * capacity factor 0.5, plus the router's weighted losses in the loss) after a dense attention layer:
 * `moe-natural` and `moe-batch-priority`, the two routing orders at a capacity that drops choices.
 *
 * Options: --backend auto|webgpu|wasm|cpu  --variants dense,local,linear,performer,big-bird,moe-natural,moe-batch-priority
 *          --n 512  --steps 60  --epochs 3  --batch 16  --pairs 8  --lr 0.01  --eval 256
 *          --out bench/results
 */
// tfjs-layers' main module registers every op gradient. (tfjs-core's ESM
// dist/register_all_gradients.js cannot be imported under plain Node ESM: directory imports.)
import * as tfl from '@tensorflow/tfjs-layers';
import * as tf from '@tensorflow/tfjs-core';
import { mkdirSync, writeFileSync } from 'node:fs';
import { backendReport, initBackend, type BackendName } from '../src/core/backend.js';
import { kernelAvailable } from '../src/core/dispatch.js';
import { measureIntermediateBytes } from '../src/core/measure.js';
import { SeededRandom } from '../src/core/rng.js';
import { catalogAttention, mixtureOfExperts, type JsonValue } from '../src/layers/catalog-attention.js';
import { args, mib } from './common.js';

const a = args();
const backend = await initBackend((a.backend ?? 'auto') as BackendName);
const n = Number(a.n ?? 512);
const steps = Number(a.steps ?? 60);
const epochs = Number(a.epochs ?? 3);
const batch = Number(a.batch ?? 16);
const pairs = Number(a.pairs ?? 8);
const lr = Number(a.lr ?? 1e-2);
const evalSize = Number(a.eval ?? 256);
const out = a.out ?? 'bench/results';
const variants = (a.variants ?? 'dense,local,linear,performer,big-bird,moe-natural,moe-batch-priority').split(',');
/** The MoE rows: dense attention, then an MoE FFN with this routing order. */
const MOE_ROWS: Record<string, 'natural' | 'batch-priority'> = { 'moe-natural': 'natural', 'moe-batch-priority': 'batch-priority' };
const MOE_CONFIG = { experts: 8, k: 2, capacityFactor: 0.5, hidden: 64, seed: 6 };

const KEYS = 16; // key tokens 1..KEYS
const FILLERS = 16; // filler tokens KEYS+1..KEYS+FILLERS (value 0)
const VALUES = 16; // value tokens 1..VALUES; VALUES+1 is the query's '?'
const DIM = 32;
const HEADS = 2;
const KEY_DIM = 16;

if (!Number.isInteger(n) || n < 2 * pairs + 1) throw new Error(`--n must be an integer >= 2·pairs + 1 = ${2 * pairs + 1}`);
if (pairs > KEYS) throw new Error(`--pairs must be at most ${KEYS} (the keys of a sequence are distinct)`);
if (!Number.isInteger(steps) || !Number.isInteger(epochs) || steps < epochs || steps % epochs !== 0) throw new Error('--steps must be a positive multiple of --epochs');

/** Each variant's config at sequence length n (the layer fills in heads and head dims). */
function variantConfig(id: string): { [key: string]: JsonValue } {
  if (MOE_ROWS[id]) return { ...MOE_CONFIG, policy: MOE_ROWS[id] };
  const sqrt = 2 ** Math.round(Math.log2(Math.sqrt(n)));
  const table: Record<string, { [key: string]: JsonValue }> = {
    dense: {},
    'multi-query': {},
    local: { window: 32 },
    blockwise: { block: 32, lookback: 1 },
    strided: { stride: sqrt },
    dilated: { window: 16, dilation: 2 },
    compressed: { stride: 8 },
    'sparse-transformer': { stride: sqrt, pattern: 'fixed', summary: 4 },
    axial: { shape: [n / sqrt, sqrt] },
    'big-bird': { block: 32, windowBlocks: 3, globalBlocks: 1, randomBlocks: 2 },
    lsh: { bucketSize: 32 },
    routing: { clusters: 4 },
    sinkhorn: { block: 32 },
    'transformer-xl': { memLength: 0 },
    compressive: { memLength: 0, compressedLength: 0 },
    longformer: { window: 32, global: [n - 1] },
    etc: { globalTokens: 1, radius: 32 },
    'set-transformer': { inducingPoints: 16 },
    linformer: { k: 64 },
    linear: {},
    performer: { features: 64 },
    'adaptive-span': { maxSpan: 64, ramp: 16 },
  };
  const c = table[id];
  if (!c) throw new Error(`unknown variant '${id}'; one of ${Object.keys(table).join(', ')}`);
  return c;
}

interface Data {
  keys: tf.Tensor2D;
  values: tf.Tensor2D;
  labels: tf.Tensor1D;
}

/** `count` recall sequences: key ids and value ids `[count, n]` (int32), and the answers `[count]` (0-based value). */
function makeData(count: number, seed: number): Data {
  const rng = new SeededRandom(seed);
  const keys = new Int32Array(count * n);
  const values = new Int32Array(count * n);
  const labels = new Int32Array(count);
  for (let s = 0; s < count; s++) {
    const row = s * n;
    for (let p = 0; p < n - 1; p++) keys[row + p] = KEYS + 1 + rng.int(FILLERS);
    const ks = rng.sample(KEYS, pairs).map((k) => k + 1);
    const positions = rng.sample(n - 1, pairs);
    const vs = ks.map(() => 1 + rng.int(VALUES));
    for (let i = 0; i < pairs; i++) {
      keys[row + positions[i]] = ks[i];
      values[row + positions[i]] = vs[i];
    }
    const asked = rng.int(pairs);
    keys[row + n - 1] = ks[asked];
    values[row + n - 1] = VALUES + 1;
    labels[s] = vs[asked] - 1;
  }
  return { keys: tf.tensor2d(keys, [count, n], 'int32'), values: tf.tensor2d(values, [count, n], 'int32'), labels: tf.tensor1d(labels, 'int32') };
}

/** The model's last position: [B, n, D] → [B, D]. */
class LastPosition extends tfl.layers.Layer {
  static className = 'LastPosition';
  override computeOutputShape(s: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const shape = s as tfl.Shape;
    return [shape[0], shape[2]];
  }
  override call(x: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const t = Array.isArray(x) ? x[0] : x;
    const [B, T, D] = t.shape;
    return tf.reshape(tf.slice(t, [0, T - 1, 0], [B, 1, D]), [B, D]);
  }
}

function buildModel(variant: string) {
  const keyIn = tfl.input({ shape: [n], dtype: 'int32', name: 'keys' });
  const valueIn = tfl.input({ shape: [n], dtype: 'int32', name: 'values' });
  const init = (seed: number) => tfl.initializers.glorotUniform({ seed });
  const ek = tfl.layers.embedding({ inputDim: KEYS + FILLERS + 1, outputDim: DIM, embeddingsInitializer: tfl.initializers.randomNormal({ stddev: 0.5, seed: 1 }) }).apply(keyIn) as tfl.SymbolicTensor;
  const ev = tfl.layers.embedding({ inputDim: VALUES + 2, outputDim: DIM, embeddingsInitializer: tfl.initializers.randomNormal({ stddev: 0.5, seed: 2 }) }).apply(valueIn) as tfl.SymbolicTensor;
  const x = tfl.layers.add().apply([ek, ev]) as tfl.SymbolicTensor;
  const policy = MOE_ROWS[variant];
  const attentionId = policy ? 'dense' : variant;
  const attn = catalogAttention({ numHeads: HEADS, keyDim: KEY_DIM, variant: attentionId, variantConfig: policy ? {} : variantConfig(variant), kernelInitializer: init(3) }).apply(x) as tfl.SymbolicTensor;
  let h = tfl.layers.add().apply([x, attn]) as tfl.SymbolicTensor;
  if (policy) h = tfl.layers.add().apply([h, mixtureOfExperts({ ...MOE_CONFIG, policy }).apply(h) as tfl.SymbolicTensor]) as tfl.SymbolicTensor;
  const last = new LastPosition({}).apply(h) as tfl.SymbolicTensor;
  const logits = tfl.layers.dense({ units: VALUES, kernelInitializer: init(4) }).apply(last) as tfl.SymbolicTensor;
  return tfl.model({ inputs: [keyIn, valueIn], outputs: logits });
}

interface Row {
  variant: string;
  backend: string;
  path: string;
  steps: number;
  finalLoss: number;
  accuracy: number;
  msPerStep: number;
  peakBytes: number;
  error?: string;
}

const report = backendReport()!;
console.log(`attention-catalog training demo — ${report.detail}`);
console.log(`associative recall: n = ${n}, ${pairs} pairs of ${KEYS} keys × ${VALUES} values among filler; batch ${batch}, ${steps} steps (${epochs} epochs of ${steps / epochs}), adam ${lr}; accuracy on ${evalSize} held-out sequences (chance ${(100 / VALUES).toFixed(1)}%)\n`);

const stepsPerEpoch = steps / epochs;
const train = makeData(stepsPerEpoch * batch, 1);
const held = makeData(evalSize, 2);
const rows: Row[] = [];

for (const variant of variants) {
  const model = buildModel(variant);
  const optimizer = tf.train.adam(lr);
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const path = kernelAvailable() ? 'auto (fused)' : 'composite';
  const row: Row = { variant, backend, path, steps: 0, finalLoss: Number.NaN, accuracy: Number.NaN, msPerStep: Number.NaN, peakBytes: Number.NaN };
  const batchAt = (i: number) => {
    const start = (i % stepsPerEpoch) * batch;
    return tf.tidy(() => ({
      keys: tf.slice(train.keys, [start, 0], [batch, n]),
      values: tf.slice(train.values, [start, 0], [batch, n]),
      labels: tf.oneHot(tf.slice(train.labels, [start], [batch]), VALUES),
    }));
  };
  const step = (b: { keys: tf.Tensor; values: tf.Tensor; labels: tf.Tensor }) =>
    optimizer.minimize(() => {
      const ce = tf.losses.softmaxCrossEntropy(b.labels, model.apply([b.keys, b.values], { training: true }) as tf.Tensor) as tf.Scalar;
      // Layer losses (the MoE router's weighted aux and z losses), as fit would add them.
      const extra = model.calculateLosses();
      return (extra.length ? tf.addN([ce, ...extra]) : ce) as tf.Scalar;
    }, true, vars)!;
  try {
    let ms = 0;
    let timed = 0;
    for (let e = 0; e < epochs; e++) {
      let sum = 0;
      for (let s = 0; s < stepsPerEpoch; s++) {
        const i = e * stepsPerEpoch + s;
        const b = batchAt(i);
        const t0 = performance.now();
        let loss: tf.Scalar;
        if (i === 1) {
          // The second step (shaders compiled by the first) also measures peak intermediate bytes.
          const m = await measureIntermediateBytes(() => step(b));
          row.peakBytes = m.bytes;
          loss = m.result;
        } else {
          loss = step(b);
        }
        const value = (await loss.data())[0];
        if (i > 0) {
          ms += performance.now() - t0;
          timed++;
        }
        loss.dispose();
        tf.dispose([b.keys, b.values, b.labels]);
        sum += value;
        row.steps = i + 1;
        row.finalLoss = value;
      }
      console.log(`${variant} epoch ${e + 1}/${epochs}: mean loss ${(sum / stepsPerEpoch).toFixed(4)}, ${(ms / Math.max(1, timed)).toFixed(0)} ms/step`);
    }
    row.msPerStep = ms / Math.max(1, timed);
    // Held-out accuracy, in batches.
    let correct = 0;
    for (let s = 0; s < evalSize; s += batch) {
      const size = Math.min(batch, evalSize - s);
      const hit = tf.tidy(() => {
        const logits = model.predict([tf.slice(held.keys, [s, 0], [size, n]), tf.slice(held.values, [s, 0], [size, n])]) as tf.Tensor;
        return tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), tf.slice(held.labels, [s], [size])), 'int32'));
      });
      correct += (await hit.data())[0];
      hit.dispose();
    }
    row.accuracy = correct / evalSize;
  } catch (err) {
    row.error = (err as Error).message;
    console.log(`${variant}: failed: ${row.error}`);
  } finally {
    model.dispose();
    optimizer.dispose();
  }
  rows.push(row);
}
tf.dispose([train.keys, train.values, train.labels, held.keys, held.values, held.labels]);

const header = ['variant', 'steps', 'final loss', 'accuracy', 'ms/step', 'peak bytes'];
const cells = rows.map((r) =>
  r.error
    ? [r.variant, String(r.steps), '—', '—', '—', `failed: ${r.error}`]
    : [r.variant, String(r.steps), r.finalLoss.toFixed(4), `${(100 * r.accuracy).toFixed(1)}%`, r.msPerStep.toFixed(0), mib(r.peakBytes)],
);
const table = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...cells.map((c) => `| ${c.join(' | ')} |`)].join('\n');
console.log(`\n${table}\n\ntensors alive at exit: ${tf.memory().numTensors}`);

const title = `## Training demo: associative recall at n = ${n} (${backend})`;
const what =
  `The same tiny model (key and value embeddings of dim ${DIM}, one CatalogAttention layer of ${HEADS} heads × ${KEY_DIM} with a residual, dense logits at the last position) ` +
  `trained for ${steps} steps (batch ${batch}, adam ${lr}) per variant on ${report.detail}. Each sequence has ${pairs} (key, value) pairs at random positions among filler tokens; ` +
  `the last position asks for one key's value. Accuracy on ${evalSize} held-out sequences (chance ${(100 / VALUES).toFixed(1)}%). ms/step excludes the first step (shader compilation); ` +
  `peak bytes are the intermediate bytes of one training step (forward, backward and update; src/core/measure.ts). Variant configs: ` +
  variants.map((v) => `${v} ${JSON.stringify(variantConfig(v))}`).join(', ') +
  '. Generated by `npm run train`.';
mkdirSync(out, { recursive: true });
writeFileSync(`${out}/train.md`, `${title}\n\n${what}\n\n${table}\n`);
writeFileSync(
  `${out}/train.json`,
  JSON.stringify({ date: new Date().toISOString(), backend, detail: report.detail, task: { n, pairs, keys: KEYS, values: VALUES, fillers: FILLERS, batch, steps, epochs, lr, evalSize }, rows }, null, 2),
);
console.log(`wrote ${out}/train.md and ${out}/train.json`);
if (rows.some((r) => r.error)) process.exitCode = 1;
