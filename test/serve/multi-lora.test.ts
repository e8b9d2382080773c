import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkServingMemory } from '../../src/core/memory/plan.js';
import { LoraAdapter } from '../../src/engine/lora-adapter.js';
import { rowTableBytes } from '../../src/engine/lora-feeds.js';
import { mergedExport, randomAdapter } from '../helpers/lora.js';
import { exportedTinyModel, tinyModel } from '../helpers/models.js';
import { metric, postJson, startTestServer, type TestServer } from '../helpers/server.js';

const ADMIN = 'admin-secret';
const PROMPTS = ['The old bridge', 'Once upon a time', 'A list of red things:', 'Question: why?'];

describe('serve BASE --adapter NAME=PATH (multi-LoRA)', () => {
  let folders: string[];
  let server: TestServer;
  let client: OpenAI;
  beforeAll(async () => {
    const hf = await tinyModel();
    folders = await Promise.all([randomAdapter(hf, { seed: 1, rank: 4, targets: ['q_proj', 'v_proj', 'down_proj'] }), randomAdapter(hf, { seed: 3, rank: 8, targets: ['q_proj', 'v_proj'] })]);
    server = await startTestServer({ adapters: [`fr@v1=${folders[0]}`], loraTargets: ['q_proj', 'v_proj', 'down_proj'], adminKey: ADMIN, maxBatch: 8 });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'x', maxRetries: 0 });
  }, 600_000);
  afterAll(() => server?.drain());

  const complete = (model: string, prompt: string, c = client) => c.completions.create({ model, prompt, max_tokens: 16, temperature: 0 }).then((r) => r.choices[0].text);

  it('answers an adapter by name with the text of its merged export, the base by its own, mixed in one batch', async () => {
    const mergedServer = await startTestServer({ models: [`merged=${await mergedExport(await tinyModel(), folders[0])}`] });
    try {
      const merged = new OpenAI({ baseURL: `${mergedServer.url}/v1`, apiKey: 'x', maxRetries: 0 });
      const [viaAdapter, viaName, viaBase] = await Promise.all([
        Promise.all(PROMPTS.map((p) => complete('fr@v1', p))),
        Promise.all(PROMPTS.map((p) => complete('fr', p))),
        Promise.all(PROMPTS.map((p) => complete('tiny', p))),
      ]);
      const reference = await Promise.all(PROMPTS.map((p) => complete('merged', p, merged)));
      expect(viaAdapter).toEqual(reference);
      expect(viaName).toEqual(reference);
      expect(viaBase).not.toEqual(reference);
    } finally {
      await mergedServer.drain();
    }
    expect(await metric(server.url, 'llmkit_generations_total{model="fr@v1",finish_reason="length"}')).toBeGreaterThanOrEqual(4);
  }, 300_000);

  it("counts the adapters' weights and their per-row tables in the memory estimate", async () => {
    // fr@v1: rank 4 on q/v/down of the tiny model; the tables hold --max-batch 8 rows of every adapted projection.
    const fr = await LoraAdapter.load(folders[0]);
    const perRow = rowTableBytes(fr.modules.values(), 4);
    const without = await checkServingMemory([await exportedTinyModel()], { maxBatch: 8, device: 'cpu', loraAdapters: true });
    expect(perRow).toBe([...fr.modules.values()].reduce((n, m) => n + (m.inFeatures + m.outFeatures) * 4 * 4, 0));
    expect(server.memory!.total - without.total).toBe(fr.bytes + 8 * perRow);
  });

  it('lists adapters in /v1/models with their parent', async () => {
    const { data } = await (await fetch(`${server.url}/v1/models`)).json();
    expect(data.find((m: { id: string }) => m.id === 'tiny')).toMatchObject({ parent: null });
    expect(data.find((m: { id: string }) => m.id === 'fr@v1')).toMatchObject({ parent: 'tiny', root: folders[0], object: 'model' });
    await expect(client.completions.create({ model: 'nope', prompt: 'x', max_tokens: 2 })).rejects.toMatchObject({ status: 404, code: 'model_not_found' });
  });

  it('loads and unloads an adapter at run time under load, losing no request', async () => {
    const load = () => postJson(`${server.url}/v1/load_lora_adapter`, { lora_name: 'de', lora_path: folders[1] }, { Authorization: `Bearer ${ADMIN}` });
    const unload = () => postJson(`${server.url}/v1/unload_lora_adapter`, { lora_name: 'de' }, { Authorization: `Bearer ${ADMIN}` });
    const alone = await complete('tiny', PROMPTS[0]);
    // A steady stream of requests to the base and the fixed adapter while 'de' comes and goes twice.
    let stop = false;
    const results: string[] = [];
    const traffic = Array.from({ length: 4 }, async (_, w) => {
      for (let i = 0; !stop; i++) results.push(await complete(w % 2 ? 'fr' : 'tiny', PROMPTS[(w + i) % PROMPTS.length]));
    });
    const deTexts: string[] = [];
    try {
      for (let round = 0; round < 2; round++) {
        const loaded = await load();
        expect(loaded.status).toBe(200);
        expect(loaded.body).toMatchObject({ id: 'de', parent: 'tiny' });
        // A stream that has its first token when the adapter goes: it finishes with the adapter.
        const stream = await client.completions.create({ model: 'de', prompt: PROMPTS[1], max_tokens: 16, temperature: 0, stream: true });
        const chunks = stream[Symbol.asyncIterator]();
        let text = ((await chunks.next()).value as OpenAI.Completion).choices[0].text;
        expect((await unload()).status).toBe(200);
        for (let c = await chunks.next(); !c.done; c = await chunks.next()) text += c.value.choices[0]?.text ?? '';
        deTexts.push(text);
        await expect(complete('de', PROMPTS[1])).rejects.toMatchObject({ status: 404 });
      }
    } finally {
      stop = true;
      await Promise.all(traffic);
    }
    expect(results.length).toBeGreaterThan(8);
    expect(deTexts[0]).toBe(deTexts[1]);
    expect(deTexts[0]).not.toBe(await complete('tiny', PROMPTS[1]));
    expect(await complete('tiny', PROMPTS[0])).toBe(alone);
  }, 300_000);

  it('refuses admin calls without the key, a bad folder, a taken name and an unknown adapter, in OpenAI error JSON', async () => {
    const admin = { Authorization: `Bearer ${ADMIN}` };
    expect((await postJson(`${server.url}/v1/load_lora_adapter`, { lora_name: 'x', lora_path: folders[1] })).status).toBe(401);
    expect((await postJson(`${server.url}/v1/load_lora_adapter`, { lora_name: 'x', lora_path: folders[1] }, { Authorization: 'Bearer wrong' })).status).toBe(401);
    const empty = mkdtempSync(join(tmpdir(), 'llmkit-lora-'));
    const bad = await postJson(`${server.url}/v1/load_lora_adapter`, { lora_name: 'x', lora_path: empty }, admin);
    expect(bad.status).toBe(400);
    expect(bad.body.error?.message).toMatch(/has no adapter_config\.json/);
    writeFileSync(join(empty, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: 4, lora_alpha: 8 }));
    writeFileSync(join(empty, 'adapter_model.safetensors'), 'not safetensors');
    expect((await postJson(`${server.url}/v1/load_lora_adapter`, { lora_name: 'x', lora_path: empty }, admin)).body.error?.message).toMatch(/is not a safetensors file/);
    expect((await postJson(`${server.url}/v1/load_lora_adapter`, { lora_name: 'tiny', lora_path: folders[1] }, admin)).body.error?.message).toMatch(/already served/);
    expect((await postJson(`${server.url}/v1/load_lora_adapter`, { lora_name: 'x' }, admin)).body.error?.param).toBe('lora_path');
    expect((await postJson(`${server.url}/v1/unload_lora_adapter`, { lora_name: 'gone' }, admin)).status).toBe(404);
    expect((await postJson(`${server.url}/v1/unload_lora_adapter`, { lora_name: 'tiny' }, admin)).status).toBe(400);
  });
});

describe('llmkit serve --adapter (CLI)', () => {
  it('refuses a folder that is not a PEFT adapter in one line, with no stack trace', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'llmkit-lora-'));
    const { exportedTinyModel } = await import('../helpers/models.js');
    const r = await execa('node', ['bin/llmkit.js', 'serve', await exportedTinyModel(), '--adapter', `x=${empty}`, '--port', '0'], { reject: false, stdin: 'ignore' });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/adapter folder .* has no adapter_config\.json/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  }, 60_000);
});
