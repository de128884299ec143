/** ReplicaStore over the node's LMDB store: what a production replica keeps. */
import type { NodeId } from '../cluster/transport.js';
import { type Durability, type LmdbStore, openStore } from '../storage/lmdb-store.js';
import { KvError } from '../common/errors.js';
import type { Limits } from '../common/limits.js';
import { vectorItemPruner } from '../compute/vector-items.js';
import type { Record } from '../storage/record.js';
import type { KeyState } from '../storage/key-state.js';
import type { ListSource } from '../compute/vector-search.js';
import type { PruneResult } from './store.js';
import type { ApplyItem, ApplyResult, Decision, HintBatch, ReplicaStore, ValueSink } from './store.js';
import { WireReader, WireWriter } from '../storage/wire.js';

/** Storage figures of a node, for metrics and INFO. */
export interface StoreStats {
  keys: number;
  bytes: number;
  pendingWrites: number;
  namespaces: string[];
  /** Records waiting to be pruned. */
  pruneQueue: number;
  /** Records pruned and bytes freed since the node started. */
  prunedRecords: number;
  prunedBytes: number;
  /** Payloads of a stored op from a peer that were neither equal nor a pruned form (a bug sign). */
  payloadsRefused: number;
}

/** Opens (creating if needed) the LMDB store at `path` as this node's replica. */
export function openReplicaStore(options: { path: string; limits: Limits; durability: Durability; syncCommits?: boolean }): LmdbReplicaStore {
  const { limits } = options;
  return new LmdbReplicaStore(
    openStore({
      path: options.path,
      durability: options.durability,
      writeQueueMax: limits.writeQueueMax,
      namespacesMax: limits.namespacesMax,
      hintsMax: limits.hintsMax,
      hintBytesMax: limits.hintBytesMax,
      diskFreeBytesMin: limits.diskFreeBytesMin,
      pruner: vectorItemPruner,
      ...(options.syncCommits ? { syncCommits: true } : {}),
    }),
  );
}

export class LmdbReplicaStore implements ReplicaStore {
  constructor(readonly store: LmdbStore) {}

  /** Whether the data disk is full (writes refused, reads served), and its free space. */
  get disk(): LmdbStore['disk'] {
    return this.store.disk;
  }

  /** Waits for pending writes, then closes LMDB. */
  close(): Promise<void> {
    return this.store.close();
  }

  /** Highest version timestamp ever applied here: the node's HLC starts past it. */
  get highTs(): number {
    return this.store.highTs;
  }

  /** Called for each key written, after its commit (anti-entropy marks the key's slot). */
  onChange: ((ns: string, key: Buffer) => void) | null = null;

  async apply(items: ApplyItem[], nowMs: number): Promise<ApplyResult[]> {
    // Namespaces are created before the transaction: a refusal must not abort a shared batch.
    const ids = items.map((it) => this.store.ensureNamespace(it.ns));
    const out = await this.store.write(() => items.map((it, i) => this.applyOne(ids[i]!, it.key, it.delta, nowMs)));
    if (this.onChange) for (const it of items) this.onChange(it.ns, it.key);
    return out;
  }

  private applyOne(nsId: number, key: Buffer, delta: Record, nowMs: number): ApplyResult {
    const store = this.store;
    const wasLive = store.isLive(nsId, key, nowMs);
    let fieldsAdded = 0;
    let fieldsRemoved = 0;
    let before: Map<string, boolean> | null = null;
    if (delta.fields.size > 0) {
      before = new Map();
      for (const name of delta.fields.keys()) before.set(name, store.getField(nsId, key, Buffer.from(name, 'latin1'), nowMs) !== null);
    }
    const h = store.apply(nsId, key, delta, nowMs);
    if (before) {
      for (const [name, f] of delta.fields) {
        const now = store.getField(nsId, key, Buffer.from(name, 'latin1'), nowMs) !== null;
        if (f.value && now && !before.get(name)) fieldsAdded++;
        if (!f.value && !now && before.get(name)) fieldsRemoved++;
      }
    }
    const live = store.isLive(nsId, key, nowMs);
    return { size: live ? h.size : 0, wasLive, fieldsAdded, fieldsRemoved };
  }

  async update<T>(ns: string, key: Buffer, nowMs: number, decide: (state: KeyState) => Decision<T>): Promise<T> {
    const nsId = this.store.ensureNamespace(ns);
    const reply = await this.store.write(() => {
      const d = decide(new LmdbKeyState(this.store, nsId, key, nowMs));
      if (d.delta) this.store.apply(nsId, key, d.delta, nowMs);
      return d.reply;
    });
    this.onChange?.(ns, key);
    return reply;
  }

  state(ns: string, key: Buffer, nowMs: number): KeyState {
    const nsId = this.store.namespaceId(ns);
    return nsId === undefined ? absent : new LmdbKeyState(this.store, nsId, key, nowMs);
  }

  readValueInto(ns: string, key: Buffer, nowMs: number, sink: ValueSink): void {
    const nsId = this.store.namespaceId(ns);
    if (nsId === undefined) sink.bulk(null);
    else this.store.readValueInto(nsId, key, nowMs, sink);
  }

  read(ns: string, keys: Buffer[]): (Record | null)[] {
    const nsId = this.store.namespaceId(ns);
    return keys.map((k) => (nsId === undefined ? null : this.store.readRecord(nsId, k)));
  }

  scan(ns: string, start: Buffer, end: Buffer | null, limit: number, reverse: boolean, nowMs: number): Buffer[] {
    const nsId = this.store.namespaceId(ns);
    return nsId === undefined ? [] : this.store.rangeKeys(nsId, start, end, limit, reverse, nowMs);
  }

  readSlot(ns: string, slot: number, after: Buffer | null, limit: number): { keys: Buffer[]; records: Record[] } {
    const nsId = this.store.namespaceId(ns);
    if (nsId === undefined) return { keys: [], records: [] };
    const keys = this.store.slotKeys(nsId, slot, after, limit);
    const records = keys.map((k) => {
      const r = this.store.readRecord(nsId, k);
      // The index entry and the header are written and removed in one transaction.
      if (!r) throw new KvError('INTERNAL', `slot index names key '${k.toString('hex')}' with no record (namespace '${ns}', slot ${slot})`);
      return r;
    });
    return { keys, records };
  }

  dropSlot(ns: string, slot: number, limit: number): Promise<number> {
    const nsId = this.store.namespaceId(ns);
    return nsId === undefined ? Promise.resolve(0) : this.store.dropSlot(nsId, slot, limit);
  }

  /** A write that writes nothing: commits are in order, so it is durable after every earlier one. */
  async barrier(): Promise<void> {
    await this.store.write(noop);
  }

  listSource(ns: string, key: Buffer, nowMs: number): ListSource {
    const nsId = this.store.namespaceId(ns);
    const store = this.store;
    return {
      key,
      pieces: nsId === undefined ? null : store.valuePieces(nsId, key, nowMs),
      field: (name) => (nsId === undefined ? null : store.getField(nsId, key, name, nowMs)),
    };
  }

  keyCount(ns: string): number {
    const nsId = this.store.namespaceId(ns);
    return nsId === undefined ? 0 : this.store.keyCount(nsId);
  }

  addHints(target: NodeId, items: ApplyItem[]): Promise<void> {
    return this.store.putHints(
      target,
      items.map((it) => new WireWriter().str(it.ns).bytes(it.key).record(it.delta).done()),
    );
  }

  peekHints(target: NodeId, limit: number): HintBatch {
    const { ids, payloads } = this.store.peekHints(target, limit);
    return {
      ids,
      items: payloads.map((p) => {
        const r = new WireReader(p);
        const item = { ns: r.str(), key: r.bytes(), delta: r.record() };
        r.end();
        return item;
      }),
    };
  }

  removeHints(target: NodeId, ids: Buffer[]): Promise<void> {
    return this.store.removeHints(target, ids);
  }

  hintTargets(): NodeId[] {
    return this.store.hintTargets();
  }

  hintCount(): number {
    return this.store.hintCount();
  }

  queuePrune(ns: string, keys: Buffer[]): Promise<number> {
    return this.store.queuePrune(ns, keys);
  }

  pruneQueued(maxRecords: number): Promise<PruneResult> {
    return this.store.pruneQueued(maxRecords);
  }

  // ---------------------------------------------------------------- maintenance (node-local)

  /** Deletes up to `max` expired keys; the node calls it from a timer. */
  sweepExpired(nowMs: number, max: number): Promise<number> {
    return this.store.sweepExpired(nowMs, max);
  }

  namespaces(): string[] {
    return this.store.namespaces();
  }

  /** Storage figures for metrics and INFO. */
  stats(): StoreStats {
    const s = this.store;
    return {
      keys: s.totalKeys(),
      bytes: s.totalBytes(),
      pendingWrites: s.pending,
      namespaces: s.namespaces(),
      pruneQueue: s.pruneQueueLength(),
      prunedRecords: s.pruned.records,
      prunedBytes: s.pruned.bytesFreed,
      payloadsRefused: s.pruned.refused,
    };
  }
}

/** A key's state read in place from LMDB, as of `nowMs`. */
class LmdbKeyState implements KeyState {
  constructor(
    private readonly store: LmdbStore,
    private readonly nsId: number,
    private readonly key: Buffer,
    private readonly nowMs: number,
  ) {}
  exists(): boolean {
    return this.store.isLive(this.nsId, this.key, this.nowMs);
  }
  value(): Buffer | null {
    return this.store.getValue(this.nsId, this.key, this.nowMs);
  }
  size(): number {
    return this.store.valueSize(this.nsId, this.key, this.nowMs);
  }
  range(start: number, end: number): Buffer {
    return this.store.getValueRange(this.nsId, this.key, start, end, this.nowMs);
  }
  pieces(): Buffer[] | null {
    return this.store.valuePieces(this.nsId, this.key, this.nowMs);
  }
  visitPieces(visit: (piece: Buffer) => void): boolean {
    return this.store.visitValuePieces(this.nsId, this.key, this.nowMs, visit);
  }
  field(name: Buffer): Buffer | null {
    return this.store.getField(this.nsId, this.key, name, this.nowMs);
  }
  fields(): [Buffer, Buffer][] {
    return this.store.getFields(this.nsId, this.key, this.nowMs);
  }
  fieldCount(): number {
    return this.store.fieldCount(this.nsId, this.key, this.nowMs);
  }
  expireAtMs(): number {
    return Math.max(0, this.store.expireAt(this.nsId, this.key, this.nowMs));
  }
}

function noop(): void {}

/** The state of a key in a namespace this replica has never stored. */
const absent: KeyState = {
  exists: () => false,
  value: () => null,
  size: () => 0,
  range: () => Buffer.alloc(0),
  pieces: () => null,
  visitPieces: () => false,
  field: () => null,
  fields: () => [],
  fieldCount: () => 0,
  expireAtMs: () => 0,
};
