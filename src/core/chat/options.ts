import { UsageError } from '../../shared/errors.js';
import { DEVICES, IMPORTABLE_MODELS } from '../options/flag-values.js';
import { defineCommand } from '../options/define.js';
import { booleanField, enumField, intField, numberField, textField } from '../options/fields.js';

export const CHAT = defineCommand({
  name: 'chat',
  description: 'talk to a model in the terminal: an exported model folder in-process, or any OpenAI-compatible server with --url',
  options: {
    // `folder`, not `model`: --model names the server's model. --help shows it as [model].
    folder: {
      field: textField(),
      positional: true,
      display: '[model]',
      help: `exported model folder (from \`llmkit export\` or \`llmkit quantize\`), or ${IMPORTABLE_MODELS} (exported once), run in this process`,
    },
    url: { field: textField(), value: '<url>', help: 'base URL of an OpenAI-compatible API instead of a folder, e.g. http://localhost:8080/v1' },
    model: { field: textField(), value: '<name>', help: "with --url: the server's model", defaultHelp: 'the first it lists' },
    apiKey: { field: textField(), value: '<key>', help: 'with --url: API key sent as a bearer token', defaultHelp: '$LLMKIT_API_KEY' },
    device: { field: enumField(DEVICES), value: '<name>', default: 'auto', help: 'with a folder: auto, cpu, cuda or webgpu' },
    draft: { field: textField(), value: '<ngram|dir>', help: 'with a folder: speculative decoding, as `serve --draft` (ngram: prompt lookup, or a draft model folder)' },
    system: { field: textField(), value: '<text>', help: 'system prompt (change it later with /system)' },
    temperature: { field: numberField({ min: 0, max: 2 }), value: '<x>', default: 0.7, help: 'sampling temperature; 0 = always the most likely token (/temp)' },
    topP: { field: numberField({ above: 0, max: 1 }), value: '<x>', default: 0.95, help: 'nucleus sampling mass, 0 < x ≤ 1 (/top_p)' },
    maxTokens: { field: intField(1), value: '<n>', default: 512, help: 'new tokens per reply, at most (/max)' },
    seed: { field: intField(0), value: '<n>', help: 'seed for reproducible replies (/seed)', defaultHelp: 'a fresh one per reply' },
    plain: {
      field: booleanField(),
      default: false,
      help: 'one message per input line, replies on stdout (the default when stdin or stdout is not a terminal)',
    },
  },
  // Exactly one of a folder and --url, each with the flags that go with it.
  finish: (o) => {
    if (o.folder && o.url) throw new UsageError(`pass a model folder or --url, not both (got ${o.folder} and --url ${o.url})`);
    if (!o.folder && !o.url) throw new UsageError('pass a model folder (llmkit chat ./models/x-int8) or --url http://HOST:PORT/v1');
    if (o.url) {
      if (o.device !== 'auto') throw new UsageError('--device goes with a model folder: the server picks its own device');
      if (o.draft) throw new UsageError('--draft goes with a model folder: a server drafts with its own `serve --draft`');
      const protocol = URL.canParse(o.url) ? new URL(o.url).protocol : '';
      if (protocol !== 'http:' && protocol !== 'https:') throw new UsageError(`--url must be an http(s) URL like http://localhost:8080/v1 (got ${o.url})`);
    } else {
      if (o.model) throw new UsageError('--model goes with --url (a model folder names its model itself)');
      if (o.apiKey) throw new UsageError('--api-key goes with --url');
    }
    return { ...o, settings: { temperature: o.temperature, topP: o.topP, maxTokens: o.maxTokens, seed: o.seed ?? null } };
  },
});
