import { type ModelRunner, type OutputSpec, RunInterrupted, type Tensor } from '../onnx-runtime.js';
import { type ElementType, type HostArray, NativeSession, type NativeSessionOptions } from './ort-binding.js';

/**
 * The engine's model runner on llmkit's own binding: inputs are read from the feeds' own arrays and outputs are
 * written straight into the caller's buffers (a new array only where none is given), on a worker thread.
 */
export class NativeRunner implements ModelRunner {
  readonly binding = 'llmkit';
  private constructor(private readonly session: NativeSession) {}

  static open(model: string | Uint8Array, opts: NativeSessionOptions): NativeRunner {
    return new NativeRunner(NativeSession.open(model, opts));
  }

  async run(feeds: Record<string, Tensor>, outputs: Record<string, OutputSpec>, signal?: AbortSignal): Promise<Record<string, Float32Array>> {
    const binding = this.session.binding();
    for (const [name, tensor] of Object.entries(feeds)) binding.input(name, this.session.hostTensor(tensor.data as HostArray, tensor.type as ElementType, tensor.dims));
    const arrays: Record<string, Float32Array> = {};
    for (const [name, spec] of Object.entries(outputs)) {
      arrays[name] = spec.into ?? new Float32Array(spec.dims.reduce((n, d) => n * d, 1));
      binding.output(name, this.session.hostTensor(arrays[name], 'float32', spec.dims));
    }
    if (signal?.aborted) throw new RunInterrupted();
    const stop = () => binding.terminate();
    signal?.addEventListener('abort', stop);
    try {
      await binding.run();
    } catch (e) {
      throw signal?.aborted ? new RunInterrupted() : e;
    } finally {
      signal?.removeEventListener('abort', stop);
    }
    return arrays;
  }

  async release(): Promise<void> {
    this.session.release();
  }
}
