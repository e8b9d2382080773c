/**
 * Removes graph outputs from a serialized ONNX model, with the nodes that only they needed.
 *
 * ONNX Runtime runs every node of a graph whatever outputs a call fetches, so an export's `present.*`
 * outputs (past + new keys/values, concatenated: what transformers.js needs) cost a full copy of the
 * cache per decode step even when the engine fetches only `new_key_values`. Reading the protobuf
 * wire format directly keeps this to one pass over the bytes, with no protobuf dependency.
 */

/** One field of a protobuf message: its number, wire type and byte range (tag included). */
interface WireField {
  field: number;
  wire: number;
  start: number;
  /** Where a length-delimited value's bytes begin. */
  valueStart: number;
  end: number;
}

const MODEL_GRAPH = 7;
const GRAPH_NODE = 1;
const GRAPH_OUTPUT = 12;
const NODE_INPUT = 1;
const NODE_OUTPUT = 2;
const NODE_OP_TYPE = 4;
const VALUE_INFO_NAME = 1;
/** Ops whose subgraphs may read outer names that a plain walk of node inputs would not see. */
const SUBGRAPH_OPS = new Set(['If', 'Loop', 'Scan']);

const utf8 = new TextDecoder();

function readVarint(buf: Uint8Array, pos: number): [number, number] {
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

function* wireFields(buf: Uint8Array, from = 0, to = buf.length): Generator<WireField> {
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

const text = (buf: Uint8Array, f: WireField) => utf8.decode(buf.subarray(f.valueStart, f.end));

function encodeVarint(value: number): number[] {
  const bytes: number[] = [];
  while (value >= 0x80) {
    bytes.push((value % 128) | 0x80);
    value = Math.floor(value / 128);
  }
  bytes.push(value);
  return bytes;
}

interface NodeInfo {
  range: WireField;
  inputs: string[];
  outputs: string[];
  opType: string;
}

function readNode(buf: Uint8Array, range: WireField): NodeInfo {
  const node: NodeInfo = { range, inputs: [], outputs: [], opType: '' };
  for (const f of wireFields(buf, range.valueStart, range.end)) {
    if (f.field === NODE_INPUT) node.inputs.push(text(buf, f));
    else if (f.field === NODE_OUTPUT) node.outputs.push(text(buf, f));
    else if (f.field === NODE_OP_TYPE) node.opType = text(buf, f);
  }
  return node;
}

function outputName(buf: Uint8Array, range: WireField): string {
  for (const f of wireFields(buf, range.valueStart, range.end)) if (f.field === VALUE_INFO_NAME) return text(buf, f);
  return '';
}

/** The graph's fields without the dropped outputs and the nodes that fed only them; undefined to leave it as it is. */
function prunedGraph(buf: Uint8Array, graph: WireField, drop: (output: string) => boolean): Uint8Array[] | undefined {
  const fields = [...wireFields(buf, graph.valueStart, graph.end)];
  const nodes = fields.filter((f) => f.field === GRAPH_NODE).map((f) => readNode(buf, f));
  if (nodes.some((n) => SUBGRAPH_OPS.has(n.opType))) return undefined;
  const dropped = new Set(fields.filter((f) => f.field === GRAPH_OUTPUT && drop(outputName(buf, f))));
  // Walked from the kept outputs through each tensor's producer: ONNX does not require nodes in
  // topological order (converters append nodes, e.g. the input Casts of a float16 conversion).
  const producer = new Map(nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
  const wanted = fields.filter((f) => f.field === GRAPH_OUTPUT && !dropped.has(f)).map((f) => outputName(buf, f));
  const live = new Set<WireField>();
  for (let name = wanted.pop(); name !== undefined; name = wanted.pop()) {
    const node = producer.get(name);
    if (!node || live.has(node.range)) continue;
    live.add(node.range);
    wanted.push(...node.inputs);
  }
  return fields.filter((f) => !dropped.has(f) && (f.field !== GRAPH_NODE || live.has(f))).map((f) => buf.subarray(f.start, f.end));
}

/** `model` (a serialized ModelProto) without the graph outputs `drop` picks and the nodes only they needed. */
export function withoutOutputs(model: Uint8Array, drop: (output: string) => boolean): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const f of wireFields(model)) {
    const graph = f.field === MODEL_GRAPH && f.wire === 2 ? prunedGraph(model, f, drop) : undefined;
    if (!graph) {
      parts.push(model.subarray(f.start, f.end));
      continue;
    }
    const length = graph.reduce((n, p) => n + p.length, 0);
    parts.push(Uint8Array.from([...encodeVarint(MODEL_GRAPH * 8 + 2), ...encodeVarint(length)]), ...graph);
  }
  return Buffer.concat(parts);
}
