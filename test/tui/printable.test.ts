import { describe, expect, it } from 'vitest';
import { printable } from '../../src/tui/printable.js';

describe('text made safe for the terminal', () => {
  it('shows control characters a model emitted as control pictures, so they cannot move the cursor', () => {
    expect(printable('a\u0000b\u000bc\u000ed\u001b[2Je\u007f')).toBe('a␀b␋c␎d␛[2Je␡');
    expect(printable('C1 \u009b here')).toBe('C1 \ufffd here');
  });

  it('keeps newlines, turns CRLF into one and tabs into spaces', () => {
    expect(printable('one\r\ntwo\n\tthree')).toBe('one\ntwo\n    three');
    expect(printable('bare\rreturn')).toBe('bare␍return');
  });
});
