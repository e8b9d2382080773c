/** IEEE 754 half precision as 16-bit patterns (Node 20 has no Float16Array). */

export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

const single = new Float32Array(1);
const singleBits = new Uint32Array(single.buffer);

/** The half nearest `value` (ties to even; beyond the range, infinity). */
export function floatToHalf(value: number): number {
  single[0] = value;
  const x = singleBits[0];
  const sign = (x >>> 16) & 0x8000;
  const exponent = ((x >>> 23) & 0xff) - 127 + 15;
  const mantissa = x & 0x7fffff;
  if (((x >>> 23) & 0xff) === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  if (exponent >= 31) return sign | 0x7c00;
  if (exponent <= 0) {
    if (exponent < -10) return sign;
    // Subnormal: the implicit bit made explicit, shifted down to the 2^-24 grid.
    const full = mantissa | 0x800000;
    const shift = 14 - exponent;
    return sign | roundedShift(full, shift);
  }
  // A carry out of the mantissa lands in the exponent, which is the right result (up to infinity).
  return sign | ((exponent << 10) + roundedShift(mantissa, 13));
}

/** value >> shift, rounded to nearest, ties to even. */
function roundedShift(value: number, shift: number): number {
  const kept = value >>> shift;
  const rest = value & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return rest > half || (rest === half && kept & 1) ? kept + 1 : kept;
}
