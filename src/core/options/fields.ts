import { z } from 'zod';

/**
 * zod fields for command options. Each accepts both the command line's strings and a recipe's YAML values,
 * and its message reads after the flag name: `--lora-r` + `must be an integer ≥ 1` + ` (got -4)`.
 */
/**
 * Each field is built on first use: `--help` loads every command's definition and validates nothing, and
 * building zod's checks up front cost a few tens of milliseconds of start-up across the commands.
 */
const lazy = <T extends z.ZodType>(make: () => T) => z.lazy(make);

const numeric = (v: unknown) => (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : v);

export function intField(min: number) {
  const message = `must be an integer ≥ ${min}`;
  return lazy(() => z.preprocess(numeric, z.number({ error: message }).int({ error: message }).min(min, { error: message })));
}

export function numberField(range: { min?: number; max?: number; above?: number; below?: number }) {
  return lazy(() => numberSchema(range));
}

function numberSchema(range: { min?: number; max?: number; above?: number; below?: number }) {
  const bounds = [
    range.min !== undefined && `≥ ${range.min}`,
    range.above !== undefined && `> ${range.above}`,
    range.max !== undefined && `≤ ${range.max}`,
    range.below !== undefined && `< ${range.below}`,
  ].filter(Boolean);
  const message = `must be a number${bounds.length ? ' ' + bounds.join(' and ') : ''}`;
  let field = z.number({ error: message });
  if (range.min !== undefined) field = field.min(range.min, { error: message });
  if (range.above !== undefined) field = field.gt(range.above, { error: message });
  if (range.max !== undefined) field = field.max(range.max, { error: message });
  if (range.below !== undefined) field = field.lt(range.below, { error: message });
  return z.preprocess(numeric, field);
}

export function booleanField() {
  return lazy(() => z.boolean({ error: 'must be true or false' }));
}

export function enumField<const T extends readonly [string, ...string[]]>(values: T) {
  return lazy(() => z.enum(values, { error: `must be one of ${values.join(', ')}` }));
}

/** A list from a YAML sequence, a repeated flag, or one comma-separated string. */
export function listField() {
  const message = 'must be a list of names (a YAML list or comma-separated)';
  return lazy(() =>
    z.preprocess(
      (v) =>
        typeof v === 'string'
          ? v
              .split(',')
              .map((s) => s.trim())
              .filter(Boolean)
          : v,
      z.array(z.string({ error: message }).min(1, { error: message }), { error: message }).min(1, { error: message }),
    ),
  );
}

/** One path or several (a YAML list, or a flag given more than once). */
export function pathsField() {
  return textsField('must be a file path or a list of them');
}

/** Any non-empty text: a path, a name, a URL checked later. */
export function textField() {
  return lazy(() => z.string({ error: 'must be a non-empty text' }).min(1, { error: 'must be a non-empty text' }));
}

/** One value or several: a variadic flag or argument (`--exclude a b`), a repeated flag, or a YAML list. */
export function textsField(message = 'must be one value or more') {
  return lazy(() => z.preprocess((v) => (typeof v === 'string' ? [v] : v), z.array(z.string({ error: message }).min(1, { error: message }), { error: message }).min(1, { error: message })));
}

/** `1,4,8` or a YAML list of integers. */
export function intListField(min: number) {
  const message = `must be a comma-separated list of integers ≥ ${min}`;
  return lazy(() =>
    z.preprocess(
      (v) => (typeof v === 'string' ? v.split(',').map((s) => (s.trim() ? Number(s) : Number.NaN)) : v),
      z.array(z.number({ error: message }).int({ error: message }).min(min, { error: message }), { error: message }).min(1, { error: message }),
    ),
  );
}
