import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DecoderSession } from '../../src/engine/decoder-session.js';
import { LocalEngine } from '../../src/engine/local-engine.js';
import { greedyDecode } from '../../src/engine/greedy.js';
import { loadExportedModel } from '../../src/engine/model-manifest.js';
import { ModelTokenizer, type ChatMessage } from '../../src/engine/tokenizer.js';
import { pythonSourceDir } from '../../src/shared/paths.js';
import { requirePythonEnv } from '../../src/workers/python-env.js';
import { exportedFamilyModel, familyModel, type Family } from '../helpers/models.js';

const CONVERSATIONS: ChatMessage[][] = [
  [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Capital of France?' },
    { role: 'assistant', content: 'Paris.' },
    { role: 'user', content: 'Et l’Allemagne — über? 🇩🇪' },
    { role: 'assistant', content: 'Berlin, naïvely 🙂' },
  ],
  [{ role: 'user', content: '2 + 2 =' }],
  [
    { role: 'user', content: 'Say "hi" in Japanese.' },
    { role: 'assistant', content: 'こんにちは' },
  ],
];
const TEXTS = ['héllo wörld 日本語', '  two spaces\nand a newline\t', '<|im_end|> is text here'];
const GREEDY = 16;

/** What each family's template writes after an answer: the tokens the model must learn to end a turn with. */
const END_OF_TURN: Record<Family, string> = {
  qwen3: '<|im_end|>\n',
  llama3: '<|eot_id|>',
  gemma3: '<end_of_turn>\n',
  // Llama 2's legacy SentencePiece puts a word-start space before the newline after a special token; the
  // template's `else eos_token` ends a conversation whose last turn is the answer.
  phi3: '<|end|> \n<|endoftext|>',
  smollm3: '<|eot_id|>',
};

interface PythonView {
  conversations: { prompt: string; prompt_ids: number[]; trained: { tokens: string[]; text: string }[] }[];
  texts: number[][];
  greedy: number[];
}

async function pythonView(model: string): Promise<PythonView> {
  const { python } = await requirePythonEnv();
  const r = await execa(python, [join('test', 'helpers', 'chat_render.py'), model], {
    input: JSON.stringify({ conversations: CONVERSATIONS, texts: TEXTS, greedy: GREEDY }),
    env: { PYTHONPATH: pythonSourceDir },
  });
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
}

const promptOf = (messages: ChatMessage[]) => (messages.at(-1)!.role === 'assistant' ? messages.slice(0, -1) : messages);

describe.each(['qwen3', 'llama3', 'gemma3', 'phi3', 'smollm3'] as Family[])('the %s family with its real tokenizer', (family) => {
  let hf: string;
  let exported: string;
  let python: PythonView;
  let tokenizer: ModelTokenizer;
  let decoder: DecoderSession;
  beforeAll(async () => {
    hf = await familyModel(family);
    [exported, python] = await Promise.all([exportedFamilyModel(family), pythonView(hf)]);
    tokenizer = await ModelTokenizer.load(exported);
    decoder = await DecoderSession.open(loadExportedModel(exported), { device: 'cpu', logits: 'last' });
  }, 300_000);
  afterAll(() => decoder?.release());

  it('exports within 1e-4 of PyTorch on a left-padded batch prefill and 3 cached decode steps', () => {
    const { manifest } = loadExportedModel(exported);
    expect(Object.keys(manifest.export_check ?? {})).toEqual(['prefill', 'decode_1', 'decode_2', 'decode_3']);
    for (const diff of Object.values(manifest.export_check ?? {})) expect(diff).toBeLessThan(1e-4);
  });

  it("carries the template from chat_template.jinja (transformers 5's layout) into the export", () => {
    const template = readFileSync(join(hf, 'chat_template.jinja'), 'utf8');
    expect(JSON.parse(readFileSync(join(hf, 'tokenizer_config.json'), 'utf8')).chat_template).toBeUndefined();
    expect(loadExportedModel(exported).manifest.chat_template).toBe(template);
    expect(tokenizer.hasChatTemplate).toBe(true);
    expect(tokenizer.chatTemplateError).toBeNull();
  });

  it('renders the chat template and tokenizes exactly as transformers (Python) does', () => {
    for (const [i, messages] of CONVERSATIONS.entries()) {
      expect(tokenizer.renderChat(promptOf(messages)), `conversation ${i}`).toBe(python.conversations[i].prompt);
      expect(tokenizer.encodeChat(promptOf(messages)), `conversation ${i}`).toEqual(python.conversations[i].prompt_ids);
    }
    expect(TEXTS.map((t) => tokenizer.encode(t))).toEqual(python.texts);
  });

  it("trains the answer-only loss on exactly each answer and the template's end of turn", () => {
    for (const [i, messages] of CONVERSATIONS.entries()) {
      const answers = messages.filter((m) => m.role === 'assistant').map((m) => m.content + END_OF_TURN[family]);
      const trained = python.conversations[i].trained;
      expect(
        trained.map((run) => run.text),
        `conversation ${i}`,
      ).toEqual(answers);
      // Token by token: the first trained token starts the answer (no prompt token leaks in), the last ends the turn.
      for (const [k, run] of trained.entries()) {
        expect(answers[k].startsWith(run.tokens[0].trimStart()) && run.tokens[0].trim().length > 0).toBe(true);
        expect(END_OF_TURN[family].trimEnd().endsWith(run.tokens.findLast((t) => t.trim().length > 0)!)).toBe(true);
      }
    }
  });

  it("generates PyTorch's greedy tokens in llmkit's engine", async () => {
    const ids = python.conversations[0].prompt_ids;
    expect((await greedyDecode(decoder, ids, GREEDY)).tokens).toEqual(python.greedy);
  });

  it("exports --fused within 1e-4 of PyTorch, and that graph makes PyTorch's greedy tokens", async () => {
    const fused = loadExportedModel(await exportedFamilyModel(family, { fused: true }));
    expect(fused.manifest.graph).toBe('fused');
    for (const diff of Object.values(fused.manifest.export_check ?? {})) expect(diff).toBeLessThan(1e-4);
    const session = await DecoderSession.open(fused, { device: 'cpu', logits: 'last' });
    try {
      expect((await greedyDecode(session, python.conversations[0].prompt_ids, GREEDY)).tokens).toEqual(python.greedy);
    } finally {
      await session.release();
    }
  }, 300_000);

  it('serves the same greedy text from a batch of two prompts of different lengths (padding, in-place cache)', async () => {
    // The scheduler left-pads rows and decodes into spare cache columns: a sliding window must count positions,
    // not columns, or Gemma 3's local layers lose their context here.
    const prompts = [python.conversations[0].prompt_ids, python.conversations[1].prompt_ids];
    const expected = [python.greedy, (await greedyDecode(decoder, prompts[1], GREEDY)).tokens].map((ids) => tokenizer.decode(ids));
    const engine = await LocalEngine.open(exported, { device: 'cpu' });
    try {
      const replies = await Promise.all(prompts.map((promptIds) => engine.complete({ promptIds, maxTokens: GREEDY, ignoreEos: true, sampling: { temperature: 0 } })));
      // Llama 2's SentencePiece decodes a first word-start token without its space; streamed after the prompt it keeps it.
      expect(replies.map((r) => r.text.trimStart())).toEqual(expected.map((t) => t.trimStart()));
    } finally {
      await engine.close();
    }
  });
});

describe("Qwen3's thinking block", () => {
  it('is off unless asked for, matching how finetune renders answers', async () => {
    const tokenizer = await ModelTokenizer.load(await exportedFamilyModel('qwen3'));
    const messages = [{ role: 'user', content: 'hi' }];
    expect(tokenizer.renderChat(messages)).toBe('<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n');
    expect(tokenizer.renderChat(messages, { enableThinking: true })).toBe('<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n');
  });
});
