import { UsageError } from '../shared/errors.js';
import type { LoraAdapter } from './lora-adapter.js';
import { LORA_INDEX_INPUT, type LoraModule } from './lora-graph.js';
import { Tensor } from './onnx-runtime.js';

/**
 * The LoRA inputs of a pass (lora-graph.ts): each module's tables hold slot 0 (zeros: the base) and the distinct
 * adapters of the batch's rows, padded with zeros to the largest rank; `lora_index` says each row's slot. The
 * tables of the last set of adapters are kept: a batch's rows change only when requests join or leave, so steady
 * decoding copies nothing.
 */
export class LoraFeeds {
  private last?: { adapters: readonly LoraAdapter[]; tables: Record<string, Tensor> };

  constructor(readonly modules: readonly LoraModule[]) {}

  /** Throws when the adapter has a projection this graph does not take, or one of another shape. */
  check(adapter: LoraAdapter, name: string, restartHint: string): void {
    const byKey = new Map(this.modules.map((m) => [`${m.layer}.${m.target}`, m]));
    for (const [key, w] of adapter.modules) {
      const m = byKey.get(key);
      if (!m) throw new UsageError(`adapter ${name} adapts layers.${key}, which this server's graph does not take (it takes ${targetsOf(this.modules)})`, restartHint);
      if (m.inFeatures !== w.inFeatures || m.outFeatures !== w.outFeatures) {
        throw new UsageError(
          `adapter ${name} does not fit this base: layers.${key} is ${w.inFeatures}→${w.outFeatures} in the adapter, ${m.inFeatures}→${m.outFeatures} in the model`,
          'serve it over the model it was trained on',
        );
      }
    }
  }

  feeds(rows: readonly (LoraAdapter | undefined)[]): Record<string, Tensor> {
    const adapters = [...new Set(rows.filter((a): a is LoraAdapter => a !== undefined))];
    if (!this.last || this.last.adapters.length !== adapters.length || adapters.some((a) => !this.last!.adapters.includes(a))) {
      this.last = { adapters, tables: this.tables(adapters) };
    }
    const slot = new Map(this.last.adapters.map((a, i) => [a, BigInt(i + 1)]));
    const index = BigInt64Array.from(rows, (a) => (a ? slot.get(a)! : 0n));
    return { ...this.last.tables, [LORA_INDEX_INPUT]: new Tensor('int64', index, [rows.length]) };
  }

  private tables(adapters: readonly LoraAdapter[]): Record<string, Tensor> {
    const rank = Math.max(1, ...adapters.map((a) => a.rank));
    const slots = adapters.length + 1;
    const out: Record<string, Tensor> = {};
    for (const m of this.modules) {
      const a = new Float32Array(slots * m.inFeatures * rank);
      const b = new Float32Array(slots * rank * m.outFeatures);
      adapters.forEach((adapter, i) => {
        const w = adapter.modules.get(`${m.layer}.${m.target}`);
        if (!w) return;
        const r = adapter.rank;
        // Aᵀ [in, r] into [in, rank]: each input row padded; (scale·B)ᵀ [r, out] is the first r rows of [rank, out].
        const aAt = (i + 1) * m.inFeatures * rank;
        for (let row = 0; row < m.inFeatures; row++) a.set(w.a.subarray(row * r, (row + 1) * r), aAt + row * rank);
        b.set(w.b, (i + 1) * rank * m.outFeatures);
      });
      out[m.a] = new Tensor('float32', a, [slots, m.inFeatures, rank]);
      out[m.b] = new Tensor('float32', b, [slots, rank, m.outFeatures]);
    }
    return out;
  }
}

export const targetsOf = (modules: readonly LoraModule[]) => [...new Set(modules.map((m) => m.target))].sort().join(', ');
