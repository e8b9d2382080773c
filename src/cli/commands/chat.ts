import { Command } from 'commander';
import type { ChatBackend } from '../../core/chat/backend.js';
import { UsageError } from '../../shared/errors.js';
import { parseDevice } from '../../core/choices.js';
import { action } from '../action.js';
import { parseInteger, parseNumber } from '../flags.js';
import type { GlobalFlags } from '../output.js';

interface ChatFlags {
  url?: string;
  model?: string;
  apiKey?: string;
  device: string;
  system?: string;
  temperature: string;
  topP: string;
  maxTokens: string;
  seed?: string;
  plain: boolean;
}

export function chatCommand(): Command {
  return new Command('chat')
    .description('talk to a model in the terminal: an exported model folder in-process, or any OpenAI-compatible server with --url')
    .argument('[model]', 'exported model folder (from `llmkit export` or `llmkit quantize`), run in this process')
    .option('--url <url>', 'base URL of an OpenAI-compatible API instead of a folder, e.g. http://localhost:8080/v1')
    .option('--model <name>', "with --url: the server's model (default: the first it lists)")
    .option('--api-key <key>', 'with --url: API key sent as a bearer token (default: $LLMKIT_API_KEY)')
    .option('--device <name>', 'with a folder: auto, cpu, cuda or webgpu', 'auto')
    .option('--system <text>', 'system prompt (change it later with /system)')
    .option('--temperature <x>', 'sampling temperature; 0 = always the most likely token (/temp)', '0.7')
    .option('--top-p <x>', 'nucleus sampling mass, 0 < x ≤ 1 (/top_p)', '0.95')
    .option('--max-tokens <n>', 'new tokens per reply, at most (/max)', '512')
    .option('--seed <n>', 'seed for reproducible replies (/seed); default: a fresh one per reply')
    .option('--plain', 'one message per input line, replies on stdout (the default when stdin or stdout is not a terminal)', false)
    .action(
      action(async (opts: ChatFlags, flags: GlobalFlags, [model]) => {
        const topP = parseNumber(opts.topP, '--top-p', { max: 1 });
        if (topP <= 0) throw new UsageError(`--top-p must be a number > 0 and ≤ 1 (got ${opts.topP})`);
        const settings = {
          temperature: parseNumber(opts.temperature, '--temperature', { min: 0, max: 2 }),
          topP,
          maxTokens: parseInteger(opts.maxTokens, '--max-tokens', 1),
          seed: opts.seed === undefined ? null : parseInteger(opts.seed, '--seed', 0),
        };
        const plain = opts.plain || Boolean(flags.json) || !process.stdin.isTTY || !process.stdout.isTTY;
        const backend = await openBackend(model, opts, plain);
        const { ChatSession } = await import('../../core/chat/session.js');
        const session = new ChatSession(backend, { system: opts.system ?? null, settings });
        try {
          if (!plain) {
            // Loaded here: ink takes about a second to import, which no other command (nor the plain mode) should pay.
            const { runChatApp } = await import('../../tui/chat-app.js');
            return await runChatApp(session);
          }
          const { runPlainChat } = await import('../../core/chat/plain-chat.js');
          const stop = new AbortController();
          const onSigint = () => stop.abort();
          process.once('SIGINT', onSigint);
          try {
            return await runPlainChat({ session, input: process.stdin, output: process.stdout, messages: process.stderr, json: Boolean(flags.json), stopSignal: stop.signal });
          } finally {
            process.off('SIGINT', onSigint);
          }
        } finally {
          await backend.close();
        }
      }),
    );
}

/** Checks that exactly one of a folder and --url is given, with the flags that go with it, then opens it. */
async function openBackend(model: string | undefined, opts: ChatFlags, quiet: boolean): Promise<ChatBackend> {
  if (model && opts.url) throw new UsageError(`pass a model folder or --url, not both (got ${model} and --url ${opts.url})`);
  if (!model && !opts.url) throw new UsageError('pass a model folder (llmkit chat ./models/x-int8) or --url http://HOST:PORT/v1');
  if (opts.url) {
    if (opts.device !== 'auto') throw new UsageError('--device goes with a model folder: the server picks its own device');
    let url: URL;
    try {
      url = new URL(opts.url);
    } catch {
      throw new UsageError(`--url must be an http(s) URL like http://localhost:8080/v1 (got ${opts.url})`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--url must be an http(s) URL like http://localhost:8080/v1 (got ${opts.url})`);
    const { RemoteChatBackend } = await import('../../core/chat/remote-backend.js');
    const backend = new RemoteChatBackend({ url: opts.url, model: opts.model, apiKey: opts.apiKey ?? process.env.LLMKIT_API_KEY });
    await backend.connect();
    return backend;
  }
  if (opts.model) throw new UsageError('--model goes with --url (a model folder names its model itself)');
  if (opts.apiKey) throw new UsageError('--api-key goes with --url');
  if (!quiet) process.stderr.write(`loading ${model} …\n`);
  const { LocalChatBackend } = await import('../../core/chat/local-backend.js');
  return LocalChatBackend.open(model!, { device: parseDevice(opts.device) });
}
