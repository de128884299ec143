/**
 * The composition root: the only module that knows every layer. It builds a node process
 * from its config: storage, coordinator, RESP/gRPC/admin servers, logger, metrics, timers.
 */
import { mkdirSync } from 'node:fs';
import type { Limits } from '../common/limits.js';
import type { Level } from '../coordinator/api.js';
import { openLocalKv } from '../coordinator/index.js';
import { startGrpcServer, type GrpcServer } from '../server/grpc/index.js';
import { startRespServer, type RespServer } from '../server/resp/index.js';
import { createMetrics, startAdminServer, type AdminServer } from '../server/admin/index.js';
import { createLogger, type Logger } from './logger.js';
import { acquireDataDirLock } from './lock.js';

export type Durability = 'fsync' | 'commit' | 'none';

/** Cluster membership and replication settings; `nodeId` empty means a single node. */
export interface ClusterConfig {
  nodeId: string;
  peerPort: number;
  /** `host:port` peer addresses, or `dns:<name>:<port>` for a headless service. */
  seeds: string[];
  clusterName: string;
  advertiseHost: string;
  zone: string;
  replicas: number;
  readConsistency: Level;
  writeConsistency: Level;
}

export interface NodeConfig {
  dataDir: string;
  host: string;
  respPort: number;
  grpcPort: number;
  adminPort: number;
  durability: Durability;
  logLevel: string;
  limits: Limits;
  cluster: ClusterConfig;
}

export interface RunningNode {
  config: NodeConfig;
  /** Ports actually bound (differ from config when config asked for port 0). */
  ports: { resp: number; grpc: number; admin: number };
  /** Stops accepting, drains, closes storage. */
  close(): Promise<void>;
}

/** Expired keys deleted per sweep, and how often the sweeper runs. */
const sweepKeysMax = 1000;
const sweepIntervalMs = 100;

/** Starts a node: opens storage and binds the RESP, gRPC and admin ports. */
export async function startNode(config: NodeConfig, logger: Logger = createLogger(config.logLevel)): Promise<RunningNode> {
  mkdirSync(config.dataDir, { recursive: true });
  const lock = acquireDataDirLock(config.dataDir);
  const startedAt = Date.now();
  const engine = await openLocalKv({ path: config.dataDir, limits: config.limits, durability: config.durability });
  const kv = engine.kv;
  const metrics = createMetrics({ storageStats: () => kv.stats() });
  let ready = false;
  let closing = false;
  let resp: RespServer | undefined;
  let grpc: GrpcServer | undefined;
  let admin: AdminServer | undefined;
  let sweeping = false;
  const sweeper = setInterval(() => {
    if (sweeping || closing) return;
    sweeping = true;
    kv.sweepExpired(sweepKeysMax)
      .catch((err: unknown) => logger.warn({ err }, 'expiry sweep failed'))
      .finally(() => (sweeping = false));
  }, sweepIntervalMs);
  sweeper.unref();

  const close = async () => {
    if (closing) return;
    closing = true;
    ready = false;
    clearInterval(sweeper);
    await Promise.allSettled([resp?.close(), grpc?.close()]);
    await admin?.close();
    await engine.close();
    lock.release();
    logger.info('stopped');
  };

  try {
    grpc = await startGrpcServer({ kv, limits: config.limits, host: config.host, port: config.grpcPort, logger, metrics });
    resp = await startRespServer({
      kv,
      limits: config.limits,
      host: config.host,
      port: config.respPort,
      logger,
      metrics,
      info: () => {
        const s = kv.stats();
        return {
          uptime_in_seconds: Math.floor((Date.now() - startedAt) / 1000),
          ragkv_durability: config.durability,
          ragkv_data_dir: config.dataDir,
          ragkv_stored_bytes: s.bytes,
          ragkv_pending_writes: s.pendingWrites,
        };
      },
    });
    admin = await startAdminServer({
      host: config.host,
      port: config.adminPort,
      metrics,
      logger,
      health: () => true,
      ready: () => (ready ? true : { ready: false, reason: closing ? 'shutting down' : 'starting' }),
    });
  } catch (err) {
    await close();
    throw err;
  }
  ready = true;
  const ports = { resp: resp.port, grpc: grpc.port, admin: admin.port };
  logger.info({ ...ports, host: config.host, dataDir: config.dataDir, durability: config.durability }, 'listening');
  return { config, ports, close };
}
