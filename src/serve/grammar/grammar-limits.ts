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

/**
 * Keywords XGrammar 0.1.27 takes and then does not enforce (it writes a grammar that ignores them, or gets them
 * wrong: `contains` allows only `[]`, `patternProperties` takes the pattern as a literal name, several `allOf`
 * parts become "any JSON"). A schema using one is refused, so that no answer comes back that its own schema
 * rejects. `format` is accepted and not enforced (docs/serve.md).
 */
const REFUSED_KEYWORDS = [
  'multipleOf',
  'uniqueItems',
  'contains',
  'minContains',
  'maxContains',
  'not',
  'if',
  'then',
  'else',
  'dependentRequired',
  'dependentSchemas',
  'dependencies',
  'unevaluatedProperties',
  'unevaluatedItems',
  'propertyNames',
  'patternProperties',
] as const;

/** Keywords whose values map names to schemas. */
const NAME_MAPS = new Set(['properties', '$defs', 'definitions']);

/** Keywords whose values are data, not schemas. */
const DATA_KEYWORDS = new Set(['const', 'enum', 'default', 'examples']);

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
  for (const schema of schemas) refuseUnenforced(schema);
  const pattern = Math.max(0, ...schemas.map(longestPattern));
  if (pattern > GRAMMAR_LIMITS.patternLength) throw new GrammarError(`a pattern is ${pattern} characters long; this server compiles at most ${GRAMMAR_LIMITS.patternLength}`);
}

/** Throws GrammarError for the first keyword the grammar would not enforce (see REFUSED_KEYWORDS), with where it is. */
function refuseUnenforced(schema: unknown): void {
  // `names`: a map from names to schemas (properties, $defs), whose keys are not keywords.
  const stack: [unknown, string, boolean][] = [[schema, '', false]];
  while (stack.length) {
    const [node, path, names] = stack.pop()!;
    if (typeof node !== 'object' || node === null) continue;
    const o = node as Record<string, unknown>;
    const at = path || '/';
    if (!Array.isArray(node) && !names) {
      const refused = REFUSED_KEYWORDS.find((k) => k in o);
      if (refused) throw new GrammarError(`'${refused}' (at ${at}) is not enforced by this server's grammar engine: remove it`);
      if (Array.isArray(o.allOf) && o.allOf.length > 1)
        throw new GrammarError(`'allOf' with ${o.allOf.length} parts (at ${at}) is not enforced by this server's grammar engine: merge them into one schema`);
      if (typeof o.pattern === 'string' && ('minLength' in o || 'maxLength' in o)) {
        throw new GrammarError(`'pattern' with 'minLength' or 'maxLength' (at ${at}) is not enforced by this server's grammar engine: put the length in the pattern`);
      }
    }
    for (const [key, value] of Object.entries(o)) {
      if (Array.isArray(node) || names || !DATA_KEYWORDS.has(key)) stack.push([value, `${path}/${key}`, !names && NAME_MAPS.has(key)]);
    }
  }
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
