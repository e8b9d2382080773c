import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BatchLease } from '../../src/serve/batch/batch-lease.js';
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

function open(dir: string, execute: LineExecutor, now?: () => number, leaseMs?: number) {
  const store = new BatchStore(join(dir, 'batches'));
  const files = new FileStore(join(dir, 'files'));
  const runner = new BatchRunner({ store, files, executorFor: () => execute, modelProblem: (m) => (m === 'm' ? undefined : `no ${m}`), concurrency: 3, now, leaseMs });
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

  it('two runners on one folder: each batch runs on one of them, every line once; a cancel asked of either reaches it', async () => {
    const dir = tempDir();
    const [ea, eb] = [fakeEngine(15), fakeEngine(15)];
    const [a, b] = [open(dir, ea.execute, undefined, 300), open(dir, eb.execute, undefined, 300)];
    const file = await a.files.create('k', 'in.jsonl', 'batch', Buffer.from(input(12)));
    // Six batches created on a, which runs one at a time (~60 ms each); b looks for unheld ones every 150 ms.
    const ids = [];
    for (let i = 0; i < 6; i++) ids.push((await a.runner.create('k', { input_file_id: file.id, endpoint: '/v1/completions', completion_window: '24h' })).id);
    const done = await Promise.all(ids.map((id) => until(b.store, id, final)));
    expect(done.map((d) => d.request_counts)).toEqual(ids.map(() => ({ total: 12, completed: 11, failed: 1 })));
    expect([...ea.ran, ...eb.ran].sort()).toEqual(Array.from({ length: 72 }, (_, i) => `c${i % 12}`).sort());
    expect(eb.ran.length).toBeGreaterThan(0);
    // A long batch, cancelled through whichever runner does not run it.
    const slow = await a.files.create('k', 'in.jsonl', 'batch', Buffer.from(input(400)));
    const before = ea.ran.length;
    const { id } = await a.runner.create('k', { input_file_id: slow.id, endpoint: '/v1/completions', completion_window: '24h' });
    await until(a.store, id, (x) => x.request_counts.completed >= 3);
    const other = ea.ran.length > before ? b : a;
    expect((await other.runner.cancel('k', id)).status).toBe('cancelling');
    const cancelled = await until(other.store, id, final);
    expect(cancelled.status).toBe('cancelled');
    expect(cancelled.request_counts.completed).toBeLessThan(300);
    expect(lines(a.files, cancelled.output_file_id)).toHaveLength(cancelled.request_counts.completed);
    await Promise.all([a.runner.close(), b.runner.close()]);
  });

  it('leases a batch to one server at a time: taken once, taken over when it expires, and the old holder knows it lost it', async () => {
    const dir = tempDir();
    const first = BatchLease.take(dir, 'batch_1', 'a', 100)!;
    expect(first.held()).toBe(true);
    expect(BatchLease.take(dir, 'batch_1', 'b', 100)).toBeUndefined();
    expect(BatchLease.free(dir, 'batch_1')).toBe(false);
    expect(await first.renew()).toBe(true);
    await new Promise((r) => setTimeout(r, 150));
    expect(BatchLease.free(dir, 'batch_1')).toBe(true);
    // Several servers find it expired at once: exactly one takes it.
    const takers = ['b', 'c', 'd', 'e'].map((holder) => BatchLease.take(dir, 'batch_1', holder, 10_000));
    expect(takers.filter(Boolean)).toHaveLength(1);
    expect(first.held()).toBe(false);
    expect(await first.renew()).toBe(false);
    takers.find(Boolean)!.release();
    expect(BatchLease.free(dir, 'batch_1')).toBe(true);
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
