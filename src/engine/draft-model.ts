import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { LlmkitError } from '../shared/errors.js';
import { DecoderSession, type BatchCache } from './decoder-session.js';
import type { Device } from './devices.js';
import type { Drafter, DraftRequest } from './drafter.js';
import { gatherRows, leftPaddedMask } from './kv-cache.js';
import { loadExportedModel, type ExportedModel } from './model-manifest.js';
import { argmax } from './sampling.js';

/** Beside a draft's exported model: the token ids its output layer keeps (distill.py writes it). */
export const DRAFT_VOCAB_FILE = 'draft-vocab.json';

/** Spare columns a row's draft cache gets when it grows: drafting appends k columns a pass. */
const SPARE_COLUMNS = 64;

/** One row's draft cache: the tokens whose keys/values it holds, in order. */
interface RowState {
  tokens: number[];
  cache: BatchCache;
}

/**
 * `--draft DIR`: a small model with the target's tokenizer (a distilled student) drafts greedily, k passes of
 * one token. Each row keeps its own cache in step with the target: before drafting, the cache is cut back to
 * the longest prefix it shares with the row's context (drafts the target rejected are dropped there), and the
 * tokens after it are fed in one pass.
 */
export class ModelDrafter implements Drafter {
  readonly name: string;
  private readonly rows = new Map<object, RowState>();

  private constructor(
    private readonly decoder: DecoderSession,
    /** Batch-1 decoding reads the weights once a token: what the two models read a step gives the cost ratio. */
    readonly costPerToken: number,
  ) {
    this.name = decoder.model.dir;
  }

  static async open(dir: string, target: DecoderSession, opts: { device?: Device; threads?: number }): Promise<ModelDrafter> {
    const model = loadExportedModel(dir);
    const [mine, theirs] = [model.manifest, target.model.manifest];
    if (mine.vocab_size !== theirs.vocab_size || mine.eos_token_ids.join() !== theirs.eos_token_ids.join()) {
      throw new LlmkitError(
        `the draft model ${dir} does not share the target's vocabulary (${mine.vocab_size} tokens, EOS ${mine.eos_token_ids.join(',')} against ${theirs.vocab_size}, ${theirs.eos_token_ids.join(',')})`,
        'draft with a model of the same tokenizer, e.g. one made by `llmkit distill --for-draft`',
      );
    }
    const decoder = await DecoderSession.open(model, { ...opts, logits: 'last', outputIds: readDraftVocabulary(dir) });
    if (!decoder.verifiesDrafts) {
      await decoder.release();
      throw new LlmkitError(`the draft model ${dir} cannot decode several tokens a pass in place`, 'export the draft without --gqa');
    }
    return new ModelDrafter(decoder, stepBytes(model, decoder.vocabSize) / stepBytes(target.model));
  }

  async propose(requests: readonly DraftRequest[]): Promise<number[][]> {
    const out: number[][] = [];
    for (const r of requests) out.push(await this.proposeOne(r));
    return out;
  }

  private async proposeOne({ row, context, k }: DraftRequest): Promise<number[]> {
    const state = this.rows.get(row);
    let shared = 0;
    // The last context token is always fed: its logits give the first draft.
    while (state && shared < Math.min(state.tokens.length, context.length - 1) && state.tokens[shared] === context[shared]) shared++;
    const fresh = context.slice(shared);
    let logits = state && shared > 0 ? await this.append(state, shared, fresh, k) : await this.prefill(row, context, k);
    const drafts: number[] = [];
    const current = this.rows.get(row)!;
    for (;;) {
      const { vocabSize, outputIds } = this.decoder;
      const best = argmax(logits.subarray(logits.length - vocabSize));
      drafts.push(outputIds ? outputIds[best] : best);
      if (drafts.length === k) break;
      logits = await this.append(current, current.tokens.length, [drafts.at(-1)!], 0);
    }
    return drafts;
  }

  /** A new row (or one that shares nothing with its cache): the whole context in one pass. */
  private async prefill(row: object, context: readonly number[], k: number): Promise<Float32Array> {
    const n = context.length;
    const step = await this.decoder.forward(
      BigInt64Array.from(context, BigInt),
      new BigInt64Array(n).fill(1n),
      BigInt64Array.from(context, (_, i) => BigInt(i)),
      this.decoder.emptyCache(1),
    );
    const { num_kv_heads: kvHeads, head_dim: headDim } = this.decoder.model.manifest;
    this.rows.set(row, { tokens: [...context], cache: gatherRows([{ cache: step.cache, rows: [0] }], n, kvHeads, headDim, n + k + SPARE_COLUMNS) });
    return step.logits;
  }

  /** Cuts the row's cache back to its first `keep` tokens and feeds `tokens` after them, in place; room is made for `ahead` more. */
  private async append(state: RowState, keep: number, tokens: readonly number[], ahead: number): Promise<Float32Array> {
    const length = keep + tokens.length;
    if ((state.cache.capacity ?? state.cache.length) < length + ahead) {
      const { num_kv_heads: kvHeads, head_dim: headDim } = this.decoder.model.manifest;
      state.cache = gatherRows([{ cache: { ...state.cache, length: keep }, rows: [0] }], keep, kvHeads, headDim, length + ahead + SPARE_COLUMNS);
    }
    const capacity = state.cache.capacity ?? keep;
    const step = await this.decoder.decodeInPlace(
      BigInt64Array.from(tokens, BigInt),
      leftPaddedMask([keep], keep, tokens.length, capacity),
      BigInt64Array.from(tokens, (_, i) => BigInt(keep + i)),
      { ...state.cache, length: keep },
    );
    state.cache = step.cache;
    state.tokens = [...state.tokens.slice(0, keep), ...tokens];
    return step.logits;
  }

  forget(row: object): void {
    this.rows.delete(row);
  }

  async release(): Promise<void> {
    this.rows.clear();
    await this.decoder.release();
  }
}

/**
 * The bytes a decode step reads: the ONNX files less the input embedding table, of which a token reads one row,
 * and less the output layer's columns a draft vocabulary leaves out (fp32 and fp16 exports; a quantized one's
 * tables are counted whole). For a 4-layer draft of SmolLM2-135M this gives 0.32 of the target, where timed steps
 * give 0.26 (docs/benchmarks.md); the whole files gave 0.43, which made DraftLength draft fewer tokens than pay.
 */
function stepBytes(model: ExportedModel, outputColumns = model.manifest.vocab_size): number {
  const { vocab_size: vocab, hidden_size: hidden, dtype } = model.manifest;
  const width = dtype === 'float32' ? 4 : dtype === 'float16' ? 2 : 0;
  return onnxBytes(model.onnxPath) - (2 * vocab - outputColumns) * hidden * width;
}

/**
 * The token ids a draft's output layer keeps (`llmkit distill --for-draft --draft-vocab N` writes them beside the
 * model, most frequent first), or undefined where the folder has none: the draft proposes from every token.
 */
export function readDraftVocabulary(dir: string): number[] | undefined {
  const file = join(dir, DRAFT_VOCAB_FILE);
  const vocab = loadExportedModel(dir).manifest.vocab_size;
  if (!existsSync(file)) return undefined;
  const ids = (JSON.parse(readFileSync(file, 'utf8')) as { ids?: unknown }).ids;
  if (!Array.isArray(ids) || ids.length === 0 || !ids.every((id) => Number.isInteger(id) && id >= 0 && id < vocab)) {
    throw new LlmkitError(
      `${file} is not a draft vocabulary: "ids" must list token ids from 0 to ${vocab - 1}`,
      'make the draft again with `llmkit distill --for-draft --draft-vocab N`, or delete the file',
    );
  }
  return ids as number[];
}

/** An ONNX file's size with its external data (the files beside it in its folder). */
function onnxBytes(onnxPath: string): number {
  const dir = dirname(onnxPath);
  return readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
}
