/** Reads a fetch response of server-sent events (`data: …` lines, `[DONE]` at the end) as parsed JSON objects. */
export async function* readEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<Record<string, unknown>> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let pending = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    pending += decoder.decode(value, { stream: true });
    let end = pending.indexOf('\n\n');
    while (end >= 0) {
      const event = pending.slice(0, end);
      pending = pending.slice(end + 2);
      const data = event
        .split('\n')
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).trim())
        .join('\n');
      if (data === '[DONE]') return;
      if (data) yield JSON.parse(data) as Record<string, unknown>;
      end = pending.indexOf('\n\n');
    }
  }
}
