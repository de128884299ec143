/**
 * ReplicaStore in memory, for the simulator: records kept as merged CRDT states, so a
 * simulated replica behaves exactly as merge says. "Durable" means it survives a simulated
 * crash (the object outlives the node's transport and timers), like a disk would.
 */
import { KvError } from '../common/errors.js';
import { keySlot } from '../common/slots.js';
import type { NodeId } from '../cluster/transport.js';
import { type Record, compareSegments, emptyRecord, expire, expiryAsOfMs, merge, preferredPayload, view } from '../storage/record.js';
import type { SegmentPruner } from '../storage/pruner.js';
import { vectorItemPruner } from '../compute/vector-items.js';
import type { PruneResult } from './store.js';
import type { ApplyItem, ApplyResult, Decision, HintBatch, ReplicaStore, ValueSink } from './store.js';
import { type KeyState, RecordKeyState } from '../storage/key-state.js';
import type { ListSource } from '../compute/vector-search.js';

interface Entry {
  key: Buffer;
  record: Record;
}

export class MemoryReplicaStore implements ReplicaStore {
  private readonly data = new Map<string, Map<string, Entry>>();
  private readonly hints = new Map<NodeId, { id: number; item: ApplyItem }[]>();
  private hintSeq = 0;
  private readonly pruneQueue = new Set<string>();
  /** Records pruned and bytes freed so far. */
  readonly pruned = { records: 0, bytesFreed: 0, refused: 0 };

  constructor(
    private readonly hintsMax = 1_000_000,
    private readonly pruner: SegmentPruner = vectorItemPruner,
    /** Namespaces that may exist, as on LMDB ('namespacesMax'). */
    private readonly namespacesMax = 1024,
  ) {}

  private ns(ns: string): Map<string, Entry> {
    let m = this.data.get(ns);
    if (!m) {
      if (this.data.size >= this.namespacesMax) {
        throw new KvError('LIMIT_EXCEEDED', `namespace '${ns}' would be one more than limit 'namespacesMax' (${this.namespacesMax})`);
      }
      this.data.set(ns, (m = new Map()));
    }
    return m;
  }

  /** Called for each key written, after the write (anti-entropy marks the key's slot). */
  onChange: ((ns: string, key: Buffer) => void) | null = null;

  async apply(items: ApplyItem[], nowMs: number): Promise<ApplyResult[]> {
    for (const it of items) this.ns(it.ns); // a refused namespace refuses the batch before anything is applied
    const out = this.applyNow(items, nowMs);
    if (this.onChange) for (const it of items) this.onChange(it.ns, it.key);
    return out;
  }

  private applyNow(items: ApplyItem[], nowMs: number): ApplyResult[] {
    return items.map(({ ns, key, delta }) => {
      const m = this.ns(ns);
      const id = key.toString('latin1');
      const before = m.get(id)?.record ?? emptyRecord();
      const vb = view(before, nowMs);
      const taken = this.refuseForeignPayloads(before, copyRecord(delta));
      // Expired as of the write's own time (see LmdbStore.apply).
      const after = merge(expire(before, expiryAsOfMs(taken, nowMs)), taken);
      m.set(id, { key: Buffer.from(key), record: after });
      if (this.needsPrune(before, after, taken)) this.pruneQueue.add(`${ns}\u0000${id}`);
      const va = view(after, nowMs);
      let fieldsAdded = 0;
      let fieldsRemoved = 0;
      const had = new Set(vb.fields.map(([k]) => k.toString('latin1')));
      for (const [name, f] of delta.fields) {
        if (f.value && !had.has(name) && va.fields.some(([k]) => k.toString('latin1') === name)) fieldsAdded++;
        if (!f.value && had.has(name) && !va.fields.some(([k]) => k.toString('latin1') === name)) fieldsRemoved++;
      }
      return { size: va.exists ? (va.value?.length ?? 0) : 0, wasLive: vb.exists, fieldsAdded, fieldsRemoved };
    });
  }

  async update<T>(ns: string, key: Buffer, nowMs: number, decide: (state: KeyState) => Decision<T>): Promise<T> {
    const d = decide(this.state(ns, key, nowMs));
    if (d.delta) await this.apply([{ ns, key, delta: d.delta }], nowMs);
    return d.reply;
  }

  state(ns: string, key: Buffer, nowMs: number): KeyState {
    return new RecordKeyState(this.data.get(ns)?.get(key.toString('latin1'))?.record ?? null, nowMs);
  }

  readValueInto(ns: string, key: Buffer, nowMs: number, sink: ValueSink): void {
    sink.bulk(this.state(ns, key, nowMs).value());
  }

  read(ns: string, keys: Buffer[]): (Record | null)[] {
    const m = this.data.get(ns);
    return keys.map((k) => {
      const e = m?.get(k.toString('latin1'));
      return e ? copyRecord(e.record) : null;
    });
  }

  scan(ns: string, start: Buffer, end: Buffer | null, limit: number, reverse: boolean, nowMs: number): Buffer[] {
    const m = this.data.get(ns);
    if (!m) return [];
    const keys = [...m.values()]
      .filter((e) => Buffer.compare(e.key, start) >= 0 && (!end || Buffer.compare(e.key, end) < 0) && view(e.record, nowMs).exists)
      .map((e) => e.key)
      .sort(Buffer.compare);
    if (reverse) keys.reverse();
    return keys.slice(0, limit);
  }

  readSlot(ns: string, slot: number, after: Buffer | null, limit: number): { keys: Buffer[]; records: Record[] } {
    const entries = this.slotEntries(ns, slot, after, limit);
    return { keys: entries.map((e) => Buffer.from(e.key)), records: entries.map((e) => copyRecord(e.record)) };
  }

  async dropSlot(ns: string, slot: number, limit: number): Promise<number> {
    const m = this.data.get(ns);
    if (!m) return 0;
    // Records that hold nothing (LMDB stores none) go too, uncounted.
    for (const [id, e] of m) if (keySlot(e.key) === slot && holdsNothing(e.record)) m.delete(id);
    const entries = this.slotEntries(ns, slot, null, limit);
    for (const e of entries) {
      const id = e.key.toString('latin1');
      m.delete(id);
      this.pruneQueue.delete(`${ns}\u0000${id}`);
    }
    return entries.length;
  }

  /** Writes here are durable once applied. */
  async barrier(): Promise<void> {}

  /**
   * The slot's stored records in key order after `after`, at most `limit`: by scanning and
   * sorting (a simulator's stores are small). A record that holds nothing at all is left out,
   * as LMDB stores no header for it.
   */
  private slotEntries(ns: string, slot: number, after: Buffer | null, limit: number): Entry[] {
    const m = this.data.get(ns);
    if (!m || limit <= 0) return [];
    const out: Entry[] = [];
    for (const e of m.values()) {
      if (keySlot(e.key) !== slot || (after && Buffer.compare(e.key, after) <= 0) || holdsNothing(e.record)) continue;
      out.push(e);
    }
    out.sort((a, b) => Buffer.compare(a.key, b.key));
    return out.slice(0, limit);
  }

  listSource(ns: string, key: Buffer, nowMs: number): ListSource {
    const e = this.data.get(ns)?.get(key.toString('latin1'));
    const v = e ? view(e.record, nowMs) : null;
    return {
      key,
      pieces: v?.value ? [v.value] : null,
      field: (name) => (v ? (v.fields.find(([k]) => k.equals(name))?.[1] ?? null) : null),
    };
  }

  namespaces(): string[] {
    return [...this.data.keys()].sort();
  }

  keyCount(ns: string): number {
    const m = this.data.get(ns);
    if (!m) return 0;
    let n = 0;
    for (const e of m.values()) if (e.record.base || e.record.appends.length || [...e.record.fields.values()].some((f) => f.value)) n++;
    return n;
  }

  async addHints(target: NodeId, items: ApplyItem[]): Promise<void> {
    if (this.hintCount() + items.length > this.hintsMax) {
      throw new KvError('OVERLOADED', `hint store is full: limit 'hintsMax' (${this.hintsMax})`);
    }
    let list = this.hints.get(target);
    if (!list) this.hints.set(target, (list = []));
    for (const item of items) list.push({ id: ++this.hintSeq, item: { ns: item.ns, key: Buffer.from(item.key), delta: copyRecord(item.delta) } });
  }

  peekHints(target: NodeId, limit: number): HintBatch {
    const list = (this.hints.get(target) ?? []).slice(0, limit);
    return { ids: list.map((h) => idBuffer(h.id)), items: list.map((h) => h.item) };
  }

  async removeHints(target: NodeId, ids: Buffer[]): Promise<void> {
    const gone = new Set(ids.map((b) => b.readUInt32BE(0)));
    const list = (this.hints.get(target) ?? []).filter((h) => !gone.has(h.id));
    if (list.length) this.hints.set(target, list);
    else this.hints.delete(target);
  }

  hintTargets(): NodeId[] {
    return [...this.hints.keys()].sort();
  }

  hintCount(): number {
    let n = 0;
    for (const l of this.hints.values()) n += l.length;
    return n;
  }

  /** The same triggers as the LMDB store: deletes, a late arrival, a payload taken from a peer. */
  private needsPrune(before: Record, after: Record, delta: Record): boolean {
    const pruner = this.pruner;
    const last = after.appends[after.appends.length - 1];
    for (const seg of delta.appends) {
      const had = before.appends.find((s) => compareSegments(s, seg) === 0);
      if (had) {
        if (!had.bytes.equals(seg.bytes)) return true;
        continue; // applied again: changes nothing
      }
      if (pruner.killsEarlier(seg.bytes)) return true;
      if (last && compareSegments(seg, last) < 0 && pruner.mayDie(seg.bytes)) {
        // Arriving after later segments, it may be dead already: only if one of them deletes.
        if (after.appends.some((s) => compareSegments(s, seg) > 0 && pruner.killsEarlier(s.bytes))) return true;
      }
    }
    return false;
  }

  /**
   * As the LMDB store: another payload of a stored op is kept out of the merge unless it is a
   * pruned form of the stored one (then merge keeps the shorter).
   */
  private refuseForeignPayloads(before: Record, delta: Record): Record {
    delta.appends = delta.appends.map((seg) => {
      const had = before.appends.find((s) => compareSegments(s, seg) === 0);
      if (!had || had.bytes.equals(seg.bytes)) return seg;
      if (preferredPayload(seg.bytes, had.bytes) !== seg.bytes) return had;
      if (this.pruner.prunedFrom(seg.bytes, had.bytes)) return seg;
      this.pruned.refused++;
      return had;
    });
    return delta;
  }

  async queuePrune(ns: string, keys: Buffer[]): Promise<number> {
    let n = 0;
    for (const k of keys) {
      const id = k.toString('latin1');
      const e = this.data.get(ns)?.get(id);
      if (!e || (!e.record.base && e.record.appends.length === 0)) continue;
      this.pruneQueue.add(`${ns}\u0000${id}`);
      n++;
    }
    return n;
  }

  async pruneQueued(maxRecords: number): Promise<PruneResult> {
    const due = [...this.pruneQueue].slice(0, maxRecords);
    let bytesFreed = 0;
    for (const q of due) {
      this.pruneQueue.delete(q);
      const sep = q.indexOf('\u0000');
      const e = this.data.get(q.slice(0, sep))?.get(q.slice(sep + 1));
      if (!e || e.record.appends.length === 0) continue;
      const r = e.record;
      const parts = [...(r.base ? [r.base.value] : []), ...r.appends.map((s) => s.bytes)];
      let next: (Buffer | null)[];
      try {
        next = this.pruner.prune(parts);
      } catch {
        continue; // not a posting list
      }
      const off = r.base ? 1 : 0;
      r.appends = r.appends.map((s, i) => {
        const bytes = next[i + off];
        if (!bytes || bytes.length >= s.bytes.length) return s;
        bytesFreed += s.bytes.length - bytes.length;
        return { version: s.version, opId: s.opId, bytes };
      });
    }
    this.pruned.records += due.length;
    this.pruned.bytesFreed += bytesFreed;
    return { records: due.length, bytesFreed };
  }

}

function holdsNothing(r: Record): boolean {
  return !r.tomb && !r.base && r.appends.length === 0 && r.fields.size === 0 && !r.expiry;
}

function idBuffer(id: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(id, 0);
  return b;
}

/** Deep copy: replicas must never share Buffers or Maps with messages or each other. */
export function copyRecord(r: Record): Record {
  return {
    tomb: r.tomb,
    base: r.base && { version: r.base.version, value: Buffer.from(r.base.value) },
    appends: r.appends.map((s) => ({ version: s.version, opId: Buffer.from(s.opId), bytes: Buffer.from(s.bytes) })),
    fields: new Map([...r.fields].map(([k, f]) => [k, { version: f.version, value: f.value && Buffer.from(f.value) }])),
    expiry: r.expiry,
  };
}
