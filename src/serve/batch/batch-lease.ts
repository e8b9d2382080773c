import { closeSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { newId } from './objects.js';
import { writeFileAtomic } from '../../shared/atomic.js';

/** What a lease file says: who holds the batch (see leaseHolder), and until when (ms since the epoch) unless it renews. */
interface LeaseTerms {
  holder: string;
  until: number;
}

/** A server among those sharing a data folder: `host/pid/random` (a pid alone is reused, and means nothing on another host). */
export function leaseHolder(): string {
  return `${hostname()}/${process.pid}/${newId('')}`;
}

/**
 * Whether a lease no longer binds anyone: past its expiry, or held by a process of this host that has exited (a
 * server restarted after a crash takes its batches back at once instead of waiting out the lease).
 */
function lapsed(terms: LeaseTerms): boolean {
  if (terms.until <= Date.now()) return true;
  const [host, pid] = terms.holder.split('/');
  return host === hostname() && Number(pid) !== process.pid && !alive(Number(pid));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The right to run one batch, in a data folder that several servers share. Leases are files
 * `<dir>/<id>.lease.<epoch>`, each created once (O_EXCL), so of the servers that try to take a batch at the same
 * moment exactly one gets it, on any filesystem with atomic exclusive create. The holder of the highest epoch runs
 * the batch and pushes its expiry forward (`renew`) well before it passes; a server that finds the highest lease
 * expired (its holder died, or stalled), or held by a process of its own host that has exited, takes the next epoch
 * and carries on from the batch's logs.
 * A holder that finds a higher epoch than its own was stalled past its expiry and has lost the batch: it stops
 * before writing another line (`held`, checked before each append), so no line is written by two servers.
 */
export class BatchLease {
  private constructor(
    private readonly dir: string,
    private readonly id: string,
    private readonly holder: string,
    private readonly epoch: number,
    private readonly ttlMs: number,
  ) {}

  /** Takes the batch if nobody holds it, or its lease has expired; undefined when another server holds it. */
  static take(dir: string, id: string, holder: string, ttlMs: number): BatchLease | undefined {
    const top = highestEpoch(dir, id);
    if (top !== undefined) {
      const terms = readTerms(leasePath(dir, id, top));
      // An unreadable lease is being written by its holder right now: alive.
      if (!terms || !lapsed(terms)) return undefined;
    }
    const epoch = (top ?? -1) + 1;
    let fd: number;
    try {
      fd = openSync(leasePath(dir, id, epoch), 'wx');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return undefined;
      throw e;
    }
    try {
      writeSync(fd, JSON.stringify({ holder, until: Date.now() + ttlMs } satisfies LeaseTerms));
    } finally {
      closeSync(fd);
    }
    // Older epochs are history once this one exists.
    for (let old = 0; old < epoch; old++) rmSync(leasePath(dir, id, old), { force: true });
    return new BatchLease(dir, id, holder, epoch, ttlMs);
  }

  /** Whether nobody holds the batch now: no lease, or the newest one expired. */
  static free(dir: string, id: string): boolean {
    const top = highestEpoch(dir, id);
    if (top === undefined) return true;
    const terms = readTerms(leasePath(dir, id, top));
    return terms !== undefined && lapsed(terms);
  }

  /** Whether this lease is still the batch's newest. */
  held(): boolean {
    return highestEpoch(this.dir, this.id) === this.epoch;
  }

  /** Pushes the expiry forward; false when the batch was taken over meanwhile. */
  async renew(): Promise<boolean> {
    if (!this.held()) return false;
    await writeFileAtomic(leasePath(this.dir, this.id, this.epoch), JSON.stringify({ holder: this.holder, until: Date.now() + this.ttlMs } satisfies LeaseTerms));
    return this.held();
  }

  /** Gives the batch up (shutdown: another server may take it at once; finished: nothing is left to take). */
  release(): void {
    if (!this.held()) return;
    for (let epoch = 0; epoch <= this.epoch; epoch++) rmSync(leasePath(this.dir, this.id, epoch), { force: true });
  }
}

function leasePath(dir: string, id: string, epoch: number): string {
  return join(dir, `${id}.lease.${epoch}`);
}

function highestEpoch(dir: string, id: string): number | undefined {
  const prefix = `${id}.lease.`;
  let top: number | undefined;
  for (const name of readdirSync(dir)) {
    if (!name.startsWith(prefix)) continue;
    const epoch = Number(name.slice(prefix.length));
    if (Number.isInteger(epoch) && (top === undefined || epoch > top)) top = epoch;
  }
  return top;
}

function readTerms(path: string): LeaseTerms | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as LeaseTerms;
  } catch {
    return undefined;
  }
}
