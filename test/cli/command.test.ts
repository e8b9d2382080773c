import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { commandFrom } from '../../src/cli/command.js';
import { COMMANDS } from '../../src/cli/main.js';
import { defineCommand } from '../../src/core/options/define.js';
import { textField } from '../../src/core/options/fields.js';
import { tempDir } from '../helpers/cli.js';
import { TRAIN } from '../helpers/options.js';

const STRICT = defineCommand({
  name: 'strict',
  description: 'no recipes: required flags and arguments are commander’s to enforce',
  options: {
    model: { field: textField(), positional: true, required: true, help: 'model folder' },
    out: { field: textField(), value: '<dir>', required: true, help: 'output folder' },
  },
});

/** Parses argv with the command as the program, and returns what `run` got (or undefined) and the exit code. */
async function parse(def: typeof TRAIN | typeof STRICT, argv: string[]) {
  let got: unknown;
  const command = commandFrom(def, async (options) => {
    got = options;
  });
  await command.exitOverride().parseAsync(argv, { from: 'user' });
  return { options: got as Record<string, unknown> | undefined, exitCode: process.exitCode };
}

const flagsOf = (command: Command) => command.options.map((o) => o.flags);

describe('commands built from definitions', () => {
  let stderr: string[] = [];
  afterEach(() => {
    vi.restoreAllMocks();
    process.exitCode = undefined;
    stderr = [];
  });
  const captureStderr = () => vi.spyOn(process.stderr, 'write').mockImplementation((s) => (stderr.push(String(s)), true));

  it('get their arguments, flags, --no- forms and help with defaults from the definition', () => {
    const command = commandFrom(TRAIN, async () => {});
    expect(command.registeredArguments.map((a) => [a.name(), a.required, a.description])).toEqual([['model', false, 'model folder']]);
    expect(flagsOf(command)).toEqual([
      '--recipe <file>',
      '--data <file>',
      '--lora-r <n>',
      '--schedule <name>',
      '--levels <list>',
      '--lr <rate>',
      '--lora',
      '--no-lora',
      '--no-report',
      '--exclude <nodes...>',
    ]);
    const help = command.helpInformation();
    expect(help).toMatch(/--lora-r <n>\s+LoRA rank \(default: 16\)/);
    expect(help).toMatch(/--schedule <name>\s+learning-rate decay \(default: "cosine"\)/);
    expect(help).toMatch(/--no-report\s+skip the measurement/);
    const strict = commandFrom(STRICT, async () => {});
    expect(strict.registeredArguments.map((a) => a.required)).toEqual([true]);
    expect(strict.options.map((o) => [o.flags, o.mandatory])).toEqual([['--out <dir>', true]]);
  });

  it('hand run the typed options: defaults, repeated flags, --no- forms', async () => {
    const { options, exitCode } = await parse(TRAIN, ['m', '--data', 'a.jsonl', '--data', 'b.jsonl', '--lora-r', '8', '--no-report']);
    expect(exitCode).toBe(0);
    expect(options).toEqual({ model: 'm', data: ['a.jsonl', 'b.jsonl'], loraR: 8, schedule: 'cosine', levels: [1, 4], lora: false, report: false });
  });

  it('print a bad value as one line naming the flag, and exit 2 without calling run', async () => {
    captureStderr();
    const { options, exitCode } = await parse(TRAIN, ['m', '--lora-r', '-4']);
    expect([options, exitCode, stderr.join('')]).toEqual([undefined, 2, 'error: --lora-r must be an integer ≥ 1 (got -4)\n']);
  });

  it('take typed flags over the recipe and the recipe over the defaults, with the recipe’s paths from its folder', async () => {
    const dir = tempDir();
    const recipe = join(dir, 'r.yaml');
    writeFileSync(recipe, 'model: base\ndata: d.jsonl\nlora: true\nlora-r: 4\nschedule: linear\n');
    const { options } = await parse(TRAIN, ['--recipe', recipe, '--lora-r', '32', '--no-lora']);
    expect(options).toEqual({ model: join(dir, 'base'), data: [join(dir, 'd.jsonl')], loraR: 32, schedule: 'linear', levels: [1, 4], lora: false, report: true });
    const { options: positional } = await parse(TRAIN, ['other', '--recipe', recipe]);
    expect(positional).toMatchObject({ model: 'other', loraR: 4, lora: true });
  });

  it('are every command of llmkit: no command file defines a flag or argument itself', async () => {
    const dir = resolve(import.meta.dirname, '..', '..', 'src', 'cli', 'commands');
    const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
    expect(files).toHaveLength(Object.keys(COMMANDS).length);
    for (const file of files) {
      const text = readFileSync(join(dir, file), 'utf8');
      expect(text, file).toMatch(/\bcommandFrom\(/);
      expect(text, file).not.toMatch(/\.(option|requiredOption|argument|addOption|addArgument)\(|new (Option|Argument)\(/);
    }
    // And every flag of every (sub)command has its help from a definition: a description is always there.
    const leaves = (c: Command): Command[] => (c.commands.length ? c.commands.flatMap(leaves) : [c]);
    for (const command of (await Promise.all(Object.values(COMMANDS).map((make) => make()))).flatMap(leaves)) {
      for (const option of command.options) expect(option.description, `${command.name()} ${option.flags}`).not.toBe('');
    }
  });
});
