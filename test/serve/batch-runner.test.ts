import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BatchRunner } from '../../src/serve/batch/batch-runner.js';
import { BatchStore } from '../../src/serve/batch/batch-store.js';
import { FileStore } from '../../src/serve/batch/file-store.js';
import type { LineExecutor } from '../../src/serve/batch/line-pool.js';
import type { BatchObject, ResultLine } from '../../src/serve/batch/objects.js';
import { readResults } from '../../src/serve/batch/result-log.js';
import { tempDir } from '../helpers/cli.js';

const input = (n: number) =>
  Array.from({ length: n }, (_, i) => JSON.stringify({ custom_id: `c${i}`, method: 'POST', url: '/v1/completions', body: { model: 'm', prompt: `p${i}`, max_tokens: i === 3 ? 99 : 4 } })).join('\n');

/** Answers after `ms` (a 400 for max_tokens 99), or stops unanswered when the signal aborts; counts what ran. */
function fakeEngine(ms: number) {
  const ran: string[] = [];
  const execute: LineExecutor = (line, signal) =>
    new Promise((resolve) => {
      const stop = () => (clearTimeout(timer), resolve(undefined));
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', stop);
        ran.push(line.custom_id);
        if (line.body.max_tokens === 99) resolve({ status: 400, body: { error: { message: 'too long', type: 'invalid_request_error', param: 'max_tokens', code: 'context_length_exceeded' } } });
        else resolve({ status: 200, body: { object: 'text_completion', usage: { prompt_tokens: 2, completion_tokens: 4 } } });
      }, ms);
      signal.addEventListener('abort', stop, { once: true });
    });
  return { ran, execute };
}

function open(dir: string, execute: LineExecutor, now?: () => number) {
  const store = new BatchStore(join(dir, 'batches'));
  const files = new FileStore(join(dir, 'files'));
  const runner = new BatchRunner({ store, files, executorFor: () => execute, modelProblem: (m) => (m === 'm' ? undefined : `no ${m}`), concurrency: 3, now });
  return { store, files, runner };
}

async function until(store: BatchStore, id: string, done: (b: BatchObject) => boolean): Promise<BatchObject> {
  for (;;) {
    const { batch } = store.get(id);
    if (done(batch)) return batch;
    await new Promise((r) => setTimeout(r, 5));
  }
}
const final = (b: BatchObject) => ['completed', 'failed', 'expired', 'cancelled'].includes(b.status);
const lines = (files: FileStore, id: string | null): ResultLine[] => (id ? readResults(files.dataPath(id)).results : []);

describe('the batch runner', () => {
  it('runs lines to the output and error files, and counts requests and tokens', async () => {
    const engine = fakeEngine(2);
    const { store, files, runner } = open(tempDir(), engine.execute);
    const file = await files.create('k', 'in.jsonl', 'batch', Buffer.from(input(10)));
    const created = await runner.create('k', { input_file_id: file.id, endpoint: '/v1/completions', completion_window: '24h' });
    const done = await until(store, created.id, final);
    expect(done).toMatchObject({ status: 'completed', request_counts: { total: 10, completed: 9, failed: 1 }, usage: { input_tokens: 18, output_tokens: 36, total_tokens: 54 } });
    expect(lines(files, done.output_file_id)).toHaveLength(9);
    expect(lines(files, done.error_file_id).map((l) => [l.custom_id, l.response?.status_code])).toEqual([['c3', 400]]);
    expect(files.get('k', done.output_file_id!)).toMatchObject({ purpose: 'batch_output', filename: `${done.id}_batch_output.jsonl` });
    await runner.close();
  });

  it('after a stop mid-batch, a new runner on the same folder runs only the lines not on disk', async () => {
    const dir = tempDir();
    const first = fakeEngine(15);
    const a = open(dir, first.execute);
    const file = await a.files.create('k', 'in.jsonl', 'batch', Buffer.from(input(20)));
    const { id } = await a.runner.create('k', { input_file_id: file.id, endpoint: '/v1/completions', completion_window: '24h' });
    await until(a.store, id, (b) => b.request_counts.completed + b.request_counts.failed >= 5);
    await a.runner.close();
    const second = fakeEngine(1);
    const b = open(dir, second.execute);
    const done = await until(b.store, id, final);
    expect(done.request_counts).toEqual({ total: 20, completed: 19, failed: 1 });
    expect([...first.ran, ...second.ran].sort()).toEqual(Array.from({ length: 20 }, (_, i) => `c${i}`).sort());
    expect(new Set([...lines(b.files, done.output_file_id), ...lines(b.files, done.error_file_id)].map((l) => l.custom_id)).size).toBe(20);
    await b.runner.close();
  });

  it('expires a batch past its window: unrun lines get batch_expired error lines', async () => {
    let now = 1_000_000;
    const { store, files, runner } = open(tempDir(), fakeEngine(1).execute, () => now);
    const file = await files.create('k', 'in.jsonl', 'batch', Buffer.from(input(5)));
    // The clock jumps past the 24 h window before the runner starts the lines.
    const created = await runner.create('k', { input_file_id: file.id, endpoint: '/v1/completions', completion_window: '24h' });
    now += 25 * 3600;
    const done = await until(store, created.id, final);
    expect(done.status).toBe('expired');
    expect(done.expired_at).toBe(now);
    const errors = lines(files, done.error_file_id);
    expect(errors.length + done.request_counts.completed).toBe(5);
    expect(errors.filter((l) => l.error?.code === 'batch_expired').length).toBeGreaterThanOrEqual(4);
    await runner.close();
  });

  it('fails a batch with a bad line before running any', async () => {
    const engine = fakeEngine(1);
    const { store, files, runner } = open(tempDir(), engine.execute);
    const text = `${input(2)}\n{"custom_id": "x", "method": "POST", "url": "/v1/completions", "body": {"model": "gpt-4o"}}`;
    const file = await files.create('k', 'in.jsonl', 'batch', Buffer.from(text));
    const created = await runner.create('k', { input_file_id: file.id, endpoint: '/v1/completions', completion_window: '24h' });
    const done = await until(store, created.id, final);
    expect(done.status).toBe('failed');
    expect(done.errors?.data).toEqual([{ code: 'model_not_found', message: 'no gpt-4o', param: 'body.model', line: 3 }]);
    expect(engine.ran).toEqual([]);
    await runner.close();
  });
});
