import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI, { toFile } from 'openai';
import { afterAll, describe, expect, it } from 'vitest';
import { readResults } from '../../src/serve/batch/result-log.js';
import { tempDir } from '../helpers/cli.js';
import { exportedTinyModel } from '../helpers/models.js';
import { generations, outputOnce } from './batch-lines.js';
import { startServe, type ServeProcess } from './llmkit-serve.js';

const LINES = 24;
const request = (i: number) => ({ model: 'tiny', messages: [{ role: 'user' as const, content: `Tell me story number ${i}` }], max_tokens: 200, ignore_eos: true, temperature: 0 });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('two servers sharing one data folder', () => {
  const servers: ServeProcess[] = [];
  afterAll(async () => {
    for (const s of servers) {
      try {
        process.kill(s.pid, 'SIGCONT');
      } catch {
        // already gone
      }
      await s.stop().catch(() => {});
    }
  });

  it('run a batch once: when its server stalls past the lease (SIGSTOP) the other takes over, and the stalled one writes nothing after', async () => {
    const model = await exportedTinyModel();
    const dataDir = join(tempDir(), 'data');
    const args = ['--data-dir', dataDir, '--max-batch', '4', '--batch-lease-s', '2'];
    const [a, b] = [await startServe(model, 'tiny', args), await startServe(model, 'tiny', args)];
    servers.push(a, b);
    const client = (s: ServeProcess) => new OpenAI({ baseURL: s.apiUrl, apiKey: 'unused', maxRetries: 0 });
    // The file goes to one server, the batch to the other: they share what is on disk.
    const input = Array.from({ length: LINES }, (_, i) => JSON.stringify({ custom_id: `story-${i}`, method: 'POST', url: '/v1/chat/completions', body: request(i) })).join('\n');
    const file = await client(a).files.create({ file: await toFile(Buffer.from(input), 'stories.jsonl'), purpose: 'batch' });
    const { id } = await client(b).batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    for (let x = await client(a).batches.retrieve(id); (x.request_counts?.completed ?? 0) < 6; x = await client(a).batches.retrieve(id)) await sleep(20);

    // Freeze the server that holds the batch's lease: alive, but it renews nothing and writes nothing.
    const batches = join(dataDir, 'batches');
    const lease = readdirSync(batches).find((n) => n.startsWith(`${id}.lease.`))!;
    const holderPid = Number(JSON.parse(readFileSync(join(batches, lease), 'utf8')).holder.split('/')[1]);
    const [stalled, survivor] = holderPid === a.pid ? [a, b] : [b, a];
    expect(stalled.pid).toBe(holderPid);
    process.kill(stalled.pid, 'SIGSTOP');
    const { results: before } = readResults(join(batches, id, 'output.jsonl'));
    expect(before.length).toBeGreaterThanOrEqual(6);
    expect(before.length).toBeLessThan(LINES);

    let batch = await client(survivor).batches.retrieve(id);
    while (!['completed', 'failed', 'cancelled', 'expired'].includes(batch.status)) {
      await sleep(50);
      batch = await client(survivor).batches.retrieve(id);
    }
    expect(batch.status).toBe('completed');
    expect(batch.request_counts).toEqual({ total: LINES, completed: LINES, failed: 0 });
    // The survivor ran exactly the lines that were not on disk.
    expect(await generations(survivor.apiUrl)).toBe(LINES - before.length);

    // The stalled server wakes with lines in flight: it finds its lease gone and writes none of them.
    process.kill(stalled.pid, 'SIGCONT');
    await sleep(3000);
    await outputOnce(client(stalled), batch, LINES, before);
    expect((await client(stalled).batches.retrieve(id)).status).toBe('completed');
  });
});
