/**
 * llmkit's own ONNX Runtime binding (ort-binding.cc, built by build.js during `npm run build`): I/O binding, so
 * outputs land in buffers the caller owns (a KV cache written in place) and device tensors stay on the device,
 * and runs on a worker thread so the event loop keeps answering. It drives the very libonnxruntime.so.1 that
 * onnxruntime-node ships. Where it was not built, or LLMKIT_NATIVE=0 switches it off, the engine runs on
 * onnxruntime-node as before; bindingStatus() says which and why.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { packageRoot } from '../../shared/paths.js';
import { onnxruntimeLibDir } from '../cuda-libraries.js';

export const NATIVE_DIR = join(packageRoot, 'dist', 'native');
export const ADDON_PATH = join(NATIVE_DIR, 'ort-binding.node');
/** What build.js wrote: whether it built the addon, and why not. */
export const BUILD_RECORD = join(NATIVE_DIR, 'build.json');

export type ElementType = 'float32' | 'float16' | 'int64' | 'int32' | 'int8' | 'uint8' | 'bool';
export type HostArray = Float32Array | Uint16Array | BigInt64Array | Int32Array | Int8Array | Uint8Array;

declare const handle: unique symbol;
/** An object of the addon (a session, tensor or binding); opaque to JS. */
type Handle<T extends string> = { readonly [handle]: T };

interface Addon {
  init(library: string): { apiVersion: number };
  openSession(model: string | Uint8Array, opts: { provider: 'cpu' | 'cuda'; threads?: number; cuda?: Record<string, string>; config?: Record<string, string> }): Handle<'session'>;
  sessionNames(session: Handle<'session'>): { inputs: string[]; outputs: string[] };
  releaseSession(session: Handle<'session'>): void;
  hostTensor(array: HostArray, type: ElementType, shape: readonly number[]): Handle<'tensor'>;
  deviceTensor(session: Handle<'session'>, type: ElementType, shape: readonly number[]): Handle<'tensor'>;
  tensorView(tensor: Handle<'tensor'>, offsetElements: number, shape: readonly number[]): Handle<'tensor'>;
  copyTensor(tensor: Handle<'tensor'>, array: HostArray, toTensor: boolean, offsetBytes?: number): void;
  createBinding(session: Handle<'session'>): Handle<'binding'>;
  bind(binding: Handle<'binding'>, kind: 'input' | 'output', name: string, tensor: Handle<'tensor'>): void;
  run(binding: Handle<'binding'>, runConfig?: Record<string, string>): Promise<void>;
  terminate(binding: Handle<'binding'>): void;
}

/** `library`: the ONNX Runtime the binding opened (onnxruntime-node's unless LLMKIT_ORT_LIBRARY names another). */
export type BindingStatus = { binding: 'llmkit'; apiVersion: number; library: string } | { binding: 'onnxruntime-node'; reason: string };

let loaded: { addon?: Addon; status: BindingStatus } | undefined;

function notBuiltReason(): string {
  if (!existsSync(BUILD_RECORD)) return 'the native binding was not built (run `npm run build`)';
  try {
    const record = JSON.parse(readFileSync(BUILD_RECORD, 'utf8')) as { built: boolean; reason?: string };
    return record.reason ?? 'the native binding was not built';
  } catch {
    return `unreadable ${BUILD_RECORD}: run \`npm run build\``;
  }
}

function load(): { addon?: Addon; status: BindingStatus } {
  if (process.env.LLMKIT_NATIVE === '0') return { status: { binding: 'onnxruntime-node', reason: 'switched off by LLMKIT_NATIVE=0' } };
  if (!existsSync(ADDON_PATH)) return { status: { binding: 'onnxruntime-node', reason: notBuiltReason() } };
  try {
    const addon = createRequire(import.meta.url)(ADDON_PATH) as Addon;
    // Another build of the same C API (a newer release, e.g. a PyPI wheel's libonnxruntime.so.1.x) can be measured
    // against onnxruntime-node's: test/bench/peers.js --ort-library. onnxruntime-node itself keeps its own.
    const library = process.env.LLMKIT_ORT_LIBRARY || join(onnxruntimeLibDir(), 'libonnxruntime.so.1');
    const { apiVersion } = addon.init(library);
    return { addon, status: { binding: 'llmkit', apiVersion, library } };
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    return { status: { binding: 'onnxruntime-node', reason: `the native binding did not load: ${message.split('\n')[0]}` } };
  }
}

function addonOrThrow(): Addon {
  loaded ??= load();
  if (!loaded.addon) throw new Error(`llmkit's ONNX Runtime binding is not in use: ${(loaded.status as { reason: string }).reason}`);
  return loaded.addon;
}

/** Which binding sessions run on, and why not llmkit's own where it is not. */
export function bindingStatus(): BindingStatus {
  loaded ??= load();
  return loaded.status;
}

/** ORT's messages run over several lines (a shape error lists each index); the first says what was wrong. */
function oneLine(e: unknown): Error {
  const message = e instanceof Error ? e.message : String(e);
  return new Error(message.replace(/\s*\n\s*/g, ' ').trim());
}

function rethrown<T>(body: () => T): T {
  try {
    return body();
  } catch (e) {
    throw oneLine(e);
  }
}

/** A tensor of the binding: over a JS array's memory, or in device memory. */
export class NativeTensor {
  constructor(
    readonly handle: Handle<'tensor'>,
    readonly type: ElementType,
    readonly shape: readonly number[],
  ) {}

  /** A tensor over `count` = product(shape) elements of this one's memory from `offsetElements` on. */
  view(offsetElements: number, shape: readonly number[]): NativeTensor {
    return new NativeTensor(
      rethrown(() => addonOrThrow().tensorView(this.handle, offsetElements, shape)),
      this.type,
      shape,
    );
  }

  /** Copies `array` into the tensor's memory at `offsetBytes` (host to device for a device tensor). */
  write(array: HostArray, offsetBytes = 0): void {
    rethrown(() => addonOrThrow().copyTensor(this.handle, array, true, offsetBytes));
  }

  /** Copies `array.byteLength` bytes of the tensor's memory from `offsetBytes` into `array`. */
  read(array: HostArray, offsetBytes = 0): void {
    rethrown(() => addonOrThrow().copyTensor(this.handle, array, false, offsetBytes));
  }
}

/** Which tensor each input and output name is bound to; a run reads and writes them in place. */
export class NativeBinding {
  constructor(private readonly handle: Handle<'binding'>) {}

  input(name: string, tensor: NativeTensor): this {
    rethrown(() => addonOrThrow().bind(this.handle, 'input', name, tensor.handle));
    return this;
  }

  output(name: string, tensor: NativeTensor): this {
    rethrown(() => addonOrThrow().bind(this.handle, 'output', name, tensor.handle));
    return this;
  }

  /** One run on a worker thread; `runConfig` entries are ORT run options (e.g. `gpu_graph_id`). */
  async run(runConfig?: Record<string, string>): Promise<void> {
    try {
      await addonOrThrow().run(this.handle, runConfig);
    } catch (e) {
      throw oneLine(e);
    }
  }

  /** Stops the run in progress, if any, before its next node; that run rejects. */
  terminate(): void {
    rethrown(() => addonOrThrow().terminate(this.handle));
  }
}

/**
 * ONNX Runtime's CPU thread pool spins its workers for tens of ms after every parallel section (~40 ms of CPU after
 * each run, measured). On cores nothing else wants that is the faster choice (the quiet 2-core machine: with the
 * workers sleeping, prefill 0.68-0.72x and int4 batch-1 decode 0.73x), so ORT's default stays. On cores shared with
 * other work, a run's three threads here (the event loop, the libuv worker that calls Run, ORT's workers) lose the
 * hand-off between steps to the spinning worker (loaded machine: sleeping workers 1.3-2.2x faster at batch 1):
 * LLMKIT_CPU_SPINNING=0 lets them sleep (docs/benchmarks.md, issue 24's fifth session).
 */
export function cpuSessionConfig(): Record<string, string> {
  return process.env.LLMKIT_CPU_SPINNING === '0' ? { 'session.intra_op.allow_spinning': '0' } : {};
}

export interface NativeSessionOptions {
  provider: 'cpu' | 'cuda';
  threads?: number;
  /** CUDA provider options by key (`enable_cuda_graph`, `device_id`, …). */
  cuda?: Record<string, string>;
  /** Session configuration entries by key. */
  config?: Record<string, string>;
}

export class NativeSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];

  private constructor(
    private readonly handle: Handle<'session'>,
    readonly provider: 'cpu' | 'cuda',
  ) {
    const names = addonOrThrow().sessionNames(handle);
    this.inputNames = names.inputs;
    this.outputNames = names.outputs;
  }

  /**
   * Opens a model from a path or from its bytes (then `config` should name its external data's folder). A CPU
   * session takes cpuSessionConfig()'s entries under `config`'s.
   */
  static open(model: string | Uint8Array, opts: NativeSessionOptions): NativeSession {
    const addon = addonOrThrow();
    const config = opts.provider === 'cpu' ? { ...cpuSessionConfig(), ...opts.config } : opts.config;
    return new NativeSession(
      rethrown(() => addon.openSession(model, { ...opts, config })),
      opts.provider,
    );
  }

  /** A tensor over `array`'s own memory: bound as an output, ORT writes into `array`. */
  hostTensor(array: HostArray, type: ElementType, shape: readonly number[]): NativeTensor {
    return new NativeTensor(
      rethrown(() => addonOrThrow().hostTensor(array, type, shape)),
      type,
      shape,
    );
  }

  /** A tensor in the session's device memory (CUDA sessions), allocated once and kept until collected. */
  deviceTensor(type: ElementType, shape: readonly number[]): NativeTensor {
    return new NativeTensor(
      rethrown(() => addonOrThrow().deviceTensor(this.handle, type, shape)),
      type,
      shape,
    );
  }

  binding(): NativeBinding {
    return new NativeBinding(rethrown(() => addonOrThrow().createBinding(this.handle)));
  }

  release(): void {
    addonOrThrow().releaseSession(this.handle);
  }
}
