/**
 * xoshiro128**: a small, fast generator with a 128-bit state. Each request owns one, seeded from its
 * `seed`, so its samples do not depend on what else shares the batch.
 *
 * Twin: `Random` in src/workers/python/llmkit_worker/assets/triton_generate.py is this generator bit for bit
 * (Triton's engine samples in Python); change both, test/serve/triton.test.ts compares seeded answers.
 */
export class Random {
  private s = new Uint32Array(4);

  constructor(seed: number) {
    // splitmix32 spreads the seed (up to 2^53) over the four state words; an all-zero state is impossible.
    let x = (seed >>> 0) ^ Math.floor(seed / 2 ** 32);
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
  }

  /** A float in [0, 1). */
  next(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result / 2 ** 32;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
