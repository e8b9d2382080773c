/**
 * Removes graph outputs from a serialized ONNX model, with the nodes that only they needed.
 *
 * ONNX Runtime runs every node of a graph whatever outputs a call fetches, so an export's `present.*`
 * outputs (past + new keys/values, concatenated: what transformers.js needs) cost a full copy of the
 * cache per decode step even when the engine fetches only `new_key_values`. Reading the protobuf
 * wire format directly (onnx-wire.ts) keeps this to one pass over the bytes.
 */
import { GRAPH_NODE, GRAPH_OUTPUT, outputName, readNode, SUBGRAPH_OPS, wireFields, withGraph, type WireField } from './onnx-wire.js';

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
  return withGraph(model, (graph) => prunedGraph(model, graph, drop)) ?? model;
}
