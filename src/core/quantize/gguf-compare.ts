import { mkdirSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { LlmkitError } from '../../shared/errors.js';
import { packageRoot } from '../../shared/paths.js';
import type { WorkerEvent } from '../../workers/protocol.js';
import { exportGguf } from '../gguf/export.js';
import { NODE_LLAMA_CPP, nodeLlamaCppEntry } from '../gguf/llama-cpp.js';

/** The token windows the report scored, and the fp32 model's most likely next token at each of their positions. */
export interface ScoringWindows {
  windows: number[][];
  referenceTop1: number[];
  threads: number;
}

/** What llama.cpp measures of one GGUF of the same weights on the same windows. */
export interface GgufScore {
  type: 'Q8_0' | 'Q4_0';
  bytes: number;
  /** How many tensors of each type the file holds (in Q4_0 the output layer, or the tied embedding, stays Q8_0). */
  tensorTypes: Record<string, number>;
  perplexity: number;
  top1Agreement: number;
  positions: number;
}

/** The GGUF types set beside llmkit's int8 and int4: llama.cpp's blocks of 32 weights with one scale. */
const COMPARED = ['q8_0', 'q4_0'] as const;

/**
 * Writes the model's Q8_0 and Q4_0 GGUF files (the `export --gguf` writer, into `workDir`, removed afterwards) and scores
 * each with llama.cpp (node-llama-cpp) on the windows the report scored llmkit's models on.
 */
export async function scoreGgufPeers(model: string, scoring: ScoringWindows, workDir: string, opts: { onEvent?: (e: WorkerEvent) => void; stopSignal?: AbortSignal }): Promise<GgufScore[]> {
  mkdirSync(workDir, { recursive: true });
  const input = join(workDir, 'windows.json');
  writeFileSync(input, JSON.stringify(scoring));
  const scores: GgufScore[] = [];
  try {
    for (const [i, type] of COMPARED.entries()) {
      const file = join(workDir, `model-${type}.gguf`);
      const written = await exportGguf({ model, out: file, type, onEvent: opts.onEvent, stopSignal: opts.stopSignal });
      opts.onEvent?.({ event: 'progress', step: i, total: COMPARED.length, message: `llama.cpp scores ${type.toUpperCase()}`, phase: 'compare-gguf' });
      scores.push({ type: type.toUpperCase() as GgufScore['type'], bytes: written.bytes, tensorTypes: written.tensor_types, ...(await scoreGguf(file, input)) });
      await rm(file, { force: true });
      opts.onEvent?.({ event: 'progress', step: i + 1, total: COMPARED.length, message: `llama.cpp scored ${type.toUpperCase()}`, phase: 'compare-gguf' });
    }
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
  return scores;
}

async function scoreGguf(file: string, input: string): Promise<Omit<GgufScore, 'type' | 'bytes' | 'tensorTypes'>> {
  // The built script (tests run this module from src/, where there is only its TypeScript).
  const script = join(packageRoot, 'dist', 'core', 'quantize', 'gguf-score.js');
  const r = await execa(process.execPath, [script, await nodeLlamaCppEntry(), file, input], { reject: false, stdin: 'ignore' });
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  if (r.exitCode !== 0 || !line.startsWith('{')) {
    throw new LlmkitError(
      `llama.cpp (node-llama-cpp ${NODE_LLAMA_CPP}) could not score ${file}: ${r.stderr.trim().split('\n').at(-1) ?? `exit ${r.exitCode}`}`,
      'run quantize without --compare-gguf',
      1,
      r.stderr,
    );
  }
  return JSON.parse(line) as Omit<GgufScore, 'type' | 'bytes' | 'tensorTypes'>;
}
