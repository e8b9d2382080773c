import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ProgressView } from '../../src/cli/progress.js';
import type { WorkerEvent } from '../../src/core/worker-events.js';

/** A stream that keeps what is written; `tty` makes ProgressView draw cli-progress bars on it. */
function capture(tty: boolean): { stream: NodeJS.WriteStream; text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk, _encoding, done) {
      text += String(chunk);
      done();
    },
  }) as unknown as NodeJS.WriteStream;
  Object.assign(stream, { isTTY: tty, columns: 160 });
  return { stream, text: () => text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '') };
}

const quantizeFromHuggingFace: WorkerEvent[] = [
  { event: 'start', job: 'export_onnx', total_steps: 3 },
  { event: 'progress', step: 3, total: 3, message: 'written' },
  { event: 'start', job: 'quantize', total_steps: 3 },
  { event: 'progress', step: 3, total: 3, message: 'written' },
  { event: 'progress', step: 2, total: 2, message: 'decode timing, run 2/2', phase: 'measure' },
];

describe('ProgressView', () => {
  it('names each phase of a job in its plain lines, and prints no training fields a phase does not report', () => {
    const out = capture(false);
    const view = new ProgressView({}, 'quantize', out.stream);
    for (const e of quantizeFromHuggingFace) view.onEvent(e);
    expect(out.text().trim().split('\n')).toEqual(['quantize (export): step 3/3 | written', 'quantize (weights): step 3/3 | written', 'quantize (measure): step 2/2 | decode timing, run 2/2']);
  });

  it('draws a bar per phase with the fields its events carry: none for an export, loss, lr and tokens/s for training', () => {
    const exporting = capture(true);
    const view = new ProgressView({}, 'export', exporting.stream);
    view.onEvent({ event: 'start', job: 'export_onnx', total_steps: 3 });
    view.onEvent({ event: 'progress', step: 1, total: 3, message: 'exported' });
    view.stop();
    expect(exporting.text()).toMatch(/export .* 1\/3 \| ETA .* exported/);
    expect(exporting.text()).not.toMatch(/loss|lr|tok\/s/);

    const training = capture(true);
    const trainer = new ProgressView({}, 'finetune', training.stream);
    trainer.onEvent({ event: 'start', job: 'finetune', total_steps: 10 });
    trainer.onEvent({ event: 'progress', step: 4, total: 10, loss: 2.34567, lr: 0.0002, tokens_per_s: 812.4 });
    trainer.stop();
    expect(training.text()).toMatch(/finetune .* 4\/10 \| loss 2\.3457 \| lr 2\.00e-4 \| 812 tok\/s \| ETA/);
    expect(training.text()).not.toContain('(finetune)');
  });
});
