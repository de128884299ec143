/**
 * Gossip waiting to be piggy-backed, as in memberlist's queue.go: each broadcast is about one
 * member, and a newer broadcast about the same member replaces the older one. A message takes
 * the broadcasts sent the fewest times first (newest first among equals), and a broadcast is
 * retired after retransmitMult × ceil(log10(N + 1)) sends, which reaches every member with high
 * probability. The queue is bounded: when full, the broadcast closest to retirement (most
 * sent, then oldest) is dropped and counted.
 */
import assert from 'node:assert/strict';

interface Entry {
  readonly key: string;
  readonly payload: Buffer;
  /** Insertion order; larger is newer. */
  readonly seq: number;
  transmits: number;
}

/** How many times a broadcast is sent in a cluster of `members` members. */
export function retransmitLimit(retransmitMult: number, members: number): number {
  return retransmitMult * Math.ceil(Math.log10(Math.max(1, members) + 1));
}

/** A bounded queue of broadcasts keyed by member id. */
export class BroadcastQueue {
  private readonly entries = new Map<string, Entry>();
  private nextSeq = 0;
  /** Broadcasts dropped because the queue was full. */
  dropped = 0;
  /** Who waits for which broadcast (by key and sequence) to be retired: see finished(). */
  private readonly watchers = new Map<string, { seq: number; done: () => void }>();

  constructor(private readonly capacity: number) {
    assert(Number.isSafeInteger(capacity) && capacity > 0, `'broadcastQueueMax' must be a positive integer, got ${capacity}`);
  }

  /** Broadcasts waiting. */
  get size(): number {
    return this.entries.size;
  }

  /** Queues a broadcast about `key`, replacing any queued one about the same key. Returns its sequence number. */
  enqueue(key: string, payload: Buffer): number {
    const old = this.entries.get(key);
    if (old !== undefined) this.retire(old);
    if (this.entries.size >= this.capacity) {
      let victim: Entry | undefined;
      for (const e of this.entries.values()) {
        if (victim === undefined || e.transmits > victim.transmits || (e.transmits === victim.transmits && e.seq < victim.seq)) victim = e;
      }
      assert(victim !== undefined);
      this.retire(victim);
      this.dropped++;
    }
    const entry: Entry = { key, payload, seq: this.nextSeq++, transmits: 0 };
    this.entries.set(key, entry);
    return entry.seq;
  }

  /**
   * Takes broadcasts for one message: at most `countMax` of them and `bytesMax` bytes (the first
   * is always taken, whatever its size), fewest sends first. Each taken broadcast counts one
   * send and is retired at `limit` sends.
   */
  take(countMax: number, bytesMax: number, limit: number): Buffer[] {
    if (this.entries.size === 0 || countMax <= 0) return [];
    const sorted = [...this.entries.values()].sort((a, b) => a.transmits - b.transmits || b.seq - a.seq);
    const out: Buffer[] = [];
    let bytes = 0;
    for (const e of sorted) {
      if (out.length >= countMax) break;
      if (out.length > 0 && bytes + e.payload.length > bytesMax) continue;
      out.push(e.payload);
      bytes += e.payload.length;
      e.transmits++;
      if (e.transmits >= limit) this.retire(e);
    }
    return out;
  }

  /** Resolves when the broadcast with sequence `seq` about `key` is retired (sent enough, replaced or dropped). */
  finished(key: string, seq: number): Promise<void> {
    const e = this.entries.get(key);
    if (e === undefined || e.seq !== seq) return Promise.resolve();
    return new Promise((resolve) => this.watchers.set(key, { seq, done: resolve }));
  }

  /** Forgets everything queued. */
  clear(): void {
    for (const e of [...this.entries.values()]) this.retire(e);
  }

  private retire(e: Entry): void {
    this.entries.delete(e.key);
    const w = this.watchers.get(e.key);
    if (w !== undefined && w.seq === e.seq) {
      this.watchers.delete(e.key);
      w.done();
    }
  }
}
