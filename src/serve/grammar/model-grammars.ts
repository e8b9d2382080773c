import type { Worker } from 'node:worker_threads';
import type { LogitsProcessor } from '../../engine/logits-processor.js';
import { CompileSandbox } from './compile-sandbox.js';
import { checkGrammarLimits } from './grammar-limits.js';
import { GrammarError, type GrammarSpec, type ThreadOptions } from './grammar-spec.js';
import { startThread } from './threads.js';
import { asciiTexts, readVocabulary, utf8Tables, withoutControlCharacters, type Vocabulary } from './vocabulary.js';

/** Requests to the grammar thread, handled in order. */
export type ToThread =
  /** Compile (or find) a grammar; answered by `done`. */
  | { op: 'compile'; call: number; key: string; spec: GrammarSpec }
  /** A matcher over that grammar; answered by `done`, then by `mask` with its first mask. */
  | { op: 'matcher'; call: number; matcher: number; key: string; spec: GrammarSpec }
  /** The matcher's chosen token; answered by `mask` with the next mask. */
  | { op: 'accept'; matcher: number; token: number }
  | { op: 'dispose'; matcher: number };

export type FromThread =
  | { op: 'done'; call: number; error?: string }
  /** `bits`: bit set = token allowed; absent once the matcher has accepted a stop token. */
  | { op: 'mask'; matcher: number; bits?: Int32Array; error?: string };

/**
 * What a constraint knows of the vocabulary besides the grammar: tokens masked on top of every grammar,
 * each token's ASCII text (to follow JSON's nesting), and the tokens that close JSON quickly.
 */
interface TokenTables {
  /** Bits of tokens allowed on top of the grammar (see withoutControlCharacters). */
  allowed: Int32Array;
  texts: string[];
  /** Bits of tokens made only of `"`, `}`, `]`, `:`, `0` and spaces, and of the stop tokens. */
  closers: Int32Array;
  /** The closers with a `"` (inside a string, the others would only make it longer). */
  quoteClosers: Int32Array;
  /** Tokens allowed in each UTF-8 state, and the state each leaves (utf8Tables). */
  utf8: { allowed: Int32Array[]; next: Int8Array[] };
}

/** Characters that end strings, objects and arrays, or make the shortest value and separator. */
const CLOSING = /^["}\]:0 ]+$/;

/**
 * Tokens kept in reserve to close the JSON: when no more than this many per open object or array (plus
 * a few) remain, tokens that close are preferred. Closing one level takes at most `"`, `"`, `: `, `0`, `}`:
 * five tokens, fewer where merges join them.
 */
const CLOSING_TOKENS_PER_LEVEL = 5;
const CLOSING_SLACK = 8;

function tokenTables(vocab: Vocabulary, vocabSize: number, stopTokenIds: readonly number[]): TokenTables {
  const texts = asciiTexts(vocab);
  const closers = new Int32Array(Math.ceil(vocabSize / 32));
  const quoteClosers = new Int32Array(closers.length);
  texts.forEach((t, id) => {
    if (CLOSING.test(t)) closers[id >> 5] |= 1 << (id & 31);
    if (CLOSING.test(t) && t.includes('"')) quoteClosers[id >> 5] |= 1 << (id & 31);
  });
  for (const id of stopTokenIds) closers[id >> 5] |= 1 << (id & 31);
  return { allowed: withoutControlCharacters(vocab, vocabSize), texts, closers, quoteClosers, utf8: utf8Tables(vocab, vocabSize) };
}

/** A new spec's compile in the sandbox fails past this (CompileSandbox). */
const COMPILE_TIME_LIMIT_MS = 10_000;

/**
 * A mask not computed within this is taken for a stuck grammar thread, which is then replaced: the
 * thread may be compiling a spec ahead of it (no longer than the sandbox allowed), then takes milliseconds.
 */
const MASK_TIME_LIMIT_MS = 3 * COMPILE_TIME_LIMIT_MS;

/** Tunes the limits (tests). */
export interface GrammarTimeLimits {
  compileMs: number;
  maskMs: number;
}

/**
 * One model's grammars. XGrammar runs on a worker thread (grammar-thread.ts), started on first use: a
 * new schema compiles there without stalling the streams being decoded, and each step's masks are
 * computed there while the main thread runs the model. What the main thread keeps is cheap: the
 * vocabulary's tables and, per step, applying a mask to a row of logits.
 *
 * No client's schema can break it for the others: a spec over the limits (grammar-limits.ts) is refused
 * before any compile, and a new spec reaches this thread only once it compiled in the sandbox
 * (compile-sandbox.ts). Should the thread still fail or stop answering, its generations fail alone (their
 * processors throw) and the next request starts a new thread.
 */
export class ModelGrammars {
  private thread?: Worker;
  private tables?: TokenTables;
  private calls = 0;
  private readonly pending = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  private readonly masks = new Map<number, { resolve: (bits: Int32Array | undefined) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  /** Matchers that live on the current thread. */
  private readonly live = new Set<number>();
  private readonly sandbox: CompileSandbox;

  constructor(
    private readonly options: ThreadOptions,
    private readonly limits: GrammarTimeLimits = { compileMs: COMPILE_TIME_LIMIT_MS, maskMs: MASK_TIME_LIMIT_MS },
  ) {
    this.sandbox = new CompileSandbox(options, limits.compileMs);
  }

  /** Compiles (or finds) the grammar; throws GrammarError on a schema over the limits or one XGrammar cannot take. */
  async compile(spec: GrammarSpec): Promise<void> {
    const key = await this.checked(spec);
    const call = ++this.calls;
    await this.request(call, { op: 'compile', call, key, spec });
  }

  /** A logits processor that keeps one generation inside the grammar. */
  async constraint(spec: GrammarSpec): Promise<GrammarConstraint> {
    const key = await this.checked(spec);
    const call = ++this.calls;
    const first = this.nextMask(call);
    first.catch(() => undefined); // a failed creation is reported by the request below
    try {
      this.live.add(call);
      await this.request(call, { op: 'matcher', call, matcher: call, key, spec });
    } catch (e) {
      this.dispose(call);
      throw e;
    }
    return new GrammarConstraint(this, call, first, this.tables!);
  }

  /** Sends a matcher its chosen token; resolves with its next mask. */
  accept(matcher: number, token: number): Promise<Int32Array | undefined> {
    if (!this.live.has(matcher)) return Promise.reject(new Error('the grammar engine was restarted during this generation'));
    const next = this.nextMask(matcher);
    this.start().postMessage({ op: 'accept', matcher, token } satisfies ToThread);
    return next;
  }

  dispose(matcher: number): void {
    this.settleMask(matcher);
    if (this.live.delete(matcher)) this.thread?.postMessage({ op: 'dispose', matcher } satisfies ToThread);
  }

  /** Ends the threads (the server is closing). */
  close(): void {
    this.sandbox.close();
    void this.thread?.terminate();
  }

  /** The spec's cache key, once the spec is within the limits and compiled in the sandbox. */
  private async checked(spec: GrammarSpec): Promise<string> {
    checkGrammarLimits(spec);
    const key = JSON.stringify(spec);
    await this.sandbox.check(key, spec);
    return key;
  }

  private request(call: number, message: ToThread): Promise<void> {
    const done = new Promise<void>((resolve, reject) => this.pending.set(call, { resolve, reject }));
    this.start().postMessage(message);
    this.holdProcess();
    return done;
  }

  private nextMask(matcher: number): Promise<Int32Array | undefined> {
    const next = new Promise<Int32Array | undefined>((resolve, reject) => {
      const timer = setTimeout(() => {
        // Nothing for this long: the thread is stuck; replacing it fails every generation on it.
        void this.thread?.terminate();
      }, this.limits.maskMs);
      this.masks.set(matcher, { resolve, reject, timer });
    });
    this.holdProcess();
    return next;
  }

  /** Removes a matcher's awaited mask and stops its timer; returns its waiter. */
  private settleMask(matcher: number) {
    const waiter = this.masks.get(matcher);
    if (waiter) clearTimeout(waiter.timer);
    this.masks.delete(matcher);
    this.holdProcess();
    return waiter;
  }

  /** The thread keeps the process alive only while an answer is awaited: an idle server exits when its sockets close. */
  private holdProcess(): void {
    if (this.pending.size + this.masks.size > 0) this.thread?.ref();
    else this.thread?.unref();
  }

  private start(): Worker {
    if (this.thread) return this.thread;
    const vocab = readVocabulary(this.options.dir);
    this.tables ??= tokenTables(vocab, Math.max(this.options.vocabSize, vocab.tokens.length), this.options.stopTokenIds);
    const thread = startThread('grammar-thread', this.options);
    thread.on('message', (m: FromThread) => {
      if (m.op === 'done') {
        const p = this.pending.get(m.call);
        this.pending.delete(m.call);
        this.holdProcess();
        if (m.error) p?.reject(new GrammarError(m.error));
        else p?.resolve();
        return;
      }
      const waiter = this.settleMask(m.matcher);
      if (m.error) waiter?.reject(new Error(m.error));
      else waiter?.resolve(m.bits);
    });
    thread.on('error', (e) => this.lost(thread, `the grammar engine failed: ${e.message}`));
    thread.on('exit', (code) => this.lost(thread, `the grammar engine stopped (exit code ${code})`));
    return (this.thread = thread);
  }

  /** The thread is gone: everything awaited from it fails, and the next request starts a new one. */
  private lost(thread: Worker, reason: string): void {
    if (this.thread !== thread) return;
    this.thread = undefined;
    const error = new Error(reason);
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
    for (const id of [...this.masks.keys()]) this.settleMask(id)?.reject(error);
    this.live.clear();
  }
}

/**
 * One generation's grammar state. The thread computes the next token's bitmask (bit set = allowed) as
 * soon as it has the previous token; `prepare` waits for it (the model runs meanwhile); `apply` sets every
 * forbidden token's logit to -Infinity; `accept` hands the chosen token to the thread.
 * Masking a token the grammar allows is safe as long as one allowed token remains at every step: for JSON,
 * every control character has an escaped spelling.
 *
 * A grammar says what may come next, not how soon it can end: a model sampling inside an unbounded string
 * may never close it. So the constraint follows the JSON's nesting, and once the tokens left are only
 * enough to close it, it narrows the choice to closing tokens wherever the grammar allows one.
 */
export class GrammarConstraint implements LogitsProcessor {
  private mask?: Int32Array;
  private disposed = false;
  /** Where the output's bytes stand as UTF-8 (0: between characters). */
  private utf8State = 0;
  private readonly json = new JsonNesting();

  constructor(
    private readonly grammars: ModelGrammars,
    private readonly id: number,
    /** The mask for the next token, being computed. */
    private next: Promise<Int32Array | undefined>,
    private readonly tables: TokenTables,
  ) {}

  async prepare(): Promise<void> {
    this.mask = await this.next;
  }

  apply(logits: Float32Array, remaining: number): void {
    if (!this.mask) return;
    const mask = this.mask.map((bits, word) => bits & (this.tables.allowed[word] ?? -1));
    // Only bytes that continue valid UTF-8; should none be left, the grammar's mask alone (the output validator has the last word).
    const utf8 = this.tables.utf8.allowed[this.utf8State];
    const valid = mask.map((bits, word) => bits & (utf8[word] ?? 0));
    if (valid.some((bits) => bits !== 0)) mask.set(valid);
    if (remaining <= this.json.depth * CLOSING_TOKENS_PER_LEVEL + CLOSING_SLACK) {
      const closers = this.json.inString ? this.tables.quoteClosers : this.tables.closers;
      const closing = mask.map((bits, word) => bits & (closers[word] ?? 0));
      if (closing.some((bits) => bits !== 0)) mask.set(closing);
    }
    for (let word = 0; word < mask.length; word++) {
      const bits = mask[word];
      if (bits === -1) continue; // all 32 allowed
      const end = Math.min(logits.length, word * 32 + 32);
      for (let i = word * 32; i < end; i++) if (((bits >>> (i & 31)) & 1) === 0) logits[i] = -Infinity;
    }
    // Ids past the mask (logits wider than the grammar's vocabulary) are never allowed.
    for (let i = mask.length * 32; i < logits.length; i++) logits[i] = -Infinity;
  }

  accept(token: number): void {
    if (this.disposed || !this.mask) return; // the grammar had ended (a stop token was accepted)
    this.mask = undefined;
    this.json.push(this.tables.texts[token] ?? '');
    this.utf8State = Math.max(0, this.tables.utf8.next[this.utf8State][token] ?? 0);
    this.next = this.grammars.accept(this.id, token);
    this.next.catch(() => undefined); // seen by the next prepare, if there is one
  }

  /** Frees the matcher; call once the generation has ended. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.grammars.dispose(this.id);
  }
}

/** How deep a JSON text is so far: open objects and arrays, plus one inside a string. */
class JsonNesting {
  private open = 0;
  inString = false;
  private escaped = false;

  get depth(): number {
    return this.open + (this.inString ? 1 : 0);
  }

  push(text: string): void {
    for (const ch of text) {
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (ch === '\\') this.escaped = true;
        else if (ch === '"') this.inString = false;
      } else if (ch === '"') this.inString = true;
      else if (ch === '{' || ch === '[') this.open++;
      else if ((ch === '}' || ch === ']') && this.open > 0) this.open--;
    }
  }
}
