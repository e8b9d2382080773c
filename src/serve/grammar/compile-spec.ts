import type { CompiledGrammar, GrammarCompiler } from '@mlc-ai/web-xgrammar';
import type { GrammarSpec, ThreadOptions } from './grammar-spec.js';
import { spliceNumberRanges, withoutNumberRanges } from './number-ranges.js';
import { readVocabulary } from './vocabulary.js';
import { explained, xgrammar } from './xgrammar.js';

/**
 * Turning a GrammarSpec into XGrammar's compiled grammar, the same way in the compile sandbox
 * (compile-thread.ts), which tries every new spec first, and in the grammar thread (grammar-thread.ts),
 * which compiles only specs the sandbox compiled: XGrammar is deterministic, so a spec that compiled
 * there compiles here.
 */

/** Any JSON object (the built-in JSON grammar also takes arrays, strings and numbers). */
const JSON_OBJECT_SCHEMA = { type: 'object' };

export async function createCompiler({ dir, vocabSize, stopTokenIds }: ThreadOptions): Promise<GrammarCompiler> {
  const xg = xgrammar();
  const vocab = readVocabulary(dir);
  const info = await xg.TokenizerInfo.createTokenizerInfo(vocab.tokens, vocab.type, vocab.prependSpace, Math.max(vocabSize, vocab.tokens.length), [...stopTokenIds]);
  return xg.GrammarCompiler.createGrammarCompiler(info);
}

export async function compileSpec(c: GrammarCompiler, spec: GrammarSpec): Promise<CompiledGrammar> {
  // No free whitespace between JSON tokens: a model that likes spaces could otherwise emit them forever.
  if (spec.kind === 'json_object') return explained(() => c.compileJSONSchema(JSON.stringify(JSON_OBJECT_SCHEMA), false, -1, undefined, false));
  if (spec.kind === 'json_schema') {
    const ebnf = await explained(() => schemaGrammar(spec.schema, spec.strict));
    return explained(() => c.compileGrammar(ebnf));
  }
  const format = await explained(() => withoutFreeWhitespace(spec.format));
  return explained(() => c.compileStructuralTag({ type: 'structural_tag', format }));
}

/**
 * A JSON Schema as EBNF: XGrammar's conversion, with llmkit's rules for bounded numbers (number-ranges.ts), and
 * no free whitespace between JSON tokens.
 */
async function schemaGrammar(schema: unknown, strict: boolean): Promise<string> {
  const { schema: rest, rules } = withoutNumberRanges(schema);
  const ebnf = await xgrammar().Testings._jsonSchemaToEBNF(JSON.stringify(rest), false, -1, undefined, strict);
  return spliceNumberRanges(ebnf, rules);
}

/**
 * A structural tag's JSON parts as grammars without free whitespace: its `json_schema` parts take any
 * whitespace between JSON tokens (no option says otherwise), and a model that likes spaces never ends.
 */
async function withoutFreeWhitespace(format: object): Promise<object> {
  if (Array.isArray(format)) return Promise.all(format.map((f: object) => withoutFreeWhitespace(f)));
  const node = format as Record<string, unknown>;
  if (node.type === 'json_schema') return { type: 'grammar', grammar: await schemaGrammar(node.json_schema, true) };
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) out[k] = typeof v === 'object' && v !== null ? await withoutFreeWhitespace(v) : v;
  return out;
}

export const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e)).split('\n')[0];
