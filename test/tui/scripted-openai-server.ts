import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One answer to POST /v1/chat/completions: an OpenAI-shaped error, or a streamed reply. */
export type ScriptedAnswer =
  | { status: number; error: { message: string; type: string; code: string | null }; headers?: Record<string, string> }
  | { stream: string[]; usage?: { prompt_tokens: number; completion_tokens: number } };

/**
 * A small HTTP server that answers like an OpenAI-compatible API from a script, for the failure
 * paths a real server cannot be asked to produce on demand (401, 429 with Retry-After, a context
 * error). Success paths are tested against the real `llmkit serve`.
 */
export async function startScriptedServer(script: ScriptedAnswer[]): Promise<{ url: string; requests: unknown[]; close: () => Promise<void> }> {
  const requests: unknown[] = [];
  const server: Server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/v1/models') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ object: 'list', data: [{ id: 'scripted-model', object: 'model', created: 0, owned_by: 'test', context_length: 64 }] }));
      return;
    }
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      requests.push(JSON.parse(body));
      const answer = script.shift() ?? { status: 500, error: { message: 'script exhausted', type: 'server_error', code: null } };
      if ('error' in answer) {
        res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
        res.end(JSON.stringify({ error: { ...answer.error, param: null } }));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const chunk = (choices: unknown[], extra = {}) => `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 0, model: 'scripted-model', choices, ...extra })}\n\n`;
      for (const text of answer.stream) res.write(chunk([{ index: 0, delta: { content: text }, finish_reason: null }]));
      res.write(chunk([{ index: 0, delta: {}, finish_reason: 'stop' }]));
      if (answer.usage) res.write(chunk([], { usage: { ...answer.usage, total_tokens: answer.usage.prompt_tokens + answer.usage.completion_tokens } }));
      res.end('data: [DONE]\n\n');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/v1`, requests, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** A URL where nothing listens: a port that was just free. */
export async function unusedUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}/v1`;
}
