import { describe, expect, it } from 'vitest';
import { loadExportedModel } from '../../src/engine/model-manifest.js';
import { CompileSandbox } from '../../src/serve/grammar/compile-sandbox.js';
import { GrammarError, type GrammarSpec, type ThreadOptions } from '../../src/serve/grammar/grammar-spec.js';
import { ModelGrammars } from '../../src/serve/grammar/model-grammars.js';
import { exportedTinyModel } from '../helpers/models.js';

async function tinyOptions(): Promise<ThreadOptions> {
  const dir = await exportedTinyModel();
  const { manifest } = loadExportedModel(dir);
  return { dir, vocabSize: manifest.vocab_size, stopTokenIds: manifest.eos_token_ids };
}

const schema = (s: object): GrammarSpec => ({ kind: 'json_schema', schema: s, strict: true });
const SMALL = schema({ type: 'object', properties: { a: { type: 'integer' } }, required: ['a'] });

/** How a promise settles, and how long it took. */
async function timed(p: Promise<unknown>): Promise<{ error?: string; ms: number }> {
  const start = performance.now();
  try {
    await p;
    return { ms: performance.now() - start };
  } catch (e) {
    return { error: (e as Error).message, ms: performance.now() - start };
  }
}

describe('grammar compile sandbox', () => {
  it('fails a compile past its time limit, throws its thread away, and compiles the next spec on a new one', async () => {
    const sandbox = new CompileSandbox(await tinyOptions(), 3000);
    try {
      // 60,000 enum values take XGrammar about 15 s on this model's vocabulary (3,000 take 0.8 s).
      const slow = schema({ enum: Array.from({ length: 60_000 }, (_, i) => `value${i}`) });
      const first = await timed(sandbox.check('slow', slow));
      expect(first.error).toBe("compiling it took longer than 3 s, this server's limit");
      expect(first.ms).toBeLessThan(6000);
      // Remembered: the same spec is refused at once, without a thread.
      const again = await timed(sandbox.check('slow', slow));
      expect(again.error).toBe(first.error);
      expect(again.ms).toBeLessThan(50);
      expect((await timed(sandbox.check('small', SMALL))).error).toBeUndefined();
      // A spec that makes XGrammar abort, twice (the second call into an aborted module never returned), then a good one.
      for (const name of ['p', 'q']) {
        const missing = await timed(sandbox.check(name, schema({ type: 'object', properties: { [name]: { $ref: '#/$defs/none' } } })));
        expect(missing.error).toContain('Cannot find field $defs');
      }
      expect((await timed(sandbox.check('small2', schema({ type: 'array', items: { type: 'boolean' } })))).error).toBeUndefined();
    } finally {
      sandbox.close();
    }
  }, 60_000);

  it('refuses specs over the limits before compiling, naming the limit', async () => {
    const grammars = new ModelGrammars(await tinyOptions());
    try {
      let deep: object = { type: 'integer' };
      for (let i = 0; i < 63; i++) deep = { type: 'array', items: deep };
      const refusal = async (spec: GrammarSpec) => {
        try {
          await grammars.compile(spec);
        } catch (e) {
          expect(e).toBeInstanceOf(GrammarError);
          return (e as Error).message;
        }
      };
      // 63 arrays around the integer's object: 64 levels, at the limit, compiles.
      expect(await refusal(schema(deep))).toBeUndefined();
      expect(await refusal(schema({ type: 'array', items: deep }))).toBe('it nests 65 levels of objects and arrays; this server compiles at most 64');
      expect(await refusal(schema({ enum: Array.from({ length: 9000 }, (_, i) => `value${i}`) }))).toMatch(/^it is \d+ bytes of JSON; this server compiles at most 65536$/);
      expect(await refusal(schema({ type: 'string', pattern: 'a'.repeat(1001) }))).toBe('a pattern is 1001 characters long; this server compiles at most 1000');
      // Keywords XGrammar would take and not enforce are refused, with where they are; names that look like them are not.
      expect(await refusal(schema({ type: 'object', properties: { n: { type: 'number', multipleOf: 0.5 } } }))).toBe(
        "'multipleOf' (at /properties/n) is not enforced by this server's grammar engine: remove it",
      );
      expect(await refusal(schema({ type: 'array', items: { type: 'integer' }, uniqueItems: true }))).toMatch(/^'uniqueItems' \(at \/\) is not enforced/);
      expect(await refusal(schema({ type: 'string', pattern: '^[a-z]+$', maxLength: 5 }))).toMatch(/^'pattern' with 'minLength' or 'maxLength' \(at \/\)/);
      expect(await refusal(schema({ allOf: [{ type: 'object' }, { required: ['a'] }] }))).toMatch(/^'allOf' with 2 parts/);
      expect(await refusal(schema({ type: 'object', properties: { not: { type: 'integer' }, if: { const: { uniqueItems: true } } }, required: ['not'] }))).toBeUndefined();
      const tool: GrammarSpec = { kind: 'structural_tag', format: { type: 'tag', begin: '<t>', content: { type: 'json_schema', json_schema: { type: 'array', items: deep } }, end: '</t>' } };
      expect(await refusal(tool)).toBe('it nests 65 levels of objects and arrays; this server compiles at most 64');
    } finally {
      grammars.close();
    }
  }, 60_000);

  it('fails the generations of a grammar thread that dies, alone, and serves the next ones from a new thread', async () => {
    const grammars = new ModelGrammars(await tinyOptions());
    try {
      const running = await grammars.constraint(SMALL);
      await running.prepare();
      // Fault injection: the thread is killed as a WebAssembly abort would end it.
      await (grammars as unknown as { thread: { terminate(): Promise<number> } }).thread.terminate();
      running.accept(123);
      expect((await timed(running.prepare())).error).toMatch(/the grammar engine (stopped|was restarted)/);
      running.dispose();
      const next = await grammars.constraint(SMALL);
      await next.prepare();
      const logits = new Float32Array(1000).fill(1);
      next.apply(logits, 100);
      // The first token of {"a": …} is allowed, most are not.
      const allowed = logits.filter((x) => x !== -Infinity).length;
      expect(allowed).toBeGreaterThan(0);
      expect(allowed).toBeLessThan(100);
      next.dispose();
    } finally {
      grammars.close();
    }
  }, 60_000);
});
