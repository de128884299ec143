/**
 * The single-node coordinator: serves KvApi from the local store. It validates input
 * against the limits (before anything is written), stamps each write with an HLC version
 * and a unique op id, and runs conditional writes (NX/XX, counts) inside the write
 * transaction so that the check and the write are atomic.
 */
import { randomBytes } from 'node:crypto';
import type { Limits } from '../common/limits.js';
import { invalidArgument } from '../common/errors.js';
import { InputChecks, expiryConditionHolds } from './validate.js';
import { type ItemBatchInput, appendMayBreakList } from '../compute/vector-items.js';
import { LiveItems, checkShape, finishSearch, listBatches, searchLists } from '../compute/vector-search.js';
import { checkAppend, checkAppends, encodeBatch, encodeDeletes, itemRange, vaddSegment } from './vectors.js';
import { compactNow } from '../replica/store.js';
import { globMatch, resolveByteRange } from '../compute/index.js';
import { type Clock, HybridClock, systemClock } from '../storage/hlc.js';
import { type LmdbStore } from '../storage/lmdb-store.js';
import { type FieldValue, type Record, type Segment, opIdBytes } from '../storage/record.js';
import type { Version } from '../storage/version.js';
import type {
  ExpireCondition,
  KvApi,
  KvPair,
  PruneResult,
  RangeOptions,
  ScanOptions,
  ScanPage,
  SetOptions,
  SetResult,
  ValueSink,
  VectorItem,
  VectorSearchRequest,
  VectorSearchResult,
} from './api.js';

export interface LocalCoordinatorOptions {
  limits: Limits;
  clock?: Clock;
  /** Tie-break of this node's versions. */
  nodeId?: number;
}

/** Keys deleted per write transaction by deleteRange, so one call cannot build a huge batch. */
const deleteRangeBatch = 10_000;

/** Storage figures of a node, for metrics and INFO. */
export interface LocalStats {
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

export class LocalCoordinator implements KvApi {
  private readonly limits: Limits;
  private readonly checks: InputChecks;
  private readonly clock: Clock;
  private readonly hlc: HybridClock;
  /** Op ids are a per-process random prefix plus a counter: unique without coordination. */
  private readonly opPrefix = randomBytes(8);
  private opCounter = 0n;

  constructor(
    private readonly store: LmdbStore,
    options: LocalCoordinatorOptions,
  ) {
    this.limits = options.limits;
    this.checks = new InputChecks(options.limits);
    this.clock = options.clock ?? systemClock;
    this.hlc = new HybridClock(this.clock, options.nodeId ?? 1);
    this.hlc.observe({ ts: store.highTs, node: 0 });
  }

  // ------------------------------------------------------------------ validation

  private checkKey(key: Buffer): void {
    this.checks.key(key);
  }
  private checkValue(value: Buffer): void {
    this.checks.value(value);
  }
  private checkField(name: Buffer): void {
    this.checks.field(name);
  }
  private checkBatch(n: number, what: string): void {
    this.checks.batch(n, what);
  }
  private checkNamespace(ns: string): void {
    this.checks.namespace(ns);
  }

  /** Namespace id for a read; undefined when it was never written (reads find nothing). */
  private readNs(ns: string): number | undefined {
    const id = this.store.namespaceId(ns);
    if (id === undefined) this.checkNamespace(ns);
    return id;
  }

  private writeNs(ns: string): number {
    const id = this.store.namespaceId(ns);
    if (id !== undefined) return id;
    this.checkNamespace(ns);
    return this.store.ensureNamespace(ns);
  }

  // ------------------------------------------------------------------ deltas

  private nextOpId(): Buffer {
    const id = Buffer.allocUnsafe(opIdBytes);
    this.opPrefix.copy(id, 0);
    id.writeBigUInt64BE(++this.opCounter, 8);
    return id;
  }

  private delta(): Record {
    return { tomb: null, base: null, appends: [], fields: new Map(), expiry: null };
  }

  // ------------------------------------------------------------------ values

  get(ns: string, key: Buffer): Buffer | null {
    const id = this.readNs(ns);
    this.checkKey(key);
    if (id === undefined) return null;
    return this.store.getValue(id, key, this.clock.nowMs());
  }

  readValue(ns: string, key: Buffer, sink: ValueSink): undefined {
    const id = this.readNs(ns);
    this.checkKey(key);
    if (id === undefined) sink.bulk(null);
    else this.store.readValueInto(id, key, this.clock.nowMs(), sink);
    return undefined;
  }

  /** A single node has one replica: every level is met by it. */
  withConsistency(): KvApi {
    return this;
  }

  getMany(ns: string, keys: Buffer[]): (Buffer | null)[] {
    this.checkBatch(keys.length, 'multi-get');
    const id = this.readNs(ns);
    for (const k of keys) this.checkKey(k);
    const now = this.clock.nowMs();
    return keys.map((k) => (id === undefined ? null : this.store.getValue(id, k, now)));
  }

  getRange(ns: string, key: Buffer, start: number, end: number): Buffer {
    const id = this.readNs(ns);
    this.checkKey(key);
    if (id === undefined) return Buffer.alloc(0);
    const now = this.clock.nowMs();
    const r = resolveByteRange(this.store.valueSize(id, key, now), start, end);
    return r ? this.store.getValueRange(id, key, r[0], r[1], now) : Buffer.alloc(0);
  }

  strlen(ns: string, key: Buffer): number {
    const id = this.readNs(ns);
    this.checkKey(key);
    return id === undefined ? 0 : this.store.valueSize(id, key, this.clock.nowMs());
  }

  exists(ns: string, key: Buffer): boolean {
    const id = this.readNs(ns);
    this.checkKey(key);
    return id !== undefined && this.store.isLive(id, key, this.clock.nowMs());
  }

  async set(ns: string, key: Buffer, value: Buffer, options: SetOptions = {}): Promise<SetResult> {
    this.checkKey(key);
    this.checkValue(value);
    const now = this.clock.nowMs();
    let atMs = 0;
    if (options.ttlMs !== undefined) {
      if (!(options.ttlMs > 0)) throw invalidArgument(`invalid expire time: ${options.ttlMs} ms`);
      atMs = now + options.ttlMs;
    } else if (options.expireAtMs !== undefined) {
      if (!(options.expireAtMs > 0)) throw invalidArgument(`invalid expire time: ${options.expireAtMs}`);
      atMs = options.expireAtMs;
    }
    const id = this.writeNs(ns);
    const version = this.hlc.now();
    const d = this.delta();
    d.base = { version, value };
    if (!options.keepTtl) d.expiry = { version, atMs };
    const { condition, returnOld } = options;
    if (!condition && !returnOld) {
      await this.store.write(() => this.store.apply(id, key, d, now));
      return { written: true };
    }
    return this.store.write(() => {
      const old = returnOld ? this.store.getValue(id, key, now) : undefined;
      if (condition) {
        const live = this.store.isLive(id, key, now);
        if ((condition === 'NX' && live) || (condition === 'XX' && !live)) {
          return returnOld ? { written: false, old: old ?? null } : { written: false };
        }
      }
      this.store.apply(id, key, d, now);
      return returnOld ? { written: true, old: old ?? null } : { written: true };
    });
  }

  async setMany(ns: string, pairs: KvPair[], options: { ttlMs?: number } = {}): Promise<void> {
    this.checkBatch(pairs.length, 'multi-set');
    const ttlMs = options.ttlMs;
    if (ttlMs !== undefined && !(ttlMs > 0)) throw invalidArgument(`invalid expire time: ${ttlMs} ms`);
    for (const p of pairs) {
      this.checkKey(p.key);
      this.checkValue(p.value);
    }
    const id = this.writeNs(ns);
    const now = this.clock.nowMs();
    const deltas = pairs.map((p) => {
      const version = this.hlc.now();
      const d = this.delta();
      d.base = { version, value: p.value };
      d.expiry = { version, atMs: ttlMs ? now + ttlMs : 0 };
      return d;
    });
    await this.store.write(() => {
      for (let i = 0; i < pairs.length; i++) this.store.apply(id, pairs[i]!.key, deltas[i]!, now);
    });
  }

  private appendDelta(bytes: Buffer): Record {
    const seg: Segment = { version: this.hlc.now(), opId: this.nextOpId(), bytes };
    const d = this.delta();
    d.appends = [seg];
    return d;
  }

  async append(ns: string, key: Buffer, bytes: Buffer): Promise<number> {
    this.checkKey(key);
    this.checkValue(bytes);
    const id = this.writeNs(ns);
    const d = this.appendDelta(bytes);
    const now = this.clock.nowMs();
    return this.store.write(() => {
      if (appendMayBreakList(bytes)) checkAppend(key, this.store.firstValuePiece(id, key, now), bytes); // a list stays a list
      return this.store.apply(id, key, d, now).size;
    });
  }

  async appendMany(ns: string, pairs: KvPair[]): Promise<number[]> {
    this.checkBatch(pairs.length, 'multi-append');
    for (const p of pairs) {
      this.checkKey(p.key);
      this.checkValue(p.value);
    }
    const id = this.writeNs(ns);
    const deltas = pairs.map((p) => this.appendDelta(p.value));
    const now = this.clock.nowMs();
    return this.store.write(() => {
      const heads = (i: number) => (appendMayBreakList(pairs[i]!.value) ? this.store.firstValuePiece(id, pairs[i]!.key, now) : null);
      checkAppends(pairs, heads); // every pair before any write
      return pairs.map((p, i) => this.store.apply(id, p.key, deltas[i]!, now).size);
    });
  }

  async del(ns: string, keys: Buffer[]): Promise<number> {
    this.checkBatch(keys.length, 'delete');
    for (const k of keys) this.checkKey(k);
    const id = this.readNs(ns);
    if (id === undefined) return 0;
    const tomb = this.hlc.now();
    const now = this.clock.nowMs();
    return this.store.write(() => {
      let n = 0;
      for (const k of keys) {
        if (!this.store.isLive(id, k, now)) continue;
        const d = this.delta();
        d.tomb = tomb;
        this.store.apply(id, k, d, now);
        n++;
      }
      return n;
    });
  }

  async deleteRange(ns: string, start: Buffer, end: Buffer): Promise<number> {
    if (end.length > 0 && Buffer.compare(start, end) > 0) throw invalidArgument('start key must not be after end key');
    const id = this.readNs(ns);
    if (id === undefined) return 0;
    let total = 0;
    for (;;) {
      const tomb = this.hlc.now();
      const now = this.clock.nowMs();
      const n = await this.store.write(() => {
        const keys = this.store.rangeKeys(id, start, end, deleteRangeBatch, false, now);
        for (const k of keys) {
          const d = this.delta();
          d.tomb = tomb;
          this.store.apply(id, k, d, now);
        }
        return keys.length;
      });
      total += n;
      if (n < deleteRangeBatch) return total;
    }
  }

  // ------------------------------------------------------------------ expiry

  async expireAt(ns: string, key: Buffer, atMs: number | null, condition?: ExpireCondition): Promise<boolean> {
    this.checkKey(key);
    if (atMs !== null && !Number.isFinite(atMs)) throw invalidArgument(`invalid expire time: ${atMs}`);
    const id = this.readNs(ns);
    if (id === undefined) return false;
    const version = this.hlc.now();
    const now = this.clock.nowMs();
    return this.store.write(() => {
      const current = this.store.expireAt(id, key, now);
      if (current < 0) return false;
      if (atMs === null) {
        if (current === 0) return false;
      } else if (!expiryConditionHolds(condition, current, atMs)) {
        return false;
      }
      const d = this.delta();
      if (atMs !== null && atMs <= now) d.tomb = version; // a time in the past deletes, as in Redis
      else d.expiry = { version, atMs: atMs ?? 0 };
      this.store.apply(id, key, d, now);
      return true;
    });
  }

  ttlMs(ns: string, key: Buffer): number {
    const id = this.readNs(ns);
    this.checkKey(key);
    if (id === undefined) return -2;
    const now = this.clock.nowMs();
    const at = this.store.expireAt(id, key, now);
    if (at < 0) return -2;
    if (at === 0) return -1;
    return Math.max(0, at - now);
  }

  // ------------------------------------------------------------------ fields

  async hset(ns: string, key: Buffer, fields: KvPair[]): Promise<number> {
    this.checkKey(key);
    this.checkBatch(fields.length, 'field set');
    if (fields.length === 0) throw invalidArgument('no fields given');
    const d = this.delta();
    const names: Buffer[] = [];
    for (const f of fields) {
      this.checkField(f.key);
      this.checkValue(f.value);
      const name = f.key.toString('latin1');
      if (!d.fields.has(name)) names.push(f.key);
      d.fields.set(name, { version: this.hlc.now(), value: f.value });
    }
    const id = this.writeNs(ns);
    const now = this.clock.nowMs();
    return this.store.write(() => {
      let added = 0;
      for (const name of names) if (this.store.getField(id, key, name, now) === null) added++;
      this.store.apply(id, key, d, now);
      return added;
    });
  }

  hget(ns: string, key: Buffer, field: Buffer): Buffer | null {
    const id = this.readNs(ns);
    this.checkKey(key);
    return id === undefined ? null : this.store.getField(id, key, field, this.clock.nowMs());
  }

  hmget(ns: string, key: Buffer, fields: Buffer[]): (Buffer | null)[] {
    this.checkBatch(fields.length, 'field get');
    const id = this.readNs(ns);
    this.checkKey(key);
    const now = this.clock.nowMs();
    return fields.map((f) => (id === undefined ? null : this.store.getField(id, key, f, now)));
  }

  hgetall(ns: string, key: Buffer): KvPair[] {
    const id = this.readNs(ns);
    this.checkKey(key);
    if (id === undefined) return [];
    return this.store.getFields(id, key, this.clock.nowMs()).map(([k, v]) => ({ key: k, value: v }));
  }

  async hdel(ns: string, key: Buffer, fields: Buffer[]): Promise<number> {
    this.checkKey(key);
    this.checkBatch(fields.length, 'field delete');
    const id = this.readNs(ns);
    if (id === undefined) return 0;
    const now = this.clock.nowMs();
    const version: Version = this.hlc.now();
    return this.store.write(() => {
      const d = this.delta();
      for (const f of fields) {
        const name = f.toString('latin1');
        if (d.fields.has(name) || this.store.getField(id, key, f, now) === null) continue;
        d.fields.set(name, { version, value: null } satisfies FieldValue);
      }
      if (d.fields.size > 0) this.store.apply(id, key, d, now);
      return d.fields.size;
    });
  }

  hlen(ns: string, key: Buffer): number {
    const id = this.readNs(ns);
    this.checkKey(key);
    return id === undefined ? 0 : this.store.fieldCount(id, key, this.clock.nowMs());
  }

  hexists(ns: string, key: Buffer, field: Buffer): boolean {
    return this.hget(ns, key, field) !== null;
  }

  // ------------------------------------------------------------------ keyspace

  scan(ns: string, options: ScanOptions): ScanPage {
    const count = Math.min(Math.max(1, options.count), this.limits.scanLimitMax);
    const id = this.readNs(ns);
    if (id === undefined) return { keys: [], next: null };
    const match = options.match;
    const accept = match && !(match.length === 1 && match[0] === 0x2a) ? (k: Buffer) => globMatch(match, k) : () => true;
    return this.store.scanKeys(id, options.cursor, count, this.clock.nowMs(), accept);
  }

  range(ns: string, options: RangeOptions): KvPair[] {
    this.checks.rangeLimit(options.limit);
    const start = options.start ?? Buffer.alloc(0);
    const end = options.end && options.end.length > 0 ? options.end : null;
    this.checks.rangeBounds(start, end);
    const id = this.readNs(ns);
    if (id === undefined) return [];
    const now = this.clock.nowMs();
    const keys = this.store.rangeKeys(id, start, end, options.limit, options.reverse ?? false, now);
    const empty = Buffer.alloc(0);
    return keys.map((key) => ({ key, value: options.keyOnly ? empty : (this.store.getValue(id, key, now) ?? empty) }));
  }

  dbsize(ns: string): number {
    const id = this.readNs(ns);
    return id === undefined ? 0 : this.store.keyCount(id);
  }

  // ------------------------------------------------------------------ vector lists

  private pieces(id: number | undefined, key: Buffer, now: number): Buffer[] | null {
    return id === undefined ? null : this.store.valuePieces(id, key, now);
  }

  /**
   * Live items of a list, counted over views of the stored pieces: ids only, no vector or
   * payload is copied, so an append's reply does not copy the whole list.
   */
  private countItems(id: number | undefined, key: Buffer, now: number): number {
    if (id === undefined) return 0;
    const set = new LiveItems();
    this.store.visitValuePieces(id, key, now, (piece) => {
      for (const b of listBatches(key, [piece])) set.add(b);
    });
    return set.count;
  }

  async vadd(ns: string, key: Buffer, batch: ItemBatchInput): Promise<number> {
    this.checkKey(key);
    const bytes = encodeBatch(batch);
    this.checkValue(bytes);
    const id = this.writeNs(ns);
    const now = this.clock.nowMs();
    // Shape check and append in one transaction: two first appends cannot both win.
    return this.store.write(() => {
      let shapeFound = false;
      const live = new LiveItems();
      this.store.visitValuePieces(id, key, now, (piece) => {
        if (!shapeFound) shapeFound = checkShape(key, [piece], batch.type, batch.dim);
        for (const b of listBatches(key, [piece])) live.add(b);
      });
      // Replaced ids get a delete batch in the same op (see vaddSegment).
      const seg = vaddSegment(key, live, bytes);
      this.checkValue(seg.bytes);
      this.store.apply(id, key, this.appendDelta(seg.bytes), now);
      return seg.count;
    });
  }

  async vdel(ns: string, key: Buffer, ids: Buffer[]): Promise<number> {
    this.checkKey(key);
    this.checkBatch(ids.length, 'item delete');
    const bytes = encodeDeletes(ids);
    const id = this.readNs(ns);
    if (id === undefined) return 0;
    const d = this.appendDelta(bytes);
    const now = this.clock.nowMs();
    return this.store.write(() => {
      if (!this.store.isLive(id, key, now)) return 0;
      this.countItems(id, key, now); // a value that is not a list is refused before anything is written
      this.store.apply(id, key, d, now);
      return this.countItems(id, key, now);
    });
  }

  vcard(ns: string, key: Buffer): number {
    const id = this.readNs(ns);
    this.checkKey(key);
    return this.countItems(id, key, this.clock.nowMs());
  }

  vrange(ns: string, key: Buffer, start: number, stop: number, options?: { withVectors?: boolean; withPayloads?: boolean }): VectorItem[] {
    const id = this.readNs(ns);
    this.checkKey(key);
    return itemRange(key, this.pieces(id, key, this.clock.nowMs()), start, stop, options);
  }

  async vsearch(ns: string, request: VectorSearchRequest): Promise<VectorSearchResult> {
    this.checkBatch(request.keys.length, 'vector search');
    for (const k of request.keys) this.checkKey(k);
    const id = this.readNs(ns);
    const { store, clock } = this;
    const found = await searchLists(
      request.keys.map((key) => ({
        key,
        // Read when searched: a search yields between lists, and a list read then is current.
        get pieces() {
          return id === undefined ? null : store.valuePieces(id, key, clock.nowMs());
        },
        field: (name: Buffer) => (id === undefined ? null : store.getField(id, key, name, clock.nowMs())),
      })),
      request,
    );
    return finishSearch(request, [found], []);
  }

  hmgetMany(ns: string, keys: Buffer[], fields: Buffer[]): (Buffer | null)[][] {
    this.checkBatch(keys.length * Math.max(1, fields.length), 'multi-key field get');
    return keys.map((k) => this.hmget(ns, k, fields));
  }

  // ------------------------------------------------------------------ maintenance

  /** Deletes up to `max` expired keys; the node calls it from a timer. */
  sweepExpired(max: number): Promise<number> {
    return this.store.sweepExpired(this.clock.nowMs(), max);
  }

  /** Prunes up to `max` records queued for it (deleted vector items); the node calls it from a timer. */
  pruneQueued(max: number): Promise<PruneResult> {
    return this.store.pruneQueued(max);
  }

  compact(ns: string, keys: Buffer[]): Promise<PruneResult> {
    this.checkBatch(keys.length, 'compaction');
    for (const k of keys) this.checkKey(k);
    return compactNow(this.store, ns, keys);
  }

  /** Storage figures for metrics and INFO. */
  stats(): LocalStats {
    return {
      keys: this.store.totalKeys(),
      bytes: this.store.totalBytes(),
      pendingWrites: this.store.pending,
      namespaces: this.store.namespaces(),
      pruneQueue: this.store.pruneQueueLength(),
      prunedRecords: this.store.pruned.records,
      prunedBytes: this.store.pruned.bytesFreed,
      payloadsRefused: this.store.pruned.refused,
    };
  }
}
