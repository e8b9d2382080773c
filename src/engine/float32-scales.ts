/**
 * `llmkit quantize --scales fp16` (int4's default) stores block scales in fp16, half their bytes, and since
 * MatMulNBits and GatherBlockQuantized take scales in their activations' type, each quantized operator computes in
 * fp16 between two Casts. On the CPU that is the slow path (the kernels convert to fp32 inside, and the Casts are
 * kernels of their own): this load-time rewrite gives such operators their scales in fp32, converted from the file's
 * fp16 values exactly, and drops the Casts, so the CPU runs the fp32 kernels on the same weights. The file keeps its
 * size; only the session's copy of the scales doubles (1/16 of an int4 weight's bytes).
 */
import { halfToFloat } from '../shared/half-float.js';
import {
  FLOAT,
  FLOAT16,
  GRAPH_INITIALIZER,
  GRAPH_NODE,
  intAttributes,
  lengthDelimited,
  nodeWith,
  readNode,
  readTensor,
  TENSOR_DATA_TYPE,
  TENSOR_RAW_DATA,
  type NodeInfo,
  varintField,
  type WireField,
  wireFields,
  withGraph,
} from './onnx-wire.js';

const QUANTIZED_OPS = new Set(['MatMulNBits', 'GatherBlockQuantized']);
/** Where each quantized operator reads its scales. */
const SCALES_INPUT = 2;
/** MatMulNBits' optional bias, in the activations' type: an operator with one is left as it is. */
const BIAS_INPUT = 5;

/** The initializer with its fp16 raw data as fp32 (same name, dims and other fields). */
function asFloat32(buf: Uint8Array, tensor: WireField, bytes: Uint8Array): Uint8Array {
  const halves = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const floats = Float32Array.from({ length: bytes.byteLength / 2 }, (_, i) => halfToFloat(halves.getUint16(2 * i, true)));
  const fields = [...wireFields(buf, tensor.valueStart, tensor.end)].map((f) => {
    if (f.field === TENSOR_DATA_TYPE) return varintField(TENSOR_DATA_TYPE, FLOAT);
    if (f.field === TENSOR_RAW_DATA) return lengthDelimited(TENSOR_RAW_DATA, new Uint8Array(floats.buffer));
    return buf.subarray(f.start, f.end);
  });
  return lengthDelimited(GRAPH_INITIALIZER, Buffer.concat(fields));
}

interface Rewrite {
  node: NodeInfo;
  /** The fp32 tensor it reads instead of its Cast's fp16 one (MatMulNBits), and the Cast after it. */
  input?: NodeInfo;
  output: NodeInfo;
}

function rewrittenGraph(buf: Uint8Array, graph: WireField, found: { operators: number }): Uint8Array[] | undefined {
  const fields = [...wireFields(buf, graph.valueStart, graph.end)];
  const nodes = fields.filter((f) => f.field === GRAPH_NODE).map((f) => readNode(buf, f));
  const producer = new Map(nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
  const readers = new Map<string, NodeInfo[]>();
  for (const n of nodes) for (const i of n.inputs) readers.set(i, [...(readers.get(i) ?? []), n]);
  const initializers = new Map<string, { tensor: WireField; raw: Uint8Array }>();
  for (const f of fields.filter((f) => f.field === GRAPH_INITIALIZER)) {
    const { name, dataType, raw } = readTensor(buf, f);
    if (dataType === FLOAT16 && raw) initializers.set(name, { tensor: f, raw });
  }
  const castTo = (node: NodeInfo | undefined, type: number) => node?.opType === 'Cast' && intAttributes(buf, node).get('to') === type;
  const rewrites = new Map<NodeInfo, Rewrite>();
  for (const node of nodes.filter((n) => QUANTIZED_OPS.has(n.opType) && initializers.has(n.inputs[SCALES_INPUT]) && !n.inputs[BIAS_INPUT])) {
    const after = readers.get(node.outputs[0]) ?? [];
    const input = node.opType === 'MatMulNBits' ? producer.get(node.inputs[0]) : undefined;
    if (after.length !== 1 || !castTo(after[0], FLOAT) || (node.opType === 'MatMulNBits' && !castTo(input, FLOAT16))) continue;
    rewrites.set(node, { node, input, output: after[0] });
  }
  // Scales are converted only where every reader is rewritten (a tied table's are read by its Gather and the output layer).
  const scales = new Set([...rewrites.keys()].map((n) => n.inputs[SCALES_INPUT]));
  const converted = new Set([...scales].filter((name) => readers.get(name)!.every((r) => rewrites.has(r))));
  for (const [node] of rewrites) if (!converted.has(node.inputs[SCALES_INPUT])) rewrites.delete(node);
  if (!rewrites.size) return undefined;
  found.operators = rewrites.size;
  const replaced = new Map<WireField, Uint8Array>();
  const dropped = new Set<WireField>();
  for (const { node, input, output } of rewrites.values()) {
    const inputs = input ? [input.inputs[0], ...node.inputs.slice(1)] : node.inputs;
    replaced.set(node.range, nodeWith(buf, node, inputs, [output.outputs[0], ...node.outputs.slice(1)]));
    dropped.add(output.range);
    if (input && (readers.get(input.outputs[0]) ?? []).every((r) => rewrites.has(r))) dropped.add(input.range);
  }
  for (const name of converted) {
    const { tensor, raw } = initializers.get(name)!;
    replaced.set(tensor, asFloat32(buf, tensor, raw));
  }
  return fields.flatMap((f) => (dropped.has(f) ? [] : [replaced.get(f) ?? buf.subarray(f.start, f.end)]));
}

/** The model with fp32 block scales where it computes quantized operators in fp16 between Casts (see above), and how many operators changed. */
export function withFloat32Scales(model: Uint8Array): { bytes: Uint8Array; operators: number } {
  const found = { operators: 0 };
  const bytes = withGraph(model, (graph) => rewrittenGraph(model, graph, found));
  return { bytes: bytes ?? model, operators: found.operators };
}
