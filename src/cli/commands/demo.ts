import type { Command } from 'commander';
import { DEMO } from '../../core/options/demo.js';
import { commandFrom } from '../command.js';
import { stopOnCtrlC } from '../output.js';
import { ProgressView } from '../progress.js';

export function demoCommand(): Command {
  return commandFrom(DEMO, async (options, { flags }) => {
    const { runDemo } = await import('../../core/demo.js');
    const view = new ProgressView(flags, 'demo');
    const say = (text: string) => !flags.json && process.stdout.write(text + '\n');
    const stop = stopOnCtrlC();
    try {
      const summary = await runDemo({
        ...options,
        stopSignal: stop.signal,
        reporter: { step: (t) => (view.stop(), say(`\n== ${t}`)), line: (t) => (view.stop(), say(`   ${t}`)), onEvent: view.onEvent },
      });
      view.stop();
      if (flags.json) process.stdout.write(JSON.stringify(summary) + '\n');
      else say(`\ndemo done: ${summary.steps.join(' → ')} (outputs in ${summary.workDir})`);
    } finally {
      stop.dispose();
    }
  });
}
