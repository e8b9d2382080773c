import { Box, Static, Text } from 'ink';
import { printable } from './printable.js';

/** One finished thing in the conversation's scrollback. */
export type LogEntry =
  | { id: number; kind: 'user'; text: string }
  | { id: number; kind: 'assistant'; text: string /** Why it stopped early, shown after it (cancelled, /max reached). */; note?: string }
  | { id: number; kind: 'notice'; text: string }
  | { id: number; kind: 'error'; text: string; hint?: string };

/**
 * The finished turns, written once above the live area with ink's Static: they go to the terminal's
 * scrollback, so a long conversation costs nothing to redraw.
 */
export function MessageList({ entries }: { entries: LogEntry[] }) {
  return <Static items={entries}>{(entry) => <Entry key={entry.id} entry={{ ...entry, text: printable(entry.text) }} />}</Static>;
}

function Entry({ entry }: { entry: LogEntry }) {
  switch (entry.kind) {
    case 'user':
      return (
        <Box>
          <Text color="cyan" bold>
            ›{' '}
          </Text>
          <Text>{entry.text}</Text>
        </Box>
      );
    case 'assistant':
      return (
        <Box flexDirection="column" marginBottom={1}>
          <Text>{entry.text}</Text>
          {entry.note ? <Text dimColor>({entry.note})</Text> : null}
        </Box>
      );
    case 'notice':
      return <Text dimColor>{entry.text}</Text>;
    case 'error':
      return (
        <Text color="red">
          ✗ {entry.text}
          {entry.hint ? <Text color="yellow">{`\n  ${entry.hint}`}</Text> : null}
        </Text>
      );
  }
}
