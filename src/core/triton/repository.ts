import { readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { readSignature, type TensorSignature } from '../../engine/onnx-runtime.js';
import { runWorker } from '../../workers/worker-run.js';
import type { WorkerEvent } from '../../workers/protocol.js';
import type { TritonDevice } from '../options/flag-values.js';
import { LlmkitError } from '../../shared/errors.js';
import { llmkitHome } from '../../shared/paths.js';

/** Where `export --triton` / `quantize --triton` put the repository (validated by the command before any work). */
export interface TritonTarget {
  out: string;
  /** Default: the model folder's name. */
  name?: string;
  device: TritonDevice;
}

/** Names Triton accepts for a model (and a folder in its repository). */

/** A Triton model name from a folder name: what Triton would refuse becomes '-'. */
export function tritonNameFor(dir: string): string {
  return (
    basename(resolve(dir))
      .replace(/[^A-Za-z0-9_.-]/g, '-')
      .replace(/^[^A-Za-z0-9]+/, '') || 'model'
  );
}

export interface TritonRepositoryOptions {
  /** A folder made by `llmkit export` or `llmkit quantize`. */
  model: string;
  out: string;
  /** The decoder's model name in Triton; the generate model is `<name>-generate` (default: the folder's name). */
  name: string;
  /** The instance group's kind: KIND_GPU or KIND_CPU. */
  device: TritonDevice;
  onEvent?: (e: WorkerEvent) => void;
  stopSignal?: AbortSignal;
}

export interface TritonRepository {
  path: string;
  decoder: string;
  generate: string;
  device: TritonDevice;
  /** Inputs and outputs of the decoder's config.pbtxt, checked against ONNX Runtime's reading of model.onnx. */
  checkedTensors: number;
}

/** Triton's name for ONNX Runtime's element types (model_config.proto's DataType). */
const TRITON_TYPES: Record<string, string> = {
  float32: 'TYPE_FP32',
  float16: 'TYPE_FP16',
  float64: 'TYPE_FP64',
  bfloat16: 'TYPE_BF16',
  int64: 'TYPE_INT64',
  int32: 'TYPE_INT32',
  int16: 'TYPE_INT16',
  int8: 'TYPE_INT8',
  uint8: 'TYPE_UINT8',
  bool: 'TYPE_BOOL',
};

/**
 * Writes a Triton model repository for an exported model (export_triton.py: the decoder for the onnxruntime
 * backend, `<name>-generate` for the Python backend), then checks the decoder's config.pbtxt against the ONNX file
 * as ONNX Runtime reads it: the pytriton wheel that runs the generate model has no onnxruntime backend, so this is
 * the check Triton's own would make at load time (names, types, ranks, fixed and dynamic dimensions).
 */
export async function writeTritonRepository(opts: TritonRepositoryOptions): Promise<TritonRepository> {
  const out = resolve(opts.out);
  const { result } = await runWorker({
    job: 'export_triton',
    config: { model: resolve(opts.model), out, name: opts.name, device: opts.device },
    logFile: join(llmkitHome(), 'logs', 'export-triton.log'),
    onEvent: opts.onEvent,
    stopSignal: opts.stopSignal,
  });
  const problems = await checkDecoderConfig(out, opts.name);
  if (problems.length) throw new LlmkitError(`the Triton config written for ${opts.name} does not match its ONNX file: ${problems[0]}`, 'report this as an llmkit bug', 1, problems.join('\n'));
  return { path: out, decoder: String(result.decoder), generate: String(result.generate), device: opts.device, checkedTensors: countTensors(out, opts.name) };
}

/** Every difference between REPO/NAME/config.pbtxt and REPO/NAME/1/model.onnx, one sentence each (empty: they match). */
export async function checkDecoderConfig(repository: string, name: string): Promise<string[]> {
  const config = parsePbtxt(readFileSync(join(repository, name, 'config.pbtxt'), 'utf8'));
  const onnx = await readSignature(join(repository, name, '1', 'model.onnx'));
  const problems: string[] = [];
  if (config.name !== undefined && config.name !== name) problems.push(`name is "${String(config.name)}", but the folder is ${name}`);
  if (config.backend !== 'onnxruntime' && config.platform !== 'onnxruntime_onnx') problems.push(`backend is ${String(config.backend ?? config.platform)}, not onnxruntime`);
  const batched = Number(config.max_batch_size ?? 0) > 0;
  for (const [kind, declared, actual] of [
    ['input', list(config.input), onnx.inputs],
    ['output', list(config.output), onnx.outputs],
  ] as const) {
    for (const tensor of actual) {
      const entry = declared.find((d) => d.name === tensor.name);
      if (!entry) problems.push(`${kind} ${tensor.name} of the ONNX file is missing from config.pbtxt`);
      else problems.push(...compareTensor(kind, tensor, entry, batched));
    }
    for (const entry of declared) {
      if (!actual.some((t) => t.name === entry.name)) problems.push(`${kind} ${String(entry.name)} in config.pbtxt is not in the ONNX file`);
    }
  }
  return problems;
}

function compareTensor(kind: string, tensor: TensorSignature, entry: PbMessage, batched: boolean): string[] {
  const problems: string[] = [];
  const type = TRITON_TYPES[tensor.type];
  if (entry.data_type !== type) problems.push(`${kind} ${tensor.name} is ${String(entry.data_type)} in config.pbtxt but ${tensor.type} (${type ?? 'no Triton type'}) in the ONNX file`);
  // With max_batch_size > 0 Triton prepends the batch dimension itself.
  const shape = batched ? tensor.shape.slice(1) : tensor.shape;
  const dims = list(entry.dims).map(Number);
  const expected = shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1));
  if (dims.length !== expected.length || dims.some((d, i) => d !== expected[i])) {
    problems.push(`${kind} ${tensor.name} has dims [${dims.join(', ')}] in config.pbtxt but [${expected.join(', ')}] in the ONNX file (${tensor.shape.join(', ')})`);
  }
  return problems;
}

function countTensors(repository: string, name: string): number {
  const config = parsePbtxt(readFileSync(join(repository, name, 'config.pbtxt'), 'utf8'));
  return list(config.input).length + list(config.output).length;
}

type PbValue = string | number | PbMessage | PbValue[];
export interface PbMessage {
  [field: string]: PbValue;
}

function list(value: PbValue | undefined): PbMessage[] & PbValue[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]) as PbMessage[] & PbValue[];
}

/**
 * Protobuf text format, as far as Triton's model configs use it: `field: value`, `field { ... }`, `field: [ ... ]`,
 * strings, numbers, enum names, `#` comments. A field given twice becomes a list. Throws on anything else, naming where.
 */
export function parsePbtxt(text: string): PbMessage {
  const tokens = [...text.replace(/#[^\n]*/g, '').matchAll(/"(?:[^"\\]|\\.)*"|[{}[\]:,]|[^\s{}[\]:,"]+/g)].map((m) => m[0]);
  let at = 0;
  const fail = (what: string): never => {
    throw new LlmkitError(`config.pbtxt: ${what} at token ${at + 1} (${tokens[at] ?? 'end of file'})`, 'fix the file by the protobuf text format');
  };
  const scalar = (token: string | undefined): string | number => {
    if (token === undefined || '{}[]:,'.includes(token)) return fail('expected a value');
    if (token.startsWith('"')) return JSON.parse(token) as string;
    return /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(token) ? Number(token) : token;
  };
  const value = (): PbValue => {
    if (tokens[at] === '{') {
      at++;
      return message('}');
    }
    if (tokens[at] === '[') {
      at++;
      const items: PbValue[] = [];
      while (tokens[at] !== ']') {
        if (at >= tokens.length) fail('unclosed [');
        items.push(value());
        if (tokens[at] === ',') at++;
      }
      at++;
      return items;
    }
    return scalar(tokens[at++]);
  };
  const message = (close?: string): PbMessage => {
    const fields: PbMessage = {};
    while (at < tokens.length && tokens[at] !== close) {
      const field = tokens[at++];
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(field)) fail('expected a field name');
      if (tokens[at] === ':') at++;
      else if (tokens[at] !== '{' && tokens[at] !== '[') fail(`expected ':', '{' or '[' after ${field}`);
      const v = value();
      const previous = fields[field];
      fields[field] = previous === undefined ? v : Array.isArray(previous) ? [...previous, ...(Array.isArray(v) ? v : [v])] : [previous, ...(Array.isArray(v) ? v : [v])];
      if (tokens[at] === ',' || tokens[at] === ';') at++;
    }
    if (close && tokens[at++] !== close) fail(`missing ${close}`);
    return fields;
  };
  return message();
}
