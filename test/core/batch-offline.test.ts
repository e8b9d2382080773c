import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../helpers/cli.js';
import { exportedTinyModel } from '../helpers/models.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const LINES = 48;
type Result = { id: string; custom_id: string; response: { status_code: number; body: { choices: { text?: string; message?: { content: string } }[] } } };

function inputLines(): string {
  return Array.from({ length: LINES }, (_, i) => {
    const common = { model: 'tiny', max_tokens: 40, ignore_eos: true, temperature: 0 };
    const chat = i % 2 === 1;
    const body = chat ? { ...common, messages: [{ role: 'user', content: `Question ${i}` }] } : { ...common, prompt: `Once upon a time ${i}` };
    return JSON.stringify({ custom_id: `r${i}`, method: 'POST', url: chat ? '/v1/chat/completions' : '/v1/completions', body });
  }).join('\n');
}

function results(path: string): Result[] {
  if (!existsSync(path)) return [];
  const text = readFileSync(path, 'utf8');
  return text
    .slice(0, text.lastIndexOf('\n') + 1)
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Result);
}

const answer = (r: Result) => r.response.body.choices[0].text ?? r.response.body.choices[0].message!.content;
const answers = (rs: Result[]) => new Map(rs.map((r) => [r.custom_id, answer(r)]));

async function untilLines(path: string, n: number): Promise<void> {
  while (results(path).length < n) await new Promise((r) => setTimeout(r, 20));
}

describe('llmkit batch (offline)', () => {
  const dir = tempDir();
  const input = join(dir, 'in.jsonl');
  let model: string;
  let reference: Map<string, string>;
  let server: TestServer | undefined;

  beforeAll(async () => {
    model = `tiny=${await exportedTinyModel()}`;
    writeFileSync(input, inputLines());
    const r = await runCli(['--json', 'batch', model, '-i', input, '-o', join(dir, 'reference.jsonl'), '--device', 'cpu']);
    expect(r.exitCode, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary).toMatchObject({ total: LINES, resumed: 0, ran: LINES, succeeded: LINES, failed: 0, completionTokens: LINES * 40, interrupted: false });
    reference = answers(results(join(dir, 'reference.jsonl')));
    expect(reference.size).toBe(LINES);
  });
  afterAll(async () => {
    await server?.drain();
  });

  it('goes on after Ctrl-C and after a crash, writing every line once with the answers of an uninterrupted run', async () => {
    const output = join(dir, 'out.jsonl');
    const args = ['batch', model, '-i', input, '-o', output, '--device', 'cpu', '--max-batch', '4'];
    const first = runCli(args);
    await untilLines(output, 8);
    first.kill('SIGINT');
    const stopped = await first;
    expect(stopped.exitCode).toBe(130);
    expect(stopped.stderr).toMatch(/every finished line is in .*out\.jsonl; run the same command to go on/);
    expect(stopped.stdout).toMatch(/stopped before the end: run the same command to go on/);
    const afterCtrlC = results(output).length;
    expect(afterCtrlC).toBeLessThan(LINES);

    const second = runCli(args);
    await untilLines(output, afterCtrlC + 8);
    second.kill('SIGKILL');
    await second;
    // As if the process had died inside a write: a torn last line, dropped on the next start.
    appendFileSync(output, '{"id":"batch_req_torn","custom_id":"r');
    const beforeLast = results(output).length;
    expect(beforeLast).toBeLessThan(LINES);

    const last = await runCli(['--json', ...args]);
    expect(last.exitCode, last.stderr).toBe(0);
    expect(JSON.parse(last.stdout)).toMatchObject({ total: LINES, resumed: beforeLast, ran: LINES - beforeLast, failed: 0, interrupted: false });
    const all = results(output);
    expect(all).toHaveLength(LINES);
    expect(readFileSync(output, 'utf8').endsWith('\n')).toBe(true);
    expect(new Set(all.map((r) => r.custom_id)).size).toBe(LINES);
    expect(answers(all)).toEqual(reference);
  });

  it('runs the same file against a server with --url, to the same answers', async () => {
    server = await startTestServer();
    const output = join(dir, 'remote.jsonl');
    const r = await runCli(['--json', 'batch', '--url', `${server.url}/v1`, '-i', input, '-o', output, '--concurrency', '8']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ target: server.url, succeeded: LINES, failed: 0 });
    expect(answers(results(output))).toEqual(reference);
  });

  it('refuses a malformed file in one line before running anything', async () => {
    const bad = join(dir, 'bad.jsonl');
    const lines = inputLines().split('\n');
    writeFileSync(bad, [lines[0], lines[1], lines[0]].join('\n'));
    const r = await runCli(['batch', model, '-i', bad, '-o', join(dir, 'never.jsonl'), '--device', 'cpu']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^error: .*bad\.jsonl line 3: The custom_id 'r0' is a duplicate .*\[duplicate_custom_id\]; fix the input file; nothing was run$/),
    ]);
    expect(existsSync(join(dir, 'never.jsonl'))).toBe(false);
    const unknown = await runCli(['batch', `other=${model.slice(5)}`, '-i', input, '-o', join(dir, 'never.jsonl'), '--device', 'cpu']);
    expect(unknown.stderr).toMatch(/line 1: .*'tiny'.*\[model_not_found\] \(and 47 more problems\); name the model as the lines do: llmkit batch NAME=/);
  });
});
