import { describe, expect, it } from 'vitest';
import { spliceNumberRanges, withoutNumberRanges } from '../../src/serve/grammar/number-ranges.js';
import { xgrammar } from '../../src/serve/grammar/xgrammar.js';

const SCHEMA = {
  type: 'object',
  properties: { r: { type: 'number', minimum: 0, maximum: 5 }, s: { type: 'number', minimum: -2.5, maximum: 2.5 }, i: { type: 'integer', exclusiveMinimum: 3, maximum: 17 } },
  required: ['r', 's', 'i'],
  additionalProperties: false,
};

/** Whether a grammar made from the schema takes the text: XGrammar's own conversion, or llmkit's number rules in it. */
async function accepts(schema: object, text: string, ours: boolean): Promise<boolean> {
  const xg = xgrammar();
  const { schema: rest, rules } = ours ? withoutNumberRanges(schema) : { schema, rules: new Map<string, string>() };
  const ebnf = spliceNumberRanges(await xg.Testings._jsonSchemaToEBNF(JSON.stringify(rest), false, -1, undefined, true), rules);
  return xg.Testings.isGrammarAcceptString(await xg.Grammar.fromEBNF(ebnf), text);
}

describe('bounded numbers in grammars', () => {
  const outOfRange = [
    '{"r": 5, "s": 2)5, "i": 7}',
    '{"r": 5.3, "s": 0, "i": 7}',
    '{"r": 1, "s": -2.9, "i": 7}',
    '{"r": 1, "s": 0, "i": 3}',
    '{"r": 1, "s": 0, "i": 18}',
    '{"r": -0.1, "s": 0, "i": 4}',
  ];
  const inRange = ['{"r": 5, "s": 2.5, "i": 17}', '{"r": 0, "s": -2.5, "i": 4}', '{"r": 4.999999, "s": -2.499, "i": 10}', '{"r": 5.0, "s": 2.50, "i": 9}', '{"r": 0.5, "s": -0.000001, "i": 5}'];

  it('XGrammar 0.1.27 alone takes numbers out of range, and "2)5" for 2.5 (why llmkit writes its own rules)', async () => {
    const taken = await Promise.all(outOfRange.map((t) => accepts(SCHEMA, t, false)));
    expect(taken.filter(Boolean).length).toBeGreaterThanOrEqual(3);
  });

  it('with llmkit’s rules: every number in range is taken, none outside', async () => {
    for (const t of outOfRange) expect(await accepts(SCHEMA, t, true), t).toBe(false);
    for (const t of inRange) expect(await accepts(SCHEMA, t, true), t).toBe(true);
  });

  it('agrees with the bounds on 2,000 strings over random ranges (no exponents, at most 6 decimals, no -0)', async () => {
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const values = [0, 1, 5, 2.5, -2.5, 0.5, -0.5, 10, 99, 100, -100, 3.25, 0.001, -7, 1234.5678, 17, 0.1, 9.999999];
    const pick = () => values[Math.floor(random() * values.length)];
    let checked = 0;
    while (checked < 2000) {
      const type = random() < 0.5 ? 'number' : 'integer';
      const [lo, hi] = [pick(), pick()].sort((a, b) => a - b);
      const node: Record<string, unknown> = { type };
      if (random() < 0.8) node[random() < 0.7 ? 'minimum' : 'exclusiveMinimum'] = lo;
      if (random() < 0.8) node[random() < 0.7 ? 'maximum' : 'exclusiveMaximum'] = hi;
      const inBounds = (v: number) =>
        (node.minimum === undefined || v >= (node.minimum as number)) &&
        (node.maximum === undefined || v <= (node.maximum as number)) &&
        (node.exclusiveMinimum === undefined || v > (node.exclusiveMinimum as number)) &&
        (node.exclusiveMaximum === undefined || v < (node.exclusiveMaximum as number));
      if (!values.some((v) => inBounds(v) && (type === 'number' || Number.isInteger(v)))) continue;
      const schema = { type: 'object', properties: { x: node }, required: ['x'] };
      const texts = new Set<string>();
      for (const v of values) for (const d of [0, 1e-6, -1e-6, 1, -1, 0.5]) for (const f of [0, 1, 6]) texts.add(String(Number((v + d).toFixed(f))));
      for (const text of [...texts].slice(0, 40)) {
        const spelled = (type === 'integer' ? /^-?(0|[1-9][0-9]*)$/ : /^-?(0|[1-9][0-9]*)(\.[0-9]{1,6})?$/).test(text) && !/^-0(\.0*)?$/.test(text);
        expect(await accepts(schema, `{"x": ${text}}`, true), `${JSON.stringify(node)} ${text}`).toBe(spelled && inBounds(Number(text)));
        checked++;
      }
    }
  }, 120_000);
});
