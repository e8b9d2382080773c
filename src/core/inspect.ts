import { existsSync, readdirSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadExportedModel } from '../engine/model-manifest.js';
import { ModelTokenizer } from '../engine/tokenizer.js';
import { isSupportedArchitecture, SUPPORTED_ARCHITECTURES, supportedArchitecturesHint } from './architectures.js';
import { UsageError } from '../shared/errors.js';
import { countParameters } from './memory/shape.js';
import { resolveModelSource } from './import/model-source.js';

export interface ModelInspection {
  path: string;
  /** A Hugging Face folder (what finetune, distill, lora merge, export and quantize take) or an llmkit export. */
  kind: 'huggingface' | 'export';
  architecture: string;
  modelType: string | null;
  family: string | null;
  supported: boolean;
  parameters: number | null;
  bytesOnDisk: number;
  precision: string | null;
  layers: number | null;
  contextLength: number | null;
  vocabSize: number | null;
  tokenizer: { present: boolean; file: string | null; class: string | null; eos: string | null };
  chatTemplate: { present: boolean; source: string | null; renders: boolean | null; error: string | null };
  /** The llmkit commands that take this folder as it is. */
  commands: string[];
  hint: string | null;
}

const HF_COMMANDS = ['finetune', 'distill', 'lora merge', 'export', 'quantize'];
const EXPORT_COMMANDS = ['serve', 'chat', 'bench'];

/** Tells what a model folder is and what llmkit can do with it, reading only configs and file headers. */
export async function inspectModel(dir: string): Promise<ModelInspection> {
  const path = await resolveModelSource(dir);
  const hint = 'pass a Hugging Face model folder (config.json) or a folder made by `llmkit export`';
  if (!existsSync(path) || !statSync(path).isDirectory()) throw new UsageError(`model folder ${dir} does not exist`, hint);
  const files = readdirSync(path);
  const bytesOnDisk = folderBytes(path);
  const readJson = async (name: string) => (files.includes(name) ? (JSON.parse(await readFile(join(path, name), 'utf8')) as Record<string, unknown>) : null);
  const tokenizerConfig = await readJson('tokenizer_config.json');
  const tokenizer = {
    present: files.includes('tokenizer.json'),
    file: files.includes('tokenizer.json') ? 'tokenizer.json' : files.includes('tokenizer.model') ? 'tokenizer.model' : null,
    class: typeof tokenizerConfig?.tokenizer_class === 'string' ? tokenizerConfig.tokenizer_class : null,
    eos: typeof tokenizerConfig?.eos_token === 'string' ? tokenizerConfig.eos_token : null,
  };
  const chatTemplate = await chatTemplateOf(path, files, tokenizerConfig);

  if (files.includes('llmkit.json')) {
    const { manifest } = loadExportedModel(path);
    const supported = isSupportedArchitecture(manifest.architecture);
    return {
      path,
      kind: 'export',
      architecture: manifest.architecture,
      modelType: manifest.model_type ?? null,
      family: SUPPORTED_ARCHITECTURES[manifest.architecture]?.family ?? null,
      supported,
      parameters: null,
      bytesOnDisk,
      precision: manifest.precision,
      layers: manifest.num_layers,
      contextLength: manifest.max_position_embeddings,
      vocabSize: manifest.vocab_size,
      tokenizer,
      chatTemplate,
      commands: [...EXPORT_COMMANDS, ...(manifest.precision === 'fp32' ? ['quantize'] : [])],
      hint: chatTemplate.present ? null : 'no chat template: serve answers /v1/completions only',
    };
  }
  const config = await readJson('config.json');
  if (!config) throw new UsageError(`model folder ${dir} has neither config.json nor llmkit.json`, hint);
  const architecture = String((config.architectures as string[] | undefined)?.[0] ?? 'unknown');
  const text = (config.text_config as Record<string, unknown> | undefined) ?? config;
  const supported = isSupportedArchitecture(architecture);
  const hasWeights = files.some((f) => f.endsWith('.safetensors') || /^pytorch_model.*\.bin$/.test(f));
  return {
    path,
    kind: 'huggingface',
    architecture,
    modelType: typeof config.model_type === 'string' ? config.model_type : null,
    family: SUPPORTED_ARCHITECTURES[architecture]?.family ?? null,
    supported,
    parameters: await countParameters(path, files),
    bytesOnDisk,
    precision: typeof config.torch_dtype === 'string' ? config.torch_dtype : typeof config.dtype === 'string' ? config.dtype : null,
    layers: typeof text.num_hidden_layers === 'number' ? text.num_hidden_layers : null,
    contextLength: typeof text.max_position_embeddings === 'number' ? text.max_position_embeddings : null,
    vocabSize: typeof text.vocab_size === 'number' ? text.vocab_size : null,
    tokenizer,
    chatTemplate,
    commands: supported && hasWeights && tokenizer.present ? [...HF_COMMANDS, ...(SUPPORTED_ARCHITECTURES[architecture].gguf ? ['export --gguf'] : [])] : [],
    hint: !supported ? supportedArchitecturesHint(architecture) : !hasWeights ? 'the folder has no weights (*.safetensors)' : !tokenizer.present ? 'the folder has no tokenizer.json' : null,
  };
}

async function chatTemplateOf(path: string, files: string[], tokenizerConfig: Record<string, unknown> | null): Promise<ModelInspection['chatTemplate']> {
  // An export keeps the template in tokenizer_config.json, where the engine reads it; in a Hugging Face folder
  // chat_template.jinja wins, as in transformers.
  const separate = files.includes('chat_template.jinja') ? 'chat_template.jinja' : files.includes('chat_template.json') ? 'chat_template.json' : null;
  const inConfig = tokenizerConfig?.chat_template ? 'tokenizer_config.json' : null;
  const source = files.includes('llmkit.json') ? (inConfig ?? separate) : (separate ?? inConfig);
  if (!source) return { present: false, source: null, renders: null, error: null };
  // transformers.js (llmkit's engine) reads the template from tokenizer_config.json only; export moves it there.
  if (source !== 'tokenizer_config.json' || !files.includes('tokenizer.json')) return { present: true, source, renders: null, error: null };
  const error = (await ModelTokenizer.load(path)).chatTemplateError;
  return { present: true, source, renders: error === null, error };
}

function folderBytes(path: string): number {
  return readdirSync(path, { withFileTypes: true }).reduce((n, e) => n + (e.isDirectory() ? folderBytes(join(path, e.name)) : e.isFile() ? statSync(join(path, e.name)).size : 0), 0);
}
