import type { Command } from 'commander';
import type { DemoSummary } from '../../core/demo.js';
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
      else say(demoEnding(summary));
    } finally {
      stop.dispose();
    }
  });
}

/** Where the demo put its models, and the commands that take them next: a newcomer's next step. */
function demoEnding(summary: DemoSummary): string {
  const { int8, finetuned } = summary.outputs;
  const rows = [
    `\ndemo done: ${summary.steps.join(' → ')}`,
    `outputs in ${summary.workDir} (set LLMKIT_HOME to put them elsewhere):`,
    `   built-in tiny model  ${summary.model}`,
    ...(finetuned ? [`   fine-tuned model     ${finetuned}`] : []),
    ...(int8 ? [`   int8 ONNX model      ${int8}`, '', 'try next:', `   llmkit chat ${int8}`, `   llmkit serve ${int8}    # then open http://127.0.0.1:8080/`] : []),
  ];
  return rows.join('\n');
}
