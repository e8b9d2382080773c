import { describe, expect, it } from 'vitest';
import { percentile } from '../../src/core/bench/client.js';

describe('percentile', () => {
  it('takes the nearest rank and leaves out requests that produced no text (NaN)', () => {
    expect(percentile([40, 10, NaN, 30, 20], 50)).toBe(20);
    expect(percentile([40, 10, NaN, 30, 20], 95)).toBe(40);
    expect(percentile([NaN, NaN], 50)).toBeNaN();
    expect(percentile([], 50)).toBeNaN();
  });
});
