import { execa } from 'execa';

export interface ServeProcess {
  /** The OpenAI API's base URL, e.g. http://127.0.0.1:41967/v1. */
  apiUrl: string;
  pid: number;
  /** What the server wrote to stderr so far (access log, Redis notices). */
  stderr(): string;
  stop(): Promise<void>;
  /** Ends the process with `signal` (SIGKILL: no draining) and waits for it. */
  kill(signal: NodeJS.Signals): Promise<void>;
}

/**
 * Starts the real `llmkit serve` on a free port with one model named `name` (and `args`: more models, flags; `env`:
 * variables added to this process's), and waits until it listens.
 */
export async function startServe(model: string, name = 'tiny', args: string[] = [], env: Record<string, string> = {}): Promise<ServeProcess> {
  const child = execa('node', ['bin/llmkit.js', '--json', 'serve', `${name}=${model}`, '--port', '0', '--device', 'cpu', ...args], { reject: false, stdin: 'ignore', env });
  let err = '';
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stderr!.on('data', (d) => (err += d));
    child.stdout!.on('data', (d) => {
      out += d;
      for (const line of out.split('\n')) {
        if (line.includes('"listening"')) resolve(JSON.parse(line).url);
      }
    });
    void child.then((r) => reject(new Error(`llmkit serve exited (${r.exitCode}) before listening:\n${err.slice(-2000)}`)));
  });
  return {
    apiUrl: `${url}/v1`,
    pid: child.pid!,
    stderr: () => err,
    stop: async () => {
      child.kill('SIGTERM');
      await child;
    },
    kill: async (signal) => {
      child.kill(signal);
      await child;
    },
  };
}
