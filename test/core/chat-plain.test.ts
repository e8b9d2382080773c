import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { exportedTinyModel } from '../helpers/models.js';
import { startServe, type ServeProcess } from '../e2e/llmkit-serve.js';
import { unusedUrl } from '../tui/scripted-openai-server.js';

/** Runs `llmkit chat` with `input` piped to stdin, as `echo hi | llmkit chat …` in a script would. */
async function chatThroughPipe(args: string[], input: string, globalFlags: string[] = []) {
  const r = await runCli([...globalFlags, 'chat', ...args], { input, stdin: undefined });
  return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** The plain mode: stdin and stdout are pipes, one message per line, replies on stdout. */
describe('llmkit chat through a pipe', () => {
  let model: string;
  let serve: ServeProcess;
  beforeAll(async () => {
    model = await exportedTinyModel();
    serve = await startServe(model);
  });
  afterAll(() => serve?.stop());

  it('answers each line against llmkit serve: JSON lines with stats, or plain replies with the same text', async () => {
    const args = ['--url', serve.apiUrl, '--temperature', '0', '--max-tokens', '12'];
    const structured = await chatThroughPipe(args, 'What is 2+2?\n/temp 0\nAnd 3+3?\n', ['--json']);
    expect(structured.exitCode, structured.stderr).toBe(0);
    const replies = structured.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(replies).toHaveLength(2);
    for (const r of replies) {
      expect(r.reply.length).toBeGreaterThan(0);
      expect(r.stats).toMatchObject({ finishReason: expect.stringMatching(/^(stop|length)$/), completionTokens: expect.any(Number), promptTokens: expect.any(Number) });
      expect(r.stats.timeToFirstTokenMs).toBeGreaterThan(0);
    }
    // The second turn carries the first: its prompt is longer by at least the first question and reply.
    expect(replies[1].stats.promptTokens).toBeGreaterThan(replies[0].stats.promptTokens + replies[0].stats.completionTokens);
    expect(structured.stderr).toContain('temperature 0');

    const plain = await chatThroughPipe(args, 'What is 2+2?\n/temp 0\nAnd 3+3?\n');
    expect(plain.exitCode, plain.stderr).toBe(0);
    // Each reply ends with a newline (execa drops the last one).
    expect(plain.stdout).toBe(`${replies[0].reply}\n${replies[1].reply}`);
    expect(plain.stderr).toMatch(/\(\d+ tokens · \d+\.\d tok\/s · ttft \d+ ms · ctx \d+\/512 · (stop|length)\)/);
  });

  it('gives the same greedy reply in-process as the server does', async () => {
    const local = await chatThroughPipe([model, '--device', 'cpu', '--temperature', '0', '--max-tokens', '12'], 'hi\n');
    const remote = await chatThroughPipe(['--url', serve.apiUrl, '--temperature', '0', '--max-tokens', '12'], 'hi\n');
    expect(local.exitCode, local.stderr).toBe(0);
    expect(local.stdout.length).toBeGreaterThan(1);
    expect(local.stdout).toBe(remote.stdout);
  });

  it('gives the same greedy reply with --draft ngram, and refuses --draft with --url', async () => {
    const args = [model, '--device', 'cpu', '--temperature', '0', '--max-tokens', '24'];
    const input = 'Say it again: the red foxes ran over the old bridges, the red foxes\n';
    const plain = await chatThroughPipe(args, input);
    const drafted = await chatThroughPipe([...args, '--draft', 'ngram'], input);
    expect(drafted.exitCode, drafted.stderr).toBe(0);
    expect(drafted.stdout).toBe(plain.stdout);
    const refused = await chatThroughPipe(['--url', serve.apiUrl, '--draft', 'ngram'], 'hi\n');
    expect([refused.exitCode, refused.stderr.trim()]).toEqual([2, 'error: --draft goes with a model folder: a server drafts with its own `serve --draft`']);
  });

  it('joins lines that end in a backslash into one message', async () => {
    const r = await chatThroughPipe(['--url', serve.apiUrl, '--temperature', '0', '--max-tokens', '4'], 'first line\\\nsecond line\n', ['--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
  });

  it('reports a server it cannot reach on stderr and exits 1', async () => {
    const r = await chatThroughPipe(['--url', await unusedUrl(), '--model', 'tiny'], 'hi\n');
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^error: cannot reach http:\/\/127\.0\.0\.1:\d+\/v1 \(ECONNREFUSED\); start the server/m);
  });

  it('refuses contradictory flags with one line and exit code 2', async () => {
    const both = await chatThroughPipe([model, '--url', serve.apiUrl], '');
    expect(both.exitCode).toBe(2);
    expect(both.stderr.trim()).toBe(`error: pass a model folder or --url, not both (got ${model} and --url ${serve.apiUrl})`);
    const neither = await chatThroughPipe([], '');
    expect(neither.stderr.trim()).toBe('error: pass a model folder (llmkit chat ./models/x-int8) or --url http://HOST:PORT/v1');
    const badUrl = await chatThroughPipe(['--url', 'localhost:8080'], '');
    expect(badUrl.stderr.trim()).toBe('error: --url must be an http(s) URL like http://localhost:8080/v1 (got localhost:8080)');
  });
});
