/**
 * The end of a streaming reply that fits in `rows` terminal rows of `columns` cells. ink redraws its
 * live area in place, which breaks once that area is taller than the terminal; the whole reply goes
 * to the scrollback when it is finished, so while it streams only its tail is shown.
 */
export function visibleTail(text: string, rows: number, columns: number): string {
  const lines = text.split('\n');
  let used = 0;
  let first = lines.length;
  while (first > 0) {
    const height = Math.max(1, Math.ceil(cells(lines[first - 1]) / columns));
    if (used + height > rows) break;
    used += height;
    first--;
  }
  // A single line taller than the screen: keep about its last screenful of characters.
  if (first === lines.length) return lines[lines.length - 1].slice(-Math.floor((rows * columns) / 2));
  return lines.slice(first).join('\n');
}

/** Terminal cells a line takes, erring high: every character from U+1100 on counts as wide (CJK, emoji). */
function cells(line: string): number {
  let n = 0;
  for (const ch of line) n += ch.codePointAt(0)! >= 0x1100 ? 2 : 1;
  return n;
}
