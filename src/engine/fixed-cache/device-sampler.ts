import type { NativeTensor } from '../native/ort-binding.js';
import { NativeSession } from '../native/ort-binding.js';
import type { DeviceDraw } from '../sampling.js';
import { SAMPLED_TOKEN, samplerGraph } from './sampler-graph.js';

/**
 * Temperature / top-k / top-p sampling on the device (sampler-graph.ts): a small second session on the decoder's
 * provider, reading a decode step's logits where the step left them. Each row brings its own parameters and the
 * uniform number its TokenSampler drew, so a seeded request draws the same tokens as on the host path.
 */
export class DeviceSampler {
  private constructor(private readonly session: NativeSession) {}

  static open(provider: 'cpu' | 'cuda', threads?: number): DeviceSampler {
    return new DeviceSampler(NativeSession.open(samplerGraph(), { provider, threads: threads ?? 1 }));
  }

  /** A token for each row of `logits` ([rows, 1, vocab]); rows without a draw get their argmax. */
  async draw(logits: NativeTensor, rows: number, vocab: number, draws: readonly (DeviceDraw | undefined)[]): Promise<BigInt64Array> {
    const temperature = new Float32Array(rows).fill(1);
    const topK = new BigInt64Array(rows).fill(1n);
    const topP = new Float32Array(rows).fill(1);
    const uniform = new Float32Array(rows);
    let candidates = 1;
    draws.forEach((d, row) => {
      if (!d) return;
      const k = d.topK > 0 ? Math.min(d.topK, vocab) : vocab;
      candidates = Math.max(candidates, k);
      temperature[row] = d.temperature;
      topK[row] = BigInt(k);
      topP[row] = d.topP;
      uniform[row] = d.uniform;
    });
    const perRow = (array: Float32Array | BigInt64Array) => this.session.hostTensor(array, array instanceof Float32Array ? 'float32' : 'int64', [rows, 1]);
    const tokens = new BigInt64Array(rows);
    const binding = this.session
      .binding()
      .input('logits', logits)
      .input('temperature', perRow(temperature))
      .input('top_k', perRow(topK))
      .input('top_p', perRow(topP))
      .input('uniform', perRow(uniform))
      .input('candidates', this.session.hostTensor(BigInt64Array.of(BigInt(candidates)), 'int64', [1]))
      .output(SAMPLED_TOKEN, this.session.hostTensor(tokens, 'int64', [rows, 1]));
    await binding.run();
    return tokens;
  }

  release(): void {
    this.session.release();
  }
}
