import { describe, expect, it } from 'vitest';
import { visibleTail } from '../../src/tui/visible-tail.js';

describe('the visible tail of a streaming reply', () => {
  it('keeps everything that fits', () => {
    expect(visibleTail('one\ntwo', 5, 80)).toBe('one\ntwo');
  });

  it('keeps the last lines that fit, counting wrapped rows', () => {
    const text = ['a'.repeat(10), 'b'.repeat(25), 'c'.repeat(5)].join('\n');
    // At 10 columns: 1 + 3 + 1 rows; four rows leave out the first line.
    expect(visibleTail(text, 4, 10)).toBe(['b'.repeat(25), 'c'.repeat(5)].join('\n'));
    expect(visibleTail(text, 3, 10)).toBe('c'.repeat(5));
  });

  it('counts wide characters as two cells, and cuts a line taller than the screen', () => {
    expect(visibleTail('x\n' + '漢'.repeat(10), 2, 10)).toBe('漢'.repeat(10));
    expect(visibleTail('z'.repeat(100), 2, 10)).toBe('z'.repeat(10));
  });
});
