import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI, { toFile } from 'openai';
import { afterAll, describe, expect, it } from 'vitest';
import { readResults } from '../../src/serve/batch/result-log.js';
import { tempDir } from '../helpers/cli.js';
import { exportedTinyModel } from '../helpers/models.js';
import { generations, type OutputLine } from './batch-lines.js';
import { startServe, type ServeProcess } from './llmkit-serve.js';

/**
 * The server's wall clock is moved by libfaketime (Debian's libfaketime, which .ci/run installs): preloaded into the
 * real `llmkit serve`, it offsets what the process reads as the time of day by what a file says, re-read every second.
 * The monotonic clock (timers, step timing) is left alone, as a host's clock being set forward or a suspended host
 * waking up would leave it.
 */
const LIBFAKETIME = ['x86_64-linux-gnu', 'aarch64-linux-gnu'].map((arch) => `/usr/lib/${arch}/faketime/libfaketime.so.1`).find((p) => existsSync(p));
const LINES = 24;
const HOUR_S = 3600;
const request = (i: number) => ({ model: 'tiny', messages: [{ role: 'user' as const, content: `Tell me story number ${i}` }], max_tokens: 200, ignore_eos: true, temperature: 0 });
const final = ['completed', 'failed', 'cancelled', 'expired'];

describe('a batch expires on the real server when its completion window passes', () => {
  const servers: ServeProcess[] = [];
  afterAll(async () => {
    for (const s of servers) await s.stop().catch(() => {});
  });

  it('while the server runs, and across a restart: finished lines kept, the rest batch_expired, nothing run twice', async () => {
    if (!LIBFAKETIME) throw new Error('libfaketime is not installed: apt-get install libfaketime (.ci/run installs it)');
    const model = await exportedTinyModel();
    const dir = tempDir();
    const clock = join(dir, 'clock-offset');
    writeFileSync(clock, '+0');
    const env = { LD_PRELOAD: LIBFAKETIME, FAKETIME_TIMESTAMP_FILE: clock, FAKETIME_CACHE_DURATION: '1', DONT_FAKE_MONOTONIC: '1' };
    const args = ['--data-dir', join(dir, 'data'), '--max-batch', '2'];
    const first = await startServe(model, 'tiny', args, env);
    servers.push(first);
    let client = new OpenAI({ baseURL: first.apiUrl, apiKey: 'unused', maxRetries: 0 });
    const input = Array.from({ length: LINES }, (_, i) => JSON.stringify({ custom_id: `story-${i}`, method: 'POST', url: '/v1/chat/completions', body: request(i) })).join('\n');
    const file = await client.files.create({ file: await toFile(Buffer.from(input), 'stories.jsonl'), purpose: 'batch' });
    const create = () => client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const progress = async (id: string, lines: number) => {
      for (let b = await client.batches.retrieve(id); (b.request_counts?.completed ?? 0) < lines; b = await client.batches.retrieve(id)) await new Promise((r) => setTimeout(r, 20));
    };
    const settled = async (id: string) => {
      for (;;) {
        const b = await client.batches.retrieve(id);
        if (final.includes(b.status)) return b;
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    /** The batch's two files: every line once, the finished ones answers, each other one a batch_expired error line. */
    const expiredFiles = async (b: OpenAI.Batch) => {
      expect(b.status).toBe('expired');
      const read = async (id: string | undefined | null) =>
        id
          ? (await (await client.files.content(id)).text())
              .trim()
              .split('\n')
              .map((l) => JSON.parse(l))
          : [];
      const [output, errors] = [(await read(b.output_file_id)) as OutputLine[], await read(b.error_file_id)];
      expect(b.request_counts).toEqual({ total: LINES, completed: output.length, failed: errors.length });
      expect(output.every((l) => l.response.status_code === 200)).toBe(true);
      expect(errors.map((l) => l.error?.code)).toEqual(errors.map(() => 'batch_expired'));
      expect(new Set([...output, ...errors].map((l) => l.custom_id)).size).toBe(LINES);
      return output;
    };

    // 1. The window passes while the batch runs: the clock is set 25 h forward after 3 lines.
    const running = await create();
    await progress(running.id, 3);
    writeFileSync(clock, '+25h');
    const jumpedAt = performance.now();
    const expired = await settled(running.id);
    expect(expired.status).toBe('expired');
    // Noticed within seconds (the clock file is re-read every second, the window checked every second).
    expect(performance.now() - jumpedAt).toBeLessThan(8000);
    expect(expired.expired_at! - running.created_at).toBeGreaterThanOrEqual(25 * HOUR_S);
    expect(expired.expired_at).toBeGreaterThanOrEqual(expired.expires_at!);
    const kept = await expiredFiles(expired);
    expect(kept.length).toBeGreaterThanOrEqual(3);
    expect(kept.length).toBeLessThan(LINES);

    // 2. The window passes while the server is down: SIGKILL mid-batch, the clock moves on, a restart on the same folder.
    const resumed = await create();
    await progress(resumed.id, 3);
    await first.kill('SIGKILL');
    const { results: before } = readResults(join(dir, 'data', 'batches', resumed.id, 'output.jsonl'));
    writeFileSync(clock, '+50h');
    const second = await startServe(model, 'tiny', args, env);
    servers.push(second);
    client = new OpenAI({ baseURL: second.apiUrl, apiKey: 'unused', maxRetries: 0 });
    const output = await expiredFiles(await settled(resumed.id));
    // What the killed server had written is the output, the same records; the restarted server ran no line.
    expect(output.map((l) => l.id).sort()).toEqual(before.map((l) => l.id).sort());
    expect(await generations(second.apiUrl)).toBe(0);
  });
});
