import { describe, expect, it } from 'vitest';
import { exportedTinyModel } from '../helpers/models.js';
import { runCli } from '../helpers/cli.js';
import { postJson } from '../helpers/server.js';

describe('llmkit serve', () => {
  it('drains on SIGTERM: requests in flight finish, new ones get 503, then it exits 0', async () => {
    const child = runCli(['--json', 'serve', `tiny=${await exportedTinyModel()}`, '--port', '0', '--device', 'cpu'], { buffer: true });
    const url = await new Promise<string>((resolve) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const line = out.split('\n').find((l) => l.includes('"listening"'));
        if (line) resolve(JSON.parse(line).url);
      });
    });
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'Talk.' }], max_tokens: 450, ignore_eos: true, stream: true }),
    });
    const reader = res.body!.getReader();
    await reader.read();
    child.kill('SIGTERM');
    while ((await fetch(`${url}/ready`)).status === 200) await new Promise((r) => setTimeout(r, 5));
    const refused = await postJson(`${url}/v1/chat/completions`, { model: 'tiny', messages: [{ role: 'user', content: 'Late' }] });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBeTruthy();
    let rest = '';
    for (let r = await reader.read(); !r.done; r = await reader.read()) rest += Buffer.from(r.value).toString();
    expect(rest).toContain('"finish_reason":"length"');
    expect(rest.trim().endsWith('data: [DONE]')).toBe(true);
    const result = await child;
    expect(result.exitCode).toBe(0);
    expect(result.stderr).toMatch(/SIGTERM: draining/);
    expect(result.stderr).toMatch(/"POST \/v1\/chat\/completions" 503/);
  });
});
