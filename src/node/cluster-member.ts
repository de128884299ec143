/**
 * Cluster mode of a node: TCP transport, SWIM membership, the replica service, hint replay
 * and the cluster coordinator over this node's LMDB store. Built by node.ts when a node id
 * is configured; everything here is wiring of the pure cores to real time and sockets.
 */
import { randomBytes } from 'node:crypto';
import { systemClock, type Timer } from '../common/clock.js';
import { bounds, type Limits } from '../common/limits.js';
import { KvError } from '../common/errors.js';
import { Random } from '../common/random.js';
import { createTcpTransport, type TcpTransport } from '../cluster/tcp-transport.js';
import { Swim } from '../cluster/membership/index.js';
import { Placement } from '../cluster/placement/service.js';
import { slotLoads } from '../cluster/placement/planner.js';
import { PlacementView } from '../cluster/placement/view.js';
import { keySlot } from '../common/slots.js';
import { ClockGuard } from '../cluster/clock-guard.js';
import { Engine } from '../coordinator/engine.js';
import { HintReplayer } from '../replica/hints.js';
import { AntiEntropy } from '../replica/anti-entropy.js';
import type { LmdbReplicaStore } from '../replica/lmdb-store.js';
import { ReplicaService } from '../replica/service.js';
import type { HybridClock } from '../storage/hlc.js';
import type { Logger } from './logger.js';
import type { ClusterStats } from '../server/admin/metrics.js';
import { type ClusterConfig, readClusterSecret } from './config.js';
import { resolveSeeds } from './seeds.js';
import { dataIdOf, placementFiles } from './placement-file.js';

export interface ClusterMember {
  kv: Engine;
  /** Why this member is out of service now (its clock is known to be off), or null. */
  clockRefusal(): string | null;
  /** Clock figures for metrics: median offset of peers (ms, + = peers ahead), skewed or not, versions refused. */
  clockStats(): { offsetMs: number; skewed: boolean; versionsRefused: number };
  peerPort: number;
  /** JSON for the admin port's /cluster. */
  describe(): unknown;
  /** Figures for /metrics. */
  stats(): ClusterStats;
  /** The placement service (CLUSTER commands, operations). */
  placement: Placement;
  /** Members' client (RESP) addresses as they publish them. */
  clientAddresses(): Map<string, string>;
  /** Publishes this member's RESP address (known once its server is bound). */
  setClientAddress(address: string): void;
  /** Resolves once this member has a placement table (the cluster has formed), or after `timeoutMs`; true if formed. */
  formed(timeoutMs: number): Promise<boolean>;
  /** Leaves the cluster: streams out, then resolves once the cluster no longer lists this member. */
  leave(): Promise<void>;
  /** Removes a dead member; resolves once its slots are re-replicated. */
  remove(id: string): Promise<void>;
  close(): Promise<void>;
}

const joinRetryMs = 1000;

export async function startClusterMember(options: {
  config: ClusterConfig;
  host: string;
  limits: Limits;
  store: LmdbReplicaStore;
  /** This node's hybrid clock (started above the versions on disk), shared by coordinator and replica. */
  hlc: HybridClock;
  logger: Logger;
  dataDir: string;
}): Promise<ClusterMember> {
  const { config, limits, logger } = options;
  const random = new Random(randomBytes(4).readUInt32BE(0));
  const secret = config.clusterSecretFile ? readClusterSecret(config.clusterSecretFile) : null;
  if (!secret) {
    logger.warn(
      { host: options.host },
      'no cluster secret (--cluster-secret-file): this member accepts and dials internode connections from loopback addresses only',
    );
  }
  const transport: TcpTransport = await createTcpTransport({
    self: config.nodeId,
    cluster: config.clusterName,
    secret,
    host: options.host,
    port: config.peerPort,
    limits,
    clock: systemClock,
    random,
    logger,
  });
  const address = `${config.advertiseHost || options.host}:${transport.port}`;
  const swim = new Swim({
    self: { id: config.nodeId, address, zone: config.zone },
    transport,
    clock: systemClock,
    random,
    seeds: () => resolveSeeds(config.seeds),
  });
  const replicaStore = options.store;
  const dataId = dataIdOf(options.dataDir);
  // Members publish their placement epoch, data identity and client address in their gossip
  // metadata: a member that sees a newer epoch fetches that table.
  let clientAddress = '';
  const publish = () => swim.updateMeta(Buffer.from(JSON.stringify({ e: placement.epoch, d: placement.table?.driver ?? '', i: dataId, r: clientAddress })));
  const metaOf = (meta: Buffer): { e: number; d: string; i: number; r: string } | null => {
    try {
      const m = JSON.parse(meta.toString('utf8')) as { e?: unknown; d?: unknown; i?: unknown; r?: unknown };
      return { e: Number(m.e) || 0, d: String(m.d ?? ''), i: Number(m.i) || 0, r: String(m.r ?? '') };
    } catch {
      return null;
    }
  };
  const isAlive = (id: string) => id === config.nodeId || swim.member(id)?.status === 'alive';
  const placement = new Placement({
    self: config.nodeId,
    ...(config.zone ? { zone: config.zone } : {}),
    dataId,
    replicas: config.replicas,
    transport,
    clock: systemClock,
    store: replicaStore,
    persistence: placementFiles(options.dataDir),
    isAlive,
    knownMembers: () =>
      swim.members().map((m) => ({ id: m.id, zone: m.zone, alive: m.id === config.nodeId || m.status === 'alive', dataId: m.id === config.nodeId ? dataId : metaOf(m.meta)?.i ?? 0 })),
    expectMembers: config.expectMembers,
    mayBootstrap: () => seedAnswered || config.seeds.length === 0,
    streamBytesPerSec: config.streamBytesPerSec,
    observe: (r) => options.hlc.observeRecord(r),
    dropped: (ns, slot) => antiEntropy.changed(ns, slot),
    log: (fields, message) => logger.info(fields, message),
  });
  const view = new PlacementView(placement, { isAlive, known: () => swim.members().map((m) => m.id) }, config.nodeId);
  placement.on(() => publish());
  swim.on('change', (e) => {
    const m = metaOf(e.member.meta);
    if (m && e.member.status === 'alive') placement.noteEpoch(e.member.id, m.e, m.d);
  });
  // A member coordinates only once the cluster has a placement table it knows.
  const notJoined = (): KvError =>
    new KvError(
      'UNAVAILABLE',
      config.seeds.length && !seedAnswered
        ? `this member has not joined its cluster yet (no seed of ${config.seeds.join(',')} has answered): retry, or use another member`
        : `the cluster has not formed yet (no placement table; it waits for ${config.expectMembers} members, --expect-members): retry`,
    );
  const noTable = (): KvError | null => (placement.table ? null : notJoined());
  const clockGuard = new ClockGuard(swim, systemClock, limits.maxClockOffsetMs, (v) => {
    const fields = { offsetMs: Math.round(v.offsetMs), measured: v.measured, far: v.far, maxClockOffsetMs: limits.maxClockOffsetMs };
    if (v.state === 'skewed') logger.error(fields, "this member's clock is too far from its peers': it stops coordinating writes");
    else if (v.state === 'unchecked') logger.info(fields, "clock not yet compared with peers': writes wait for the first measurement");
    else logger.info(fields, 'clock agrees with peers: coordinating writes');
  });
  // Data written while this member's clock ran ahead (its versions are past its clock now)
  // would shadow newer writes: the member is out of service until its clock reaches them.
  const dataAhead = (): KvError | null => {
    const ms = options.hlc.storedAheadMs();
    return ms > limits.maxClockOffsetMs
      ? new KvError('CLOCK_SKEW', `this member's data holds versions ${ms} ms ahead of its clock (written while its clock ran ahead): it serves again once its clock reaches them`)
      : null;
  };
  // Only a clock known to be off takes the member out of service; "not compared yet" makes writes wait.
  const skewed = () => dataAhead() ?? clockGuard.skewedRefusal();
  const service = new ReplicaService({
    store: replicaStore,
    clock: systemClock,
    transport,
    limits,
    hlc: options.hlc,
    guard: skewed,
    epochCheck: (from, epoch, tag, read) => placement.checkEpoch(from, epoch, tag, read),
    holds: (_ns, key) => placement.table?.writeTargets(keySlot(key)).all.includes(config.nodeId) ?? true,
    readGuard: () => (placement.awaitingRestore ? new KvError('UNAVAILABLE', 'this member lost its data and is being restored: read another replica') : null),
  });
  const kv = new Engine({
    self: config.nodeId,
    view,
    transport,
    clock: systemClock,
    random,
    store: replicaStore,
    limits,
    hlc: options.hlc,
    consistency: { read: config.readConsistency, write: config.writeConsistency },
    writeGuard: () => dataAhead() ?? noTable() ?? clockGuard.admit(),
    readGuard: () => skewed() ?? noTable(),
  });
  const hints = new HintReplayer(replicaStore, transport, systemClock, {
    intervalMs: bounds.hintReplayIntervalMs,
    batchMax: bounds.hintReplayBatchMax,
    timeoutMs: bounds.hintReplayTimeoutMs,
    isAlive: (id) => view.isAlive(id),
    epoch: () => placement.epoch,
    tag: () => placement.tag,
    ownersOf: (_ns, key) => placement.table?.writeTargets(keySlot(key)).all ?? null,
    isMember: (id) => placement.table?.isMember(id) ?? true,
  });
  const antiEntropy = new AntiEntropy({
    self: config.nodeId,
    transport,
    clock: systemClock,
    store: replicaStore,
    table: () => placement.table,
    isAlive,
    intervalMs: bounds.antiEntropyIntervalMs,
    bucketsPerRound: bounds.antiEntropyBucketsPerRound,
    refreshSlotsPerRound: bounds.antiEntropyRefreshSlotsPerRound,
    keysPerRound: bounds.antiEntropyKeysPerRound,
    hashKeysPerRound: bounds.antiEntropyHashKeysPerRound,
    observe: (r) => options.hlc.observeRecord(r),
    log: (fields, message) => logger.info(fields, message),
  });
  replicaStore.onChange = (ns, key) => antiEntropy.changed(ns, keySlot(key));
  swim.on('change', (e) => logger.info({ member: e.member.id, status: e.member.status, event: e.type }, 'membership'));
  swim.start();
  hints.start();
  /**
   * Proposes the change and waits until the table no longer lists the member. A proposal that
   * loses to another one made at the same time, or meets a change in flight, is made again
   * once the table is stable; an operator's mistake (unknown member, a live one to remove,
   * the last member) is thrown at once.
   */
  const proposeUntil = async (kind: 'leave' | 'remove', id: string): Promise<void> => {
    if (placement.table && !placement.table.isMember(id)) throw new KvError('NOT_FOUND', `'${id}' is not a member of the placement table`);
    let last = 0;
    for (;;) {
      const t = placement.table;
      if (!t) throw new KvError('UNAVAILABLE', 'the cluster has not formed yet: retry');
      if (!t.isMember(id)) return;
      const c = t.change;
      const ours = c !== null && c.member === id && c.kind === kind;
      // Removing a member whose join is in flight gives the join up (Placement.propose).
      const abortsJoin = kind === 'remove' && c?.kind === 'join' && c.member === id;
      if (!ours && (!c || abortsJoin) && systemClock.nowMs() - last > 2000) {
        last = systemClock.nowMs();
        try {
          await placement.propose(kind, id);
        } catch (err) {
          if (!(err instanceof KvError) || err.code !== 'UNAVAILABLE') throw err;
        }
      }
      if (closed) throw new KvError('UNAVAILABLE', `this member is stopping: the ${kind} of '${id}' is not finished`);
      await new Promise<void>((resolve) => systemClock.setTimer(100, resolve));
    }
  };
  const waitFor = (done: () => boolean, what: string): Promise<void> =>
    new Promise((resolve, reject) => {
      const check = () => {
        if (done()) return resolve();
        if (closed) return reject(new KvError('UNAVAILABLE', `this member is stopping: ${what} not finished`));
        systemClock.setTimer(100, check);
      };
      check();
    });

  // Join through the seeds, and keep trying while this node knows no other member
  // (seeds that start at the same moment miss each other's first attempt).
  let joinTimer: Timer | null = null;
  let closed = false;
  let seedAnswered = false;
  const tryJoin = async () => {
    if (closed) return;
    // Seeds that are only this member's own address: it starts a cluster of its own.
    if (!seedAnswered) {
      const seeds = await resolveSeeds(config.seeds).catch(() => []);
      if (seeds.length > 0 && seeds.every((a) => a === address)) seedAnswered = true;
    }
    const answered = config.seeds.length ? await swim.join().catch(() => 0) : 0;
    if (closed) return;
    if (answered > 0) {
      seedAnswered = true;
      logger.info({ answered }, 'joined the cluster');
    }
    if (config.seeds.length && swim.members().filter((m) => m.status !== 'left').length < 2) {
      joinTimer = systemClock.setTimer(joinRetryMs, () => void tryJoin());
    }
  };
  await tryJoin();
  placement.start();
  antiEntropy.start();
  // A full hint store is a log line (and the ragkv_hints_dropped_total metric).
  let hintsDroppedLogged = 0;
  const hintWatch = setInterval(() => {
    const dropped = kv.counters.hintsDropped;
    if (dropped > hintsDroppedLogged) {
      logger.warn({ dropped: dropped - hintsDroppedLogged, total: dropped, hintsMax: limits.hintsMax }, 'hint store full: hints not kept; anti-entropy will repair those replicas');
      hintsDroppedLogged = dropped;
    }
  }, 5000);
  hintWatch.unref();
  publish();
  // This member's own part in placement: join when the table does not list it, start a restore
  // when the table knows another disk of it; one change at a time, so these retry.
  let leaving = false;
  let proposing = false;
  let ownTimer: Timer | null = null;
  const own = () => {
    if (closed) return;
    ownTimer = systemClock.setTimer(500, () => {
      const t = placement.table;
      if (t && !t.change && !proposing && !leaving) {
        const kind = !t.isMember(config.nodeId) ? 'join' : placement.awaitingRestore ? 'restore' : null;
        if (kind) {
          proposing = true;
          logger.info({ kind, epoch: t.epoch }, kind === 'join' ? 'joining the cluster: streaming this member\'s slots' : 'this member lost its data: restoring its slots from the other replicas');
          placement
            .propose(kind, config.nodeId)
            .catch((err: unknown) => logger.info({ err: String(err) }, 'membership change not started; retrying'))
            .finally(() => (proposing = false));
        }
      }
      own();
    });
  };
  own();

  return {
    kv,
    clockRefusal: () => skewed()?.message ?? null,
    clockStats: () => {
      const v = clockGuard.current();
      return { offsetMs: v.offsetMs, skewed: v.state === 'skewed', versionsRefused: service.refusedAhead };
    },
    peerPort: transport.port,
    describe: () => {
      const t = placement.table;
      const loads = t ? slotLoads(t.owners) : new Map<string, { replicas: number; primaries: number }>();
      const listed = new Set(t?.members.map((m) => m.id) ?? []);
      return {
        self: config.nodeId,
        cluster: config.clusterName,
        replicas: config.replicas,
        consistency: { read: config.readConsistency, write: config.writeConsistency },
        placement: t ? { ...t.summary(), stream: placement.progress(), counters: placement.counters, awaitingRestore: placement.awaitingRestore } : null,
        antiEntropy: antiEntropy.counters,
        members: swim.members().map((m) => ({
          id: m.id,
          address: m.address,
          client: m.id === config.nodeId ? clientAddress : metaOf(m.meta)?.r ?? '',
          zone: m.zone,
          status: m.status,
          incarnation: m.incarnation,
          inTable: listed.has(m.id),
          slots: loads.get(m.id)?.replicas ?? 0,
          primarySlots: loads.get(m.id)?.primaries ?? 0,
        })),
        hints: { pending: replicaStore.hintCount(), delivered: hints.delivered },
        coordinator: kv.counters,
        transport: transport.stats(),
        membership: { ...swim.stats },
        clock: { ...clockGuard.current(), maxClockOffsetMs: limits.maxClockOffsetMs, peers: swim.clocks.describe(), versionsRefused: service.refusedAhead },
        replicaLoad: kv.tracker.describe(),
      };
    },
    placement,
    stats: () => {
      const t = placement.table;
      const p = placement.progress();
      const c = placement.counters;
      const ae = antiEntropy.counters;
      return {
        epoch: placement.epoch,
        changeInFlight: !!t?.change,
        movingSlotReplicas: t?.movingSlots() ?? 0,
        streamedKeys: c.streamedKeys,
        streamedBytes: c.streamedBytes,
        streamSourcesPending: p.sources - p.sourcesDone,
        droppedKeys: c.droppedKeys,
        staleRefusals: c.staleRefusals,
        antiEntropyRounds: ae.rounds,
        antiEntropyKeysRepaired: ae.keysPulled + ae.keysPushed,
        antiEntropySlotsDiffering: ae.slotsDiffering,
        hintsPending: replicaStore.hintCount(),
        hintsDropped: kv.counters.hintsDropped,
      };
    },
    formed: (timeoutMs) => {
      const until = systemClock.nowMs() + timeoutMs;
      return waitFor(() => placement.table !== null || systemClock.nowMs() > until, 'forming').then(
        () => placement.table !== null,
        () => false,
      );
    },
    clientAddresses: () => {
      const out = new Map<string, string>();
      for (const m of swim.members()) {
        const r = m.id === config.nodeId ? clientAddress : metaOf(m.meta)?.r;
        if (r) out.set(m.id, r);
      }
      return out;
    },
    setClientAddress: (address) => {
      clientAddress = address;
      publish();
    },
    leave: async () => {
      const t = placement.table;
      if (!t || !t.isMember(config.nodeId)) throw new KvError('INVALID_ARGUMENT', 'this member is not in the placement table: nothing to leave');
      leaving = true;
      try {
        await proposeUntil('leave', config.nodeId);
      } catch (err) {
        leaving = false;
        throw err;
      }
    },
    remove: (id) => proposeUntil('remove', id),
    close: async () => {
      closed = true;
      joinTimer?.cancel();
      ownTimer?.cancel();
      placement.stop();
      antiEntropy.stop();
      clearInterval(hintWatch);
      hints.stop();
      await swim.leave().catch(() => {});
      swim.stop();
      await transport.close();
    },
  };
}
