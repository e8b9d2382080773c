import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { LlmkitError } from '../../shared/errors.js';
import { llmkitHome } from '../../shared/paths.js';

/**
 * A Triton Inference Server for tests and local use, from PyPI: nvidia-pytriton ships `tritonserver` and its Python
 * backend (not the onnxruntime backend: NVIDIA's container has both, docs/deploy.md). The `-generate` model that
 * `llmkit export --triton` writes needs numpy and onnxruntime (the same release as onnxruntime-node) beside it.
 */
export const TRITON_REQUIREMENTS = ['nvidia-pytriton==0.7.0', 'onnxruntime==1.30.0', 'numpy>=1.26,<2.4'];

/** Where the pieces of one set-up Triton are. */
export interface TritonEnv {
  dir: string;
  tritonserver: string;
  backends: string;
  /** The wheel's bundled shared libraries, which `tritonserver` needs on LD_LIBRARY_PATH. */
  libs: string;
  /** The venv's packages, for the generate model (which adds PYTHONPATH to its sys.path). */
  sitePackages: string;
}

const MANIFEST = 'llmkit-triton.json';

async function tritonDir(python: string): Promise<string> {
  const hash = createHash('sha256')
    .update(TRITON_REQUIREMENTS.join('\n') + python)
    .digest('hex')
    .slice(0, 12);
  return join(llmkitHome(), 'venvs', `triton-${hash}`);
}

/** The Triton set up by `llmkit env --setup --triton`, or null. */
export async function findTritonEnv(python = 'python3'): Promise<TritonEnv | null> {
  const dir = await tritonDir(python);
  const file = join(dir, MANIFEST);
  return existsSync(file) ? (JSON.parse(await readFile(file, 'utf8')) as TritonEnv) : null;
}

/**
 * Makes a venv with nvidia-pytriton, numpy and onnxruntime, and readies the wheel's tritonserver: the Python
 * backend's stub for this Python goes into backends/python, where the backend looks for it. Idempotent, built
 * under a temporary name and renamed into place.
 */
export async function setupTritonEnv(opts: { python?: string } = {}, onLine: (line: string) => void = () => {}): Promise<TritonEnv & { created: boolean }> {
  const python = opts.python ?? 'python3';
  const found = await findTritonEnv(python);
  if (found) return { ...found, created: false };
  const dir = await tritonDir(python);
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(join(llmkitHome(), 'venvs'), { recursive: true });
  try {
    await execa(python, ['-m', 'venv', tmp]);
    const pip = execa(join(tmp, 'bin', 'python'), ['-m', 'pip', 'install', '--progress-bar', 'off', ...TRITON_REQUIREMENTS], { all: true, reject: false });
    for await (const line of pip.all!) onLine(String(line));
    const result = await pip;
    if (result.exitCode !== 0) {
      throw new LlmkitError(
        `pip could not install ${TRITON_REQUIREMENTS.join(', ')} (exit ${result.exitCode})`,
        'check network access to PyPI',
        1,
        String(result.all ?? '')
          .split('\n')
          .slice(-30)
          .join('\n'),
      );
    }
    const where = await execa(join(tmp, 'bin', 'python'), [
      '-c',
      'import os, sys, sysconfig, pytriton; print(os.path.dirname(pytriton.__file__)); print(sysconfig.get_paths()["purelib"]); print(f"{sys.version_info[0]}.{sys.version_info[1]}")',
    ]);
    const [pytriton, sitePackages, version] = where.stdout.trim().split('\n');
    const server = join(pytriton, 'tritonserver');
    const stub = join(server, 'python_backend_stubs', version, 'triton_python_backend_stub');
    if (!existsSync(stub)) throw new LlmkitError(`nvidia-pytriton has no Python backend stub for Python ${version}`, 'pass another Python (3.8 to 3.13) to the Triton set-up');
    await copyFile(stub, join(server, 'backends', 'python', 'triton_python_backend_stub'));
    await chmod(join(server, 'backends', 'python', 'triton_python_backend_stub'), 0o755);
    const env: TritonEnv = {
      dir,
      tritonserver: join(server, 'bin', 'tritonserver').replace(tmp, dir),
      backends: join(server, 'backends').replace(tmp, dir),
      libs: join(sitePackages, 'nvidia_pytriton.libs').replace(tmp, dir),
      sitePackages: sitePackages.replace(tmp, dir),
    };
    // The stub embeds this machine's libpython; without it every Python model fails to load, so say so now.
    const ldd = await execa('ldd', [stub], { reject: false, env: { LD_LIBRARY_PATH: env.libs.replace(dir, tmp) } });
    const missing = ldd.stdout.split('\n').find((l) => l.includes('not found'));
    if (missing) throw new LlmkitError(`Triton's Python backend stub needs ${missing.trim().split(' ')[0]}, which is not installed`, `install it (Debian/Ubuntu: apt-get install libpython${version})`);
    await writeFile(join(tmp, MANIFEST), JSON.stringify(env, null, 2));
    if (existsSync(join(dir, MANIFEST))) await rm(tmp, { recursive: true, force: true });
    else {
      await rm(dir, { recursive: true, force: true });
      await rename(tmp, dir);
    }
    return { ...env, created: true };
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** The command line that serves a model repository with this Triton on loopback (what tests and docs/deploy.md run). */
export function tritonServerCommand(env: TritonEnv, opts: { repository: string; httpPort: number; grpcPort: number; models: string[]; exitTimeoutS?: number }) {
  return {
    file: env.tritonserver,
    args: [
      `--model-repository=${opts.repository}`,
      `--backend-directory=${env.backends}`,
      '--http-address=127.0.0.1',
      `--http-port=${opts.httpPort}`,
      '--grpc-address=127.0.0.1',
      `--grpc-port=${opts.grpcPort}`,
      '--allow-metrics=false',
      // Only the generate model: the wheel has no onnxruntime backend to load the decoder model with.
      '--model-control-mode=explicit',
      ...opts.models.map((m) => `--load-model=${m}`),
      // On SIGTERM Triton waits this long for open connections (keep-alive ones included) before it exits.
      ...(opts.exitTimeoutS === undefined ? [] : [`--exit-timeout-secs=${opts.exitTimeoutS}`]),
    ],
    env: { LD_LIBRARY_PATH: [env.libs, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':'), PYTHONPATH: env.sitePackages },
  };
}
