/**
 * Numeric ranges (`minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`) as grammar rules that allow
 * exactly the numbers in range. XGrammar 0.1.27 (the newest @mlc-ai/web-xgrammar) gets them wrong: for
 * `-2.5 ≤ s ≤ 2.5` it writes `"2" [\u0000-\U0010FFFF] "5"` (the "." of 2.5 as any character) and `"-" [1-2]
 * ("." [0-9]{1,6})?` (so -2.9), and under `maximum: 5` it allows 5.3. So llmkit takes each bounded number out
 * of the schema XGrammar sees (a string constant stands in its place), and puts its own rule where that
 * constant lands in XGrammar's EBNF.
 *
 * The numbers a rule allows are JSON numbers without exponent: `-?(0|[1-9][0-9]*)(\.[0-9]{1,6})?` for
 * `number` (six decimals at most, as XGrammar's own bounded numbers), no fraction for `integer`, no `-0`.
 */

/** Decimals a bounded `number` may have. */
export const FRACTION_DIGITS = 6;

const SCALE = 10n ** BigInt(FRACTION_DIGITS);
const BOUNDS = ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'] as const;
/** Keywords whose values are data, not schemas: a bounded-number look-alike there is left alone. */
const DATA_KEYWORDS = new Set(['const', 'enum', 'default', 'examples']);

export interface RangeRules {
  /** The schema with each bounded number replaced by `{const: placeholder}`. */
  schema: unknown;
  /** Placeholder → EBNF expression. */
  rules: Map<string, string>;
}

/** Takes the bounded numbers out of a schema (see above). A schema without any is returned as it is. */
export function withoutNumberRanges(schema: unknown): RangeRules {
  const rules = new Map<string, string>();
  const walk = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(walk);
    if (typeof node !== 'object' || node === null) return node;
    const o = node as Record<string, unknown>;
    const expression = rangeExpression(o);
    if (expression !== undefined) {
      const placeholder = `__llmkit_number_range_${rules.size}__`;
      rules.set(placeholder, expression);
      return { const: placeholder };
    }
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, DATA_KEYWORDS.has(k) ? v : walk(v)]));
  };
  return { schema: walk(schema), rules };
}

/** XGrammar's EBNF with each placeholder's string literal replaced by its rule. */
export function spliceNumberRanges(ebnf: string, rules: Map<string, string>): string {
  let out = ebnf;
  const defined: string[] = [];
  [...rules].forEach(([placeholder, expression], i) => {
    const name = `llmkit_number_range_${i}`;
    const literal = `"\\"${placeholder}\\""`;
    if (!out.includes(literal)) throw new Error(`the grammar has no place for a bounded number (${placeholder})`);
    out = out.split(literal).join(name);
    defined.push(`${name} ::= ${expression}`);
  });
  return [out.trimEnd(), ...defined].join('\n') + '\n';
}

/** The EBNF expression of a bounded `number` or `integer` node; undefined for anything else. */
function rangeExpression(o: Record<string, unknown>): string | undefined {
  if ((o.type !== 'number' && o.type !== 'integer') || 'const' in o || 'enum' in o) return undefined;
  if (!BOUNDS.some((b) => typeof o[b] === 'number')) return undefined;
  const digits = o.type === 'integer' ? 0 : FRACTION_DIGITS;
  const unit = 10n ** BigInt(FRACTION_DIGITS - digits);
  // In units of 10^-FRACTION_DIGITS, on the grid of numbers the rule can spell (integers: multiples of SCALE).
  const low = lowest(o, unit);
  const high = highest(o, unit);
  if (low !== undefined && high !== undefined && low > high) throw new RangeError(`no ${o.type} lies between the bounds ${JSON.stringify(o)}`);
  const parts: string[] = [];
  if (high === undefined || high >= 0n) parts.push(magnitudes(low === undefined || low < 0n ? 0n : low, high, digits));
  // Negative numbers: "-" and a magnitude above 0 (no "-0").
  if (low === undefined || low < 0n) {
    const from = high === undefined || high >= 0n ? unit : -high;
    if (low === undefined || -low >= from) parts.push(`"-" ${magnitudes(from, low === undefined ? undefined : -low, digits)}`);
  }
  return parts.length === 1 ? parts[0] : `(${parts.map((p) => `(${p})`).join(' | ')})`;
}

/** The lowest allowed value in units, rounded up onto the grid of `unit`; undefined when unbounded below. */
function lowest(o: Record<string, unknown>, unit: bigint): bigint | undefined {
  const candidates: bigint[] = [];
  if (typeof o.minimum === 'number') candidates.push(ceilTo(scaled(o.minimum), unit, false));
  if (typeof o.exclusiveMinimum === 'number') candidates.push(ceilTo(scaled(o.exclusiveMinimum), unit, true));
  return candidates.sort(byValue).at(-1);
}

function highest(o: Record<string, unknown>, unit: bigint): bigint | undefined {
  const candidates: bigint[] = [];
  if (typeof o.maximum === 'number') candidates.push(-ceilTo(negated(scaled(o.maximum)), unit, false));
  if (typeof o.exclusiveMaximum === 'number') candidates.push(-ceilTo(negated(scaled(o.exclusiveMaximum)), unit, true));
  return candidates.sort(byValue)[0];
}

/**
 * A bound as an exact fraction scaled by SCALE: [numerator, denominator], so that bounds with more decimals than
 * the grid round the right way (JavaScript's shortest decimal spelling of the double is taken as the bound).
 */
function scaled(x: number): [bigint, bigint] {
  const [mantissa, exponent = '0'] = x.toExponential().split('e');
  const [whole, fraction = ''] = mantissa.replace('-', '').split('.');
  const sign = x < 0 ? -1n : 1n;
  const power = Number(exponent) - fraction.length + FRACTION_DIGITS;
  const n = sign * BigInt(whole + fraction);
  return power >= 0 ? [n * 10n ** BigInt(power), 1n] : [n, 10n ** BigInt(-power)];
}

const byValue = (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0);
const negated = ([n, d]: [bigint, bigint]): [bigint, bigint] => [-n, d];

/** The smallest multiple of `unit` ≥ the fraction (> it when `strict`). */
function ceilTo([n, d]: [bigint, bigint], unit: bigint, strict: boolean): bigint {
  const q = n / (d * unit);
  const r = n - q * d * unit;
  // BigInt division truncates toward zero.
  let k = r > 0n ? q + 1n : q;
  if (strict && r === 0n) k += 1n;
  return k * unit;
}

/**
 * Non-negative numbers from `low` to `high` (units, inclusive; high undefined: no upper bound) spelled with up
 * to `digits` decimals.
 */
function magnitudes(low: bigint, high: bigint | undefined, digits: number): string {
  const [lowInt, lowFrac] = [low / SCALE, low % SCALE];
  const full = SCALE - 1n;
  const frac = (from: bigint, to: bigint) => fraction(pad(from), pad(to), digits);
  if (high !== undefined && high / SCALE === lowInt) return seq(integer(lowInt, lowInt), frac(lowFrac, high % SCALE));
  const alternatives = [seq(integer(lowInt, lowInt), frac(lowFrac, full))];
  if (high === undefined) alternatives.push(seq(atLeast(lowInt + 1n), frac(0n, full)));
  else {
    const highInt = high / SCALE;
    if (highInt - lowInt >= 2n) alternatives.push(seq(integer(lowInt + 1n, highInt - 1n), frac(0n, full)));
    alternatives.push(seq(integer(highInt, highInt), frac(0n, high % SCALE)));
  }
  return alt(alternatives);
}

const pad = (f: bigint) => f.toString().padStart(FRACTION_DIGITS, '0');
const zeros = (s: string) => /^0*$/.test(s);
const nines = (s: string) => /^9*$/.test(s);

/**
 * The optional fraction of a number whose fraction, as FRACTION_DIGITS digits, lies in [from, to]: nothing
 * (a fraction of zero) or "." and 1 to `digits` digits, those left out counting as zeros.
 */
function fraction(from: string, to: string, digits: number): string {
  const none = zeros(from);
  const some = digits === 0 ? undefined : fractionDigits(from, to);
  if (some === undefined) return none ? '' : NEVER;
  return none ? `("." ${some})?` : `"." ${some}`;
}

/** Digit strings of 1 to `low.length` digits whose value padded with zeros to that length lies in [low, high]. */
function fractionDigits(low: string, high: string): string | undefined {
  const n = low.length;
  if (n === 0) return undefined;
  if (zeros(low) && nines(high)) return anyDigits(1, n);
  const [a, b] = [Number(low[0]), Number(high[0])];
  /** After the first digit: nothing (the rest counts as zeros) or more digits, within [from, to]. */
  const rest = (from: string, to: string): string | undefined => {
    const more = fractionDigits(from, to);
    if (more === undefined) return zeros(from) ? '' : undefined;
    return zeros(from) ? `(${more})?` : more;
  };
  const alternatives: string[] = [];
  const push = (digit: string, tail: string | undefined) => tail !== undefined && alternatives.push(seq(digit, tail));
  if (a === b) push(`"${a}"`, rest(low.slice(1), high.slice(1)));
  else {
    push(`"${a}"`, rest(low.slice(1), '9'.repeat(n - 1)));
    if (b - a >= 2) push(charRange(a + 1, b - 1), anyDigits(0, n - 1));
    push(`"${b}"`, rest('0'.repeat(n - 1), high.slice(1)));
  }
  return alternatives.length ? alt(alternatives) : undefined;
}

/**
 * From `min` to `max` digits, written out: XGrammar 0.1.27 mismatches bounded repetitions that are alternatives of
 * one another (`[1-9] [0-9]{4} | [1-9] [0-9]{5}` accepts "1000001").
 */
function anyDigits(min: number, max: number): string {
  const required = Array(min).fill('[0-9]');
  let optional = '';
  for (let i = max - min; i > 0; i--) optional = `([0-9]${optional ? ` ${optional}` : ''})?`;
  return [...required, optional].filter(Boolean).join(' ');
}

const charRange = (a: number, b: number) => (a === b ? `"${a}"` : `[${a}-${b}]`);

/** Integers from `from` to `to` (non-negative, inclusive), without leading zeros. */
function integer(from: bigint, to: bigint): string {
  const alternatives: string[] = [];
  if (from === 0n) alternatives.push('"0"');
  for (let n = Math.max(1, from.toString().length); n <= to.toString().length; n++) {
    const lo = from > 10n ** BigInt(n - 1) ? from : 10n ** BigInt(n - 1);
    const hi = to < 10n ** BigInt(n) - 1n ? to : 10n ** BigInt(n) - 1n;
    if (lo <= hi) alternatives.push(sameLength(lo.toString(), hi.toString()));
  }
  return alt(alternatives);
}

/** Integers from `from` up, without leading zeros. */
function atLeast(from: bigint): string {
  const n = Math.max(1, from.toString().length);
  const lowest = from > 0n ? from : 1n;
  const thisLength = sameLength(lowest.toString(), '9'.repeat(n));
  const longer = seq('[1-9]', anyDigits(n, n), '[0-9]*');
  return from === 0n ? alt(['"0"', thisLength, longer]) : alt([thisLength, longer]);
}

/** Digit strings of one length between low and high (inclusive). */
function sameLength(low: string, high: string): string {
  const n = low.length;
  if (n === 0) return '""';
  if (low === high) return `"${low}"`;
  if (/^0*$/.test(low.slice(1)) && /^9*$/.test(high.slice(1))) return seq(charRange(Number(low[0]), Number(high[0])), anyDigits(n - 1, n - 1));
  const [l, h] = [Number(low[0]), Number(high[0])];
  if (l === h) return seq(`"${l}"`, sameLength(low.slice(1), high.slice(1)));
  const alternatives = [seq(`"${l}"`, sameLength(low.slice(1), '9'.repeat(n - 1)))];
  if (h - l >= 2) alternatives.push(seq(charRange(l + 1, h - 1), anyDigits(n - 1, n - 1)));
  alternatives.push(seq(`"${h}"`, sameLength('0'.repeat(n - 1), high.slice(1))));
  return alt(alternatives);
}

/** What an empty set of alternatives becomes (it never reaches a rule: a range with no number is refused). */
const NEVER = '(never)';

const seq = (...parts: string[]) => {
  if (parts.includes(NEVER)) return NEVER;
  const kept = parts.filter((p) => p !== '' && p !== '""');
  return kept.length ? kept.map((p) => (p.includes(' | ') && !isGroup(p) ? `(${p})` : p)).join(' ') : '""';
};
const alt = (parts: string[]) => {
  const kept = parts.filter((p) => p !== NEVER);
  return kept.length === 0 ? NEVER : kept.length === 1 ? kept[0] : `(${kept.join(' | ')})`;
};
const isGroup = (p: string) => p.startsWith('(') && p.endsWith(')') && balancedInside(p);
function balancedInside(p: string): boolean {
  let depth = 0;
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '(') depth++;
    else if (p[i] === ')') depth--;
    if (depth === 0 && i < p.length - 1) return false;
  }
  return true;
}
