import { AutoTokenizer } from '@huggingface/transformers';
import { beforeAll, describe, expect, it } from 'vitest';
import { IncrementalDetokenizer } from '../../src/engine/detokenizer.js';
import { ModelTokenizer } from '../../src/engine/tokenizer.js';
import { exportedTinyModel, familyModel } from '../helpers/models.js';

describe('incremental detokenisation', () => {
  let tokenizer: ModelTokenizer;
  beforeAll(async () => {
    tokenizer = await ModelTokenizer.load(await exportedTinyModel());
  });

  it('never emits a broken character, and the pieces add up to the text', () => {
    const text = 'Héllo wörld — 1873 ✓ 🙂 ok';
    const prompt = tokenizer.encodeChat([{ role: 'user', content: 'hi' }]);
    const ids = tokenizer.encode(text);
    const detokenizer = new IncrementalDetokenizer(tokenizer, prompt);
    const pieces = ids.map((id) => detokenizer.push(id));
    pieces.push(detokenizer.flush());
    expect(pieces.join('')).toBe(text);
    for (const piece of pieces) expect(piece).not.toContain('\uFFFD');
    // The emoji spans several byte-level tokens: some pushes release nothing.
    expect(pieces.filter((p) => p === '').length).toBeGreaterThan(0);
  });

  it("starts the answer after the prompt's last special token as a new string, as decoding the answer alone does", async () => {
    // Phi-3's real tokenizer strips the newline after <|assistant|>, so the prompt ends in that special token and
    // the answer's first SentencePiece piece carries a word-start space that decoding the answer alone drops.
    const phi3 = await ModelTokenizer.load(await familyModel('phi3'));
    const special = (text: string) => phi3.encode(text).at(-1)!;
    const prompt = [...phi3.encode('Capital of France?'), special('<|end|>'), special('<|assistant|>')];
    const answer = phi3.encode('Paris, naïvely.').slice(1); // without the BOS
    const detokenizer = new IncrementalDetokenizer(phi3, prompt);
    const pieces = answer.map((id) => detokenizer.push(id)).join('') + detokenizer.flush();
    expect(pieces).toBe(phi3.decode(answer));
    expect(pieces).toBe('Paris, naïvely.');
  });

  it("renders chat messages with the model's template, as transformers.js tokenizes them", async () => {
    const messages = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi' },
    ];
    const ids = tokenizer.encodeChat(messages);
    const reference = (await AutoTokenizer.from_pretrained(await exportedTinyModel(), { local_files_only: true })).apply_chat_template(messages, {
      add_generation_prompt: true,
      return_dict: false,
    }) as unknown as { data: BigInt64Array };
    expect(ids).toEqual(Array.from(reference.data, Number));
    expect(tokenizer.decode(ids)).toBe('system\nBe brief.\nuser\nHi\nassistant\n');
    expect(tokenizer.hasChatTemplate).toBe(true);
  });
});
