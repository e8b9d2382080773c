import type { Key } from 'ink';
import { describe, expect, it } from 'vitest';
import { applyKey, emptyEditor, PASTE_END, PASTE_START, type EditorState } from '../../src/tui/line-editor.js';

const none: Key = {
  upArrow: false,
  downArrow: false,
  leftArrow: false,
  rightArrow: false,
  pageDown: false,
  pageUp: false,
  home: false,
  end: false,
  return: false,
  escape: false,
  ctrl: false,
  shift: false,
  tab: false,
  backspace: false,
  delete: false,
  meta: false,
  super: false,
  hyper: false,
  capsLock: false,
  numLock: false,
};
const k = (flags: Partial<Key>): Key => ({ ...none, ...flags });

/** Applies keys in order: a string is typed text, an object a special key (with its input, for Ctrl combinations). */
function run(keys: (string | [string, Partial<Key>] | Partial<Key>)[], state: EditorState = emptyEditor(), canSubmit = true) {
  const sent: string[] = [];
  for (const key of keys) {
    const [input, flags] = typeof key === 'string' ? [key, {}] : Array.isArray(key) ? key : ['', key];
    const r = applyKey(state, input, k(flags), canSubmit);
    state = r.state;
    if (r.submitted !== undefined) sent.push(r.submitted);
  }
  return { state, sent };
}

describe('the line editor', () => {
  it('inserts at the cursor and moves with arrows, Home/End and Ctrl-A/E', () => {
    const { state } = run(['helo', { leftArrow: true }, 'l', { home: true }, '> ', { end: true }, '!', ['a', { ctrl: true }], { rightArrow: true }, '|']);
    expect(state).toMatchObject({ text: '>| hello!', cursor: 2 });
    expect(run(['abc', ['a', { ctrl: true }], ['e', { ctrl: true }], 'd']).state.text).toBe('abcd');
  });

  it('erases left with Backspace (DEL, which ink calls delete), and edits with Ctrl-D/U/K/W', () => {
    expect(run(['abc', { delete: true }, { backspace: true }]).state.text).toBe('a');
    expect(run(['abc', { home: true }, ['d', { ctrl: true }]]).state.text).toBe('bc');
    expect(run(['one two three', ['w', { ctrl: true }]]).state.text).toBe('one two ');
    expect(run(['one two', { leftArrow: true }, { leftArrow: true }, ['u', { ctrl: true }]]).state).toMatchObject({ text: 'wo', cursor: 0 });
    expect(run(['one two', { home: true }, ['k', { ctrl: true }]]).state.text).toBe('');
  });

  it('sends on Enter, turns a trailing backslash, Alt/Shift+Enter or Ctrl+J (LF) into a new line', () => {
    expect(run(['hi', { return: true }]).sent).toEqual(['hi']);
    const multi = run(['a\\', { return: true }, 'b', { return: true, meta: true }, 'c', { return: true, shift: true }, 'd', { return: true }]);
    expect(multi.sent).toEqual(['a\nb\nc\nd']);
    expect(run(['line 1\nline 2']).state.text).toBe('line 1\nline 2');
  });

  it('reads a CR inside typed-ahead keys as Enter, and line breaks inside a bracketed paste as text', () => {
    expect(run(['hello\r'])).toMatchObject({ sent: ['hello'], state: { text: '' } });
    // The first Enter sends; a reply then streams, so the second only leaves its text in the prompt.
    expect(run(['one\rtwo\r'])).toMatchObject({ sent: ['one'], state: { text: 'two' } });
    const pasted = run([PASTE_START, 'line 1\r\nline 2\r', PASTE_END, '!']);
    expect(pasted).toMatchObject({ sent: [], state: { text: 'line 1\nline 2\n!', pasting: false } });
  });

  it('does not send while a reply streams, but keeps the typing', () => {
    expect(run(['next question', { return: true }], emptyEditor(), false)).toMatchObject({ sent: [], state: { text: 'next question' } });
  });

  it('recalls history with Up/Down on the first/last line, moves between lines otherwise', () => {
    const state = run(['first', { return: true }, 'second', { return: true }, 'second', { return: true }]).state;
    expect(state.history).toEqual(['first', 'second']);
    const browsing = run(['draft', { upArrow: true }], state).state;
    expect(browsing.text).toBe('second');
    expect(run([{ upArrow: true }, { upArrow: true }], browsing).state.text).toBe('first');
    expect(run([{ upArrow: true }, { downArrow: true }, { downArrow: true }], browsing).state.text).toBe('draft');
    const lines = run(['abc\\', { return: true }, 'de', { upArrow: true }], state).state;
    expect(lines).toMatchObject({ text: 'abc\nde', cursor: 2 });
    expect(run([{ downArrow: true }], lines).state.cursor).toBe(6);
  });

  it('ignores other control keys', () => {
    expect(run(['x', { tab: true }, { escape: true }, ['q', { ctrl: true }], ['\x01', {}]]).state.text).toBe('x');
  });
});
