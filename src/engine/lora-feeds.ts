import { UsageError } from '../shared/errors.js';
import type { LoraAdapter } from './lora-adapter.js';
import type { LoraModule } from './lora-graph.js';
import { Tensor } from './onnx-runtime.js';

/** One module's per-row tables: room for `rows` rows of the current rank. */
interface RowTables {
  a: Float32Array;
  b: Float32Array;
}

/**
 * The LoRA inputs of a pass (lora-graph.ts): for each module, each row's own adapter's factors, [batch, in, rank]
 * and [batch, rank, out], zeros for a row without one, padded with zeros to the batch's largest rank. The tables
 * are kept between passes and a row is rewritten only when its adapter changes (a request joins, leaves, or rows
 * shift), so steady decoding copies nothing; a smaller batch reads the first rows of the same buffers.
 */
export class LoraFeeds {
  private rank = 0;
  private rows: (LoraAdapter | undefined | null)[] = [];
  private tables = new Map<LoraModule, RowTables>();
  private last?: { batch: number; feeds: Record<string, Tensor> };

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

  /** `rows` may have holes (a batch without adapters): plain loops, which visit them as undefined. */
  feeds(rows: readonly (LoraAdapter | undefined)[]): Record<string, Tensor> {
    let rank = 1;
    for (let row = 0; row < rows.length; row++) rank = Math.max(rank, rows[row]?.rank ?? 1);
    if (rank !== this.rank || rows.length > this.rows.length) this.allocate(rows.length, rank);
    let changed = rows.length !== this.last?.batch;
    for (let row = 0; row < rows.length; row++) {
      if (this.rows[row] === rows[row]) continue;
      this.writeRow(row, rows[row]);
      changed = true;
    }
    if (changed) this.last = { batch: rows.length, feeds: this.views(rows.length) };
    return this.last!.feeds;
  }

  /** Room for `count` rows of rank `rank`; every row is rewritten on its next use (null matches no adapter). */
  private allocate(count: number, rank: number): void {
    this.rank = rank;
    this.rows = new Array<null>(count).fill(null);
    this.tables = new Map(this.modules.map((m) => [m, { a: new Float32Array(count * m.inFeatures * rank), b: new Float32Array(count * rank * m.outFeatures) }]));
    this.last = undefined;
  }

  /** Row `row` of every module's tables: the adapter's Aᵀ and (scale·B)ᵀ, its rank padded with zeros. */
  private writeRow(row: number, adapter: LoraAdapter | undefined): void {
    const rank = this.rank;
    this.rows[row] = adapter;
    for (const [m, t] of this.tables) {
      const a = t.a.subarray(row * m.inFeatures * rank, (row + 1) * m.inFeatures * rank);
      const b = t.b.subarray(row * rank * m.outFeatures, (row + 1) * rank * m.outFeatures);
      const w = adapter?.modules.get(`${m.layer}.${m.target}`);
      if (!w) {
        a.fill(0);
        b.fill(0);
        continue;
      }
      const r = adapter!.rank;
      if (r === rank) a.set(w.a);
      else {
        a.fill(0);
        for (let i = 0; i < m.inFeatures; i++) a.set(w.a.subarray(i * r, (i + 1) * r), i * rank);
      }
      b.fill(0);
      b.set(w.b);
    }
  }

  /** The first `batch` rows of each table, without a copy. */
  private views(batch: number): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    for (const [m, t] of this.tables) {
      out[m.a] = new Tensor('float32', t.a.subarray(0, batch * m.inFeatures * this.rank), [batch, m.inFeatures, this.rank]);
      out[m.b] = new Tensor('float32', t.b.subarray(0, batch * this.rank * m.outFeatures), [batch, this.rank, m.outFeatures]);
    }
    return out;
  }
}

/**
 * Bytes one batch row's tables take for these projections at this rank (LoraFeeds keeps --max-batch rows of them
 * whatever the batch, so the serve memory estimate counts them per row).
 */
export function rowTableBytes(modules: Iterable<{ inFeatures: number; outFeatures: number }>, rank: number): number {
  let n = 0;
  for (const m of modules) n += (m.inFeatures + m.outFeatures) * rank * Float32Array.BYTES_PER_ELEMENT;
  return n;
}

export const targetsOf = (modules: readonly LoraModule[]) => [...new Set(modules.map((m) => m.target))].sort().join(', ');
