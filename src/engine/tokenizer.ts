import { AutoTokenizer, env as hfEnv, LogLevel, type PreTrainedTokenizer } from '@huggingface/transformers';
import { LlmkitError } from '../shared/errors.js';
import type { TokenDecoder } from './detokenizer.js';

// Models come from local folders only: never reach for the Hugging Face hub.
hfEnv.allowRemoteModels = false;
// Loading transformers.js resets onnxruntime-node's log level to warnings, which lets a missing CUDA
// provider print to stderr on top of the reason llmkit reports; and core never prints anyway.
hfEnv.logLevel = LogLevel.NONE;

export interface ChatMessage {
  role: string;
  content: string;
  /** An assistant turn's tool calls, arguments as objects (templates write them with `tojson`). */
  tool_calls?: { id: string; type: 'function'; function: { name: string; arguments: unknown } }[];
  /** A tool turn: the call it answers. */
  tool_call_id?: string;
  name?: string;
}

/** A function the model may call, as chat templates take it (`tools`). */
export interface ToolSpec {
  type: 'function';
  function: { name: string; description?: string; parameters?: unknown };
}

/** Variables a chat template may read besides the messages (vLLM's `chat_template_kwargs`). */
export interface ChatTemplateOptions {
  /**
   * Qwen3's thinking block. Off by default, as in training (finetune renders answers with an empty thinking block
   * and the generation prompt that ends in it), so serving sees what training did; templates without the variable
   * ignore it.
   */
  enableThinking?: boolean;
  /** The functions the model may call (templates take them as `tools`). */
  tools?: ToolSpec[];
}

/** A model's tokenizer and chat template (tokenizer.json + tokenizer_config.json), through transformers.js. */
export class ModelTokenizer implements TokenDecoder {
  /** Why transformers.js cannot render this model's chat template, or null when it can (or there is none). */
  readonly chatTemplateError: string | null;

  private constructor(
    private readonly tokenizer: PreTrainedTokenizer,
    private readonly dir: string,
  ) {
    this.chatTemplateError = this.hasChatTemplate ? this.probeChatTemplate() : null;
  }

  static async load(dir: string): Promise<ModelTokenizer> {
    try {
      return new ModelTokenizer(await AutoTokenizer.from_pretrained(dir, { local_files_only: true }), dir);
    } catch (e) {
      throw new LlmkitError(
        `could not load the tokenizer of ${dir} (${(e as Error).message.split('\n')[0]})`,
        'the folder needs tokenizer.json and tokenizer_config.json: export the model again with `llmkit export`',
      );
    }
  }

  get hasChatTemplate(): boolean {
    return this.chatTemplate.length > 0;
  }

  /** The chat template's source ('' when there is none). */
  get chatTemplate(): string {
    return typeof this.tokenizer.chat_template === 'string' ? this.tokenizer.chat_template : '';
  }

  /**
   * Renders a one-message conversation once at load, so that a template transformers.js's Jinja cannot parse or
   * run is reported with the model's name, not found on the first request (and never silently replaced).
   */
  private probeChatTemplate(): string | null {
    try {
      this.tokenizer.apply_chat_template([{ role: 'user', content: 'Hello' }], { tokenize: false, add_generation_prompt: true });
      return null;
    } catch (e) {
      return `the chat template of ${this.dir} cannot be rendered by transformers.js (${(e as Error).message.split('\n')[0]})`;
    }
  }

  /** Plain text as the model sees it, with the tokenizer's own special tokens (BOS, if it adds one). */
  encode(text: string): number[] {
    return this.tokenizer.encode(text);
  }

  /** Messages (and the tools the model may call) rendered with the model's chat template, ready for the assistant's turn. */
  encodeChat(messages: ChatMessage[], options: ChatTemplateOptions = {}): number[] {
    // The template writes the special tokens itself; adding them again would double a BOS.
    return this.tokenizer.encode(this.renderChat(messages, options), { add_special_tokens: false });
  }

  /** The text encodeChat tokenizes: the conversation and the generation prompt, as the model's template writes it. */
  renderChat(messages: ChatMessage[], options: ChatTemplateOptions = {}): string {
    if (this.chatTemplateError)
      throw new LlmkitError(this.chatTemplateError, 'use plain completions (no chat template), or replace chat_template in tokenizer_config.json with one transformers.js can run');
    // Extra keys become template variables (transformers.js passes them on, as Python does); its options type omits them.
    const render = { tokenize: false as const, add_generation_prompt: true, enable_thinking: options.enableThinking ?? false, ...(options.tools ? { tools: options.tools } : {}) };
    return this.tokenizer.apply_chat_template(messages as Parameters<PreTrainedTokenizer['apply_chat_template']>[0], render) as string;
  }

  /** One token as text, special tokens included (logprobs name tokens this way). */
  tokenText(id: number): string {
    return this.tokenizer.decode([id], { skip_special_tokens: false });
  }

  decode(ids: readonly number[]): string {
    return this.tokenizer.decode(ids as number[], { skip_special_tokens: true });
  }
}
