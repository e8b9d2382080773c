import { GrammarError, type GrammarSpec } from './grammar-spec.js';

/**
 * What this server compiles, checked before any compile: XGrammar's converter recurses once per level of
 * a schema on a small WebAssembly stack (a schema of 54 nested objects overflows it), and its cost grows
 * with the schema's size and its regular expressions. The limits sit well inside what compiles.
 */
export const GRAMMAR_LIMITS = {
  /** Objects and arrays inside one another in a schema's JSON (a nested object schema takes two per level). */
  depth: 64,
  /** A schema's JSON text, or all of a request's tool parameters together. */
  bytes: 64 * 1024,
  /** One `pattern` (or `patternProperties` key). */
  patternLength: 1000,
} as const;

/** Throws GrammarError naming the first limit the spec is over. */
export function checkGrammarLimits(spec: GrammarSpec): void {
  if (spec.kind === 'json_object') return;
  const schemas = spec.kind === 'json_schema' ? [spec.schema] : jsonSchemaParts(spec.format);
  // Depth first: the size is measured with JSON.stringify, which recurses.
  for (const schema of schemas) {
    const depth = nesting(schema);
    if (depth > GRAMMAR_LIMITS.depth) throw new GrammarError(`it nests ${depth} levels of objects and arrays; this server compiles at most ${GRAMMAR_LIMITS.depth}`);
  }
  const bytes = JSON.stringify(spec.kind === 'json_schema' ? spec.schema : spec.format).length;
  if (bytes > GRAMMAR_LIMITS.bytes) throw new GrammarError(`it is ${bytes} bytes of JSON; this server compiles at most ${GRAMMAR_LIMITS.bytes}`);
  const pattern = Math.max(0, ...schemas.map(longestPattern));
  if (pattern > GRAMMAR_LIMITS.patternLength) throw new GrammarError(`a pattern is ${pattern} characters long; this server compiles at most ${GRAMMAR_LIMITS.patternLength}`);
}

/** The JSON Schemas inside a structural tag's format (one per tool). */
function jsonSchemaParts(format: unknown): unknown[] {
  if (Array.isArray(format)) return format.flatMap(jsonSchemaParts);
  if (typeof format !== 'object' || format === null) return [];
  const node = format as Record<string, unknown>;
  if (node.type === 'json_schema') return [node.json_schema];
  return Object.values(node).flatMap(jsonSchemaParts);
}

/** Levels of objects and arrays (a scalar is 0); iterative, so that a deep value cannot overflow our stack either. */
function nesting(value: unknown): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    deepest = Math.max(deepest, depth + 1);
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return deepest;
}

/** The longest `pattern` value or `patternProperties` key anywhere in the schema. */
function longestPattern(value: unknown): number {
  let longest = 0;
  const stack: unknown[] = [value];
  while (stack.length) {
    const v = stack.pop();
    if (typeof v !== 'object' || v === null) continue;
    const node = v as Record<string, unknown>;
    if (!Array.isArray(v)) {
      if (typeof node.pattern === 'string') longest = Math.max(longest, node.pattern.length);
      if (typeof node.patternProperties === 'object' && node.patternProperties !== null) for (const key of Object.keys(node.patternProperties)) longest = Math.max(longest, key.length);
    }
    stack.push(...Object.values(node));
  }
  return longest;
}
