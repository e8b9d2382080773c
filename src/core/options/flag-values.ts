/**
 * The fixed sets and defaults a command checks its flags against and shows in its help. They live
 * with the layer that owns them (engine, serve); commands reach them here, through core, like
 * everything else below core. Only light modules are imported: commands load this for --help.
 */
import { UsageError } from '../../shared/errors.js';

export { DEVICES, type Device } from '../../engine/devices.js';
export { DEFAULT_PREFIX_CACHE_MB } from '../../engine/prefix-cache.js';
export { FILTER_MODES, type FilterMode } from '../../serve/content-filter.js';
export { REDIS_DOWN_POLICIES, type RedisDownPolicy } from '../../serve/access/quotas.js';

/** The response cache: entries kept in memory, and how long an answer lives in Redis. */
export const DEFAULT_CACHE_ENTRIES = 1024;
export const DEFAULT_CACHE_TTL_S = 3600;

/** Where `serve` generates: llmkit's engine in this process, or a Triton Inference Server. */
export const SERVE_ENGINES = ['onnx', 'triton'] as const;

/** Triton model repositories: the instance kind of the decoder, and the names Triton accepts for a model. */
export const TRITON_DEVICES = ['cpu', 'gpu'] as const;
export type TritonDevice = (typeof TRITON_DEVICES)[number];
export const TRITON_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** `export --gguf --type`: llama.cpp's names for float16 and the two block quantizations gguf-py writes. */
export const GGUF_TYPES = ['f16', 'q8_0', 'q4_0'] as const;
export type GgufType = (typeof GGUF_TYPES)[number];

export function parseGgufType(type: string, flag = '--type'): GgufType {
  if (!(GGUF_TYPES as readonly string[]).includes(type))
    throw new UsageError(`${flag} must be one of ${GGUF_TYPES.join(', ')} (got ${type})`, 'f16 keeps the weights, q8_0 is half its size, q4_0 a quarter');
  return type as GgufType;
}

/** The sizes of llmkit's own models (`llmkit make-model --preset`, `builtin:<preset>`). */
export const MODEL_PRESETS = ['tiny', 'small', '100m'] as const;
export type ModelPreset = (typeof MODEL_PRESETS)[number];

/** What a MODEL argument takes besides a folder (src/core/import): said in each command's help. */
export const IMPORTABLE_MODELS = 'a .gguf file, ollama:NAME[:TAG] or a Hugging Face id';
