/**
 * SCAN cursors. Redis cursors are unsigned integers and clients rely on it (redis-cli `--scan`
 * parses the cursor with strtoull; a cursor of "0" ends the loop). ragkv scans resume after a
 * key, so each page's resume key is stored in this server-wide table under a fresh integer id
 * and the id is the cursor the client sees. The table is bounded: past `scanCursorsMax` the
 * oldest cursor is forgotten, and a forgotten or unknown cursor gets `-ERR invalid cursor`.
 */
import { randomInt } from 'node:crypto';

/** Cursors remembered at once (server-wide); each holds one key of at most `keyBytesMax`. */
export const scanCursorsMax = 16_384;

interface CursorEntry {
  ns: string;
  key: Buffer;
}

/** Bounded map of integer cursor ids to resume keys, oldest forgotten first. */
export class ScanCursors {
  private readonly entries = new Map<number, CursorEntry>();
  private readonly capacity: number;
  // Start at a random point so cursors of an earlier process are unlikely to resolve.
  private nextId = randomInt(1, 2 ** 31);

  constructor(capacity = scanCursorsMax) {
    this.capacity = capacity;
  }

  /** Remembers where a scan of `ns` resumes; returns the cursor to hand out. */
  save(ns: string, key: Buffer): string {
    const id = this.nextId;
    this.nextId = this.nextId >= Number.MAX_SAFE_INTEGER ? 1 : this.nextId + 1;
    // Copy: the key may be a view over a larger buffer we must not keep alive.
    this.entries.set(id, { ns, key: Buffer.from(key) });
    if (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value as number;
      this.entries.delete(oldest);
    }
    return String(id);
  }

  /**
   * The resume key of a cursor, null for "0" (a new scan), undefined if unknown. A cursor
   * stays valid after use so that a client may retry a page.
   */
  load(ns: string, cursor: Buffer): Buffer | null | undefined {
    if (cursor.length === 1 && cursor[0] === 48) return null;
    if (cursor.length === 0 || cursor.length > 16) return undefined;
    let id = 0;
    for (let i = 0; i < cursor.length; i++) {
      const d = cursor[i]! - 48;
      if (d < 0 || d > 9) return undefined;
      id = id * 10 + d;
    }
    const entry = this.entries.get(id);
    if (entry === undefined || entry.ns !== ns) return undefined;
    return entry.key;
  }

  get size(): number {
    return this.entries.size;
  }
}
