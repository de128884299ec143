/**
 * The cluster coordinator: KvApi over the N replicas of each key (Dynamo-style, leaderless).
 *
 * - Writes get an HLC version and op id here, go to the key's N replicas and are
 *   acknowledged after W durable acks. A replica known to be down is replaced by the next
 *   healthy member, which keeps the write as a durable hint for it (sloppy quorum); a
 *   replica that fails to answer gets a hint kept by this coordinator. Hints are replayed
 *   when the owner is back (hints.ts).
 * - Reads ask R replicas (this node first when it is one) and merge their records; replicas
 *   that answered with a stale record are repaired. At R=ONE a read is also repaired in the
 *   background with probability `readRepairChance`.
 * - Multi-key commands send one message per replica. SCAN merges members' ordered streams.
 * - Conditional writes (SET NX/XX/GET, EXPIRE conditions) read at the write level, then
 *   write: they are not atomic across concurrent writers (CAS will be).
 *
 * I/O is injected (Transport, Clock, Random, ReplicaStore), so the simulator runs it.
 */
import type { Clock } from '../common/clock.js';
import { KvError, invalidArgument } from '../common/errors.js';
import type { Limits } from '../common/limits.js';
import type { Random } from '../common/random.js';
import { globMatch, resolveByteRange } from '../compute/index.js';
import { murmur3 } from '../cluster/hash.js';
import type { Ring } from '../cluster/ring.js';
import { Channel, TransportError, type NodeId, type Transport } from '../cluster/transport.js';
import { type ItemBatchInput, ITEM_BATCH_HEADER_BYTES, appendMayBreakList, firstBatchBytes } from '../compute/vector-items.js';
import { checkShape, finishSearch } from '../compute/vector-search.js';
import { checkAppend, checkAppends, encodeBatch, encodeDeletes, itemCount, itemRange, liveSet, vaddSegment } from './vectors.js';
import { HybridClock } from '../storage/hlc.js';
import { encodeRecord } from '../storage/record-codec.js';
import { type Record, emptyRecord, expire, merge, opIdBytes, view } from '../storage/record.js';
import type {
  Consistency,
  ExpireCondition,
  KvApi,
  KvPair,
  Level,
  MaybePromise,
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
import { type ApplyItem, type ApplyResult, type ReplicaStore, compactNow } from '../replica/store.js';
import {
  decodeReadReply,
  decodeScanReply,
  decodeVectorSearchReply,
  decodeWriteReply,
  encodeRead,
  encodeScan,
  encodeVectorSearch,
  encodeWrite,
  localVectorSearch,
} from '../replica/service.js';
import { InputChecks, expiryConditionHolds } from './validate.js';

/** What the coordinator needs to know of the cluster: the ring and who is reachable. */
export interface ClusterView {
  ring(): Ring;
  isAlive(id: NodeId): boolean;
  /** Members that can answer now (for scans). */
  aliveMembers(): NodeId[];
}

export interface ClusterCoordinatorOptions {
  self: NodeId;
  transport: Transport;
  clock: Clock;
  random: Random;
  store: ReplicaStore;
  view: ClusterView;
  limits: Limits;
  consistency?: Partial<Consistency>;
  requestTimeoutMs?: number;
  readRepairChance?: number;
  /** Answers reads of keys this node replicates at level ONE synchronously (the LMDB engine). */
  localReads?: KvApi;
}

interface Answer {
  node: NodeId;
  record: Record | null;
}

const defaultConsistency: Consistency = { read: 'ONE', write: 'QUORUM' };

/** Replicas a level needs out of n. */
export function required(level: Level, n: number): number {
  return level === 'ONE' ? 1 : level === 'ALL' ? n : Math.floor(n / 2) + 1;
}

export class ClusterCoordinator implements KvApi {
  private readonly self: NodeId;
  private readonly transport: Transport;
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly store: ReplicaStore;
  private readonly view: ClusterView;
  private readonly checks: InputChecks;
  private readonly hlc: HybridClock;
  private readonly opPrefix: Buffer;
  private opCounter = 0;
  private readonly timeoutMs: number;
  private readonly readRepairChance: number;
  private readonly localReads: KvApi | undefined;
  private consistency: Consistency;
  /** Vector searches in flight per replica: the load that picks where a list is searched. */
  private readonly searchesInFlight = new Map<NodeId, number>();
  /** Read repairs sent, and hints this coordinator stored, since start. */
  readonly counters = { readRepairs: 0, hintsStored: 0, sloppyWrites: 0 };

  constructor(options: ClusterCoordinatorOptions) {
    this.self = options.self;
    this.transport = options.transport;
    this.clock = options.clock;
    this.random = options.random;
    this.store = options.store;
    this.view = options.view;
    this.checks = new InputChecks(options.limits);
    this.hlc = new HybridClock(options.clock, murmur3(Buffer.from(options.self)));
    this.opPrefix = Buffer.alloc(8);
    this.opPrefix.writeUInt32BE(options.random.nextU32(), 0);
    this.opPrefix.writeUInt32BE(options.random.nextU32(), 4);
    this.timeoutMs = options.requestTimeoutMs ?? 2000;
    this.readRepairChance = options.readRepairChance ?? 0.1;
    this.localReads = options.localReads;
    this.consistency = { ...defaultConsistency, ...options.consistency };
  }

  withConsistency(levels: Partial<Consistency>): KvApi {
    const copy = Object.create(this) as ClusterCoordinator;
    copy.consistency = { ...this.consistency, ...levels };
    return copy;
  }

  // ------------------------------------------------------------------ deltas

  private nextOpId(): Buffer {
    const id = Buffer.alloc(opIdBytes);
    this.opPrefix.copy(id, 0);
    id.writeUInt32BE(Math.floor(++this.opCounter / 0x1_0000_0000), 8);
    id.writeUInt32BE(this.opCounter >>> 0, 12);
    return id;
  }

  // ------------------------------------------------------------------ replication

  /**
   * Sends each item to its replicas and resolves with per-item results once every item has
   * the level's acks; rejects QUORUM_NOT_MET naming how many answered and why the rest did not.
   */
  private replicate(ns: string, items: ApplyItem[], level: Level): Promise<ApplyResult[]> {
    const ring = this.view.ring();
    const perItem = items.map((it) => {
      const natural = ring.replicasFor(ns, it.key);
      return { natural, need: required(level, natural.length), acks: 0, failures: [] as string[], result: { ...noResult } };
    });
    // node -> (hintFor or '') -> item indexes
    const plan = new Map<NodeId, Map<string, number[]>>();
    const add = (node: NodeId, hintFor: string, i: number) => {
      let byHint = plan.get(node);
      if (!byHint) plan.set(node, (byHint = new Map()));
      let list = byHint.get(hintFor);
      if (!list) byHint.set(hintFor, (list = []));
      list.push(i);
    };
    items.forEach((it, i) => {
      const { natural } = perItem[i]!;
      let fallbacks: NodeId[] | null = null;
      const used = new Set(natural);
      for (const r of natural) {
        if (r === this.self || this.view.isAlive(r)) {
          add(r, '', i);
          continue;
        }
        // Sloppy quorum: the next healthy member outside the preference list keeps a hint.
        fallbacks ??= ring.walkFrom(ns, it.key).filter((m) => !used.has(m) && (m === this.self || this.view.isAlive(m)));
        const fb = fallbacks.shift();
        if (fb !== undefined) {
          used.add(fb);
          add(fb, r, i);
          this.counters.sloppyWrites++;
        } else {
          // No member left to hold it: this coordinator keeps the hint, so the owner still
          // gets the write when it is back (it does not count toward the level).
          perItem[i]!.failures.push(`${r}: down, no fallback member`);
          this.storeHint(r, [it]);
        }
      }
    });

    return new Promise<ApplyResult[]>((resolve, reject) => {
      let outstanding = 0;
      let settled = false;
      const check = () => {
        if (settled) return;
        if (perItem.every((p) => p.acks >= p.need)) {
          settled = true;
          resolve(perItem.map((p) => p.result));
        } else if (outstanding === 0) {
          settled = true;
          const worst = perItem.find((p) => p.acks < p.need)!;
          reject(
            new KvError(
              'QUORUM_NOT_MET',
              `write needs ${worst.need} of ${worst.natural.length} replicas (${level}), ${worst.acks} acknowledged` +
                (worst.failures.length ? `: ${worst.failures.join(', ')}` : ''),
            ),
          );
        }
      };
      for (const [node, byHint] of plan) {
        for (const [hintFor, idx] of byHint) {
          outstanding++;
          const batch = idx.map((i) => items[i]!);
          this.sendWrite(node, batch, hintFor || null).then(
            (results) => {
              idx.forEach((i, j) => {
                const p = perItem[i]!;
                p.acks++;
                const r = results[j]!;
                if (!hintFor) {
                  p.result.size = Math.max(p.result.size, r.size);
                  p.result.wasLive ||= r.wasLive;
                  p.result.fieldsAdded = Math.max(p.result.fieldsAdded, r.fieldsAdded);
                  p.result.fieldsRemoved = Math.max(p.result.fieldsRemoved, r.fieldsRemoved);
                }
              });
              outstanding--;
              check();
            },
            (err: unknown) => {
              const why = `${node}: ${err instanceof Error ? err.message : String(err)}`;
              idx.forEach((i) => perItem[i]!.failures.push(why));
              // The owner missed this write (directly, or through the fallback that was to
              // hold its hint): keep a hint here so it catches up when back.
              const owner = hintFor || node;
              if (owner !== this.self) this.storeHint(owner, batch);
              outstanding--;
              check();
            },
          );
        }
      }
      check();
    });
  }

  private sendWrite(node: NodeId, items: ApplyItem[], hintFor: NodeId | null): Promise<ApplyResult[]> {
    if (node === this.self) {
      if (hintFor) return this.store.addHints(hintFor, items).then(() => items.map(() => noResult));
      return this.store.apply(items, this.clock.nowMs());
    }
    return this.transport.request(node, Channel.replica, encodeWrite(items, hintFor), this.timeoutMs).then(decodeWriteReply);
  }

  private storeHint(node: NodeId, items: ApplyItem[]): void {
    this.counters.hintsStored += items.length;
    this.store.addHints(node, items).catch(() => {
      // Hint store full: the replica will converge through read repair instead.
    });
  }

  /**
   * Reads keys at a level and merges what replicas answer. Returns the merged records and,
   * per key, every replica's answer (for read repair).
   */
  private async readRecords(ns: string, keys: Buffer[], level: Level): Promise<(Record | null)[]> {
    const ring = this.view.ring();
    const plans = keys.map((key) => {
      const natural = ring.replicasFor(ns, key);
      const reachable = natural.filter((r) => r === this.self || this.view.isAlive(r));
      const need = required(level, natural.length);
      if (reachable.length < need) {
        throw new KvError('QUORUM_NOT_MET', `read needs ${need} of ${natural.length} replicas (${level}), ${reachable.length} reachable`);
      }
      // This node first, then the others in ring order.
      reachable.sort((a, b) => (a === this.self ? -1 : b === this.self ? 1 : 0));
      return { natural, reachable, need, answers: [] as Answer[], failures: [] as string[], next: 0 };
    });
    // Ask `need` replicas per key (grouped per node); on failures, move on to the next one.
    const ask = async (round: number[][]): Promise<void> => {
      const byNode = new Map<NodeId, number[]>();
      round.forEach((idxs, k) => {
        for (const i of idxs) {
          const node = plans[k]!.reachable[i]!;
          let list = byNode.get(node);
          if (!list) byNode.set(node, (list = []));
          list.push(k);
        }
      });
      await Promise.all(
        [...byNode].map(async ([node, ks]) => {
          try {
            const records = await this.sendRead(node, ns, ks.map((k) => keys[k]!));
            ks.forEach((k, j) => plans[k]!.answers.push({ node, record: records[j]! }));
          } catch (err) {
            ks.forEach((k) => plans[k]!.failures.push(`${node}: ${err instanceof Error ? err.message : String(err)}`));
          }
        }),
      );
    };
    let round = plans.map((p) => {
      const picks = Array.from({ length: p.need }, (_, i) => i);
      p.next = p.need;
      return picks;
    });
    while (round.some((r) => r.length > 0)) {
      await ask(round);
      round = plans.map((p) => {
        const missing = p.need - p.answers.length;
        const picks: number[] = [];
        while (picks.length < missing && p.next < p.reachable.length) picks.push(p.next++);
        return picks;
      });
    }
    const now = this.clock.nowMs();
    return plans.map((p, k) => {
      if (p.answers.length < p.need) {
        throw new KvError(
          'QUORUM_NOT_MET',
          `read needs ${p.need} of ${p.natural.length} replicas (${level}), ${p.answers.length} answered: ${p.failures.join(', ')}`,
        );
      }
      let merged: Record | null = null;
      for (const a of p.answers) {
        if (!a.record) continue;
        this.observeVersions(a.record);
        merged = merged ? merge(merged, a.record) : a.record;
      }
      if (merged && p.answers.length > 1) this.repair(ns, keys[k]!, merged, p.answers);
      else if (merged && level === 'ONE' && this.readRepairChance > 0 && this.random.nextDouble() < this.readRepairChance) {
        this.backgroundRepair(ns, keys[k]!);
      }
      return merged ? expire(merged, now) : null;
    });
  }

  private sendRead(node: NodeId, ns: string, keys: Buffer[]): Promise<(Record | null)[]> {
    if (node === this.self) return Promise.resolve(this.store.read(ns, keys));
    return this.transport.request(node, Channel.replica, encodeRead(ns, keys), this.timeoutMs).then(decodeReadReply);
  }

  private observeVersions(r: Record): void {
    if (r.tomb) this.hlc.observe(r.tomb);
    if (r.base) this.hlc.observe(r.base.version);
    const last = r.appends[r.appends.length - 1];
    if (last) this.hlc.observe(last.version);
  }

  /** Sends the merged record to every replica whose answer differs from it. */
  private repair(ns: string, key: Buffer, merged: Record, answers: Answer[]): void {
    const want = canonical(merged);
    for (const a of answers) {
      if (a.record && canonical(a.record).equals(want)) continue;
      this.counters.readRepairs++;
      this.sendWrite(a.node, [{ ns, key, delta: merged }], null).catch(() => {
        // The replica went away again: hints or the next read will repair it.
      });
    }
  }

  private backgroundRepair(ns: string, key: Buffer): void {
    this.readRecords(ns, [key], 'ALL').catch(() => {
      // Not every replica reachable now: nothing to repair against.
    });
  }

  /**
   * Reads one key: synchronously from the local engine when this node is a replica and the
   * level is ONE, else through the replicas.
   */
  private readOne<T>(ns: string, key: Buffer, local: ((kv: KvApi) => MaybePromise<T>) | null, compute: (r: Record | null) => T): MaybePromise<T> {
    this.checks.key(key);
    this.checks.namespace(ns);
    if (this.consistency.read === 'ONE' && this.isLocalReplica(ns, key)) {
      if (local && this.localReads) return local(this.localReads);
      return compute(this.localRecord(ns, key));
    }
    return this.readRecords(ns, [key], this.consistency.read).then((rs) => compute(rs[0]!));
  }

  private isLocalReplica(ns: string, key: Buffer): boolean {
    return this.view.ring().replicasFor(ns, key).includes(this.self);
  }

  private localRecord(ns: string, key: Buffer): Record | null {
    const r = this.store.read(ns, [key])[0]!;
    return r ? expire(r, this.clock.nowMs()) : null;
  }

  // ------------------------------------------------------------------ values

  get(ns: string, key: Buffer): MaybePromise<Buffer | null> {
    return this.readOne(ns, key, (kv) => kv.get(ns, key), (r) => (r ? view(r, this.clock.nowMs()).value : null));
  }

  readValue(ns: string, key: Buffer, sink: ValueSink): undefined | Promise<Buffer | null> {
    this.checks.key(key);
    if (this.consistency.read === 'ONE' && this.localReads && this.isLocalReplica(ns, key)) {
      return this.localReads.readValue(ns, key, sink);
    }
    const v = this.get(ns, key);
    if (v instanceof Promise) return v;
    sink.bulk(v);
    return undefined;
  }

  getMany(ns: string, keys: Buffer[]): MaybePromise<(Buffer | null)[]> {
    this.checks.batch(keys.length, 'multi-get');
    for (const k of keys) this.checks.key(k);
    if (this.consistency.read === 'ONE' && keys.every((k) => this.isLocalReplica(ns, k))) {
      if (this.localReads) return this.localReads.getMany(ns, keys);
      const now = this.clock.nowMs();
      return keys.map((k) => {
        const r = this.localRecord(ns, k);
        return r ? view(r, now).value : null;
      });
    }
    return this.readRecords(ns, keys, this.consistency.read).then((rs) => {
      const now = this.clock.nowMs();
      return rs.map((r) => (r ? view(r, now).value : null));
    });
  }

  getRange(ns: string, key: Buffer, start: number, end: number): MaybePromise<Buffer> {
    return this.readOne(ns, key, (kv) => kv.getRange(ns, key, start, end), (r) => {
      const v = r ? view(r, this.clock.nowMs()).value : null;
      if (!v) return Buffer.alloc(0);
      const range = resolveByteRange(v.length, start, end);
      return range ? v.subarray(range[0], range[1]) : Buffer.alloc(0);
    });
  }

  strlen(ns: string, key: Buffer): MaybePromise<number> {
    return this.readOne(ns, key, (kv) => kv.strlen(ns, key), (r) => (r ? (view(r, this.clock.nowMs()).value?.length ?? 0) : 0));
  }

  exists(ns: string, key: Buffer): MaybePromise<boolean> {
    return this.readOne(ns, key, (kv) => kv.exists(ns, key), (r) => (r ? view(r, this.clock.nowMs()).exists : false));
  }

  async set(ns: string, key: Buffer, value: Buffer, options: SetOptions = {}): Promise<SetResult> {
    this.checks.namespace(ns);
    this.checks.key(key);
    this.checks.value(value);
    const now = this.clock.nowMs();
    let atMs = 0;
    if (options.ttlMs !== undefined) {
      this.checks.ttlMs(options.ttlMs);
      atMs = now + options.ttlMs;
    } else if (options.expireAtMs !== undefined) {
      if (!(options.expireAtMs > 0)) throw invalidArgument(`invalid expire time: ${options.expireAtMs}`);
      atMs = options.expireAtMs;
    }
    let old: Buffer | null | undefined;
    if (options.condition || options.returnOld) {
      const [r] = await this.readRecords(ns, [key], this.consistency.write);
      const v = r ? view(r, this.clock.nowMs()) : null;
      old = v?.value ?? null;
      const live = v?.exists ?? false;
      if ((options.condition === 'NX' && live) || (options.condition === 'XX' && !live)) {
        return options.returnOld ? { written: false, old } : { written: false };
      }
    }
    const version = this.hlc.now();
    const delta = emptyRecord();
    delta.base = { version, value: Buffer.from(value) };
    if (!options.keepTtl) delta.expiry = { version, atMs };
    await this.replicate(ns, [{ ns, key: Buffer.from(key), delta }], this.consistency.write);
    return options.returnOld ? { written: true, old: old ?? null } : { written: true };
  }

  async setMany(ns: string, pairs: KvPair[], options: { ttlMs?: number } = {}): Promise<void> {
    this.checks.namespace(ns);
    this.checks.batch(pairs.length, 'multi-set');
    if (options.ttlMs !== undefined) this.checks.ttlMs(options.ttlMs);
    for (const p of pairs) {
      this.checks.key(p.key);
      this.checks.value(p.value);
    }
    const now = this.clock.nowMs();
    const items = pairs.map((p) => {
      const version = this.hlc.now();
      const delta = emptyRecord();
      delta.base = { version, value: Buffer.from(p.value) };
      delta.expiry = { version, atMs: options.ttlMs ? now + options.ttlMs : 0 };
      return { ns, key: Buffer.from(p.key), delta };
    });
    await this.replicate(ns, items, this.consistency.write);
  }

  private appendItem(ns: string, key: Buffer, bytes: Buffer): ApplyItem {
    const delta = emptyRecord();
    delta.appends = [{ version: this.hlc.now(), opId: this.nextOpId(), bytes: Buffer.from(bytes) }];
    return { ns, key: Buffer.from(key), delta };
  }

  /**
   * The start of a key's value for the APPEND guard, read at the read level: 16 bytes, then the
   * first batch only when they start like one. Null when the key holds no value, and when too
   * few replicas can be read: the guard must not make APPEND less available than its write
   * (which sloppy quorum may still place), so the append then goes ahead unchecked.
   */
  private async valueHead(ns: string, key: Buffer): Promise<Buffer | null> {
    try {
      const header = await this.getRange(ns, key, 0, ITEM_BATCH_HEADER_BYTES - 1);
      const n = firstBatchBytes(header);
      return header.length === 0 ? null : n === 0 ? header : await this.getRange(ns, key, 0, n - 1);
    } catch (err) {
      if (err instanceof KvError && err.retryable) return null;
      throw err;
    }
  }

  async append(ns: string, key: Buffer, bytes: Buffer): Promise<number> {
    this.checks.namespace(ns);
    this.checks.key(key);
    this.checks.value(bytes);
    if (appendMayBreakList(bytes)) checkAppend(key, await this.valueHead(ns, key), bytes); // a list stays a list
    const [r] = await this.replicate(ns, [this.appendItem(ns, key, bytes)], this.consistency.write);
    return r!.size;
  }

  async appendMany(ns: string, pairs: KvPair[]): Promise<number[]> {
    this.checks.namespace(ns);
    this.checks.batch(pairs.length, 'multi-append');
    for (const p of pairs) {
      this.checks.key(p.key);
      this.checks.value(p.value);
    }
    const heads = await Promise.all(pairs.map((p) => (appendMayBreakList(p.value) ? this.valueHead(ns, p.key) : null)));
    checkAppends(pairs, (i) => heads[i]!);
    const results = await this.replicate(ns, pairs.map((p) => this.appendItem(ns, p.key, p.value)), this.consistency.write);
    return results.map((r) => r.size);
  }

  async del(ns: string, keys: Buffer[]): Promise<number> {
    this.checks.namespace(ns);
    this.checks.batch(keys.length, 'delete');
    for (const k of keys) this.checks.key(k);
    const unique = [...new Map(keys.map((k) => [k.toString('latin1'), k])).values()];
    const tomb = this.hlc.now();
    const items = unique.map((k) => ({ ns, key: Buffer.from(k), delta: { ...emptyRecord(), tomb } }));
    const results = await this.replicate(ns, items, this.consistency.write);
    return results.filter((r) => r.wasLive).length;
  }

  async deleteRange(ns: string, start: Buffer, end: Buffer): Promise<number> {
    this.checks.namespace(ns);
    this.checks.rangeBounds(start, end.length > 0 ? end : null);
    let total = 0;
    let from = start;
    for (;;) {
      const keys = await this.scanMerged(ns, from, end.length > 0 ? end : null, 1000, false);
      if (keys.length === 0) return total;
      total += await this.del(ns, keys);
      from = Buffer.concat([keys[keys.length - 1]!, Buffer.from([0])]);
    }
  }

  // ------------------------------------------------------------------ expiry

  async expireAt(ns: string, key: Buffer, atMs: number | null, condition?: ExpireCondition): Promise<boolean> {
    this.checks.namespace(ns);
    this.checks.key(key);
    if (atMs !== null && !Number.isFinite(atMs)) throw invalidArgument(`invalid expire time: ${atMs}`);
    const [r] = await this.readRecords(ns, [key], this.consistency.write);
    const now = this.clock.nowMs();
    const v = r ? view(r, now) : null;
    if (!v?.exists) return false;
    const current = v.expireAtMs;
    if (atMs === null ? current === 0 : !expiryConditionHolds(condition, current, atMs)) return false;
    const version = this.hlc.now();
    const delta = emptyRecord();
    if (atMs !== null && atMs <= now) delta.tomb = version;
    else delta.expiry = { version, atMs: atMs ?? 0 };
    await this.replicate(ns, [{ ns, key: Buffer.from(key), delta }], this.consistency.write);
    return true;
  }

  ttlMs(ns: string, key: Buffer): MaybePromise<number> {
    return this.readOne(ns, key, (kv) => kv.ttlMs(ns, key), (r) => {
      const now = this.clock.nowMs();
      const v = r ? view(r, now) : null;
      if (!v?.exists) return -2;
      return v.expireAtMs === 0 ? -1 : Math.max(0, v.expireAtMs - now);
    });
  }

  // ------------------------------------------------------------------ fields

  async hset(ns: string, key: Buffer, fields: KvPair[]): Promise<number> {
    this.checks.namespace(ns);
    this.checks.key(key);
    this.checks.batch(fields.length, 'field set');
    if (fields.length === 0) throw invalidArgument('no fields given');
    const delta = emptyRecord();
    for (const f of fields) {
      this.checks.field(f.key);
      this.checks.value(f.value);
      delta.fields.set(f.key.toString('latin1'), { version: this.hlc.now(), value: Buffer.from(f.value) });
    }
    const [r] = await this.replicate(ns, [{ ns, key: Buffer.from(key), delta }], this.consistency.write);
    return r!.fieldsAdded;
  }

  hget(ns: string, key: Buffer, field: Buffer): MaybePromise<Buffer | null> {
    return this.readOne(ns, key, (kv) => kv.hget(ns, key, field), (r) => fieldOf(r, field, this.clock.nowMs()));
  }

  hmget(ns: string, key: Buffer, fields: Buffer[]): MaybePromise<(Buffer | null)[]> {
    this.checks.batch(fields.length, 'field get');
    return this.readOne(ns, key, (kv) => kv.hmget(ns, key, fields), (r) => {
      const now = this.clock.nowMs();
      return fields.map((f) => fieldOf(r, f, now));
    });
  }

  hgetall(ns: string, key: Buffer): MaybePromise<KvPair[]> {
    return this.readOne(ns, key, (kv) => kv.hgetall(ns, key), (r) =>
      r ? view(r, this.clock.nowMs()).fields.map(([k, v]) => ({ key: k, value: v })) : [],
    );
  }

  async hdel(ns: string, key: Buffer, fields: Buffer[]): Promise<number> {
    this.checks.namespace(ns);
    this.checks.key(key);
    this.checks.batch(fields.length, 'field delete');
    const version = this.hlc.now();
    const delta = emptyRecord();
    for (const f of fields) delta.fields.set(f.toString('latin1'), { version, value: null });
    const [r] = await this.replicate(ns, [{ ns, key: Buffer.from(key), delta }], this.consistency.write);
    return r!.fieldsRemoved;
  }

  hlen(ns: string, key: Buffer): MaybePromise<number> {
    return this.readOne(ns, key, (kv) => kv.hlen(ns, key), (r) => (r ? view(r, this.clock.nowMs()).fields.length : 0));
  }

  hexists(ns: string, key: Buffer, field: Buffer): MaybePromise<boolean> {
    return this.readOne(ns, key, (kv) => kv.hexists(ns, key, field), (r) => fieldOf(r, field, this.clock.nowMs()) !== null);
  }

  // ------------------------------------------------------------------ keyspace

  /**
   * Keys in order across the cluster: every reachable member lists its first `limit` keys in
   * range; the smallest `limit` of their union are exactly the cluster's next `limit` keys.
   */
  private async scanMerged(ns: string, start: Buffer, end: Buffer | null, limit: number, reverse: boolean): Promise<Buffer[]> {
    const members = this.view.aliveMembers();
    const lists = await Promise.all(
      members.map(async (m) => {
        if (m === this.self) return this.store.scan(ns, start, end, limit, reverse, this.clock.nowMs());
        try {
          const reply = await this.transport.request(m, Channel.replica, encodeScan({ ns, start, end, limit, reverse }), this.timeoutMs);
          return decodeScanReply(reply);
        } catch {
          return []; // its keys are also on other replicas
        }
      }),
    );
    const seen = new Map<string, Buffer>();
    for (const l of lists) for (const k of l) seen.set(k.toString('latin1'), k);
    const all = [...seen.values()].sort(Buffer.compare);
    if (reverse) all.reverse();
    return all.slice(0, limit);
  }

  async scan(ns: string, options: ScanOptions): Promise<ScanPage> {
    this.checks.namespace(ns);
    const count = Math.min(Math.max(1, options.count), this.checks.limits.scanLimitMax);
    const start = options.cursor ? Buffer.concat([options.cursor, Buffer.from([0])]) : Buffer.alloc(0);
    const keys = await this.scanMerged(ns, start, null, count, false);
    const match = options.match;
    const page = match ? keys.filter((k) => globMatch(match, k)) : keys;
    return { keys: page, next: keys.length < count ? null : keys[keys.length - 1]! };
  }

  async range(ns: string, options: RangeOptions): Promise<KvPair[]> {
    this.checks.namespace(ns);
    this.checks.rangeLimit(options.limit);
    const start = options.start ?? Buffer.alloc(0);
    const end = options.end && options.end.length > 0 ? options.end : null;
    this.checks.rangeBounds(start, end);
    const keys = await this.scanMerged(ns, start, end, options.limit, options.reverse ?? false);
    if (options.keyOnly) return keys.map((key) => ({ key, value: Buffer.alloc(0) }));
    const values = await this.getMany(ns, keys);
    return keys.map((key, i) => ({ key, value: values[i] ?? Buffer.alloc(0) }));
  }

  compact(ns: string, keys: Buffer[]): Promise<PruneResult> {
    this.checks.namespace(ns);
    this.checks.batch(keys.length, 'compaction');
    for (const k of keys) this.checks.key(k);
    return compactNow(this.store, ns, keys);
  }

  dbsize(ns: string): number {
    return this.store.keyCount(ns);
  }

  // ------------------------------------------------------------------ vector lists

  /** The list's value as pieces, read at the read level (this node's copy when it can). */
  private listPieces(ns: string, key: Buffer): MaybePromise<Buffer[] | null> {
    const v = this.get(ns, key);
    return v instanceof Promise ? v.then((x) => (x ? [x] : null)) : v ? [v] : null;
  }

  async vadd(ns: string, key: Buffer, batch: ItemBatchInput): Promise<number> {
    this.checks.namespace(ns);
    this.checks.key(key);
    const bytes = encodeBatch(batch);
    this.checks.value(bytes);
    // The first append fixes the shape. Checked on a read, so two concurrent first appends
    // of different shapes can both land: search then skips the later shape on every replica.
    const before = await this.listPieces(ns, key);
    checkShape(key, before, batch.type, batch.dim);
    // Replaced ids get a delete batch in the same op (see vaddSegment). The count returned is
    // the list as this write's read saw it, plus the batch.
    const seg = vaddSegment(key, liveSet(key, before), bytes);
    this.checks.value(seg.bytes);
    await this.replicate(ns, [this.appendItem(ns, key, seg.bytes)], this.consistency.write);
    return seg.count;
  }

  async vdel(ns: string, key: Buffer, ids: Buffer[]): Promise<number> {
    this.checks.namespace(ns);
    this.checks.key(key);
    this.checks.batch(ids.length, 'item delete');
    const bytes = encodeDeletes(ids);
    let before = await this.listPieces(ns, key);
    // A replica that has not seen the list yet must not turn the delete into a no-op: ask a
    // quorum (which overlaps the quorum that acknowledged the items) before giving up.
    if (!before && this.consistency.read === 'ONE') before = await (this.withConsistency({ read: 'QUORUM' }) as ClusterCoordinator).listPieces(ns, key);
    if (!before) return 0;
    itemCount(key, before);
    await this.replicate(ns, [this.appendItem(ns, key, bytes)], this.consistency.write);
    return this.vcard(ns, key);
  }

  vcard(ns: string, key: Buffer): MaybePromise<number> {
    const p = this.listPieces(ns, key);
    return p instanceof Promise ? p.then((x) => itemCount(key, x)) : itemCount(key, p);
  }

  vrange(ns: string, key: Buffer, start: number, stop: number, options?: { withVectors?: boolean; withPayloads?: boolean }): MaybePromise<VectorItem[]> {
    const p = this.listPieces(ns, key);
    return p instanceof Promise ? p.then((x) => itemRange(key, x, start, stop, options)) : itemRange(key, p, start, stop, options);
  }

  /**
   * Each key is searched at one replica, chosen by load: this node when it holds a copy,
   * else the live replica with the fewest searches in flight. Each replica returns its top-k;
   * a replica that fails to answer in time makes the answer degraded, naming its keys, and so
   * does a list a replica cannot read (finishSearch).
   */
  async vsearch(ns: string, request: VectorSearchRequest): Promise<VectorSearchResult> {
    this.checks.namespace(ns);
    this.checks.batch(request.keys.length, 'vector search');
    for (const k of request.keys) this.checks.key(k);
    const ring = this.view.ring();
    const byNode = new Map<NodeId, Buffer[]>();
    const skipped: Buffer[] = [];
    const planned = new Map<NodeId, number>();
    for (const key of request.keys) {
      const replicas = ring.replicasFor(ns, key).filter((r) => r === this.self || this.view.isAlive(r));
      if (replicas.length === 0) {
        skipped.push(key);
        continue;
      }
      const load = (r: NodeId) => (this.searchesInFlight.get(r) ?? 0) + (planned.get(r) ?? 0);
      const pick = replicas.includes(this.self) ? this.self : replicas.reduce((a, b) => (load(b) < load(a) ? b : a));
      planned.set(pick, (planned.get(pick) ?? 0) + 1);
      let list = byNode.get(pick);
      if (!list) byNode.set(pick, (list = []));
      list.push(key);
    }
    const lists = await Promise.all(
      [...byNode].map(async ([node, keys]) => {
        const sub = { ...request, keys };
        this.searchesInFlight.set(node, (this.searchesInFlight.get(node) ?? 0) + 1);
        try {
          if (node === this.self) return await localVectorSearch(this.store, ns, sub, this.clock.nowMs());
          const reply = await this.transport.request(node, Channel.replica, encodeVectorSearch(ns, sub), this.timeoutMs);
          return decodeVectorSearchReply(reply);
        } catch (err) {
          // The replica's own verdict on the request (a bad query) is the answer;
          // a replica that did not answer in time is skipped.
          if (err instanceof TransportError && err.code === 'REMOTE') throw new KvError('INVALID_ARGUMENT', err.message);
          if (!(err instanceof TransportError)) throw err;
          skipped.push(...keys);
          return { hits: [], unreadable: [] };
        } finally {
          this.searchesInFlight.set(node, (this.searchesInFlight.get(node) ?? 1) - 1);
        }
      }),
    );
    return finishSearch(request, lists, skipped);
  }

  hmgetMany(ns: string, keys: Buffer[], fields: Buffer[]): MaybePromise<(Buffer | null)[][]> {
    this.checks.batch(keys.length * Math.max(1, fields.length), 'multi-key field get');
    const rows = keys.map((k) => this.hmget(ns, k, fields));
    return rows.some((r) => r instanceof Promise) ? Promise.all(rows) : (rows as (Buffer | null)[][]);
  }
}

const noResult: ApplyResult = Object.freeze({ size: 0, wasLive: false, fieldsAdded: 0, fieldsRemoved: 0 });

function fieldOf(r: Record | null, field: Buffer, nowMs: number): Buffer | null {
  if (!r || !view(r, nowMs).exists) return null;
  return r.fields.get(field.toString('latin1'))?.value ?? null;
}

/** A record's bytes with fields in name order: equal state, equal bytes. */
function canonical(r: Record): Buffer {
  return encodeRecord({ ...r, fields: new Map([...r.fields].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) });
}
