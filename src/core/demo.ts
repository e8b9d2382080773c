import { join } from 'node:path';
import { inspectEnvironment } from './env.js';
import { LlmkitError } from './errors.js';
import { makeModel } from './model-maker.js';
import { llmkitHome } from './paths.js';
import { setupPythonEnv } from '../workers/python-env.js';
import { runWorker } from '../workers/worker-run.js';
import type { WorkerEvent } from '../workers/protocol.js';

/** What the demo tells its caller as it goes: a step title, then lines of what it did. */
export interface DemoReporter {
  step(title: string): void;
  line(text: string): void;
  onEvent(event: WorkerEvent): void;
}

export interface DemoOptions {
  /** Working folder for the demo's outputs (default: LLMKIT_HOME/demo). */
  workDir?: string;
  reporter: DemoReporter;
  stopSignal?: AbortSignal;
}

export interface DemoSummary {
  workDir: string;
  model: string;
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

  r.step('Python worker environment');
  const env = await setupPythonEnv({}, () => {});
  r.line(`${env.created ? 'created' : 'ready'}: ${env.python}`);
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

  return { workDir, model: made.path, steps };
}
