/**
 * What a coordinator knows of each member as a replica: requests in flight, a smoothed
 * latency, and the last failure. One tracker serves every read and write of a coordinator;
 * replica choice reads it (least loaded, then fastest). Time comes from the injected clock.
 */
import type { Clock } from '../common/clock.js';
import type { NodeId } from '../cluster/transport.js';

interface PeerStats {
  inFlight: number;
  /** Exponentially weighted moving average of answered requests' latency, ms. */
  latencyMs: number;
  answered: number;
  failed: number;
  lastError: string | null;
  lastErrorAtMs: number;
}

/** Weight of the newest sample in the latency average. */
const ewmaWeight = 0.2;
/** How long a failure puts a replica at the end of the read order (ms). */
const recentFailureMs = 5_000;

export class ReplicaTracker {
  private readonly peers = new Map<NodeId, PeerStats>();
  constructor(private readonly clock: Pick<Clock, 'nowMs'>) {}

  private stats(node: NodeId): PeerStats {
    let s = this.peers.get(node);
    if (!s) this.peers.set(node, (s = { inFlight: 0, latencyMs: 0, answered: 0, failed: 0, lastError: null, lastErrorAtMs: 0 }));
    return s;
  }

  /** A request to `node` starts; returns its start time for `end`. */
  begin(node: NodeId): number {
    this.stats(node).inFlight++;
    return this.clock.nowMs();
  }

  /** The request begun at `startMs` ended: answered (error null) or failed. */
  end(node: NodeId, startMs: number, error: string | null): void {
    const s = this.stats(node);
    s.inFlight--;
    if (error === null) {
      const ms = Math.max(0, this.clock.nowMs() - startMs);
      s.latencyMs = s.answered === 0 ? ms : s.latencyMs + ewmaWeight * (ms - s.latencyMs);
      s.answered++;
    } else {
      s.failed++;
      s.lastError = error;
      s.lastErrorAtMs = this.clock.nowMs();
    }
  }

  inFlight(node: NodeId): number {
    return this.peers.get(node)?.inFlight ?? 0;
  }

  /**
   * Orders replicas for a read: `self` first when it is one (its answer needs no network),
   * then the others by requests in flight, then by latency; ties keep placement order.
   */
  order(replicas: readonly NodeId[], self: NodeId): NodeId[] {
    const others = replicas.filter((r) => r !== self);
    if (others.length > 1) {
      const now = this.clock.nowMs();
      const score = (n: NodeId) => {
        const s = this.peers.get(n);
        if (!s) return 0;
        // A replica that failed in the last few seconds goes last: it may fail fast again.
        const failedLately = s.lastError !== null && now - s.lastErrorAtMs < recentFailureMs ? 1_000_000 : 0;
        return failedLately + s.inFlight * 1000 + s.latencyMs;
      };
      others.sort((a, b) => score(a) - score(b));
    }
    return replicas.includes(self) ? [self, ...others] : others;
  }

  /** Per-member figures for /cluster. */
  describe(): { [node: string]: { inFlight: number; latencyMs: number; answered: number; failed: number; lastError: string | null } } {
    const out: ReturnType<ReplicaTracker['describe']> = {};
    for (const [n, s] of this.peers) {
      out[n] = { inFlight: s.inFlight, latencyMs: Number(s.latencyMs.toFixed(2)), answered: s.answered, failed: s.failed, lastError: s.lastError };
    }
    return out;
  }
}
