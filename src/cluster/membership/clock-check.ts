/**
 * Clock offsets between members, and whether this member's clock is the one that is off.
 *
 * Membership acks and push-pull replies carry the sender's wall time. A prober that sent at
 * t0 and heard back at t1 (its own clock) estimates the peer's offset as
 * `peerWall - (t0 + t1) / 2`, good to within half the round trip. The verdict is pure:
 * this member is *skewed* when at least as many of the recently measured peers are beyond
 * `maxOffsetMs` from it (by more than their measurement error) as agree with it, counting
 * itself as agreeing, and the verdict cannot change with the peers not measured yet. So in
 * three members the one with the bad clock stops, not the two with good ones; in two
 * members that disagree, both stop (neither can tell who is right). A member that cannot
 * tell yet (no peer measured, or only the bad one) is `unchecked`.
 */
import type { NodeId } from '../transport.js';

export interface ClockSample {
  /** Peer's clock minus ours, ms (positive: the peer is ahead). */
  offsetMs: number;
  /** Round trip of the measurement, ms: the offset is good to within half of it. */
  rttMs: number;
  /** When it was taken (our clock). */
  atMs: number;
}

export interface ClockVerdict {
  state: 'ok' | 'skewed' | 'unchecked';
  /** Median of the measured peers' offsets (ms; positive: peers are ahead of this member). */
  offsetMs: number;
  /** Peers measured recently, and how many of them are beyond the bound. */
  measured: number;
  far: number;
}

/** Samples older than this are not used (a peer measured long ago may have moved). */
export const clockSampleTtlMs = 60_000;

export class ClockOffsets {
  private readonly samples = new Map<NodeId, ClockSample>();
  private waiters: (() => void)[] = [];

  /** Resolves at the next measurement. */
  nextSample(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Records a measurement: a request sent at `sentAtMs`, answered at `receivedAtMs` carrying the peer's `peerWallMs`. */
  record(peer: NodeId, sentAtMs: number, receivedAtMs: number, peerWallMs: number): void {
    if (!Number.isFinite(peerWallMs) || peerWallMs <= 0) return;
    const rttMs = Math.max(0, receivedAtMs - sentAtMs);
    const sample = { offsetMs: peerWallMs - (sentAtMs + receivedAtMs) / 2, rttMs, atMs: receivedAtMs };
    const had = this.samples.get(peer);
    // A fresher sample wins, unless the kept one is recent and much more precise.
    // (Ages are taken both ways: after a clock step back, old samples look to be from the future.)
    if (!(had && Math.abs(receivedAtMs - had.atMs) < 5_000 && had.rttMs * 4 < rttMs)) this.samples.set(peer, sample);
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  forget(peer: NodeId): void {
    this.samples.delete(peer);
  }

  /** The verdict over the peers `live` says count now, from samples newer than `clockSampleTtlMs`. */
  verdict(nowMs: number, maxOffsetMs: number, live: (peer: NodeId) => boolean, peersKnown: number): ClockVerdict {
    const offsets: number[] = [];
    let far = 0;
    for (const [peer, s] of this.samples) {
      if (!live(peer) || Math.abs(nowMs - s.atMs) > clockSampleTtlMs) continue;
      offsets.push(s.offsetMs);
      if (Math.abs(s.offsetMs) - s.rttMs / 2 > maxOffsetMs) far++;
    }
    offsets.sort((a, b) => a - b);
    const offsetMs = offsets.length === 0 ? 0 : offsets[offsets.length >> 1]!;
    const measured = offsets.length;
    if (measured === 0) return { state: peersKnown > 0 ? 'unchecked' : 'ok', offsetMs, measured, far };
    const agree = 1 + measured - far;
    if (far === 0 || far < agree) return { state: 'ok', offsetMs, measured, far };
    // The far ones outnumber the near: conclusive when every known peer was measured, or
    // when they are a majority of the whole cluster whatever the rest say; else wait to
    // hear from more (a healthy member that has measured only the bad one so far).
    const conclusive = measured >= peersKnown || far > (peersKnown + 1) / 2;
    return { state: conclusive ? 'skewed' : 'unchecked', offsetMs, measured, far };
  }

  /** Per peer, for /cluster. */
  describe(): { [peer: string]: ClockSample } {
    return Object.fromEntries(this.samples);
  }
}
