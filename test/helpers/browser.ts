import { existsSync, mkdirSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';

/**
 * Debian's chromium, driven by playwright-core (whose own browser download cannot be fetched here). .ci/run installs
 * the package; CHROMIUM_PATH points elsewhere.
 */
const CANDIDATES = [process.env.CHROMIUM_PATH, '/usr/lib/chromium/chromium', '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter(Boolean) as string[];

export async function launchChromium(): Promise<Browser> {
  const path = CANDIDATES.find((p) => existsSync(p));
  if (!path) throw new Error(`no chromium at ${CANDIDATES.join(', ')}: apt-get install chromium (as .ci/run does) or set CHROMIUM_PATH`);
  // --no-sandbox: CI runs as root, where chromium's sandbox refuses to start.
  return chromium.launch({ executablePath: path, args: ['--no-sandbox'] });
}

/**
 * Where a test's screenshot goes: a folder under the system's temp folder, and docs/images too when
 * LLMKIT_UPDATE_SCREENSHOTS=1 (how the pictures in docs/serve.md were made), so a plain test run leaves the tree clean.
 */
export function screenshotPath(name: string): string {
  const dir = join(tmpdir(), 'llmkit-screenshots');
  mkdirSync(dir, { recursive: true });
  return join(dir, name);
}

export function publishScreenshot(path: string, name: string): void {
  if (process.env.LLMKIT_UPDATE_SCREENSHOTS !== '1') return;
  mkdirSync(join('docs', 'images'), { recursive: true });
  copyFileSync(path, join('docs', 'images', name));
}
