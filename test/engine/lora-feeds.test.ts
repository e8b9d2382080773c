import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LoraAdapter } from '../../src/engine/lora-adapter.js';
import { LoraFeeds } from '../../src/engine/lora-feeds.js';
import { loraInputNames, type LoraModule } from '../../src/engine/lora-graph.js';

// The per-row tables without a model (the tiny-model equality with merged exports is test/engine/multi-lora.test.ts):
// which row holds which adapter, rank padding, rows going back to the base, and no rewrite while nothing changes.
const IN = 3;
const OUT = 2;
const MODULE: LoraModule = { layer: 0, target: 'q_proj', inFeatures: IN, outFeatures: OUT, ...loraInputNames(0, 'q_proj') };

/** A PEFT folder with one q_proj adapter of rank `rank` whose A and B count up from `start` (alpha = 2·rank: scale 2). */
function peftFolder(rank: number, start: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'lora-feeds-'));
  const prefix = 'base_model.model.model.layers.0.self_attn.q_proj';
  const tensors = { [`${prefix}.lora_A.weight`]: [rank, IN], [`${prefix}.lora_B.weight`]: [OUT, rank] };
  const header: Record<string, unknown> = {};
  const data: number[] = [];
  for (const [name, shape] of Object.entries(tensors)) {
    const n = shape[0] * shape[1];
    header[name] = { dtype: 'F32', shape, data_offsets: [data.length * 4, (data.length + n) * 4] };
    for (let i = 0; i < n; i++) data.push(start + data.length);
  }
  const json = Buffer.from(JSON.stringify(header));
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(json.length));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'adapter_model.safetensors'), Buffer.concat([size, json, Buffer.from(Float32Array.from(data).buffer)]));
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: rank, lora_alpha: 2 * rank, target_modules: ['q_proj'] }));
  return dir;
}

const row = (t: { data: unknown }, b: number, size: number) => [...(t.data as Float32Array).subarray(b * size, (b + 1) * size)];

describe('LoraFeeds: each row its own adapter', () => {
  it("puts each row's A and scaled B in its rows, pads smaller ranks with zeros and zeros rows of the base", async () => {
    const [x, y] = await Promise.all([LoraAdapter.load(peftFolder(2, 1)), LoraAdapter.load(peftFolder(1, 100))]);
    const feeds = new LoraFeeds([MODULE]);
    const f = feeds.feeds([x, undefined, y]);
    const [a, b] = [f[MODULE.a], f[MODULE.b]];
    expect([a.dims, b.dims]).toEqual([
      [3, IN, 2],
      [3, 2, OUT],
    ]);
    const w = (adapter: LoraAdapter) => adapter.modules.get('0.q_proj')!;
    expect(row(a, 0, IN * 2)).toEqual([...w(x).a]);
    expect(row(b, 0, 2 * OUT)).toEqual([...w(x).b]);
    // B carries the scale alpha / r = 2: B's first element 7 (after A's 6) becomes 14.
    expect(w(x).b[0]).toBe(14);
    expect(row(a, 1, IN * 2)).toEqual(new Array(IN * 2).fill(0));
    expect(row(a, 2, IN * 2)).toEqual([w(y).a[0], 0, w(y).a[1], 0, w(y).a[2], 0]);
    expect(row(b, 2, 2 * OUT)).toEqual([...w(y).b, 0, 0]);
    // Nothing changed: the same inputs, nothing rewritten.
    expect(feeds.feeds([x, undefined, y])).toBe(f);
  });

  it('rewrites a row whose adapter changed, to the base too, and reads the first rows of a smaller batch', async () => {
    const [x, y] = await Promise.all([LoraAdapter.load(peftFolder(2, 1)), LoraAdapter.load(peftFolder(2, 50))]);
    const feeds = new LoraFeeds([MODULE]);
    feeds.feeds([x, y, x]);
    // Rows without adapters may come as holes in the array (a batch of the base alone is all holes).
    const holes = new Array<LoraAdapter | undefined>(3);
    holes[0] = x;
    const base = feeds.feeds(holes);
    expect(row(base[MODULE.a], 0, IN * 2)).toEqual([...x.modules.get('0.q_proj')!.a]);
    expect([...(base[MODULE.a].data as Float32Array).subarray(IN * 2)].every((v) => v === 0)).toBe(true);
    expect([...(base[MODULE.b].data as Float32Array).subarray(2 * OUT)].every((v) => v === 0)).toBe(true);
    const smaller = feeds.feeds([y, x]);
    expect(smaller[MODULE.a].dims).toEqual([2, IN, 2]);
    expect(row(smaller[MODULE.a], 0, IN * 2)).toEqual([...y.modules.get('0.q_proj')!.a]);
    expect(row(smaller[MODULE.a], 1, IN * 2)).toEqual([...x.modules.get('0.q_proj')!.a]);
  });
});
