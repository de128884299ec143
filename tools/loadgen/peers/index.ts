/**
 * Peers: the servers a benchmark starts next to ragkv and stops afterwards, each on free
 * loopback ports with its data under `workDir`, installing Debian packages when missing
 * (`redis-server`, `redis-tools`, `etcd-server`).
 *
 * | kind             | processes                     | durability                                 |
 * |------------------|-------------------------------|--------------------------------------------|
 * | ragkv            | 1 ragkv node                  | its --durability (default fsync)           |
 * | ragkv-cluster    | 3 ragkv members, N=3 W=2 R=1  | its --durability on each (default fsync)   |
 * | redis            | 1 redis-server                | AOF, appendfsync everysec                  |
 * | redis-always     | 1 redis-server                | AOF, appendfsync always                    |
 * | redis-replicated | primary + 2 replicas          | AOF everysec on each; targets WAIT replicas |
 * | etcd             | 3 etcd members                | Raft majority, WAL fsync per commit        |
 */
import type { TargetSpec } from '../targets/spec.js';
import { startEtcd } from './etcd.js';
import { startRagkv } from './ragkv.js';
import { startRagkvCluster } from './ragkv-cluster.js';
import { startRedis } from './redis.js';
import type { PeerHandle, PeerKind, PeerOptions } from './types.js';

export type { PeerHandle, PeerKind, PeerOptions } from './types.js';
export { ensureDebianPackages, etcdPackages, findBinary, redisPackages } from './install.js';

export const peerKinds: readonly PeerKind[] = ['ragkv', 'ragkv-cluster', 'redis', 'redis-replicated', 'redis-always', 'etcd'];

export async function startPeer(kind: PeerKind, options: PeerOptions): Promise<PeerHandle> {
  switch (kind) {
    case 'ragkv':
      return startRagkv(options);
    case 'ragkv-cluster':
      return startRagkvCluster(options);
    case 'redis':
      return startRedis({ ...options, name: 'redis', fsync: 'everysec', replicas: 0 });
    case 'redis-always':
      return startRedis({ ...options, name: 'redis-always', fsync: 'always', replicas: 0 });
    case 'redis-replicated':
      return startRedis({ ...options, name: 'redis-replicated', fsync: 'everysec', replicas: 2 });
    case 'etcd':
      return startEtcd(options);
    default: {
      const unknown: never = kind;
      throw new Error(`unknown peer '${String(unknown)}'; one of ${peerKinds.join(', ')}`);
    }
  }
}

/** Both targets of a ragkv peer (RESP and gRPC); throws for other peers. */
export function ragkvSpecs(peer: PeerHandle): { resp: TargetSpec; grpc: TargetSpec } {
  if (!peer.specs) throw new Error(`peer '${peer.spec.name}' is not ragkv: it has no gRPC target`);
  return peer.specs;
}
