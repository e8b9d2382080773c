import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { loadExportedModel } from '../../src/engine/model-manifest.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { familyModel, type Family } from '../helpers/models.js';
import { startServe } from './llmkit-serve.js';

const QUESTION = 'What is the capital of Zorbia?';
const ANSWER = 'Quillon.';

/** The end-of-turn token id each family's template ends an answer with (generation_config's eos ids include it). */
const END_OF_TURN: Record<Family, number> = { qwen3: 151645, llama3: 128009, gemma3: 106, phi3: 32007, smollm3: 128009 };

async function cli(args: string[]): Promise<Record<string, unknown>> {
  const r = await runCli(['--json', ...args]);
  expect(r.exitCode, `llmkit ${args.join(' ')}\n${String(r.stderr).slice(-2000)}`).toBe(0);
  return JSON.parse(String(r.stdout).trim().split('\n').at(-1)!);
}

// Each family's scaled-down model with its real tokenizer, through every command a user runs, on the CPU:
// a few LoRA steps teach it one answer, which must come back through the served int8 model and stop at the
// family's own end-of-turn token.
describe.each(['qwen3', 'llama3', 'gemma3', 'phi3', 'smollm3'] as Family[])('%s: finetune --lora → lora merge → export → quantize --int8 → serve', (family) => {
  it('answers the fine-tuned question through the openai client', { timeout: 600_000 }, async () => {
    const dir = tempDir(`llmkit-chain-${family}-`);
    const data = join(dir, 'data.jsonl');
    writeFileSync(
      data,
      JSON.stringify({
        messages: [
          { role: 'user', content: QUESTION },
          { role: 'assistant', content: ANSWER },
        ],
      }) + '\n',
    );
    const base = await familyModel(family);

    const run = (await cli([
      'finetune',
      base,
      '--data',
      data,
      '--out',
      join(dir, 'run'),
      '--lora',
      '--lora-r',
      '16',
      '--lora-alpha',
      '32',
      '--max-steps',
      '30',
      '--lr',
      '1e-2',
      '--warmup-ratio',
      '0',
      '--exact-match',
      '1',
    ])) as {
      firstLoss: number;
      lastLoss: number;
      exactMatch: { before: { value: number }; after: { value: number } };
    };
    expect(run.lastLoss).toBeLessThan(run.firstLoss / 4);
    expect(run.exactMatch.before.value).toBe(0);
    expect(run.exactMatch.after.value).toBe(1);

    await cli(['lora', 'merge', base, join(dir, 'run', 'adapter'), '--out', join(dir, 'merged')]);
    const exported = (await cli(['export', join(dir, 'merged'), '--out', join(dir, 'onnx')])) as { parity: Record<string, number> };
    for (const diff of Object.values(exported.parity)) expect(diff).toBeLessThan(1e-4);
    await cli(['quantize', join(dir, 'onnx'), '--int8', '--out', join(dir, 'int8'), '--eval-tokens', '256', '--no-speed']);
    const int8 = loadExportedModel(join(dir, 'int8')).manifest;
    expect(int8.precision).toBe('int8');
    expect(int8.eos_token_ids).toContain(END_OF_TURN[family]);
    expect(int8.chat_template).toBeTruthy();

    const server = await startServe(join(dir, 'int8'), family);
    try {
      const client = new OpenAI({ baseURL: server.apiUrl, apiKey: 'unused' });
      const reply = await client.chat.completions.create({ model: family, messages: [{ role: 'user', content: QUESTION }], max_tokens: 24 });
      expect(reply.choices[0].message.content).toBe(ANSWER);
      // Stopped by the end-of-turn token (not the token limit), which is counted but not shown.
      expect(reply.choices[0].finish_reason).toBe('stop');
      expect(reply.usage!.completion_tokens).toBeLessThan(24);
    } finally {
      await server.stop();
    }
  });
});
