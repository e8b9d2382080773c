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
 * - Where a layer's query, key and value are the three parts of one Split and rotary is a plain RotaryEmbedding of
 *   query and key, GroupQueryAttention takes the packed projections and rotates them itself (`do_rotary`): three
 *   kernels fewer a layer, which is what a batch-1 step on a GPU costs (launch-bound). Each row's positions are
 *   its cached length, so the operator's own positions are the rotary's.
 *
 * (test/bench/device/fixed-cache-graph.py is the same rewrite with the onnx package, for the device benchmark.)
 */
import { withLastPositionLogits } from '../last-position-logits.js';
import {
  GRAPH_INPUT,
  GRAPH_NODE,
  GRAPH_OUTPUT,
  INT64,
  ATTRIBUTE_INT,
  ATTRIBUTE_NAME,
  intAttributes,
  lengthDelimited,
  NODE_ATTRIBUTE,
  NODE_INPUT,
  NODE_NAME,
  NODE_OP_TYPE,
  NODE_OUTPUT,
  nodeWith,
  outputName,
  readNode,
  stringField,
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

const ATTRIBUTE_TYPE = 20;
const ATTRIBUTE_TYPE_INT = 2;
const ELEM_FLOAT = 1;
const ELEM_INT32 = 6;
const ELEM_FLOAT16 = 10;
/** The nodes the export adds to compute GroupQueryAttention's lengths and bias from the attention mask. */
const MASK_NODES = '/model/gqa_inputs/';

export type CacheType = 'float32' | 'float16';

function intAttribute(name: string, value: number): Uint8Array {
  return lengthDelimited(NODE_ATTRIBUTE, Buffer.concat([stringField(ATTRIBUTE_NAME, name), varintField(ATTRIBUTE_INT, value), varintField(ATTRIBUTE_TYPE, ATTRIBUTE_TYPE_INT)]));
}

/** The packed projections behind a GroupQueryAttention and the rotary it can do itself (see the file's comment). */
interface PackedRotary {
  qkv: string;
  cos: string;
  sin: string;
  nodes: NodeInfo[];
}

function packedRotary(buf: Uint8Array, attention: NodeInfo, producer: Map<string, NodeInfo>, readers: Map<string, NodeInfo[]>): PackedRotary | undefined {
  const [q, k] = [attention.inputs[0], attention.inputs[1]].map((x) => producer.get(x));
  if (q?.opType !== 'RotaryEmbedding' || k?.opType !== 'RotaryEmbedding') return undefined;
  const split = producer.get(q.inputs[0]);
  if (split?.opType !== 'Split' || split.outputs.join() !== [q.inputs[0], k.inputs[0], attention.inputs[2]].join()) return undefined;
  if (q.inputs.slice(1).join() !== k.inputs.slice(1).join()) return undefined;
  // Interleaved or partial rotary is the RotaryEmbedding's own; the operator here rotates whole heads, halves apart.
  if ([q, k].some((r) => [...intAttributes(buf, r)].some(([name, value]) => (name === 'interleaved' || name === 'rotary_embedding_dim') && value !== 0))) return undefined;
  const onlyFor = (tensor: string, reader: NodeInfo) => (readers.get(tensor) ?? []).every((r) => r === reader);
  if (!onlyFor(q.outputs[0], attention) || !onlyFor(k.outputs[0], attention) || !onlyFor(attention.inputs[2], attention)) return undefined;
  if (!onlyFor(q.inputs[0], q) || !onlyFor(k.inputs[0], k)) return undefined;
  return { qkv: split.inputs[0], cos: q.inputs[2], sin: q.inputs[3], nodes: [split, q, k] };
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
  return lengthDelimited(
    GRAPH_NODE,
    Buffer.concat([stringField(NODE_INPUT, input), stringField(NODE_OUTPUT, output), stringField(NODE_NAME, `${output}/${opType}`), stringField(NODE_OP_TYPE, opType), intAttribute(attribute, value)]),
  );
}

function rewrittenGraph(buf: Uint8Array, graph: WireField, found: { cacheType?: number; attention: number; packed: number }): Uint8Array[] {
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
      found.cacheType = intAttributes(buf, cast).get('to');
      inputs[slot] = cast.inputs[0];
    }
    for (const slot of [1, 2]) {
      const cast = readers.get(outputs[slot])?.find((r) => r.opType === 'Cast' && graphOutputs.has(r.outputs[0]));
      if (!cast) continue;
      dropped.add(cast.range);
      outputs[slot] = cast.outputs[0];
    }
    const packed = packedRotary(buf, node, producer, readers);
    if (!packed) {
      replaced.set(node.range, nodeWith(buf, node, [...inputs.slice(0, 5), SEQLENS_INT32, TOTAL_LENGTH_INPUT], outputs));
      continue;
    }
    for (const n of packed.nodes) dropped.add(n.range);
    const packedInputs = [packed.qkv, '', '', inputs[3], inputs[4], SEQLENS_INT32, TOTAL_LENGTH_INPUT, packed.cos, packed.sin];
    replaced.set(node.range, nodeWith(buf, node, packedInputs, outputs, [intAttribute('do_rotary', 1)]));
    found.packed++;
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

/** The fixed-cache decode graph of a serialized "fused-gqa" export, its cache's element type, and how many of its layers' GroupQueryAttention rotate packed projections themselves. */
export function fixedCacheGraph(model: Uint8Array): { bytes: Uint8Array; cacheType: CacheType; packedLayers: number } {
  const lastOnly = withLastPositionLogits(model, 'logits', 1);
  if (!lastOnly) throw new Error('the export has no output layer where the fixed-cache graph expects it');
  const found: { cacheType?: number; attention: number; packed: number } = { attention: 0, packed: 0 };
  const bytes = withGraph(lastOnly, (graph) => rewrittenGraph(lastOnly, graph, found))!;
  if (!found.attention) throw new Error('the fixed-cache decode path needs an export with GroupQueryAttention (`llmkit export --gqa`)');
  const type = found.cacheType ?? ELEM_FLOAT;
  if (type !== ELEM_FLOAT && type !== ELEM_FLOAT16) throw new Error(`GroupQueryAttention's cache has element type ${type}; the fixed-cache path takes float32 or float16`);
  return { bytes, cacheType: type === ELEM_FLOAT16 ? 'float16' : 'float32', packedLayers: found.packed };
}
