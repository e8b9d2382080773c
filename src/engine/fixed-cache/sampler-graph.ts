/**
 * The ONNX graph that samples on the device (device-sampler.ts): TokenSampler's temperature / top-k / top-p draw
 * (sampling.ts), written with standard operators so it runs wherever the decoder does, reading the decoder's
 * logits buffer in place. Per row: the `candidates` largest logits, sorted (TopK); weights exp((l - max) / T); the
 * first top_k of them; then those whose preceding weights sum to less than top_p × their mass; then the candidate
 * where the cumulative weight first exceeds uniform × total, as TokenSampler's drawFrom walks them. Only the
 * chosen token id leaves the device.
 *
 * Inputs: logits float [batch, 1, vocab], temperature float [batch, 1], top_k int64 [batch, 1] (≤ candidates),
 * top_p float [batch, 1], uniform float [batch, 1] in [0, 1), candidates int64 [1]. Output: token int64 [batch, 1].
 */
import { FLOAT, GRAPH_INITIALIZER, GRAPH_INPUT, GRAPH_NODE, GRAPH_OUTPUT, INT64, lengthDelimited, MODEL_GRAPH, stringField, valueInfoField, varintField } from '../onnx-wire.js';

export const SAMPLED_TOKEN = 'token';

function node(op: string, inputs: string[], outputs: string[], attributes: Record<string, number> = {}): Uint8Array {
  const attrs = Object.entries(attributes).map(([name, value]) => lengthDelimited(5, Buffer.concat([stringField(1, name), varintField(3, value), varintField(20, 2)])));
  return lengthDelimited(GRAPH_NODE, Buffer.concat([...inputs.map((i) => stringField(1, i)), ...outputs.map((o) => stringField(2, o)), stringField(3, outputs[0]), stringField(4, op), ...attrs]));
}

/** A constant: int64 or float, a scalar (`dims` empty) or a vector. */
function constant(name: string, values: readonly number[], type: typeof FLOAT | typeof INT64, dims: readonly number[] = []): Uint8Array {
  const raw = type === INT64 ? new Uint8Array(BigInt64Array.from(values, BigInt).buffer) : new Uint8Array(Float32Array.from(values).buffer);
  return lengthDelimited(GRAPH_INITIALIZER, Buffer.concat([...dims.map((d) => varintField(1, d)), varintField(2, type), stringField(8, name), lengthDelimited(9, raw)]));
}

/** The serialized sampler model (opset 17). */
export function samplerGraph(): Uint8Array {
  const perRow = (name: string, type: number) => valueInfoField(GRAPH_INPUT, name, type, ['batch', 1]);
  const graph = [
    constant('axis1', [1], INT64, [1]),
    constant('axis0', [0], INT64, [1]),
    constant('zero64', [0], INT64),
    constant('one64', [1], INT64),
    constant('axis1_scalar', [1], INT64),
    constant('zero', [0], FLOAT),
    constant('one', [1], FLOAT),
    node('Squeeze', ['logits', 'axis1'], ['rows']),
    node('TopK', ['rows', 'candidates'], ['values', 'indices'], { axis: 1 }),
    node('Slice', ['values', 'axis0', 'axis1', 'axis1'], ['top']),
    node('Sub', ['values', 'top'], ['centered']),
    node('Div', ['centered', 'temperature'], ['scaled']),
    node('Exp', ['scaled'], ['weights']),
    node('Squeeze', ['candidates', 'axis0'], ['count']),
    node('Range', ['zero64', 'count', 'one64'], ['position']),
    node('Less', ['position', 'top_k'], ['in_top_k']),
    node('Where', ['in_top_k', 'weights', 'zero'], ['top_k_weights']),
    node('ReduceSum', ['top_k_weights', 'axis1'], ['mass'], { keepdims: 1 }),
    node('CumSum', ['top_k_weights', 'axis1_scalar'], ['cumulative']),
    node('Sub', ['cumulative', 'top_k_weights'], ['before']),
    node('Mul', ['top_p', 'mass'], ['target']),
    node('Less', ['before', 'target'], ['in_top_p']),
    node('And', ['in_top_k', 'in_top_p'], ['kept']),
    node('Where', ['kept', 'weights', 'zero'], ['kept_weights']),
    node('ReduceSum', ['kept_weights', 'axis1'], ['total'], { keepdims: 1 }),
    node('CumSum', ['kept_weights', 'axis1_scalar'], ['kept_cumulative']),
    node('Mul', ['uniform', 'total'], ['point']),
    node('LessOrEqual', ['kept_cumulative', 'point'], ['not_reached']),
    node('And', ['kept', 'not_reached'], ['passed']),
    node('Cast', ['passed'], ['passed_float'], { to: FLOAT }),
    node('ReduceSum', ['passed_float', 'axis1'], ['passed_count'], { keepdims: 1 }),
    node('Cast', ['kept'], ['kept_float'], { to: FLOAT }),
    node('ReduceSum', ['kept_float', 'axis1'], ['kept_count'], { keepdims: 1 }),
    // Rounding can leave the point past the last weight: the last kept candidate, as drawFrom does.
    node('Sub', ['kept_count', 'one'], ['last_kept']),
    node('Min', ['passed_count', 'last_kept'], ['chosen_float']),
    node('Cast', ['chosen_float'], ['chosen'], { to: INT64 }),
    node('GatherElements', ['indices', 'chosen'], [SAMPLED_TOKEN], { axis: 1 }),
    valueInfoField(GRAPH_INPUT, 'logits', FLOAT, ['batch', 1, 'vocab']),
    perRow('temperature', FLOAT),
    perRow('top_k', INT64),
    perRow('top_p', FLOAT),
    perRow('uniform', FLOAT),
    valueInfoField(GRAPH_INPUT, 'candidates', INT64, [1]),
    valueInfoField(GRAPH_OUTPUT, SAMPLED_TOKEN, INT64, ['batch', 1]),
    stringField(2, 'llmkit_sampler'),
  ];
  const opset = lengthDelimited(8, Buffer.concat([stringField(1, ''), varintField(2, 17)]));
  return Buffer.concat([varintField(1, 8), opset, lengthDelimited(MODEL_GRAPH, Buffer.concat(graph))]);
}
