/**
 * What a replica keeps, as the cluster cores see it: records applied as deltas (durably),
 * full records for merging and read repair, ordered keys for scans, and a bounded, durable
 * queue of hints (writes held for a replica that could not take them). Production wires
 * LMDB (`LmdbReplicaStore`); the simulator wires `MemoryReplicaStore`.
 */
import type { NodeId } from '../cluster/transport.js';
import { bounds } from '../common/limits.js';
import type { Record } from '../storage/record.js';
import type { KeyState } from '../storage/key-state.js';
import type { ListSource } from '../compute/vector-search.js';

/** What a compaction did. */
export interface PruneResult {
  /** Records pruned (read and checked for dead parts). */
  records: number;
  /** Bytes of dead parts removed. */
  bytesFreed: number;
}

export interface ApplyItem {
  ns: string;
  key: Buffer;
  delta: Record;
}

/** What applying one item changed at this replica (the coordinator takes the max over replicas). */
export interface ApplyResult {
  /** Value length after the write. */
  size: number;
  /** The key held a value or fields before the write. */
  wasLive: boolean;
  /** Fields of the delta that were set and did not exist before. */
  fieldsAdded: number;
  /** Fields of the delta that were deleted and existed before. */
  fieldsRemoved: number;
}

export interface HintBatch {
  /** Opaque ids, for `removeHints` once the target has them. */
  ids: Buffer[];
  items: ApplyItem[];
}

/** What a conditional write decides from a key's current state: the delta to apply (or none) and the reply. */
export interface Decision<T> {
  delta: Record | null;
  reply: T;
}

/** Receives a value without an intermediate copy (the RESP reply writer is one). */
export interface ValueSink {
  /** `value` is a view valid only during this call; null when the key is absent. */
  bulk(value: Buffer | null): void;
}

export interface ReplicaStore {
  /** Applies the items in one durable write; results follow `items`. */
  apply(items: ApplyItem[], nowMs: number): Promise<ApplyResult[]>;
  /**
   * Runs `decide` on the key's state inside this replica's write transaction and applies the
   * delta it returns in the same transaction, durably: check and write are atomic here. Used
   * when this replica is a key's only one (a single node), so conditional writes stay atomic.
   */
  update<T>(ns: string, key: Buffer, nowMs: number, decide: (state: KeyState) => Decision<T>): Promise<T>;
  /** The key's state here, read in place (synchronous): reads this replica can answer alone. */
  state(ns: string, key: Buffer, nowMs: number): KeyState;
  /** GET's hot path: hands the value (or null) to `sink` without copying it first. */
  readValueInto(ns: string, key: Buffer, nowMs: number, sink: ValueSink): void;
  /** Full records (null where nothing is stored), as stored: expiry not applied. */
  read(ns: string, keys: Buffer[]): (Record | null)[];
  /**
   * Live keys in order, strictly after `after` (or from the start), before `end` (exclusive),
   * at most `limit`; with `reverse`, descending from `end` (or `after`) down to `start`.
   */
  scan(ns: string, start: Buffer, end: Buffer | null, limit: number, reverse: boolean, nowMs: number): Buffer[];
  /** A key's value as stored pieces plus its fields, for near-data operators (vector search). */
  listSource(ns: string, key: Buffer, nowMs: number): ListSource;
  /** Namespaces with records here, sorted. */
  namespaces(): string[];
  /** Keys held here (a node-local figure, like Redis Cluster's DBSIZE). */
  keyCount(ns: string): number;
  /** Stores hints for `target` durably; rejects OVERLOADED over `hintsMax` / `hintBytesMax`. */
  addHints(target: NodeId, items: ApplyItem[]): Promise<void>;
  /** The oldest hints for `target`, at most `limit`. */
  peekHints(target: NodeId, limit: number): HintBatch;
  removeHints(target: NodeId, ids: Buffer[]): Promise<void>;
  /** Nodes that have hints waiting. */
  hintTargets(): NodeId[];
  hintCount(): number;
  /**
   * Up to `limit` records of hash slot `slot` (see common/slots.ts), in key order, strictly
   * after `after` (or from the first): their keys, and full records as `read` returns them
   * (tombstones included), for moving a slot to another replica. Reads the slot alone, not
   * the namespace; page on with the last key returned.
   */
  readSlot(ns: string, slot: number, after: Buffer | null, limit: number): { keys: Buffer[]; records: Record[] };
  /**
   * Physically removes up to `limit` records of the slot (first in key order), leaving no
   * tombstone, in one durable write: for a replica that no longer holds the slot. Returns how
   * many were removed; fewer than `limit` means none is left.
   */
  dropSlot(ns: string, slot: number, limit: number): Promise<number>;
  /** Resolves once every write queued before the call is durable; rejects as a write would. */
  barrier(): Promise<void>;
  /** Queues the records of `keys` for pruning (see storage/pruner.ts). */
  queuePrune(ns: string, keys: Buffer[]): Promise<number>;
  /** Prunes at most `maxRecords` queued records in one durable write. */
  pruneQueued(maxRecords: number): Promise<PruneResult>;
}

/** Records pruned per write while a compaction drains the queue. */
export const pruneBatchMax = bounds.pruneBatchMax;

/** Queues `keys`, then prunes until the queue is empty (or `rounds` writes were made). */
export async function compactNow(
  store: { queuePrune(ns: string, keys: Buffer[]): Promise<number>; pruneQueued(max: number): Promise<PruneResult> },
  ns: string,
  keys: Buffer[],
  rounds = 10_000,
): Promise<PruneResult> {
  if (keys.length > 0) await store.queuePrune(ns, keys);
  const total: PruneResult = { records: 0, bytesFreed: 0 };
  for (let i = 0; i < rounds; i++) {
    const r = await store.pruneQueued(pruneBatchMax);
    if (r.records === 0) break;
    total.records += r.records;
    total.bytesFreed += r.bytesFreed;
  }
  return total;
}
