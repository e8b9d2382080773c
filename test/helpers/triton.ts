import { createServer } from 'node:net';
import { execa, type ResultPromise } from 'execa';
import { findTritonEnv, tritonServerCommand } from '../../src/core/triton/env.js';

export interface TritonProcess {
  url: string;
  httpPort: number;
  /** Everything it logged so far (stdout and stderr). */
  log(): string;
  /** SIGTERM, and waits until it has exited. */
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The tritonserver of `llmkit env --setup --triton` on loopback, serving `models` of `repository`; resolves once they are ready. */
export async function startTriton(repository: string, models: string[], httpPort?: number, exitTimeoutS = 3): Promise<TritonProcess> {
  const env = await findTritonEnv();
  if (!env) throw new Error('the Triton environment is not set up: run `llmkit env --setup --triton`');
  const port = httpPort ?? (await freePort());
  const command = tritonServerCommand(env, { repository, httpPort: port, grpcPort: await freePort(), models, exitTimeoutS });
  let log = '';
  const child: ResultPromise = execa(command.file, command.args, { env: command.env, reject: false, stdin: 'ignore', all: true });
  child.all!.on('data', (d) => (log += d));
  const url = `http://127.0.0.1:${port}`;
  const exited = child.then(() => true);
  for (const started = Date.now(); ; ) {
    // (Connection: close: a pooled connection of this process would hold Triton's shutdown, see triton-client.ts.)
    const ready = await fetch(`${url}/v2/health/ready`, { headers: { Connection: 'close' } }).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    if (await Promise.race([exited, new Promise((r) => setTimeout(() => r(false), 250))])) throw new Error(`tritonserver exited before it was ready:\n${log.slice(-3000)}`);
    if (Date.now() - started > 120_000) throw new Error(`tritonserver was not ready after 120 s:\n${log.slice(-3000)}`);
  }
  return {
    url,
    httpPort: port,
    log: () => log,
    stop: async () => {
      child.kill('SIGTERM');
      await child;
    },
  };
}
