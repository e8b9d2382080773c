import cliProgress from 'cli-progress';
import type { BatchProgress } from '../core/batch/run.js';
import { asMetric, type ProgressEvent, type WorkerEvent } from '../core/worker-events.js';
import type { GlobalFlags } from './output.js';

/**
 * Shows a job's events: a cli-progress bar (step, loss, lr, tokens/s, ETA) on a terminal, plain
 * lines at most every few seconds otherwise, and JSON lines on stderr with --json.
 */
export class ProgressView {
  private bar?: cliProgress.SingleBar;
  private lastPlain = 0;
  private phase?: string;

  constructor(
    private readonly flags: GlobalFlags,
    private readonly label: string,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {}

  onEvent = (event: WorkerEvent): void => {
    if (this.flags.json) {
      if (event.event !== 'result') this.stream.write(JSON.stringify(event) + '\n');
      return;
    }
    if (event.event === 'start') this.enterPhase(PHASE_NAMES[event.job] ?? event.job);
    else if (event.event === 'progress') this.progress(event);
    // A notice is for every run (the memory estimate); info lines only with --verbose.
    else if (event.event === 'log' && (this.flags.verbose || event.level === 'warning' || event.level === 'notice')) this.print(`${this.label}: ${event.message}`);
    else if (event.event === 'metric') this.evalLoss(event);
  };

  private evalLoss(event: WorkerEvent): void {
    const loss = asMetric(event, 'eval_loss');
    if (loss) this.print(`${this.label}: step ${loss.step} eval loss ${loss.value.toFixed(4)}`);
  }

  /** A job of several phases (quantize: export, quantize, measure) gets a bar, and a name in its lines, per phase. */
  private enterPhase(phase: string): void {
    if (phase === this.phase) return;
    this.stop();
    this.phase = phase;
  }

  private progress(e: ProgressEvent): void {
    if (e.phase) this.enterPhase(e.phase);
    const fields = progressFields(e);
    const total = e.total ?? e.step;
    const name = this.phase && this.phase !== this.label ? `${this.label} (${this.phase})` : this.label;
    if (this.stream.isTTY) {
      if (!this.bar) {
        // The bar shows the fields its phase reports: training's loss, lr and tokens/s; an export's step messages alone.
        const shown = FIELDS.filter((f) => fields[f] !== undefined).map((f) => `{${f}}`);
        this.bar = new cliProgress.SingleBar(
          {
            format: [`${name} {bar} {value}/{total}`, ...shown, 'ETA {eta_formatted} {message}'].join(' | '),
            stream: this.stream,
            hideCursor: true,
            etaBuffer: 20,
          },
          cliProgress.Presets.shades_classic,
        );
        this.bar.start(total, 0, fields);
      }
      this.bar.setTotal(total);
      this.bar.update(e.step, fields);
      return;
    }
    const now = Date.now();
    // Without a total (pip's packages), every step would look like the last: only the clock paces those lines.
    if (now - this.lastPlain >= 2000 || (e.total !== undefined && e.step === e.total)) {
      this.lastPlain = now;
      const parts = [`${name}: step ${e.step}/${total}`, ...FIELDS.flatMap((f) => (fields[f] === undefined ? [] : [fields[f]])), ...(e.message ? [e.message] : [])];
      this.stream.write(parts.join(' | ') + '\n');
    }
  }

  print(line: string): void {
    if (this.bar) this.bar.stop();
    this.bar = undefined;
    this.stream.write(line + '\n');
  }

  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
}

/** The worker jobs' names as the CLI's commands say them. */
const PHASE_NAMES: Record<string, string> = { export_onnx: 'export', export_gguf: 'export --gguf', export_triton: 'triton', make_model: 'make-model', quantize: 'weights' };

const FIELDS = ['loss', 'lr', 'tps'] as const;

/** The training fields an event carries, formatted; absent ones stay undefined (and out of the line). */
function progressFields(e: ProgressEvent): Record<(typeof FIELDS)[number], string | undefined> & { message: string } {
  return {
    loss: e.loss !== undefined ? `loss ${e.loss.toFixed(4)}` : undefined,
    lr: e.lr !== undefined ? `lr ${e.lr.toExponential(2)}` : undefined,
    tps: e.tokens_per_s !== undefined ? `${Math.round(e.tokens_per_s)} tok/s` : undefined,
    message: e.message ?? '',
  };
}

/** A batch run's progress: lines done of all, failures, generated tokens/s, ETA (plain lines without a terminal, JSON lines with --json). */
export class BatchProgressView {
  private bar?: cliProgress.SingleBar;
  private lastPlain = 0;
  private lastDone = -1;

  constructor(
    private readonly flags: GlobalFlags,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {}

  update = (p: BatchProgress): void => {
    const tps = p.elapsedS > 0 ? Math.round(p.completionTokens / p.elapsedS) : 0;
    if (this.flags.json) {
      const now = Date.now();
      if (now - this.lastPlain < 1000 && (p.done < p.total || this.lastDone === p.done)) return;
      this.lastPlain = now;
      this.lastDone = p.done;
      this.stream.write(JSON.stringify({ event: 'progress', step: p.done, total: p.total, failed: p.failed, tokens_per_s: tps }) + '\n');
      return;
    }
    if (this.stream.isTTY) {
      if (!this.bar) {
        this.bar = new cliProgress.SingleBar(
          { format: 'batch {bar} {value}/{total} lines | {failed} failed | {tps} tok/s | ETA {eta_formatted}', stream: this.stream, hideCursor: true, etaBuffer: 50 },
          cliProgress.Presets.shades_classic,
        );
        this.bar.start(p.total, p.done, { failed: p.failed, tps });
      }
      this.bar.update(p.done, { failed: p.failed, tps });
      return;
    }
    const now = Date.now();
    if (now - this.lastPlain >= 2000 || (p.done === p.total && this.lastDone !== p.done)) {
      this.lastPlain = now;
      this.lastDone = p.done;
      this.stream.write(`batch: ${p.done}/${p.total} lines | ${p.failed} failed | ${tps} tok/s\n`);
    }
  };

  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
}
