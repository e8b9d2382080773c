import { UsageError } from '../shared/errors.js';

/** Parses an integer flag, naming the flag and the fix when it is not one. */
export function parseInteger(value: string, flag: string, min = 1): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    throw new UsageError(`${flag} must be an integer ≥ ${min} (got ${value})`);
  }
  return n;
}

export function parseNumber(value: string, flag: string, range: { min?: number; max?: number } = {}): number {
  const n = Number(value);
  if (!Number.isFinite(n) || (range.min !== undefined && n < range.min) || (range.max !== undefined && n > range.max)) {
    const bounds = [range.min !== undefined ? `≥ ${range.min}` : '', range.max !== undefined ? `≤ ${range.max}` : ''].filter(Boolean).join(' and ');
    throw new UsageError(`${flag} must be a number${bounds ? ' ' + bounds : ''} (got ${value})`);
  }
  return n;
}
