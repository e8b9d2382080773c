import { parentPort, workerData } from 'node:worker_threads';
import type { CompiledGrammar, GrammarCompiler, GrammarMatcher } from '@mlc-ai/web-xgrammar';
import { compileSpec, createCompiler, errorText } from './compile-spec.js';
import type { GrammarSpec, ThreadOptions } from './grammar-spec.js';
import type { FromThread, ToThread } from './model-grammars.js';
import { xgrammar } from './xgrammar.js';

/**
 * XGrammar's work for one model, on a worker thread: compiling grammars (seconds for a large vocabulary
 * and a new schema) and computing each generation's next-token mask. onnxruntime-node runs a session on
 * the main thread, so here, and only here, the masks are computed while the model computes the logits.
 * Messages: see ToThread / FromThread in model-grammars.ts. Every spec it sees compiled in the sandbox
 * first; if XGrammar fails here all the same, its module may be broken, so the thread answers and exits,
 * and ModelGrammars starts a new one.
 */

/** Compiled grammars kept; a schema compiles once and later requests reuse it. */
const CACHED_GRAMMARS = 64;

const options = workerData as ThreadOptions;
const { stopTokenIds } = options;
const port = parentPort!;
let compiler: Promise<GrammarCompiler> | undefined;
const compiled = new Map<string, Promise<CompiledGrammar>>();
const matchers = new Map<number, GrammarMatcher>();

/** Compiles or finds a grammar; least recently used ones leave the cache first. */
function compile(key: string, spec: GrammarSpec): Promise<CompiledGrammar> {
  let grammar = compiled.get(key);
  if (grammar)
    compiled.delete(key); // re-inserted below: most recently used last
  else {
    grammar = compileNew(spec);
    grammar.catch(() => compiled.delete(key));
  }
  compiled.set(key, grammar);
  if (compiled.size > CACHED_GRAMMARS) {
    const [oldest, evicted] = compiled.entries().next().value!;
    compiled.delete(oldest);
    // Matchers made from it keep what they need.
    void evicted.then(
      (g) => g.dispose(),
      () => undefined,
    );
  }
  return grammar;
}

async function compileNew(spec: GrammarSpec): Promise<CompiledGrammar> {
  return compileSpec(await (compiler ??= createCompiler(options)), spec);
}

/** Sends the matcher's next mask (none once it has accepted a stop token). */
async function sendMask(id: number, matcher: GrammarMatcher): Promise<void> {
  if (matcher.isTerminated()) return send({ op: 'mask', matcher: id });
  const bits = await matcher.getNextTokenBitmask();
  port.postMessage({ op: 'mask', matcher: id, bits } satisfies FromThread, [bits.buffer as ArrayBuffer]);
}

function send(message: FromThread): void {
  port.postMessage(message);
}

/** Our own refusal of a token; any other error came from XGrammar. */
class RejectedToken extends Error {}

/** Ends the thread once its last answer is out: the module may be broken (see above). */
function broken(): void {
  queue = queue.then(() => process.exit(1));
}

/** Messages are handled one at a time, in order: a matcher's accept always follows its creation. */
let queue = Promise.resolve();
port.on('message', (message: ToThread) => {
  queue = queue.then(() => handle(message));
});

async function handle(m: ToThread): Promise<void> {
  switch (m.op) {
    case 'compile':
    case 'matcher':
      try {
        const grammar = await compile(m.key, m.spec);
        if (m.op === 'matcher') {
          const matcher = await xgrammar().GrammarMatcher.createGrammarMatcher(grammar, [...stopTokenIds]);
          matchers.set(m.matcher, matcher);
          send({ op: 'done', call: m.call });
          await sendMask(m.matcher, matcher);
        } else send({ op: 'done', call: m.call });
      } catch (e) {
        send({ op: 'done', call: m.call, error: errorText(e) });
        broken();
      }
      return;
    case 'accept': {
      const matcher = matchers.get(m.matcher);
      if (!matcher) return send({ op: 'mask', matcher: m.matcher, error: 'this grammar thread has no such matcher' });
      try {
        if (!matcher.isTerminated() && !matcher.acceptToken(m.token)) throw new RejectedToken(`the grammar rejected token ${m.token}`);
        await sendMask(m.matcher, matcher);
      } catch (e) {
        send({ op: 'mask', matcher: m.matcher, error: errorText(e) });
        if (!(e instanceof RejectedToken)) broken();
      }
      return;
    }
    case 'dispose':
      matchers.get(m.matcher)?.dispose();
      matchers.delete(m.matcher);
  }
}
