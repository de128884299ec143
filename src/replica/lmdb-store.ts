/** ReplicaStore over the node's LMDB store: what a production replica keeps. */
import type { NodeId } from '../cluster/transport.js';
import type { LmdbStore } from '../storage/lmdb-store.js';
import type { Record } from '../storage/record.js';
import type { ListSource } from '../compute/vector-search.js';
import type { PruneResult } from '../coordinator/api.js';
import type { ApplyItem, ApplyResult, HintBatch, ReplicaStore } from './store.js';
import { WireReader, WireWriter } from './wire.js';

export class LmdbReplicaStore implements ReplicaStore {
  constructor(private readonly store: LmdbStore) {}

  async apply(items: ApplyItem[], nowMs: number): Promise<ApplyResult[]> {
    // Namespaces are created before the transaction: a refusal must not abort a shared batch.
    const ids = items.map((it) => this.store.ensureNamespace(it.ns));
    return this.store.write(() =>
      items.map((it, i) => {
        const nsId = ids[i]!;
        const wasLive = this.store.isLive(nsId, it.key, nowMs);
        let fieldsAdded = 0;
        let fieldsRemoved = 0;
        const before = new Map<string, boolean>();
        for (const name of it.delta.fields.keys()) {
          before.set(name, this.store.getField(nsId, it.key, Buffer.from(name, 'latin1'), nowMs) !== null);
        }
        const h = this.store.apply(nsId, it.key, it.delta, nowMs);
        for (const [name, f] of it.delta.fields) {
          const now = this.store.getField(nsId, it.key, Buffer.from(name, 'latin1'), nowMs) !== null;
          if (f.value && now && !before.get(name)) fieldsAdded++;
          if (!f.value && !now && before.get(name)) fieldsRemoved++;
        }
        const live = this.store.isLive(nsId, it.key, nowMs);
        return { size: live ? h.size : 0, wasLive, fieldsAdded, fieldsRemoved };
      }),
    );
  }

  read(ns: string, keys: Buffer[]): (Record | null)[] {
    const nsId = this.store.namespaceId(ns);
    return keys.map((k) => (nsId === undefined ? null : this.store.readRecord(nsId, k)));
  }

  scan(ns: string, start: Buffer, end: Buffer | null, limit: number, reverse: boolean, nowMs: number): Buffer[] {
    const nsId = this.store.namespaceId(ns);
    return nsId === undefined ? [] : this.store.rangeKeys(nsId, start, end, limit, reverse, nowMs);
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
}
