// `llmkit env --setup --cuda` on a machine without a GPU: the set-up's logic against local fake wheels
// (version matching, where the libraries go, the record, the loader path the CLI starts itself with).
// Loading the provider needs an NVIDIA GPU; that part runs on the lent H200 (test/bench/device/cuda-run.sh).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { setupCudaProvider } from '../../src/core/cuda-setup.js';
import { cudaRecordPath, onnxruntimeNodeVersion } from '../../src/engine/cuda-libraries.js';
import { findPythonEnv } from '../../src/workers/python-env.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { exportedTinyModel } from '../helpers/models.js';

const VERSION = onnxruntimeNodeVersion();
const LIBS = ['libonnxruntime_providers_cuda.so', 'libonnxruntime_providers_shared.so', 'libonnxruntime_providers_tensorrt.so'];

/** Bytes standing in for a provider library; the CUDA one holds its release as a NUL-delimited string, as the real one does. */
function fakeLibrary(lib: string, release: string): Buffer {
  return Buffer.concat([Buffer.from(`\x7fELF fake ${lib}\0`), Buffer.from(`\0${release}\0`)]);
}

/** A wheel is a zip: Python's zipfile writes one with the wheel's layout. */
async function fakeWheel(folder: string, release: string): Promise<string> {
  mkdirSync(folder, { recursive: true });
  const wheel = join(folder, `onnxruntime_gpu-${release}-cp311-cp311-manylinux_2_28_x86_64.whl`);
  const files = Object.fromEntries(LIBS.map((lib) => [`onnxruntime/capi/${lib}`, fakeLibrary(lib, release).toString('latin1')]));
  const python = (await findPythonEnv())!.python;
  await execa(python, ['-c', 'import json,sys,zipfile\nz=zipfile.ZipFile(sys.argv[1],"w")\n[z.writestr(k,v.encode("latin1")) for k,v in json.loads(sys.stdin.read()).items()]', wheel], {
    input: JSON.stringify(files),
  });
  return wheel;
}

let home: string;
beforeAll(async () => {
  // The worker runs from the test's own LLMKIT_HOME, with the suite's interpreter.
  process.env.LLMKIT_PYTHON = (await findPythonEnv())!.python;
  home = tempDir('llmkit-cuda-home-');
  process.env.LLMKIT_HOME = home;
});

describe('setupCudaProvider', () => {
  it("places the wheel's provider libraries, byte for byte, and records the CUDA library folders", async () => {
    const wheels = tempDir();
    await fakeWheel(wheels, '1.0.0'); // an older release in the same folder is passed over
    await fakeWheel(wheels, VERSION);
    const dest = tempDir('llmkit-ort-bin-');
    const record = await setupCudaProvider({ from: wheels, providerDir: dest });
    for (const lib of LIBS) expect(readFileSync(join(dest, lib))).toEqual(fakeLibrary(lib, VERSION));
    expect(record.source).toMatch(new RegExp(`onnxruntime_gpu-${VERSION.replace(/\./g, '\\.')}-`));
    // The worker environment's PyTorch (cu130 from PyPI) brings every CUDA 13 library the provider links.
    const needed = ['libcudart.so.13', 'libcublas.so.13', 'libcublasLt.so.13', 'libcurand.so.10', 'libcudnn.so.9'];
    for (const lib of needed)
      expect(
        record.libraryDirs.some((dir) => existsSync(join(dir, lib))),
        lib,
      ).toBe(true);
    const saved = JSON.parse(readFileSync(cudaRecordPath(), 'utf8'));
    expect(saved).toEqual({ onnxruntimeVersion: VERSION, providerDir: dest, libraryDirs: record.libraryDirs, source: record.source });
  });

  it('refuses a wheel of another release, naming both versions', async () => {
    const wheel = await fakeWheel(tempDir(), '1.29.0');
    await expect(setupCudaProvider({ from: wheel, providerDir: tempDir() })).rejects.toThrow(
      `onnxruntime-gpu 1.29.0 does not match onnxruntime-node ${VERSION}: the provider must come from the same release`,
    );
  });

  it('takes unpacked libraries only when the CUDA provider is of the same release', async () => {
    const folder = tempDir();
    for (const lib of LIBS) writeFileSync(join(folder, lib), fakeLibrary(lib, '1.29.0'));
    const dest = tempDir();
    await expect(setupCudaProvider({ from: folder, providerDir: dest })).rejects.toThrow(`is not from onnxruntime ${VERSION}`);
    expect(existsSync(join(dest, LIBS[0]))).toBe(false);
    for (const lib of LIBS) writeFileSync(join(folder, lib), fakeLibrary(lib, VERSION));
    await setupCudaProvider({ from: folder, providerDir: dest });
    expect(readFileSync(join(dest, LIBS[0]))).toEqual(fakeLibrary(LIBS[0], VERSION));
  });

  it('says what --cuda-from must hold when it holds neither wheel nor libraries', async () => {
    await expect(setupCudaProvider({ from: tempDir(), providerDir: tempDir() })).rejects.toThrow(/holds neither an onnxruntime-gpu wheel nor libonnxruntime_providers_cuda\.so/);
  });
});

describe('the CLI and the recorded CUDA libraries', () => {
  it('starts itself again with the recorded folders on the loader path, once', async () => {
    const cliHome = tempDir('llmkit-cuda-cli-');
    const libs = tempDir('llmkit-cuda-libs-');
    mkdirSync(join(cliHome, 'cuda'));
    const record = { onnxruntimeVersion: VERSION, providerDir: tempDir(), libraryDirs: [libs], source: 'test' };
    writeFileSync(join(cliHome, 'cuda', 'provider.json'), JSON.stringify(record));
    const env = { LLMKIT_HOME: cliHome, LD_LIBRARY_PATH: '/opt/elsewhere' };
    const relaunched = JSON.parse((await runCli(['env', '--json'], { env })).stdout);
    expect(relaunched.cudaProvider.record).toEqual(record);
    expect(relaunched.cudaProvider.missingFromLoaderPath).toEqual([]);
    // Without the restart (as when the child already runs), the folder would be missing.
    const direct = JSON.parse((await runCli(['env', '--json'], { env: { ...env, LLMKIT_CUDA_LOADER_PATH: '1' } })).stdout);
    expect(direct.cudaProvider.missingFromLoaderPath).toEqual([libs]);
  });

  it('--device cuda without the set-up fails in one line that names the command to run', async () => {
    const model = await exportedTinyModel();
    const r = await runCli(['chat', model, '--device', 'cuda'], { env: { LLMKIT_HOME: tempDir() } });
    expect(r.exitCode).not.toBe(0);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/cuda: CUDA provider not set up: run `llmkit env --setup --cuda`/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('--cuda without --setup is a usage error', async () => {
    const r = await runCli(['env', '--cuda']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim()).toBe('error: --cuda goes with --setup; run `llmkit env --setup --cuda`');
  });
});
