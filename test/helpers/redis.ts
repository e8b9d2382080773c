import { execa, execaSync, type ResultPromise } from 'execa';
import { createServer } from 'node:net';
import { tempDir } from './cli.js';

/** Why redis-server cannot start here (printed by the tests that skip), or undefined when it can. */
export function redisUnavailable(): string | undefined {
  try {
    execaSync('redis-server', ['--version']);
    return undefined;
  } catch (e) {
    return `redis-server cannot start (${(e as Error).message.split('\n')[0]}): install Debian's redis-server package, as .ci/run does`;
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface RedisServer {
  url: string;
  /** Stops the server (SIGTERM); `start` brings it back on the same port, with its data (append-only file). */
  stop(): Promise<void>;
  start(): Promise<void>;
}

/** A real redis-server on a free port of 127.0.0.1, persisting to a temporary folder. */
export async function startRedis(): Promise<RedisServer> {
  const port = await freePort();
  const dir = tempDir('llmkit-redis-');
  let child: ResultPromise | undefined;
  const start = async () => {
    child = execa('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes'], { reject: false, stdin: 'ignore' });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child!.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('Ready to accept connections')) resolve();
      });
      void child!.then((r) => reject(new Error(`redis-server exited (${r.exitCode}):\n${String(r.stdout).slice(-1000)}`)));
    });
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    start,
    stop: async () => {
      child?.kill('SIGTERM');
      await child;
    },
  };
}
