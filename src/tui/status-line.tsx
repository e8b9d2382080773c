import { Text } from 'ink';
import type { BackendInfo, ChatSettings } from '../core/chat/backend.js';
import { formatContext, formatMs, formatRate, formatSampling } from '../core/chat/format.js';
import type { TurnStats } from '../core/chat/session.js';

export interface StatusLineProps {
  info: BackendInfo;
  settings: ChatSettings;
  /** The last finished reply; null before the first. */
  stats: TurnStats | null;
  /** What is going on now (`generating · Esc cancels`), shown first when set. */
  activity: string | null;
}

/** Model folder names can be long (hashes); the numbers after them matter more on a narrow terminal. */
const MODEL_WIDTH = 28;

function shorten(text: string, width: number): string {
  if (text.length <= width) return text;
  const head = Math.ceil((width - 1) / 2);
  return `${text.slice(0, head)}…${text.slice(text.length - (width - 1 - head))}`;
}

/** One line under the prompt: model, device, sampling, and tokens/s, time to first token and context of the last reply. */
export function StatusLine({ info, settings, stats, activity }: StatusLineProps) {
  const parts = [
    shorten(info.model, MODEL_WIDTH),
    info.device,
    formatSampling(settings),
    formatRate(stats?.tokensPerS ?? null),
    `ttft ${formatMs(stats?.timeToFirstTokenMs ?? null)}`,
    formatContext(stats?.contextUsed ?? null, info.contextWindow),
  ];
  return (
    <Text dimColor wrap="truncate-end">
      {activity ? <Text color="yellow">{activity} · </Text> : null}
      {parts.join(' · ')}
    </Text>
  );
}
