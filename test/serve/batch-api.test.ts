import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/cli.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

type Line = { custom_id: string; response: { status_code: number; body: Record<string, unknown> } | null; error: { code: string } | null };

const chatLine = (id: string, content: string, extra: Record<string, unknown> = {}) => ({
  custom_id: id,
  method: 'POST',
  url: '/v1/chat/completions',
  body: { model: 'tiny', messages: [{ role: 'user', content }], max_tokens: 12, temperature: 0, ...extra },
});
const jsonl = (lines: unknown[]) => lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n';

async function untilDone(client: OpenAI, id: string, seen: string[] = []): Promise<OpenAI.Batch> {
  for (;;) {
    const batch = await client.batches.retrieve(id);
    if (seen.at(-1) !== batch.status) seen.push(batch.status);
    if (['completed', 'failed', 'expired', 'cancelled'].includes(batch.status)) return batch;
    await new Promise((r) => setTimeout(r, 50));
  }
}

const parseLines = (text: string) =>
  text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Line);

describe('the Files and Batches API with the openai npm SDK', () => {
  let server: TestServer;
  let client: OpenAI;

  beforeAll(async () => {
    server = await startTestServer({ dataDir: join(tempDir(), 'data'), maxBatch: 4, batchFileMb: 1 });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => {
    await server?.drain();
  });

  it('runs a batch from upload to output file, with the answers of interactive requests and a failed line in the error file', async () => {
    const questions = Array.from({ length: 10 }, (_, i) => `Question ${i}: what is ${i} + ${i}?`);
    const lines = [...questions.map((q, i) => chatLine(`q-${i}`, q)), chatLine('too-long', 'x', { max_tokens: 100_000 })];
    const file = await client.files.create({ file: await toFile(Buffer.from(jsonl(lines)), 'questions.jsonl'), purpose: 'batch' });
    expect(file).toMatchObject({ object: 'file', purpose: 'batch', filename: 'questions.jsonl', bytes: Buffer.byteLength(jsonl(lines)), status: 'processed' });

    const created = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { run: 'sdk-test' } });
    expect(created).toMatchObject({ object: 'batch', status: 'validating', input_file_id: file.id, metadata: { run: 'sdk-test' }, output_file_id: null });
    expect(created.expires_at! - created.created_at).toBe(24 * 3600);
    const seen = ['validating'];
    const done = await untilDone(client, created.id, seen);
    expect(done.status).toBe('completed');
    expect(seen).toContain('completed');
    expect(seen.every((s) => ['validating', 'in_progress', 'finalizing', 'completed'].includes(s))).toBe(true);
    expect(done.request_counts).toEqual({ total: 11, completed: 10, failed: 1 });
    expect(done.in_progress_at).not.toBeNull();
    expect(done.completed_at).toBeGreaterThanOrEqual(done.in_progress_at!);

    const output = parseLines(await (await client.files.content(done.output_file_id!)).text());
    expect(output.map((l) => l.custom_id).sort()).toEqual(questions.map((_, i) => `q-${i}`).sort());
    // Each line is what the same request gets interactively (greedy): one request path.
    for (const line of output.slice(0, 4)) {
      const i = Number(line.custom_id.slice(2));
      const interactive = await client.chat.completions.create(chatLine(line.custom_id, questions[i]).body as OpenAI.ChatCompletionCreateParamsNonStreaming);
      expect(line.response!.status_code).toBe(200);
      const body = line.response!.body as unknown as OpenAI.ChatCompletion;
      expect(body.choices[0].message.content).toBe(interactive.choices[0].message.content);
      expect(body.usage).toEqual(interactive.usage);
    }
    const usage = output.reduce((n, l) => n + ((l.response!.body as unknown as OpenAI.ChatCompletion).usage?.total_tokens ?? 0), 0);
    expect((done as unknown as { usage: { total_tokens: number } }).usage.total_tokens).toBe(usage);

    const errors = parseLines(await (await client.files.content(done.error_file_id!)).text());
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ custom_id: 'too-long', response: { status_code: 400, body: { error: { code: 'context_length_exceeded' } } }, error: null });

    const listed = await client.batches.list({ limit: 10 });
    expect(listed.data.map((b) => b.id)).toContain(done.id);
    const files = await client.files.list({ purpose: 'batch_output' });
    expect(files.data.map((f) => f.id)).toContain(done.output_file_id);
    await client.files.delete(done.output_file_id!);
    await expect(client.files.retrieve(done.output_file_id!)).rejects.toMatchObject({ status: 404, code: 'file_not_found' });
  });

  it('fails a malformed input file with one OpenAI error per bad line', async () => {
    const lines = [
      chatLine('a', 'fine'),
      '{"custom_id": "b", "method": "POST", ',
      chatLine('a', 'the same id again'),
      { ...chatLine('c', 'x'), url: '/v1/completions' },
      { ...chatLine('d', 'x'), body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] } },
      { ...chatLine('e', 'x'), method: 'GET' },
    ];
    const file = await client.files.create({ file: await toFile(Buffer.from(jsonl(lines)), 'bad.jsonl'), purpose: 'batch' });
    const created = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const done = await untilDone(client, created.id);
    expect(done.status).toBe('failed');
    expect(done.failed_at).not.toBeNull();
    expect(done.errors?.data?.map((e) => [e.line, e.code, e.param])).toEqual([
      [2, 'invalid_json_line', null],
      [3, 'duplicate_custom_id', 'custom_id'],
      [4, 'invalid_url', 'url'],
      [5, 'model_not_found', 'body.model'],
      [6, 'invalid_method', 'method'],
    ]);
    expect(done.errors?.data?.[3].message).toMatch(/gpt-4o-mini/);
  });

  it('refuses bad uploads and batch requests with OpenAI-shaped errors', async () => {
    const big = Buffer.alloc(1.5 * 2 ** 20, 'a');
    await expect(client.files.create({ file: await toFile(big, 'big.jsonl'), purpose: 'batch' })).rejects.toMatchObject({ status: 413, code: 'file_too_large', param: 'file' });
    await expect(client.files.create({ file: await toFile(Buffer.from('{}'), 'x.jsonl'), purpose: 'fine-tune' })).rejects.toMatchObject({ status: 400, param: 'purpose' });
    const file = await client.files.create({ file: await toFile(Buffer.from(jsonl([chatLine('a', 'x')])), 'ok.jsonl'), purpose: 'batch' });
    await expect(client.batches.create({ input_file_id: file.id, endpoint: '/v1/embeddings', completion_window: '24h' })).rejects.toMatchObject({ status: 400, param: 'endpoint' });
    await expect(client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '1h' as '24h' })).rejects.toMatchObject({
      status: 400,
      param: 'completion_window',
    });
    await expect(client.batches.create({ input_file_id: 'file-nope', endpoint: '/v1/chat/completions', completion_window: '24h' })).rejects.toMatchObject({ status: 404, code: 'file_not_found' });
    await expect(client.batches.retrieve('batch_nope')).rejects.toMatchObject({ status: 404, code: 'batch_not_found' });
  });

  it('cancels a running batch promptly and keeps the lines that finished', async () => {
    const lines = Array.from({ length: 40 }, (_, i) => chatLine(`long-${i}`, `Story ${i}`, { max_tokens: 150, ignore_eos: true }));
    const file = await client.files.create({ file: await toFile(Buffer.from(jsonl(lines)), 'long.jsonl'), purpose: 'batch' });
    const created = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    let batch = created;
    while (!batch.request_counts?.completed) {
      await new Promise((r) => setTimeout(r, 50));
      batch = await client.batches.retrieve(created.id);
    }
    const asked = performance.now();
    const cancelling = await client.batches.cancel(created.id);
    expect(['cancelling', 'cancelled']).toContain(cancelling.status);
    const done = await untilDone(client, created.id);
    const tookMs = performance.now() - asked;
    expect(done.status).toBe('cancelled');
    expect(done.cancelled_at).not.toBeNull();
    // Prompt: the lines in flight leave the engine at its next step instead of running their 150 tokens.
    expect(tookMs).toBeLessThan(2000);
    const completed = done.request_counts!.completed;
    expect(completed).toBeGreaterThanOrEqual(1);
    expect(completed).toBeLessThan(40);
    const output = parseLines(await (await client.files.content(done.output_file_id!)).text());
    expect(output).toHaveLength(completed);
    for (const line of output) expect((line.response!.body as unknown as OpenAI.ChatCompletion).usage?.completion_tokens).toBe(150);
    await expect(client.batches.cancel(created.id)).resolves.toMatchObject({ status: 'cancelled' });
  });
});

describe('batch jobs under a quota file', () => {
  let server: TestServer;
  const dir = tempDir();

  beforeAll(async () => {
    const quotaFile = join(dir, 'quotas.yaml');
    writeFileSync(
      quotaFile,
      [
        'accounts:',
        '  acme:',
        '    keys:',
        '      - { name: web, key: sk-web-12345678, deny: [batch] }',
        '      - { name: jobs, key: sk-jobs-12345678 }',
        'features:',
        '  batch: { tpm: 1000000 }',
      ].join('\n'),
    );
    server = await startTestServer({ dataDir: join(dir, 'data'), quotaFile });
  });
  afterAll(async () => {
    await server?.drain();
  });

  it('refuses a batch to a key denied the batch feature, and counts batch tokens against the key that ran it', async () => {
    const web = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'sk-web-12345678', maxRetries: 0 });
    const jobs = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'sk-jobs-12345678', maxRetries: 0 });
    const input = await toFile(Buffer.from(jsonl([chatLine('a', 'one'), chatLine('b', 'two')])), 'in.jsonl');
    const denied = await web.files.create({ file: input, purpose: 'batch' });
    await expect(web.batches.create({ input_file_id: denied.id, endpoint: '/v1/chat/completions', completion_window: '24h' })).rejects.toMatchObject({
      status: 403,
      code: 'feature_not_allowed',
    });
    // Files and batches belong to the key that made them.
    await expect(jobs.files.retrieve(denied.id)).rejects.toMatchObject({ status: 404 });
    const file = await jobs.files.create({ file: await toFile(Buffer.from(jsonl([chatLine('a', 'one'), chatLine('b', 'two')])), 'in.jsonl'), purpose: 'batch' });
    const created = await jobs.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const done = await untilDone(jobs, created.id);
    expect(done.status).toBe('completed');
    const total = (done as unknown as { usage: { total_tokens: number } }).usage.total_tokens;
    expect(total).toBeGreaterThan(0);
    const usage = (await (await fetch(`${server.url}/v1/usage`, { headers: { Authorization: 'Bearer sk-jobs-12345678' } })).json()) as {
      keys: { name: string; tpm: { used: number } }[];
      accounts: { name: string; tpm: { used: number } }[];
    };
    expect(usage.keys[0]).toMatchObject({ name: 'jobs', tpm: { used: total } });
    expect(usage.accounts[0]).toMatchObject({ name: 'acme', tpm: { used: total } });
    await expect(web.batches.retrieve(done.id)).rejects.toMatchObject({ status: 404 });
  });
});
