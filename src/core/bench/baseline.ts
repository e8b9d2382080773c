import type { Provider } from '../../engine/devices.js';
import type { ChatMessage } from '../../engine/tokenizer.js';

/** One request's timings, the same for every contender. */
export interface SingleRun {
  completionTokens: number;
  totalMs: number;
  /** From the first generated token to the last. */
  decodeMs: number;
}

/**
 * transformers.js `generate()` on the same exported folder (it reads onnx/model.onnx and the same
 * input/output names) and device, greedy, forced to the same number of new tokens: the reference
 * llmkit's single-stream decode is compared with. Loaded on demand: only `llmkit bench` needs it.
 */
export class TransformersJsBaseline {
  private constructor(
    private readonly tokenizer: import('@huggingface/transformers').PreTrainedTokenizer,
    private readonly model: import('@huggingface/transformers').PreTrainedModel,
    private readonly Streamer: typeof import('@huggingface/transformers').BaseStreamer,
  ) {}

  static async load(dir: string, device: Provider): Promise<TransformersJsBaseline> {
    const { AutoModelForCausalLM, AutoTokenizer, BaseStreamer, env } = await import('@huggingface/transformers');
    env.allowRemoteModels = false;
    const tokenizer = await AutoTokenizer.from_pretrained(dir, { local_files_only: true });
    const model = await AutoModelForCausalLM.from_pretrained(dir, { local_files_only: true, dtype: 'fp32', device });
    return new TransformersJsBaseline(tokenizer, model, BaseStreamer);
  }

  async run(messages: ChatMessage[], maxTokens: number): Promise<SingleRun> {
    const inputs = this.tokenizer.apply_chat_template(messages, { add_generation_prompt: true, return_dict: true }) as Record<string, unknown>;
    // The streamer hears the prompt once, then each new token: timestamps after the first are tokens.
    const times: number[] = [];
    const streamer = new (class extends this.Streamer {
      override put(): void {
        times.push(performance.now());
      }
      override end(): void {}
    })();
    const started = performance.now();
    // The typings ask for a TextStreamer; generate() only calls put/end of any BaseStreamer.
    await this.model.generate({ ...inputs, max_new_tokens: maxTokens, min_new_tokens: maxTokens, do_sample: false, streamer: streamer as never });
    const tokens = times.slice(1);
    return { completionTokens: tokens.length, totalMs: performance.now() - started, decodeMs: tokens.at(-1)! - tokens[0] };
  }

  async dispose(): Promise<void> {
    await this.model.dispose();
  }
}
