import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { startServer } from '../../src/core/serve.js';
import { exportedTinyModel } from '../helpers/models.js';
import { metric, startTestServer } from '../helpers/server.js';

describe('serve --draft', () => {
  it('answers greedy requests with the same text as without a draft, and shows acceptance in /metrics', async () => {
    const prompts = Array.from({ length: 6 }, (_, i) => `Say it again: the ${i} red foxes ran over the ${i} old bridges. Say it again: the ${i} red foxes`);
    const answers = async (draft?: string) => {
      const server = await startTestServer({ draft });
      try {
        const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'x', maxRetries: 0 });
        const texts = await Promise.all(prompts.map(async (prompt) => (await client.completions.create({ model: 'tiny', prompt, max_tokens: 24, temperature: 0 })).choices[0].text));
        return { texts, drafted: await metric(server.url, 'llmkit_draft_tokens{model="tiny"}'), rate: await metric(server.url, 'llmkit_draft_acceptance_rate{model="tiny"}') };
      } finally {
        await server.drain();
      }
    };
    const plain = await answers();
    const drafted = await answers('ngram');
    expect(drafted.texts).toEqual(plain.texts);
    expect(plain.drafted).toBe(0);
    expect(drafted.drafted).toBeGreaterThan(0);
    expect(drafted.rate).toBeGreaterThanOrEqual(0);
    expect(drafted.rate).toBeLessThanOrEqual(1);
  });

  it('refuses, in one line, a graph that cannot verify drafts and a draft model of another vocabulary', async () => {
    const start = (models: string[], draft: string) => startServer({ models, host: '127.0.0.1', port: 0, device: 'cpu', log: () => {}, draft });
    await expect(start([await exportedTinyModel('tiny', 0, 'fused-gqa')], 'ngram')).rejects.toThrow(/--draft needs a decoder .*GroupQueryAttention/);
    // The tiny model with another vocabulary size in its manifest.
    const other = mkdtempSync(join(tmpdir(), 'llmkit-draft-'));
    cpSync(await exportedTinyModel(), other, { recursive: true });
    const manifest = JSON.parse(readFileSync(join(other, 'llmkit.json'), 'utf8'));
    writeFileSync(join(other, 'llmkit.json'), JSON.stringify({ ...manifest, vocab_size: manifest.vocab_size + 1 }));
    await expect(start([await exportedTinyModel()], other)).rejects.toThrow(/does not share the target's vocabulary/);
  });
});
