import type { Choice, EngineRejection, TextRequest } from '../../src/engine/engine-contract.js';
import type { GenerationEngine } from '../../src/engine/engine-contract.js';
import type { ExportedModel } from '../../src/engine/model-manifest.js';
import type { Streamer } from '../../src/engine/streamer.js';
import type { ModelTokenizer } from '../../src/engine/tokenizer.js';

/**
 * An engine with no model, for tests of what sits above the engine (the request handler, quotas, the
 * cache): one token per character of the prompt, and every choice answers `pieces`, one token each.
 * Mocks stand in only where a real engine would add nothing but time; the engine's own tests use real weights.
 */
export class FakeEngine implements GenerationEngine {
  readonly contextLength: number;
  readonly device = 'fake';
  readonly deviceNotes: string[] = [];
  readonly scheduler = { queueDepth: 0, batchSize: 0 };
  readonly model: ExportedModel;
  readonly tokenizer: ModelTokenizer;
  /** Every request the engine took, with its choices. */
  readonly requests: { request: TextRequest; choices: readonly Choice[] }[] = [];
  /** Interactive requests announced and not queued yet (see GenerationScheduler.arriving), and that count at each request taken. */
  arrivals = 0;
  readonly arrivalsAtSubmit: number[] = [];
  /** Set to refuse the next requests as a full queue would. */
  refuse?: EngineRejection;

  constructor(
    readonly pieces: readonly string[] = ['Hel', 'lo', ' world'],
    opts: { contextLength?: number; vocabSize?: number } = {},
  ) {
    this.contextLength = opts.contextLength ?? 64;
    const vocabSize = opts.vocabSize ?? 256;
    this.model = { dir: '/nonexistent/fake-model', onnxPath: '/nonexistent/fake-model/model.onnx', manifest: { vocab_size: vocabSize, eos_token_ids: [0] } as ExportedModel['manifest'] };
    const encode = (text: string) => [...text].map((c) => c.charCodeAt(0) % vocabSize);
    this.tokenizer = {
      hasChatTemplate: true,
      chatTemplateError: null,
      chatTemplate: '',
      encode,
      encodeChat: (messages: { content: string }[]) => encode(messages.map((m) => m.content).join('\n')),
      tokenText: (id: number) => String.fromCharCode(id),
    } as unknown as ModelTokenizer;
  }

  generate(request: TextRequest, streamer: Streamer): void {
    this.generateChoices(request, [{ streamer }]);
  }

  generateChoices(request: TextRequest, choices: readonly Choice[]): void {
    if (this.refuse) throw this.refuse;
    this.requests.push({ request, choices });
    this.arrivalsAtSubmit.push(this.arrivals);
    setImmediate(() => {
      for (const { streamer } of choices) {
        for (const piece of this.pieces) streamer.put(piece);
        streamer.end({ reason: 'stop', promptTokens: request.promptIds.length, completionTokens: this.pieces.length, interTokenMs: [] });
      }
    });
  }

  arriving(): () => void {
    this.arrivals++;
    let done = false;
    return () => void (!done && ((done = true), this.arrivals--));
  }

  async unavailable(): Promise<string | null> {
    return null;
  }

  async close(): Promise<void> {}
}
