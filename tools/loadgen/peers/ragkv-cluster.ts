/**
 * A ragkv cluster of 3 members on loopback, each a child process `ragkv start --node-id n<i>`
 * (the same member command line as `ragkv local-cluster`), on free ports, seeding through
 * each other. Replication is the members' defaults unless `ragkvArgs` say otherwise: N=3
 * replicas, writes wait for QUORUM (2), reads for ONE. Ready when every member logged
 * `listening` and every member's /cluster shows all members alive.
 *
 * The RESP target lists every member: the adapter spreads its operations over them
 * round-robin, and the member that receives an operation coordinates it.
 */
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { aliveMembers, getJson, memberStartArgs, planMembers } from '../../../src/cli/local-cluster.js';
import type { TargetSpec } from '../targets/spec.js';
import { spawnServer, stopAll, type ServerProcess } from './process.js';
import { ragkvBinPath } from './ragkv.js';
import type { PeerHandle, PeerOptions } from './types.js';

export const ragkvClusterMembers = 3;

interface ListeningLine {
  resp?: number;
  grpc?: number;
  admin?: number;
  peer?: number;
  durability?: string;
}

interface ClusterView {
  replicas?: number;
  consistency?: { read?: string; write?: string };
}

export async function startRagkvCluster(options: PeerOptions): Promise<PeerHandle> {
  const root = path.join(options.workDir, 'ragkv-cluster');
  await rm(root, { recursive: true, force: true });
  await mkdir(root, { recursive: true });
  const timeoutMs = options.startTimeoutMs ?? 60_000;
  const plan = await planMembers({ dataDir: root, members: ragkvClusterMembers, baseRespPort: 0, baseGrpcPort: 0, baseAdminPort: 0, basePeerPort: 0 });
  const servers: ServerProcess[] = [];
  let listening: ListeningLine[];
  let view: ClusterView;
  try {
    for (const m of plan) {
      await mkdir(m.dataDir, { recursive: true });
      const args = [ragkvBinPath(), ...memberStartArgs(m, plan, options.ragkvArgs ?? [])];
      options.log(`starting ragkv ${m.id}: node ${args.join(' ')}`);
      servers.push(spawnServer(`ragkv ${m.id}`, process.execPath, args));
    }
    listening = await Promise.all(servers.map(async (s) => JSON.parse(await s.waitForLine(/"msg":"listening"/, timeoutMs)) as ListeningLine));
    // Membership converges by gossip inside the members: poll their /cluster, bounded.
    const deadline = Date.now() + timeoutMs;
    const ids = plan.map((m) => m.id);
    for (;;) {
      const views = await Promise.all(listening.map((l) => aliveMembers(l.admin!).catch(() => [] as string[])));
      if (views.every((alive) => ids.every((id) => alive.includes(id)))) break;
      const dead = servers.find((s) => s.child.exitCode !== null || s.child.signalCode !== null);
      if (dead) throw new Error(`${dead.name} exited while the cluster formed:\n${dead.tail().slice(-20).join('\n')}`);
      if (Date.now() > deadline) throw new Error(`ragkv cluster members did not all see each other alive within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    view = (await getJson(`http://127.0.0.1:${listening[0]!.admin}/cluster`)) as ClusterView;
  } catch (e) {
    await stopAll(servers, 2000);
    throw e;
  }
  const respEndpoints = listening.map((l) => `127.0.0.1:${l.resp}`);
  const grpcEndpoints = listening.map((l) => `127.0.0.1:${l.grpc}`);
  const resp: TargetSpec = { kind: 'ragkv-resp', endpoints: respEndpoints, name: 'ragkv-cluster' };
  const grpc: TargetSpec = { kind: 'ragkv-grpc', endpoints: grpcEndpoints, name: 'ragkv-cluster-grpc' };
  const durability = listening[0]!.durability ?? 'fsync';
  const describe =
    `ragkv cluster of ${ragkvClusterMembers} members on loopback (pids ${servers.map((s) => s.pid).join(',')}), ` +
    `N=${view.replicas ?? '?'} replicas, writes wait for ${view.consistency?.write ?? '?'}, reads for ${view.consistency?.read ?? '?'}, ` +
    `durability ${durability} on each member${durability === 'fsync' ? ' (acknowledged after fsync)' : ''}; ` +
    `RESP ${respEndpoints.join(',')}, admin ${listening.map((l) => `127.0.0.1:${l.admin}`).join(',')}; any member coordinates any key`;
  options.log(`ragkv cluster ready: ${describe}`);
  return {
    spec: resp,
    specs: { resp, grpc },
    describe,
    serverPids: servers.map((s) => s.pid),
    async stop() {
      await stopAll(servers);
      options.log('ragkv cluster stopped');
    },
  };
}
