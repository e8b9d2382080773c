import { parentPort, workerData } from 'node:worker_threads';
import { compileSpec, createCompiler, errorText } from './compile-spec.js';
import type { GrammarSpec, ThreadOptions } from './grammar-spec.js';

/**
 * The compile sandbox's thread (compile-sandbox.ts): compiles one spec at a time and says whether it
 * compiled. It holds nothing anyone else uses, so when a schema breaks XGrammar's WebAssembly module
 * (a trap, an abort, a call that never returns), the sandbox throws this thread away.
 * It says `ready` once its compiler exists, so that the time limit counts the compile alone.
 */

export type ToCompileThread = { spec: GrammarSpec };
export type FromCompileThread = { op: 'ready' } | { op: 'done'; error?: string };

const port = parentPort!;
const compiler = await createCompiler(workerData as ThreadOptions);
port.on('message', async ({ spec }: ToCompileThread) => {
  try {
    (await compileSpec(compiler, spec)).dispose();
    port.postMessage({ op: 'done' } satisfies FromCompileThread);
  } catch (e) {
    port.postMessage({ op: 'done', error: errorText(e) } satisfies FromCompileThread);
  }
});
port.postMessage({ op: 'ready' } satisfies FromCompileThread);
