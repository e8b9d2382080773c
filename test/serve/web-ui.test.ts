import { appendFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, publishScreenshot, screenshotPath } from '../helpers/browser.js';
import { randomAdapter } from '../helpers/lora.js';
import { exportedTinyModel, tinyModel } from '../helpers/models.js';
import { svgDocument } from '../../src/core/charts/svg.js';
import { chartSeriesOf } from '../helpers/charts.js';
import { tempDir } from '../helpers/cli.js';
import type { ServeOptions } from '../../src/core/serve.js';
import { metric, startTestServer, type TestServer } from '../helpers/server.js';

/**
 * The page `llmkit serve` serves at `/`, driven in a real headless Chromium against the real server with the tiny
 * model: the chat streams, the model picker switches, conversations survive a reload, JSON mode follows its schema,
 * the dashboard's numbers move under load, and a missing or wrong key is shown as an authentication error.
 */
let browser: Browser;

beforeAll(async () => {
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
});

/** A real server started with `options()` before the block's tests and a fresh page on it, both closed after them. */
function servedPage(options: () => Promise<Partial<ServeOptions>>): { server: TestServer; page: Page } {
  const held = {} as { server: TestServer; page: Page };
  beforeAll(async () => {
    held.server = await startTestServer(await options());
    held.page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  }, 300_000);
  afterAll(async () => {
    await held.page?.close();
    await held.server?.drain();
  });
  return held;
}

async function shot(page: Page, name: string): Promise<void> {
  const path = screenshotPath(name);
  await page.screenshot({ path });
  expect(statSync(path).size).toBeGreaterThan(10_000);
  publishScreenshot(path, name);
}

/** Fills the settings, sends one message and waits for the answer's speed line; returns the answer's text and its line. */
async function ask(page: Page, text: string, settings: { temperature?: string; maxTokens?: string } = {}) {
  await page.fill('#temperature', settings.temperature ?? '0');
  await page.fill('#max-tokens', settings.maxTokens ?? '16');
  const before = await page.locator('.message.assistant').count();
  await page.fill('#prompt', text);
  await page.click('#send');
  const answer = page.locator('.message.assistant').nth(before);
  await answer.locator('.stats, .error').first().waitFor({ timeout: 60_000 });
  return {
    who: await answer.locator('.who').textContent(),
    content: (await answer.locator('.content').textContent()) ?? '',
    stats: (await answer.locator('.stats').count()) ? await answer.locator('.stats').textContent() : null,
    error: (await answer.locator('.error').count()) ? await answer.locator('.error').textContent() : null,
  };
}

describe('the web page, without API keys', () => {
  let server: TestServer;
  let page: Page;
  let client: OpenAI;

  beforeAll(async () => {
    const model = await exportedTinyModel();
    server = await startTestServer({ models: [`tiny=${model}`, `tiny-b=${model}`], maxBatch: 8 });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  }, 300_000);

  afterAll(async () => {
    await page?.close();
    await server?.drain();
  });

  it('is served at / from this server alone: no other origin is allowed', async () => {
    const res = await fetch(`${server.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toMatch(/^default-src 'self'/);
    const html = await res.text();
    expect(html).not.toMatch(/https?:\/\//);
    const app = await fetch(`${server.url}/ui/app.js`);
    expect([app.status, app.headers.get('content-type')]).toEqual([200, 'text/javascript; charset=utf-8']);
  });

  it('streams a chat answer: the same text the API gives, arriving in pieces, with tokens/s and TTFT', async () => {
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${server.url}/`);
    await page.waitForFunction(() => document.querySelectorAll('#model option').length === 2);
    expect(await page.$$eval('#model option', (o) => o.map((x) => (x as HTMLOptionElement).value))).toEqual(['tiny', 'tiny-b']);
    // Count the answer's text changes: a streamed answer changes many times, a buffered one once.
    await page.evaluate(() => {
      const w = window as unknown as { changes: number };
      w.changes = 0;
      new MutationObserver(() => w.changes++).observe(document.getElementById('messages')!, { subtree: true, characterData: true, childList: true });
    });
    const answer = await ask(page, 'Name a river.', { maxTokens: '24' });
    const expected = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'Name a river.' }], temperature: 0, max_tokens: 24 });
    expect(answer.error).toBeNull();
    expect(answer.who).toBe('tiny');
    expect(answer.content).toBe(expected.choices[0].message.content);
    expect(answer.stats).toMatch(new RegExp(`^${expected.usage!.completion_tokens} tokens · \\d+\\.\\d tok/s · TTFT \\d+ ms$`));
    expect(await page.evaluate(() => (window as unknown as { changes: number }).changes)).toBeGreaterThan(5);
    expect(errors).toEqual([]);
    await shot(page, 'serve-chat.png');
  }, 120_000);

  it('switches the model, and keeps the conversation in the browser across a reload', async () => {
    await page.selectOption('#model', 'tiny-b');
    const answer = await ask(page, 'And another one?');
    expect(answer.who).toBe('tiny-b');
    expect(server.log.filter((l) => l.includes('model=tiny-b'))).toHaveLength(1);
    await page.reload();
    await page.waitForSelector('.message.assistant');
    expect(await page.locator('.message.user .content').allTextContents()).toEqual(['Name a river.', 'And another one?']);
    expect(await page.locator('#conversations li.active').textContent()).toBe('Name a river.');
  }, 120_000);

  it('answers in JSON that follows the schema box', async () => {
    await page.click('#new-chat');
    await page.check('#json-mode');
    await page.fill('#schema', JSON.stringify({ type: 'object', properties: { n: { type: 'integer', minimum: 1, maximum: 9 } }, required: ['n'], additionalProperties: false }));
    const answer = await ask(page, 'A number, as JSON', { maxTokens: '32' });
    const parsed = JSON.parse(answer.content) as { n: number };
    expect(Object.keys(parsed)).toEqual(['n']);
    expect(Number.isInteger(parsed.n) && parsed.n >= 1 && parsed.n <= 9).toBe(true);
    await page.uncheck('#json-mode');
  }, 120_000);

  it("shows the dashboard's numbers moving while a load runs", async () => {
    await page.goto(`${server.url}/`);
    // No adapters: a flat list, no groups.
    expect(await page.locator('#model optgroup').count()).toBe(0);
    await page.click('#tab-dashboard');
    await page.waitForSelector('#tps-tiny');
    const cell = async (column: number) => Number(await page.locator(`#model-tiny td:nth-child(${column})`).textContent());
    const requestsOf = () => cell(5);
    const before = await requestsOf();
    // A quiet machine answers a wave of six in about a second, between two of the dashboard's polls: send waves
    // until the page has shown a moving figure (or 20 waves), and count them all.
    const wave = () =>
      Promise.all(Array.from({ length: 6 }, (_, i) => client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: `load ${i}` }], max_tokens: 400, temperature: 0.8 })));
    let peak = 0;
    let busiest = 0;
    let screenshotTaken = false;
    let waves = 0;
    while ((peak === 0 || busiest < 2) && waves < 20) {
      let done = false;
      const load = wave().finally(() => (done = true));
      waves += 1;
      while (!done) {
        const tps = Number(await page.locator('#tps-tiny').textContent());
        const batch = await cell(4);
        peak = Math.max(peak, tps);
        busiest = Math.max(busiest, batch);
        if (tps > 0 && !screenshotTaken) {
          await shot(page, 'serve-dashboard.png');
          screenshotTaken = true;
        }
        await page.waitForTimeout(100);
      }
      await load;
    }
    const sent = before + 6 * waves;
    await page.waitForFunction((n) => Number(document.querySelector('#model-tiny td:nth-child(5)')?.textContent) >= n, sent, { timeout: 10_000 });
    expect(await requestsOf()).toBe(sent);
    expect(peak).toBeGreaterThan(0);
    expect(busiest).toBeGreaterThan(1);
    expect(await page.locator('#model-tiny td:nth-child(7)').textContent()).toMatch(/since start \d+ \/ \d+\)/);
    expect(await page.locator('#quota-table').textContent()).toMatch(/key anonymous/);
    // No --runs: the server has no /runs and the page no runs section.
    expect(await page.locator('#runs').isHidden()).toBe(true);
  }, 180_000);
});

describe('the web page, with an API key', () => {
  const runs = tempDir('llmkit-runs-');
  const training = join(runs, 'lora-run');
  const step = (n: number) => JSON.stringify({ step: n, loss: 3 - n / 4, lr: 1e-3, tokens_per_s: 500 + n }) + '\n';
  const served = servedPage(async () => {
    // A training still going (metrics.jsonl, no chart yet) and a finished quantize run with its chart.
    mkdirSync(training);
    writeFileSync(join(training, 'metrics.jsonl'), step(1) + step(2));
    writeFileSync(join(training, 'llmkit-config.json'), JSON.stringify({ command: 'finetune', options: { model: '/models/tiny' } }));
    mkdirSync(join(runs, 'tiny-int8'));
    writeFileSync(join(runs, 'tiny-int8', 'quantize-report.svg'), svgDocument('quantize: tiny-int8', [{ title: 'size', unit: 'MiB', groups: ['fp32', 'int8'], values: [0.82, 0.28] }]));
    return { apiKeys: ['sk-page-test'], cache: true, runs };
  });

  it('is public itself, shows a missing or wrong key as an authentication error, and works once the key is entered', async () => {
    const { server, page } = served;
    await page.goto(`${server.url}/`);
    await page.waitForSelector('#chat-status.error');
    expect(await page.textContent('#chat-status')).toMatch(/^authentication failed \(missing_api_key\): You did not provide an API key/);
    await page.fill('#api-key', 'sk-wrong');
    await page.press('#api-key', 'Enter');
    await page.waitForFunction(() => /invalid_api_key/.test(document.getElementById('chat-status')?.textContent ?? ''));
    await shot(page, 'serve-auth-error.png');
    const refused = await ask(page, 'Hello?');
    expect(refused.error).toMatch(/^authentication failed \(invalid_api_key\): Incorrect API key provided/);

    await page.fill('#api-key', 'sk-page-test');
    await page.press('#api-key', 'Enter');
    await page.waitForFunction(() => document.querySelectorAll('#model option').length === 1);
    const answer = await ask(page, 'Hello?');
    expect([answer.error, answer.stats]).toEqual([null, expect.stringMatching(/^16 tokens/)]);
    // Kept in the browser: a reload does not ask again.
    await page.reload();
    await page.waitForFunction(() => document.querySelectorAll('#model option').length === 1);
    expect(await page.inputValue('#api-key')).toBe('sk-page-test');
  }, 120_000);

  it("shows each model's response-cache hits on the dashboard", async () => {
    const { server, page } = served;
    const series = (result: string) => metric(server.url, `llmkit_cache_requests_total{model="tiny",result="${result}"}`);
    const [hits, misses] = [await series('hit'), await series('miss')];
    const body = JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'cached?' }], max_tokens: 8, temperature: 0 });
    const headers = { Authorization: 'Bearer sk-page-test', 'Content-Type': 'application/json' };
    for (const expected of ['miss', 'hit']) {
      const res = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers, body });
      expect([res.status, res.headers.get('x-llmkit-cache')]).toEqual([200, expected]);
    }
    await page.click('#tab-dashboard');
    const shown = `${hits + 1} of ${hits + misses + 2} (${Math.round((100 * (hits + 1)) / (hits + misses + 2))} %)`;
    await page.waitForFunction((text) => document.querySelector('#model-tiny td:nth-child(9)')?.textContent === text, shown, { timeout: 10_000 });
    expect(await page.textContent('#cache-hits')).toBe(shown);
  }, 60_000);

  it("lists --runs' charts behind the key, shows one, and draws a training's new steps as they come", async () => {
    const { server, page } = served;
    const auth = { headers: { Authorization: 'Bearer sk-page-test' } };
    expect((await fetch(`${server.url}/runs`)).status).toBe(401);
    const list = (await (await fetch(`${server.url}/runs`, auth)).json()) as { data: { id: string; charts: string[] }[] };
    expect(list.data.map((r) => [r.id, r.charts])).toEqual(
      expect.arrayContaining([
        ['lora-run', ['metrics.svg']],
        ['tiny-int8', ['quantize-report.svg']],
      ]),
    );
    // Only the charts the list names: no other file, no way out of the folder.
    for (const path of ['lora-run/metrics.jsonl', 'lora-run/llmkit-config.json', '..%2F..%2Fetc/passwd', 'lora-run/..%2F..%2Fetc%2Fpasswd', '%E0/x.svg']) {
      expect((await fetch(`${server.url}/runs/${path}`, auth)).status, path).toBe(404);
    }
    const chart = await fetch(`${server.url}/runs/lora-run/metrics.svg`, auth);
    expect(chart.headers.get('content-security-policy')).toMatch(/sandbox/);
    const points = async () => chartSeriesOf(await (await fetch(`${server.url}/runs/lora-run/metrics.svg`, auth)).text())['train loss'];
    expect(await points()).toEqual([
      [1, 2.75],
      [2, 2.5],
    ]);

    await page.click('#tab-dashboard');
    await page.waitForSelector('#run-lora-run button');
    await page.click('#run-lora-run button');
    await page.waitForFunction(() => ((document.getElementById('run-chart') as HTMLImageElement | null)?.naturalWidth ?? 0) > 0);
    expect(await page.textContent('#run-caption')).toBe('lora-run: metrics.svg');
    await shot(page, 'serve-runs.png');
    // The run goes on: the next refresh of the list fetches the chart again, drawn from the longer metrics.jsonl.
    appendFileSync(join(training, 'metrics.jsonl'), step(3));
    expect((await points()).at(-1)).toEqual([3, 2.25]);
    const shownBefore = await page.getAttribute('#run-chart', 'src');
    await page.waitForFunction((before) => document.getElementById('run-chart')?.getAttribute('src') !== before, shownBefore, { timeout: 15_000 });
  }, 60_000);
});

describe('the web page, with a LoRA adapter', () => {
  const served = servedPage(async () => {
    // The adapter test/serve/multi-lora.test.ts serves (made once under LLMKIT_HOME).
    const targets = ['q_proj', 'v_proj', 'down_proj'];
    const adapter = await randomAdapter(await tinyModel(), { seed: 1, rank: 4, targets });
    return { adapters: [`fr=${adapter}`], loraTargets: targets };
  });

  it('groups the adapter under its base in the model picker, and chats with it', async () => {
    const { server, page } = served;
    await page.goto(`${server.url}/`);
    await page.waitForSelector('#model optgroup', { state: 'attached' });
    const groups = await page.$$eval('#model optgroup', (gs) => gs.map((g) => [(g as HTMLOptGroupElement).label, [...g.querySelectorAll('option')].map((o) => o.value)]));
    expect(groups).toEqual([['tiny', ['tiny', 'fr']]]);
    await page.selectOption('#model', 'fr');
    const answer = await ask(page, 'Bonjour?');
    expect(answer.error).toBeNull();
    expect(answer.who).toBe('fr');
    expect(server.log.filter((l) => /model=fr\b/.test(l))).toHaveLength(1);
  }, 120_000);
});

describe('serve --no-ui', () => {
  it('answers / with the API’s 404', async () => {
    const server = await startTestServer({ ui: false });
    try {
      const res = await fetch(`${server.url}/`);
      expect(res.status).toBe(404);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('unknown_url');
    } finally {
      await server.drain();
    }
  }, 120_000);
});

describe('the page is small', () => {
  it('weighs under 40 kB, HTML, CSS and scripts together', () => {
    const files = ['src/serve/ui/index.html', 'src/serve/ui/style.css', ...['app', 'api', 'chat', 'dashboard', 'prometheus', 'runs', 'sse'].map((m) => `dist/serve/ui/${m}.js`)];
    const bytes = files.reduce((sum, f) => sum + readFileSync(f).length, 0);
    expect(bytes).toBeLessThan(40_000);
  });
});
