import { ApiFailure, checked, describeFailure, groupByBase, headers, listModels, type ModelGroup, type ModelInfo } from './api.js';
import { readEvents } from './sse.js';

/** One exchange as kept in the browser: what was said, and how fast the answer came. */
interface Message {
  role: 'system' | 'user' | 'assistant';
  content: string;
  model?: string;
  stats?: string;
  error?: string;
}

interface Conversation {
  id: string;
  title: string;
  messages: Message[];
}

const STORE = 'llmkit.conversations';
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

/** The playground: a model picker, sampling settings, JSON mode, a streamed answer with its speed, conversations in localStorage. */
export class ChatView {
  private conversations: Conversation[] = JSON.parse(localStorage.getItem(STORE) ?? '[]') as Conversation[];
  private current: Conversation;
  private running?: AbortController;

  constructor() {
    this.current = this.conversations[0] ?? this.newConversation();
    $('send').addEventListener('click', () => void this.send());
    $('stop').addEventListener('click', () => this.running?.abort());
    $('new-chat').addEventListener('click', () => {
      this.current = this.newConversation();
      this.render();
    });
    $<HTMLTextAreaElement>('prompt').addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey) {
        e.preventDefault();
        void this.send();
      }
    });
    $<HTMLInputElement>('json-mode').addEventListener('change', (e) => {
      $('schema-box').hidden = !(e.target as HTMLInputElement).checked;
    });
    this.render();
  }

  /** Fills the model picker from /v1/models; an auth failure is shown where the answer would be. */
  async loadModels(): Promise<void> {
    const picker = $<HTMLSelectElement>('model');
    try {
      const models = await listModels();
      const chosen = picker.value;
      picker.replaceChildren(...pickerEntries(groupByBase(models)));
      if (models.some((m) => m.id === chosen)) picker.value = chosen;
      this.setStatus('');
    } catch (e) {
      this.setStatus(describeFailure(e), true);
    }
  }

  private newConversation(): Conversation {
    const c: Conversation = { id: String(Date.now()), title: 'new conversation', messages: [] };
    this.conversations.unshift(c);
    return c;
  }

  private save(): void {
    localStorage.setItem(STORE, JSON.stringify(this.conversations.slice(0, 50)));
  }

  private setStatus(text: string, error = false): void {
    const status = $('chat-status');
    status.textContent = text;
    status.className = error ? 'error' : 'muted';
  }

  /** The request the settings describe (OpenAI chat.completions, streamed with usage). */
  private request(history: Message[]): Record<string, unknown> {
    const num = (id: string) => Number($<HTMLInputElement>(id).value);
    const system = $<HTMLTextAreaElement>('system').value.trim();
    const stop = $<HTMLInputElement>('stop-seq')
      .value.split('|')
      .map((s) => s.replace(/\\n/g, '\n'))
      .filter(Boolean);
    const body: Record<string, unknown> = {
      model: $<HTMLSelectElement>('model').value,
      messages: [...(system ? [{ role: 'system', content: system }] : []), ...history.filter((m) => !m.error).map(({ role, content }) => ({ role, content }))],
      temperature: num('temperature'),
      top_p: num('top-p'),
      max_tokens: num('max-tokens'),
      stream: true,
      stream_options: { include_usage: true },
    };
    if (stop.length) body.stop = stop;
    if ($<HTMLInputElement>('json-mode').checked) {
      const schema = $<HTMLTextAreaElement>('schema').value.trim();
      body.response_format = schema ? { type: 'json_schema', json_schema: { name: 'schema', strict: true, schema: JSON.parse(schema) } } : { type: 'json_object' };
    }
    return body;
  }

  private async send(): Promise<void> {
    const input = $<HTMLTextAreaElement>('prompt');
    const text = input.value.trim();
    if (!text || this.running) return;
    input.value = '';
    const c = this.current;
    if (!c.messages.length) c.title = text.slice(0, 40);
    c.messages.push({ role: 'user', content: text });
    const answer: Message = { role: 'assistant', content: '' };
    let body: Record<string, unknown>;
    try {
      body = this.request(c.messages);
    } catch (e) {
      answer.error = `the JSON schema is not valid JSON: ${describeFailure(e)}`;
      c.messages.push(answer);
      return this.finish();
    }
    answer.model = String(body.model);
    c.messages.push(answer);
    this.render();
    this.running = new AbortController();
    $('send').setAttribute('disabled', '');
    const started = performance.now();
    let firstToken: number | undefined;
    let tokens = 0;
    try {
      const res = await checked(await fetch('/v1/chat/completions', { method: 'POST', headers: headers(true), body: JSON.stringify(body), signal: this.running.signal }));
      for await (const chunk of readEvents(res.body!)) {
        const error = chunk.error as { message?: string; code?: string } | undefined;
        if (error) throw new ApiFailure(500, error.code ?? null, error.message ?? 'the stream ended with an error');
        const delta = (chunk.choices as { delta?: { content?: string } }[] | undefined)?.[0]?.delta?.content;
        if (delta) {
          firstToken ??= performance.now();
          answer.content += delta;
          this.renderAnswer(answer);
        }
        const usage = chunk.usage as { completion_tokens?: number } | null | undefined;
        if (usage?.completion_tokens !== undefined) tokens = usage.completion_tokens;
      }
      answer.stats = speedLine(tokens, started, firstToken, performance.now());
    } catch (e) {
      if (this.running.signal.aborted) answer.stats = `stopped · ${speedLine(tokens, started, firstToken, performance.now())}`;
      else answer.error = describeFailure(e);
    }
    this.finish();
  }

  private finish(): void {
    this.running = undefined;
    $('send').removeAttribute('disabled');
    this.save();
    this.render();
  }

  private renderAnswer(answer: Message): void {
    const last = $('messages').lastElementChild?.querySelector('.content');
    if (last) last.textContent = answer.content;
  }

  private render(): void {
    $('messages').replaceChildren(...this.current.messages.map(messageElement));
    $('messages').scrollTop = $('messages').scrollHeight;
    $('conversations').replaceChildren(
      ...this.conversations.map((c) => {
        const item = document.createElement('li');
        item.textContent = c.title;
        item.className = c === this.current ? 'active' : '';
        item.addEventListener('click', () => {
          this.current = c;
          this.render();
        });
        return item;
      }),
    );
  }
}

function messageElement(m: Message): HTMLElement {
  const el = document.createElement('div');
  el.className = `message ${m.role}`;
  const who = document.createElement('div');
  who.className = 'who';
  who.textContent = m.role === 'assistant' ? (m.model ?? 'assistant') : m.role;
  const content = document.createElement('div');
  content.className = 'content';
  content.textContent = m.content;
  el.append(who, content);
  if (m.error) {
    const error = document.createElement('div');
    error.className = 'error';
    error.textContent = m.error;
    el.append(error);
  }
  if (m.stats) {
    const stats = document.createElement('div');
    stats.className = 'stats';
    stats.textContent = m.stats;
    el.append(stats);
  }
  return el;
}

/** "12 tokens · 48.1 tok/s · TTFT 35 ms": decode speed counts the tokens after the first over the time after it. */
export function speedLine(tokens: number, started: number, firstToken: number | undefined, ended: number): string {
  if (firstToken === undefined) return `${tokens} tokens`;
  const decodeSeconds = (ended - firstToken) / 1000;
  const rate = tokens > 1 && decodeSeconds > 0 ? `${((tokens - 1) / decodeSeconds).toFixed(1)} tok/s` : '– tok/s';
  return `${tokens} tokens · ${rate} · TTFT ${Math.round(firstToken - started)} ms`;
}

const label = (m: ModelInfo) => `${m.id} (${m.device}, ${m.context_length} ctx)`;

/**
 * Options for the model picker: one per model while no LoRA adapters are served; with adapters, each base heads a
 * group holding itself and the adapters that run over it (/v1/models' `parent`).
 */
function pickerEntries(groups: ModelGroup[]): (HTMLOptionElement | HTMLOptGroupElement)[] {
  if (groups.every((g) => !g.adapters.length)) return groups.flatMap((g) => (g.model ? [new Option(label(g.model), g.model.id)] : []));
  return groups.map((g) => {
    const optgroup = document.createElement('optgroup');
    optgroup.label = g.base;
    if (g.model) optgroup.append(new Option(`${label(g.model)}, no adapter`, g.model.id));
    optgroup.append(...g.adapters.map((a) => new Option(`${a.id}: LoRA adapter on ${g.base}`, a.id)));
    return optgroup;
  });
}
