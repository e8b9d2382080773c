import { join } from 'node:path';
import OpenAI, { toFile } from 'openai';
import { afterAll, describe, expect, it } from 'vitest';
import { readResults } from '../../src/serve/batch/result-log.js';
import { tempDir } from '../helpers/cli.js';
import { exportedTinyModel } from '../helpers/models.js';
import { generations, outputOnce } from './batch-lines.js';
import { startServe, type ServeProcess } from './llmkit-serve.js';

const LINES = 24;
const request = (i: number) => ({ model: 'tiny', messages: [{ role: 'user' as const, content: `Tell me story number ${i}` }], max_tokens: 40, ignore_eos: true, temperature: 0 });

describe('a batch survives SIGKILL of the server', () => {
  const servers: ServeProcess[] = [];
  afterAll(async () => {
    for (const s of servers) await s.stop().catch(() => {});
  });

  it('resumes after a restart on the same data folder with every line exactly once', async () => {
    const model = await exportedTinyModel();
    const dataDir = join(tempDir(), 'data');
    const args = ['--data-dir', dataDir, '--max-batch', '4'];
    const first = await startServe(model, 'tiny', args);
    servers.push(first);
    let client = new OpenAI({ baseURL: first.apiUrl, apiKey: 'unused', maxRetries: 0 });
    const input = Array.from({ length: LINES }, (_, i) => JSON.stringify({ custom_id: `story-${i}`, method: 'POST', url: '/v1/chat/completions', body: request(i) })).join('\n');
    const file = await client.files.create({ file: await toFile(Buffer.from(input), 'stories.jsonl'), purpose: 'batch' });
    const { id } = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    for (let b = await client.batches.retrieve(id); (b.request_counts?.completed ?? 0) < 6; b = await client.batches.retrieve(id)) await new Promise((r) => setTimeout(r, 20));
    await first.kill('SIGKILL');

    // What the killed server had written: whole lines only (a torn last line is dropped on restart).
    const { results: before } = readResults(join(dataDir, 'batches', id, 'output.jsonl'));
    expect(before.length).toBeGreaterThanOrEqual(6);
    expect(before.length).toBeLessThan(LINES);

    const second = await startServe(model, 'tiny', args);
    servers.push(second);
    client = new OpenAI({ baseURL: second.apiUrl, apiKey: 'unused', maxRetries: 0 });
    let batch = await client.batches.retrieve(id);
    while (!['completed', 'failed', 'cancelled', 'expired'].includes(batch.status)) {
      await new Promise((r) => setTimeout(r, 50));
      batch = await client.batches.retrieve(id);
    }
    expect(batch.status).toBe('completed');
    expect(batch.request_counts).toEqual({ total: LINES, completed: LINES, failed: 0 });
    // The restarted server ran exactly the lines that were not on disk: none twice.
    expect(await generations(second.apiUrl)).toBe(LINES - before.length);

    const byCustomId = await outputOnce(client, batch, LINES, before);
    // And every answer is the one an interactive request gets (greedy), whichever server ran it.
    for (const i of [0, 1, LINES - 2, LINES - 1]) {
      const interactive = await client.chat.completions.create(request(i) as OpenAI.ChatCompletionCreateParamsNonStreaming);
      expect(byCustomId.get(`story-${i}`)!.response.body.choices[0].message.content).toBe(interactive.choices[0].message.content);
    }
  });
});
