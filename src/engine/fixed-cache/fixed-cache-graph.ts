/**
 * Derives the fixed-cache decode graph from an `llmkit export --gqa` graph ("fused-gqa"), in memory: every shape
 * of a decode step is then fixed, so ONNX Runtime can capture the step as one CUDA graph and replay it.
 *
 * - GroupQueryAttention reads `seqlens_k` (int64 [batch]: each row's cached tokens, the new one's column) and
 *   `total_sequence_length` (int32 scalar: the cache's columns) from inputs, instead of computing them from an
 *   attention mask whose width grows every step; its attention bias goes: each row's tokens start at column 0 of
 *   its own cache row and `seqlens_k` bounds them, so there is no padding to mask.
 * - `past_key_values.*` and `present.*` take GroupQueryAttention's own dtype (a float16 export casts them to float32
 *   at its boundary), so one device buffer can be both and the operator writes the new keys into it in place.
 * - The output layer reads each row's last position only, and an ArgMax after it gives `next_token`
 *   (int64 [batch, 1, 1]): greedy sampling on the device, so a step hands back token ids.
 *
 * (test/bench/device/fixed-cache-graph.py is the same rewrite with the onnx package, for the device benchmark.)
 */
import { withLastPositionLogits } from '../last-position-logits.js';
import {
  GRAPH_INPUT,
  GRAPH_NODE,
  GRAPH_OUTPUT,
  INT64,
  lengthDelimited,
  NODE_INPUT,
  NODE_NAME,
  NODE_OP_TYPE,
  NODE_OUTPUT,
  outputName,
  readNode,
  readVarint,
  stringField,
  text,
  varintField,
  type NodeInfo,
  valueInfoField,
  type WireField,
  wireFields,
  withGraph,
} from '../onnx-wire.js';

/** int64 [batch], cast to GroupQueryAttention's int32 inside: a decode step's positions are its lengths, one buffer serves both. */
export const SEQLENS_INPUT = 'seqlens_k';
const SEQLENS_INT32 = 'seqlens_k/int32';
export const TOTAL_LENGTH_INPUT = 'total_sequence_length';
export const NEXT_TOKEN_OUTPUT = 'next_token';

const NODE_ATTRIBUTE = 5;
const ATTRIBUTE_NAME = 1;
const ATTRIBUTE_INT = 3;
const ATTRIBUTE_TYPE = 20;
const ATTRIBUTE_TYPE_INT = 2;
const ELEM_FLOAT = 1;
const ELEM_INT32 = 6;
const ELEM_FLOAT16 = 10;
/** The nodes the export adds to compute GroupQueryAttention's lengths and bias from the attention mask. */
const MASK_NODES = '/model/gqa_inputs/';

export type CacheType = 'float32' | 'float16';

/** A node with its inputs and outputs replaced, its other fields (name, op type, attributes, domain) kept. */
function nodeWith(buf: Uint8Array, node: NodeInfo, inputs: readonly string[], outputs: readonly string[]): Uint8Array {
  const rest = [...wireFields(buf, node.range.valueStart, node.range.end)].filter((f) => f.field !== NODE_INPUT && f.field !== NODE_OUTPUT).map((f) => buf.subarray(f.start, f.end));
  return lengthDelimited(GRAPH_NODE, Buffer.concat([...inputs.map((i) => stringField(NODE_INPUT, i)), ...outputs.map((o) => stringField(NODE_OUTPUT, o)), ...rest]));
}

/** A Cast node's `to` element type. */
function castTarget(buf: Uint8Array, node: NodeInfo): number | undefined {
  for (const f of wireFields(buf, node.range.valueStart, node.range.end)) {
    if (f.field !== NODE_ATTRIBUTE) continue;
    let name = '';
    let value: number | undefined;
    for (const a of wireFields(buf, f.valueStart, f.end)) {
      if (a.field === ATTRIBUTE_NAME) name = text(buf, a);
      if (a.field === ATTRIBUTE_INT) value = readVarint(buf, a.valueStart)[0];
    }
    if (name === 'to') return value;
  }
  return undefined;
}

/** A message's fields with field `field` rewritten by `edit` (nested messages are rewritten from the inside). */
function editField(buf: Uint8Array, range: WireField, field: number, edit: (f: WireField) => Uint8Array): Uint8Array {
  return Buffer.concat([...wireFields(buf, range.valueStart, range.end)].map((f) => (f.field === field ? edit(f) : buf.subarray(f.start, f.end))));
}

/** A graph input or output (ValueInfoProto) with its tensor element type changed. */
function withElementType(buf: Uint8Array, value: WireField, elementType: number): Uint8Array {
  const body = editField(buf, value, 2, (type) =>
    lengthDelimited(
      2,
      editField(buf, type, 1, (tensor) =>
        lengthDelimited(
          1,
          editField(buf, tensor, 1, () => varintField(1, elementType)),
        ),
      ),
    ),
  );
  return lengthDelimited(value.field, body);
}

/** A node of one input and one output with one integer attribute. */
function unaryNode(opType: string, input: string, output: string, attribute: string, value: number): Uint8Array {
  const attr = lengthDelimited(NODE_ATTRIBUTE, Buffer.concat([stringField(ATTRIBUTE_NAME, attribute), varintField(ATTRIBUTE_INT, value), varintField(ATTRIBUTE_TYPE, ATTRIBUTE_TYPE_INT)]));
  return lengthDelimited(
    GRAPH_NODE,
    Buffer.concat([stringField(NODE_INPUT, input), stringField(NODE_OUTPUT, output), stringField(NODE_NAME, `${output}/${opType}`), stringField(NODE_OP_TYPE, opType), attr]),
  );
}

function rewrittenGraph(buf: Uint8Array, graph: WireField, found: { cacheType?: number; attention: number }): Uint8Array[] {
  const fields = [...wireFields(buf, graph.valueStart, graph.end)];
  const nodes = fields.filter((f) => f.field === GRAPH_NODE).map((f) => readNode(buf, f));
  const graphInputs = new Set(fields.filter((f) => f.field === GRAPH_INPUT).map((f) => outputName(buf, f)));
  const graphOutputs = new Set(fields.filter((f) => f.field === GRAPH_OUTPUT).map((f) => outputName(buf, f)));
  const producer = new Map(nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
  const readers = new Map<string, NodeInfo[]>();
  for (const n of nodes) for (const i of n.inputs) readers.set(i, [...(readers.get(i) ?? []), n]);
  const dropped = new Set<WireField>(nodes.filter((n) => n.outputs.some((o) => o.startsWith(MASK_NODES))).map((n) => n.range));
  const replaced = new Map<WireField, Uint8Array>();
  for (const node of nodes.filter((n) => n.opType === 'GroupQueryAttention')) {
    found.attention++;
    const inputs = [...node.inputs];
    const outputs = [...node.outputs];
    for (const slot of [3, 4]) {
      const cast = producer.get(inputs[slot]);
      if (cast?.opType !== 'Cast' || !graphInputs.has(cast.inputs[0])) continue;
      dropped.add(cast.range);
      found.cacheType = castTarget(buf, cast);
      inputs[slot] = cast.inputs[0];
    }
    for (const slot of [1, 2]) {
      const cast = readers.get(outputs[slot])?.find((r) => r.opType === 'Cast' && graphOutputs.has(r.outputs[0]));
      if (!cast) continue;
      dropped.add(cast.range);
      outputs[slot] = cast.outputs[0];
    }
    replaced.set(node.range, nodeWith(buf, node, [...inputs.slice(0, 5), SEQLENS_INT32, TOTAL_LENGTH_INPUT], outputs));
  }
  const cacheType = found.cacheType;
  const kept = fields.flatMap((f) => {
    if (dropped.has(f)) return [];
    const node = replaced.get(f);
    if (node) return [node];
    if (f.field !== GRAPH_INPUT && f.field !== GRAPH_OUTPUT) return [buf.subarray(f.start, f.end)];
    const name = outputName(buf, f);
    if (f.field === GRAPH_INPUT && name === 'attention_mask') return [];
    if (cacheType !== undefined && (name.startsWith('past_key_values.') || name.startsWith('present.'))) return [withElementType(buf, f, cacheType)];
    return [buf.subarray(f.start, f.end)];
  });
  return [
    ...kept,
    valueInfoField(GRAPH_INPUT, SEQLENS_INPUT, INT64, ['batch_size']),
    valueInfoField(GRAPH_INPUT, TOTAL_LENGTH_INPUT, ELEM_INT32, []),
    unaryNode('Cast', SEQLENS_INPUT, SEQLENS_INT32, 'to', ELEM_INT32),
    // Axis 2 of logits [batch, 1, vocab], kept: [batch, 1, 1].
    unaryNode('ArgMax', 'logits', NEXT_TOKEN_OUTPUT, 'axis', 2),
    valueInfoField(GRAPH_OUTPUT, NEXT_TOKEN_OUTPUT, INT64, ['batch_size', 1, 1]),
  ];
}

/** The fixed-cache decode graph of a serialized "fused-gqa" export, and its cache's element type. */
export function fixedCacheGraph(model: Uint8Array): { bytes: Uint8Array; cacheType: CacheType } {
  const lastOnly = withLastPositionLogits(model, 'logits', 1);
  if (!lastOnly) throw new Error('the export has no output layer where the fixed-cache graph expects it');
  const found: { cacheType?: number; attention: number } = { attention: 0 };
  const bytes = withGraph(lastOnly, (graph) => rewrittenGraph(lastOnly, graph, found))!;
  if (!found.attention) throw new Error('the fixed-cache decode path needs an export with GroupQueryAttention (`llmkit export --gqa`)');
  const type = found.cacheType ?? ELEM_FLOAT;
  if (type !== ELEM_FLOAT && type !== ELEM_FLOAT16) throw new Error(`GroupQueryAttention's cache has element type ${type}; the fixed-cache path takes float32 or float16`);
  return { bytes, cacheType: type === ELEM_FLOAT16 ? 'float16' : 'float32' };
}
