import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';

/** Writes a file under a temporary name and renames it into place, so a crash never leaves half a file. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}`);
  await writeFile(tmp, data);
  await rename(tmp, path);
}

/** Removes a folder if it exists (used to clear a stale temporary output before writing it again). */
export async function removeIfExists(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
}

/** Writes a folder with `write(tmp)` under a temporary name beside it and swaps it in for the old one, if any. */
export async function replaceFolder(path: string, write: (tmp: string) => Promise<void>): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  try {
    await write(tmp);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  await rm(path, { recursive: true, force: true });
  await rename(tmp, path);
}
