import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { pythonSourceDir } from '../../src/shared/paths.js';
import { JOBS } from '../../src/workers/jobs.js';
import { requirePythonEnv } from '../../src/workers/python-env.js';

/**
 * The job table is kept twice, as zod schemas (src/workers/jobs.ts) and as TypedDicts
 * (llmkit_worker/jobs.py). Both are written here in one notation — `int`, `number`, `string|null`,
 * `array<…>`, `record<…>`, `{a,b?}` with `?` for a field that may be absent — and must be equal.
 * Only the standard library of Python is needed: the table loads no torch.
 */
const DESCRIBE_PY = `
import json, sys, types, typing
from llmkit_worker.jobs import JOBS

def describe(t):
    origin, args = typing.get_origin(t), typing.get_args(t)
    if t is type(None): return "null"
    if t is typing.Any: return "unknown"
    if t in (str, int, bool): return t.__name__.replace("str", "string").replace("bool", "boolean")
    if t is float: return "number"
    if origin is typing.Literal: return "enum(" + "|".join(sorted(args)) + ")"
    if origin in (typing.Union, types.UnionType): return "|".join(sorted(describe(a) for a in args))
    if origin is list: return "array<" + describe(args[0]) + ">"
    if origin is dict: return "record<" + describe(args[1]) + ">"
    if typing.is_typeddict(t):
        hints = typing.get_type_hints(t)
        return "{" + ",".join(k + ("" if k in t.__required_keys__ else "?") + ":" + describe(hints[k]) for k in sorted(hints)) + "}"
    raise TypeError(f"no description for {t!r}")

print(json.dumps({job: {"config": describe(c), "result": describe(r)} for job, (c, r) in JOBS.items()}))
`;

function describe_(schema: z.ZodType): string {
  const def = (schema as unknown as { _zod: { def: Record<string, any> } })._zod.def;
  switch (def.type) {
    case 'string':
    case 'boolean':
    case 'null':
    case 'unknown':
      return def.type;
    case 'number':
      return (schema as z.ZodNumber).isInt ? 'int' : 'number';
    case 'enum':
      return `enum(${Object.values(def.entries as Record<string, string>)
        .sort()
        .join('|')})`;
    case 'nullable':
      return [describe_(def.innerType), 'null'].sort().join('|');
    case 'array':
      return `array<${describe_(def.element)}>`;
    case 'record':
      return `record<${describe_(def.valueType)}>`;
    case 'object': {
      const shape = def.shape as Record<string, z.ZodType>;
      const fields = Object.keys(shape)
        .sort()
        .map((k) => {
          const field = (shape[k] as unknown as { _zod: { def: Record<string, any> } })._zod.def;
          return field.type === 'optional' ? `${k}?:${describe_(field.innerType)}` : `${k}:${describe_(shape[k])}`;
        });
      return `{${fields.join(',')}}`;
    }
    default:
      throw new Error(`no description for a zod ${def.type}`);
  }
}

describe('the job contract', () => {
  it('describes zod schemas in the notation both sides share', async () => {
    const { z } = await import('zod');
    expect(describe_(z.object({ a: z.number().int().nullable(), b: z.array(z.enum(['y', 'x'])).optional(), c: z.record(z.string(), z.unknown()) }))).toBe(
      '{a:int|null,b?:array<enum(x|y)>,c:record<unknown>}',
    );
  });

  it('is the same table of jobs, configs and results in TypeScript and in Python', async () => {
    const { python } = await requirePythonEnv();
    const r = await execa(python, ['-c', DESCRIBE_PY], { env: { PYTHONPATH: pythonSourceDir } });
    const fromPython = JSON.parse(r.stdout) as Record<string, { config: string; result: string }>;
    const fromTypeScript = Object.fromEntries(Object.entries(JOBS).map(([job, { config, result }]) => [job, { config: describe_(config), result: describe_(result) }]));
    expect(Object.keys(fromTypeScript)).toEqual(Object.keys(fromPython));
    for (const job of Object.keys(fromTypeScript)) {
      expect(fromTypeScript[job], job).toEqual(fromPython[job]);
      expect(existsSync(join(pythonSourceDir, 'llmkit_worker', `${job}.py`)), `${job}.py`).toBe(true);
    }
  });
});
