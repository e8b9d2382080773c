import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkDecoderConfig, parsePbtxt } from '../../src/core/triton/repository.js';
import type { FinetuneSummary } from '../../src/core/finetune/run.js';
import { startServe, type ServeProcess } from '../e2e/llmkit-serve.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { tinyModel } from '../helpers/models.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { startTriton, type TritonProcess } from '../helpers/triton.js';

// The acceptance path of `serve --engine triton`: the demo's fine-tuned tiny model exported with --triton, the real
// tritonserver (PyPI nvidia-pytriton, set up by `llmkit env --setup --triton`) serving its generate model on
// loopback, and the real `llmkit serve` in front, compared with llmkit's own engine answering in this process.
const QUESTION = 'What is the capital of Zarnovia?';
const env = { OMP_NUM_THREADS: '1' };
const KEY = 'sk-triton';

describe('llmkit serve --engine triton in front of a real Triton server (fine-tuned tiny model)', () => {
  const work = tempDir();
  const repo = join(work, 'triton');
  let exported: string;
  let triton: TritonProcess;
  let front: ServeProcess;
  let local: TestServer;
  let viaTriton: OpenAI;
  let inProcess: OpenAI;

  beforeAll(async () => {
    const setup = await runCli(['--json', 'env', '--setup', '--triton'], { env });
    expect(setup.exitCode, String(setup.stderr).slice(-2000)).toBe(0);
    const tuned = await runCli(['--json', 'finetune', '--recipe', 'recipes/llama/tiny_lora_cpu.yaml', '--out', join(work, 'run'), '--merge'], { env });
    expect(tuned.exitCode, String(tuned.stderr).slice(-2000)).toBe(0);
    const summary = JSON.parse(String(tuned.stdout)) as FinetuneSummary;
    exported = join(work, 'tiny-onnx');
    const exp = await runCli(['--json', 'export', summary.merged!, '--out', exported, '--triton', repo, '--triton-name', 'tiny'], { env });
    expect(exp.exitCode, String(exp.stderr).slice(-2000)).toBe(0);
    expect(JSON.parse(String(exp.stdout)).triton).toMatchObject({ decoder: 'tiny', generate: 'tiny-generate', device: 'cpu', checkedTensors: 13 });

    triton = await startTriton(repo, ['tiny-generate']);
    front = await startServe(join(repo, 'tiny-generate', '1'), 'tiny', ['--engine', 'triton', '--triton-url', triton.url, '--api-key', KEY, '--rpm', '100']);
    local = await startTestServer({ models: [`tiny=${exported}`] });
    viaTriton = new OpenAI({ baseURL: front.apiUrl, apiKey: KEY, maxRetries: 0 });
    inProcess = new OpenAI({ baseURL: `${local.url}/v1`, apiKey: 'none', maxRetries: 0 });
  });

  afterAll(async () => {
    await front?.stop();
    await triton?.stop();
    await local?.drain();
  });

  const ask = (client: OpenAI, extra: Partial<OpenAI.ChatCompletionCreateParamsNonStreaming> = {}) =>
    client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: QUESTION }], max_tokens: 16, temperature: 0, ...extra });

  async function askStreamed(client: OpenAI): Promise<{ text: string; chunks: number; finish: string | null }> {
    const stream = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: QUESTION }], max_tokens: 16, temperature: 0, stream: true });
    let text = '';
    let chunks = 0;
    let finish: string | null = null;
    for await (const c of stream) {
      text += c.choices[0]?.delta?.content ?? '';
      if (c.choices[0]?.delta?.content) chunks++;
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    return { text, chunks, finish };
  }

  it('answers the fine-tuned fact through Triton, streamed and not, exactly as the in-process engine does', async () => {
    const [triton_, local_] = [await ask(viaTriton), await ask(inProcess)];
    expect(triton_.choices[0].message.content).toBe('Velmora.');
    expect(triton_.choices[0].message.content).toBe(local_.choices[0].message.content);
    expect(triton_.choices[0].finish_reason).toBe('stop');
    expect(triton_.usage).toEqual(local_.usage);
    const [streamed, streamedLocal] = [await askStreamed(viaTriton), await askStreamed(inProcess)];
    expect(streamed).toEqual(streamedLocal);
    expect(streamed.text).toBe('Velmora.');
    expect(streamed.chunks).toBeGreaterThan(1);
    // Triton loaded the generate model from the config export wrote, as a decoupled (streaming) model.
    const config = (await (await fetch(`${triton.url}/v2/models/tiny-generate/config`)).json()) as { model_transaction_policy: { decoupled: boolean }; backend: string };
    expect(config).toMatchObject({ backend: 'python', model_transaction_policy: { decoupled: true } });
  });

  it('gives the in-process tokens for longer greedy runs, seeded sampling and stop strings', async () => {
    const same = async (extra: Record<string, unknown>) => {
      const body = { model: 'tiny', prompt: 'Once upon a time', max_tokens: 48, ignore_eos: true, ...extra } as OpenAI.CompletionCreateParamsNonStreaming;
      const [a, b] = [await viaTriton.completions.create(body), await inProcess.completions.create(body)];
      expect(a.choices[0].text.length).toBeGreaterThan(0);
      expect(a.choices[0].text).toBe(b.choices[0].text);
      expect(a.usage).toEqual(b.usage);
      return a.choices[0];
    };
    await same({ temperature: 0 });
    await same({ temperature: 0.9, top_p: 0.9, top_k: 20, seed: 7 });
    await same({ temperature: 1, seed: 3, frequency_penalty: 0.5 });
    // n: one Triton request per choice, seed + i each, as the in-process engine samples its choices.
    const body = { model: 'tiny', prompt: 'Once upon a time', max_tokens: 24, temperature: 0.9, seed: 11, n: 2 };
    const [viaT, local_] = [await viaTriton.completions.create(body), await inProcess.completions.create(body)];
    expect(viaT.choices.map((c) => c.text)).toEqual(local_.choices.map((c) => c.text));
    expect(viaT.choices[0].text).not.toBe(viaT.choices[1].text);
    const stopped = await same({ temperature: 0, stop: ['a'] });
    expect(stopped.finish_reason).toBe('stop');
    expect(stopped.text).not.toContain('a');
  });

  it('keeps the front: API keys, the WebSocket, /v1/models and metrics work as with the in-process engine', async () => {
    const base = front.apiUrl.replace(/\/v1$/, '');
    const anonymous = await fetch(`${front.apiUrl}/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: QUESTION }] }) });
    expect(anonymous.status).toBe(401);
    const ws = new WebSocket(`${base.replace('http', 'ws')}/v1/ws`, { headers: { Authorization: `Bearer ${KEY}` } });
    const messages: { type: string; chunk?: { choices: { delta: { content?: string } }[] } }[] = [];
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const done = new Promise<void>((resolve) =>
      ws.on('message', (data) => {
        messages.push(JSON.parse(data.toString()));
        if (messages.at(-1)!.type === 'done' || messages.at(-1)!.type === 'error') resolve();
      }),
    );
    ws.send(JSON.stringify({ type: 'chat.completions', id: 'w', body: { model: 'tiny', messages: [{ role: 'user', content: QUESTION }], max_tokens: 16 } }));
    await done;
    ws.close();
    expect(messages.at(-1)!.type).toBe('done');
    expect(messages.map((m) => m.chunk?.choices[0]?.delta.content ?? '').join('')).toBe('Velmora.');
    const models = (await (await fetch(`${front.apiUrl}/models`, { headers: { Authorization: `Bearer ${KEY}` } })).json()) as { data: { id: string; device: string; context_length: number }[] };
    expect(models.data).toEqual([expect.objectContaining({ id: 'tiny', device: 'triton', context_length: 512 })]);
    // What needs the logits is refused, not silently ignored.
    await expect(viaTriton.completions.create({ model: 'tiny', prompt: 'Once', max_tokens: 4, logprobs: 2 })).rejects.toMatchObject({ status: 400, code: 'unsupported_by_engine' });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/llmkit_generations_total\{[^}]*model="tiny"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/llmkit_completion_tokens_total\{[^}]*model="tiny"[^}]*\} [1-9]/);
  });

  it('a client that disconnects mid-stream cancels the generation inside Triton', async () => {
    const controller = new AbortController();
    const maxTokens = 480;
    // Only what Triton logs from here on: the stop-string test above ends its requests by cancelling them too.
    const logFrom = triton.log().length;
    const stream = await viaTriton.completions.create(
      { model: 'tiny', prompt: 'Once', max_tokens: maxTokens, temperature: 0, stream: true, ignore_eos: true } as OpenAI.CompletionCreateParamsStreaming,
      { signal: controller.signal },
    );
    let chunks = 0;
    try {
      for await (const _ of stream) if (++chunks === 2) controller.abort();
    } catch {
      // The openai client may end the iteration quietly or throw an abort error: either is the disconnect.
    }
    // Chunks already on their way still arrive after the abort.
    expect(chunks).toBeGreaterThanOrEqual(2);
    expect(chunks).toBeLessThan(maxTokens);
    // The generate model logs where each request ended: this one as cancelled, well before max_tokens.
    const ended = await waitFor(() => /llmkit-generate \S+: (\w+) after (\d+) tokens/.exec(triton.log().slice(logFrom)));
    expect(ended[1]).toBe('cancelled');
    expect(Number(ended[2])).toBeGreaterThanOrEqual(2);
    expect(Number(ended[2])).toBeLessThan(maxTokens);
  });

  it('Triton stopped: 503 with a clear message and /ready false; Triton restarted: answers again', async () => {
    await triton.stop();
    const base = front.apiUrl.replace(/\/v1$/, '');
    const refused = await waitFor(async () => {
      const r = await fetch(`${front.apiUrl}/chat/completions`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}` },
        body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: QUESTION }] }),
      });
      return r.status === 503 ? r : null;
    });
    const body = (await refused.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('engine_unavailable');
    expect(body.error.message).toContain(`Triton at ${triton.url}`);
    expect(refused.headers.get('retry-after')).toBe('5');
    // Streamed requests are refused before the event stream starts, so clients see the status too.
    await expect(viaTriton.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: QUESTION }], stream: true })).rejects.toMatchObject({ status: 503 });
    const ready = await fetch(`${base}/ready`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { reason: string }).reason).toContain('not reachable');

    triton = await startTriton(repo, ['tiny-generate'], triton.httpPort);
    await waitFor(async () => (await fetch(`${base}/ready`)).status === 200 || null);
    expect((await ask(viaTriton)).choices[0].message.content).toBe('Velmora.');
  });

  // Triton's graceful shutdown waits for open connections, keep-alive ones included (finding 6 of issue 27).
  it('holds no connection to Triton between requests, and /ready turns 503 as soon as Triton starts shutting down', async () => {
    await ask(viaTriton);
    await askStreamed(viaTriton);
    // Sampled over 1.2 s (the probe runs each second): none open between probes. Before, fetch's pool kept one.
    const open: number[] = [];
    for (let i = 0; i < 6; i++, await new Promise((r) => setTimeout(r, 200))) open.push(connectionsTo(triton.httpPort));
    expect(Math.min(...open)).toBe(0);

    // On SIGTERM Triton refuses new connections at once and exits once the open ones are done: with none held
    // here, /ready is 503 while Triton is still shutting down (before, a pooled connection still got answers).
    const base = front.apiUrl.replace(/\/v1$/, '');
    let exited = false;
    const stopped = triton.stop().then(() => (exited = true));
    const ready = await waitFor(async () => {
      const r = await fetch(`${base}/ready`);
      return r.status === 503 ? ((await r.json()) as { reason: string }) : null;
    }, 10_000);
    expect(exited).toBe(false);
    expect(ready.reason).toMatch(/^tiny: Triton at http:\S+ is not (reachable|ready)/);
    await stopped;
  });
});

/** Established TCP connections to `port` on this machine, from any process (/proc/net/tcp and tcp6). */
function connectionsTo(port: number): number {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  return ['/proc/net/tcp', '/proc/net/tcp6']
    .flatMap((file) => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').slice(1) : []))
    .filter((line) => {
      const [, , remote, state] = line.trim().split(/\s+/);
      return state === '01' && remote?.endsWith(`:${hex}`);
    }).length;
}

describe('the decoder config.pbtxt against the exported ONNX file', () => {
  const work = tempDir();

  /** A copy of a fresh repository's decoder folder with config.pbtxt changed by `edit`. */
  function mutated(edit: (config: string) => string): string {
    const repo = join(work, `r${Math.random().toString(36).slice(2)}`);
    cpSync(join(source, 'tiny'), join(repo, 'tiny'), { recursive: true });
    const file = join(repo, 'tiny', 'config.pbtxt');
    writeFileSync(file, edit(readFileSync(file, 'utf8')));
    return repo;
  }
  let source: string;

  beforeAll(async () => {
    source = join(work, 'repo');
    const r = await runCli(['--json', 'export', await tinyModel(), '--out', join(work, 'onnx'), '--triton', source, '--triton-name', 'tiny', '--triton-device', 'gpu'], { env });
    expect(r.exitCode, String(r.stderr).slice(-2000)).toBe(0);
  });

  it('matches every input and output: names, types, fixed and dynamic dimensions; the GPU instance group when asked', async () => {
    expect(await checkDecoderConfig(source, 'tiny')).toEqual([]);
    const config = parsePbtxt(readFileSync(join(source, 'tiny', 'config.pbtxt'), 'utf8'));
    expect(config).toMatchObject({ name: 'tiny', backend: 'onnxruntime', max_batch_size: 0, instance_group: [{ count: 1, kind: 'KIND_GPU' }] });
    const inputs = config.input as { name: string; dims: number[] }[];
    expect(inputs.find((i) => i.name === 'past_key_values.0.key')).toEqual({ name: 'past_key_values.0.key', data_type: 'TYPE_FP32', dims: [-1, 2, -1, 16] });
    expect((config.output as { name: string }[]).map((o) => o.name)).toContain('new_key_values');
  });

  it('catches a wrong dimension, a wrong type, a missing and an extra tensor, and a wrong backend', async () => {
    expect(
      await checkDecoderConfig(
        mutated((c) => c.replace('dims: [ -1, 2, -1, 16 ]', 'dims: [ -1, 2, -1, 32 ]')),
        'tiny',
      ),
    ).toEqual(['input past_key_values.0.key has dims [-1, 2, -1, 32] in config.pbtxt but [-1, 2, -1, 16] in the ONNX file (batch_size, 2, past_sequence, 16)']);
    expect(
      await checkDecoderConfig(
        mutated((c) => c.replace(/(name: "logits"\s+data_type: )TYPE_FP32/, '$1TYPE_FP16')),
        'tiny',
      ),
    ).toEqual(['output logits is TYPE_FP16 in config.pbtxt but float32 (TYPE_FP32) in the ONNX file']);
    expect(
      await checkDecoderConfig(
        mutated((c) => c.replace('"position_ids"', '"positions"')),
        'tiny',
      ),
    ).toEqual(['input position_ids of the ONNX file is missing from config.pbtxt', 'input positions in config.pbtxt is not in the ONNX file']);
    expect(
      await checkDecoderConfig(
        mutated((c) => c.replace('dims: [ -1, -1 ]', 'dims: [ -1 ]')),
        'tiny',
      ),
    ).toHaveLength(1);
    expect(
      await checkDecoderConfig(
        mutated((c) => c.replace('backend: "onnxruntime"', 'backend: "python"')),
        'tiny',
      ),
    ).toEqual(['backend is python, not onnxruntime']);
    // With max_batch_size > 0 Triton adds the batch dimension itself: the declared dims then have one too many.
    expect(
      await checkDecoderConfig(
        mutated((c) => c.replace('max_batch_size: 0', 'max_batch_size: 8')),
        'tiny',
      ),
    ).toHaveLength(13);
  });

  it("Triton's own parser accepts the config (loading stops only at the onnxruntime backend the wheel lacks) and refuses a broken one", async () => {
    // Nothing loaded at start: this export asked for KIND_GPU, which the generate model cannot have on a machine without one.
    const triton = await startTriton(source, []);
    try {
      const load = async () => {
        const r = await fetch(`${triton.url}/v2/repository/models/tiny/load`, { method: 'POST' });
        return ((await r.json()) as { error: string }).error;
      };
      const file = join(source, 'tiny', 'config.pbtxt');
      const original = readFileSync(file, 'utf8');
      expect(await load()).toContain("unable to find backend library for backend 'onnxruntime'");
      writeFileSync(file, original.replace('data_type: TYPE_INT64', 'data_type: TYPE_INT46'));
      expect(await load()).toContain('failed to poll from model repository');
      writeFileSync(file, original);
    } finally {
      await triton.stop();
    }
  });
});

describe('serve --engine triton: flags', () => {
  it('refuses missing or wrong flags in one line, before loading anything', async () => {
    const cases: [string[], string][] = [
      [['--engine', 'triton'], 'error: --engine triton needs --triton-url'],
      [['--engine', 'vllm'], 'error: --engine must be one of onnx, triton (got vllm)'],
      [['--triton-url', 'http://127.0.0.1:1'], 'error: --triton-url and --triton-model need --engine triton'],
      [['--engine', 'triton', '--triton-url', 'localhost:8000'], 'error: --triton-url must be an http:// or https:// URL (got localhost:8000)'],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(['serve', 'x', ...args]);
      expect(r.exitCode).toBe(2);
      expect(String(r.stderr).split('\n')[0]).toContain(message);
    }
    const r = await runCli(['export', 'x', '--out', 'y', '--triton-device', 'tpu']);
    expect(String(r.stderr).split('\n')[0]).toBe('error: --triton-name and --triton-device go with --triton DIR');
  });
});

async function waitFor<T>(probe: () => T | null | undefined | Promise<T | null | undefined>, timeoutMs = 20_000): Promise<T> {
  for (const started = Date.now(); ; ) {
    const value = await probe();
    if (value) return value;
    if (Date.now() - started > timeoutMs) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 200));
  }
}
