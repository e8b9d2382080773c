import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pythonSourceDir } from '../../src/shared/paths.js';
import { requirePythonEnv } from '../../src/workers/python-env.js';
import { tempDir } from '../helpers/cli.js';
import { crc32c, readEventFile, tensorboardScalars } from '../helpers/tensorboard.js';

const TORCH_FILE = join(import.meta.dirname, '..', 'fixtures', 'tensorboard', 'events.out.tfevents.torch-summarywriter');

/** Runs the worker's EventWriter (trainer/tensorboard.py) on `records`, the second list as a run resumed at step 2. */
async function writeWithWorker(folder: string, records: object[], resumed: object[] = []): Promise<void> {
  const { python } = await requirePythonEnv();
  const script = [
    'import json, sys',
    'from llmkit_worker.trainer.tensorboard import EventWriter',
    'first, resumed = json.load(sys.stdin)',
    'w = EventWriter(sys.argv[1])',
    '[w.write(r) for r in first]',
    'w.file.close()',
    'if resumed:',
    '    w = EventWriter(sys.argv[1], resumed_at=2)',
    '    [w.write(r) for r in resumed]',
    '    w.file.close()',
  ].join('\n');
  const r = spawnSync(python, ['-c', script, folder], { input: JSON.stringify([records, resumed]), env: { ...process.env, PYTHONPATH: pythonSourceDir }, encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
}

describe('TensorBoard event files', () => {
  it('reads the file torch.utils.tensorboard.SummaryWriter wrote, and refuses one with a flipped byte', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    const events = readEventFile(TORCH_FILE);
    expect(events[0].fileVersion).toBe('brain.Event:2');
    expect(tensorboardScalars(join(TORCH_FILE, '..'))).toEqual({
      'train/loss': [
        [1, 2.5],
        [2, 2.25],
        [3, 1.875],
      ],
      'eval/loss': [[3, 2.125]],
    });
    const broken = Buffer.from(readFileSync(TORCH_FILE));
    broken[broken.length - 10] ^= 1;
    const dir = tempDir('tb-broken-');
    writeFileSync(join(dir, 'events.out.tfevents.x'), broken);
    expect(() => tensorboardScalars(dir)).toThrow(/bad data CRC/);
  });

  it("writes what SummaryWriter writes for the same scalars, under metrics.jsonl's names, and a restart at a resumed run's step", async () => {
    const dir = tempDir('tb-worker-');
    const records = [
      { step: 1, loss: 2.5, lr: 1e-4, tokens_per_s: 812.5, epoch: 0.25 },
      { step: 2, loss: 2.25, lr: 2e-4, tokens_per_s: 790 },
      { step: 3, loss: 1.875, exact_match: 0.5, when: 'after', merged: true },
      { step: 3, eval_loss: 2.125 },
    ];
    await writeWithWorker(dir, records, [{ step: 3, loss: 1.5 }]);
    const [first, resumed] = readdirSync(dir).sort();
    const mine = readEventFile(join(dir, first));
    const torch = readEventFile(TORCH_FILE);
    // The same events as torch's for the loss series, wall times aside (text and booleans are not scalars).
    const lossEvents = (events: typeof mine) =>
      events.filter((e) => e.scalars.some((s) => s.tag.endsWith('/loss'))).map((e) => ({ step: e.step, scalars: e.scalars.filter((s) => s.tag.endsWith('/loss')) }));
    expect(lossEvents(mine)).toEqual(lossEvents(torch));
    expect(mine[0].fileVersion).toBe(torch[0].fileVersion);
    // The first run's own file, before the resumed one's restart drops its step 3.
    const scalars: Record<string, [number, number][]> = {};
    for (const e of mine) for (const s of e.scalars) (scalars[s.tag] ??= []).push([e.step, s.value]);
    expect(scalars['train/lr']).toEqual([
      [1, Math.fround(1e-4)],
      [2, Math.fround(2e-4)],
    ]);
    expect(scalars['train/tokens_per_s']).toEqual([
      [1, 812.5],
      [2, 790],
    ]);
    expect(scalars['eval/exact_match']).toEqual([[3, 0.5]]);
    expect(Object.keys(scalars).some((t) => /when|merged/.test(t))).toBe(false);
    // The resumed run's file starts with SessionLog START at the first step it redoes (TensorBoard drops step ≥ 3 before it).
    const restart = readEventFile(join(dir, resumed));
    expect(restart[1]).toMatchObject({ step: 3, sessionStatus: 1 });
    expect(restart[2].scalars).toEqual([{ tag: 'train/loss', value: 1.5 }]);
    expect(tensorboardScalars(dir)['train/loss']).toEqual([
      [1, 2.5],
      [2, 2.25],
      [3, 1.5],
    ]);
    expect(tensorboardScalars(dir)['eval/loss']).toEqual([]);
  });
});
