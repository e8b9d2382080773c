import { stripVTControlCharacters } from 'node:util';
import { act } from 'react';

/** React runs act()'s updates to completion only while this flag is set; outside type() (a reply streaming in) it is not. */
const actEnvironment = globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean };

/** Keys as a terminal sends them. ink reads Enter only when it arrives on its own, so `submit` sends it separately. */
export const KEYS = { enter: '\r', escape: '\x1b', ctrlC: '\x03', ctrlD: '\x04', up: '\x1b[A', down: '\x1b[B', altEnter: '\x1b\r', backspace: '\x7f' };

interface Rendered {
  stdin: { write(data: string): void };
  lastFrame(): string | undefined;
}

/** The last frame without colours. */
export function screen(app: Rendered): string {
  return stripVTControlCharacters(app.lastFrame() ?? '');
}

/** Polls the screen until `check` holds (ink renders asynchronously), failing with the screen when it never does. */
export async function waitForScreen(app: Rendered, check: (text: string) => boolean, what: string, timeoutMs = 5000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = screen(app);
    if (check(text)) return text;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; screen:\n${text}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Types text (one chunk, as a paste or a fast typist would) and waits until React has run every update
 * it caused (act), so the next key meets the state this one left; ink parses a lone Escape a tick
 * later, which the act callback waits for too.
 */
export async function type(app: Rendered, text: string): Promise<void> {
  actEnvironment.IS_REACT_ACT_ENVIRONMENT = true;
  try {
    await act(async () => {
      app.stdin.write(text);
      await new Promise((r) => setImmediate(r));
    });
  } finally {
    actEnvironment.IS_REACT_ACT_ENVIRONMENT = false;
  }
}

export async function press(app: Rendered, key: string): Promise<void> {
  await type(app, key);
}

export async function submit(app: Rendered, text: string): Promise<void> {
  await type(app, text);
  await press(app, KEYS.enter);
}
