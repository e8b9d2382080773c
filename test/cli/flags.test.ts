import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { runCli, runCliInProcess } from '../helpers/cli.js';

// Two tests start bin/llmkit.js as a child (the wrapper users run); the rest call the command layer in this process.
describe('command line', () => {
  it('lists the subcommands in --help', async () => {
    const r = await runCli(['--help']);
    expect(r.exitCode).toBe(0);
    for (const name of ['env', 'make-model']) expect(r.stdout).toMatch(new RegExp(`^\\s+${name}\\b`, 'm'));
    expect(r.stdout).toContain('--json');
    expect(r.stdout).toContain('--verbose');
  });

  it('documents every flag with its default', async () => {
    const r = await runCliInProcess(['make-model', '--help']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('(default: "tiny")');
    expect(r.stdout).toContain('(default: 0)');
  });

  it('rejects an unknown command with one line and exit code 2', async () => {
    const r = await runCli(['frobnicate']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual(["error: unknown command 'frobnicate'"]);
  });

  it("keeps commander's suggestion for a misspelt command or flag on the one line", async () => {
    const command = await runCliInProcess(['chta', 'x']);
    expect([command.exitCode, command.stderr.trim()]).toEqual([2, "error: unknown command 'chta' (did you mean chat?)"]);
    const flag = await runCliInProcess(['make-model', '--prest', 'tiny']);
    expect([flag.exitCode, flag.stderr.trim()]).toEqual([2, "error: unknown option '--prest' (did you mean --preset?)"]);
  });

  it('rejects an unknown flag with one line and exit code 2', async () => {
    const r = await runCliInProcess(['env', '--frobnicate']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim()).toBe("error: unknown option '--frobnicate'");
  });

  it('names the flag and the valid values for a bad value, without a stack trace', async () => {
    const r = await runCliInProcess(['make-model', '--preset', 'huge']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim()).toBe('error: --preset must be one of tiny, small, 100m (got huge)');
    expect(r.stderr).not.toMatch(/\bat .*\.js:\d+/);
  });

  it('rejects a non-integer seed naming the flag', async () => {
    const r = await runCliInProcess(['make-model', '--seed', '-3']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim()).toBe('error: --seed must be an integer ≥ 0 (got -3)');
  });

  it('exits 2 for a model folder that does not exist or is not a model, from every command that takes one', async () => {
    const runs = [
      ['chat', '/no/such/model'],
      ['serve', '/no/such/model'],
      ['bench', '/no/such/model'],
      ['export', '/no/such/model', '--out', '/tmp/llmkit-never-written'],
      ['inspect', '/no/such/model'],
      ['quantize', '/no/such/model', '--int8', '--out', '/tmp/llmkit-never-written'],
      ['finetune', '/no/such/model', '--data', 'd.jsonl', '--out', '/tmp/llmkit-never-written'],
      ['lora', 'info', '/no/such/model'],
      ['serve', tmpdir()],
      ['inspect', tmpdir()],
      ['export', tmpdir(), '--out', '/tmp/llmkit-never-written'],
    ];
    for (const argv of runs) {
      const r = await runCliInProcess(argv);
      expect([argv.join(' '), r.exitCode, r.stderr.trim().split('\n').length]).toEqual([argv.join(' '), 2, 1]);
    }
  }, 60_000);

  it('says --python needs --setup', async () => {
    const r = await runCliInProcess(['env', '--python', '/usr/bin/python3']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/--python goes with --setup/);
  });
});
