/**
 * A 3-member etcd cluster on loopback, etcd's default durability: a write is committed by a
 * Raft majority, each member fsyncing its WAL before acknowledging. Backend quota 8 GiB
 * (etcd's largest recommended) so a load phase does not hit the 2 GiB default alarm.
 * Ready when every member logged that it serves clients and a put/get round trip
 * through the client succeeded.
 */
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import type { TargetSpec } from '../targets/spec.js';
import { ensureDebianPackages, etcdPackages, findBinary } from './install.js';
import { freePorts, run, spawnServer, stopAll, type ServerProcess } from './process.js';
import type { PeerHandle, PeerOptions } from './types.js';

export const etcdMembers = 3;
export const etcdQuotaBackendBytes = 8 * 1024 * 1024 * 1024;

/** The environment without ETCD_* variables, which etcd would read as flags. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('ETCD_')) env[name] = value;
  return env;
}

export async function startEtcd(options: PeerOptions): Promise<PeerHandle> {
  await ensureDebianPackages(etcdPackages, options.log);
  const binary = findBinary('etcd')!;
  const timeoutMs = options.startTimeoutMs ?? 60_000;
  const ports = await freePorts(etcdMembers * 2);
  const members = Array.from({ length: etcdMembers }, (_, i) => ({
    name: `m${i + 1}`,
    client: `http://127.0.0.1:${ports[2 * i]}`,
    peer: `http://127.0.0.1:${ports[2 * i + 1]}`,
    dir: path.join(options.workDir, `etcd-m${i + 1}`),
  }));
  const initialCluster = members.map((m) => `${m.name}=${m.peer}`).join(',');
  const token = `ragkv-bench-${randomBytes(4).toString('hex')}`;
  const env = cleanEnv();
  const servers: ServerProcess[] = [];
  try {
    for (const m of members) {
      await rm(m.dir, { recursive: true, force: true });
      await mkdir(m.dir, { recursive: true });
      // prettier-ignore
      const args = [
        '--name', m.name,
        '--data-dir', m.dir,
        '--listen-client-urls', m.client,
        '--advertise-client-urls', m.client,
        '--listen-peer-urls', m.peer,
        '--initial-advertise-peer-urls', m.peer,
        '--initial-cluster', initialCluster,
        '--initial-cluster-state', 'new',
        '--initial-cluster-token', token,
        '--quota-backend-bytes', String(etcdQuotaBackendBytes),
        '--logger', 'zap',
        '--log-outputs', 'stderr',
      ];
      options.log(`starting etcd ${m.name}: client ${m.client}, peer ${m.peer}`);
      servers.push(spawnServer(`etcd ${m.name}`, binary, args, env));
    }
    // Members serve clients (and log it) only once they have published themselves through
    // Raft, i.e. once the cluster has a quorum. etcd 3.4+ with zap: "serving client traffic
    // insecurely"; older or capnslog: "ready to serve client requests".
    await Promise.all(servers.map((s) => s.waitForLine(/serving client traffic|ready to serve client requests/, timeoutMs)));
    await roundTrip(members.map((m) => m.client));
  } catch (e) {
    await stopAll(servers, 2000);
    throw e;
  }
  const endpoints = members.map((m) => m.client.replace('http://', ''));
  const version = (await run(binary, ['--version'])).output.match(/etcd Version:\s*(\S+)/)?.[1] ?? 'unknown version';
  const describe =
    `etcd ${version}, ${etcdMembers} members on loopback (${endpoints.join(',')}), Raft majority commit with WAL fsync ` +
    `per commit on each member (etcd default), --quota-backend-bytes ${etcdQuotaBackendBytes}, --max-request-bytes default (1.5 MiB)`;
  const spec: TargetSpec = { kind: 'etcd', endpoints, name: 'etcd' };
  options.log(`etcd ready: ${describe}`);
  return {
    spec,
    describe,
    serverPids: servers.map((s) => s.pid),
    async stop() {
      // One at a time: stopped together, a leader waits seconds for a leadership transfer
      // to members that are going away; one by one takes a few hundred ms in all.
      const errors: unknown[] = [];
      for (const server of servers) await server.stop().catch((e: unknown) => errors.push(e));
      if (errors.length > 0) throw errors[0];
      options.log('etcd stopped');
    },
  };
}

async function roundTrip(hosts: string[]): Promise<void> {
  const client = new Etcd3({ hosts, dialTimeout: 10_000 });
  try {
    const key = 'ragkv-bench-health';
    const value = randomBytes(8).toString('hex');
    await client.put(key).value(value);
    const read = await client.get(key).string();
    if (read !== value) throw new Error(`etcd health check read '${read}' after writing '${value}'`);
    await client.delete().key(key);
  } finally {
    client.close();
  }
}
