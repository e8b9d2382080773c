import type { TritonRepository } from '../core/triton/repository.js';
import { LlmkitError } from '../shared/errors.js';

/** Global flags every command sees (set on the root program). */
export interface GlobalFlags {
  verbose?: boolean;
  json?: boolean;
}

/** Prints an error as one line (plus details and the stack with --verbose) and returns the exit code. */
export function reportError(e: unknown, flags: GlobalFlags): number {
  if (e instanceof LlmkitError) {
    const line = e.hint ? `error: ${e.message}; ${e.hint}` : `error: ${e.message}`;
    if (flags.json) process.stdout.write(JSON.stringify({ error: { message: e.message, hint: e.hint ?? null } }) + '\n');
    process.stderr.write(line + '\n');
    if (flags.verbose && e.details) process.stderr.write(e.details + '\n');
    return e.exitCode;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  process.stderr.write(`error: ${err.message.split('\n')[0]}${flags.verbose ? '' : ' (run with --verbose for details)'}\n`);
  if (flags.verbose && err.stack) process.stderr.write(err.stack + '\n');
  return 1;
}

export { formatBytes, formatRows, formatTable } from '../shared/format.js';

/** Ctrl-C asks the running job to stop cleanly; a second Ctrl-C exits at once. */
export function stopOnCtrlC(): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write('\nstopping: saving a checkpoint (Ctrl-C again to quit at once)\n');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  return { signal: controller.signal, dispose: () => process.off('SIGINT', onSigint) };
}

/** What `export` and `quantize` print about the Triton repository they wrote. */
export function tritonLine(r: TritonRepository): string {
  return `Triton repository → ${r.path}: ${r.decoder} (onnxruntime, ${r.checkedTensors} tensors checked against the ONNX file), ${r.generate} (python, decoupled), KIND_${r.device.toUpperCase()}`;
}
