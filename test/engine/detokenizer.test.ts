import { AutoTokenizer } from '@huggingface/transformers';
import { beforeAll, describe, expect, it } from 'vitest';
import { IncrementalDetokenizer } from '../../src/engine/detokenizer.js';
import { ModelTokenizer } from '../../src/engine/tokenizer.js';
import { exportedTinyModel } from '../helpers/models.js';

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
