import { readFileSync } from 'node:fs';
import * as nodeModule from 'node:module';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import type * as XGrammar from '@mlc-ai/web-xgrammar';

export type XGrammarModule = typeof XGrammar;

let loaded: XGrammarModule | undefined;

const DYNAMIC_IMPORT = "import('module')";
/** Where the bundle writes C++'s stderr (a failed check says there why it failed, then the module aborts). */
const PRINT_ERR = 'var err=Module["printErr"]||console.error.bind(console);';

/** Receives the module's stderr lines while `explained` runs; console.error otherwise. */
let errorLines: string[] | undefined;
const printErr = (...parts: unknown[]) => (errorLines ? errorLines.push(parts.join(' ')) : console.error(...parts));

/**
 * XGrammar's WebAssembly build (@mlc-ai/web-xgrammar, the grammar engine of WebLLM). Its file is a UMD
 * bundle inside a `"type": "module"` package: imported as ESM it only sets `globalThis.xgrammar` and needs
 * CommonJS's `require` and `__filename` as globals. Running it as the CommonJS module it was built as
 * gives it those as arguments instead and leaves the globals alone. Its one dynamic `import('module')`
 * is answered with node:module directly, since code made by `new Function` has no module loader to ask
 * under test runners that evaluate modules in a vm context (vitest). Its stderr goes through `printErr`,
 * so that `explained` can turn what a failed check printed into the error's message.
 */
export function xgrammar(): XGrammarModule {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  const file = require.resolve('@mlc-ai/web-xgrammar');
  const module = { exports: {} as XGrammarModule };
  const source = readFileSync(file, 'utf8');
  for (const part of [DYNAMIC_IMPORT, PRINT_ERR]) {
    if (!source.includes(part)) throw new Error(`${file} is not the @mlc-ai/web-xgrammar build llmkit knows (0.1.27): no ${part}`);
  }
  const patched = source.replace(DYNAMIC_IMPORT, 'Promise.resolve(__nodeModule)').replace(PRINT_ERR, 'var err=__printErr;');
  const body = new Function('exports', 'require', 'module', '__filename', '__dirname', '__nodeModule', '__printErr', patched);
  body.call(globalThis, module.exports, require, module, file, dirname(file), nodeModule, printErr);
  return (loaded = module.exports);
}

/**
 * Runs an XGrammar call; if it fails, the error says what XGrammar printed ("Cannot find field $defs in …")
 * instead of the WebAssembly abort ("Aborted(). Build with -sASSERTIONS …"), and nothing reaches stderr.
 */
export async function explained<T>(call: () => Promise<T>): Promise<T> {
  const outer = errorLines;
  const lines: string[] = [];
  errorLines = lines;
  try {
    return await call();
  } catch (e) {
    const printed = lines.find((l) => l.includes('[FATAL]') || l.includes('Check failed'));
    throw new Error(printed ? cleanCheck(printed) : e instanceof Error ? e.message : String(e));
  } finally {
    errorLines = outer;
    outer?.push(...lines);
  }
}

/** "[FATAL] /path/x.cc:961: Check failed: (cond) is false: Cannot find …" → "Cannot find …" */
function cleanCheck(line: string): string {
  const reason = /Check failed: .*? is false: (.*)$/.exec(line);
  return (reason ? reason[1] : line.replace(/^\[FATAL\] \S+:\d+: /, '')).trim();
}
