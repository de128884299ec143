/** One request -> replicas. On a single node: validation, versions and local storage. */
import type { Limits } from '../common/limits.js';
import { makeLimits } from '../common/limits.js';
import { type Durability, type LmdbStore, openStore } from '../storage/lmdb-store.js';
import type { Clock } from '../storage/hlc.js';
import { LocalCoordinator } from './local.js';
import { vectorItemPruner } from '../compute/vector-items.js';

export type * from './api.js';
export { LocalCoordinator, type LocalCoordinatorOptions } from './local.js';
export { ClusterCoordinator, type ClusterCoordinatorOptions, type ClusterView, required } from './cluster.js';
export { LmdbReplicaStore } from '../replica/lmdb-store.js';
export { MemoryReplicaStore } from '../replica/memory-store.js';
export { ReplicaService } from '../replica/service.js';
export { HintReplayer } from '../replica/hints.js';
export type { ReplicaStore, ApplyItem, ApplyResult } from '../replica/store.js';

export interface LocalKvOptions {
  path: string;
  limits?: Partial<Limits>;
  durability?: Durability;
  clock?: Clock;
}

/** Opens storage at `path` and a coordinator over it: the whole single-node engine. */
export async function openLocalKv(options: LocalKvOptions): Promise<{ kv: LocalCoordinator; store: LmdbStore; close(): Promise<void> }> {
  const limits = makeLimits(options.limits);
  const store = openStore({
    path: options.path,
    durability: options.durability ?? 'fsync',
    writeQueueMax: limits.writeQueueMax,
    namespacesMax: limits.namespacesMax,
    hintsMax: limits.hintsMax,
    hintBytesMax: limits.hintBytesMax,
    diskFreeBytesMin: limits.diskFreeBytesMin,
    pruner: vectorItemPruner,
  });
  const kv = new LocalCoordinator(store, { limits, ...(options.clock ? { clock: options.clock } : {}) });
  return { kv, store, close: () => store.close() };
}
