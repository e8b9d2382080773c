import { LlmkitError } from '../core/errors.js';

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

export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** A two-column table for reports: label, value. */
export function formatRows(rows: [string, string][]): string {
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n');
}

/** A markdown-style table (also readable in a terminal). */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => c.padEnd(widths[i])).join(' | ') + ' |';
  return [line(header), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...rows.map(line)].join('\n');
}

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
