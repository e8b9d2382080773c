import { linkSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeLlamaCpp } from '../helpers/llama-cpp.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { exportedSmollm2, smollm2, smollm2Gguf } from '../helpers/real-model.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

// The real-model tier on SmolLM2-135M-Instruct (its Q4_1 GGUF from PyPI, imported): answers are a pretrained
// model's, so the tests check content, not only form. Greedy decoding throughout, so every run answers the same.
const FACTS: [string, RegExp][] = [
  ['What is the capital of France?', /\bParis\b/],
  ['How many days are there in a week?', /\b(7|seven)\b/i],
  ['What is the capital of Japan?', /\bTokyo\b/],
  ['What is the boiling point of water in degrees Celsius?', /\b100\b/],
  ['What is 2 + 2?', /\b4\b/],
  ['What is the chemical symbol for water?', /\bH2O\b/],
];

const PEOPLE = [
  { sentence: 'Maria is 34 years old and lives in Lisbon.', name: 'Maria', age: 34, city: 'Lisbon' },
  { sentence: 'Tom, aged 52, works in Chicago.', name: 'Tom', age: 52, city: 'Chicago' },
  { sentence: 'Aiko lives in Osaka; she turned 27 this spring.', name: 'Aiko', age: 27, city: 'Osaka' },
];
const PERSON = {
  type: 'object',
  properties: { name: { type: 'string', maxLength: 20 }, age: { type: 'integer', minimum: 0, maximum: 120 }, city: { type: 'string', maxLength: 20 } },
  required: ['name', 'age', 'city'],
  additionalProperties: false,
};

describe('SmolLM2-135M-Instruct served by llmkit', () => {
  let server: TestServer;
  let client: OpenAI;
  let exported: string;

  beforeAll(async () => {
    exported = await exportedSmollm2();
    // Served as its GGUF file: imported and exported once, into the cache the line above filled.
    server = await startTestServer({ models: [`smollm2=${await smollm2Gguf()}`] });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  }, 1_200_000);
  afterAll(async () => server?.drain());

  it('serves a .gguf file from the cached export, and chats with a Hugging Face id whose snapshot is a GGUF', async () => {
    expect(server.models[0].engine.model.dir).toBe(exported);
    // A GGUF-only repo in the hub cache (as Hugging Face's *-GGUF repos are): the same file, so the same import and export.
    const hub = join(tempDir(), 'hub');
    const repo = join(hub, 'models--HuggingFaceTB--SmolLM2-135M-Instruct-GGUF');
    const commit = 'b'.repeat(40);
    mkdirSync(join(repo, 'refs'), { recursive: true });
    mkdirSync(join(repo, 'snapshots', commit), { recursive: true });
    writeFileSync(join(repo, 'refs', 'main'), commit);
    linkSync(await smollm2Gguf(), join(repo, 'snapshots', commit, 'smollm2-135m-instruct-q4_1.gguf'));
    const env = { HF_HUB_CACHE: hub, HF_HUB_OFFLINE: '1' };
    const chat = await runCli(['--json', 'chat', 'HuggingFaceTB/SmolLM2-135M-Instruct-GGUF', '--plain', '--temperature', '0', '--max-tokens', '24'], {
      env,
      input: `${FACTS[0][0]}\n`,
      stdin: undefined,
    });
    expect(chat.exitCode, chat.stderr.slice(-2000)).toBe(0);
    expect(chat.stdout).toMatch(FACTS[0][1]);
  }, 600_000);

  it('exports to ONNX within 1e-3 of PyTorch’s logits (prefill and 3 decode steps)', () => {
    const check = JSON.parse(readFileSync(join(exported, 'llmkit.json'), 'utf8')).export_check as Record<string, number>;
    expect(Object.keys(check)).toEqual(['prefill', 'decode_1', 'decode_2', 'decode_3']);
    for (const diff of Object.values(check)) expect(diff).toBeLessThan(1e-3);
  });

  it('answers factual questions correctly and stops at <|im_end|>', async () => {
    for (const [question, answer] of FACTS) {
      const r = await client.chat.completions.create({ model: 'smollm2', messages: [{ role: 'user', content: question }], max_tokens: 40, temperature: 0 });
      expect(r.choices[0].message.content, question).toMatch(answer);
      expect(r.choices[0].finish_reason, question).toBe('stop');
    }
  });

  it('extracts the right fields from sentences under a JSON Schema (structured outputs), not only valid JSON', async () => {
    for (const person of PEOPLE) {
      const r = await client.chat.completions.create({
        model: 'smollm2',
        messages: [{ role: 'user', content: `Extract the person's name, age and city as JSON.\n${person.sentence}` }],
        max_tokens: 60,
        temperature: 0,
        response_format: { type: 'json_schema', json_schema: { name: 'person', schema: PERSON, strict: true } },
      });
      expect(JSON.parse(r.choices[0].message.content!), person.sentence).toEqual({ name: person.name, age: person.age, city: person.city });
    }
  });

  it('export --gguf writes a file llama.cpp loads and decodes greedily to the same tokens as llmkit', async () => {
    const gguf = join(tempDir(), 'smollm2-f16.gguf');
    const r = await runCli(['--json', 'export', await smollm2(), '--gguf', '--out', gguf]);
    expect(r.exitCode, r.stderr.slice(-2000)).toBe(0);
    const messages = [{ role: 'user' as const, content: 'Name three primary colors.' }];
    const ours = await client.chat.completions.create({ model: 'smollm2', messages, max_tokens: 24, temperature: 0, logprobs: true });
    const content = ours.choices[0].logprobs!.content!.map((t) => t.token);
    // An answer that ends on EOS has the stop token as its last logprobs entry (it counts in completion_tokens);
    // llama.cpp's evaluate ends on it without yielding it.
    const stopped = ours.choices[0].finish_reason === 'stop';
    if (stopped) expect(content.at(-1)).toBe('<|im_end|>');
    const ourTokens = stopped ? content.slice(0, -1) : content;

    const llamaCpp = await nodeLlamaCpp();
    const llama = await llamaCpp.getLlama({ gpu: false, build: 'never', logLevel: llamaCpp.LlamaLogLevel.error });
    const model = await llama.loadModel({ modelPath: gguf });
    const context = await model.createContext({ contextSize: 512, threads: 2 });
    // The chat template's rendering of the messages (it adds SmolLM's system prompt), as llmkit renders it.
    const system = 'You are a helpful AI assistant named SmolLM, trained by Hugging Face';
    expect(JSON.parse(readFileSync(join(exported, 'llmkit.json'), 'utf8')).chat_template).toContain(system);
    const text = `<|im_start|>system\n${system}<|im_end|>\n<|im_start|>user\n${messages[0].content}<|im_end|>\n<|im_start|>assistant\n`;
    const sequence = context.getSequence();
    const tokens: string[] = [];
    for await (const token of sequence.evaluate(model.tokenize(text, true), { temperature: 0 })) {
      tokens.push(model.detokenize([token], true));
      if (tokens.length === ourTokens.length) break;
    }
    await context.dispose();
    await model.dispose();
    expect(ourTokens.length).toBeGreaterThanOrEqual(10);
    expect(tokens).toEqual(ourTokens);
  });
});
