import { parentPort, workerData } from 'node:worker_threads';
import type { CompiledGrammar, GrammarCompiler, GrammarMatcher } from '@mlc-ai/web-xgrammar';
import type { FromThread, GrammarSpec, ThreadOptions, ToThread } from './model-grammars.js';
import { readVocabulary } from './vocabulary.js';
import { explained, xgrammar } from './xgrammar.js';

/**
 * XGrammar's work for one model, on a worker thread: compiling grammars (seconds for a large vocabulary
 * and a new schema) and computing each generation's next-token mask. onnxruntime-node runs a session on
 * the main thread, so here, and only here, the masks are computed while the model computes the logits.
 * Messages: see ToThread / FromThread in model-grammars.ts.
 */

/** Compiled grammars kept; a schema compiles once and later requests reuse it. */
const CACHED_GRAMMARS = 64;

/** Any JSON object (the built-in JSON grammar also takes arrays, strings and numbers). */
const JSON_OBJECT_SCHEMA = { type: 'object' };

const { dir, vocabSize, stopTokenIds } = workerData as ThreadOptions;
const port = parentPort!;
let compiler: Promise<GrammarCompiler> | undefined;
const compiled = new Map<string, Promise<CompiledGrammar>>();
const matchers = new Map<number, GrammarMatcher>();

async function createCompiler(): Promise<GrammarCompiler> {
  const xg = xgrammar();
  const vocab = readVocabulary(dir);
  const info = await xg.TokenizerInfo.createTokenizerInfo(vocab.tokens, vocab.type, vocab.prependSpace, Math.max(vocabSize, vocab.tokens.length), [...stopTokenIds]);
  return xg.GrammarCompiler.createGrammarCompiler(info);
}

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
  const c = await (compiler ??= createCompiler());
  // No free whitespace between JSON tokens: a model that likes spaces could otherwise emit them forever.
  if (spec.kind === 'json_object') return explained(() => c.compileJSONSchema(JSON.stringify(JSON_OBJECT_SCHEMA), false, -1, undefined, false));
  if (spec.kind === 'json_schema') return explained(() => c.compileJSONSchema(JSON.stringify(spec.schema), false, -1, undefined, spec.strict));
  const format = await explained(() => withoutFreeWhitespace(spec.format));
  return explained(() => c.compileStructuralTag({ type: 'structural_tag', format }));
}

/**
 * A structural tag's JSON parts as grammars without free whitespace: its `json_schema` parts take any
 * whitespace between JSON tokens (no option says otherwise), and a model that likes spaces never ends.
 */
async function withoutFreeWhitespace(format: object): Promise<object> {
  if (Array.isArray(format)) return Promise.all(format.map((f: object) => withoutFreeWhitespace(f)));
  const node = format as Record<string, unknown>;
  if (node.type === 'json_schema') return { type: 'grammar', grammar: await xgrammar().Testings._jsonSchemaToEBNF(JSON.stringify(node.json_schema), false, -1, undefined, true) };
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) out[k] = typeof v === 'object' && v !== null ? await withoutFreeWhitespace(v) : v;
  return out;
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

const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e)).split('\n')[0];

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
      }
      return;
    case 'accept': {
      const matcher = matchers.get(m.matcher);
      if (!matcher) return;
      try {
        if (!matcher.isTerminated() && !matcher.acceptToken(m.token)) throw new Error(`the grammar rejected token ${m.token}`);
        await sendMask(m.matcher, matcher);
      } catch (e) {
        send({ op: 'mask', matcher: m.matcher, error: errorText(e) });
      }
      return;
    }
    case 'dispose':
      matchers.get(m.matcher)?.dispose();
      matchers.delete(m.matcher);
  }
}
