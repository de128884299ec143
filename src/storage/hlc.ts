import { type Version, logicalPerMs, tsMs, versionMs } from './version.js';
import { type Record, newestTs } from './record.js';

/** Wall time source; injected so tests and the simulator control time. */
export interface Clock {
  nowMs(): number;
}

export { systemClock } from '../common/clock.js';

/**
 * Hybrid logical clock: versions are unique per node, strictly increasing, and close to
 * wall time. `observe` moves it past versions seen from elsewhere (or persisted before a
 * restart), so a node whose wall clock went backwards still stamps newer versions.
 *
 * A version further ahead of this node's wall clock than `maxAheadMs` is not observed (it
 * is counted in `refused`): a peer with a clock hours ahead must not drag every member's
 * versions into the future, where every later write would lose to them. Versions on disk
 * are observed without that bound (`observeStored`), so a restart never stamps older.
 */
export class HybridClock {
  private lastTs = 0;
  /** Versions not observed because they were too far ahead. */
  refused = 0;
  constructor(
    private readonly clock: Clock,
    readonly nodeId: number,
    readonly maxAheadMs = Number.POSITIVE_INFINITY,
  ) {}

  now(): Version {
    const wall = this.clock.nowMs() * logicalPerMs;
    this.lastTs = wall > this.lastTs ? wall : this.lastTs + 1;
    return { ts: this.lastTs, node: this.nodeId };
  }

  /**
   * What "ahead" is measured from: the wall clock, or the newest version this node had on its
   * disk when it started, whichever is later (after a restart with the clock set back, the
   * node's own earlier versions are not from the future). It does not move with versions
   * observed since, so a peer cannot ratchet it forward.
   */
  referenceMs(): number {
    const now = this.clock.nowMs();
    return this.storedMs > now ? this.storedMs : now;
  }

  /** Moves past `v` unless it is further ahead of `referenceMs()` than `maxAheadMs`; false then (counted). */
  observe(v: Version): boolean {
    if (v.ts <= this.lastTs) return true;
    if (versionMs(v) > this.referenceMs() + this.maxAheadMs) {
      this.refused++;
      return false;
    }
    this.lastTs = v.ts;
    return true;
  }

  /** Moves past a timestamp read from this node's own disk (no bound: it was ours). */
  observeStored(ts: number): void {
    if (ts > this.lastTs) this.lastTs = ts;
    const ms = tsMs(ts);
    if (ms > this.storedMs) this.storedMs = ms;
  }

  /** How far the newest version on this node's disk at start is ahead of its clock now (ms; negative: behind). */
  storedAheadMs(): number {
    return this.storedMs - this.clock.nowMs();
  }

  /** Wall ms of the newest version on this node's disk at start (see referenceMs). */
  private storedMs = 0;

  /** Observes every version of a record or delta. */
  observeRecord(r: Record): void {
    if (r.tomb) this.observe(r.tomb);
    if (r.base) this.observe(r.base.version);
    if (r.expiry) this.observe(r.expiry.version);
    const last = r.appends[r.appends.length - 1];
    if (last) this.observe(last.version);
    for (const f of r.fields.values()) this.observe(f.version);
  }

  /** Highest timestamp issued or observed. */
  get highTs(): number {
    return this.lastTs;
  }
}

/** Wall ms of the newest version in a record or delta (0 when it holds none). */
export function newestVersionMs(r: Record): number {
  return tsMs(newestTs(r));
}
