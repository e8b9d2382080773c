// `llmkit serve` as its own process for the bench scripts: started with `--json`, resolved once it listens.
import { execa } from 'execa';

/** Runs `<root>/bin/llmkit.js --json serve ...args`; resolves with its base URL and the child process. */
export async function startServe(args, root = '.') {
  const child = execa(process.execPath, [`${root}/bin/llmkit.js`, '--json', 'serve', ...args], { reject: false, stdin: 'ignore', buffer: false });
  const url = await new Promise((ok, fail) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const line = out.split('\n').find((l) => l.includes('"listening"'));
      if (line) ok(JSON.parse(line).url);
    });
    void child.then((r) => fail(new Error(`${root}: llmkit serve exited (${r.exitCode})`)));
  });
  return { url, child, stop: async () => (child.kill('SIGTERM'), await child) };
}
