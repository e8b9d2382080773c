// Seconds from SIGTERM to tritonserver's exit (--exit-timeout-secs 30) and to llmkit's /ready 503: Triton alone, with `llmkit serve --engine triton`
// in front (front), or with a stream in flight (stream). `npx tsx test/bench/triton-shutdown.ts REPO alone|front|stream`, REPO from
// `llmkit export … --triton REPO --triton-name tiny` (docs/deploy.md).
import { startServe } from '../e2e/llmkit-serve.js';
import { startTriton } from '../helpers/triton.js';
const repo = process.argv[2];
const withFront = process.argv[3] !== 'alone';
const streaming = process.argv[3] === 'stream';
const triton = await startTriton(repo, ['tiny-generate'], undefined, 30);
const front = withFront ? await startServe(`${repo}/tiny-generate/1`, 'tiny', ['--engine', 'triton', '--triton-url', triton.url]) : undefined;
if (front) {
  for (let i = 0; i < 3; i++) {
    const r = await fetch(`${front.apiUrl}/chat/completions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 8, stream: i === 1 }),
    });
    await r.text();
  }
  await new Promise((r) => setTimeout(r, 1500));
}
let streamEnd: Promise<string> | undefined;
if (front && streaming) {
  const r = await fetch(`${front.apiUrl}/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 1900, ignore_eos: true, stream: true }),
  });
  const reader = r.body!.getReader();
  await reader.read();
  streamEnd = (async () => {
    let t = '';
    for (let c = await reader.read(); !c.done; c = await reader.read()) t += Buffer.from(c.value).toString();
    return t.slice(-300);
  })();
}
const t0 = performance.now();
let readyDown: number | undefined;
const poll =
  front &&
  setInterval(async () => {
    const r = await fetch(`${front.apiUrl.replace(/\/v1$/, '')}/ready`);
    if (readyDown === undefined && r.status === 503) {
      readyDown = (performance.now() - t0) / 1000;
      console.log(await r.text());
    }
  }, 50);
await triton.stop();
const exitS = (performance.now() - t0) / 1000;
if (poll) clearInterval(poll);
if (streamEnd) console.log('stream ended with:', (await streamEnd).replace(/\n/g, ' ').slice(-250));
console.log(JSON.stringify({ withFront, streaming, exitS: +exitS.toFixed(2), readyDownS: readyDown === undefined ? null : +readyDown.toFixed(2) }));
await front?.stop();
