import { UsageError } from '../shared/errors.js';
import type { LoraAdapter } from './lora-adapter.js';
import { LORA_MASK_INPUT, type LoraModule } from './lora-graph.js';
import { Tensor } from './onnx-runtime.js';

/**
 * The LoRA inputs of a pass (lora-graph.ts): each module's tables hold the distinct adapters of the batch's rows
 * side by side, each padded with zeros to the largest rank; `lora_mask` keeps each row's own adapter's columns. The
 * tables of the last set of adapters are kept: a batch's rows change only when requests join or leave, so steady
 * decoding copies nothing.
 */
export class LoraFeeds {
  private last?: { adapters: readonly LoraAdapter[]; rank: number; tables: Record<string, Tensor> };

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
      const rank = Math.max(1, ...adapters.map((a) => a.rank));
      this.last = { adapters, rank, tables: this.tables(adapters, rank) };
    }
    const { rank } = this.last;
    const width = Math.max(1, this.last.adapters.length) * rank;
    const mask = new Float32Array(rows.length * width);
    rows.forEach((adapter, b) => {
      const slot = adapter ? this.last!.adapters.indexOf(adapter) : -1;
      if (slot >= 0) mask.fill(1, b * width + slot * rank, b * width + (slot + 1) * rank);
    });
    return { ...this.last.tables, [LORA_MASK_INPUT]: new Tensor('float32', mask, [rows.length, 1, width]) };
  }

  /** Aᵀ of every adapter side by side [in, slots·rank], (scale·B)ᵀ stacked [slots·rank, out]; one zero slot when there are none. */
  private tables(adapters: readonly LoraAdapter[], rank: number): Record<string, Tensor> {
    const width = Math.max(1, adapters.length) * rank;
    const out: Record<string, Tensor> = {};
    for (const m of this.modules) {
      const a = new Float32Array(m.inFeatures * width);
      const b = new Float32Array(width * m.outFeatures);
      adapters.forEach((adapter, slot) => {
        const w = adapter.modules.get(`${m.layer}.${m.target}`);
        if (!w) return;
        const r = adapter.rank;
        for (let row = 0; row < m.inFeatures; row++) a.set(w.a.subarray(row * r, (row + 1) * r), row * width + slot * rank);
        b.set(w.b, slot * rank * m.outFeatures);
      });
      out[m.a] = new Tensor('float32', a, [m.inFeatures, width]);
      out[m.b] = new Tensor('float32', b, [width, m.outFeatures]);
    }
    return out;
  }
}

export const targetsOf = (modules: readonly LoraModule[]) => [...new Set(modules.map((m) => m.target))].sort().join(', ');
