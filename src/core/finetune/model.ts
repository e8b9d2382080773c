import { existsSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { WorkerEvent } from '../../workers/protocol.js';
import { isSupportedArchitecture, supportedArchitecturesHint } from '../architectures.js';
import { LlmkitError, UsageError } from '../../shared/errors.js';
import { resolveModelSource } from '../import/model-source.js';
import { makeModel, parsePreset } from '../model-maker.js';

export interface ModelFolder {
  path: string;
  modelType: string;
  architecture: string;
  maxPositions: number | null;
  hasChatTemplate: boolean;
}

/** `builtin:tiny` (and the other presets) become llmkit's own cached model; a .gguf, `ollama:` name or Hugging Face id its imported folder. */
export async function resolveModel(ref: string, onEvent?: (e: WorkerEvent) => void): Promise<string> {
  const builtin = /^builtin:(.*)$/.exec(ref);
  if (!builtin) return resolveModelSource(ref, { onEvent });
  return (await makeModel({ preset: parsePreset(builtin[1]), seed: 0, onEvent })).path;
}

/** Checks a Hugging Face model folder before anything long starts: config, weights, tokenizer, architecture. */
export async function checkModelFolder(path: string, what = 'model folder'): Promise<ModelFolder> {
  const hint = 'pass a Hugging Face model folder (config.json, weights, tokenizer) or builtin:tiny';
  if (!existsSync(path)) throw new UsageError(`${what} ${path} does not exist`, hint);
  if (!existsSync(join(path, 'config.json'))) throw new UsageError(`${what} ${path} has no config.json`, hint);
  const files = readdirSync(path);
  if (!files.some((f) => /\.safetensors$|^pytorch_model.*\.bin$/.test(f))) {
    throw new UsageError(`${what} ${path} has no weights (*.safetensors or pytorch_model*.bin)`, hint);
  }
  if (!files.includes('tokenizer.json') && !files.includes('tokenizer.model')) {
    throw new UsageError(`${what} ${path} has no tokenizer (tokenizer.json)`, hint);
  }
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(await readFile(join(path, 'config.json'), 'utf8'));
  } catch (e) {
    throw new LlmkitError(`${what} ${path}: config.json is not valid JSON (${(e as Error).message})`, hint);
  }
  const architecture = String((config.architectures as string[] | undefined)?.[0] ?? config.model_type ?? 'unknown');
  const modelType = String(config.model_type ?? '');
  if (!isSupportedArchitecture(architecture)) {
    throw new UsageError(`${what} ${path} holds a ${architecture} (model_type ${modelType || 'unknown'}), which llmkit does not support`, supportedArchitecturesHint(architecture));
  }
  let hasChatTemplate = files.includes('chat_template.jinja') || files.includes('chat_template.json');
  if (!hasChatTemplate && files.includes('tokenizer_config.json')) {
    const tokenizerConfig = JSON.parse(await readFile(join(path, 'tokenizer_config.json'), 'utf8')) as { chat_template?: unknown };
    hasChatTemplate = Boolean(tokenizerConfig.chat_template);
  }
  const maxPositions = typeof config.max_position_embeddings === 'number' ? config.max_position_embeddings : null;
  return { path, modelType, architecture, maxPositions, hasChatTemplate };
}
