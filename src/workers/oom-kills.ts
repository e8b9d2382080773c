import { readFileSync } from 'node:fs';

/** A count of the kernel's OOM kills, and what it counts. */
export interface OomKillCount {
  count: number;
  /** The file and field read ("/sys/fs/cgroup/…/memory.events oom_kill"). */
  source: string;
  /** Whether it counts kills in llmkit's own cgroup (the worker's) or on the whole machine. */
  scope: 'cgroup' | 'machine';
}

/**
 * How many processes the kernel's OOM killer has ended, as far as llmkit can read it: its own cgroup's count
 * (cgroup v2 memory.events, v1 memory.oom_control; they count kills by any OOM killer, the cgroup's limit or the
 * whole machine's), else the machine's (/proc/vmstat, Linux 4.13+). Undefined where none is readable. Read before
 * and after a worker runs: a worker that died by SIGKILL while the count went up is known to have been OOM-killed
 * (scope cgroup), or to have died while the OOM killer acted on this machine (scope machine).
 */
export function readOomKills(): OomKillCount | undefined {
  const own = ownCgroups();
  const files: [string, OomKillCount['scope']][] = [
    [`/sys/fs/cgroup${own.v2 ?? '/'}/memory.events`.replace('//', '/'), 'cgroup'],
    ...(own.v1Memory ? [[`/sys/fs/cgroup/memory${own.v1Memory}/memory.oom_control`, 'cgroup'] as [string, 'cgroup']] : []),
    ['/sys/fs/cgroup/memory/memory.oom_control', 'cgroup'],
    ['/proc/vmstat', 'machine'],
  ];
  for (const [file, scope] of files) {
    const count = fieldOf(file, 'oom_kill');
    if (count !== undefined) return { count, source: `${file} oom_kill`, scope };
  }
  return undefined;
}

/** This process's cgroup paths from /proc/self/cgroup: the v2 one ("0::/path") and v1's memory controller's. */
function ownCgroups(): { v2?: string; v1Memory?: string } {
  let text = '';
  try {
    text = readFileSync('/proc/self/cgroup', 'utf8');
  } catch {
    return {};
  }
  const lines = text.split('\n').map((l) => l.split(':'));
  return {
    v2: lines.find(([id, controllers]) => id === '0' && controllers === '')?.[2],
    v1Memory: lines.find(([, controllers]) => controllers?.split(',').includes('memory'))?.[2],
  };
}

/** The number after `name ` on its own line of a file, if the file and the line are there. */
function fieldOf(file: string, name: string): number | undefined {
  try {
    const line = readFileSync(file, 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`${name} `));
    return line === undefined ? undefined : Number(line.slice(name.length + 1));
  } catch {
    return undefined;
  }
}

/**
 * What a count read before a worker ran and one read after it died by SIGKILL say, in words for its error;
 * undefined when they say nothing (unreadable, or the count did not move: then memory is not mentioned).
 */
export function oomKillVerdict(before: OomKillCount | undefined, after: OomKillCount | undefined): string | undefined {
  if (!before || !after || before.source !== after.source || after.count <= before.count) return undefined;
  const moved = `${after.source} went from ${before.count} to ${after.count}`;
  return after.scope === 'cgroup'
    ? `the kernel's OOM killer ended it: the system ran out of memory (${moved})`
    : `the kernel's OOM killer ended a process on this machine while the worker ran, most likely this one (${moved})`;
}
