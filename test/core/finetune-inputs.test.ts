import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LlmkitError } from '../../src/shared/errors.js';
import { validateDataFile } from '../../src/core/finetune/data.js';
import { readAdapterInfo } from '../../src/core/finetune/lora.js';
import { checkModelFolder } from '../../src/core/finetune/model.js';
import { FINETUNE_DEFAULTS, resolveFinetuneOptions } from '../../src/core/finetune/options.js';
import { tempDir } from '../helpers/cli.js';

function jsonl(lines: (string | object)[]): string {
  const path = join(tempDir(), 'data.jsonl');
  writeFileSync(path, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
  return path;
}

async function failure(promise: Promise<unknown>): Promise<LlmkitError> {
  const e = await promise.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(LlmkitError);
  return e as LlmkitError;
}

const chat = (answer = 'Velmora.') => ({
  messages: [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Capital?' },
    { role: 'assistant', content: answer },
  ],
});

describe('finetune data validation', () => {
  it('detects the format of each file and counts its examples, skipping blank lines', async () => {
    expect(await validateDataFile(jsonl([chat(), '', chat()]))).toMatchObject({ format: 'messages', examples: 2 });
    expect(
      await validateDataFile(
        jsonl([
          { instruction: 'Add', input: '1 1', output: '2' },
          { instruction: 'Hi', output: 'Hello' },
        ]),
      ),
    ).toMatchObject({ format: 'alpaca', examples: 2 });
    expect(await validateDataFile(jsonl([{ prompt: 'Q: 1+1\nA:', completion: ' 2' }]))).toMatchObject({ format: 'prompt-completion', examples: 1 });
    expect(await validateDataFile(jsonl([{ text: 'Once upon a time.' }]))).toMatchObject({ format: 'text', examples: 1 });
    expect((await validateDataFile('recipes/data/facts.jsonl')).examples).toBe(20);
  });

  it('fails on a bad line with the file, the line number and what is wrong', async () => {
    const cases: [(string | object)[], number, string][] = [
      [[chat(), '', '{"messages": [oops'], 3, 'line is not valid JSON'],
      [[chat(), '[1, 2]'], 2, 'line must be a JSON object'],
      [[{ foo: 1 }], 1, 'unknown example shape (keys: foo)'],
      [[chat(), { text: 'plain' }], 2, "expected a messages example like the file's first one, got text"],
      [[chat(), { messages: [{ role: 'bot', content: 'hi' }] }], 2, 'messages[0].role must be system, user or assistant (got "bot")'],
      [[{ messages: [{ role: 'user', content: 'hi' }] }], 1, 'no assistant message: a conversation needs an answer to learn from'],
      [[chat('  ')], 1, 'an assistant message is empty'],
      [[{ messages: [] }], 1, '"messages" must be a non-empty list'],
      [[{ instruction: 'x', output: 3 }], 1, '"output" must be a string'],
      [[{ prompt: 'p', completion: '' }], 1, '"completion" is empty'],
      [[{ text: 'a' }, { text: '' }], 2, '"text" is empty'],
    ];
    for (const [lines, line, message] of cases) {
      const path = jsonl(lines);
      const e = await failure(validateDataFile(path));
      expect(e.message.startsWith(`${path}:${line}: ${message}`), `${e.message} / ${message}`).toBe(true);
      expect(e.exitCode).toBe(1);
    }
  });

  it('fails on a missing or empty file naming the flag', async () => {
    expect((await failure(validateDataFile('/no/such.jsonl', '--eval-data'))).message).toBe('--eval-data /no/such.jsonl does not exist');
    const empty = jsonl(['', '  ']);
    expect((await failure(validateDataFile(empty))).message).toBe(`--data ${empty} has no examples`);
  });
});

describe('finetune options', () => {
  const typed = (values: Record<string, unknown>) => ({ values, typed: (k: string) => values[k] !== undefined });

  it('fills the defaults and parses the command line strings', () => {
    const o = resolveFinetuneOptions(typed({ model: 'm', data: ['d.jsonl'], out: 'o', lora: true, loraR: '8', loraTargets: 'q_proj,v_proj' }));
    expect(o).toMatchObject({ loraR: 8, loraAlpha: FINETUNE_DEFAULTS.loraAlpha, loraTargets: ['q_proj', 'v_proj'], batchSize: 8, schedule: 'cosine', packing: false });
    expect(o.lr).toBeUndefined();
  });

  it('rejects bad values and flags that contradict each other', () => {
    const base = { model: 'm', data: ['d.jsonl'], out: 'o' };
    const message = (values: Record<string, unknown>) => {
      try {
        resolveFinetuneOptions(typed({ ...base, ...values }));
      } catch (e) {
        return (e as Error).message;
      }
      return 'no error';
    };
    expect(message({ lora: true, loraR: '-4' })).toBe('--lora-r must be an integer ≥ 1 (got -4)');
    expect(message({ loraR: '8' })).toBe('--lora-r needs --lora');
    expect(message({ merge: true })).toBe('--merge needs --lora');
    expect(message({ epochs: '2', maxSteps: '10' })).toBe('--epochs and --max-steps contradict each other: pass one of them');
    expect(message({ evalData: ['e.jsonl'], evalSplit: '0.1' })).toBe('--eval-data and --eval-split contradict each other: pass one of them');
    expect(message({ evalEvery: '10' })).toBe('--eval-every needs --eval-data or --eval-split');
    expect(message({ evalSplit: '0.9' })).toBe('--eval-split must be a number > 0 and ≤ 0.5 (got 0.9)');
    expect(message({ schedule: 'step' })).toBe('--schedule must be one of linear, cosine (got step)');
    expect(message({ lr: 'fast' })).toBe('--lr must be a number > 0 and ≤ 1 (got fast)');
    expect(message({ model: undefined })).toBe('<model> is required');
  });
});

describe('model folder checks', () => {
  function folder(files: Record<string, string>): string {
    const dir = tempDir();
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    return dir;
  }
  const llama = JSON.stringify({ architectures: ['LlamaForCausalLM'], model_type: 'llama', max_position_embeddings: 512 });

  it('accepts a Hugging Face causal LM folder and reads its context and chat template', async () => {
    const dir = folder({ 'config.json': llama, 'model.safetensors': '', 'tokenizer.json': '{}', 'tokenizer_config.json': '{"chat_template": "x"}' });
    expect(await checkModelFolder(dir)).toMatchObject({ modelType: 'llama', maxPositions: 512, hasChatTemplate: true });
  });

  it('names what is missing or unsupported, in one line with a hint', async () => {
    expect((await failure(checkModelFolder('/no/such/model'))).message).toBe('model folder /no/such/model does not exist');
    const noConfig = folder({ 'model.safetensors': '' });
    expect((await failure(checkModelFolder(noConfig))).message).toBe(`model folder ${noConfig} has no config.json`);
    const noWeights = folder({ 'config.json': llama, 'tokenizer.json': '{}' });
    expect((await failure(checkModelFolder(noWeights))).message).toBe(`model folder ${noWeights} has no weights (*.safetensors or pytorch_model*.bin)`);
    const noTokenizer = folder({ 'config.json': llama, 'model.safetensors': '' });
    expect((await failure(checkModelFolder(noTokenizer))).message).toBe(`model folder ${noTokenizer} has no tokenizer (tokenizer.json)`);
    const bert = folder({ 'config.json': JSON.stringify({ architectures: ['BertModel'], model_type: 'bert' }), 'model.safetensors': '', 'tokenizer.json': '{}' });
    const e = await failure(checkModelFolder(bert));
    expect(e.message).toBe(`model folder ${bert} holds a BertModel (model_type bert), which llmkit does not support`);
    expect(e.hint).toMatch(/supported: Gemma3ForCausalLM, LlamaForCausalLM, MistralForCausalLM, Phi3ForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, SmolLM3ForCausalLM$/);
  });
});

describe('lora info', () => {
  it('reads rank, alpha, targets and parameter count from the adapter files alone', async () => {
    const dir = tempDir();
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, 'adapter_config.json'),
      JSON.stringify({ peft_type: 'LORA', r: 4, lora_alpha: 8, lora_dropout: 0.1, target_modules: ['v_proj', 'q_proj'], base_model_name_or_path: '/models/base' }),
    );
    const header = Buffer.from(
      JSON.stringify({ __metadata__: { format: 'pt' }, a: { dtype: 'F32', shape: [4, 64], data_offsets: [0, 1024] }, b: { dtype: 'F32', shape: [64, 4], data_offsets: [1024, 2048] } }),
    );
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(header.length));
    writeFileSync(join(dir, 'adapter_model.safetensors'), Buffer.concat([length, header, Buffer.alloc(2048)]));
    expect(await readAdapterInfo(dir)).toMatchObject({ r: 4, alpha: 8, dropout: 0.1, targets: ['q_proj', 'v_proj'], trainableParameters: 512, baseModel: '/models/base' });
    expect((await failure(readAdapterInfo(tempDir()))).message).toMatch(/has no adapter_config\.json$/);
  });
});
