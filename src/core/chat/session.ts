import type { FinishReason, GenerationEnd } from '../../engine/streamer.js';
import { ChatBackendError, DEFAULT_CHAT_SETTINGS, type ChatBackend, type ChatMessage, type ChatSettings } from './backend.js';

/** What the status line and /stats show about one reply. */
export interface TurnStats {
  finishReason: FinishReason;
  /** From sending to the first piece of text (queueing and prefill included). */
  timeToFirstTokenMs: number | null;
  /** Decode speed: tokens after the first over the time they took. */
  tokensPerS: number | null;
  promptTokens: number | null;
  completionTokens: number;
  /** Prompt + reply: how much of the context window the conversation now fills. */
  contextUsed: number | null;
  elapsedMs: number;
}

export type TurnResult = { reply: string; stats: TurnStats } | { error: ChatBackendError };

export interface TurnObserver {
  /** Each streamed piece of the reply. */
  text(piece: string): void;
  /** The server said 429: the turn waits `seconds` before trying again. */
  waiting(seconds: number, error: ChatBackendError): void;
}

/** A 429 is retried this many times (after Retry-After each time) before the chat gives up and says so. */
const RATE_LIMIT_RETRIES = 3;
/** The wait when a 429 comes without Retry-After. */
const DEFAULT_RETRY_S = 1;

/**
 * One conversation: the system prompt, the turns so far and the settings, over a ChatBackend. The ink
 * app and the plain mode both drive it, so a turn behaves the same in either: a reply that fails
 * leaves the history as it was (send it again, or /clear); a cancelled one keeps what was streamed.
 */
export class ChatSession {
  system: string | null;
  settings: ChatSettings;
  /** User and assistant turns, oldest first. */
  history: ChatMessage[] = [];
  lastStats: TurnStats | null = null;
  readonly totals = { replies: 0, promptTokens: 0, completionTokens: 0, decodeTokens: 0, decodeMs: 0 };

  constructor(
    readonly backend: ChatBackend,
    opts: { system?: string | null; settings?: Partial<ChatSettings> } = {},
  ) {
    this.system = opts.system ?? null;
    this.settings = { ...DEFAULT_CHAT_SETTINGS, ...opts.settings };
  }

  /** The messages a request carries: the system prompt, then the turns. */
  get messages(): ChatMessage[] {
    return this.system === null ? [...this.history] : [{ role: 'system', content: this.system }, ...this.history];
  }

  clear(): void {
    this.history = [];
    this.lastStats = null;
  }

  /** Sends one user message and streams the reply; aborting `signal` cancels it (waits for a 429 included). */
  async send(text: string, observer: TurnObserver, signal: AbortSignal): Promise<TurnResult> {
    const messages: ChatMessage[] = [...this.messages, { role: 'user', content: text }];
    const started = performance.now();
    for (let attempt = 0; ; attempt++) {
      let reply = '';
      const end = await new Promise<GenerationEnd>((resolve) => {
        const streamer = {
          put: (piece: string) => {
            reply += piece;
            observer.text(piece);
          },
          end: resolve,
        };
        // A backend ends the streamer on every outcome; a throw is a bug, still shown as a failed reply.
        this.backend.reply({ messages, settings: { ...this.settings }, signal }, streamer).catch((e: Error) => resolve(failed(e)));
      });
      if (end.reason !== 'error') return { reply, stats: this.record(text, reply, end, performance.now() - started) };
      const error = end.error instanceof ChatBackendError ? end.error : new ChatBackendError('server', end.error?.message ?? 'the reply failed');
      if (error.kind !== 'rate_limited' || attempt >= RATE_LIMIT_RETRIES) return { error };
      const seconds = error.retryAfterS ?? DEFAULT_RETRY_S;
      observer.waiting(seconds, error);
      if (!(await sleep(seconds * 1000, signal))) {
        return { reply: '', stats: this.record(text, '', { ...failed(), reason: 'cancelled' }, performance.now() - started) };
      }
    }
  }

  /** Keeps the turn (a cancelled one only if some text came back) and its stats. */
  private record(text: string, reply: string, end: GenerationEnd, elapsedMs: number): TurnStats {
    if (end.reason !== 'cancelled' || reply) this.history.push({ role: 'user', content: text }, { role: 'assistant', content: reply });
    const decodeMs = end.interTokenMs.reduce((a, b) => a + b, 0);
    const decodeTokens = end.interTokenMs.length;
    const promptTokens = Number.isFinite(end.promptTokens) ? end.promptTokens : null;
    const stats: TurnStats = {
      finishReason: end.reason,
      timeToFirstTokenMs: end.timeToFirstTokenMs ?? null,
      tokensPerS: decodeTokens > 0 && decodeMs > 0 ? (decodeTokens * 1000) / decodeMs : null,
      promptTokens,
      completionTokens: end.completionTokens,
      contextUsed: promptTokens === null ? null : promptTokens + end.completionTokens,
      elapsedMs,
    };
    this.lastStats = stats;
    this.totals.replies++;
    this.totals.promptTokens += promptTokens ?? 0;
    this.totals.completionTokens += end.completionTokens;
    this.totals.decodeTokens += decodeTokens;
    this.totals.decodeMs += decodeMs;
    return stats;
  }
}

/** The end of a reply that produced nothing (the prompt's size unknown). */
function failed(error?: Error): GenerationEnd {
  return { reason: 'error', promptTokens: NaN, completionTokens: 0, interTokenMs: [], error };
}

/** Resolves true after `ms`, or false as soon as `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
