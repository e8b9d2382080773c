import { existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { WorkerEvent } from '../../workers/protocol.js';
import { runWorker } from '../../workers/worker-run.js';
import { LlmkitError, UsageError } from '../../shared/errors.js';
import { llmkitHome } from '../../shared/paths.js';
import { readLoraConfig } from '../../engine/lora-adapter.js';
import { checkModelFolder, resolveModel } from './model.js';

export interface AdapterInfo {
  path: string;
  peftType: string;
  r: number;
  alpha: number;
  dropout: number;
  targets: string[];
  /** Parameters stored in adapter_model.safetensors (all of them are trained). */
  trainableParameters: number;
  baseModel: string | null;
  bytes: number;
}

const ADAPTER_HINT = 'pass a PEFT adapter folder (adapter_config.json + adapter_model.safetensors), e.g. runs/x/adapter';

/** Reads an adapter's config and counts its parameters from the safetensors header, without loading any weights. */
export async function readAdapterInfo(path: string): Promise<AdapterInfo> {
  const { folder, config, weightsFile } = await readLoraConfig(path, ADAPTER_HINT);
  const { tensors, bytes } = await readSafetensorsHeader(weightsFile);
  const targets = config.target_modules;
  return {
    path: folder,
    peftType: String(config.peft_type),
    r: Number(config.r),
    alpha: Number(config.lora_alpha),
    dropout: Number(config.lora_dropout ?? 0),
    targets: Array.isArray(targets) ? targets.map(String).sort() : [String(targets)],
    trainableParameters: Object.values(tensors).reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0),
    baseModel: typeof config.base_model_name_or_path === 'string' ? config.base_model_name_or_path : null,
    bytes,
  };
}

/** A safetensors file starts with an 8-byte little-endian length and a JSON header of every tensor's dtype and shape. */
export async function readSafetensorsHeader(file: string, hint = ADAPTER_HINT): Promise<{ tensors: Record<string, { shape: number[] }>; bytes: number }> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    const lengthBuf = Buffer.alloc(8);
    await handle.read(lengthBuf, 0, 8, 0);
    const length = Number(lengthBuf.readBigUInt64LE());
    if (length <= 0 || length + 8 > size) throw new LlmkitError(`${file} is not a safetensors file`, hint);
    const header = Buffer.alloc(length);
    await handle.read(header, 0, length, 8);
    const { __metadata__: _, ...tensors } = JSON.parse(header.toString('utf8')) as Record<string, { shape: number[] }>;
    return { tensors, bytes: size };
  } finally {
    await handle.close();
  }
}

export interface MergeOptions {
  base: string;
  adapter: string;
  out: string;
  onEvent?: (event: WorkerEvent) => void;
}

/** Folds a LoRA adapter into its base and writes a whole Hugging Face model folder (weights, config, tokenizer). */
export async function mergeAdapter(opts: MergeOptions): Promise<{ out: string; base: string; adapter: string }> {
  const base = (await checkModelFolder(await resolveModel(opts.base, opts.onEvent), 'base model folder')).path;
  const adapter = (await readAdapterInfo(opts.adapter)).path;
  const out = resolve(opts.out);
  if (existsSync(out)) throw new UsageError(`--out ${opts.out} already exists`, 'choose a new folder for the merged model');
  await runWorker({ job: 'lora_tools', config: { base, adapter, out }, logFile: join(llmkitHome(), 'logs', 'lora_merge.log'), onEvent: opts.onEvent });
  return { out, base, adapter };
}
