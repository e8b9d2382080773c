import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** A tokenizer's vocabulary as XGrammar's TokenizerInfo takes it. */
export interface Vocabulary {
  /** Every token as written in tokenizer.json, by id (special tokens included). */
  tokens: string[];
  /** Ids of added tokens (special tokens), written as plain text rather than in the vocabulary's alphabet. */
  added: Set<number>;
  /** How tokens spell text: byte-level BPE (GPT-2, Llama 3, Qwen), SentencePiece with byte fallback, or raw strings. */
  type: 'byte_level' | 'byte_fallback' | 'raw';
  /** SentencePiece's "▁" in front of the first word. */
  prependSpace: boolean;
}

interface TokenizerJson {
  model: { vocab: Record<string, number> | [string, number][] };
  added_tokens?: { id: number; content: string }[];
  decoder?: { type: string; decoders?: { type: string }[] } | null;
  pre_tokenizer?: { type: string; prepend_scheme?: string; add_prefix_space?: boolean } | null;
  normalizer?: { type: string; normalizers?: { type: string; prepend?: string }[] } | null;
}

/** Reads the vocabulary of a model folder's tokenizer.json (the file `llmkit export` writes). */
export function readVocabulary(dir: string): Vocabulary {
  const json = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as TokenizerJson;
  const entries: [string, number][] = Array.isArray(json.model.vocab) ? json.model.vocab.map(([t], i) => [t, i]) : Object.entries(json.model.vocab);
  const tokens: string[] = [];
  for (const [token, id] of entries) tokens[id] = token;
  for (const { id, content } of json.added_tokens ?? []) tokens[id] = content;
  // Holes (ids no token uses) still need an entry; a string no text produces keeps them unreachable.
  for (let i = 0; i < tokens.length; i++) tokens[i] ??= `<|llmkit_unused_${i}|>`;
  const decoders = [json.decoder?.type, ...(json.decoder?.decoders ?? []).map((d) => d.type)];
  const type = decoders.includes('ByteLevel') ? 'byte_level' : decoders.includes('ByteFallback') ? 'byte_fallback' : 'raw';
  const prependSpace =
    json.pre_tokenizer?.type === 'Metaspace' ? json.pre_tokenizer.prepend_scheme !== 'never' : (json.normalizer?.normalizers ?? [json.normalizer]).some((n) => n?.type === 'Prepend');
  return { tokens, added: new Set((json.added_tokens ?? []).map((t) => t.id)), type, prependSpace };
}

/**
 * Tokens that spell a control character other than a line break (bytes 0x00-0x1F but \n and \r) or a
 * byte that is never valid UTF-8, as a bitmask with the bit of every other token set. XGrammar's JSON strings take any character but `"`, `\\`
 * and line breaks, while JSON itself forbids raw control characters in strings; no JSON text needs such a
 * token (outside strings only spaces and line breaks are whitespace), so JSON grammars mask them too.
 */
export function withoutControlCharacters(vocab: Vocabulary, vocabSize: number): Int32Array {
  const words = new Int32Array(Math.ceil(vocabSize / 32)).fill(-1);
  const control = (code: number) => code < 0x20 && code !== 0x0a && code !== 0x0d;
  // Bytes that never occur in UTF-8 (0xC0, 0xC1 start only overlong forms; 0xF5-0xFF code points past U+10FFFF).
  const invalid = (byte: number) => byte === 0xc0 || byte === 0xc1 || byte >= 0xf5;
  vocab.tokens.forEach((token, id) => {
    let bad: boolean;
    if (vocab.type === 'byte_level') {
      // GPT-2's byte-to-character map sends byte b < 0x20 to U+0100 + b.
      bad = [...token].some((ch) => {
        const byte = byteLevelByte(ch.codePointAt(0)!);
        return byte !== undefined && (control(byte) || invalid(byte));
      });
    } else {
      const byte = /^<0x([0-9A-Fa-f]{2})>$/.exec(token);
      bad = byte ? control(parseInt(byte[1], 16)) || invalid(parseInt(byte[1], 16)) : [...token].some((ch) => control(ch.codePointAt(0)!));
    }
    if (bad) words[id >> 5] &= ~(1 << (id & 31));
  });
  return words;
}

/**
 * Each token's text as far as JSON's structure goes: its ASCII characters, anything else as U+FFFD. Enough to
 * follow brackets and strings in what a grammar-constrained generation writes.
 */
export function asciiTexts(vocab: Vocabulary): string[] {
  const ascii = (byte: number) => (byte < 0x80 ? String.fromCharCode(byte) : '\uFFFD');
  return vocab.tokens.map((token) => {
    if (vocab.type === 'byte_level') return [...token].map((ch) => ascii(byteLevelByte(ch.codePointAt(0)!) ?? 0x80)).join('');
    const byte = /^<0x([0-9A-Fa-f]{2})>$/.exec(token);
    if (byte) return ascii(parseInt(byte[1], 16));
    return [...token.replaceAll('\u2581', ' ')].map((ch) => ascii(Math.min(ch.codePointAt(0)!, 0x80))).join('');
  });
}

/** Each token's bytes as the model writes them (logprobs' `bytes`): a byte-level token may hold part of a character. */
export function tokenBytes(vocab: Vocabulary): (id: number) => number[] {
  return (id) => {
    const token = vocab.tokens[id] ?? '';
    if (vocab.added.has(id)) return [...Buffer.from(token, 'utf8')];
    if (vocab.type === 'byte_level') return [...token].map((ch) => byteLevelByte(ch.codePointAt(0)!) ?? 0x3f);
    const byte = /^<0x([0-9A-Fa-f]{2})>$/.exec(token);
    if (vocab.type === 'byte_fallback' && byte) return [parseInt(byte[1], 16)];
    return [...Buffer.from(token.replaceAll('\u2581', ' '), 'utf8')];
  };
}

/** GPT-2's byte-level alphabet: printable bytes stand for themselves, the other 68 for U+0100 onwards, in byte order. */
const BYTE_OF_CHAR: Map<number, number> = (() => {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const map = new Map<number, number>();
  let next = 0x100;
  for (let b = 0; b < 256; b++) map.set(printable(b) ? b : next++, b);
  return map;
})();

function byteLevelByte(code: number): number | undefined {
  return BYTE_OF_CHAR.get(code);
}

/**
 * States of a UTF-8 decoder between tokens: 0 when the bytes so far end a character, else what the next byte must
 * be: any continuation byte, with 1, 2 or 3 to come (1-3), or the narrower second byte after E0 (no overlong
 * forms), ED (no surrogates), F0 (no overlong forms), F4 (nothing past U+10FFFF) (4-7).
 */
export const UTF8_STATES = 8;

/** The state after `byte` in `state`, or -1 when the byte cannot come there. */
function utf8Step(state: number, byte: number): number {
  const continuation = byte >= 0x80 && byte <= 0xbf;
  switch (state) {
    case 0:
      if (byte < 0x80) return 0;
      if (byte >= 0xc2 && byte <= 0xdf) return 1;
      if (byte === 0xe0) return 4;
      if (byte === 0xed) return 5;
      if (byte >= 0xe1 && byte <= 0xef) return 2;
      if (byte === 0xf0) return 6;
      if (byte >= 0xf1 && byte <= 0xf3) return 3;
      if (byte === 0xf4) return 7;
      return -1;
    case 1:
    case 2:
    case 3:
      return continuation ? state - 1 : -1;
    case 4:
      return byte >= 0xa0 && byte <= 0xbf ? 1 : -1;
    case 5:
      return byte >= 0x80 && byte <= 0x9f ? 1 : -1;
    case 6:
      return byte >= 0x90 && byte <= 0xbf ? 2 : -1;
    default:
      return byte >= 0x80 && byte <= 0x8f ? 2 : -1;
  }
}

/**
 * Per UTF-8 state, the tokens whose bytes may come next (bits) and the state each leaves behind: a mask that lets a
 * generation write only valid UTF-8. Grammars count characters after a lenient decoding (XGrammar took the overlong
 * e0 9c 8c as one character, which decodes to three U+FFFD), so `maxLength` holds only if the bytes are valid.
 */
export function utf8Tables(vocab: Vocabulary, vocabSize: number): { allowed: Int32Array[]; next: Int8Array[] } {
  const bytesOf = tokenBytes(vocab);
  const allowed = Array.from({ length: UTF8_STATES }, () => new Int32Array(Math.ceil(vocabSize / 32)));
  const next = Array.from({ length: UTF8_STATES }, () => new Int8Array(vocabSize).fill(-1));
  for (let id = 0; id < vocab.tokens.length; id++) {
    const bytes = bytesOf(id);
    for (let start = 0; start < UTF8_STATES; start++) {
      let state = start;
      for (const byte of bytes) if ((state = utf8Step(state, byte)) < 0) break;
      if (state < 0) continue;
      allowed[start][id >> 5] |= 1 << (id & 31);
      next[start][id] = state;
    }
  }
  return { allowed, next };
}
