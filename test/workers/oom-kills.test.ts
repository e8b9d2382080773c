import { describe, expect, it } from 'vitest';
import { type OomKillCount, oomKillVerdict, readOomKills } from '../../src/workers/oom-kills.js';

describe('OOM kill counts', () => {
  it('reads a count of the kernel’s OOM kills on this Linux machine (cgroup or /proc/vmstat)', () => {
    const count = readOomKills();
    expect(count?.source).toMatch(/^\/(sys\/fs\/cgroup|proc)\/.* oom_kill$/);
    expect(count!.count).toBeGreaterThanOrEqual(0);
  });

  it('names memory only when the same count went up while the worker ran', () => {
    const cgroup = (count: number): OomKillCount => ({ count, source: '/sys/fs/cgroup/memory/memory.oom_control oom_kill', scope: 'cgroup' });
    const machine = (count: number): OomKillCount => ({ count, source: '/proc/vmstat oom_kill', scope: 'machine' });
    expect(oomKillVerdict(cgroup(2), cgroup(3))).toBe("the kernel's OOM killer ended it: the system ran out of memory (/sys/fs/cgroup/memory/memory.oom_control oom_kill went from 2 to 3)");
    expect(oomKillVerdict(machine(0), machine(1))).toBe("the kernel's OOM killer ended a process on this machine while the worker ran, most likely this one (/proc/vmstat oom_kill went from 0 to 1)");
    expect(oomKillVerdict(cgroup(3), cgroup(3))).toBeUndefined();
    expect(oomKillVerdict(undefined, cgroup(3))).toBeUndefined();
    expect(oomKillVerdict(machine(0), cgroup(1))).toBeUndefined();
  });
});
