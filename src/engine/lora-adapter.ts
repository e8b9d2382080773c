/**
 * A PEFT LoRA adapter read for serving (lora-graph.ts): per adapted projection, Aᵀ [in, r] and (scale·B)ᵀ [r, out],
 * the layout the graph's tables take. Read in TypeScript from adapter_config.json and adapter_model.safetensors
 * (float32, float16 or bfloat16), so loading one at run time costs a file read, no Python.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { UsageError } from '../shared/errors.js';
import { halfToFloat } from '../shared/half-float.js';

export interface AdapterWeights {
  /** Aᵀ: [in, rank], row-major. */
  a: Float32Array;
  /** (scale · B)ᵀ: [rank, out], row-major. */
  b: Float32Array;
  inFeatures: number;
  outFeatures: number;
}

const HINT = 'pass a PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors), e.g. runs/x/adapter from `llmkit finetune --lora`';
const KEY = /layers\.(\d+)\.(?:.*\.)?([A-Za-z0-9_]+)\.lora_([AB])\.weight$/;

export class LoraAdapter {
  private constructor(
    readonly path: string,
    readonly rank: number,
    /** By `<layer>.<target>`. */
    readonly modules: ReadonlyMap<string, AdapterWeights>,
  ) {}

  /** Bytes of its weights as served (each also sits once in the tables of the batches it is in). */
  get bytes(): number {
    let n = 0;
    for (const m of this.modules.values()) n += m.a.byteLength + m.b.byteLength;
    return n;
  }

  /** The module names it adapts (q_proj, …). */
  get targets(): string[] {
    return [...new Set([...this.modules.keys()].map((k) => k.slice(k.indexOf('.') + 1)))].sort();
  }

  static async load(path: string): Promise<LoraAdapter> {
    const { folder, config, weightsFile } = await readLoraConfig(path);
    const r = Number(config.r);
    const alpha = Number(config.lora_alpha ?? r);
    if (!(r >= 1)) throw new UsageError(`adapter ${path} has no rank r in adapter_config.json`, HINT);
    const unsupported = (['use_dora', 'modules_to_save', 'rank_pattern', 'alpha_pattern'] as const).find((k) => isSet(config[k]));
    if (unsupported || (config.bias ?? 'none') !== 'none') {
      throw new UsageError(`adapter ${path} sets ${unsupported ?? `bias: ${String(config.bias)}`}, which serving without merging does not apply`, 'merge it instead: llmkit lora merge');
    }
    const scale = config.use_rslora ? alpha / Math.sqrt(r) : alpha / r;
    const tensors = readSafetensors(await readFile(weightsFile), weightsFile);
    return new LoraAdapter(folder, r, pairModules(tensors, scale, path));
  }
}

/** A PEFT LoRA folder's files and parsed adapter_config.json; a one-line UsageError for anything else. */
export async function readLoraConfig(path: string, hint = HINT): Promise<{ folder: string; config: Record<string, unknown>; weightsFile: string }> {
  const folder = resolve(path);
  const configFile = join(folder, 'adapter_config.json');
  const weightsFile = join(folder, 'adapter_model.safetensors');
  if (!existsSync(folder)) throw new UsageError(`adapter folder ${path} does not exist`, hint);
  if (!existsSync(configFile)) throw new UsageError(`adapter folder ${path} has no adapter_config.json`, hint);
  if (!existsSync(weightsFile)) throw new UsageError(`adapter folder ${path} has no adapter_model.safetensors`, hint);
  const config = parseJson(await readFile(configFile, 'utf8'), configFile);
  if (config.peft_type !== 'LORA') throw new UsageError(`adapter ${path} is a ${String(config.peft_type)} adapter, not LoRA`, hint);
  return { folder, config, weightsFile };
}

const isSet = (v: unknown) => v === true || (Array.isArray(v) && v.length > 0) || (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length > 0);

function parseJson(text: string, file: string): Record<string, unknown> {
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new UsageError(`${file} is not JSON`, HINT);
  }
}

/** Each projection's A [r, in] and B [out, r], into the graph's layout (Aᵀ, (scale·B)ᵀ). */
function pairModules(tensors: Map<string, Tensor2d>, scale: number, path: string): Map<string, AdapterWeights> {
  const halves = new Map<string, { A?: Tensor2d; B?: Tensor2d }>();
  for (const [name, t] of tensors) {
    const m = KEY.exec(name);
    if (!m) continue;
    const key = `${m[1]}.${m[2]}`;
    halves.set(key, { ...halves.get(key), [m[3]]: t });
  }
  const modules = new Map<string, AdapterWeights>();
  for (const [key, { A, B }] of halves) {
    if (!A || !B || A.rows !== B.cols) throw new UsageError(`adapter ${path} has no matching lora_A/lora_B pair for layers.${key}`, HINT);
    const [rank, inFeatures, outFeatures] = [A.rows, A.cols, B.rows];
    const a = new Float32Array(inFeatures * rank);
    for (let j = 0; j < rank; j++) for (let i = 0; i < inFeatures; i++) a[i * rank + j] = A.data[j * inFeatures + i];
    const b = new Float32Array(rank * outFeatures);
    for (let o = 0; o < outFeatures; o++) for (let j = 0; j < rank; j++) b[j * outFeatures + o] = B.data[o * rank + j] * scale;
    modules.set(key, { a, b, inFeatures, outFeatures });
  }
  if (!modules.size) throw new UsageError(`adapter ${path} has no lora_A/lora_B weights of decoder layers`, HINT);
  return modules;
}

interface Tensor2d {
  rows: number;
  cols: number;
  data: Float32Array;
}

/** The 2-d tensors of a safetensors file (8-byte header length, JSON header, raw little-endian data), as float32. */
function readSafetensors(buf: Buffer, file: string): Map<string, Tensor2d> {
  const length = buf.length >= 8 ? Number(buf.readBigUInt64LE(0)) : -1;
  if (length <= 0 || length + 8 > buf.length) throw new UsageError(`${file} is not a safetensors file`, HINT);
  const header = parseJson(buf.subarray(8, 8 + length).toString('utf8'), file) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, Tensor2d>();
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__' || t.shape.length !== 2) continue;
    const raw = buf.subarray(8 + length + t.data_offsets[0], 8 + length + t.data_offsets[1]);
    out.set(name, { rows: t.shape[0], cols: t.shape[1], data: toFloat32(raw, t.dtype, `${file}: ${name}`) });
  }
  return out;
}

function toFloat32(raw: Buffer, dtype: string, what: string): Float32Array {
  const bits = (i: number) => raw.readUInt16LE(2 * i);
  const n = raw.length / (dtype === 'F32' ? 4 : 2);
  const out = new Float32Array(n);
  if (dtype === 'F32') for (let i = 0; i < n; i++) out[i] = raw.readFloatLE(4 * i);
  else if (dtype === 'BF16') {
    const word = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) word[i] = bits(i) << 16;
  } else if (dtype === 'F16') for (let i = 0; i < n; i++) out[i] = halfToFloat(bits(i));
  else throw new UsageError(`${what} is ${dtype}; adapters are read as F32, F16 or BF16`, HINT);
  return out;
}
