import cliProgress from 'cli-progress';
import type { WorkerEvent } from '../core/jobs.js';
import type { GlobalFlags } from './output.js';

/**
 * Shows a job's events: a cli-progress bar (step, loss, lr, tokens/s, ETA) on a terminal, plain
 * lines at most every few seconds otherwise, and JSON lines on stderr with --json.
 */
export class ProgressView {
  private bar?: cliProgress.SingleBar;
  private lastPlain = 0;

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
    if (event.event === 'progress') this.progress(event);
    else if (event.event === 'log' && (this.flags.verbose || event.level === 'warning')) this.print(`${this.label}: ${event.message}`);
    else if (event.event === 'metric' && event.name === 'eval_loss') this.print(`${this.label}: step ${event.step} eval loss ${Number(event.value).toFixed(4)}`);
  };

  private progress(e: Extract<WorkerEvent, { event: 'progress' }>): void {
    const payload = {
      loss: e.loss !== undefined ? e.loss.toFixed(4) : '-',
      lr: e.lr !== undefined ? e.lr.toExponential(2) : '-',
      tps: e.tokens_per_s !== undefined ? Math.round(e.tokens_per_s).toString() : '-',
      message: e.message ?? '',
    };
    const total = e.total ?? e.step;
    if (this.stream.isTTY) {
      if (!this.bar) {
        this.bar = new cliProgress.SingleBar(
          {
            format: `${this.label} {bar} {value}/{total} | loss {loss} | lr {lr} | {tps} tok/s | ETA {eta_formatted} {message}`,
            stream: this.stream,
            hideCursor: true,
            etaBuffer: 20,
          },
          cliProgress.Presets.shades_classic,
        );
        this.bar.start(total, 0, payload);
      }
      this.bar.setTotal(total);
      this.bar.update(e.step, payload);
      return;
    }
    const now = Date.now();
    if (now - this.lastPlain >= 2000 || e.step === total) {
      this.lastPlain = now;
      const parts = [`${this.label}: step ${e.step}/${total}`];
      if (e.loss !== undefined) parts.push(`loss ${payload.loss}`);
      if (e.lr !== undefined) parts.push(`lr ${payload.lr}`);
      if (e.tokens_per_s !== undefined) parts.push(`${payload.tps} tok/s`);
      if (e.message) parts.push(e.message);
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
