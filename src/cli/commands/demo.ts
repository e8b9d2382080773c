import { Command } from 'commander';
import { parseDevice } from '../../core/choices.js';
import { action } from '../action.js';
import { stopOnCtrlC, type GlobalFlags } from '../output.js';
import { ProgressView } from '../progress.js';

export function demoCommand(): Command {
  return new Command('demo')
    .description('run the whole pipeline on the built-in tiny model and print what each step did')
    .option('--work-dir <dir>', 'where the demo writes its outputs (default: LLMKIT_HOME/demo)')
    .option('--device <device>', 'where the served model runs: auto (cuda, then webgpu, then cpu), cpu, cuda or webgpu', 'auto')
    .action(
      action(async (opts: { workDir?: string; device: string }, flags: GlobalFlags) => {
        const { runDemo } = await import('../../core/demo.js');
        const view = new ProgressView(flags, 'demo');
        const say = (text: string) => !flags.json && process.stdout.write(text + '\n');
        const stop = stopOnCtrlC();
        try {
          const summary = await runDemo({
            workDir: opts.workDir,
            device: parseDevice(opts.device),
            stopSignal: stop.signal,
            reporter: { step: (t) => (view.stop(), say(`\n== ${t}`)), line: (t) => (view.stop(), say(`   ${t}`)), onEvent: view.onEvent },
          });
          view.stop();
          if (flags.json) process.stdout.write(JSON.stringify(summary) + '\n');
          else say(`\ndemo done: ${summary.steps.join(' → ')} (outputs in ${summary.workDir})`);
        } finally {
          stop.dispose();
        }
      }),
    );
}
