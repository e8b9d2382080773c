import type { Command } from 'commander';
import type { ChatBackend } from '../../core/chat/backend.js';
import { CHAT } from '../../core/chat/options.js';
import type { Device } from '../../core/options/flag-values.js';
import { commandFrom } from '../command.js';
import { runnableModel } from '../runnable-model.js';

export function chatCommand(): Command {
  return commandFrom(CHAT, async (options, { flags }) => {
    const plain = options.plain || Boolean(flags.json) || !process.stdin.isTTY || !process.stdout.isTTY;
    const folder = options.folder && (await runnableModel(flags, options.folder));
    const backend = await openBackend({ ...options, folder }, plain);
    const { ChatSession } = await import('../../core/chat/session.js');
    const session = new ChatSession(backend, { system: options.system ?? null, settings: options.settings });
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
  });
}

/** Opens the server at --url, or the model folder in this process (CHAT's definition checked which one is given). */
async function openBackend(o: { folder?: string; url?: string; model?: string; apiKey?: string; device: Device; draft?: string }, quiet: boolean): Promise<ChatBackend> {
  if (o.url) {
    const { RemoteChatBackend } = await import('../../core/chat/remote-backend.js');
    const backend = new RemoteChatBackend({ url: o.url, model: o.model, apiKey: o.apiKey ?? process.env.LLMKIT_API_KEY });
    await backend.connect();
    return backend;
  }
  if (!quiet) process.stderr.write(`loading ${o.folder} …\n`);
  const { LocalChatBackend } = await import('../../core/chat/local-backend.js');
  return LocalChatBackend.open(o.folder!, { device: o.device, draft: o.draft });
}
