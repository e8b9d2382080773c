import { describe, expect, it } from 'vitest';
import { floatToHalf, halfToFloat } from '../../src/engine/float16.js';

describe('float16 bit patterns', () => {
  it('rounds floats to the nearest half (ties to even), subnormals and overflow included, and reads them back', () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2.5, 0xc100],
      [65504, 0x7bff],
      [65520, 0x7c00], // halfway to the next step past the largest half: rounds up to infinity
      [1e6, 0x7c00],
      [2 ** -14, 0x0400],
      [2 ** -24, 0x0001],
      [2 ** -26, 0x0000],
      [1 + 2 ** -11, 0x3c00], // a tie: to the even mantissa (down)
      [1 + 3 * 2 ** -11, 0x3c02], // a tie: to the even mantissa (up)
      [0.1, 0x2e66],
    ];
    for (const [value, bits] of cases) expect(floatToHalf(value), String(value)).toBe(bits);
    expect(Number.isNaN(halfToFloat(floatToHalf(NaN)))).toBe(true);
    expect(halfToFloat(floatToHalf(-Infinity))).toBe(-Infinity);
    for (const value of [1, -2.5, 65504, 2 ** -14, 2 ** -24, 3 * 2 ** -20]) expect(halfToFloat(floatToHalf(value))).toBe(value);
    // Everything else within half a step: 2^-11 relative.
    for (let i = 0; i < 1000; i++) {
      const value = (Math.sin(i) * 1000) / (i + 1);
      expect(Math.abs(halfToFloat(floatToHalf(value)) - value)).toBeLessThanOrEqual(Math.abs(value) * 2 ** -11 + 2 ** -25);
    }
  });
});
