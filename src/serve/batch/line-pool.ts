import { setTimeout as sleep } from 'node:timers/promises';
import { newId, type BatchLine, type ResultLine } from './objects.js';

/** What one line's request came to: the HTTP status and body a client would have had. */
export interface LineOutcome {
  status: number;
  body: unknown;
  /** A refusal worth trying again later (a quota window, a full queue): after this many seconds. */
  retryAfterS?: number;
}

/** Runs one line's request; undefined when `signal` stopped it before it had an answer. */
export type LineExecutor = (line: BatchLine, signal: AbortSignal) => Promise<LineOutcome | undefined>;

/** A line refused for a while (429, 503) is tried again this many times before its refusal is its result. */
const MAX_RETRIES = 30;
const DEFAULT_RETRY_S = 1;

/**
 * Runs lines `concurrency` at a time, each to its result line (OpenAI's output format) handed to `record` as soon as
 * it finishes. Refusals that say "later" (429 rate limits, 503 busy) are waited out and retried, since a batch has
 * hours, not seconds. When `signal` aborts (cancel, expiry, shutdown), the requests in flight are abandoned unrecorded
 * and no new one starts.
 */
export async function runLines(opts: {
  lines: readonly BatchLine[];
  execute: LineExecutor;
  concurrency: number;
  signal: AbortSignal;
  record: (line: BatchLine, result: ResultLine, ok: boolean) => void;
}): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < opts.lines.length && !opts.signal.aborted) {
      const line = opts.lines[next++];
      const outcome = await attempt(line, opts.execute, opts.signal);
      if (!outcome) return;
      const ok = outcome.status === 200;
      opts.record(line, { id: newId('batch_req_'), custom_id: line.custom_id, response: { status_code: outcome.status, request_id: newId('req_'), body: outcome.body }, error: null }, ok);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency) }, worker));
}

async function attempt(line: BatchLine, execute: LineExecutor, signal: AbortSignal): Promise<LineOutcome | undefined> {
  for (let tries = 0; ; tries++) {
    const outcome = await execute(line, signal);
    if (!outcome) return undefined;
    // A request that finished is kept, even when the batch was stopped meanwhile.
    const later = outcome.status === 429 || outcome.status === 503;
    if (!later || tries >= MAX_RETRIES) return outcome;
    if (signal.aborted) return undefined;
    try {
      await sleep((outcome.retryAfterS ?? DEFAULT_RETRY_S) * 1000, undefined, { signal });
    } catch {
      return undefined;
    }
  }
}

/** Prompt and completion tokens of a result line's response (0 where it has no usage). */
export function lineUsage(result: ResultLine): { input: number; output: number } {
  const usage = (result.response?.body as { usage?: { prompt_tokens?: number; completion_tokens?: number } } | undefined)?.usage;
  return { input: usage?.prompt_tokens ?? 0, output: usage?.completion_tokens ?? 0 };
}
