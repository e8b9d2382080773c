/**
 * Rewrites a serialized decoder so that `logits` covers each row's last positions only: the output layer
 * (a MatMul, or MatMulNBits once quantized, maybe behind the Cast of a float16 export) then reads a Slice
 * of its input. Generation never looks at the other positions, and with a real vocabulary they are much
 * of a prefill's cost: a 256-token prompt through Qwen2.5-0.5B's 151,936-entry output layer is ~70 GFLOP
 * and 155 MB of logits, next to ~250 GFLOP for the rest of the model. How many last positions is an input,
 * `last_positions` ([1], int64): 1 to generate, k + 1 to verify k drafted tokens (speculative decoding).
 */
import { GRAPH_INPUT, GRAPH_NODE, graphInputField, initializerField, nodeField, readNode, wireFields, withGraph, withNodeInput, INT64, type NodeInfo, type WireField } from './onnx-wire.js';

/** The input that says how many last positions get logits. */
export const LAST_POSITIONS_INPUT = 'last_positions';
const OUTPUT_LAYER_OPS = new Set(['MatMul', 'MatMulNBits']);

/** A one-element int64 initializer. */
const int64Initializer = (name: string, value: bigint) => initializerField(name, INT64, [1], new Uint8Array(BigInt64Array.of(value).buffer));

/** The node that computes `output` through any Casts: the output layer, if the graph is the usual shape. */
export function outputLayer(nodes: NodeInfo[], output: string): NodeInfo | undefined {
  const producer = new Map(nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
  let node = producer.get(output);
  while (node?.opType === 'Cast') node = producer.get(node.inputs[0]);
  return node && OUTPUT_LAYER_OPS.has(node.opType) ? node : undefined;
}

function rewrittenGraph(buf: Uint8Array, graph: WireField, output: string, positions: LastPositions): Uint8Array[] | undefined {
  const fields = [...wireFields(buf, graph.valueStart, graph.end)];
  const nodes = fields.filter((f) => f.field === GRAPH_NODE).map((f) => readNode(buf, f));
  const layer = outputLayer(nodes, output);
  if (!layer) return undefined;
  const hidden = layer.inputs[0];
  const last = `${hidden}/last_position`;
  const constants: [string, bigint][] = [
    [`${last}/ends`, 2n ** 63n - 1n],
    [`${last}/axes`, 1n],
  ];
  const starts = `${last}/starts`;
  if (positions === 1) constants.push([starts, -1n]);
  const negate = positions === 1 ? [] : [nodeField('Neg', [LAST_POSITIONS_INPUT], starts)];
  const slice = nodeField('Slice', [hidden, starts, ...constants.slice(0, 2).map(([name]) => name)], last);
  const added = [...constants.map(([name, value]) => int64Initializer(name, value)), ...negate, slice, withNodeInput(buf, layer, 0, last)];
  const firstInput = positions === 1 ? undefined : fields.find((f) => f.field === GRAPH_INPUT);
  return fields.flatMap((f) => [...(f === firstInput ? [graphInputField(LAST_POSITIONS_INPUT, INT64, [1])] : []), ...(f === layer.range ? added : [buf.subarray(f.start, f.end)])]);
}

/** How many last positions get logits: the `last_positions` input, or always 1 (no input: a captured CUDA graph replays it unchanged). */
export type LastPositions = 'input' | 1;

/**
 * `model` with `output` ([batch, positions, vocab]) computed for the last `last_positions` positions only,
 * or undefined when the output layer is not where this expects it.
 */
export function withLastPositionLogits(model: Uint8Array, output = 'logits', positions: LastPositions = 'input'): Uint8Array | undefined {
  return withGraph(model, (graph) => rewrittenGraph(model, graph, output, positions));
}
