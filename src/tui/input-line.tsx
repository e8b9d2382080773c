import { Box, Text } from 'ink';

export interface InputLineProps {
  text: string;
  cursor: number;
  /** Dims the prompt while a reply streams (typing ahead still works). */
  busy: boolean;
}

/** The prompt: `› ` on the first line, aligned continuation lines, the cursor as an inverse cell. */
export function InputLine({ text, cursor, busy }: InputLineProps) {
  const lines = text.split('\n');
  let offset = 0;
  return (
    <Box flexDirection="column">
      {lines.map((line, i) => {
        const start = offset;
        offset += line.length + 1;
        const at = cursor - start;
        const hasCursor = at >= 0 && at <= line.length;
        return (
          <Text key={i}>
            <Text color={busy ? 'gray' : 'cyan'} bold>
              {i === 0 ? '› ' : '  '}
            </Text>
            {hasCursor ? (
              <>
                {line.slice(0, at)}
                <Text inverse>{line[at] ?? ' '}</Text>
                {line.slice(at + 1)}
              </>
            ) : (
              line
            )}
          </Text>
        );
      })}
    </Box>
  );
}
