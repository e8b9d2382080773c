import type { Command } from 'commander';
import { reportError, type GlobalFlags } from './output.js';

/**
 * Wraps a command's handler: passes its options and the global flags, catches every error once,
 * prints it as one line and sets the exit code. Handlers return their exit code.
 */
export function action<O>(handler: (opts: O, flags: GlobalFlags, args: string[]) => Promise<number | void>) {
  return async function (this: Command, ...params: unknown[]): Promise<void> {
    const cmd = params[params.length - 1] as Command;
    const flags = cmd.optsWithGlobals() as GlobalFlags;
    const args = params.slice(0, -2) as string[];
    try {
      process.exitCode = (await handler(cmd.opts() as O, flags, args)) ?? 0;
    } catch (e) {
      process.exitCode = reportError(e, flags);
    }
  };
}
