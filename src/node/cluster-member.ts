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
import { MembershipView } from '../cluster/membership-view.js';
import { ClockGuard } from '../cluster/clock-guard.js';
import { Engine } from '../coordinator/engine.js';
import { HintReplayer } from '../replica/hints.js';
import type { LmdbReplicaStore } from '../replica/lmdb-store.js';
import { ReplicaService } from '../replica/service.js';
import type { HybridClock } from '../storage/hlc.js';
import type { Logger } from './logger.js';
import { type ClusterConfig, readClusterSecret } from './config.js';
import { resolveSeeds } from './seeds.js';

export interface ClusterMember {
  kv: Engine;
  /** Why this member is out of service now (its clock is known to be off), or null. */
  clockRefusal(): string | null;
  /** Clock figures for metrics: median offset of peers (ms, + = peers ahead), skewed or not, versions refused. */
  clockStats(): { offsetMs: number; skewed: boolean; versionsRefused: number };
  peerPort: number;
  /** JSON for the admin port's /cluster. */
  describe(): unknown;
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
  const view = new MembershipView(swim, config.nodeId, config.replicas);
  // A member with seeds coordinates writes only once it has joined (a seed answered, or a
  // member found it): alone it would place every key on itself and acknowledge one copy.
  const joined = (): boolean => seedAnswered || config.seeds.length === 0 || swim.members().some((m) => m.id !== config.nodeId && m.status === 'alive');
  const notJoined = (): KvError =>
    new KvError('UNAVAILABLE', `this member has not joined its cluster yet (no seed of ${config.seeds.join(',')} has answered): retry, or write through another member`);
  const replicaStore = options.store;
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
  const service = new ReplicaService({ store: replicaStore, clock: systemClock, transport, limits, hlc: options.hlc, guard: skewed });
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
    writeGuard: () => dataAhead() ?? (joined() ? clockGuard.admit() : notJoined()),
    readGuard: skewed,
  });
  const hints = new HintReplayer(replicaStore, transport, systemClock, {
    intervalMs: bounds.hintReplayIntervalMs,
    batchMax: bounds.hintReplayBatchMax,
    timeoutMs: bounds.hintReplayTimeoutMs,
    isAlive: (id) => view.isAlive(id),
  });
  swim.on('change', (e) => logger.info({ member: e.member.id, status: e.member.status, event: e.type }, 'membership'));
  swim.start();
  hints.start();

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

  return {
    kv,
    clockRefusal: () => skewed()?.message ?? null,
    clockStats: () => {
      const v = clockGuard.current();
      return { offsetMs: v.offsetMs, skewed: v.state === 'skewed', versionsRefused: service.refusedAhead };
    },
    peerPort: transport.port,
    describe: () => {
      const ring = view.ring();
      const primary = ring.primaryShares();
      const replica = ring.replicaShares();
      return {
        self: config.nodeId,
        cluster: config.clusterName,
        replicas: config.replicas,
        consistency: { read: config.readConsistency, write: config.writeConsistency },
        members: swim.members().map((m) => ({
          id: m.id,
          address: m.address,
          zone: m.zone,
          status: m.status,
          incarnation: m.incarnation,
          primaryShare: Number((primary.get(m.id) ?? 0).toFixed(4)),
          replicaShare: Number((replica.get(m.id) ?? 0).toFixed(4)),
        })),
        hints: { pending: replicaStore.hintCount(), delivered: hints.delivered },
        coordinator: kv.counters,
        transport: transport.stats(),
        membership: { ...swim.stats },
        clock: { ...clockGuard.current(), maxClockOffsetMs: limits.maxClockOffsetMs, peers: swim.clocks.describe(), versionsRefused: service.refusedAhead },
        replicaLoad: kv.tracker.describe(),
      };
    },
    close: async () => {
      closed = true;
      joinTimer?.cancel();
      hints.stop();
      await swim.leave().catch(() => {});
      swim.stop();
      view.close();
      await transport.close();
    },
  };
}
