/**
 * Membership configuration and bounds. Timing defaults follow memberlist's LAN profile,
 * tuned so that a crashed member is declared dead in under 5 s: some member probes it within
 * a few intervals (each live member probes one random-order member per interval, so the
 * chance that nobody has probed it after k intervals is about e^-k), the failed probe takes
 * one interval, then the suspicion timeout runs: 3 s with no confirmation, down to 1.5 s as
 * other members confirm (more members: more confirmations, and a faster first probe).
 */
import { bounds } from '../../common/limits.js';

/** Bounds checked where membership data enters (codec) or is queued (they live in common/limits.ts). */
export const membershipLimits = Object.freeze({
  memberIdBytesMax: bounds.memberIdBytesMax,
  addressBytesMax: bounds.addressBytesMax,
  zoneBytesMax: bounds.zoneBytesMax,
  metaBytesMax: bounds.metaBytesMax,
  membersMax: bounds.membersMax,
  gossipUpdatesMax: bounds.gossipUpdatesMax,
});

/** Timing and fan-out of SWIM; every field has a default. */
export interface SwimConfig {
  /** How often a member probes another one (ms). */
  probeIntervalMs: number;
  /** How long a direct ping waits for its ack (ms); the rest of the interval goes to indirect probes. */
  probeTimeoutMs: number;
  /** Members asked to probe on our behalf when a direct ping fails. */
  indirectProbes: number;
  /** Suspicion timeout with enough independent confirmations (ms). */
  suspicionTimeoutMs: number;
  /** Suspicion timeout with no confirmation (ms); shrinks toward suspicionTimeoutMs as others confirm. */
  suspicionMaxTimeoutMs: number;
  /** How often a member exchanges its full state with a random other member (ms). */
  pushPullIntervalMs: number;
  /** Deadline of one push-pull or join exchange (ms). */
  pushPullTimeoutMs: number;
  /** How often queued gossip is also sent on its own to a few members (ms). */
  gossipIntervalMs: number;
  /** Members the gossip tick sends to. */
  gossipNodes: number;
  /** A broadcast is sent retransmitMult × ceil(log10(N + 1)) times. */
  retransmitMult: number;
  /** Gossip updates piggy-backed on one message at most. */
  gossipMax: number;
  /** Bytes of gossip piggy-backed on one message at most (one update is always allowed). */
  gossipBytesMax: number;
  /** Broadcasts waiting to be gossiped; past this the most-sent one is dropped and counted. */
  broadcastQueueMax: number;
  /** How long a dead member still receives gossip and push-pull, so that it can refute (ms). */
  gossipToTheDeadMs: number;
  /** How long a dead or left member is remembered before it is forgotten (ms). */
  deadReclaimMs: number;
  /** leave() waits at most this long for its broadcast to go out (ms). */
  leaveTimeoutMs: number;
}

/** Defaults (LAN). */
export const defaultSwimConfig: Readonly<SwimConfig> = Object.freeze({
  probeIntervalMs: 500,
  probeTimeoutMs: 200,
  indirectProbes: 3,
  suspicionTimeoutMs: 1500,
  suspicionMaxTimeoutMs: 3000,
  pushPullIntervalMs: 10_000,
  pushPullTimeoutMs: 1000,
  gossipIntervalMs: 200,
  gossipNodes: 3,
  retransmitMult: 4,
  gossipMax: 32,
  gossipBytesMax: 8 * 1024,
  broadcastQueueMax: 4096,
  gossipToTheDeadMs: 30_000,
  // A day: the ring keeps a stopped member's ranges while it is remembered (membership-view.ts).
  deadReclaimMs: 24 * 60 * 60_000,
  leaveTimeoutMs: 2000,
});

/** Merges overrides onto the defaults and checks each field and how they relate. */
export function makeSwimConfig(overrides: Partial<SwimConfig> = {}): SwimConfig {
  const c: SwimConfig = { ...defaultSwimConfig, ...overrides };
  for (const [name, value] of Object.entries(c)) {
    const min = name === 'indirectProbes' ? 0 : 1;
    if (!Number.isSafeInteger(value) || value < min) throw new RangeError(`'${name}' must be an integer >= ${min}, got ${String(value)}`);
  }
  if (c.probeTimeoutMs >= c.probeIntervalMs) throw new RangeError(`'probeTimeoutMs' (${c.probeTimeoutMs}) must be less than 'probeIntervalMs' (${c.probeIntervalMs})`);
  if (c.suspicionMaxTimeoutMs < c.suspicionTimeoutMs) throw new RangeError(`'suspicionMaxTimeoutMs' must be at least 'suspicionTimeoutMs'`);
  return c;
}
