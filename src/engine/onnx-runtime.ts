/**
 * The one module that imports onnxruntime-node: session creation, execution-provider choice and
 * its fallback. Providers are tried one at a time, because asking onnxruntime-node for a list
 * whose first entry is missing throws instead of falling back.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { LlmkitError } from '../shared/errors.js';
import { packageRoot } from '../shared/paths.js';
import { CUDA_PROVIDER_LIBRARY, onnxruntimeLibDir, readCudaRecord } from './cuda-libraries.js';
import type { Device, Provider } from './devices.js';
import { bindingStatus, cpuSessionConfig } from './native/ort-binding.js';
import { NativeRunner } from './native/native-runner.js';

ort.env.logLevel = 'fatal';

const AUTO_ORDER: Provider[] = ['cuda', 'webgpu', 'cpu'];

export interface ProviderProbe {
  provider: Provider;
  loaded: boolean;
  reason?: string;
}

export type Tensor = ort.Tensor;
export const Tensor = ort.Tensor;
export type InferenceSession = ort.InferenceSession;
export const onnxruntimeVersion: string = ort.env.versions.common ?? 'unknown';

const probeModel = join(packageRoot, 'src', 'engine', 'assets', 'probe.onnx');

function shortReason(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  if (/webgpu/i.test(text) && /adapter/i.test(text)) return 'no WebGPU adapter (needs a GPU with a Vulkan driver and libvulkan)';
  const missingLibrary = /depends on "([^"]+)" which is missing/.exec(text);
  if (missingLibrary) return `CUDA library ${missingLibrary[1]} is not on the loader path: run \`llmkit env --setup --cuda\``;
  return text.split('\n')[0].slice(0, 200);
}

/**
 * Reasons a provider cannot load that llmkit can see without asking onnxruntime, which would print
 * multi-line errors to stderr first: the CUDA provider's library is only there after
 * `llmkit env --setup --cuda` (or an install with ONNXRUNTIME_NODE_INSTALL=cuda12), and WebGPU on Linux runs on Vulkan.
 */
function knownUnavailable(provider: Provider): string | undefined {
  if (provider === 'cuda' && process.platform === 'linux') {
    if (!existsSync(join(onnxruntimeLibDir(), CUDA_PROVIDER_LIBRARY))) return 'CUDA provider not set up: run `llmkit env --setup --cuda`';
    const record = readCudaRecord();
    if (record && record.onnxruntimeVersion !== onnxruntimeVersion) {
      return `the CUDA provider was set up for onnxruntime-node ${record.onnxruntimeVersion}, this is ${onnxruntimeVersion}: run \`llmkit env --setup --cuda\` again`;
    }
  }
  if (provider === 'webgpu' && process.platform === 'linux') {
    try {
      const cache = execFileSync('ldconfig', ['-p'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      if (!cache.includes('libvulkan.so.1')) return 'no Vulkan loader (libvulkan.so.1): install libvulkan1 and the GPU driver';
    } catch {
      // no ldconfig: let onnxruntime try
    }
  }
  return undefined;
}

/** Tries each provider on a 4x4 MatMul and checks the answer: "loads" means it also computes. */
export async function probeProviders(providers: Provider[] = AUTO_ORDER): Promise<ProviderProbe[]> {
  const probes: ProviderProbe[] = [];
  for (const provider of providers) {
    const unavailable = knownUnavailable(provider);
    if (unavailable) {
      probes.push({ provider, loaded: false, reason: unavailable });
      continue;
    }
    if (provider === 'cuda') keepFp32Exact();
    try {
      const session = await ort.InferenceSession.create(probeModel, { executionProviders: [provider] });
      const out = await session.run({ x: new ort.Tensor('float32', Float32Array.from([1, 2, 3, 4]), [1, 4]) });
      await session.release();
      const y = out.y.data as Float32Array;
      const ok = y[0] === 2 && y[3] === 8;
      probes.push(ok ? { provider, loaded: true } : { provider, loaded: false, reason: `wrong result ${Array.from(y)}` });
    } catch (e) {
      probes.push({ provider, loaded: false, reason: shortReason(e) });
    }
  }
  return probes;
}

/** An output of a run: its dimensions, and optionally the caller's buffer ONNX Runtime should write it into. */
export interface OutputSpec {
  dims: readonly number[];
  into?: Float32Array;
}

/** A model session as the engine uses it: float32 outputs of known dimensions, on either binding. */
export interface ModelRunner {
  /** `llmkit`: the native binding writes outputs into their buffers; `onnxruntime-node`: fresh copies come back. */
  readonly binding: 'llmkit' | 'onnxruntime-node';
  /**
   * One pass. Aborting `signal` stops it early where the binding can (llmkit's own, before its next node): it then
   * rejects with RunInterrupted and writes nothing the caller keeps; where it cannot, the pass completes as usual.
   */
  run(feeds: Record<string, Tensor>, outputs: Record<string, OutputSpec>, signal?: AbortSignal): Promise<Record<string, Float32Array>>;
  release(): Promise<void>;
}

/** A pass stopped on purpose (ModelRunner.run's signal): not a failure of its rows, whose state it left as it was. */
export class RunInterrupted extends Error {
  constructor() {
    super('the pass was interrupted');
    this.name = 'RunInterrupted';
  }
}

/**
 * onnxruntime-node: an output given a buffer is written into it, then copied into a new array all the same
 * (its binding has no preallocated outputs), which is what llmkit's own binding exists to avoid.
 */
class OnnxruntimeNodeRunner implements ModelRunner {
  readonly binding = 'onnxruntime-node';
  constructor(private readonly session: ort.InferenceSession) {}

  async run(feeds: Record<string, Tensor>, outputs: Record<string, OutputSpec>): Promise<Record<string, Float32Array>> {
    const fetches: Record<string, Tensor | null> = {};
    for (const [name, spec] of Object.entries(outputs)) fetches[name] = spec.into ? new ort.Tensor('float32', spec.into, spec.dims) : null;
    const out = await this.session.run(feeds, fetches);
    return Object.fromEntries(Object.keys(outputs).map((name) => [name, out[name].data as Float32Array]));
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

export interface SessionChoice {
  runner: ModelRunner;
  provider: Provider;
  /** Why each provider tried before the chosen one did not load. */
  skipped: ProviderProbe[];
}

export interface SessionOptions {
  device?: Device;
  /** Intra-op threads; default: onnxruntime's own choice (one per physical core). */
  threads?: number;
  /** The binding CPU and CUDA sessions run on; default: llmkit's own where it loads (WebGPU: onnxruntime-node). */
  binding?: ModelRunner['binding'];
}

function useNativeBinding(provider: Provider, wanted: SessionOptions['binding']): provider is 'cpu' | 'cuda' {
  if (provider === 'webgpu' || wanted === 'onnxruntime-node') return false;
  const status = bindingStatus();
  if (status.binding === 'llmkit') return true;
  if (wanted === 'llmkit') throw new LlmkitError(`llmkit's ONNX Runtime binding is not in use: ${status.reason}`, 'run `npm run build`, or leave the binding to llmkit');
  return false;
}

/**
 * cuBLAS computes fp32 matrix products in TF32 (10-bit mantissas) by default on Ampere and later,
 * which changed greedy tokens against the CPU at batch 8. llmkit's fp32 promise is "same tokens as
 * the CPU", so TF32 is off unless the user set NVIDIA_TF32_OVERRIDE (cuBLAS reads it when the CUDA
 * provider loads, hence before the first CUDA session; fp16 and quantized models are unaffected).
 */
function keepFp32Exact(): void {
  process.env.NVIDIA_TF32_OVERRIDE ??= '0';
}

/**
 * Null when sessions can open on `provider` as far as llmkit can see without asking ONNX Runtime, else why not;
 * for CUDA it also keeps fp32 exact (keepFp32Exact). For code that opens llmkit's own sessions directly.
 */
export function providerUnavailable(provider: 'cpu' | 'cuda'): string | null {
  const unavailable = knownUnavailable(provider);
  if (!unavailable && provider === 'cuda') keepFp32Exact();
  return unavailable ?? null;
}

/** A model in memory, and the file it came from (where its external data, if any, lies beside it). */
export interface ModelBytes {
  bytes: Uint8Array;
  path: string;
}

/** Whether `auto` can only end on the CPU: CUDA and WebGPU are known to be unavailable before anything is tried. */
export function autoMeansCpu(): boolean {
  return knownUnavailable('cuda') !== undefined && knownUnavailable('webgpu') !== undefined;
}

/** Opens a model on the requested device; `auto` takes the first of cuda, webgpu, cpu that loads. */
export async function openSession(model: ModelBytes, opts: SessionOptions = {}): Promise<SessionChoice> {
  const device = opts.device ?? 'auto';
  const order = device === 'auto' ? AUTO_ORDER : [device];
  const skipped: ProviderProbe[] = [];
  for (const provider of order) {
    const unavailable = knownUnavailable(provider);
    if (unavailable) {
      skipped.push({ provider, loaded: false, reason: unavailable });
      continue;
    }
    if (provider === 'cuda') keepFp32Exact();
    // onnxruntime-node's CPU sessions take the same spinning choice as llmkit's binding (cpuSessionConfig says why).
    const cpuConfig = provider === 'cpu' ? cpuSessionConfig() : {};
    try {
      if (useNativeBinding(provider, opts.binding)) {
        const config = { 'session.model_external_initializers_file_folder_path': dirname(model.path) };
        return { runner: NativeRunner.open(model.bytes, { provider, threads: opts.threads, config }), provider, skipped };
      }
      const session = await ort.InferenceSession.create(model.bytes, {
        executionProviders: [provider],
        graphOptimizationLevel: 'all',
        ...(opts.threads ? { intraOpNumThreads: opts.threads, interOpNumThreads: 1 } : {}),
        // Loaded from memory, a model finds its external data files only through this. Keys are flattened with dots.
        extra: { ...cpuConfig, session: { model_external_initializers_file_folder_path: dirname(model.path) } },
      });
      return { runner: new OnnxruntimeNodeRunner(session), provider, skipped };
    } catch (e) {
      skipped.push({ provider, loaded: false, reason: shortReason(e) });
    }
  }
  const reasons = skipped.map((s) => `${s.provider}: ${s.reason}`).join('; ');
  throw new LlmkitError(`could not open ${model.path} on ${device} (${reasons})`, `try --device cpu, or check the model with \`llmkit env\``);
}

/** One input or output as ONNX Runtime reads it: element type, and dimensions (a name or -1 when dynamic). */
export interface TensorSignature {
  name: string;
  type: string;
  shape: readonly (number | string)[];
}

/** The inputs and outputs of an ONNX file as ONNX Runtime sees them (a CPU session, opened and released). */
export async function readSignature(path: string): Promise<{ inputs: TensorSignature[]; outputs: TensorSignature[] }> {
  const session = await ort.InferenceSession.create(path, { executionProviders: ['cpu'], graphOptimizationLevel: 'disabled' });
  const describe = (values: readonly ort.InferenceSession.ValueMetadata[]) =>
    values.map((v) => (v.isTensor ? { name: v.name, type: v.type, shape: v.shape } : { name: v.name, type: 'non-tensor', shape: [] }));
  try {
    return { inputs: describe(session.inputMetadata), outputs: describe(session.outputMetadata) };
  } finally {
    await session.release();
  }
}
