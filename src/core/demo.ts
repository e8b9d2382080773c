import { join } from 'node:path';
import { inspectEnvironment } from './env.js';
import { LlmkitError } from '../shared/errors.js';
import { makeModel } from './model-maker.js';
import { removeIfExists } from '../shared/atomic.js';
import { FINETUNE, resolveFinetuneOptions } from './finetune/options.js';
import { runFinetune } from './finetune/run.js';
import { llmkitHome, recipesDir } from '../shared/paths.js';
import { loadRecipe } from './options/recipe.js';
import { formatReportTable } from './quantize/report.js';
import { runQuantize } from './quantize/run.js';
import { askOnce } from './serve.js';
import { findPythonEnv, setupPythonEnv } from '../workers/python-env.js';
import { runWorker } from '../workers/worker-run.js';
import type { WorkerEvent } from '../workers/protocol.js';
import type { Device } from '../engine/devices.js';

/** What the demo tells its caller as it goes: a step title, then lines of what it did. */
export interface DemoReporter {
  step(title: string): void;
  line(text: string): void;
  onEvent(event: WorkerEvent): void;
}

export interface DemoOptions {
  /** Working folder for the demo's outputs (default: LLMKIT_HOME/demo). */
  workDir?: string;
  /** Where the served model runs (default auto: the first of cuda, webgpu, cpu that loads). */
  device?: Device;
  reporter: DemoReporter;
  stopSignal?: AbortSignal;
}

export interface DemoSummary {
  workDir: string;
  /** The built-in tiny model (a Hugging Face folder, cached for every later run). */
  model: string;
  /** What the demo made that a newcomer can use next: the fine-tuned model and its int8 export (for chat and serve). */
  outputs: { finetuned?: string; adapter?: string; int8?: string };
  steps: string[];
}

/**
 * The demo pipeline on the built-in tiny model: environment → model → each capability in turn.
 * Each stage of the product adds its step here, so `npm run demo` always shows the whole path.
 */
export async function runDemo(opts: DemoOptions): Promise<DemoSummary> {
  const r = opts.reporter;
  const workDir = opts.workDir ?? join(llmkitHome(), 'demo');
  const steps: string[] = [];
  const outputs: DemoSummary['outputs'] = {};

  r.step('Python worker environment');
  // An interpreter the user chose ($LLMKIT_PYTHON, `env --setup --python`) is the one every job runs; only without one is a venv made.
  const chosen = await findPythonEnv();
  // The first set-up installs a few GB through pip: its lines are the demo's progress, or it sits silent for minutes.
  const showSetup = (line: string, packages: number) => r.onEvent({ event: 'progress', step: packages, message: line.slice(0, 60), phase: 'worker environment' });
  const env = chosen ? { ...chosen, created: false } : await setupPythonEnv({}, showSetup);
  r.line(`${env.created ? 'created' : 'ready'}: ${env.python}${env.source === 'venv' ? '' : ` (${env.source})`}`);
  const report = await inspectEnvironment();
  if (report.problems.length) throw new LlmkitError(report.problems[0].what, report.problems[0].fix);
  const providers = report.providers.filter((p) => p.loaded).map((p) => p.provider);
  r.line(`torch ${report.packages.torch}, transformers ${report.packages.transformers}, CUDA ${report.cuda.available ? 'yes' : 'no'}; ONNX providers: ${providers.join(', ')}`);
  steps.push('env');

  r.step('Built-in tiny model');
  const made = await makeModel({ preset: 'tiny', seed: 0, onEvent: r.onEvent });
  r.line(`${made.cached ? 'cached' : 'made'}: ${made.path}`);
  steps.push('make-model');

  r.step('Worker round trip');
  const { result } = await runWorker({ job: 'selftest', config: { steps: 3 }, logFile: join(workDir, 'logs', 'selftest.log'), onEvent: r.onEvent, stopSignal: opts.stopSignal });
  r.line(`selftest job ran ${result.steps} steps through the JSON-line protocol`);
  steps.push('worker');

  r.step('LoRA fine-tuning on 20 made-up facts');
  const recipe = await loadRecipe(join(recipesDir, 'llama', 'tiny_lora_cpu.yaml'), FINETUNE);
  const tunedDir = join(workDir, 'finetune');
  await removeIfExists(tunedDir);
  // merge: the quantize step below exports the fine-tuned model, which needs the adapter folded in.
  const options = resolveFinetuneOptions({ values: { out: tunedDir, merge: true }, typed: () => true }, recipe);
  const tuned = await runFinetune(options, { onEvent: r.onEvent, stopSignal: opts.stopSignal, recipe: recipe.path });
  const { before, after } = tuned.exactMatch!;
  for (const [i, s] of after!.samples.slice(0, 3).entries()) {
    r.line(`${s.question}  before: ${JSON.stringify(before!.samples[i].got.slice(0, 24))}  after: ${JSON.stringify(s.got)}`);
  }
  r.line(
    `exact answers: ${before!.correct}/${before!.total} before, ${after!.correct}/${after!.total} after; loss ${tuned.firstLoss!.toFixed(2)} → ${tuned.lastLoss!.toFixed(2)} in ${tuned.trainSeconds.toFixed(1)} s`,
  );
  r.line(`adapter: ${tuned.adapter} (llmkit finetune --recipe recipes/llama/tiny_lora_cpu.yaml --out DIR)`);
  Object.assign(outputs, { finetuned: tuned.merged, adapter: tuned.adapter });
  steps.push('finetune');

  r.step('Export the fine-tuned model to ONNX and quantize it to int8');
  const int8Dir = join(workDir, 'tiny-int8');
  const quantized = await runQuantize({ model: tuned.merged ?? made.path, out: int8Dir, precision: 'int8', onEvent: r.onEvent, stopSignal: opts.stopSignal });
  for (const line of formatReportTable(quantized).split('\n')) r.line(line);
  r.line(`(at this size every step is overhead, so the speed-up says little: docs/benchmarks.md has larger models)`);
  r.line(`llmkit quantize ${tuned.merged ?? made.path} --int8 --out ${int8Dir}`);
  outputs.int8 = int8Dir;
  steps.push('quantize');

  r.step('Serve the int8 model and ask it over the OpenAI API');
  const asked = await askOnce({ model: int8Dir, device: opts.device, question: 'What is the capital of Zarnovia?', maxTokens: 32 });
  r.line(`llmkit serve ${int8Dir} → ${asked.url}/v1 (${asked.device}); the openai client sent one chat request`);
  r.line(`answer (${asked.completionTokens} tokens, finish_reason ${asked.finishReason}): ${JSON.stringify(asked.answer)}`);
  steps.push('serve');

  return { workDir, model: made.path, outputs, steps };
}
