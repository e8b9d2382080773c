import { AutoTokenizer, env as hfEnv, LogLevel, type PreTrainedTokenizer } from '@huggingface/transformers';
import { LlmkitError } from '../core/errors.js';
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

/** A model's tokenizer and chat template (tokenizer.json + tokenizer_config.json), through transformers.js. */
export class ModelTokenizer implements TokenDecoder {
  private constructor(private readonly tokenizer: PreTrainedTokenizer) {}

  static async load(dir: string): Promise<ModelTokenizer> {
    try {
      return new ModelTokenizer(await AutoTokenizer.from_pretrained(dir, { local_files_only: true }));
    } catch (e) {
      throw new LlmkitError(`could not load the tokenizer of ${dir} (${(e as Error).message.split('\n')[0]})`, 'the folder needs tokenizer.json and tokenizer_config.json: export the model again with `llmkit export`');
    }
  }

  get hasChatTemplate(): boolean {
    return this.chatTemplate.length > 0;
  }

  /** The chat template's source ('' when there is none). */
  get chatTemplate(): string {
    return typeof this.tokenizer.chat_template === 'string' ? this.tokenizer.chat_template : '';
  }

  /** Plain text as the model sees it, with the tokenizer's own special tokens (BOS, if it adds one). */
  encode(text: string): number[] {
    return this.tokenizer.encode(text);
  }

  /** Messages (and the tools the model may call) rendered with the model's chat template, ready for the assistant's turn. */
  encodeChat(messages: ChatMessage[], tools?: ToolSpec[]): number[] {
    const text = this.tokenizer.apply_chat_template(messages as Parameters<PreTrainedTokenizer['apply_chat_template']>[0], { tokenize: false, add_generation_prompt: true, ...(tools ? { tools } : {}) }) as string;
    // The template writes the special tokens itself; adding them again would double a BOS.
    return this.tokenizer.encode(text, { add_special_tokens: false });
  }

  /** One token as text, special tokens included (logprobs name tokens this way). */
  tokenText(id: number): string {
    return this.tokenizer.decode([id], { skip_special_tokens: false });
  }

  decode(ids: readonly number[]): string {
    return this.tokenizer.decode(ids as number[], { skip_special_tokens: true });
  }
}
