import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

// A lock folder with no pid in it this long after it was made belongs to a process that died between the two steps.
const PIDLESS_LOCK_MS = 10_000;

/**
 * Makes the cached thing at `out` once across processes (two commands, or two test files, asking for the same import or
 * export at the same time): the first to create `<out>.lock` (an exclusive mkdir) runs `make`; the others wait until the
 * lock is gone and find `out` made. A lock left by a process that is gone is taken over. Returns what `make` returned,
 * or undefined when `out` was made already (here or by another process).
 */
export async function makeOnce<T>(out: string, isMade: () => boolean, make: () => Promise<T>): Promise<T | undefined> {
  const lock = `${out}.lock`;
  while (!isMade()) {
    if (!takeLock(lock)) {
      await sleep(200);
      continue;
    }
    try {
      if (!isMade()) return await make();
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  }
  return undefined;
}

function takeLock(lock: string): boolean {
  mkdirSync(dirname(lock), { recursive: true });
  try {
    mkdirSync(lock);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    if (holderGone(lock)) rmSync(lock, { recursive: true, force: true });
    return false;
  }
  writeFileSync(join(lock, 'pid'), String(process.pid));
  return true;
}

function holderGone(lock: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(join(lock, 'pid'), 'utf8'));
  } catch {
    try {
      return Date.now() - statSync(lock).mtimeMs > PIDLESS_LOCK_MS;
    } catch {
      return false;
    }
  }
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
