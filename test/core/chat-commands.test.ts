import { describe, expect, it } from 'vitest';
import { parseInput } from '../../src/core/chat/slash-commands.js';

describe('parsing what is typed at the chat prompt', () => {
  it('tells messages from commands; // sends a literal slash; blank lines are nothing', () => {
    expect(parseInput('hello')).toEqual({ kind: 'message', text: 'hello' });
    expect(parseInput('//etc/hosts is a file')).toEqual({ kind: 'message', text: '/etc/hosts is a file' });
    expect(parseInput('  \n ')).toEqual({ kind: 'empty' });
  });

  it('reads each command and its argument', () => {
    const commands: [string, unknown][] = [
      ['/help', { name: 'help' }],
      ['/clear', { name: 'clear' }],
      ['/system', { name: 'system', text: undefined }],
      ['/system off', { name: 'system', text: null }],
      ['/system You are terse.\nVery terse.', { name: 'system', text: 'You are terse.\nVery terse.' }],
      ['/temp', { name: 'temp', value: undefined }],
      ['/temp 0', { name: 'temp', value: 0 }],
      ['/top_p 0.9', { name: 'top_p', value: 0.9 }],
      ['/max 128', { name: 'max', value: 128 }],
      ['/seed 7', { name: 'seed', value: 7 }],
      ['/seed off', { name: 'seed', value: null }],
      ['/model', { name: 'model', model: undefined }],
      ['/model tiny@v2', { name: 'model', model: 'tiny@v2' }],
      ['/save out/chat 1.json', { name: 'save', file: 'out/chat 1.json' }],
      ['/load chat.json  ', { name: 'load', file: 'chat.json' }],
      ['/stats', { name: 'stats' }],
      ['/exit', { name: 'exit' }],
    ];
    for (const [line, command] of commands) expect(parseInput(line), line).toEqual({ kind: 'command', command });
  });

  it('says what is wrong with a bad command, naming it and the valid values', () => {
    const invalid: [string, string][] = [
      ['/temp -1', '/temp takes a number ≥ 0 and ≤ 2 (got -1)'],
      ['/temp warm', '/temp takes a number ≥ 0 and ≤ 2 (got warm)'],
      ['/top_p 0', '/top_p takes a number > 0 and ≤ 1 (got 0)'],
      ['/top_p 1.5', '/top_p takes a number > 0 and ≤ 1 (got 1.5)'],
      ['/max 0', '/max takes an integer ≥ 1 (got 0)'],
      ['/max 1.5', '/max takes an integer ≥ 1 (got 1.5)'],
      ['/seed -3', '/seed takes an integer ≥ 0 or off (got -3)'],
      ['/save', '/save needs a file: /save chat.json'],
      ['/clear now', '/clear takes no argument (got now)'],
      ['/quit', 'unknown command /quit: /help lists them (start a message with // to send a literal /)'],
    ];
    for (const [line, message] of invalid) expect(parseInput(line), line).toEqual({ kind: 'invalid', message });
  });
});
