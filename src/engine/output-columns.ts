/**
 * Rewrites a serialized decoder so that its output layer scores chosen tokens only: the layer's [hidden, vocab]
 * weight (a MatMul's initializer, fp32 or fp16) is replaced by its columns for those tokens, and logits come out
 * [batch, positions, tokens]. A draft model proposes from its most frequent tokens this way (FR-Spec): SmolLM2's
 * tied 49,152-row output layer is most of what a 4-layer draft reads a token, and the target, which verifies
 * every draft with its whole vocabulary, keeps the output exact whatever the draft leaves out.
 */
import { GRAPH_INITIALIZER, GRAPH_NODE, initializerField, readNode, readTensor, wireFields, withGraph, withNodeInput, FLOAT, FLOAT16, type WireField } from './onnx-wire.js';
import { outputLayer } from './last-position-logits.js';

const ELEMENT_BYTES = new Map([
  [FLOAT, 4],
  [FLOAT16, 2],
]);

/** `raw` ([rows, columns] of `width`-byte elements) with only the given columns, in their order. */
function gatherColumns(raw: Uint8Array, rows: number, columns: number, width: number, keep: readonly number[]): Uint8Array {
  const aligned = Uint8Array.from(raw);
  const [from, to] = width === 4 ? [new Uint32Array(aligned.buffer), new Uint32Array(rows * keep.length)] : [new Uint16Array(aligned.buffer), new Uint16Array(rows * keep.length)];
  for (let r = 0; r < rows; r++) for (let j = 0; j < keep.length; j++) to[r * keep.length + j] = from[r * columns + keep[j]];
  return new Uint8Array(to.buffer);
}

function rewrittenGraph(buf: Uint8Array, graph: WireField, ids: readonly number[], output: string): Uint8Array[] | undefined {
  const fields = [...wireFields(buf, graph.valueStart, graph.end)];
  const nodes = fields.filter((f) => f.field === GRAPH_NODE).map((f) => readNode(buf, f));
  const layer = outputLayer(nodes, output);
  if (layer?.opType !== 'MatMul') return undefined;
  const weightField = fields.find((f) => f.field === GRAPH_INITIALIZER && readTensor(buf, f).name === layer.inputs[1]);
  const weight = weightField && readTensor(buf, weightField);
  const width = weight && ELEMENT_BYTES.get(weight.dataType);
  if (!weight?.raw || !width || weight.dims.length !== 2 || ids.some((id) => id >= weight.dims[1])) return undefined;
  const [hidden, vocab] = weight.dims;
  const name = `${weight.name}/columns`;
  const columns = initializerField(name, weight.dataType, [hidden, ids.length], gatherColumns(weight.raw, hidden, vocab, width, ids));
  // A tied weight the rest of the graph also reads stays; the output layer's own copy goes.
  const shared = nodes.some((n) => n !== layer && n.inputs.includes(weight.name));
  return fields.flatMap((f) => {
    if (f === layer.range) return [columns, withNodeInput(buf, layer, 1, name)];
    return f === weightField && !shared ? [] : [buf.subarray(f.start, f.end)];
  });
}

/** `model` whose `output` covers the tokens `ids` only (in that order), or undefined when its output layer is not a float MatMul over an inline weight. */
export function withOutputColumns(model: Uint8Array, ids: readonly number[], output = 'logits'): Uint8Array | undefined {
  return withGraph(model, (graph) => rewrittenGraph(model, graph, ids, output));
}
