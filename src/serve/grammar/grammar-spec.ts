/** What a grammar constraint is asked for, and what its threads start with. */
import { Worker } from 'node:worker_threads';

/** What the output must be. */
export type GrammarSpec =
  /** Any JSON value that is an object (`response_format: json_object`). */
  | { kind: 'json_object' }
  /** A JSON Schema; `strict` forbids properties and items the schema does not list. */
  | { kind: 'json_schema'; schema: unknown; strict: boolean }
  /** XGrammar's structural tag: text around JSON (a Hermes `<tool_call>` block). */
  | { kind: 'structural_tag'; format: object };

/** What XGrammar's threads (grammar-thread.ts, compile-thread.ts) are started with. */
export interface ThreadOptions {
  dir: string;
  /** Width of the model's logits (may exceed the tokenizer's vocabulary). */
  vocabSize: number;
  stopTokenIds: readonly number[];
}

/** A schema or format XGrammar refused, or one over this server's limits (a 400 for the client). */
export class GrammarError extends Error {
  override name = 'GrammarError';
}

/**
 * Starts one of this folder's threads (`grammar-thread`, `compile-thread`). Worker threads load JavaScript
 * only: from the build, the compiled file beside this one; from the TypeScript source (tests), the source
 * file through tsx's loader (a devDependency), so a test runs the thread it is testing, never a stale build.
 */
export function startThread(name: string, options: ThreadOptions): Worker {
  const here = import.meta.url;
  if (!here.endsWith('.ts')) return new Worker(new URL(`./${name}.js`, here), { workerData: options });
  const source = JSON.stringify(new URL(`./${name}.ts`, here).href);
  const boot = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${source}); })`;
  return new Worker(boot, { eval: true, workerData: options });
}
