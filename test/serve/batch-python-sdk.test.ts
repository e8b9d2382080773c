import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/cli.js';
import { pythonClient } from '../helpers/python-client.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/** The whole cycle as the OpenAI cookbook writes it: upload, create, poll, download; then cancel and list. */
const SCRIPT = `
import io, json, sys, time
from openai import OpenAI

client = OpenAI(base_url=sys.argv[1], api_key="unused", max_retries=0)

def line(i, max_tokens, **extra):
    body = {"model": "tiny", "messages": [{"role": "user", "content": f"Item {i}"}], "max_tokens": max_tokens, "temperature": 0, **extra}
    return json.dumps({"custom_id": f"item-{i}", "method": "POST", "url": "/v1/chat/completions", "body": body})

def wait(batch_id, statuses):
    while True:
        b = client.batches.retrieve(batch_id)
        if not statuses or statuses[-1] != b.status:
            statuses.append(b.status)
        if b.status in ("completed", "failed", "expired", "cancelled"):
            return b
        time.sleep(0.05)

upload = client.files.create(file=("items.jsonl", io.BytesIO("\\n".join(line(i, 8) for i in range(6)).encode())), purpose="batch")
batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"job": "python"})
statuses = [batch.status]
done = wait(batch.id, statuses)
output = [json.loads(l) for l in client.files.content(done.output_file_id).text.splitlines()]

long = client.files.create(file=("long.jsonl", io.BytesIO("\\n".join(line(i, 120, ignore_eos=True) for i in range(30)).encode())), purpose="batch")
running = client.batches.create(input_file_id=long.id, endpoint="/v1/chat/completions", completion_window="24h")
while client.batches.retrieve(running.id).request_counts.completed < 1:
    time.sleep(0.05)
cancelling = client.batches.cancel(running.id)
cancelled = wait(running.id, [])
listed = [b.id for b in client.batches.list(limit=1)]

print(json.dumps({
    "statuses": statuses,
    "counts": done.request_counts.model_dump(),
    "metadata": done.metadata,
    "answers": {l["custom_id"]: l["response"]["body"]["choices"][0]["message"]["content"] for l in output},
    "status_codes": sorted({l["response"]["status_code"] for l in output}),
    "cancelling": cancelling.status,
    "cancelled": cancelled.status,
    "cancelled_counts": cancelled.request_counts.model_dump(),
    "listed": listed,
    "ids": [batch.id, running.id],
}))
`;

describe('the Python SDK drives a batch', () => {
  let server: TestServer;
  let python: string;

  beforeAll(async () => {
    python = await pythonClient();
    server = await startTestServer({ dataDir: join(tempDir(), 'data'), maxBatch: 4 });
  });
  afterAll(async () => {
    await server?.drain();
  });

  it('files.create, batches.create, retrieve until done, files.content, cancel and list', async () => {
    const r = await execa(python, ['-c', SCRIPT, `${server.url}/v1`], { stdin: 'ignore', reject: false });
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout);
    expect(out.statuses.at(-1)).toBe('completed');
    expect(out.counts).toEqual({ total: 6, completed: 6, failed: 0 });
    expect(out.metadata).toEqual({ job: 'python' });
    expect(out.status_codes).toEqual([200]);
    expect(Object.keys(out.answers).sort()).toEqual([0, 1, 2, 3, 4, 5].map((i) => `item-${i}`));
    // The same request interactively (greedy) gives the same answer.
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'Item 3' }], max_tokens: 8, temperature: 0 }),
    });
    expect(out.answers['item-3']).toBe(((await res.json()) as { choices: { message: { content: string } }[] }).choices[0].message.content);
    expect(out.cancelling).toBe('cancelling');
    expect(out.cancelled).toBe('cancelled');
    expect(out.cancelled_counts.completed).toBeGreaterThanOrEqual(1);
    expect(out.cancelled_counts.completed).toBeLessThan(30);
    // Newest first, one page at a time (limit=1): the SDK follows the cursor through both.
    expect(out.listed).toEqual([out.ids[1], out.ids[0]]);
  });
});
