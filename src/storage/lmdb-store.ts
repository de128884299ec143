/**
 * Records on LMDB (lmdb-js). Reads are synchronous lookups in the memory map. Writes run
 * as callbacks inside lmdb-js's batched write transaction (every write issued in one event
 * turn shares one commit), and resolve only once durable:
 *
 * - `fsync` (default): after the commit is flushed to disk (lmdb-js `flushed`);
 * - `commit`: after the commit is visible; survives a killed process, not a power loss;
 * - `none`: LMDB noSync; for throwaway data only.
 *
 * A write applies a delta (a `Record`, see record.ts) with the same result as `merge`, but
 * touches only what the delta changes: an append writes its bytes and a small header.
 *
 * A commit can fail (the disk is full): its writes are rejected, never acknowledged, and
 * nothing of them stays, on disk or in memory. What the store keeps in memory besides LMDB
 * (counters, namespace ids) is therefore taken from what a commit wrote, not from what a
 * callback meant to write. A commit that failed for lack of space makes the disk full
 * (disk-space.ts): later writes are refused at once until space comes back.
 */
import { open, type Database, type RootDatabase } from 'lmdb';
import { KvError, overloaded } from '../common/errors.js';
import { keySlot, slotCount } from '../common/slots.js';
import { DiskSpace } from './disk-space.js';
import { type Record, type Segment, expiryAsOfMs, newestTs, preferredPayload } from './record.js';
import type { SegmentPruner } from './pruner.js';
import { type Version, compareVersions, expiryTombVersion, isNewer, maxVersion, readVersion } from './version.js';
import {
  type ChunkPart,
  type Header,
  baseSegmentKey,
  chunkLastSegKey,
  coverEnd,
  decodeChunk,
  decodeExpiryKey,
  decodeHeader,
  emptyHeader,
  encodeChunk,
  encodeField,
  encodeHeader,
  encodeSingle,
  entryKindAppend,
  entryKindBase,
  entryKindChunk,
  entryPayload,
  expiryKey,
  fieldKey,
  fieldValue,
  fieldVersion,
  headerExpireAt,
  headerFieldCount,
  headerHasValue,
  headerInline,
  headerIsLive,
  headerSize,
  nsEnd,
  nsStart,
  ownerPrefix,
  prefixEnd,
  recordKey,
  segKeyBytes,
  segmentKey,
  slotEntryKey,
  slotKeyPrefixBytes,
  slotStart,
} from './layout.js';

export type Durability = 'fsync' | 'commit' | 'none';

export interface StoreOptions {
  path: string;
  durability?: Durability;
  /** Writes that may wait for a commit at once; more are refused as OVERLOADED. */
  writeQueueMax?: number;
  /** Namespaces that may exist; creating one more is refused. */
  namespacesMax?: number;
  /** Largest base value kept inline in the record header (one lookup per GET). */
  inlineBaseBytesMax?: number;
  /** Single appends written before the tail of a record is folded into a chunk. */
  compactTailCount?: number;
  /** Largest chunk built by compaction, in bytes. */
  chunkBytesMax?: number;
  /** Hints (writes held for other nodes) kept at most, by count and by bytes. */
  hintsMax?: number;
  hintBytesMax?: number;
  /** Removes dead parts of appended segments (deleted vector items); none: never pruned. */
  pruner?: SegmentPruner;
  /**
   * Commit each batch synchronously on the event loop (lmdb-js transactionSync) instead of in
   * lmdb-js's writer thread: for the deterministic simulator, where a write must finish before
   * simulated time moves on. Slower; never for a server.
   */
  syncCommits?: boolean;
  /** Free bytes under which writes are refused as DISK_FULL (see disk-space.ts). */
  diskFreeBytesMin?: number;
}

/** Store-wide counters, persisted with every write. */
interface Stats {
  /** Highest version timestamp applied (restores the HLC after a restart). */
  hlcTs: number;
  /** Records holding a value or fields, per namespace id (expired-but-unswept included). */
  keys: { [nsId: number]: number };
  /** Bytes of values (base + appends) stored. */
  bytes: number;
}

const statsKey = 'stats';
/**
 * On-disk layout version (layout.ts); bump it when the layout changes incompatibly.
 * 2: the prunes table, and compacted vector item batches (count 0 allowed), which format-1
 * code would misread; format-1 data is valid format 2.
 * 3: the slots table (index of each hash slot's records), which format-2 code would not keep
 * up to date. Format 1 and 2 data is upgraded in place: the index is built from the records.
 */
const storageFormat = 3;
const upgradableFormats: readonly number[] = [1, 2];
/**
 * Records indexed per transaction while an upgrade builds the slot index: bounds the size of
 * one transaction (and the dirty pages it holds) whatever the size of the store.
 */
const slotIndexBuildBatch = 10_000;
const formatKey = 'format';
const nsKeyPrefix = 'ns:';

export class LmdbStore {
  private readonly env: RootDatabase;
  private readonly records: Database<Buffer, Buffer>;
  private readonly segments: Database<Buffer, Buffer>;
  private readonly fields: Database<Buffer, Buffer>;
  private readonly expiries: Database<Buffer, Buffer>;
  private readonly system: Database<unknown, string>;
  private readonly hints: Database<Buffer, Buffer>;
  /** Records waiting for a prune: records key -> empty. */
  private readonly prunes: Database<Buffer, Buffer>;
  /** Each record's hash slot: nsId slot key -> empty (layout.ts). */
  private readonly slots: Database<Buffer, Buffer>;
  private readonly pruner: SegmentPruner | undefined;
  private readonly syncCommits: boolean;
  private hintCounts = new Map<string, number>();
  private hintBytes = 0;
  private hintSeq = 0;
  private readonly hintsMax: number;
  private readonly hintBytesMax: number;
  private readonly nsIds = new Map<string, number>();
  /** Namespaces given an id whose entry no commit has written yet: every write transaction writes them. */
  private readonly nsUnwritten = new Map<string, number>();
  /** True until a commit has written the storage format (it could not be written at open). */
  private formatUnwritten = false;
  /**
   * False while the slot index misses records written in an earlier format: an upgrade that
   * a full disk stopped at open. Slot reads then scan the namespace, and no commit writes the
   * new format; the next open with free space builds the index again.
   */
  private slotIndexReady = true;
  /** Counters as of the last commit that succeeded: what readers see. */
  private stats: Stats;
  /**
   * Counters inside a write transaction: read from the database at the start of each
   * callback, so that a failed commit's changes, which LMDB dropped, are dropped here too.
   */
  private txnStats: Stats;
  private pendingWrites = 0;
  private statsDirty = false;
  private closed = false;
  /** Commits in flight (settled or not), for close. */
  private readonly commits = new Set<Promise<void>>();
  /** Free space of the data directory; full means writes are refused. */
  readonly disk: DiskSpace;
  readonly durability: Durability;
  private readonly writeQueueMax: number;
  private readonly namespacesMax: number;
  private readonly inlineBaseBytesMax: number;
  private readonly compactTailCount: number;
  private readonly chunkBytesMax: number;

  constructor(options: StoreOptions) {
    this.durability = options.durability ?? 'fsync';
    this.writeQueueMax = options.writeQueueMax ?? 100_000;
    this.namespacesMax = options.namespacesMax ?? 1024;
    this.inlineBaseBytesMax = options.inlineBaseBytesMax ?? 8 * 1024;
    this.compactTailCount = options.compactTailCount ?? 32;
    this.chunkBytesMax = options.chunkBytesMax ?? 1024 * 1024;
    this.disk = new DiskSpace(options.path, options.diskFreeBytesMin ?? 64 * 1024 * 1024);
    this.env = open({
      path: options.path,
      // `path` is always a directory, even when its name has a dot in it.
      noSubdir: false,
      maxDbs: 16,
      // Grows on demand; this is the address-space reservation, not disk use.
      mapSize: 64 * 1024 * 1024 * 1024,
      overlappingSync: this.durability !== 'none',
      noSync: this.durability === 'none',
      // With event-turn batching, lmdb-js rejects a promise of its own, which no caller can
      // handle, when a commit fails (a full disk): the process would exit on an unhandled
      // rejection. `write` batches per tick itself, and lmdb-js still joins transactions
      // queued before the write thread starts.
      eventTurnBatching: false,
    });
    const binary = { keyEncoding: 'binary', encoding: 'binary' } as const;
    this.records = this.env.openDB<Buffer, Buffer>('records', binary);
    this.segments = this.env.openDB<Buffer, Buffer>('segments', binary);
    this.fields = this.env.openDB<Buffer, Buffer>('fields', binary);
    this.expiries = this.env.openDB<Buffer, Buffer>('expiries', binary);
    this.system = this.env.openDB<unknown, string>('system', { encoding: 'msgpack' });
    this.hints = this.env.openDB<Buffer, Buffer>('hints', binary);
    this.prunes = this.env.openDB<Buffer, Buffer>('prunes', binary);
    this.slots = this.env.openDB<Buffer, Buffer>('slots', binary);
    this.pruner = options.pruner;
    this.syncCommits = options.syncCommits ?? false;
    this.hintsMax = options.hintsMax ?? 1_000_000;
    this.hintBytesMax = options.hintBytesMax ?? 1024 * 1024 * 1024;
    for (const { key, value } of this.hints.getRange({})) {
      const target = hintTarget(key);
      this.hintCounts.set(target, (this.hintCounts.get(target) ?? 0) + 1);
      this.hintBytes += value.length;
      this.hintSeq = Math.max(this.hintSeq, Number(key.readBigUInt64BE(key.length - 8)));
    }
    this.disk.check();
    const format = this.system.get(formatKey) as number | undefined;
    if (format !== undefined && format !== storageFormat && !upgradableFormats.includes(format)) {
      throw new Error(`data at '${options.path}' is in storage format ${format}; this ragkv reads format ${storageFormat}`);
    }
    if (format !== storageFormat) {
      // Earlier formats lack only the slot index, and a new store holds nothing yet: on a full
      // disk, the node starts and serves reads, and the first commit that succeeds writes a new
      // store's format; an upgrade waits for an open with space (slotIndexReady).
      this.formatUnwritten = true;
      this.slotIndexReady = format === undefined;
      if (!this.disk.isFull) {
        try {
          if (!this.slotIndexReady) {
            this.buildSlotIndex();
            this.slotIndexReady = true;
          }
          this.system.putSync(formatKey, storageFormat);
          this.formatUnwritten = false;
        } catch (err) {
          if (!this.disk.commitFailed((err as { code?: unknown }).code)) throw err;
        }
      }
    }
    for (const { key, value } of this.system.getRange({ start: nsKeyPrefix, end: nsKeyPrefix + '\uffff' })) {
      this.nsIds.set(key.slice(nsKeyPrefix.length), value as number);
    }
    this.stats = this.committedStats();
    this.txnStats = this.stats;
  }

  /**
   * Builds the slot index from the records table, `slotIndexBuildBatch` records per
   * transaction (at open, before any write). Starts from an empty index: entries left by an
   * upgrade that stopped part way may name records that an older version removed since.
   */
  private buildSlotIndex(): void {
    this.slots.clearSync();
    let after: Buffer | null = null;
    for (;;) {
      const start: Buffer | undefined = after ? Buffer.concat([after, zeroByte]) : undefined;
      const last: Buffer | null = this.env.transactionSync(() => {
        let seen: Buffer | null = null;
        for (const rk of this.records.getKeys({ start, limit: slotIndexBuildBatch })) {
          const key = rk.subarray(4);
          this.slots.put(slotEntryKey(rk.readUInt32BE(0), keySlot(key), key), emptyBuffer);
          seen = rk;
        }
        return seen;
      });
      if (last === null) return;
      after = last;
    }
  }

  /** The counters the database holds (inside a write callback: as this transaction sees them). */
  private committedStats(): Stats {
    return (this.system.get(statsKey) as Stats | undefined) ?? { hlcTs: 0, keys: {}, bytes: 0 };
  }

  /** Highest version timestamp ever applied here; the HLC starts past it. */
  get highTs(): number {
    return this.stats.hlcTs;
  }

  // ------------------------------------------------------------------ namespaces

  /** Id of an existing namespace, or undefined (reads of it find nothing). */
  namespaceId(name: string): number | undefined {
    return this.nsIds.get(name);
  }

  namespaces(): string[] {
    return [...this.nsIds.keys()].sort();
  }

  // ------------------------------------------------------------------ reads

  /**
   * The records-table key of (nsId, key) in a buffer reused by every call: for synchronous
   * lookups only (lmdb-js copies the key before returning), so the read path allocates none.
   */
  private scratchKey(nsId: number, key: Buffer): Buffer {
    const s = this.keyScratch;
    s.writeUInt32BE(nsId, 0);
    key.copy(s, 4);
    return s.subarray(0, 4 + key.length);
  }
  private readonly keyScratch = Buffer.allocUnsafe(4 + 4096);

  /** The value (base + live appends), or null if absent, expired, or fields-only. */
  getValue(nsId: number, key: Buffer, nowMs: number): Buffer | null {
    // getBinaryFast returns a buffer lmdb-js reuses: copy the value out exactly once.
    const raw = this.records.getBinaryFast(this.scratchKey(nsId, key));
    if (raw === undefined || !headerHasValue(raw)) return null;
    const at = headerExpireAt(raw);
    if (at > 0 && nowMs > at) return null;
    const inline = headerInline(raw);
    if (inline) return Buffer.from(inline);
    return this.readSegments(ownerPrefix(nsId, key), headerSize(raw));
  }

  /**
   * Hands the value to `sink` without copying it first: an inlined value is passed as a
   * view of lmdb-js's reused read buffer, valid only during the call.
   */
  readValueInto(nsId: number, key: Buffer, nowMs: number, sink: { bulk(value: Buffer | null): void }): void {
    const raw = this.records.getBinaryFast(this.scratchKey(nsId, key));
    if (raw === undefined || !headerHasValue(raw)) return sink.bulk(null);
    const at = headerExpireAt(raw);
    if (at > 0 && nowMs > at) return sink.bulk(null);
    const inline = headerInline(raw);
    sink.bulk(inline ?? this.readSegments(ownerPrefix(nsId, key), headerSize(raw)));
  }

  /**
   * The whole CRDT state of a key (versions, op ids, field tombstones), for replication and
   * read repair; null when nothing is stored. Expiry is returned as stored, not applied.
   */
  readRecord(nsId: number, key: Buffer): Record | null {
    const raw = this.records.get(recordKey(nsId, key));
    if (raw === undefined) return null;
    const h = decodeHeader(raw);
    const r: Record = {
      tomb: h.tomb,
      base: h.inlineBase && h.baseVersion ? { version: h.baseVersion, value: h.inlineBase } : null,
      appends: [],
      fields: new Map(),
      expiry: h.expiryVersion ? { version: h.expiryVersion, atMs: h.expireAtMs } : null,
    };
    const prefix = ownerPrefix(nsId, key);
    if (h.entries > 0) {
      for (const { key: k, value } of this.segments.getRange({ start: prefix, end: prefixEnd(prefix) })) {
        const segKey = k.subarray(prefix.length);
        if (value[0] === entryKindBase) {
          r.base = { version: readVersion(segKey, 0), value: value.subarray(1) };
        } else if (value[0] === entryKindAppend) {
          r.appends.push({ version: readVersion(segKey, 0), opId: segKey.subarray(12), bytes: value.subarray(1) });
        } else {
          for (const p of decodeChunk(value)) r.appends.push({ version: readVersion(p.segKey, 0), opId: p.segKey.subarray(12), bytes: p.bytes });
        }
      }
    }
    for (const { key: k, value } of this.fields.getRange({ start: prefix, end: prefixEnd(prefix) })) {
      r.fields.set(k.subarray(prefix.length).toString('latin1'), { version: fieldVersion(value), value: fieldValue(value) });
    }
    return r;
  }

  /**
   * The value as the list of its stored pieces (base, appends, chunks of appends), in order,
   * without joining them: near-data operators (vector search) read each piece in place.
   * Null when the key holds no value.
   */
  valuePieces(nsId: number, key: Buffer, nowMs: number): Buffer[] | null {
    const raw = this.records.getBinaryFast(this.scratchKey(nsId, key));
    if (raw === undefined || !headerHasValue(raw)) return null;
    const at = headerExpireAt(raw);
    if (at > 0 && nowMs > at) return null;
    const inline = headerInline(raw);
    if (inline) return [alignedPiece(inline)];
    const prefix = ownerPrefix(nsId, key);
    const pieces: Buffer[] = [];
    // Peek each entry without lmdb-js's copy, then copy its payload once into fresh memory:
    // 4-byte aligned, so typed-array views over vector blocks need no second copy.
    for (const k of this.segments.getKeys({ start: prefix, end: prefixEnd(prefix) })) {
      pieces.push(alignedPiece(entryPayload(this.segments.getBinaryFast(k)!)));
    }
    return pieces;
  }

  /**
   * Calls `visit` with each stored piece of the value, in order, as a view that is valid
   * only during the call (no copy): for operators that finish with a piece before the next
   * one, such as counting a list's items. Returns false when the key holds no value.
   */
  visitValuePieces(nsId: number, key: Buffer, nowMs: number, visit: (piece: Buffer) => void): boolean {
    const raw = this.records.getBinaryFast(this.scratchKey(nsId, key));
    if (raw === undefined || !headerHasValue(raw)) return false;
    const at = headerExpireAt(raw);
    if (at > 0 && nowMs > at) return false;
    const inline = headerInline(raw);
    if (inline) {
      visit(inline);
      return true;
    }
    const prefix = ownerPrefix(nsId, key);
    for (const k of this.segments.getKeys({ start: prefix, end: prefixEnd(prefix) })) visit(entryPayload(this.segments.getBinaryFast(k)!));
    return true;
  }

  /** Bytes [start, end) of the value, reading only the entries that overlap. */
  getValueRange(nsId: number, key: Buffer, start: number, end: number, nowMs: number): Buffer {
    const raw = this.records.get(recordKey(nsId, key));
    if (raw === undefined || !headerHasValue(raw) || end <= start) return Buffer.alloc(0);
    const at = headerExpireAt(raw);
    if (at > 0 && nowMs > at) return Buffer.alloc(0);
    const inline = headerInline(raw);
    if (inline) return inline.subarray(start, end);
    const prefix = ownerPrefix(nsId, key);
    const parts: Buffer[] = [];
    let offset = 0;
    for (const { value } of this.segments.getRange({ start: prefix, end: prefixEnd(prefix) })) {
      const payload = entryPayload(value);
      const next = offset + payload.length;
      if (next > start) parts.push(payload.subarray(Math.max(0, start - offset), Math.min(payload.length, end - offset)));
      offset = next;
      if (offset >= end) break;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  private readSegments(prefix: Buffer, size: number): Buffer {
    const parts: Buffer[] = [];
    for (const { value } of this.segments.getRange({ start: prefix, end: prefixEnd(prefix) })) {
      parts.push(entryPayload(value));
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, size);
  }

  /** True when the key holds a value or fields and has not expired. */
  isLive(nsId: number, key: Buffer, nowMs: number): boolean {
    const raw = this.records.getBinaryFast(this.scratchKey(nsId, key));
    return raw !== undefined && headerIsLive(raw, nowMs);
  }

  /** Length of the value (0 when absent). */
  valueSize(nsId: number, key: Buffer, nowMs: number): number {
    const raw = this.records.getBinaryFast(this.scratchKey(nsId, key));
    if (raw === undefined || !headerIsLive(raw, nowMs)) return 0;
    return headerSize(raw);
  }

  /** Expiry of a live key: 0 for none, -1 when the key is absent. */
  expireAt(nsId: number, key: Buffer, nowMs: number): number {
    const raw = this.records.getBinaryFast(this.scratchKey(nsId, key));
    if (raw === undefined || !headerIsLive(raw, nowMs)) return -1;
    return headerExpireAt(raw);
  }

  getField(nsId: number, key: Buffer, name: Buffer, nowMs: number): Buffer | null {
    if (!this.isLive(nsId, key, nowMs)) return null;
    const raw = this.fields.get(fieldKey(ownerPrefix(nsId, key), name));
    return raw === undefined ? null : fieldValue(raw);
  }

  /** Live fields, in name order. */
  getFields(nsId: number, key: Buffer, nowMs: number): [Buffer, Buffer][] {
    if (!this.isLive(nsId, key, nowMs)) return [];
    const prefix = ownerPrefix(nsId, key);
    const out: [Buffer, Buffer][] = [];
    for (const { key: k, value } of this.fields.getRange({ start: prefix, end: prefixEnd(prefix) })) {
      const v = fieldValue(value);
      if (v) out.push([k.subarray(prefix.length), v]);
    }
    return out;
  }

  fieldCount(nsId: number, key: Buffer, nowMs: number): number {
    const raw = this.records.getBinaryFast(this.scratchKey(nsId, key));
    if (raw === undefined || !headerIsLive(raw, nowMs)) return 0;
    return headerFieldCount(raw);
  }

  /**
   * Live keys of a namespace in key order, starting after `after` (exclusive), examining at
   * most `examineMax` records. `next` is the last key examined, null when the end was reached.
   */
  scanKeys(
    nsId: number,
    after: Buffer | null,
    examineMax: number,
    nowMs: number,
    accept: (key: Buffer) => boolean,
  ): { keys: Buffer[]; next: Buffer | null } {
    const start = after ? Buffer.concat([recordKey(nsId, after), Buffer.from([0])]) : nsStart(nsId);
    const keys: Buffer[] = [];
    let examined = 0;
    let last: Buffer | null = null;
    for (const { key, value } of this.records.getRange({ start, end: nsEnd(nsId), limit: examineMax })) {
      examined++;
      last = key.subarray(4);
      if (headerIsLive(value, nowMs) && accept(last)) keys.push(last);
    }
    return { keys, next: examined < examineMax ? null : last };
  }

  /** Live keys in [start, end) (reverse: from end down to start), up to `limit` of them. */
  rangeKeys(nsId: number, start: Buffer, end: Buffer | null, limit: number, reverse: boolean, nowMs: number): Buffer[] {
    const lo = recordKey(nsId, start);
    const hi = end && end.length > 0 ? recordKey(nsId, end) : nsEnd(nsId);
    const out: Buffer[] = [];
    const iter = reverse
      ? this.records.getRange({ start: hi, end: nsStart(nsId), reverse: true }) // end is exclusive: stop at lo below
      : this.records.getRange({ start: lo, end: hi });
    for (const { key, value } of iter) {
      if (reverse && key.equals(hi)) continue; // reverse start is inclusive in lmdb-js
      if (reverse && Buffer.compare(key, lo) < 0) break;
      if (!headerIsLive(value, nowMs)) continue;
      out.push(key.subarray(4));
      if (out.length >= limit) break;
    }
    return out;
  }

  /**
   * Keys of slot `slot`'s records in namespace `nsId` (tombstones included), in key order,
   * strictly after `after` (or from the first), at most `limit` of them: read from the slot
   * index, without scanning the namespace. Inside `write`, as this transaction sees them.
   */
  slotKeys(nsId: number, slot: number, after: Buffer | null, limit: number): Buffer[] {
    if (!Number.isInteger(slot) || slot < 0 || slot >= slotCount) throw new RangeError(`slot must be an integer in 0..${slotCount - 1}, got ${slot}`);
    const out: Buffer[] = [];
    if (limit <= 0) return out;
    if (!this.slotIndexReady) {
      // An upgrade a full disk stopped: the index is incomplete, the records table is not.
      const start = after ? Buffer.concat([recordKey(nsId, after), zeroByte]) : nsStart(nsId);
      for (const rk of this.records.getKeys({ start, end: nsEnd(nsId) })) {
        const key = rk.subarray(4);
        if (keySlot(key) !== slot) continue;
        out.push(key);
        if (out.length >= limit) break;
      }
      return out;
    }
    const start = after ? slotEntryKey(nsId, slot, after, 1) : slotStart(nsId, slot);
    for (const k of this.slots.getKeys({ start, end: slotStart(nsId, slot + 1), limit })) out.push(k.subarray(slotKeyPrefixBytes));
    return out;
  }

  /** Physical layout of a record (for tests and diagnostics). */
  layoutOf(nsId: number, key: Buffer): { headerBytes: number; entries: number } {
    const raw = this.records.getBinaryFast(recordKey(nsId, key));
    const prefix = ownerPrefix(nsId, key);
    let entries = 0;
    for (const _ of this.segments.getKeys({ start: prefix, end: prefixEnd(prefix) })) entries++;
    return { headerBytes: raw?.length ?? 0, entries };
  }

  keyCount(nsId: number): number {
    return this.stats.keys[nsId] ?? 0;
  }

  totalKeys(): number {
    let n = 0;
    for (const v of Object.values(this.stats.keys)) n += v;
    return n;
  }

  totalBytes(): number {
    return this.stats.bytes;
  }

  // ------------------------------------------------------------------ writes

  /**
   * Runs `fn` inside the next batched write transaction and resolves with its result once
   * the batch is durable. Writes issued in one synchronous run (a client's pipelined
   * commands) share one callback and one stats update; lmdb-js joins callbacks queued
   * before its write thread starts into one LMDB transaction, with one flush. `fn` reads
   * through this store's read methods (they see the transaction's own writes) and writes
   * through `apply` / `ensureNamespace`. A `fn` that throws rejects its own write only; it
   * must throw before writing (validate first). A commit that fails rejects every write of
   * its batch (DISK_FULL when the disk is full); none of them is acknowledged.
   */
  write<T>(fn: () => T): Promise<T> {
    if (this.closed) return Promise.reject(new KvError('UNAVAILABLE', 'storage is closed'));
    // Refused before it is tried: a write small enough for LMDB's free pages would succeed
    // and make the state flap, while the next large one fails again.
    if (this.disk.isFull) return Promise.reject(this.disk.refusal());
    if (this.pendingWrites >= this.writeQueueMax) {
      return Promise.reject(
        overloaded(`write queue is full: ${this.pendingWrites} writes waiting, limit 'writeQueueMax' (${this.writeQueueMax})`),
      );
    }
    this.pendingWrites++;
    return new Promise<T>((resolve, reject) => {
      this.queued.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      if (!this.commitScheduled) {
        this.commitScheduled = true;
        process.nextTick(commitQueuedTick, this);
      }
    });
  }

  private queued: { fn: () => unknown; resolve: (v: unknown) => void; reject: (e: unknown) => void }[] = [];
  private commitScheduled = false;

  /** @internal the nextTick callback of `write`. */
  commitQueued(): void {
    const batch = this.queued;
    this.queued = [];
    this.commitScheduled = false;
    const outcomes: { ok: boolean; value: unknown }[] = new Array(batch.length);
    let statsAfter: Stats | undefined;
    let nsWritten: [string, number][] = [];
    let formatWritten = false;
    const run = () => {
      // The counters as committed (and as earlier callbacks of this transaction left them):
      // not the in-memory ones, which may still hold a failed commit's changes.
      this.txnStats = this.committedStats();
      this.statsDirty = false;
      for (let i = 0; i < batch.length; i++) {
        try {
          outcomes[i] = { ok: true, value: batch[i]!.fn() };
        } catch (err) {
          outcomes[i] = { ok: false, value: err };
        }
      }
      // Namespaces created by this batch or by a batch whose commit failed: their entries go
      // in the same transaction as the records that use their ids.
      for (const [name, id] of this.nsUnwritten) this.system.put(nsKeyPrefix + name, id);
      nsWritten = [...this.nsUnwritten];
      if (this.formatUnwritten && this.slotIndexReady) {
        this.system.put(formatKey, storageFormat);
        formatWritten = true;
      }
      if (this.statsDirty) {
        this.system.put(statsKey, this.txnStats);
        this.statsDirty = false;
      }
      statsAfter = this.txnStats;
    };
    let done: Promise<unknown>;
    if (this.syncCommits) {
      try {
        this.env.transactionSync(run);
        done = Promise.resolve();
      } catch (err) {
        done = Promise.reject(err);
      }
    } else {
      done = this.env.transaction(run);
    }
    // The flush of this transaction, taken now (`then` reads lmdb-js's current flush):
    // later, it would be a later transaction's, which never settles if that one fails.
    let flushed: Promise<unknown> | undefined;
    if (this.durability === 'fsync') {
      flushed = new Promise((resolve, reject) => void this.env.flushed.then(resolve, reject));
      flushed.catch(() => {}); // waited for only when the commit succeeds
    }
    const settle = (err?: unknown) => {
      this.pendingWrites -= batch.length;
      for (let i = 0; i < batch.length; i++) {
        const o = outcomes[i];
        if (err !== undefined) batch[i]!.reject(err instanceof KvError && err.code === 'DISK_FULL' ? this.disk.refusal() : err);
        else if (!o) batch[i]!.reject(new KvError('INTERNAL', 'write was not run'));
        else if (o.ok) batch[i]!.resolve(o.value);
        else batch[i]!.reject(o.value);
      }
    };
    const committed = done.then(
      () => {
        // Commits settle in order, so this is the latest committed state.
        if (statsAfter) this.stats = statsAfter;
        for (const [name, id] of nsWritten) if (this.nsUnwritten.get(name) === id) this.nsUnwritten.delete(name);
        if (formatWritten) this.formatUnwritten = false;
        return flushed;
      },
      (err: unknown) => this.commitFailure(err),
    );
    const settled = committed.then(
      () => settle(),
      (err: unknown) => settle(err ?? new KvError('INTERNAL', 'commit failed')),
    );
    this.commits.add(settled);
    void settled.finally(() => this.commits.delete(settled));
  }

  /**
   * Turns a failed commit's error into the one its writes get: DISK_FULL when it failed for
   * lack of space (the disk is full from now on), else an error naming the LMDB error.
   */
  private async commitFailure(err: unknown): Promise<never> {
    // lmdb-js gives "Commit failed" with the cause in a promise of its own that rejects with
    // the LMDB error (`code`: an errno, or an LMDB code); unhandled, it would end the process.
    const cause = (err as { commitError?: Promise<unknown> } | null)?.commitError;
    let lmdbError: unknown = err;
    if (cause && typeof cause.then === 'function') {
      lmdbError = await cause.then(
        () => err,
        (e: unknown) => e,
      );
    }
    const code = (lmdbError as { code?: unknown } | null)?.code;
    if (this.disk.commitFailed(code)) throw new KvError('DISK_FULL', 'disk full');
    throw new Error(`storage commit failed: ${lmdbError instanceof Error ? lmdbError.message : String(lmdbError)}`, { cause: lmdbError });
  }

  /** Writes waiting for their commit now. */
  get pending(): number {
    return this.pendingWrites;
  }

  /**
   * Id of a namespace, created if needed. Its entry is written by the next write
   * transaction, together with the first records that use the id (and again by later ones
   * until a commit succeeds).
   */
  ensureNamespace(name: string): number {
    const known = this.nsIds.get(name);
    if (known !== undefined) return known;
    if (this.nsIds.size >= this.namespacesMax) {
      throw new KvError('LIMIT_EXCEEDED', `namespace '${name}' would be one more than limit 'namespacesMax' (${this.namespacesMax})`);
    }
    let id = 0;
    for (const v of this.nsIds.values()) id = Math.max(id, v + 1);
    this.nsIds.set(name, id);
    this.nsUnwritten.set(name, id);
    return id;
  }

  /**
   * Merges `delta` into the stored record of `key` (only inside `write`). Returns the
   * record's header afterwards (size, field count, expiry) for replies such as APPEND's.
   */
  apply(nsId: number, key: Buffer, delta: Record, nowMs: number): Header {
    const rk = recordKey(nsId, key);
    const raw = this.records.get(rk);
    const h = raw ? decodeHeader(raw) : emptyHeader();
    const countedBefore = counted(h);
    const sizeBefore = h.size;
    const prefix = ownerPrefix(nsId, key);

    // An expiry whose time has passed becomes a tombstone before anything else applies, judged
    // as of the write's own version (expiryAsOfMs): a replica's clock running ahead would stamp
    // a tombstone newer than a write that refreshed the key in time.
    const asOfMs = expiryAsOfMs(delta, nowMs);
    if (h.expireAtMs > 0 && asOfMs > h.expireAtMs) this.cover(h, nsId, key, prefix, expiryTombVersion(h.expireAtMs), true);
    if (delta.tomb && isNewer(delta.tomb, h.tomb)) this.cover(h, nsId, key, prefix, delta.tomb, true);
    if (delta.base && isNewer(delta.base.version, h.baseVersion) && isNewer(delta.base.version, h.tomb)) {
      this.setBase(h, nsId, key, prefix, delta.base.version, delta.base.value);
    }
    if (delta.expiry && isNewer(delta.expiry.version, h.expiryVersion) && isNewer(delta.expiry.version, h.tomb)) {
      this.setExpiry(h, nsId, key, delta.expiry.version, delta.expiry.atMs);
    }
    const floor = maxVersion(h.tomb, h.baseVersion);
    for (const seg of delta.appends) {
      if (isNewer(seg.version, floor)) this.insertSegment(h, nsId, key, prefix, seg);
    }
    for (const [name, fv] of delta.fields) {
      if (!isNewer(fv.version, h.tomb)) continue;
      const fk = fieldKey(prefix, Buffer.from(name, 'latin1'));
      const existing = this.fields.getBinaryFast(fk);
      if (existing !== undefined && !isNewer(fv.version, fieldVersion(existing))) continue;
      const wasLive = existing !== undefined && existing[12] === 1;
      if (existing === undefined) h.fieldEntries++;
      this.fields.put(fk, encodeField(fv.version, fv.value));
      h.fieldCount += (fv.value ? 1 : 0) - (wasLive ? 1 : 0);
    }
    if (h.tail >= this.compactTailCount) this.compactTail(h, prefix);

    this.noteVersions(delta);
    if (h.tomb || h.baseVersion || h.entries > 0 || h.fieldEntries > 0 || h.expiryVersion) {
      this.records.put(rk, encodeHeader(h));
      if (!raw) this.slots.put(slotEntryKey(nsId, keySlot(key), key), emptyBuffer);
    } else if (raw) {
      this.records.remove(rk);
      this.slots.remove(slotEntryKey(nsId, keySlot(key), key));
    }
    const countedAfter = counted(h);
    if (countedAfter !== countedBefore || h.size !== sizeBefore) {
      const stats = this.txnStats;
      stats.keys[nsId] = (stats.keys[nsId] ?? 0) + (countedAfter ? 1 : 0) - (countedBefore ? 1 : 0);
      stats.bytes += h.size - sizeBefore;
      this.statsDirty = true;
    }
    return h;
  }

  private noteVersions(delta: Record): void {
    const ts = Math.max(this.txnStats.hlcTs, newestTs(delta));
    if (ts !== this.txnStats.hlcTs) {
      this.txnStats.hlcTs = ts;
      this.statsDirty = true;
    }
  }

  /**
   * Removes what version `v` covers: every segment entry not newer than it (splitting a
   * chunk that straddles it) and, for a tombstone, the base, fields and expiry too.
   */
  private cover(h: Header, nsId: number, key: Buffer, prefix: Buffer, v: Version, tomb: boolean): void {
    if (tomb) h.tomb = maxVersion(h.tomb, v);
    if (h.inlineBase && h.baseVersion && !isNewer(h.baseVersion, v)) {
      h.size -= h.inlineBase.length;
      h.inlineBase = null;
      h.baseVersion = null;
    }
    if (h.entries > 0) {
      const end = coverEnd(prefix, v);
      const covered = [...this.segments.getKeys({ start: prefix, end })];
      for (const sk of covered) {
        const entry = this.segments.getBinaryFast(sk)!;
        const kind = entry[0];
        if (kind === entryKindChunk && Buffer.compare(chunkLastSegKey(entry), end.subarray(prefix.length)) >= 0) {
          // Straddles v: keep the parts newer than v as a smaller chunk.
          const parts = decodeChunk(entry);
          const keep = parts.filter((p) => compareVersions(readVersion(p.segKey, 0), v) > 0).map(copyPart);
          for (const p of parts) if (compareVersions(readVersion(p.segKey, 0), v) <= 0) h.size -= p.bytes.length;
          this.segments.remove(sk);
          this.putParts(prefix, keep);
          continue;
        }
        h.size -= entryPayload(entry).length;
        if (kind === entryKindBase) h.baseVersion = null;
        this.segments.remove(sk);
        h.entries--;
      }
      if (h.entries === 0) h.tail = 0;
    }
    if (!tomb) return;
    if (h.baseVersion && !isNewer(h.baseVersion, v)) h.baseVersion = null;
    if (h.expiryVersion && !isNewer(h.expiryVersion, v)) {
      if (h.expireAtMs > 0) this.expiries.remove(expiryKey(h.expireAtMs, nsId, key));
      h.expiryVersion = null;
      h.expireAtMs = 0;
    }
    if (h.fieldEntries > 0) {
      for (const { key: fk, value } of this.fields.getRange({ start: prefix, end: prefixEnd(prefix) })) {
        if (isNewer(fieldVersion(value), v)) continue;
        if (value[12] === 1) h.fieldCount--;
        h.fieldEntries--;
        this.fields.remove(fk);
      }
    }
  }

  /** Writes kept chunk parts back: one part as a single entry, more as a chunk. */
  private putParts(prefix: Buffer, parts: ChunkPart[]): void {
    if (parts.length === 0) return;
    const key = Buffer.concat([prefix, parts[0]!.segKey]);
    if (parts.length === 1) this.segments.put(key, encodeSingle(entryKindAppend, parts[0]!.bytes));
    else this.segments.put(key, encodeChunk(parts));
  }

  private setBase(h: Header, nsId: number, key: Buffer, prefix: Buffer, version: Version, value: Buffer): void {
    if (h.inlineBase) {
      h.size -= h.inlineBase.length;
      h.inlineBase = null;
    }
    this.cover(h, nsId, key, prefix, version, false);
    if (h.entries === 0 && value.length <= this.inlineBaseBytesMax) {
      h.inlineBase = value;
    } else {
      this.segments.put(baseSegmentKey(prefix, version), encodeSingle(entryKindBase, value));
      h.entries++;
    }
    h.baseVersion = version;
    h.size += value.length;
  }

  private setExpiry(h: Header, nsId: number, key: Buffer, version: Version, atMs: number): void {
    if (h.expireAtMs > 0) this.expiries.remove(expiryKey(h.expireAtMs, nsId, key));
    h.expiryVersion = version;
    h.expireAtMs = atMs;
    if (atMs > 0) this.expiries.put(expiryKey(atMs, nsId, key), Buffer.alloc(0));
  }

  /**
   * Adds one append segment unless the same op is already there. A second payload of an op
   * (pruned on another replica) replaces the stored one when merge prefers it. Queues the
   * record for pruning when the segment can kill earlier parts, arrives after later ones, or
   * replaces a payload.
   */
  private insertSegment(h: Header, nsId: number, key: Buffer, prefix: Buffer, seg: Segment): void {
    if (h.inlineBase && h.baseVersion) {
      // The first append moves the base out of the header, so that later appends do not
      // rewrite it: from here on the header stays small.
      this.segments.put(baseSegmentKey(prefix, h.baseVersion), encodeSingle(entryKindBase, h.inlineBase));
      h.inlineBase = null;
      h.entries++;
    }
    const sk = segmentKey(prefix, seg.version, seg.opId);
    const pruner = this.pruner;
    if (h.entries > 0) {
      let floorKey: Buffer | undefined;
      for (const k of this.segments.getKeys({ start: sk, end: prefix, reverse: true, limit: 1 })) floorKey = k;
      if (floorKey) {
        const entry = this.segments.getBinaryFast(floorKey)!;
        if (entry[0] === entryKindChunk && Buffer.compare(chunkLastSegKey(entry), sk.subarray(prefix.length)) >= 0) {
          // Falls inside a chunk's range: keep the invariant by inserting it into the chunk.
          const parts = decodeChunk(entry).map(copyPart);
          const mine = sk.subarray(prefix.length);
          const same = parts.find((p) => p.segKey.equals(mine));
          if (same) {
            if (!this.takesPayload(seg.bytes, same.bytes)) return;
            h.size += seg.bytes.length - same.bytes.length;
            same.bytes = seg.bytes;
          } else {
            parts.push({ segKey: Buffer.from(mine), bytes: seg.bytes });
            parts.sort((a, b) => Buffer.compare(a.segKey, b.segKey));
            h.size += seg.bytes.length;
          }
          this.segments.put(floorKey, encodeChunk(parts));
          // Not the last op: it may be dead already, or (a payload taken) prunable further.
          if (pruner && (same || pruner.killsEarlier(seg.bytes) || (pruner.mayDie(seg.bytes) && this.deletesFrom(pruner, prefix, floorKey)))) {
            this.queuePruneOf(nsId, key);
          }
          return;
        }
        if (floorKey.equals(sk)) {
          // The same op, applied again: keep the payload merge prefers.
          const stored = entry.subarray(1);
          if (this.takesPayload(seg.bytes, stored)) {
            h.size += seg.bytes.length - stored.length;
            this.segments.put(sk, encodeSingle(entry[0]!, seg.bytes));
            this.queuePruneOf(nsId, key);
          }
          return;
        }
      }
    }
    if (pruner) {
      // Arriving after later segments, it may be dead already: only if one of them deletes.
      const late = h.entries > 0 && pruner.mayDie(seg.bytes) && this.deletesFrom(pruner, prefix, sk);
      if (late || pruner.killsEarlier(seg.bytes)) this.queuePruneOf(nsId, key);
    }
    this.segments.put(sk, encodeSingle(entryKindAppend, seg.bytes));
    h.entries++;
    h.tail++;
    h.size += seg.bytes.length;
  }

  // ------------------------------------------------------------------ pruning

  /**
   * True when another replica's payload of an op replaces the stored one: merge prefers it
   * (see `preferredPayload`) and the pruner confirms it is a pruned form of the stored one.
   * A payload that is neither equal nor a pruned form is refused (and counted).
   */
  private takesPayload(candidate: Buffer, stored: Buffer): boolean {
    if (candidate.equals(stored) || preferredPayload(candidate, stored) !== candidate) return false;
    if (this.pruner?.prunedFrom(candidate, stored)) return true;
    this.pruned.refused++;
    return false;
  }

  /** True when an entry of the record at or after `from` holds something that kills earlier parts. */
  private deletesFrom(pruner: SegmentPruner, prefix: Buffer, from: Buffer): boolean {
    for (const k of this.segments.getKeys({ start: from, end: prefixEnd(prefix) })) {
      if (pruner.killsEarlier(entryPayload(this.segments.getBinaryFast(k)!))) return true;
    }
    return false;
  }

  private queuePruneOf(nsId: number, key: Buffer): void {
    this.prunes.put(recordKey(nsId, key), emptyBuffer);
  }

  /** Records waiting to be pruned. */
  pruneQueueLength(): number {
    return this.prunes.getCount();
  }

  /**
   * Queues the records of `keys` for pruning (an operator's explicit compaction); returns how
   * many hold a value. Without a pruner nothing is queued.
   */
  async queuePrune(ns: string, keys: Buffer[]): Promise<number> {
    const nsId = this.nsIds.get(ns);
    if (!this.pruner || nsId === undefined) return 0;
    return this.write(() => {
      let n = 0;
      for (const key of keys) {
        const raw = this.records.getBinaryFast(this.scratchKey(nsId, key));
        if (raw === undefined || !headerHasValue(raw)) continue;
        this.queuePruneOf(nsId, key);
        n++;
      }
      return n;
    });
  }

  /**
   * Prunes queued records, at most `maxRecords` of them (oldest keys first) in one write:
   * each record's segments are read, handed to the pruner, and the segments it shrinks are
   * rewritten in place (same version and op id). Returns how many records were pruned and
   * the bytes freed. Call from a timer; `maxRecords` bounds the work of one call.
   */
  async pruneQueued(maxRecords: number): Promise<{ records: number; bytesFreed: number }> {
    const pruner = this.pruner;
    if (!pruner) return { records: 0, bytesFreed: 0 };
    const due: Buffer[] = [];
    for (const k of this.prunes.getKeys({ limit: maxRecords })) due.push(k);
    if (due.length === 0) return { records: 0, bytesFreed: 0 };
    const result = await this.write(() => {
      let bytesFreed = 0;
      for (const rk of due) {
        this.prunes.remove(rk);
        bytesFreed += this.pruneRecord(pruner, rk);
      }
      return { records: due.length, bytesFreed };
    });
    this.pruned.records += result.records;
    this.pruned.bytesFreed += result.bytesFreed;
    return result;
  }

  /**
   * Records and bytes pruned since this store was opened, and payloads of an op refused
   * because they were not a pruned form of the stored one.
   */
  readonly pruned = { records: 0, bytesFreed: 0, refused: 0 };

  private pruneRecord(pruner: SegmentPruner, rk: Buffer): number {
    const raw = this.records.get(rk);
    if (raw === undefined) return 0;
    const h = decodeHeader(raw);
    if (h.entries === 0) return 0;
    const nsId = rk.readUInt32BE(0);
    const prefix = ownerPrefix(nsId, rk.subarray(4));
    const entries: { key: Buffer; kind: number; parts: ChunkPart[] }[] = [];
    for (const { key: k, value } of this.segments.getRange({ start: prefix, end: prefixEnd(prefix) })) {
      const kind = value[0]!;
      const parts = kind === entryKindChunk ? decodeChunk(value) : [{ segKey: k.subarray(prefix.length), bytes: value.subarray(1) }];
      entries.push({ key: k, kind, parts });
    }
    let next: (Buffer | null)[];
    try {
      next = pruner.prune(entries.flatMap((e) => e.parts.map((p) => p.bytes)));
    } catch {
      return 0; // not of the pruner's format: nothing to prune
    }
    let freed = 0;
    let at = 0;
    for (const e of entries) {
      let changed = false;
      const parts = e.parts.map((p) => {
        const bytes = next[at++] ?? null;
        // A base is last-writer-wins by version alone: its bytes are never rewritten.
        if (bytes === null || e.kind === entryKindBase || bytes.length >= p.bytes.length) return p;
        changed = true;
        freed += p.bytes.length - bytes.length;
        return { segKey: p.segKey, bytes };
      });
      if (!changed) continue;
      this.segments.put(e.key, e.kind === entryKindChunk ? encodeChunk(parts) : encodeSingle(e.kind, parts[0]!.bytes));
    }
    if (freed > 0) {
      h.size -= freed;
      this.records.put(rk, encodeHeader(h));
      this.txnStats.bytes -= freed;
      this.statsDirty = true;
    }
    return freed;
  }

  /**
   * Folds the run of small single appends at the end of a record into one chunk, so a
   * record with many appends reads a few entries. Cost is bounded by `chunkBytesMax`,
   * not by the record's size. Merge results are unchanged: each op keeps its key.
   */
  private compactTail(h: Header, prefix: Buffer): void {
    h.tail = 0;
    const parts: ChunkPart[] = [];
    const keys: Buffer[] = [];
    let bytes = 0;
    for (const k of this.segments.getKeys({ start: prefixEnd(prefix), end: prefix, reverse: true })) {
      if (k.length !== prefix.length + segKeyBytes || !k.subarray(0, prefix.length).equals(prefix)) continue;
      const entry = this.segments.getBinaryFast(k)!;
      if (entry[0] !== entryKindAppend) break;
      const len = entry.length - 1;
      if (bytes + len > this.chunkBytesMax || parts.length >= this.compactTailCount * 4) break;
      parts.push({ segKey: Buffer.from(k.subarray(prefix.length)), bytes: Buffer.from(entry.subarray(1)) });
      keys.push(k);
      bytes += len;
    }
    if (parts.length < 2) return;
    parts.reverse();
    keys.reverse();
    for (const k of keys) this.segments.remove(k);
    this.segments.put(keys[0]!, encodeChunk(parts));
    h.entries -= parts.length - 1;
  }

  /**
   * Turns records expired by `nowMs` into tombstones, at most `max` of them; returns how many.
   * Call from a timer; it runs as one write. A cluster member passes its clock less the
   * clock bound, so that a clock running ahead never tombstones a key another member may
   * still refresh in time (reads hide expired keys meanwhile).
   */
  async sweepExpired(nowMs: number, max: number): Promise<number> {
    const upper = Buffer.alloc(8);
    upper.writeBigUInt64BE(BigInt(Math.floor(nowMs)), 0);
    const due: Buffer[] = [];
    for (const k of this.expiries.getKeys({ end: upper, limit: max })) due.push(k);
    if (due.length === 0) return 0;
    return this.write(() => {
      let n = 0;
      for (const k of due) {
        const { atMs, nsId, key } = decodeExpiryKey(k);
        const raw = this.records.getBinaryFast(recordKey(nsId, key));
        if (raw !== undefined && headerExpireAt(raw) === atMs) {
          this.apply(nsId, key, emptyDelta, nowMs);
          n++;
        } else {
          this.expiries.remove(k); // stale index entry
        }
      }
      return n;
    });
  }

  // ------------------------------------------------------------------ slots

  /**
   * Physically removes up to `limit` records of slot `slot` in namespace `nsId` (first in
   * key order), with everything they own, in one durable write: for a replica that no
   * longer holds the slot. Returns how many were removed; fewer than `limit` means the slot
   * is empty here now. Nothing is left behind for them: not a tombstone, since the records
   * live on at the slot's replicas.
   */
  async dropSlot(nsId: number, slot: number, limit: number): Promise<number> {
    return this.write(() => {
      // Read inside the transaction: a record created since the call is dropped too.
      const keys = this.slotKeys(nsId, slot, null, limit);
      for (const key of keys) this.removeRecord(nsId, slot, key);
      return keys.length;
    });
  }

  /**
   * Removes a record's header, segments, fields, expiry and slot index entries and its place
   * in the prune queue (only inside `write`), and takes it out of the counters.
   */
  private removeRecord(nsId: number, slot: number, key: Buffer): void {
    const rk = recordKey(nsId, key);
    this.slots.remove(slotEntryKey(nsId, slot, key));
    this.prunes.remove(rk);
    const raw = this.records.get(rk);
    if (raw === undefined) return;
    const h = decodeHeader(raw);
    const prefix = ownerPrefix(nsId, key);
    const end = prefixEnd(prefix);
    // Not judged by the header's counts: a physical removal leaves no entry behind.
    for (const k of [...this.segments.getKeys({ start: prefix, end })]) this.segments.remove(k);
    for (const k of [...this.fields.getKeys({ start: prefix, end })]) this.fields.remove(k);
    if (h.expireAtMs > 0) this.expiries.remove(expiryKey(h.expireAtMs, nsId, key));
    this.records.remove(rk);
    if (counted(h) || h.size !== 0) {
      const stats = this.txnStats;
      if (counted(h)) stats.keys[nsId] = (stats.keys[nsId] ?? 0) - 1;
      stats.bytes -= h.size;
      this.statsDirty = true;
    }
  }

  // ------------------------------------------------------------------ hints

  /** Stores hints for `target` in one durable write; refuses OVERLOADED over the bounds. */
  async putHints(target: string, payloads: Buffer[]): Promise<void> {
    let bytes = 0;
    for (const p of payloads) bytes += p.length;
    const count = this.hintCount();
    if (count + payloads.length > this.hintsMax) {
      throw overloaded(`hint store is full: ${count} hints, limit 'hintsMax' (${this.hintsMax})`);
    }
    if (this.hintBytes + bytes > this.hintBytesMax) {
      throw overloaded(`hint store is full: ${this.hintBytes} bytes, limit 'hintBytesMax' (${this.hintBytesMax})`);
    }
    this.hintCounts.set(target, (this.hintCounts.get(target) ?? 0) + payloads.length);
    this.hintBytes += bytes;
    const keys = payloads.map(() => hintKey(target, ++this.hintSeq));
    try {
      await this.write(() => payloads.forEach((p, i) => this.hints.put(keys[i]!, p)));
    } catch (err) {
      // Not stored (a full disk): counted as stored, the bounds would shrink for good.
      const left = (this.hintCounts.get(target) ?? 0) - payloads.length;
      if (left > 0) this.hintCounts.set(target, left);
      else this.hintCounts.delete(target);
      this.hintBytes -= bytes;
      throw err;
    }
  }

  /** The oldest hints for `target`: their ids (keys) and payloads. */
  peekHints(target: string, limit: number): { ids: Buffer[]; payloads: Buffer[] } {
    const start = hintKey(target, 0);
    const end = hintKey(target, Number.MAX_SAFE_INTEGER);
    const ids: Buffer[] = [];
    const payloads: Buffer[] = [];
    for (const { key, value } of this.hints.getRange({ start, end, limit })) {
      ids.push(key);
      payloads.push(value);
    }
    return { ids, payloads };
  }

  async removeHints(target: string, ids: Buffer[]): Promise<void> {
    let removed = 0;
    let bytes = 0;
    await this.write(() => {
      for (const id of ids) {
        const v = this.hints.getBinaryFast(id);
        if (v === undefined) continue;
        bytes += v.length;
        removed++;
        this.hints.remove(id);
      }
    });
    const left = (this.hintCounts.get(target) ?? 0) - removed;
    if (left > 0) this.hintCounts.set(target, left);
    else this.hintCounts.delete(target);
    this.hintBytes -= bytes;
  }

  hintTargets(): string[] {
    return [...this.hintCounts.keys()].sort();
  }

  hintCount(): number {
    let n = 0;
    for (const c of this.hintCounts.values()) n += c;
    return n;
  }

  /** Waits for pending writes, then closes LMDB. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Writes queued in this tick are committed on nextTick, ahead of this one.
    await new Promise<void>((resolve) => process.nextTick(resolve));
    while (this.commits.size > 0) await Promise.allSettled([...this.commits]);
    // lmdb-js's close waits for its last transaction's flush, which never comes when that
    // commit failed; an empty transaction writes nothing (it commits on a full disk too) and
    // settles it.
    if (this.syncCommits) {
      try {
        this.env.transactionSync(() => {});
      } catch {
        // a full disk: the close below still releases the files
      }
    } else {
      await this.env.transaction(() => {}).catch(() => {});
    }
    await this.env.close();
  }
}

/** Hint keys: target length, target, sequence: a target's hints are contiguous and in order. */
function hintKey(target: string, seq: number): Buffer {
  const t = Buffer.from(target);
  const out = Buffer.allocUnsafe(1 + t.length + 8);
  out[0] = t.length;
  t.copy(out, 1);
  out.writeBigUInt64BE(BigInt(seq), 1 + t.length);
  return out;
}

function hintTarget(key: Buffer): string {
  return key.toString('utf8', 1, 1 + key[0]!);
}

/**
 * A copy of `bytes` that is 8-byte aligned: Node's pool hands out slices at multiples of 8
 * and larger buffers get their own ArrayBuffer (checked, so a change in Node cannot slip by).
 */
function alignedPiece(bytes: Buffer): Buffer {
  let out = Buffer.allocUnsafe(bytes.length);
  if (out.byteOffset % 8 !== 0) out = Buffer.from(new ArrayBuffer(bytes.length));
  bytes.copy(out);
  return out;
}

function commitQueuedTick(store: LmdbStore): void {
  store.commitQueued();
}

const emptyBuffer = Buffer.alloc(0);
/** Appended to a key: the smallest key after it (the exclusive start of a page). */
const zeroByte = Buffer.from([0]);
const emptyDelta: Record = { tomb: null, base: null, appends: [], fields: new Map(), expiry: null };

function counted(h: Header): boolean {
  return h.baseVersion !== null || h.entries > 0 || h.fieldCount > 0;
}

function copyPart(p: ChunkPart): ChunkPart {
  return { segKey: Buffer.from(p.segKey), bytes: Buffer.from(p.bytes) };
}

/** Opens (creating if needed) a store at `options.path`. */
export function openStore(options: StoreOptions): LmdbStore {
  return new LmdbStore(options);
}

