/** One streamed request as a client saw it. */
export interface StreamTiming {
  /** From sending the request to the first piece of content; NaN when no token had text (ids past a small tokenizer's vocabulary). */
  ttftMs: number;
  /** Between consecutive content chunks (one chunk per token in practice). */
  gapsMs: number[];
  completionTokens: number;
}

/**
 * Sends one streaming chat request and times it from the client's side: time to first content and
 * the gaps between content chunks; token counts come from the usage chunk.
 */
export async function timedChatStream(url: string, body: object, apiKey?: string): Promise<StreamTiming> {
  const sent = performance.now();
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(apiKey ? { Authorization: `Bearer ${apiKey}` } : {}) },
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
  });
  if (!res.ok || !res.body) throw new Error(`the server answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
  let first = -1;
  let last = 0;
  const gapsMs: number[] = [];
  let completionTokens = 0;
  let buffer = '';
  const decoder = new TextDecoder();
  for await (const bytes of res.body) {
    buffer += decoder.decode(bytes as Uint8Array, { stream: true });
    let cut: number;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, cut).replace(/^data: /, '');
      buffer = buffer.slice(cut + 2);
      if (event === '[DONE]') continue;
      const chunk = JSON.parse(event) as { choices: { delta?: { content?: string } }[]; usage?: { completion_tokens: number } | null; error?: { message: string } };
      if (chunk.error) throw new Error(chunk.error.message);
      if (chunk.usage) completionTokens = chunk.usage.completion_tokens;
      if (!chunk.choices[0]?.delta?.content) continue;
      const now = performance.now();
      if (first < 0) first = now;
      else gapsMs.push(now - last);
      last = now;
    }
  }
  return { ttftMs: first < 0 ? NaN : first - sent, gapsMs, completionTokens };
}

/** Nearest-rank percentile (p in 0..100); NaN for no values. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
