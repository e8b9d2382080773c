/**
 * Text from a model or a server made safe to draw: control characters (a model can emit NUL, vertical
 * tab, shift-out, ESC …) would move the cursor or switch the terminal's character set under ink's
 * layout, so each is shown as its Unicode control picture (␀ ␋ ␎ ␛); tabs become spaces, CRLF a newline.
 */
export function printable(text: string): string {
  return text
    .replace(/\r\n/g, '\n')
    .replace(/\t/g, '    ')
    .replace(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/g, (c) => {
      const code = c.charCodeAt(0);
      return code < 0x20 ? String.fromCharCode(0x2400 + code) : code === 0x7f ? '\u2421' : '\ufffd';
    });
}
