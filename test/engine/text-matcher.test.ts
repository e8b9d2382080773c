import { describe, expect, it } from 'vitest';
import { StreamingTextMatcher } from '../../src/engine/text-matcher.js';

function run(needles: string[], chunks: string[], ignoreCase = false) {
  const matcher = new StreamingTextMatcher(needles, ignoreCase);
  const out: string[] = [];
  for (const c of chunks) {
    const r = matcher.push(c);
    out.push(r.text);
    if (r.match) return { out, match: r.match };
  }
  out.push(matcher.flush());
  return { out, match: undefined };
}

describe('stop strings across chunks', () => {
  it('finds a stop string split over chunks and never releases it', () => {
    const r = run(['STOP'], ['Hello S', 'TO', 'P and more']);
    expect(r.match).toBe('STOP');
    expect(r.out.join('')).toBe('Hello ');
    // "S" is held back until it cannot be a stop string any more.
    expect(r.out[0]).toBe('Hello ');
  });

  it('releases held-back text once it cannot start a stop string', () => {
    const r = run(['STOP'], ['a S', 'T', 'x', 'y']);
    expect(r.match).toBeUndefined();
    expect(r.out).toEqual(['a ', '', 'STx', 'y', '']);
  });

  it('takes the earliest of several stop strings, ignoring case when asked', () => {
    expect(run(['world', 'lo w'], ['hello world']).out.join('')).toBe('hel');
    expect(run(['SECRET'], ['my secret plan'], true)).toEqual({ out: ['my '], match: 'secret' });
  });
});
