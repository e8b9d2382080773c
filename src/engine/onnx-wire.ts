/**
 * Just enough of the protobuf wire format to read and edit an ONNX model's graph in place: fields are
 * located by byte range and copied through untouched, so weights are never decoded. No protobuf
 * dependency, one pass over the bytes.
 */

/** One field of a protobuf message: its number, wire type and byte range (tag included). */
export interface WireField {
  field: number;
  wire: number;
  start: number;
  /** Where a length-delimited value's bytes begin. */
  valueStart: number;
  end: number;
}

export const MODEL_GRAPH = 7;
export const GRAPH_NODE = 1;
export const GRAPH_INITIALIZER = 5;
export const GRAPH_INPUT = 11;
export const GRAPH_OUTPUT = 12;
export const NODE_INPUT = 1;
export const NODE_OUTPUT = 2;
export const NODE_NAME = 3;
export const NODE_OP_TYPE = 4;
export const NODE_ATTRIBUTE = 5;
export const ATTRIBUTE_NAME = 1;
export const ATTRIBUTE_INT = 3;
export const VALUE_INFO_NAME = 1;
export const TENSOR_DIMS = 1;
export const TENSOR_DATA_TYPE = 2;
export const TENSOR_NAME = 8;
export const TENSOR_RAW_DATA = 9;
/** TensorProto data types. */
export const FLOAT = 1;
export const INT64 = 7;
export const FLOAT16 = 10;
/** Ops whose subgraphs may read outer names that a plain walk of node inputs would not see. */
export const SUBGRAPH_OPS = new Set(['If', 'Loop', 'Scan']);

const utf8 = new TextDecoder();

/** A varint's value and the position after it. */
export function readVarint(buf: Uint8Array, pos: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (;;) {
    const byte = buf[pos++];
    if (byte === undefined) throw new Error('truncated ONNX model');
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return [value, pos];
    scale *= 128;
  }
}

export function* wireFields(buf: Uint8Array, from = 0, to = buf.length): Generator<WireField> {
  let pos = from;
  while (pos < to) {
    const start = pos;
    const [tag, afterTag] = readVarint(buf, pos);
    const wire = tag & 7;
    let valueStart = afterTag;
    if (wire === 0) pos = readVarint(buf, afterTag)[1];
    else if (wire === 1) pos = afterTag + 8;
    else if (wire === 5) pos = afterTag + 4;
    else if (wire === 2) {
      const [length, afterLength] = readVarint(buf, afterTag);
      valueStart = afterLength;
      pos = afterLength + length;
    } else throw new Error(`unsupported protobuf wire type ${wire} in ONNX model`);
    yield { field: Math.floor(tag / 8), wire, start, valueStart, end: pos };
  }
}

export const text = (buf: Uint8Array, f: WireField) => utf8.decode(buf.subarray(f.valueStart, f.end));

export function encodeVarint(value: number): number[] {
  const bytes: number[] = [];
  while (value >= 0x80) {
    bytes.push((value % 128) | 0x80);
    value = Math.floor(value / 128);
  }
  bytes.push(value);
  return bytes;
}

export interface NodeInfo {
  range: WireField;
  inputs: string[];
  outputs: string[];
  opType: string;
}

export function readNode(buf: Uint8Array, range: WireField): NodeInfo {
  const node: NodeInfo = { range, inputs: [], outputs: [], opType: '' };
  for (const f of wireFields(buf, range.valueStart, range.end)) {
    if (f.field === NODE_INPUT) node.inputs.push(text(buf, f));
    else if (f.field === NODE_OUTPUT) node.outputs.push(text(buf, f));
    else if (f.field === NODE_OP_TYPE) node.opType = text(buf, f);
  }
  return node;
}

export function outputName(buf: Uint8Array, range: WireField): string {
  for (const f of wireFields(buf, range.valueStart, range.end)) if (f.field === VALUE_INFO_NAME) return text(buf, f);
  return '';
}

/** A TensorProto (an initializer): name, dims (repeated int64: packed or not, as writers choose), type and raw_data (absent when stored otherwise). */
export function readTensor(buf: Uint8Array, range: WireField): { name: string; dims: number[]; dataType: number; raw?: Uint8Array } {
  const tensor: ReturnType<typeof readTensor> = { name: '', dims: [], dataType: 0 };
  for (const f of wireFields(buf, range.valueStart, range.end)) {
    if (f.field === TENSOR_NAME) tensor.name = text(buf, f);
    else if (f.field === TENSOR_DATA_TYPE) tensor.dataType = readVarint(buf, f.valueStart)[0];
    else if (f.field === TENSOR_RAW_DATA) tensor.raw = buf.subarray(f.valueStart, f.end);
    else if (f.field === TENSOR_DIMS && f.wire === 0) tensor.dims.push(readVarint(buf, f.valueStart)[0]);
    else if (f.field === TENSOR_DIMS && f.wire === 2) for (let p = f.valueStart; p < f.end; ) [tensor.dims[tensor.dims.length], p] = readVarint(buf, p);
  }
  return tensor;
}

const utf8Encoder = new TextEncoder();

/** A node's integer attributes by name. */
export function intAttributes(buf: Uint8Array, node: NodeInfo): Map<string, number> {
  const found = new Map<string, number>();
  for (const f of wireFields(buf, node.range.valueStart, node.range.end)) {
    if (f.field !== NODE_ATTRIBUTE) continue;
    let name = '';
    let value: number | undefined;
    for (const a of wireFields(buf, f.valueStart, f.end)) {
      if (a.field === ATTRIBUTE_NAME) name = text(buf, a);
      if (a.field === ATTRIBUTE_INT) value = readVarint(buf, a.valueStart)[0];
    }
    if (value !== undefined) found.set(name, value);
  }
  return found;
}

/** A node with its inputs and outputs replaced, its other fields (name, op type, attributes, domain) kept. */
export function nodeWith(buf: Uint8Array, node: NodeInfo, inputs: readonly string[], outputs: readonly string[], attributes: Uint8Array[] = []): Uint8Array {
  const rest = [...wireFields(buf, node.range.valueStart, node.range.end)].filter((f) => f.field !== NODE_INPUT && f.field !== NODE_OUTPUT).map((f) => buf.subarray(f.start, f.end));
  return lengthDelimited(GRAPH_NODE, Buffer.concat([...inputs.map((i) => stringField(NODE_INPUT, i)), ...outputs.map((o) => stringField(NODE_OUTPUT, o)), ...rest, ...attributes]));
}

/** A length-delimited field (a string, bytes or a nested message). */
export function lengthDelimited(field: number, value: Uint8Array): Uint8Array {
  return Buffer.concat([Uint8Array.from([...encodeVarint(field * 8 + 2), ...encodeVarint(value.length)]), value]);
}

export const stringField = (field: number, value: string) => lengthDelimited(field, utf8Encoder.encode(value));

/** A non-negative varint field. */
export const varintField = (field: number, value: number) => Uint8Array.from([...encodeVarint(field * 8), ...encodeVarint(value)]);

/**
 * `model` (a serialized ModelProto) with its graph's fields replaced by what `rewrite` returns for them, or
 * undefined when `rewrite` declines (returns undefined). The graph holds the weights, so the result is written
 * into one buffer sized up front: concatenating the graph, then the model, held three copies of the weights at
 * once (880 MiB of a 100M-parameter fp32 export's 293), which was most of serve's peak memory at load.
 */
export function withGraph(model: Uint8Array, rewrite: (graph: WireField) => Uint8Array[] | undefined): Uint8Array | undefined {
  const parts: Uint8Array[] = [];
  let rewritten = false;
  for (const f of wireFields(model)) {
    const graph = f.field === MODEL_GRAPH && f.wire === 2 ? rewrite(f) : undefined;
    rewritten ||= graph !== undefined;
    if (!graph) parts.push(model.subarray(f.start, f.end));
    else parts.push(Uint8Array.from(encodeVarint(MODEL_GRAPH * 8 + 2)), Uint8Array.from(encodeVarint(byteLength(graph))), ...graph);
  }
  if (!rewritten) return undefined;
  const out = Buffer.allocUnsafe(byteLength(parts));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** A graph initializer of raw bytes. */
export function initializerField(name: string, dataType: number, dims: readonly number[], raw: Uint8Array): Uint8Array {
  const fields = [...dims.map((d) => varintField(TENSOR_DIMS, d)), varintField(TENSOR_DATA_TYPE, dataType), stringField(TENSOR_NAME, name), lengthDelimited(TENSOR_RAW_DATA, raw)];
  return lengthDelimited(GRAPH_INITIALIZER, Buffer.concat(fields));
}

/** The node's fields with its input number `index` renamed. */
export function withNodeInput(buf: Uint8Array, node: NodeInfo, index: number, input: string): Uint8Array {
  let seen = 0;
  const fields = [...wireFields(buf, node.range.valueStart, node.range.end)].map((f) => (f.field === NODE_INPUT && seen++ === index ? stringField(NODE_INPUT, input) : buf.subarray(f.start, f.end)));
  return lengthDelimited(GRAPH_NODE, Buffer.concat(fields));
}

/** A graph node (named after its one output). */
export function nodeField(opType: string, inputs: string[], output: string): Uint8Array {
  return lengthDelimited(
    GRAPH_NODE,
    Buffer.concat([...inputs.map((i) => stringField(NODE_INPUT, i)), stringField(NODE_OUTPUT, output), stringField(NODE_NAME, output), stringField(NODE_OP_TYPE, opType)]),
  );
}

/** A graph input or output (`field`: GRAPH_INPUT or GRAPH_OUTPUT; a ValueInfoProto: name, TypeProto.tensor_type{elem_type, shape{dim}}) whose dims are symbols (strings) or sizes. */
export function valueInfoField(field: number, name: string, elemType: number, dims: readonly (string | number)[]): Uint8Array {
  const dimFields = dims.map((d) => lengthDelimited(1, typeof d === 'number' ? varintField(1, d) : stringField(2, d)));
  const tensorType = lengthDelimited(1, Buffer.concat([varintField(1, elemType), lengthDelimited(2, Buffer.concat(dimFields))]));
  return lengthDelimited(field, Buffer.concat([stringField(1, name), lengthDelimited(2, tensorType)]));
}

/** A graph input whose dims are symbols (strings) or sizes. */
export function graphInputField(name: string, elemType: number, dims: readonly (string | number)[]): Uint8Array {
  return valueInfoField(GRAPH_INPUT, name, elemType, dims);
}

const byteLength = (parts: Uint8Array[]) => parts.reduce((n, p) => n + p.length, 0);
