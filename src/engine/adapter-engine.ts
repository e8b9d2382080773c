import type { LocalEngine } from './local-engine.js';
import type { Choice, GenerationEngine, TextRequest } from './engine-contract.js';
import type { LoraAdapter } from './lora-adapter.js';
import type { Streamer } from './streamer.js';

/**
 * A LoRA adapter served as a model of its own: every request goes to the base engine's batch with the adapter
 * on its rows, so adapters and the base share one copy of the weights and one batch. Closing it closes nothing:
 * the base owns the session, and requests in flight finish with the adapter they started with.
 */
export class AdapterEngine implements GenerationEngine {
  constructor(
    readonly base: LocalEngine,
    readonly adapter: LoraAdapter,
  ) {}

  get model() {
    return this.base.model;
  }
  get tokenizer() {
    return this.base.tokenizer;
  }
  get contextLength() {
    return this.base.contextLength;
  }
  get device() {
    return this.base.device;
  }
  get deviceNotes() {
    return this.base.deviceNotes;
  }
  get scheduler() {
    return this.base.scheduler;
  }

  generate(request: TextRequest, streamer: Streamer): void {
    this.base.generate({ ...request, adapter: this.adapter }, streamer);
  }

  generateChoices(request: TextRequest, choices: readonly Choice[]): void {
    this.base.generateChoices({ ...request, adapter: this.adapter }, choices);
  }

  arriving(): () => void {
    return this.base.arriving();
  }

  unavailable(): Promise<string | null> {
    return this.base.unavailable();
  }

  async close(): Promise<void> {}
}
