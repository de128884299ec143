/** A ragkv node as a child process (`node bin/ragkv.js start`) on free loopback ports. */
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnServer } from './process.js';
import type { PeerHandle, PeerOptions } from './types.js';

/** bin/ragkv.js of this package (found upwards from this module, compiled or not). */
export function ragkvBinPath(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, 'bin', 'ragkv.js');
    if (existsSync(path.join(dir, 'package.json')) && existsSync(candidate)) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('bin/ragkv.js not found above the load generator module');
    dir = parent;
  }
}

interface ListeningLine {
  msg?: string;
  resp?: number;
  grpc?: number;
  admin?: number;
  durability?: string;
}

export async function startRagkv(options: PeerOptions): Promise<PeerHandle> {
  const dataDir = path.join(options.workDir, 'ragkv');
  await rm(dataDir, { recursive: true, force: true });
  await mkdir(dataDir, { recursive: true });
  const args = [
    ragkvBinPath(),
    'start',
    '--data',
    dataDir,
    '--host',
    '127.0.0.1',
    '--resp-port',
    '0',
    '--grpc-port',
    '0',
    '--admin-port',
    '0',
    ...(options.ragkvArgs ?? []),
  ];
  options.log(`starting ragkv: node ${args.join(' ')}`);
  const server = spawnServer('ragkv', process.execPath, args);
  let listening: ListeningLine;
  try {
    const line = await server.waitForLine(/"msg":"listening"/, options.startTimeoutMs ?? 60_000);
    listening = JSON.parse(line) as ListeningLine;
    if (!listening.resp || !listening.grpc) throw new Error(`ragkv's listening line has no ports: ${line}`);
  } catch (e) {
    await server.stop(2000);
    throw e;
  }
  const resp = { kind: 'ragkv-resp' as const, endpoints: [`127.0.0.1:${listening.resp}`], name: 'ragkv-resp' };
  const grpc = { kind: 'ragkv-grpc' as const, endpoints: [`127.0.0.1:${listening.grpc}`], name: 'ragkv-grpc' };
  const describe =
    `ragkv 1 node (pid ${server.pid}), durability ${listening.durability ?? 'fsync'}` +
    `${listening.durability === 'fsync' || listening.durability === undefined ? ' (acknowledged after fsync)' : ''}, ` +
    `RESP ${resp.endpoints[0]}, gRPC ${grpc.endpoints[0]}, admin 127.0.0.1:${listening.admin}`;
  options.log(`ragkv ready: ${describe}`);
  return {
    spec: resp,
    specs: { resp, grpc },
    describe,
    serverPids: [server.pid],
    async stop() {
      await server.stop();
      options.log('ragkv stopped');
    },
  };
}
