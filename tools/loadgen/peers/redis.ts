/**
 * Redis servers on free loopback ports, AOF on and RDB snapshots off:
 * - `redis`: one server, `appendfsync everysec` (a crash may lose about the last second);
 * - `redis-always`: one server, `appendfsync always` (fsync before each reply);
 * - `redis-replicated`: a primary and two replicas (`--replicaof`), each `appendfsync everysec`;
 *   ready once both replicas report `master_link_status:up`.
 */
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { closeResp, connectResp } from '../targets/resp-connection.js';
import type { TargetSpec } from '../targets/spec.js';
import { ensureDebianPackages, findBinary, redisPackages } from './install.js';
import { freePorts, spawnServer, stopAll, type ServerProcess } from './process.js';
import type { PeerHandle, PeerOptions } from './types.js';

export type RedisFsync = 'everysec' | 'always';

export interface RedisPeerOptions extends PeerOptions {
  fsync: RedisFsync;
  replicas: number;
  name: string;
}

async function startOne(
  label: string,
  binary: string,
  port: number,
  dir: string,
  fsync: RedisFsync,
  replicaOf: number | null,
  timeoutMs: number,
): Promise<ServerProcess> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const args = [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--daemonize', 'no',
    '--save', '',
    '--appendonly', 'yes',
    '--appendfsync', fsync,
    '--dir', dir,
    '--logfile', '',
    // Replicas sync at once instead of after the default 5 s batching delay.
    '--repl-diskless-sync-delay', '0',
    ...(replicaOf === null ? [] : ['--replicaof', '127.0.0.1', String(replicaOf)]),
  ];
  const server = spawnServer(label, binary, args);
  try {
    await server.waitForLine(/Ready to accept connections/, timeoutMs);
  } catch (e) {
    await server.stop(2000);
    throw e;
  }
  return server;
}

/** Polls INFO replication until `master_link_status:up` (bounded by the deadline). */
async function waitForReplicaLink(endpoint: string, server: ServerProcess, deadline: number): Promise<void> {
  const redis = await connectResp(endpoint);
  try {
    for (;;) {
      const info = await redis.info('replication');
      if (/^master_link_status:up\r?$/m.test(info)) return;
      if (server.child.exitCode !== null) throw new Error(`replica ${endpoint} exited while syncing`);
      if (Date.now() > deadline) {
        throw new Error(`replica ${endpoint} did not report master_link_status:up in time:\n${info}\n${server.tail().slice(-10).join('\n')}`);
      }
      await delay(50);
    }
  } finally {
    await closeResp(redis);
  }
}

export async function startRedis(options: RedisPeerOptions): Promise<PeerHandle> {
  await ensureDebianPackages(redisPackages, options.log);
  const binary = findBinary('redis-server')!;
  const timeoutMs = options.startTimeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  const ports = await freePorts(1 + options.replicas);
  const servers: ServerProcess[] = [];
  try {
    const primaryDir = path.join(options.workDir, options.replicas > 0 ? `${options.name}-primary` : options.name);
    options.log(`starting ${options.name}: redis-server on 127.0.0.1:${ports[0]}, appendfsync ${options.fsync}`);
    servers.push(await startOne(`${options.name} primary`, binary, ports[0]!, primaryDir, options.fsync, null, timeoutMs));
    for (let i = 1; i <= options.replicas; i++) {
      const dir = path.join(options.workDir, `${options.name}-replica${i}`);
      servers.push(await startOne(`${options.name} replica ${i}`, binary, ports[i]!, dir, options.fsync, ports[0]!, timeoutMs));
    }
    for (let i = 1; i <= options.replicas; i++) await waitForReplicaLink(`127.0.0.1:${ports[i]}`, servers[i]!, deadline);
  } catch (e) {
    await stopAll(servers, 2000);
    throw e;
  }
  const endpoints = ports.map((p) => `127.0.0.1:${p}`);
  const version = await redisVersion(endpoints[0]!);
  const durability =
    options.fsync === 'always'
      ? 'AOF appendfsync always (fsync before each reply)'
      : 'AOF appendfsync everysec (a crash may lose about the last second of acknowledged writes)';
  const topology =
    options.replicas > 0 ? `primary ${endpoints[0]} + ${options.replicas} replicas ${endpoints.slice(1).join(',')}` : `standalone ${endpoints[0]}`;
  const describe = `Redis ${version} ${topology}, ${durability}, RDB snapshots off`;
  const spec: TargetSpec = { kind: 'redis', endpoints, name: options.name };
  options.log(`${options.name} ready: ${describe}`);
  return {
    spec,
    describe,
    serverPids: servers.map((s) => s.pid),
    async stop() {
      // The primary first: on SIGTERM it waits (shutdown-timeout, 10 s) for its replicas to
      // catch up, which never happens if they are already gone.
      await stopAll(servers.slice(0, 1));
      await stopAll(servers.slice(1));
      options.log(`${options.name} stopped`);
    },
  };
}

async function redisVersion(endpoint: string): Promise<string> {
  const redis = await connectResp(endpoint);
  try {
    const info = await redis.info('server');
    return /^redis_version:(\S+)/m.exec(info)?.[1] ?? 'unknown version';
  } finally {
    await closeResp(redis);
  }
}
