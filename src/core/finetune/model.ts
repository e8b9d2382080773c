import { existsSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { WorkerEvent } from '../../workers/protocol.js';
import { LlmkitError, UsageError } from '../errors.js';
import { makeModel, parsePreset } from '../model-maker.js';

/**
 * Model families whose *ForCausalLM computes logits as a plain output layer over the decoder's last hidden
 * state, which the worker's chunked loss relies on (families with logit soft-capping or scaling are not here).
 */
export const SUPPORTED_MODEL_TYPES = ['llama', 'mistral', 'qwen2', 'qwen3', 'phi3', 'gemma'] as const;

export interface ModelFolder {
  path: string;
  modelType: string;
  architecture: string;
  maxPositions: number | null;
  hasChatTemplate: boolean;
}

/** `builtin:tiny` (and the other presets) become llmkit's own cached model; anything else is a folder. */
export async function resolveModel(ref: string, onEvent?: (e: WorkerEvent) => void): Promise<string> {
  const builtin = /^builtin:(.*)$/.exec(ref);
  if (!builtin) return resolve(ref);
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
  if (!architecture.endsWith('ForCausalLM') || !(SUPPORTED_MODEL_TYPES as readonly string[]).includes(modelType)) {
    throw new UsageError(
      `${what} ${path} holds a ${architecture} (model_type ${modelType || 'unknown'}), which llmkit cannot fine-tune`,
      `supported causal LM families: ${SUPPORTED_MODEL_TYPES.join(', ')}`,
    );
  }
  let hasChatTemplate = files.includes('chat_template.jinja') || files.includes('chat_template.json');
  if (!hasChatTemplate && files.includes('tokenizer_config.json')) {
    const tokenizerConfig = JSON.parse(await readFile(join(path, 'tokenizer_config.json'), 'utf8')) as { chat_template?: unknown };
    hasChatTemplate = Boolean(tokenizerConfig.chat_template);
  }
  const maxPositions = typeof config.max_position_embeddings === 'number' ? config.max_position_embeddings : null;
  return { path, modelType, architecture, maxPositions, hasChatTemplate };
}
