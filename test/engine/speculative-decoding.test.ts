import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DecoderSession } from '../../src/engine/decoder-session.js';
import { mkdtemp, readdir, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DRAFT_VOCAB_FILE, ModelDrafter } from '../../src/engine/draft-model.js';
import { NgramDrafter, type Drafter, type DraftRequest } from '../../src/engine/drafter.js';
import type { SchedulerLimits } from '../../src/engine/admission.js';
import { GenerationScheduler } from '../../src/engine/generation-scheduler.js';
import type { TokenSink } from '../../src/engine/sequence.js';
import { loadExportedModel } from '../../src/engine/model-manifest.js';
import { Random } from '../../src/engine/random.js';
import { GREEDY, type SamplingParams } from '../../src/engine/sampling.js';
import { exportedTinyModel } from '../helpers/models.js';

const prompt = (length: number, seed: number) => {
  const random = new Random(seed);
  return Array.from({ length }, () => 4 + Math.floor(random.next() * 700));
};

/** Runs requests through a scheduler (all submitted at once, so they share batches) and returns their tokens. */
async function generate(scheduler: GenerationScheduler, requests: { ids: number[]; maxTokens: number; sampling?: SamplingParams }[]): Promise<number[][]> {
  return Promise.all(
    requests.map(
      (r) =>
        new Promise<number[]>((resolve, reject) => {
          const tokens: number[] = [];
          const sink: TokenSink = {
            token: (id) => (tokens.push(id), false),
            end: (end) => (end.error ? reject(end.error) : resolve(tokens)),
          };
          scheduler.submit({ promptIds: r.ids, maxTokens: r.maxTokens, sampling: r.sampling ?? GREEDY, stopTokenIds: [], sink });
        }),
    ),
  );
}

/**
 * A drafter that knows each prompt's reference continuation and proposes it with mistakes: each drafted token is
 * wrong with probability `error`, and every third row gets no draft at all, so passes mix rows that keep all, some
 * and none of their drafts with rows that draft nothing.
 */
class ReferenceDrafter implements Drafter {
  readonly name = 'reference';
  readonly costPerToken = 0;
  private readonly random = new Random(5);
  readonly seen = new Set<object>();
  forgotten = 0;

  constructor(
    private readonly references: Map<string, { prompt: number[]; tokens: number[] }>,
    private readonly error: number,
  ) {}

  async propose(requests: readonly DraftRequest[]): Promise<number[][]> {
    return requests.map(({ row, context, k }) => {
      this.seen.add(row);
      const ref = [...this.references.values()].find((r) => r.prompt.every((t, i) => context[i] === t));
      if (!ref || ref.prompt[0] % 3 === 0) return [];
      const done = context.length - ref.prompt.length;
      return ref.tokens.slice(done, done + k).map((t) => (this.random.next() < this.error ? (t + 1) % 700 : t));
    });
  }

  forget(): void {
    this.forgotten++;
  }

  async release(): Promise<void> {}
}

/** A folder that is `exported` with a draft-vocab.json of `ids` beside it. */
async function withDraftVocabulary(exported: string, ids: readonly number[]): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'llmkit-draft-vocab-'));
  for (const name of await readdir(exported)) await symlink(join(exported, name), join(dir, name));
  await writeFile(join(dir, DRAFT_VOCAB_FILE), JSON.stringify({ ids }));
  return dir;
}

/** Two-sample chi-square over the first 2, 3 and 4 tokens of sampled answers: `drafted` follows `plain`'s distribution. */
function expectSameDistribution(plain: number[][], drafted: number[][]): void {
  for (const position of [1, 2, 3]) {
    const key = (t: number[]) => t.slice(0, position + 1).join();
    const a = new Map<string, number>();
    const b = new Map<string, number>();
    for (const t of plain) a.set(key(t), (a.get(key(t)) ?? 0) + 1);
    for (const t of drafted) b.set(key(t), (b.get(key(t)) ?? 0) + 1);
    // Categories with too few samples are pooled into one.
    const cells = [...new Set([...a.keys(), ...b.keys()])];
    const big = cells.filter((c) => (a.get(c) ?? 0) + (b.get(c) ?? 0) >= 10);
    const pooled = (m: Map<string, number>) => [...big.map((c) => m.get(c) ?? 0), cells.filter((c) => !big.includes(c)).reduce((s, c) => s + (m.get(c) ?? 0), 0)];
    const [x, y] = [pooled(a), pooled(b)];
    let chi = 0;
    x.forEach((xi, i) => xi + y[i] > 0 && (chi += (xi - y[i]) ** 2 / (xi + y[i])));
    const df = x.filter((xi, i) => xi + y[i] > 0).length - 1;
    // Wilson-Hilferty's approximation of the chi-square quantile at p = 0.001.
    const critical = df * (1 - 2 / (9 * df) + 3.09 * Math.sqrt(2 / (9 * df))) ** 3;
    expect(chi, `position ${position}: chi-square ${chi.toFixed(1)}, df ${df}`).toBeLessThan(critical);
  }
}

describe('speculative decoding in the scheduler', () => {
  let decoder: DecoderSession;
  const limits: SchedulerLimits = { maxBatch: 8, maxQueue: 1000, maxTokensTotal: 8 * 512, prefillChunk: 256 };

  beforeAll(async () => {
    decoder = await DecoderSession.open(loadExportedModel(await exportedTinyModel()), { device: 'cpu', logits: 'last' });
  });
  afterAll(() => decoder.release());

  const cases = Array.from({ length: 24 }, (_, i) => ({ ids: prompt(3 + ((i * 7) % 40), 100 + i), maxTokens: 12 + ((i * 5) % 30) }));

  it('gives greedy requests the same tokens as without a draft, over many prompts in mixed batches', async () => {
    const plain = await generate(new GenerationScheduler(decoder, limits), cases);
    const references = new Map(cases.map((c, i) => [String(i), { prompt: c.ids, tokens: plain[i] }]));
    for (const error of [0, 0.15, 0.5]) {
      const drafter = new ReferenceDrafter(references, error);
      const scheduler = new GenerationScheduler(decoder, limits, undefined, undefined, drafter);
      const drafted = await generate(scheduler, cases);
      for (const [i] of cases.entries()) expect(drafted[i], `prompt ${i}, error ${error}`).toEqual(plain[i]);
      const { proposed, accepted, passes } = scheduler.drafts;
      expect(passes).toBeGreaterThan(0);
      if (error === 0) expect(accepted).toBe(proposed);
      else expect(accepted).toBeLessThan(proposed);
      expect(accepted).toBeGreaterThan(0);
      // Passes verified several tokens a row: fewer passes than tokens.
      if (error === 0) expect(passes).toBeLessThan(plain.flat().length / 3);
      expect(drafter.forgotten).toBe(drafter.seen.size);
    }
  });

  it('gives the same tokens with prompt lookup (--draft ngram)', async () => {
    const looping = cases.map((c) => ({ ...c, ids: [...c.ids, ...c.ids.slice(0, 10)] }));
    const plain = await generate(new GenerationScheduler(decoder, limits), looping);
    const scheduler = new GenerationScheduler(decoder, limits, undefined, undefined, new NgramDrafter());
    expect(await generate(scheduler, looping)).toEqual(plain);
    expect(scheduler.drafts.proposed).toBeGreaterThan(0);
  });

  it('gives the same tokens with a draft model, its cache kept in step with the rows it drafts for, its output layer whole or cut', async () => {
    const plain = await generate(new GenerationScheduler(decoder, limits), cases);
    // The target as its own draft accepts everything; a model of other weights (same vocabulary) accepts some. Cut
    // to the tokens the target answers with (--draft-vocab, in another order), the target's argmax over those is
    // its argmax, so every draft is right; cut to a third of them, some are wrong and none is outside the list.
    const answered = [...new Set(plain.flat())].sort((a, b) => b - a);
    const third = answered.filter((_, i) => i % 3 === 0);
    for (const [draft, all, ids] of [
      [await exportedTinyModel('tiny', 0), true],
      [await exportedTinyModel('tiny', 1), false],
      [await withDraftVocabulary(await exportedTinyModel(), answered), true, answered],
      [await withDraftVocabulary(await exportedTinyModel(), third), false, third],
    ] as const) {
      // A draft as large as the target never pays (draft-length.ts would only probe): cost 0, so every step drafts.
      const drafter = Object.assign(await ModelDrafter.open(draft, decoder, { device: 'cpu' }), { costPerToken: 0 });
      const scheduler = new GenerationScheduler(decoder, limits, undefined, undefined, drafter);
      expect(await generate(scheduler, cases)).toEqual(plain);
      const { proposed, accepted } = scheduler.drafts;
      expect(proposed).toBeGreaterThan(0);
      if (all) expect(accepted).toBe(proposed);
      else expect(accepted).toBeLessThan(proposed);
      if (ids) {
        const proposals = await drafter.propose(cases.slice(0, 4).map((c) => ({ row: {}, context: c.ids, k: 3 })));
        expect(proposals.flat().every((t) => ids.includes(t))).toBe(true);
      }
      await drafter.release();
    }
  });

  it("samples from the target's distribution with drafts (two-sample chi-square against no draft)", async () => {
    const ids = prompt(12, 77);
    const sampling = { ...GREEDY, temperature: 1, topK: 3 };
    const n = 300;
    const requests = (offset: number) => Array.from({ length: n }, (_, i) => ({ ids, maxTokens: 4, sampling: { ...sampling, seed: offset + i } }));
    const plain = await generate(new GenerationScheduler(decoder, limits), requests(0));
    // The draft proposes the most frequent continuation: often right, often not.
    const counts = new Map<string, number>();
    for (const t of plain) counts.set(t.join(), (counts.get(t.join()) ?? 0) + 1);
    const top = [...counts]
      .sort((a, b) => b[1] - a[1])[0][0]
      .split(',')
      .map(Number);
    const drafter = new ReferenceDrafter(new Map([['x', { prompt: ids, tokens: top }]]), 0);
    const scheduler = new GenerationScheduler(decoder, limits, undefined, undefined, drafter);
    const drafted = await generate(scheduler, requests(10_000));
    expect(scheduler.drafts.accepted).toBeGreaterThan(0);
    expect(scheduler.drafts.accepted).toBeLessThan(scheduler.drafts.proposed);
    expectSameDistribution(plain, drafted);
    // A draft model proposing from some tokens only (--draft-vocab): its proposals are one-hot like any other.
    const answered = [...new Set(plain.flat())];
    const vocabDrafter = Object.assign(await ModelDrafter.open(await withDraftVocabulary(await exportedTinyModel('tiny', 1), answered), decoder, { device: 'cpu' }), { costPerToken: 0 });
    const vocabScheduler = new GenerationScheduler(decoder, limits, undefined, undefined, vocabDrafter);
    expectSameDistribution(plain, await generate(vocabScheduler, requests(20_000)));
    expect(vocabScheduler.drafts.accepted).toBeGreaterThan(0);
    await vocabDrafter.release();
  });
});
