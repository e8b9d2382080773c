import type { ChatSettings } from './backend.js';
import type { ChatSession, TurnStats } from './session.js';

/** Short forms shared by the status line, /stats and the plain mode, so they all read the same. */
export function formatRate(tokensPerS: number | null): string {
  return tokensPerS === null ? '- tok/s' : `${tokensPerS.toFixed(1)} tok/s`;
}

export function formatMs(ms: number | null): string {
  if (ms === null) return '-';
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

export function formatContext(used: number | null, window: number | null): string {
  return `ctx ${used ?? '-'}${window === null ? '' : `/${window}`}`;
}

export function formatSampling(settings: ChatSettings): string {
  return `temp ${settings.temperature} top_p ${settings.topP}`;
}

/** One reply: `42 tokens · 35.1 tok/s · ttft 120 ms · ctx 300/512 · stop`. */
export function describeTurn(stats: TurnStats, contextWindow: number | null): string {
  return [
    `${stats.completionTokens} ${stats.completionTokens === 1 ? 'token' : 'tokens'}`,
    formatRate(stats.tokensPerS),
    `ttft ${formatMs(stats.timeToFirstTokenMs)}`,
    formatContext(stats.contextUsed, contextWindow),
    stats.finishReason,
  ].join(' · ');
}

export function describeTotals(session: ChatSession): string {
  const { replies, promptTokens, completionTokens, decodeTokens, decodeMs } = session.totals;
  const rate = decodeMs > 0 ? (decodeTokens * 1000) / decodeMs : null;
  return `${replies} ${replies === 1 ? 'reply' : 'replies'} · ${promptTokens} prompt + ${completionTokens} reply tokens · average ${formatRate(rate)} · ${session.history.length} messages kept`;
}
