import { execa } from 'execa';
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

/** What a newcomer meets before running anything: README's first screen, npm's output, the docs' examples. */
describe('the first screen', () => {
  const readme = readFileSync('README.md', 'utf8').split('\n').slice(0, 40).join('\n');

  it("README's first screen says how to run llmkit and where the demo put its models", () => {
    for (const way of ['npx llmkit', 'npm link', 'node bin/llmkit.js']) expect(readme).toContain(way);
    expect(readme).toMatch(/\$LLMKIT_HOME\/demo/);
    expect(readme).toContain('llmkit chat ~/.cache/llmkit/demo/tiny-int8');
    expect(readme.split('\n')[3]).toMatch(/^ONNXRUNTIME_NODE_INSTALL=skip npm ci && npm run demo/);
  });

  it("npm runs without the unknown-config warning, and onnxruntime-node's download script is denied for npm 11", async () => {
    expect(existsSync('.npmrc')).toBe(false);
    const allow = JSON.parse(readFileSync('package.json', 'utf8')).allowScripts;
    expect(allow['onnxruntime-node']).toBe(false);
    const r = await execa('npm', ['pkg', 'get', 'name'], { reject: false });
    expect(r.stdout.trim()).toBe('"llmkit"');
    expect(r.stderr).not.toMatch(/Unknown project config/);
    const major = Number((await execa('npm', ['--version'])).stdout.split('.')[0]);
    if (major >= 11) {
      const pending = await execa('npm', ['approve-scripts', '--allow-scripts-pending'], { reject: false });
      // npm 11 releases before allowScripts reject the command; those run every script (and .ci/run sets the variable).
      if (pending.exitCode === 0) expect(pending.stdout).toMatch(/No packages with unreviewed install scripts/);
    }
  });

  it("docs' requests name the demo's model, which exists, not one it does not make", () => {
    const serve = readFileSync('docs/serve.md', 'utf8');
    expect(serve).not.toMatch(/"model": "tiny"/);
    expect(serve).toMatch(/"model": "tiny-int8"/);
    expect(readFileSync('docs/env.md', 'utf8')).not.toMatch(/reinstall with ONNXRUNTIME_NODE_INSTALL/);
  });
});
