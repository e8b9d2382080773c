import type { GgufType } from '../core/choices.js';
import { UsageError } from '../shared/errors.js';
import { formatBytes, stopOnCtrlC, type GlobalFlags } from './output.js';
import { ProgressView } from './progress.js';

/** Flags of the ONNX route that a GGUF file cannot honour: named in one error, before any work starts. */
export function rejectOnnxFlags(given: string[], hint: string): void {
  if (given.length > 0) throw new UsageError(`--gguf does not take ${given.map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`).join(', ')}`, hint);
}

/** `export --gguf` and `quantize --gguf`: one GGUF file, with progress and the one-line summary (or --json). */
export async function writeGgufFile(command: 'export' | 'quantize', model: string, out: string, type: GgufType, flags: GlobalFlags): Promise<void> {
  const { exportGguf } = await import('../core/export-gguf.js');
  const view = new ProgressView(flags, `${command} --gguf`);
  const stop = stopOnCtrlC();
  try {
    const report = await exportGguf({ model, out, type, onEvent: view.onEvent, stopSignal: stop.signal });
    view.stop();
    if (flags.json) process.stdout.write(JSON.stringify(report) + '\n');
    else process.stdout.write(`${command === 'export' ? 'exported' : 'quantized'} ${model} → ${report.path} (GGUF ${report.architecture}, ${report.type}, ${formatBytes(report.bytes)})\n`);
  } finally {
    stop.dispose();
  }
}
