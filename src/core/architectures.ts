import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pythonSourceDir } from '../shared/paths.js';

/** One supported architecture, as listed in the workers' assets/architectures.json. */
export interface ArchitectureEntry {
  model_type: string;
  family: string;
  features: string;
  /** llama.cpp's architecture name where `export --gguf` writes the family (absent: it cannot). */
  gguf?: string;
}

/**
 * The one list of architectures llmkit supports: the Python workers read the same file, so export, finetune,
 * lora merge, distill and quantize accept exactly the same families.
 */
export const SUPPORTED_ARCHITECTURES: Readonly<Record<string, ArchitectureEntry>> = Object.fromEntries(
  Object.entries(JSON.parse(readFileSync(join(pythonSourceDir, 'llmkit_worker', 'assets', 'architectures.json'), 'utf8')) as Record<string, ArchitectureEntry>).filter(
    ([name]) => !name.startsWith('_'),
  ),
);

export function isSupportedArchitecture(architecture: string): boolean {
  return Object.hasOwn(SUPPORTED_ARCHITECTURES, architecture);
}

/** What to tell a user whose folder holds another architecture. */
export function supportedArchitecturesHint(architecture?: string): string {
  const list = `supported: ${Object.keys(SUPPORTED_ARCHITECTURES).sort().join(', ')}`;
  return architecture === 'Gemma3ForConditionalGeneration' ? `llmkit takes Gemma 3's text model (Gemma3ForCausalLM, e.g. gemma-3-1b); ${list}` : list;
}
