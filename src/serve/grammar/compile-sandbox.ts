import type { Worker } from 'node:worker_threads';
import type { FromCompileThread } from './compile-thread.js';
import { GrammarError, type GrammarSpec, type ThreadOptions } from './grammar-spec.js';
import { startThread } from './threads.js';

/** Specs remembered as compiled or refused, so that a repeated spec costs no thread. */
const REMEMBERED = 1024;

/**
 * Tries each new grammar spec on a thread of its own before the grammar thread, which holds every running
 * generation's matcher, ever sees it. XGrammar runs as one WebAssembly module per thread, and a hostile
 * schema can break that module for good (a 100-level schema overflows its stack: every later call fails,
 * or never returns). Here such a schema breaks only this thread: after any failure, or when a compile
 * takes longer than its limit, the thread is terminated and the next spec gets a new one.
 * Specs are tried one at a time, in order.
 */
export class CompileSandbox {
  private thread?: Promise<Worker>;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly verdicts = new Map<string, string | undefined>();

  constructor(
    private readonly options: ThreadOptions,
    /** A compile taking longer fails, and its thread is thrown away. */
    private readonly timeLimitMs: number,
  ) {}

  /** Resolves if the spec compiles; throws GrammarError (the same message for a repeated bad spec) if not. */
  async check(key: string, spec: GrammarSpec): Promise<void> {
    if (!this.verdicts.has(key)) {
      const tried = this.queue.then(() => this.tryOnce(spec));
      this.queue = tried.catch(() => undefined);
      this.remember(key, await tried);
    }
    const error = this.verdicts.get(key);
    if (error !== undefined) throw new GrammarError(error);
  }

  /** Ends the thread (the server is closing). */
  close(): void {
    void this.thread?.then((t) => t.terminate());
    this.thread = undefined;
  }

  private remember(key: string, verdict: string | undefined): void {
    this.verdicts.delete(key);
    this.verdicts.set(key, verdict);
    if (this.verdicts.size > REMEMBERED) this.verdicts.delete(this.verdicts.keys().next().value!);
  }

  /** The error's message, or undefined when the spec compiled. */
  private async tryOnce(spec: GrammarSpec): Promise<string | undefined> {
    const thread = await (this.thread ??= this.start());
    thread.ref();
    const verdict = await new Promise<string | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(`compiling it took longer than ${this.timeLimitMs / 1000} s, this server's limit`), this.timeLimitMs);
      const finish = (verdict: string | undefined) => {
        clearTimeout(timer);
        thread.off('message', onMessage).off('error', onError).off('exit', onExit);
        resolve(verdict);
      };
      const onMessage = (m: FromCompileThread) => m.op === 'done' && finish(m.error);
      const onError = (e: Error) => finish(e.message);
      const onExit = (code: number) => finish(`the grammar compiler stopped (exit code ${code})`);
      thread.on('message', onMessage).on('error', onError).on('exit', onExit);
      thread.postMessage({ spec });
    });
    thread.unref();
    if (verdict !== undefined) {
      // Whatever failed may have left the module broken: the next spec gets a new thread.
      this.thread = undefined;
      void thread.terminate();
    }
    return verdict;
  }

  /** A new thread, once its compiler is made (that time does not count against the limit). */
  private start(): Promise<Worker> {
    const thread = startThread('compile-thread', this.options);
    return new Promise<Worker>((resolve, reject) => {
      thread.once('message', () => resolve(thread));
      thread.once('error', (e) => reject(new Error(`the grammar compiler could not start: ${e.message}`)));
    }).catch((e) => {
      this.thread = undefined;
      throw e;
    });
  }
}
