/**
 * Rewrites a serialized decoder so that LoRA adapters are graph inputs, chosen per row: many adapters over one
 * copy of the base weights, mixed in one batch (multi-LoRA serving). Each adapted projection
 * (`/layers.<i>/…/<target>/MatMul`, as the exporter names it; MatMul or MatMulNBits) gains
 *
 *     y = x·W  +  (x · A) · B        x [batch, tokens, in], A [batch, in, rank], B [batch, rank, out]
 *
 * where `lora.<i>.<target>.a` and `.b` hold each row's own adapter (B already times its scale; zeros: the base
 * model): two batched MatMuls and an Add, each row multiplying by its own rank-r factors only. Measured against the
 * two designs before it on SmolLM2-135M, 8 adapters in a batch of 8 (docs/benchmarks.md, "Multi-LoRA"): gathering
 * each row's factors inside the graph (`A[lora_index]`) copies them every pass (0.44× a merged model's tokens/s);
 * the batch's adapters side by side with a per-row mask read each adapter once but multiply every row by all of
 * them, 8× the work (0.55–0.65×). Here the per-row tables are written by lora-feeds.ts only when a row's adapter
 * changes, so a steady pass copies nothing. The rank is a free dim, so adapters of any rank load at run time
 * without a new session (lora-feeds.ts pads to the batch's largest).
 * Why not ONNX Runtime's LoRA adapter API (`.onnx_adapter` files bound through RunOptions): it binds one
 * adapter to a whole run, so rows with different adapters could not share a batch (docs/architecture.md).
 */
import {
  FLOAT,
  GRAPH_INITIALIZER,
  GRAPH_INPUT,
  GRAPH_NODE,
  graphInputField,
  lengthDelimited,
  NODE_NAME,
  NODE_OUTPUT,
  nodeField,
  readNode,
  readTensor,
  readVarint,
  stringField,
  text,
  wireFields,
  withGraph,
  type NodeInfo,
  type WireField,
} from './onnx-wire.js';

const PROJECTION_OPS = new Set(['MatMul', 'MatMulNBits']);

/** One adapted projection of the rewritten graph: its layer, its module name (q_proj…) and its weight's shape. */
export interface LoraModule {
  layer: number;
  target: string;
  inFeatures: number;
  outFeatures: number;
  /** The input names of its tables. */
  a: string;
  b: string;
}

export const loraInputNames = (layer: number, target: string) => ({ a: `lora.${layer}.${target}.a`, b: `lora.${layer}.${target}.b` });

function nodeName(buf: Uint8Array, range: WireField): string {
  for (const f of wireFields(buf, range.valueStart, range.end)) if (f.field === NODE_NAME) return text(buf, f);
  return '';
}

/** The node's fields with its (first) output renamed. */
function withOutput(buf: Uint8Array, n: NodeInfo, output: string): Uint8Array {
  const fields = [...wireFields(buf, n.range.valueStart, n.range.end)].map((f) => (f.field === NODE_OUTPUT ? stringField(NODE_OUTPUT, output) : buf.subarray(f.start, f.end)));
  return lengthDelimited(GRAPH_NODE, Buffer.concat(fields));
}

/** The weight shape [in, out] of a projection: MatMul's second input is its [in, out] initializer; MatMulNBits says K and N. */
function projectionShape(n: NodeInfo, initializers: Map<string, number[]>, attributes: Map<string, number>): [number, number] | undefined {
  if (n.opType === 'MatMul') {
    const dims = initializers.get(n.inputs[1]);
    return dims?.length === 2 ? [dims[0], dims[1]] : undefined;
  }
  const k = attributes.get('K');
  const out = attributes.get('N');
  return k && out ? [k, out] : undefined;
}

/** A node's integer attributes (AttributeProto: name = 1, i = 3). */
function intAttributes(buf: Uint8Array, range: WireField): Map<string, number> {
  const out = new Map<string, number>();
  for (const f of wireFields(buf, range.valueStart, range.end)) {
    if (f.field !== 5) continue;
    let name = '';
    let value: number | undefined;
    for (const a of wireFields(buf, f.valueStart, f.end)) {
      if (a.field === 1) name = text(buf, a);
      else if (a.field === 3) value = readVarint(buf, a.valueStart)[0];
    }
    if (value !== undefined) out.set(name, value);
  }
  return out;
}

function rewrittenGraph(buf: Uint8Array, graph: WireField, targets: ReadonlySet<string>, modules: LoraModule[]): Uint8Array[] | undefined {
  const fields = [...wireFields(buf, graph.valueStart, graph.end)];
  const initializers = new Map(
    fields
      .filter((f) => f.field === GRAPH_INITIALIZER)
      .map((f) => readTensor(buf, f))
      .map((t) => [t.name, t.dims]),
  );
  const added = new Map<WireField, Uint8Array[]>();
  const inputs: Uint8Array[] = [];
  for (const f of fields) {
    if (f.field !== GRAPH_NODE) continue;
    const n = readNode(buf, f);
    const match = PROJECTION_OPS.has(n.opType) ? /\/layers\.(\d+)\/(?:.*\/)?([A-Za-z0-9_]+)\/MatMul(?:NBits)?$/.exec(nodeName(buf, f)) : null;
    if (!match || !targets.has(match[2])) continue;
    const shape = projectionShape(n, initializers, intAttributes(buf, f));
    if (!shape) continue;
    const [layer, target] = [Number(match[1]), match[2]];
    const names = loraInputNames(layer, target);
    modules.push({ layer, target, inFeatures: shape[0], outFeatures: shape[1], ...names });
    inputs.push(graphInputField(names.a, FLOAT, ['batch_size', shape[0], 'lora_rank']), graphInputField(names.b, FLOAT, ['batch_size', 'lora_rank', shape[1]]));
    const y = n.outputs[0];
    const p = `${names.a}/`;
    added.set(f, [
      withOutput(buf, n, `${p}base`),
      nodeField('MatMul', [n.inputs[0], names.a], `${p}down`),
      nodeField('MatMul', [`${p}down`, names.b], `${p}up`),
      nodeField('Add', [`${p}base`, `${p}up`], y),
    ]);
  }
  if (!added.size) return undefined;
  const firstInput = fields.find((f) => f.field === GRAPH_INPUT);
  return fields.flatMap((f) => [...(f === firstInput ? inputs : []), ...(added.get(f) ?? [buf.subarray(f.start, f.end)])]);
}

/**
 * `model` with LoRA inputs on every projection whose module name is in `targets` (q_proj, v_proj, …), and those
 * projections; undefined when the graph has none of them (its nodes are not named the way the exporter names them).
 */
export function withLoraInputs(model: Uint8Array, targets: readonly string[]): { bytes: Uint8Array; modules: LoraModule[] } | undefined {
  const modules: LoraModule[] = [];
  const bytes = withGraph(model, (graph) => rewrittenGraph(model, graph, new Set(targets), modules));
  return bytes && { bytes, modules };
}
