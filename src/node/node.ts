/**
 * The composition root: the only module that knows every layer. It builds a node process
 * from its config: storage, coordinator, RESP/gRPC/admin servers, logger, metrics, timers.
 */
import { mkdirSync } from 'node:fs';
import { nodeClock, soloEngine, soloHlcNode } from '../coordinator/index.js';
import { bounds } from '../common/limits.js';
import { openReplicaStore } from '../replica/lmdb-store.js';
import { murmur3 } from '../cluster/hash.js';
import { systemClock } from '../common/clock.js';
import { startGrpcServer, type GrpcServer } from '../server/grpc/index.js';
import { startRespServer, type RespServer } from '../server/resp/index.js';
import { createMetrics, startAdminServer, type AdminServer } from '../server/admin/index.js';
import { createLogger, type Logger } from './logger.js';
import { acquireDataDirLock } from './lock.js';
import { startClusterMember, type ClusterMember } from './cluster-member.js';
import type { Engine } from '../coordinator/engine.js';
import type { DiskState } from '../storage/index.js';
import type { NodeConfig } from './config.js';

export type { ClusterConfig, Durability, NodeConfig } from './config.js';

export interface RunningNode {
  config: NodeConfig;
  /** Ports actually bound (differ from config when config asked for port 0); peer is 0 on a single node. */
  ports: { resp: number; grpc: number; admin: number; peer: number };
  /** Stops accepting, drains, closes storage. */
  close(): Promise<void>;
  /** Resolves when this member has left its cluster (`/cluster/leave`): its process should stop. */
  left: Promise<void>;
}

/** Expired keys deleted per sweep, how often the sweeper runs, records pruned per sweep (common/limits.ts). */
const { sweepKeysMax, sweepIntervalMs, pruneRecordsMax } = bounds;

/** How long a member waits for its cluster to form before it serves anyway. */
const formBeforeServingMs = 15_000;

/** Starts a node: opens storage and binds the RESP, gRPC and admin ports. */
export async function startNode(config: NodeConfig, logger: Logger = createLogger(config.logLevel)): Promise<RunningNode> {
  mkdirSync(config.dataDir, { recursive: true });
  const lock = acquireDataDirLock(config.dataDir);
  const store = openReplicaStore({ path: config.dataDir, limits: config.limits, durability: config.durability });
  const clustered = config.cluster.nodeId !== '';
  const hlc = nodeClock(store, systemClock, clustered ? murmur3(Buffer.from(config.cluster.nodeId)) : soloHlcNode, config.limits);
  const disk = store.disk;
  let kv: Engine | undefined;
  const metrics = createMetrics({
    storageStats: () => store.stats(),
    diskState: () => disk.state(),
    clockStats: () => member?.clockStats() ?? null,
    clusterStats: () => member?.stats() ?? null,
    sessionStats: () => kv?.sessionFloors ?? { keys: 0, bytes: 0 },
  });
  const logDisk = (state: DiskState): void => {
    if (state.full) logger.error({ dataDir: config.dataDir, reason: state.reason, freeBytes: state.freeBytes }, 'disk full: writes refused');
    else logger.info({ dataDir: config.dataDir, freeBytes: state.freeBytes }, 'disk has space again: writes accepted');
  };
  disk.onChange(logDisk);
  if (disk.isFull) logDisk(disk.state()); // found full while opening
  let member: ClusterMember | undefined;
  let resolveLeft: () => void = () => {};
  const left = new Promise<void>((resolve) => (resolveLeft = resolve));
  let ready = false;
  let closing = false;
  let resp: RespServer | undefined;
  let grpc: GrpcServer | undefined;
  let admin: AdminServer | undefined;
  let sweeping = false;
  let pruning = false;
  const sweeper = setInterval(() => {
    if (closing) return;
    disk.check();
    if (disk.isFull) return; // background writes wait for space instead of failing every sweep
    if (!sweeping) {
      sweeping = true;
      // Less the clock bound: a clock running ahead must not tombstone a key early.
      store.sweepExpired(Date.now() - (clustered ? config.limits.maxClockOffsetMs : 0), sweepKeysMax)
        .catch((err: unknown) => logger.warn({ err }, 'expiry sweep failed'))
        .finally(() => (sweeping = false));
    }
    if (!pruning) {
      pruning = true;
      store.pruneQueued(pruneRecordsMax)
        .catch((err: unknown) => logger.warn({ err }, 'prune failed'))
        .finally(() => (pruning = false));
    }
  }, sweepIntervalMs);
  sweeper.unref();

  const close = async () => {
    if (closing) return;
    closing = true;
    ready = false;
    clearInterval(sweeper);
    await Promise.allSettled([resp?.close(), grpc?.close()]);
    await member?.close();
    await admin?.close();
    await store.close();
    lock.release();
    logger.info('stopped');
  };

  try {
    if (clustered) {
      member = await startClusterMember({ config: config.cluster, host: config.host, limits: config.limits, store, hlc, logger, dataDir: config.dataDir });
      kv = member.kv;
      // Serve once the cluster has formed (a placement table is known), so the first commands
      // are not refused; a cluster still forming after the bound serves anyway, refusing
      // commands with a retryable error until it has formed.
      if (!(await member.formed(formBeforeServingMs))) {
        logger.warn({ expectMembers: config.cluster.expectMembers, seeds: config.cluster.seeds }, 'the cluster has not formed yet: serving, commands are refused until it has');
      }
    } else {
      kv = soloEngine(store, hlc, config.limits);
    }
    grpc = await startGrpcServer({ kv, limits: config.limits, host: config.host, port: config.grpcPort, logger, metrics });
    const clusterMember = member;
    resp = await startRespServer({
      kv,
      limits: config.limits,
      host: config.host,
      port: config.respPort,
      logger,
      metrics,
      info: () => {
        const s = store.stats();
        return {
          ragkv_durability: config.durability,
          ragkv_data_dir: config.dataDir,
          ragkv_stored_bytes: s.bytes,
          ragkv_pending_writes: s.pendingWrites,
        };
      },
      // A member answers CLUSTER SLOTS/SHARDS/NODES/INFO from its placement table, so Redis
      // cluster clients route keys to their replicas; a single node has cluster support disabled.
      topology: clusterMember
        ? { self: config.cluster.nodeId, table: () => clusterMember.placement.table, clientAddress: (id) => clusterMember.clientAddresses().get(id) }
        : undefined,
    });
    admin = await startAdminServer({
      host: config.host,
      port: config.adminPort,
      metrics,
      logger,
      health: () => true,
      ready: () => {
        if (!ready) return { ready: false, reason: closing ? 'shutting down' : 'starting' };
        const state = disk.state();
        if (state.full) return { ready: false, reason: `disk full: ${state.reason}; writes are refused, reads are served` };
        const clock = member?.clockRefusal();
        return clock ? { ready: false, reason: clock } : true;
      },
      postRoutes: {
        // Operations: they wait for the change to finish (streaming included), then answer.
        '/cluster/leave': async () => {
          if (!member) return { status: 400, contentType: 'application/json; charset=utf-8', body: JSON.stringify({ error: 'single node: not a cluster member' }) + '\n' };
          await member.leave();
          setImmediate(resolveLeft);
          return { status: 200, contentType: 'application/json; charset=utf-8', body: JSON.stringify({ left: config.cluster.nodeId, epoch: member.placement.epoch }) + '\n' };
        },
        '/cluster/remove': async (params) => {
          const id = params.get('id') ?? '';
          if (!member) return { status: 400, contentType: 'application/json; charset=utf-8', body: JSON.stringify({ error: 'single node: not a cluster member' }) + '\n' };
          if (!id) return { status: 400, contentType: 'application/json; charset=utf-8', body: JSON.stringify({ error: "give the member to remove: POST /cluster/remove?id=<member id>" }) + '\n' };
          await member.remove(id);
          return { status: 200, contentType: 'application/json; charset=utf-8', body: JSON.stringify({ removed: id, epoch: member.placement.epoch }) + '\n' };
        },
      },
      routes: {
        '/cluster': () => ({
          status: 200,
          contentType: 'application/json; charset=utf-8',
          body: JSON.stringify(member ? member.describe() : { self: null, members: [], note: 'single node (no --node-id)' }, null, 2) + '\n',
        }),
      },
    });
  } catch (err) {
    await close();
    throw err;
  }
  ready = true;
  member?.setClientAddress(`${config.cluster.advertiseHost || config.host}:${resp.port}`);
  const ports = { resp: resp.port, grpc: grpc.port, admin: admin.port, peer: member?.peerPort ?? 0 };
  logger.info(
    { ...ports, host: config.host, dataDir: config.dataDir, durability: config.durability, ...(config.cluster.nodeId ? { nodeId: config.cluster.nodeId } : {}) },
    'listening',
  );
  return { config, ports, close, left };
}
