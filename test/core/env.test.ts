import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

describe('llmkit env --json', () => {
  it('reports the machine, providers and the worker environment as one JSON object', async () => {
    const r = await runCli(['env', '--json']);
    expect(r.exitCode).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.cpuCores).toBeGreaterThan(0);
    expect(report.memoryBytes).toBeGreaterThan(1e8);
    expect(report.node).toBe(process.version);
    expect(report.onnxruntimeNode).toMatch(/^1\.\d+\.\d+/);
    const cpu = report.providers.find((p: { provider: string }) => p.provider === 'cpu');
    expect(cpu).toEqual({ provider: 'cpu', loaded: true });
    for (const p of report.providers) if (!p.loaded) expect(p.reason).toBeTruthy();
    expect(report.python.python).toMatch(/python/);
    expect(report.python.version).toMatch(/^3\.\d+/);
    for (const pkg of ['torch', 'transformers', 'peft', 'onnx', 'onnxruntime']) expect(report.packages[pkg]).toMatch(/^\d+\.\d+/);
    expect(typeof report.cuda.available).toBe('boolean');
    expect(Array.isArray(report.cuda.gpus)).toBe(true);
    expect(report.problems).toEqual([]);
  });

  it('exits non-zero with the fix when the worker environment is missing', async () => {
    const r = await runCli(['env', '--json'], { env: { LLMKIT_HOME: '/tmp/llmkit-empty-home-' + process.pid } });
    expect(r.exitCode).toBe(1);
    const report = JSON.parse(r.stdout);
    expect(report.problems).toEqual([{ what: 'the Python worker environment is not set up', fix: 'llmkit env --setup' }]);
  });
});
