/**
 * Cluster members in the simulated world: the real engine, replica service and hint replay
 * over the simulated network and clock, each with its own store and, optionally, a clock
 * offset (a member whose wall clock is ahead or behind the others by some ms). Used by the
 * whole-cluster simulator, the contract suite and the coordinator tests, so they all run
 * the same wiring as a real member (src/node/cluster-member.ts).
 */
import { Random } from '../src/common/random.js';
import type { Clock, Timer } from '../src/common/clock.js';
import { type Limits, versionAheadMsMax } from '../src/common/limits.js';
import { murmur3 } from '../src/cluster/hash.js';
import { keySlot } from '../src/common/slots.js';
import type { PlacementTable } from '../src/cluster/placement/table.js';
import type { NodeId, Transport } from '../src/cluster/transport.js';
import type { Consistency } from '../src/coordinator/api.js';
import { Engine } from '../src/coordinator/engine.js';
import type { ClusterView } from '../src/coordinator/view.js';
import { HintReplayer } from '../src/replica/hints.js';
import { ReplicaService } from '../src/replica/service.js';
import type { ReplicaStore } from '../src/replica/store.js';
import { HybridClock } from '../src/storage/hlc.js';
import type { KvError } from '../src/common/errors.js';
import type { SimNetwork } from './sim/network.js';

/** Who answers, as a member sees it: the simulated network is the oracle of liveness. */
export function simView(ring: PlacementTable, net: SimNetwork, self: NodeId): ClusterView {
  const ids = ring.members.map((m) => m.id);
  return {
    epoch: 0,
    solo: false,
    replicasFor: (ns, key) => ring.replicasFor(ns, key),
    writeTargets: (ns, key) => ring.writeTargets(keySlot(key)),
    walkFrom: (ns, key) => ring.walkFrom(ns, key),
    isAlive: (id) => id === self || (net.isUp(id) && !net.isBlocked(self, id)),
    aliveMembers: () => ids.filter((id) => id === self || (net.isUp(id) && !net.isBlocked(self, id))),
  };
}

/** A clock `offsetMs` away from `base` (timers run on the base clock's time). */
export function offsetClock(base: Clock, offsetMs: number): Clock {
  if (offsetMs === 0) return base;
  return {
    nowMs: () => base.nowMs() + offsetMs,
    setTimer: (delayMs: number, fn: () => void): Timer => base.setTimer(delayMs, fn),
  };
}

export interface SimMemberOptions {
  id: NodeId;
  /** Static placement (when `view` is not given). */
  ring?: PlacementTable;
  net: SimNetwork;
  transport: Transport;
  /** The member's clock (a SimClockScope, so a crash cancels its timers; maybe offset). */
  clock: Clock;
  store: ReplicaStore;
  limits: Limits;
  seed: number;
  /** Highest version timestamp on the member's disk (its HLC starts past it). */
  highTs?: number;
  requestTimeoutMs?: number;
  readRepairChance?: number;
  consistency?: Partial<Consistency>;
  hintIntervalMs?: number;
  /** Refuses writes while this returns an error (the clock check). */
  writeGuard?: () => KvError | null;
  /** What the member sees of the cluster (default: `simView`, liveness from the network). */
  view?: ClusterView;
  /** Refuses reads and scans at the replica (a wiped member not yet restored). */
  replicaReadGuard?: () => KvError | null;
  /** Refuses coordinated reads (no placement table yet). */
  readGuard?: () => KvError | null;
  /** Placement epochs on the replica protocol (see ReplicaService). */
  epochCheck?: (from: NodeId, epoch: number, tag: number, read: boolean) => void;
  /** Whether this member holds the key's slot (see ReplicaService). */
  holds?: (ns: string, key: Buffer) => boolean;
  /** Hint replay: where a key's writes go now, and whether a member is still placed. */
  hintOwnersOf?: (ns: string, key: Buffer) => readonly NodeId[] | null;
  hintIsMember?: (id: NodeId) => boolean;
}

export interface SimMember {
  id: NodeId;
  engine: Engine;
  service: ReplicaService;
  hints: HintReplayer;
  hlc: HybridClock;
}

/** Starts a member: replica service, engine and hint replay, wired as a real member is. */
export function startSimMember(o: SimMemberOptions): SimMember {
  const view = o.view ?? simView(o.ring!, o.net, o.id);
  const hlc = new HybridClock(o.clock, murmur3(Buffer.from(o.id)), versionAheadMsMax(o.limits));
  if (o.highTs) hlc.observeStored(o.highTs);
  const service = new ReplicaService({
    store: o.store,
    clock: o.clock,
    transport: o.transport,
    limits: o.limits,
    hlc,
    ...(o.epochCheck ? { epochCheck: o.epochCheck } : {}),
    ...(o.replicaReadGuard ? { readGuard: o.replicaReadGuard } : {}),
    ...(o.holds ? { holds: o.holds } : {}),
  });
  const engine = new Engine({
    self: o.id,
    view,
    transport: o.transport,
    clock: o.clock,
    random: new Random(o.seed, 100 + murmur3(Buffer.from(o.id)) % 1000),
    store: o.store,
    limits: o.limits,
    hlc,
    requestTimeoutMs: o.requestTimeoutMs ?? 300,
    readRepairChance: o.readRepairChance ?? 0,
    ...(o.consistency ? { consistency: o.consistency } : {}),
    ...(o.writeGuard ? { writeGuard: o.writeGuard } : {}),
    ...(o.readGuard ? { readGuard: o.readGuard } : {}),
  });
  const hints = new HintReplayer(o.store, o.transport, o.clock, {
    intervalMs: o.hintIntervalMs ?? 200,
    batchMax: 64,
    timeoutMs: o.requestTimeoutMs ?? 300,
    isAlive: (id) => view.isAlive(id),
    epoch: () => view.epoch,
    tag: () => view.tag ?? 0,
    ...(o.hintOwnersOf ? { ownersOf: o.hintOwnersOf } : {}),
    ...(o.hintIsMember ? { isMember: o.hintIsMember } : {}),
  });
  hints.start();
  return { id: o.id, engine, service, hints, hlc };
}
