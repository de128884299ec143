/** One request -> replicas: the command engine, its rounds, sessions, and a single node's composition. */
import { randomBytes } from 'node:crypto';
import { systemClock, type Clock } from '../common/clock.js';
import { type Limits, versionAheadMsMax } from '../common/limits.js';
import { makeLimits } from '../common/limits.js';
import { Random } from '../common/random.js';
import { type LmdbReplicaStore, openReplicaStore } from '../replica/lmdb-store.js';
import { HybridClock } from '../storage/hlc.js';
import type { Durability } from '../storage/lmdb-store.js';
import { Engine } from './engine.js';
import { soloView } from './view.js';

export type * from './api.js';
export { Engine, type EngineOptions, type EngineCounters } from './engine.js';
export type { ClusterView } from './view.js';
export { Session, type KeyFloor } from './session.js';

export interface LocalKvOptions {
  path: string;
  limits?: Partial<Limits>;
  durability?: Durability;
  clock?: Pick<Clock, 'nowMs'>;
}

/** The member id of a single node (a cluster of one). */
export const soloNodeId = 'local';

/** HLC tie-break of a single node's versions. */
export const soloHlcNode = 1;

/** A node's hybrid clock, started above the highest version on its disk: after a restart with the clock behind, what it stamps is still newer. */
export function nodeClock(store: LmdbReplicaStore, clock: Pick<Clock, 'nowMs'>, hlcNode: number, limits: Limits): HybridClock {
  const hlc = new HybridClock(clock, hlcNode, versionAheadMsMax(limits));
  hlc.observeStored(store.highTs);
  return hlc;
}

/** The engine of a single node: a cluster of one member over `store`. */
export function soloEngine(store: LmdbReplicaStore, hlc: HybridClock, limits: Limits, clock: Pick<Clock, 'nowMs'> = systemClock): Engine {
  return new Engine({
    self: soloNodeId,
    view: soloView(soloNodeId),
    transport: null,
    clock,
    random: new Random(randomBytes(4).readUInt32BE(0)),
    store,
    limits,
    hlc,
  });
}

/** Opens storage at `path` and the engine over it as a cluster of one: the whole single-node server. */
export async function openLocalKv(options: LocalKvOptions): Promise<{ kv: Engine; store: LmdbReplicaStore; hlc: HybridClock; close(): Promise<void> }> {
  const limits = makeLimits(options.limits);
  const store = openReplicaStore({ path: options.path, limits, durability: options.durability ?? 'fsync' });
  const clock = options.clock ?? systemClock;
  const hlc = nodeClock(store, clock, soloHlcNode, limits);
  const kv = soloEngine(store, hlc, limits, clock);
  return { kv, store, hlc, close: () => store.close() };
}
