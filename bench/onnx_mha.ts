/**
 * A one-node ONNX model, built in code: onnxruntime's contrib op `MultiHeadAttention` (domain
 * `com.microsoft`) with 3-D packed inputs, for the browser benchmark's onnxruntime-web column.
 *
 * ```
 *   query [B, S, H·D] ─┐
 *   key   [B, L, H·D] ─┼─ MultiHeadAttention(num_heads = H[, scale]) ─ output [B, S, H·D]
 *   value [B, L, H·Dv]─┘
 * ```
 *
 * The bytes are a serialized `onnx.ModelProto` (ir_version 8, opsets "" 17 and "com.microsoft"
 * 1), written by a minimal protobuf encoder: varints, length-delimited fields and a fixed32
 * float, nothing else, so no protobuf library is needed and no .onnx file is checked in. The
 * field numbers are onnx.proto's:
 *
 * | message | fields used |
 * |---|---|
 * | ModelProto | ir_version 1, producer_name 2, graph 7, opset_import 8 |
 * | OperatorSetIdProto | domain 1, version 2 |
 * | GraphProto | node 1, name 2, input 11, output 12 |
 * | NodeProto | input 1, output 2, name 3, op_type 4, attribute 5, domain 7 |
 * | AttributeProto | name 1, f 2, i 3, type 20 (FLOAT 1, INT 2) |
 * | ValueInfoProto | name 1, type 2 |
 * | TypeProto | tensor_type 1 → elem_type 1 (FLOAT = 1), shape 2 → dim 1 → dim_value 1 |
 */

/** Shapes of the model; `scale` omitted means onnxruntime's default `1 / sqrt(D)`. */
export interface MhaModelSpec {
  batch: number;
  /** Query length S. */
  n: number;
  /** Key/value length L. Default `n`. */
  m?: number;
  heads: number;
  /** Per-head query/key width D. */
  d: number;
  /** Per-head value width Dv. Default `d`. */
  dv?: number;
  /** Score scale; when given it is written as the FLOAT attribute `scale`. */
  scale?: number;
}

// Wire types.
const VARINT = 0;
const LEN = 2;
const FIXED32 = 5;

const utf8 = new TextEncoder();

/** Bytes of one protobuf message, appended field by field. */
class Writer {
  private parts: number[] = [];

  private varint(v: number): void {
    // Non-negative integers below 2^53 (all this model needs).
    if (v < 0 || !Number.isInteger(v)) throw new Error(`varint: ${v} is not a non-negative integer`);
    while (v >= 0x80) {
      this.parts.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    this.parts.push(v);
  }

  private tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  int(field: number, v: number): this {
    this.tag(field, VARINT);
    this.varint(v);
    return this;
  }

  bytes(field: number, b: Uint8Array): this {
    this.tag(field, LEN);
    this.varint(b.length);
    for (const x of b) this.parts.push(x);
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, utf8.encode(s));
  }

  message(field: number, m: Writer): this {
    return this.bytes(field, m.finish());
  }

  float(field: number, f: number): this {
    this.tag(field, FIXED32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, f, true);
    for (const x of b) this.parts.push(x);
    return this;
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

const FLOAT = 1; // TensorProto.DataType.FLOAT
const ATTR_FLOAT = 1; // AttributeProto.AttributeType.FLOAT
const ATTR_INT = 2; // AttributeProto.AttributeType.INT

function valueInfo(name: string, dims: number[]): Writer {
  const shape = new Writer();
  for (const d of dims) shape.message(1, new Writer().int(1, d));
  const tensor = new Writer().int(1, FLOAT).message(2, shape);
  return new Writer().string(1, name).message(2, new Writer().message(1, tensor));
}

/**
 * Serialized ModelProto of one `com.microsoft` MultiHeadAttention node: inputs `query`
 * `[B, S, H·D]`, `key` `[B, L, H·D]`, `value` `[B, L, H·Dv]` (float32), output `output`
 * `[B, S, H·Dv]`; attribute `num_heads` = H, and `scale` when `spec.scale` is set.
 *
 * @example
 * ```ts
 * const bytes = multiHeadAttentionModel({ batch: 1, n: 1024, heads: 8, d: 64 });
 * const session = await ort.InferenceSession.create(bytes, { executionProviders: ['webgpu'] });
 * ```
 */
export function multiHeadAttentionModel(spec: MhaModelSpec): Uint8Array {
  const { batch: B, n: S, heads: H, d: D } = spec;
  const L = spec.m ?? S;
  const Dv = spec.dv ?? D;
  for (const [k, v] of Object.entries({ batch: B, n: S, m: L, heads: H, d: D, dv: Dv }))
    if (!Number.isInteger(v) || v < 1) throw new Error(`multiHeadAttentionModel: ${k} must be an integer >= 1, got ${v}`);

  const node = new Writer()
    .string(1, 'query')
    .string(1, 'key')
    .string(1, 'value')
    .string(2, 'output')
    .string(3, 'mha')
    .string(4, 'MultiHeadAttention')
    .message(5, new Writer().string(1, 'num_heads').int(3, H).int(20, ATTR_INT));
  if (spec.scale !== undefined) node.message(5, new Writer().string(1, 'scale').float(2, spec.scale).int(20, ATTR_FLOAT));
  node.string(7, 'com.microsoft');

  const graph = new Writer()
    .message(1, node)
    .string(2, 'mha_graph')
    .message(11, valueInfo('query', [B, S, H * D]))
    .message(11, valueInfo('key', [B, L, H * D]))
    .message(11, valueInfo('value', [B, L, H * Dv]))
    .message(12, valueInfo('output', [B, S, H * Dv]));

  return new Writer()
    .int(1, 8) // ir_version
    .string(2, 'attention-catalog bench')
    .message(7, graph)
    .message(8, new Writer().string(1, '').int(2, 17))
    .message(8, new Writer().string(1, 'com.microsoft').int(2, 1))
    .finish();
}
