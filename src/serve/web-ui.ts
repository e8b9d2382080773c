import { readFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { join } from 'node:path';
import { packageRoot } from '../shared/paths.js';

/**
 * The web page at `/`: a chat playground and a dashboard (src/serve/ui, plain TypeScript that tsc compiles to
 * dist/serve/ui). Everything it loads comes from this server: the policy below forbids any other origin, so the
 * page works offline and leaks nothing. The page is public; the API calls it makes carry the key the user enters.
 */
const SOURCE = join(packageRoot, 'src', 'serve', 'ui');
const COMPILED = join(packageRoot, 'dist', 'serve', 'ui');
const MODULES = ['app', 'api', 'chat', 'dashboard', 'prometheus', 'runs', 'sse'];

const FILES: Record<string, { path: string; type: string }> = {
  '/': { path: join(SOURCE, 'index.html'), type: 'text/html; charset=utf-8' },
  '/ui/style.css': { path: join(SOURCE, 'style.css'), type: 'text/css; charset=utf-8' },
  ...Object.fromEntries(MODULES.map((m) => [`/ui/${m}.js`, { path: join(COMPILED, `${m}.js`), type: 'text/javascript; charset=utf-8' }])),
};

// blob: for the run charts, fetched with the API key and shown as images.
const POLICY = "default-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'";

/** Serves one of the page's files, or says it is not one (false). */
export async function serveWebUi(pathname: string, res: ServerResponse): Promise<boolean> {
  const file = FILES[pathname];
  if (!file) return false;
  const body = await readFile(file.path);
  res.writeHead(200, { 'Content-Type': file.type, 'Content-Length': body.length, 'Content-Security-Policy': POLICY, 'Cache-Control': 'no-cache' });
  res.end(body);
  return true;
}
