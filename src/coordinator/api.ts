/**
 * The key-value API every server (RESP, gRPC) calls. On a single node the coordinator serves
 * it from local storage; in a cluster the same API fans out to replicas.
 *
 * Keys, values and field names are bytes (Buffer). A namespace is a name; `default` exists.
 * Reads return a value at once when a local replica can answer (always on a single node)
 * and a promise when replicas elsewhere must be asked. Writes resolve once durable on
 * enough replicas and reject with a KvError on bad input, overload or too few replicas.
 * Keys and values passed in may be views of larger buffers: an implementation that keeps
 * them after the call must copy them.
 */

/** A result now, or later when other nodes must answer. */
export type MaybePromise<T> = T | Promise<T>;

/** How many of a key's N replicas must answer: one, a majority, or all of them. */
export type Level = 'ONE' | 'QUORUM' | 'ALL';

export type { PruneResult } from '../replica/store.js';
import type { PruneResult } from '../replica/store.js';

export interface Consistency {
  read: Level;
  write: Level;
}

/** Options of a SET (RESP SET / gRPC RawPut). */
export interface SetOptions {
  /** Expire after this many milliseconds (SET EX/PX, RawPut ttl). */
  ttlMs?: number;
  /** Expire at this Unix time in milliseconds (SET EXAT/PXAT). */
  expireAtMs?: number;
  /** Keep the key's current expiry instead of clearing it (SET KEEPTTL). */
  keepTtl?: boolean;
  /** Only set if the key does not exist (NX) / does exist (XX). */
  condition?: 'NX' | 'XX';
  /** Also return the previous value (SET GET). */
  returnOld?: boolean;
}

export interface SetResult {
  /** False when an NX/XX condition stopped the write. */
  written: boolean;
  /** The previous value, when `returnOld` was asked; null if the key was absent. */
  old?: Buffer | null;
}

/** How EXPIRE behaves relative to an existing expiry (Redis 7 EXPIRE NX|XX|GT|LT). */
export type ExpireCondition = 'NX' | 'XX' | 'GT' | 'LT';

export interface ScanOptions {
  /** Resume after this key (exclusive); null starts at the beginning. */
  cursor: Buffer | null;
  /** Upper bound of keys examined in this call. */
  count: number;
  /** Glob pattern (Redis MATCH syntax) the returned keys must match. */
  match?: Buffer;
}

export interface ScanPage {
  keys: Buffer[];
  /** Key to pass as the next cursor; null when the scan is complete. */
  next: Buffer | null;
}

export interface RangeOptions {
  /** Inclusive start key; empty or absent means the first key. */
  start?: Buffer;
  /** Exclusive end key; empty or absent means no upper bound. */
  end?: Buffer;
  limit: number;
  keyOnly?: boolean;
  /** Walk from `end` (exclusive) down to `start` (inclusive). */
  reverse?: boolean;
}

export interface KvPair {
  key: Buffer;
  value: Buffer;
}

export type { VectorSearchRequest, VectorSearchResult, VectorHit } from '../compute/vector-search.js';
import type { VectorSearchRequest, VectorSearchResult } from '../compute/vector-search.js';
import type { ItemBatchInput } from '../compute/vector-items.js';
import type { Session } from './session.js';

/** One item of a posting list, as partial reads return it. */
export interface VectorItem {
  id: Buffer;
  vector?: number[];
  payload?: Buffer | null;
}

export type { ValueSink } from '../replica/store.js';
import type { ValueSink } from '../replica/store.js';

/** Time to live of a key, as Redis TTL/PTTL report it: -2 absent, -1 no expiry. */
export type TtlMs = number;

export interface KvApi {
  // ---- values ----
  get(ns: string, key: Buffer): MaybePromise<Buffer | null>;
  /**
   * GET's hot path: hands the value straight to `sink` (copied once, by the sink) and
   * returns undefined; when replicas elsewhere must answer, returns a promise of the value
   * instead and does not call `sink`.
   */
  readValue(ns: string, key: Buffer, sink: ValueSink): undefined | Promise<Buffer | null>;
  getMany(ns: string, keys: Buffer[]): MaybePromise<(Buffer | null)[]>;
  /** Bytes [start, end] of the value, both inclusive, negative from the end (GETRANGE). */
  getRange(ns: string, key: Buffer, start: number, end: number): MaybePromise<Buffer>;
  strlen(ns: string, key: Buffer): MaybePromise<number>;
  exists(ns: string, key: Buffer): MaybePromise<boolean>;
  set(ns: string, key: Buffer, value: Buffer, options?: SetOptions): Promise<SetResult>;
  /** Sets every pair in one atomic write; `ttlMs` applies to all of them. */
  setMany(ns: string, pairs: KvPair[], options?: { ttlMs?: number }): Promise<void>;
  /** Appends bytes; returns the value's new length. Concurrent appends are all kept. */
  append(ns: string, key: Buffer, bytes: Buffer): Promise<number>;
  appendMany(ns: string, pairs: KvPair[]): Promise<number[]>;
  /** Deletes keys; returns how many existed. */
  del(ns: string, keys: Buffer[]): Promise<number>;
  /** Deletes every key in [start, end); returns how many existed. */
  deleteRange(ns: string, start: Buffer, end: Buffer): Promise<number>;

  // ---- expiry ----
  /** Sets (atMs) or clears (null) the expiry; false if the key is absent or the condition failed. */
  expireAt(ns: string, key: Buffer, atMs: number | null, condition?: ExpireCondition): Promise<boolean>;
  ttlMs(ns: string, key: Buffer): MaybePromise<TtlMs>;

  // ---- fields (metadata, per-field last-writer-wins) ----
  /** Sets fields; returns how many were new. */
  hset(ns: string, key: Buffer, fields: KvPair[]): Promise<number>;
  hget(ns: string, key: Buffer, field: Buffer): MaybePromise<Buffer | null>;
  hmget(ns: string, key: Buffer, fields: Buffer[]): MaybePromise<(Buffer | null)[]>;
  hgetall(ns: string, key: Buffer): MaybePromise<KvPair[]>;
  /** Deletes fields; returns how many existed. */
  hdel(ns: string, key: Buffer, fields: Buffer[]): Promise<number>;
  hlen(ns: string, key: Buffer): MaybePromise<number>;
  hexists(ns: string, key: Buffer, field: Buffer): MaybePromise<boolean>;

  // ---- keyspace ----
  scan(ns: string, options: ScanOptions): MaybePromise<ScanPage>;
  range(ns: string, options: RangeOptions): MaybePromise<KvPair[]>;
  /** Live keys held by this node (keys expired but not yet swept may be counted, as in Redis). */
  dbsize(ns: string): number;

  // ---- near-data compute: vector posting lists ----
  /** Appends a batch of vector items as one operation; returns the list's live item count. */
  vadd(ns: string, key: Buffer, batch: ItemBatchInput): Promise<number>;
  /** Deletes items by id (a tombstone search honours); returns the live item count. */
  vdel(ns: string, key: Buffer, ids: Buffer[]): Promise<number>;
  /** Live items of a list. */
  vcard(ns: string, key: Buffer): MaybePromise<number>;
  /** Items start..stop (inclusive, negative from the end, as LRANGE) of a list. */
  vrange(ns: string, key: Buffer, start: number, stop: number, options?: { withVectors?: boolean; withPayloads?: boolean }): MaybePromise<VectorItem[]>;
  /** The k nearest items over the lists, scored where the lists live. */
  vsearch(ns: string, request: VectorSearchRequest): Promise<VectorSearchResult>;
  /** Field projection over many keys: for each key, the named fields' values. */
  hmgetMany(ns: string, keys: Buffer[], fields: Buffer[]): MaybePromise<(Buffer | null)[][]>;
  /**
   * Compacts now, on this node: prunes the named lists (deleted items) and every record
   * already queued for pruning. Node-local, like DBSIZE.
   */
  compact(ns: string, keys: Buffer[]): Promise<PruneResult>;

  /** The same store with other default consistency levels (per connection or per request). */
  withConsistency(levels: Partial<Consistency>): KvApi;

  /**
   * A new session pinned to this member, for a connection to it (RESP). A session whose
   * token travels with each call (gRPC) comes from `Session.decode`.
   */
  newSession(): Session;
  /** The same store for one client session: it reads its own writes and never goes back. */
  withSession(session: Session): KvApi;
}
