import type { FinishReason, Streamer } from '../../src/engine/streamer.js';
import type { BackendInfo, ChatBackend, ChatBackendError, ReplyRequest } from '../../src/core/chat/backend.js';

/** One scripted reply: pieces streamed `delayMs` apart (forever, until cancelled, with `endless`), or an error. */
export type ScriptedReply = { pieces: string[]; delayMs?: number; endless?: boolean; finish?: FinishReason; timings?: ReportedTimings } | { error: ChatBackendError };

/** Timings to report instead of the measured ones, for tests of what is computed from them. */
export interface ReportedTimings {
  timeToFirstTokenMs: number;
  interTokenMs: number[];
}

/**
 * A ChatBackend that plays replies from a script, for UI tests that are about keys and rendering
 * rather than the model (the integration tests use the real engine and server). It honours
 * cancellation like the real backends and records every request.
 */
export class ScriptedBackend implements ChatBackend {
  readonly requests: ReplyRequest[] = [];
  info: BackendInfo = { model: 'scripted', device: 'test', contextWindow: 512 };

  constructor(private readonly script: ScriptedReply[]) {}

  async reply(request: ReplyRequest, streamer: Streamer): Promise<void> {
    this.requests.push({ ...request, messages: request.messages.map((m) => ({ ...m })), settings: { ...request.settings } });
    const next = this.script.shift() ?? { pieces: ['(no more scripted replies)'] };
    const promptTokens = request.messages.reduce((n, m) => n + m.content.split(/\s+/).length, 0);
    if ('error' in next) return streamer.end({ reason: 'error', promptTokens: NaN, completionTokens: 0, interTokenMs: [], error: next.error });
    const started = performance.now();
    const gaps: number[] = [];
    let firstAt: number | undefined;
    let last = started;
    let sent = 0;
    for (let i = 0; next.endless || i < next.pieces.length; i++) {
      if (await pause(next.delayMs ?? 5, request.signal)) break;
      const now = performance.now();
      if (firstAt === undefined) firstAt = now;
      else gaps.push(now - last);
      last = now;
      streamer.put(next.pieces[i % next.pieces.length]);
      sent++;
    }
    streamer.end({
      reason: request.signal.aborted ? 'cancelled' : (next.finish ?? 'stop'),
      promptTokens,
      completionTokens: sent,
      timeToFirstTokenMs: next.timings?.timeToFirstTokenMs ?? (firstAt === undefined ? undefined : firstAt - started),
      interTokenMs: next.timings?.interTokenMs ?? gaps,
    });
  }

  async listModels(): Promise<string[]> {
    return ['scripted', 'other'];
  }

  async useModel(name: string): Promise<BackendInfo> {
    this.info = { ...this.info, model: name };
    return this.info;
  }

  async close(): Promise<void> {}
}

/** Waits `ms`; resolves true when the signal aborted first. */
function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(true);
    const timer = setTimeout(() => resolve(signal.aborted), ms);
    signal.addEventListener('abort', () => (clearTimeout(timer), resolve(true)), { once: true });
  });
}
