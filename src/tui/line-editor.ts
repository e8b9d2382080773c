import type { Key } from 'ink';

/** The prompt being edited, plus the inputs sent before it (Up/Down recall them). */
export interface EditorState {
  text: string;
  /** Index into `text` (UTF-16 units), 0 … text.length. */
  cursor: number;
  history: string[];
  /** history.length while editing a new input. */
  historyIndex: number;
  /** The unsent input kept aside while browsing the history. */
  draft: string;
  /** Inside a bracketed paste: line breaks are text, not Enter. */
  pasting: boolean;
}

export const emptyEditor = (history: string[] = []): EditorState => ({ text: '', cursor: 0, history, historyIndex: history.length, draft: '', pasting: false });

/**
 * The markers of a bracketed paste (ESC[200~ … ESC[201~, turned on by runChatApp): ink passes them
 * on as text without their ESC.
 */
export const PASTE_START = '[200~';
export const PASTE_END = '[201~';

export interface KeyResult {
  state: EditorState;
  /** Set when Enter sent the input. */
  submitted?: string;
}

/**
 * Applies one keypress to the prompt; pure, so every key can be tested without a terminal.
 * Enter sends, unless the line ends in a backslash (the backslash becomes a new line) or Alt/Shift
 * is held. Pasted text keeps its line breaks instead of sending. `canSubmit` false (a reply is
 * streaming) keeps Enter from sending while typing ahead goes on.
 */
export function applyKey(state: EditorState, input: string, key: Key, canSubmit = true): KeyResult {
  if (input === PASTE_START || input === PASTE_END) return { state: { ...state, pasting: input === PASTE_START } };
  // Keys typed while the process was busy arrive as one chunk ("hello\r"): outside a paste, each CR is Enter.
  if (!state.pasting && input.length > 1 && input.includes('\r') && !key.ctrl && !key.meta) {
    let result: KeyResult = { state };
    input.split('\r').forEach((part, i) => {
      if (i > 0) {
        const entered = applyKey(result.state, '\r', { ...key, return: true }, canSubmit && result.submitted === undefined);
        result = { state: entered.state, submitted: result.submitted ?? entered.submitted };
      }
      if (part) result = { ...result, state: applyKey(result.state, part, key, false).state };
    });
    return result;
  }
  const { text, cursor } = state;
  const edit = (next: string, at: number): KeyResult => ({ state: { ...state, text: next, cursor: at } });
  const lineStart = text.lastIndexOf('\n', cursor - 1) + 1;
  const lineEndAt = text.indexOf('\n', cursor);
  const lineEnd = lineEndAt === -1 ? text.length : lineEndAt;

  if (key.return) {
    if (key.shift || key.meta) return edit(text.slice(0, cursor) + '\n' + text.slice(cursor), cursor + 1);
    if (text.endsWith('\\') && cursor === text.length) return edit(text.slice(0, -1) + '\n', text.length);
    if (!canSubmit) return { state };
    return submit(state);
  }
  if (key.upArrow) return lineStart > 0 ? edit(text, moveVertically(text, cursor, -1)) : recall(state, -1);
  if (key.downArrow) return lineEnd < text.length ? edit(text, moveVertically(text, cursor, 1)) : recall(state, 1);
  if (key.leftArrow) return edit(text, Math.max(0, cursor - 1));
  if (key.rightArrow) return edit(text, Math.min(text.length, cursor + 1));
  if (key.home || (key.ctrl && input === 'a')) return edit(text, lineStart);
  if (key.end || (key.ctrl && input === 'e')) return edit(text, lineEnd);
  // Terminals send DEL (0x7f) for Backspace, which ink reports as `delete`: both erase to the left.
  if (key.backspace || key.delete) return cursor === 0 ? { state } : edit(text.slice(0, cursor - 1) + text.slice(cursor), cursor - 1);
  if (key.ctrl && input === 'd') return edit(text.slice(0, cursor) + text.slice(cursor + 1), cursor);
  if (key.ctrl && input === 'u') return edit(text.slice(0, lineStart) + text.slice(cursor), lineStart);
  if (key.ctrl && input === 'k') return edit(text.slice(0, cursor) + text.slice(lineEnd), cursor);
  if (key.ctrl && input === 'w') {
    const start = text.slice(lineStart, cursor).search(/\S*\s*$/) + lineStart;
    return edit(text.slice(0, start) + text.slice(cursor), start);
  }
  if (key.ctrl || key.meta || key.escape || key.tab || !input) return { state };
  // Typed or pasted text: line breaks kept (CR and CRLF, in a paste, become LF), other control characters dropped.
  const typed = input.replace(/\r\n?/g, '\n').replace(/[\u0000-\u0009\u000b-\u001f\u007f]/g, '');
  return edit(text.slice(0, cursor) + typed + text.slice(cursor), cursor + typed.length);
}

function submit(state: EditorState): KeyResult {
  const sent = state.text;
  const history = sent.trim() && state.history.at(-1) !== sent ? [...state.history, sent] : state.history;
  return { state: { ...emptyEditor(history), pasting: state.pasting }, submitted: sent };
}

/** Up/Down on the first/last line walk the history; the unsent input comes back at the end. */
function recall(state: EditorState, step: -1 | 1): KeyResult {
  const index = state.historyIndex + step;
  if (index < 0 || index > state.history.length) return { state };
  const draft = state.historyIndex === state.history.length ? state.text : state.draft;
  const text = index === state.history.length ? draft : state.history[index];
  return { state: { ...state, text, cursor: text.length, historyIndex: index, draft } };
}

/** The cursor one line up or down, at the same column or the end of a shorter line. */
function moveVertically(text: string, cursor: number, step: -1 | 1): number {
  const lineStart = text.lastIndexOf('\n', cursor - 1) + 1;
  const column = cursor - lineStart;
  if (step === -1) {
    const prevStart = text.lastIndexOf('\n', lineStart - 2) + 1;
    return Math.min(prevStart + column, lineStart - 1);
  }
  const nextStart = text.indexOf('\n', cursor) + 1;
  const nextEnd = text.indexOf('\n', nextStart);
  return Math.min(nextStart + column, nextEnd === -1 ? text.length : nextEnd);
}
