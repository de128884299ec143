/**
 * Whether the filesystem of the data directory has room for writes. The disk is *full*
 * after a commit failed for lack of space, or while a check finds fewer free bytes than
 * `diskFreeBytesMin`. While it is full, writes are refused at once with DISK_FULL
 * (retryable) instead of being tried, so a small write that would still fit in LMDB's free
 * pages does not make the state flap; reads go on. It stops being full when a check finds
 * at least `diskFreeBytesMin` free and more than when it became full: space came back (a
 * file deleted, the volume grown). Checks are cheap (one statfs); the owner calls `check`
 * from a timer.
 */
import { statfsSync } from 'node:fs';
import { KvError } from '../common/errors.js';

/** What /ready, metrics and logs show. */
export interface DiskState {
  full: boolean;
  /** Why writes are refused, e.g. `a commit failed with ENOSPC, 0 bytes free`; '' when not full. */
  reason: string;
  /** Free bytes found by the last check; NaN before the first one or when it failed. */
  freeBytes: number;
  /** Writes refused or failed for lack of space since the store was opened. */
  refusedWrites: number;
}

/** Bytes an unprivileged process may still write on the filesystem that holds `path`. */
export function statfsFreeBytes(path: string): number {
  const s = statfsSync(path);
  return s.bavail * s.bsize;
}

/** errno values that mean "no space" whatever the free bytes say (quota: statfs does not see it). */
const noSpaceErrnos: ReadonlyMap<number, string> = new Map([
  [28, 'ENOSPC'],
  [122, 'EDQUOT'],
]);
const EIO = 5;
/**
 * LMDB reports a short write (the filesystem ran out part way through a page run) as EIO.
 * An EIO counts as "no space" only when at most this many bytes are left free: a real I/O
 * error on a disk with room stays an I/O error.
 */
const shortWriteFreeBytesMax = 1024 * 1024;

export class DiskSpace {
  private full = false;
  private reason = '';
  private freeBytes = Number.NaN;
  private freeBytesWhenFull = 0;
  private refusedWrites = 0;
  private readonly listeners: ((state: DiskState) => void)[] = [];

  constructor(
    private readonly path: string,
    private readonly freeBytesMin: number,
    private readonly freeBytesOf: (path: string) => number = statfsFreeBytes,
  ) {
    if (!Number.isSafeInteger(freeBytesMin) || freeBytesMin <= 0) {
      throw new RangeError(`'diskFreeBytesMin' must be a positive integer, got ${freeBytesMin}`);
    }
  }

  /** True while writes are refused for lack of space. */
  get isFull(): boolean {
    return this.full;
  }

  state(): DiskState {
    return { full: this.full, reason: this.reason, freeBytes: this.freeBytes, refusedWrites: this.refusedWrites };
  }

  /** Calls `listener` on every change between full and not full (not on each refused write). */
  onChange(listener: (state: DiskState) => void): void {
    this.listeners.push(listener);
  }

  /** Measures the free bytes: the disk becomes full under the minimum, or not full once space came back. */
  check(): void {
    const free = this.measure();
    if (Number.isNaN(free)) return;
    if (!this.full && free < this.freeBytesMin) {
      this.becomeFull(`${free} bytes free, under limit 'diskFreeBytesMin' (${this.freeBytesMin})`, free);
    } else if (this.full && free >= this.freeBytesMin && free > this.freeBytesWhenFull) {
      this.full = false;
      this.reason = '';
      this.notify();
    }
  }

  /**
   * A commit failed with error code `code` (an errno, or an LMDB code): returns true, and the
   * disk is full, when the failure was for lack of space.
   */
  commitFailed(code: unknown): boolean {
    const free = this.measure();
    const name = typeof code === 'number' ? noSpaceErrnos.get(code) : undefined;
    const shortWrite = code === EIO && !(free > shortWriteFreeBytesMax);
    if (name === undefined && !shortWrite) return false;
    const why = shortWrite ? 'EIO (a short write)' : name;
    if (!this.full) this.becomeFull(`a commit failed with ${why}, ${Number.isNaN(free) ? 'unknown' : free} bytes free`, free);
    return true;
  }

  /** The error for one write refused for lack of space (counted). */
  refusal(): KvError {
    this.refusedWrites++;
    return new KvError(
      'DISK_FULL',
      `no space left on the data disk (${this.reason || 'a write failed for lack of space'}); writes are refused until space is freed, reads are served`,
    );
  }

  private measure(): number {
    try {
      this.freeBytes = this.freeBytesOf(this.path);
    } catch {
      this.freeBytes = Number.NaN; // the directory went away or statfs failed: the state stays as it was
    }
    return this.freeBytes;
  }

  private becomeFull(reason: string, free: number): void {
    this.full = true;
    this.reason = reason;
    this.freeBytesWhenFull = Number.isNaN(free) ? 0 : free;
    this.notify();
  }

  private notify(): void {
    const state = this.state();
    for (const listener of this.listeners) listener(state);
  }
}
