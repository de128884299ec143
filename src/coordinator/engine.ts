/**
 * The command engine: every KvApi command's meaning, written once, over the replicas of each
 * key. A single node is a cluster of one (`soloView`) on the same path; its reads at level
 * ONE are answered in place from the local store, as any member answers keys it replicates.
 *
 * - Reads ask replicas in a read round (read-round.ts) and compute the reply from the merged
 *   state (`KeyState`), or from the local replica directly when it alone can answer.
 * - Blind writes (SET, APPEND, HSET, DEL, ...) are deltas stamped with an HLC version and an
 *   op id, sent to the key's replicas in a write round (write-round.ts).
 * - Conditional writes (SET NX/XX/GET, EXPIRE conditions, VADD, VDEL) decide from the key's
 *   current state (`decide`, written once per command). Where this node is the key's only
 *   replica, the decision runs inside its write transaction, so it is atomic; elsewhere the
 *   state is read at the write level first (not atomic against a concurrent writer on
 *   another member until CAS exists; see README).
 * - Sessions (session.ts): reads cover the session's floors; writes and reads raise them.
 * - Clocks: the HLC is shared with this node's replica service and starts above the highest
 *   version on disk; a member whose clock is off (`writeGuard`) refuses to coordinate writes.
 *
 * I/O is injected (Transport, Clock, Random, ReplicaStore), so the simulator runs it.
 */
import type { Clock } from '../common/clock.js';
import { KvError, invalidArgument, isErrorCode } from '../common/errors.js';
import { bounds, type Limits, versionAheadMsMax } from '../common/limits.js';
import type { Random } from '../common/random.js';
import { globMatch, resolveByteRange } from '../compute/index.js';
import { Channel, TransportError, type NodeId, type Transport } from '../cluster/transport.js';
import { type ItemBatchInput, ITEM_BATCH_HEADER_BYTES, firstBatchBytes } from '../compute/vector-items.js';
import { LiveItems, checkShape, finishSearch, listBatches } from '../compute/vector-search.js';
import { type HybridClock, newestVersionMs } from '../storage/hlc.js';
import { type KeyState, RecordKeyState } from '../storage/key-state.js';
import { encodeRecord } from '../storage/record-codec.js';
import { type Record, emptyRecord, merge, opIdBytes } from '../storage/record.js';
import { type Version, versionMs } from '../storage/version.js';
import {
  decodeReadReply,
  decodeScanReply,
  decodeSearchReply,
  decodeWriteReply,
  encodeRequest,
  type SearchReply,
} from '../replica/protocol.js';
import { checkNotAhead, localVectorSearch, noResult } from '../replica/service.js';
import { type ApplyItem, type ApplyResult, type Decision, type ReplicaStore, compactNow } from '../replica/store.js';
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
import { type ReadAnswer, ReadRound } from './read-round.js';
import { required } from './quorum.js';
import { ReplicaTracker } from './replica-tracker.js';
import { type KeyFloor, Session, SessionFloorPool, covers, floorOf, floorVersions } from './session.js';
import { InputChecks, expiryConditionHolds } from './validate.js';
import { checkAppend, checkAppends, encodeBatch, encodeDeletes, itemRange, vaddSegment } from './vectors.js';
import type { ClusterView } from './view.js';
import { WriteRound } from './write-round.js';

export interface EngineOptions {
  /** This member's id (a single node uses any fixed id, e.g. 'local'). */
  self: NodeId;
  view: ClusterView;
  /** Null on a single node: nothing to send. */
  transport: Transport | null;
  clock: Pick<Clock, 'nowMs'>;
  random: Random;
  /** This member's replica. */
  store: ReplicaStore;
  limits: Limits;
  /** This node's hybrid clock, shared with its replica service. */
  hlc: HybridClock;
  consistency?: Partial<Consistency>;
  requestTimeoutMs?: number;
  /** Chance that a read at ONE also checks the other replicas in the background. */
  readRepairChance?: number;
  /**
   * Whether this member may coordinate a write now (its clock): null yes, an error no, a
   * promise "not known yet" (it settles once known: resolved yes, rejected no).
   */
  writeGuard?: () => KvError | null | Promise<void>;
  /** Returns an error when this member must not serve reads now (its clock is known to be off). */
  readGuard?: () => KvError | null;
}

const defaultConsistency: Consistency = { read: 'ONE', write: 'QUORUM' };

/** Keys per write batch when a range delete walks the keyspace. */
const deleteRangeBatch = 1000;

/** Counters for /cluster and the simulator. */
export interface EngineCounters {
  readRepairs: number;
  hintsStored: number;
  sloppyWrites: number;
  /** Rounds sent again after a replica reported a newer placement epoch. */
  staleRetries: number;
  /** Hints not kept because the hint store was full (anti-entropy covers them). */
  hintsDropped: number;
}

/** Attempts of a round when replicas report a newer placement epoch (each learns the newer table first). */
const staleRetriesMax = 4;

export class Engine implements KvApi {
  private readonly self: NodeId;
  private readonly view: ClusterView;
  private readonly solo: boolean;
  private readonly transport: Transport | null;
  private readonly clock: Pick<Clock, 'nowMs'>;
  private readonly random: Random;
  private readonly store: ReplicaStore;
  private readonly checks: InputChecks;
  private readonly limits: Limits;
  private readonly hlc: HybridClock;
  private readonly opPrefix: Buffer;
  /** State every view (withConsistency, withSession) shares: views are Object.create copies. */
  private readonly shared: { opCounter: number; floors: SessionFloorPool };
  /** The engine with no session: background work runs on it, so it raises no client's floors. */
  private readonly base: Engine;
  private readonly timeoutMs: number;
  private readonly readRepairChance: number;
  private readonly writeGuard: (() => KvError | null | Promise<void>) | undefined;
  private readonly readGuard: (() => KvError | null) | undefined;
  /** Requests in flight and latency per member: replica choice for every read. */
  readonly tracker: ReplicaTracker;
  readonly counters: EngineCounters = { readRepairs: 0, hintsStored: 0, sloppyWrites: 0, staleRetries: 0, hintsDropped: 0 };
  // Per view (withConsistency / withSession make copies that share everything else).
  private consistency: Consistency;
  private session: Session | undefined = undefined;

  constructor(options: EngineOptions) {
    this.self = options.self;
    this.view = options.view;
    this.solo = options.view.solo;
    this.transport = options.transport;
    this.clock = options.clock;
    this.random = options.random;
    this.store = options.store;
    this.limits = options.limits;
    this.checks = new InputChecks(options.limits);
    this.hlc = options.hlc;
    this.opPrefix = Buffer.alloc(8);
    this.opPrefix.writeUInt32BE(options.random.nextU32(), 0);
    this.opPrefix.writeUInt32BE(options.random.nextU32(), 4);
    this.timeoutMs = options.requestTimeoutMs ?? 2000;
    this.readRepairChance = options.readRepairChance ?? bounds.readRepairChance;
    this.writeGuard = options.writeGuard;
    this.readGuard = options.readGuard;
    this.tracker = new ReplicaTracker(options.clock);
    this.consistency = { ...defaultConsistency, ...options.consistency };
    this.base = this;
    this.shared = { opCounter: 0, floors: new SessionFloorPool(this.limits.sessionBytesTotalMax) };
  }

  withConsistency(levels: Partial<Consistency>): KvApi {
    const copy = Object.create(this) as Engine;
    copy.consistency = { ...this.consistency, ...levels };
    return copy;
  }

  newSession(): Session {
    return new Session(this.limits.sessionKeysMax, this.self, this.shared.floors);
  }

  /** The session floors this member's connections keep, together (bounded by sessionBytesTotalMax). */
  get sessionFloors(): { keys: number; bytes: number } {
    return { keys: this.shared.floors.size, bytes: this.shared.floors.bytes };
  }

  /** The same engine for one client session: its reads and writes keep the session guarantees. */
  withSession(session: Session): Engine {
    const copy = Object.create(this) as Engine;
    copy.session = session;
    return copy;
  }

  // ------------------------------------------------------------------ placement

  private replicasOf(ns: string, key: Buffer): readonly NodeId[] {
    return this.view.replicasFor(ns, key);
  }

  /** True when this member holds a replica of the key. */
  private holds(ns: string, key: Buffer): boolean {
    return this.solo || this.view.replicasFor(ns, key).includes(this.self);
  }

  /**
   * The session floor a read of this key must cover. None on a single node: its copy is the
   * only one, so it holds everything any session saw.
   */
  private floorFor(ns: string, key: Buffer): KeyFloor | undefined {
    const s = this.session;
    return s && s.size > 0 && !this.solo ? s.floor(ns, key) : undefined;
  }

  /** True when the session must remember this key (it is not on the member the session is pinned to). */
  private tracks(ns: string, key: Buffer): boolean {
    const s = this.session;
    if (!s || this.solo) return false;
    if (s.pinnedTo !== this.self || !this.holds(ns, key)) return true;
    // A key whose slot is moving away from this member will be read elsewhere: remember it.
    return this.view.keepsReading ? !this.view.keepsReading(ns, key) : false;
  }

  // ------------------------------------------------------------------ versions

  private nextOpId(): Buffer {
    const id = Buffer.alloc(opIdBytes);
    this.opPrefix.copy(id, 0);
    const n = ++this.shared.opCounter;
    id.writeUInt32BE(Math.floor(n / 0x1_0000_0000), 8);
    id.writeUInt32BE(n >>> 0, 12);
    return id;
  }

  /**
   * Checks this member may coordinate writes, and moves the clock past what the session saw
   * of `keys`; a promise when the check must wait (await it before stamping versions).
   */
  private beginWrite(ns: string, keys: readonly Buffer[]): Promise<void> | undefined {
    const admit = this.writeGuard?.();
    if (admit instanceof Promise) return admit.then(() => this.observeFloors(ns, keys));
    if (admit) throw admit;
    this.observeFloors(ns, keys);
    return undefined;
  }

  /** A member whose clock is known to be off serves no reads: it would misjudge expiry, and its copy lacks the writes it refused. */
  private checkReadable(): void {
    if (this.readGuard) {
      const refusal = this.readGuard();
      if (refusal) throw refusal;
    }
  }

  /**
   * Moves this member's clock past every version the session saw of `keys`, so that the
   * session's write is newer than what it read or wrote before. A version further ahead of
   * this member's clock than the bound cannot be observed: the write is refused (retryable)
   * rather than stamped older than what the session already saw.
   */
  private observeFloors(ns: string, keys: readonly Buffer[]): void {
    const s = this.session;
    if (s && s.size > 0) {
      for (const k of keys) {
        const f = s.floor(ns, k);
        if (!f) continue;
        for (const v of floorVersions(f)) {
          if (!this.hlc.observe(v)) {
            throw new KvError(
              'CLOCK_SKEW',
              `this session saw a version of key '${printable(k)}' ${versionMs(v) - this.hlc.referenceMs()} ms ahead of this member's clock, over ${versionAheadMsMax(this.limits)} ms (twice 'maxClockOffsetMs'): retry shortly, or write through the member it came from`,
            );
          }
        }
      }
    }
  }

  private version(): Version {
    return this.hlc.now();
  }

  // ------------------------------------------------------------------ the write round

  /**
   * Sends each item to its replicas and resolves with per-item results once every item has
   * the level's acks (and this member's own, where it is a replica).
   */
  private replicate(items: ApplyItem[], level: Level): Promise<ApplyResult[]> {
    // Placement never moves under a single node (or a fixed view): one round, no retry layer.
    if (!this.view.refreshFrom) return this.replicateOnce(items, level, null);
    return this.replicateRetrying(items, level);
  }

  private async replicateRetrying(items: ApplyItem[], level: Level): Promise<ApplyResult[]> {
    // A replica on a newer placement epoch refuses the round (STALE_EPOCH): learn its table
    // and send the same deltas again to the sets it names (merge makes a repeat harmless).
    for (let attempt = 1; ; attempt++) {
      const stale = new Set<NodeId>();
      try {
        return await this.replicateOnce(items, level, stale);
      } catch (err) {
        if (stale.size === 0 || attempt >= staleRetriesMax || !this.view.refreshFrom) throw err;
        this.counters.staleRetries++;
        await Promise.all([...stale].map((n) => this.view.refreshFrom!(n)));
      }
    }
  }

  private replicateOnce(items: ApplyItem[], level: Level, stale: Set<NodeId> | null): Promise<ApplyResult[]> {
    const round = new WriteRound(
      items.map((it) => this.view.writeTargets(it.ns, it.key)),
      level,
      this.self,
      (id) => this.view.isAlive(id),
      (i) => this.view.walkFrom(items[i]!.ns, items[i]!.key),
    );
    this.counters.sloppyWrites += round.sloppy;
    for (const h of round.ownHints) this.storeHint(h.owner, h.items.map((i) => items[i]!));
    return new Promise<ApplyResult[]>((resolve, reject) => {
      let settled = false;
      const settle = () => {
        if (settled) return;
        const outcome = round.outcome;
        if (outcome === 'pending') return;
        settled = true;
        if (outcome === 'met') {
          this.noteWrites(items);
          resolve(round.results());
        } else {
          reject(round.error());
        }
      };
      round.sends.forEach((send, i) => {
        const batch = send.items.map((j) => items[j]!);
        this.sendWrite(send.node, batch, send.hintFor).then(
          (results) => {
            round.ack(i, results);
            settle();
          },
          (err: unknown) => {
            const kvErr = asKvError(err, send.node);
            if (stale && kvErr instanceof KvError && kvErr.code === 'STALE_EPOCH') stale.add(send.node);
            const hint = round.fail(i, reason(err), kvErr);
            // The owner missed this write: keep a hint here so it catches up when back.
            if (hint) this.storeHint(hint.owner, hint.items.map((j) => items[j]!));
            settle();
          },
        );
      });
      settle();
    });
  }

  private sendWrite(node: NodeId, items: ApplyItem[], hintFor: NodeId | null): Promise<ApplyResult[]> {
    if (node === this.self) {
      // This member's own copy takes only what any replica would: no version from the future
      // (a repair carrying one, from a replica whose clock was ahead, is refused here too).
      try {
        checkNotAhead(items, this.hlc.referenceMs(), versionAheadMsMax(this.limits), 'the write');
      } catch (err) {
        return Promise.reject(err);
      }
      if (hintFor) return this.store.addHints(hintFor, items).then(() => items.map(() => noResult));
      return this.store.apply(items, this.clock.nowMs());
    }
    return this.request(node, encodeRequest({ op: 'write', epoch: this.view.epoch, tag: this.view.tag ?? 0, hintFor, items })).then((b) => decodeWriteReply(b, items.length));
  }

  private storeHint(owner: NodeId, items: ApplyItem[]): void {
    this.counters.hintsStored += items.length;
    this.store.addHints(owner, items).catch(() => {
      // Hint store full: anti-entropy and read repair bring the replica up to date instead
      // (counted: a metric and a log line, see node/cluster-member.ts).
      this.counters.hintsDropped += items.length;
    });
  }

  /** A replica request with load tracking; a peer's coded error keeps its code. */
  private request(node: NodeId, payload: Buffer): Promise<Buffer> {
    const start = this.tracker.begin(node);
    return this.transport!.request(node, Channel.replica, payload, this.timeoutMs).then(
      (reply) => {
        this.tracker.end(node, start, null);
        return reply;
      },
      (err: unknown) => {
        this.tracker.end(node, start, reason(err));
        throw err;
      },
    );
  }

  private noteWrites(items: readonly ApplyItem[]): void {
    const s = this.session;
    if (!s || this.solo) return; // a single node's copy holds everything any session saw
    for (const it of items) if (this.tracks(it.ns, it.key)) s.note(it.ns, it.key, floorOf(it.delta));
  }

  // ------------------------------------------------------------------ the read round

  /**
   * One read round over `keys`: asks replicas (covering the session's floors), merges their
   * answers. An answer carrying a version further ahead of this member's clock than the
   * bound counts as that replica failing: it is neither returned nor repaired with.
   */
  private async runRound(ns: string, keys: readonly Buffer[], level: Level): Promise<{ merged: Record | null; answers: readonly ReadAnswer[] }[]> {
    // A replica on a newer placement epoch refuses (STALE_EPOCH): learn its table, ask again.
    if (!this.view.refreshFrom) return this.runRoundOnce(ns, keys, level, null);
    for (let attempt = 1; ; attempt++) {
      const stale = new Set<NodeId>();
      const out = await this.runRoundOnce(ns, keys, level, stale);
      if (stale.size === 0 || attempt >= staleRetriesMax || !this.view.refreshFrom) return out;
      this.counters.staleRetries++;
      await Promise.all([...stale].map((n) => this.view.refreshFrom!(n)));
    }
  }

  private async runRoundOnce(ns: string, keys: readonly Buffer[], level: Level, stale: Set<NodeId> | null): Promise<{ merged: Record | null; answers: readonly ReadAnswer[] }[]> {
    const specs = keys.map((key) => {
      const replicas = this.replicasOf(ns, key);
      const alive = replicas.filter((r) => r === this.self || this.view.isAlive(r));
      return { candidates: this.tracker.order(alive, this.self), replicas: replicas.length, floor: this.floorFor(ns, key) };
    });
    const round = new ReadRound(specs, level, (i) => `key '${printable(keys[i]!)}'`);
    const aheadMax = versionAheadMsMax(this.limits);
    for (;;) {
      const asks = round.next();
      if (asks.size === 0) break;
      await Promise.all(
        [...asks].map(async ([node, idx]) => {
          let records: (Record | null)[];
          try {
            records = await this.sendRead(node, ns, idx.map((i) => keys[i]!));
          } catch (err) {
            const kvErr = asKvError(err, node);
            if (stale && kvErr instanceof KvError && kvErr.code === 'STALE_EPOCH') stale.add(node);
            round.fail(node, idx, reason(err), kvErr);
            return;
          }
          const now = this.hlc.referenceMs();
          const ok: number[] = [];
          const okRecords: (Record | null)[] = [];
          idx.forEach((i, j) => {
            const r = records[j]!;
            const aheadMs = r ? newestVersionMs(r) - now : 0;
            if (aheadMs > aheadMax) {
              const why = `answered with a version ${aheadMs} ms ahead of this member's clock, over ${aheadMax} ms (twice 'maxClockOffsetMs')`;
              round.fail(node, [i], why, new KvError('CLOCK_SKEW', `${node} ${why}`));
            } else {
              ok.push(i);
              okRecords.push(r);
            }
          });
          if (ok.length > 0) round.answer(node, ok, okRecords);
        }),
      );
    }
    return keys.map((_, i) => round.result(i));
  }

  /**
   * Reads keys at a level through replicas, merges, repairs; the merged records (expiry not
   * applied). In a session, reads finish in the order they started (their I/O overlaps), and
   * each answer covers what the reads before it saw: a pipelined `GET k; GET k` never goes back.
   */
  private async readRecords(ns: string, keys: readonly Buffer[], level: Level): Promise<(Record | null)[]> {
    const s = this.session;
    let release: () => void = () => {};
    const prior = s ? s.readTail : null;
    if (s) s.readTail = new Promise<void>((resolve) => (release = resolve));
    try {
      const results = await this.runRound(ns, keys, level);
      if (prior) await prior;
      // A read that finished meanwhile may have raised a floor this answer does not cover:
      // ask again for those keys (a couple of times; then the round's own error stands).
      for (let attempt = 0; attempt < 2 && s; attempt++) {
        const again = keys.map((k, i) => i).filter((i) => {
          const f = this.floorFor(ns, keys[i]!);
          return f !== undefined && !covers(results[i]!.merged, f);
        });
        if (again.length === 0) break;
        const more = await this.runRound(ns, again.map((i) => keys[i]!), level);
        again.forEach((i, j) => (results[i] = more[j]!));
      }
      const out: (Record | null)[] = [];
      const ownRepairs: Promise<void>[] = [];
      for (let i = 0; i < keys.length; i++) {
        const key = keys[i]!;
        let { merged } = results[i]!;
        const { answers } = results[i]!;
        // This member's copy as it is now (it took the repairs of earlier reads) is an answer too.
        if (s && this.holds(ns, key)) {
          const [local] = this.store.read(ns, [key]);
          if (local) merged = merged ? merge(merged, local) : local;
        }
        if (merged) this.hlc.observeRecord(merged);
        if (merged && (answers.length > 1 || (s && this.holds(ns, key)))) {
          const own = this.repair(ns, key, merged, answers);
          if (own) {
            // If this member's copy cannot take the repair (its disk is full, say), the
            // session remembers the key, so its next read here is not answered from the copy.
            const m = merged;
            ownRepairs.push(own.catch(() => void s?.note(ns, key, floorOf(m))));
          }
        } else if (level === 'ONE' && this.readRepairChance > 0 && this.random.nextDouble() < this.readRepairChance) {
          // A replica that answered nothing may be the one missing the key: repair it too.
          this.base.backgroundRepair(ns, key);
        }
        if (merged && this.tracks(ns, key)) s!.note(ns, key, floorOf(merged));
        out.push(merged);
      }
      // This member's own copy is repaired before the reply: it then holds everything the
      // client saw, so the connection's next read here is not older (monotonic reads).
      if (ownRepairs.length > 0) await Promise.all(ownRepairs);
      return out;
    } finally {
      release();
    }
  }

  private sendRead(node: NodeId, ns: string, keys: Buffer[]): Promise<(Record | null)[]> {
    if (node === this.self) return Promise.resolve(this.store.read(ns, keys));
    return this.request(node, encodeRequest({ op: 'read', epoch: this.view.epoch, tag: this.view.tag ?? 0, ns, keys })).then((b) => decodeReadReply(b, keys.length));
  }

  /**
   * Sends the merged record to every replica whose answer differs; returns the repair of
   * this member's own copy (to be awaited), if it needs one.
   */
  private repair(ns: string, key: Buffer, merged: Record, answers: readonly ReadAnswer[]): Promise<void> | null {
    const want = canonical(merged);
    let own: Promise<void> | null = null;
    let selfAnswered = false;
    for (const a of answers) {
      if (a.node === this.self) selfAnswered = true;
      if (a.record && canonical(a.record).equals(want)) continue;
      this.counters.readRepairs++;
      const p = this.sendWrite(a.node, [{ ns, key, delta: merged }], null);
      // Another replica that went away again is repaired by hints or the next read; this
      // member's own copy is the caller's to wait for.
      if (a.node === this.self) own = p.then(() => undefined);
      else p.catch(() => {});
    }
    // Asked in a session without being among the answers (the key's local read was skipped
    // or failed): bring this member's copy up to what the session now sees.
    if (!selfAnswered && this.session && this.holds(ns, key)) {
      this.counters.readRepairs++;
      own = this.sendWrite(this.self, [{ ns, key, delta: merged }], null).then(() => undefined);
    }
    return own;
  }

  private backgroundRepair(ns: string, key: Buffer): void {
    this.readRecords(ns, [key], 'ALL').catch(() => {
      // Not every replica reachable now: nothing to repair against.
    });
  }

  /**
   * Reads one key and computes the reply from its state: in place from the local replica
   * when it alone can answer (level ONE, and the session floor, if any, is covered), else
   * through a read round.
   */
  private readKey<T>(ns: string, key: Buffer, compute: (s: KeyState) => T): MaybePromise<T> {
    this.checkReadable();
    this.checks.namespace(ns);
    this.checks.key(key);
    if (this.answersLocally(ns, key)) {
      const state = this.store.state(ns, key, this.clock.nowMs());
      // Missing here may mean this copy missed it (a write while it was down): a sampled repair
      // asks every replica, so a key missing locally is repaired like a stale one.
      if (!this.solo && this.readRepairChance > 0 && this.random.nextDouble() < this.readRepairChance && !state.exists()) this.backgroundRepair(ns, key);
      return compute(state);
    }
    return this.readRecords(ns, [key], this.consistency.read).then(([r]) => compute(new RecordKeyState(r!, this.clock.nowMs())));
  }

  /**
   * True when this member's copy alone answers a read of the key: it is a replica, one answer
   * meets the read level (ONE, or any level on a key with one replica, as on a single node),
   * and the copy covers the session's floor.
   */
  private answersLocally(ns: string, key: Buffer): boolean {
    if (this.solo) return true;
    const replicas = this.replicasOf(ns, key);
    if (!replicas.includes(this.self) || required(this.consistency.read, replicas.length) !== 1) return false;
    return this.localCovers(ns, key);
  }

  /** True when the local copy covers the session's floor of the key (no floor: true). */
  private localCovers(ns: string, key: Buffer): boolean {
    const floor = this.floorFor(ns, key);
    if (!floor) return true;
    const [r] = this.store.read(ns, [key]);
    return covers(r!, floor);
  }

  /** Reads many keys; the keys this member can answer alone are read in place. */
  private readKeys<T>(ns: string, keys: readonly Buffer[], compute: (s: KeyState) => T): MaybePromise<T[]> {
    this.checkReadable();
    this.checks.namespace(ns);
    for (const k of keys) this.checks.key(k);
    const now = this.clock.nowMs();
    const out: T[] = new Array(keys.length);
    const remote: number[] = [];
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      if (this.answersLocally(ns, k)) out[i] = compute(this.store.state(ns, k, now));
      else remote.push(i);
    }
    if (remote.length === 0) return out;
    return this.readRecords(ns, remote.map((i) => keys[i]!), this.consistency.read).then((records) => {
      const at = this.clock.nowMs();
      remote.forEach((i, j) => (out[i] = compute(new RecordKeyState(records[j]!, at))));
      return out;
    });
  }

  // ------------------------------------------------------------------ conditional writes

  /**
   * A write that depends on the key's current state. `decide` is the command's meaning: from
   * the state it returns the delta (or none) and the reply. Atomic where this member is the
   * key's only replica; elsewhere read at the write level, then written.
   */
  private async update<T>(ns: string, key: Buffer, decide: (s: KeyState) => Decision<T>, readLevel: Level = this.consistency.write): Promise<T> {
    const admitted = this.beginWrite(ns, [key]);
    if (admitted) await admitted;
    if (this.soleReplica(ns, key)) return this.store.update(ns, key, this.clock.nowMs(), decide);
    const [current] = await this.readRecords(ns, [key], readLevel);
    const d = decide(new RecordKeyState(current!, this.clock.nowMs()));
    if (d.delta) await this.replicate([{ ns, key, delta: d.delta }], this.consistency.write);
    return d.reply;
  }

  /** True when this member is the key's only replica and its copy covers the session: it alone decides. */
  private soleReplica(ns: string, key: Buffer): boolean {
    const replicas = this.replicasOf(ns, key);
    return replicas.length === 1 && replicas[0] === this.self && this.localCovers(ns, key);
  }

  /** A blind write of one delta per key; resolves with the replicas' results. */
  private write(items: ApplyItem[]): Promise<ApplyResult[]> {
    return this.replicate(items, this.consistency.write);
  }

  // ------------------------------------------------------------------ values

  get(ns: string, key: Buffer): MaybePromise<Buffer | null> {
    return this.readKey(ns, key, (s) => s.value());
  }

  readValue(ns: string, key: Buffer, sink: ValueSink): undefined | Promise<Buffer | null> {
    this.checkReadable();
    this.checks.namespace(ns);
    this.checks.key(key);
    if (this.answersLocally(ns, key)) {
      this.store.readValueInto(ns, key, this.clock.nowMs(), sink);
      return undefined;
    }
    return this.readRecords(ns, [key], this.consistency.read).then(([r]) => new RecordKeyState(r!, this.clock.nowMs()).value());
  }

  getMany(ns: string, keys: Buffer[]): MaybePromise<(Buffer | null)[]> {
    this.checks.batch(keys.length, 'multi-get');
    return this.readKeys(ns, keys, (s) => s.value());
  }

  getRange(ns: string, key: Buffer, start: number, end: number): MaybePromise<Buffer> {
    return this.readKey(ns, key, (s) => {
      const r = resolveByteRange(s.size(), start, end);
      return r ? s.range(r[0], r[1]) : Buffer.alloc(0);
    });
  }

  strlen(ns: string, key: Buffer): MaybePromise<number> {
    return this.readKey(ns, key, (s) => s.size());
  }

  exists(ns: string, key: Buffer): MaybePromise<boolean> {
    return this.readKey(ns, key, (s) => s.exists());
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
      if (!(options.expireAtMs > 0) || !Number.isFinite(options.expireAtMs)) throw invalidArgument(`invalid expire time: ${options.expireAtMs}`);
      atMs = options.expireAtMs;
    }
    const delta = (): Record => {
      const version = this.version();
      const d = emptyRecord();
      d.base = { version, value };
      if (!options.keepTtl) d.expiry = { version, atMs };
      return d;
    };
    const { condition, returnOld } = options;
    if (!condition && !returnOld) {
      const admitted = this.beginWrite(ns, [key]);
      if (admitted) await admitted;
      await this.write([{ ns, key, delta: delta() }]);
      return { written: true };
    }
    return this.update<SetResult>(ns, key, (s) => {
      const old = returnOld ? s.value() : undefined;
      if (condition) {
        const live = s.exists();
        if ((condition === 'NX' && live) || (condition === 'XX' && !live)) {
          return { delta: null, reply: returnOld ? { written: false, old: old ?? null } : { written: false } };
        }
      }
      return { delta: delta(), reply: returnOld ? { written: true, old: old ?? null } : { written: true } };
    });
  }

  async setMany(ns: string, pairs: KvPair[], options: { ttlMs?: number } = {}): Promise<void> {
    this.checks.namespace(ns);
    this.checks.batch(pairs.length, 'multi-set');
    if (options.ttlMs !== undefined) this.checks.ttlMs(options.ttlMs);
    for (const p of pairs) {
      this.checks.key(p.key);
      this.checks.value(p.value);
    }
    const admitted = this.beginWrite(ns, pairs.map((p) => p.key));
    if (admitted) await admitted;
    const now = this.clock.nowMs();
    const items = pairs.map((p) => {
      const version = this.version();
      const delta = emptyRecord();
      delta.base = { version, value: p.value };
      delta.expiry = { version, atMs: options.ttlMs ? now + options.ttlMs : 0 };
      return { ns, key: p.key, delta };
    });
    await this.write(items);
  }

  private appendItem(ns: string, key: Buffer, bytes: Buffer): ApplyItem {
    const delta = emptyRecord();
    delta.appends = [{ version: this.version(), opId: this.nextOpId(), bytes }];
    return { ns, key, delta };
  }

  /**
   * The start of a key's value for the APPEND guard (a list stays a list), read at the read
   * level: the first batch when it starts like one, else its first bytes. Null when the key
   * holds no value, and when too few replicas can be read: the guard must not make APPEND
   * less available than its write (which sloppy quorum may still place), so the append then
   * goes ahead unchecked, and search skips a list it cannot read.
   */
  private async valueHead(ns: string, key: Buffer): Promise<Buffer | null> {
    try {
      return await this.readKey(ns, key, headOf);
    } catch (err) {
      if (err instanceof KvError && err.retryable) return null;
      throw err;
    }
  }

  async append(ns: string, key: Buffer, bytes: Buffer): Promise<number> {
    this.checks.namespace(ns);
    this.checks.key(key);
    this.checks.value(bytes);
    const admitted = this.beginWrite(ns, [key]);
    if (admitted) await admitted;
    if (bytes.length > 0) {
      // The key's only replica checks and appends in one transaction: a VADD that starts the
      // list and is not yet committed is seen.
      if (this.soleReplica(ns, key)) {
        return this.store.update(ns, key, this.clock.nowMs(), (s) => {
          checkAppend(key, headOf(s), bytes);
          return { delta: this.appendItem(ns, key, bytes).delta, reply: s.size() + bytes.length };
        });
      }
      checkAppend(key, await this.valueHead(ns, key), bytes);
    }
    const [r] = await this.write([this.appendItem(ns, key, bytes)]);
    return r!.size;
  }

  async appendMany(ns: string, pairs: KvPair[]): Promise<number[]> {
    this.checks.namespace(ns);
    this.checks.batch(pairs.length, 'multi-append');
    for (const p of pairs) {
      this.checks.key(p.key);
      this.checks.value(p.value);
    }
    const admitted = this.beginWrite(ns, pairs.map((p) => p.key));
    if (admitted) await admitted;
    // Every pair is checked before any is written.
    const heads = await Promise.all(pairs.map((p) => (p.value.length > 0 ? this.valueHead(ns, p.key) : null)));
    checkAppends(pairs, (i) => heads[i]!);
    const results = await this.write(pairs.map((p) => this.appendItem(ns, p.key, p.value)));
    return results.map((r) => r.size);
  }

  async del(ns: string, keys: Buffer[]): Promise<number> {
    this.checks.namespace(ns);
    this.checks.batch(keys.length, 'delete');
    for (const k of keys) this.checks.key(k);
    const unique = [...new Map(keys.map((k) => [k.toString('latin1'), k])).values()];
    const admitted = this.beginWrite(ns, unique);
    if (admitted) await admitted;
    const tomb = this.version();
    const results = await this.write(unique.map((key) => ({ ns, key, delta: { ...emptyRecord(), tomb } })));
    return results.filter((r) => r.wasLive).length;
  }

  async deleteRange(ns: string, start: Buffer, end: Buffer): Promise<number> {
    this.checks.namespace(ns);
    this.checks.rangeBounds(start, end.length > 0 ? end : null);
    let total = 0;
    let from = start;
    for (;;) {
      const batch = Math.min(deleteRangeBatch, this.limits.scanLimitMax, this.limits.batchKeysMax);
      const keys = await this.scanMerged(ns, from, end.length > 0 ? end : null, batch, false);
      if (keys.length === 0) return total;
      total += await this.del(ns, keys);
      if (keys.length < batch) return total;
      from = Buffer.concat([keys[keys.length - 1]!, zeroByte]);
    }
  }

  // ------------------------------------------------------------------ expiry

  async expireAt(ns: string, key: Buffer, atMs: number | null, condition?: ExpireCondition): Promise<boolean> {
    this.checks.namespace(ns);
    this.checks.key(key);
    if (atMs !== null && !Number.isFinite(atMs)) throw invalidArgument(`invalid expire time: ${atMs}`);
    return this.update(ns, key, (s) => {
      if (!s.exists()) return { delta: null, reply: false };
      const current = s.expireAtMs();
      if (atMs === null ? current === 0 : !expiryConditionHolds(condition, current, atMs)) return { delta: null, reply: false };
      const version = this.version();
      const delta = emptyRecord();
      // A time in the past deletes, as in Redis.
      if (atMs !== null && atMs <= this.clock.nowMs()) delta.tomb = version;
      else delta.expiry = { version, atMs: atMs ?? 0 };
      return { delta, reply: true };
    });
  }

  ttlMs(ns: string, key: Buffer): MaybePromise<number> {
    return this.readKey(ns, key, (s) => {
      if (!s.exists()) return -2;
      const at = s.expireAtMs();
      return at === 0 ? -1 : Math.max(0, at - this.clock.nowMs());
    });
  }

  // ------------------------------------------------------------------ fields

  async hset(ns: string, key: Buffer, fields: KvPair[]): Promise<number> {
    this.checks.namespace(ns);
    this.checks.key(key);
    this.checks.batch(fields.length, 'field set');
    if (fields.length === 0) throw invalidArgument('no fields given');
    for (const f of fields) {
      this.checks.field(f.key);
      this.checks.value(f.value);
    }
    const admitted = this.beginWrite(ns, [key]);
    if (admitted) await admitted;
    const delta = emptyRecord();
    for (const f of fields) delta.fields.set(f.key.toString('latin1'), { version: this.version(), value: f.value });
    const [r] = await this.write([{ ns, key, delta }]);
    return r!.fieldsAdded;
  }

  hget(ns: string, key: Buffer, field: Buffer): MaybePromise<Buffer | null> {
    return this.readKey(ns, key, (s) => s.field(field));
  }

  hmget(ns: string, key: Buffer, fields: Buffer[]): MaybePromise<(Buffer | null)[]> {
    this.checks.batch(fields.length, 'field get');
    return this.readKey(ns, key, (s) => fields.map((f) => s.field(f)));
  }

  hgetall(ns: string, key: Buffer): MaybePromise<KvPair[]> {
    return this.readKey(ns, key, (s) => s.fields().map(([k, v]) => ({ key: k, value: v })));
  }

  async hdel(ns: string, key: Buffer, fields: Buffer[]): Promise<number> {
    this.checks.namespace(ns);
    this.checks.key(key);
    this.checks.batch(fields.length, 'field delete');
    if (fields.length === 0) throw invalidArgument('no fields given');
    for (const f of fields) this.checks.field(f);
    const admitted = this.beginWrite(ns, [key]);
    if (admitted) await admitted;
    const version = this.version();
    const delta = emptyRecord();
    for (const f of fields) delta.fields.set(f.toString('latin1'), { version, value: null });
    const [r] = await this.write([{ ns, key, delta }]);
    return r!.fieldsRemoved;
  }

  hlen(ns: string, key: Buffer): MaybePromise<number> {
    return this.readKey(ns, key, (s) => s.fieldCount());
  }

  hexists(ns: string, key: Buffer, field: Buffer): MaybePromise<boolean> {
    return this.readKey(ns, key, (s) => s.field(field) !== null);
  }

  hmgetMany(ns: string, keys: Buffer[], fields: Buffer[]): MaybePromise<(Buffer | null)[][]> {
    this.checks.batch(keys.length * Math.max(1, fields.length), 'multi-key field get');
    return this.readKeys(ns, keys, (s) => fields.map((f) => s.field(f)));
  }

  // ------------------------------------------------------------------ keyspace

  /**
   * Keys in order across the cluster: every reachable member lists its first `limit` keys in
   * range; the smallest `limit` of their union are exactly the cluster's next `limit` keys.
   */
  private async scanMerged(ns: string, start: Buffer, end: Buffer | null, limit: number, reverse: boolean): Promise<Buffer[]> {
    if (this.solo) return this.store.scan(ns, start, end, limit, reverse, this.clock.nowMs());
    const members = this.view.aliveMembers();
    const lists = await Promise.all(
      members.map(async (m) => {
        if (m === this.self) return this.store.scan(ns, start, end, limit, reverse, this.clock.nowMs());
        for (let attempt = 1; ; attempt++) {
          try {
            const reply = await this.request(m, encodeRequest({ op: 'scan', epoch: this.view.epoch, tag: this.view.tag ?? 0, ns, start, end, limit, reverse }));
            return decodeScanReply(reply, this.limits);
          } catch (err) {
            // On an older table than the member's: learn it and ask again.
            const e = asKvError(err, m);
            if (e instanceof KvError && e.code === 'STALE_EPOCH' && attempt < staleRetriesMax && this.view.refreshFrom) {
              await this.view.refreshFrom(m);
              continue;
            }
            return []; // its keys are also on other replicas
          }
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
    this.checkReadable();
    this.checks.namespace(ns);
    const count = Math.min(Math.max(1, options.count), this.limits.scanLimitMax);
    const start = options.cursor ? Buffer.concat([options.cursor, zeroByte]) : Buffer.alloc(0);
    const keys = await this.scanMerged(ns, start, null, count, false);
    const match = options.match;
    const page = match && !(match.length === 1 && match[0] === 0x2a) ? keys.filter((k) => globMatch(match, k)) : keys;
    return { keys: page, next: keys.length < count ? null : keys[keys.length - 1]! };
  }

  async range(ns: string, options: RangeOptions): Promise<KvPair[]> {
    this.checkReadable();
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

  dbsize(ns: string): number {
    return this.store.keyCount(ns);
  }

  compact(ns: string, keys: Buffer[]): Promise<PruneResult> {
    this.checks.namespace(ns);
    this.checks.batch(keys.length, 'compaction');
    for (const k of keys) this.checks.key(k);
    return compactNow(this.store, ns, keys);
  }

  // ------------------------------------------------------------------ vector lists

  async vadd(ns: string, key: Buffer, batch: ItemBatchInput): Promise<number> {
    this.checks.namespace(ns);
    this.checks.key(key);
    const bytes = encodeBatch(batch);
    this.checks.value(bytes);
    // The first append fixes the shape; a VADD of an id that is live replaces it (see vaddSegment).
    return this.update(ns, key, (s) => {
      let shapeFound = false;
      const live = new LiveItems();
      s.visitPieces((piece) => {
        if (!shapeFound) shapeFound = checkShape(key, [piece], batch.type, batch.dim);
        for (const b of listBatches(key, [piece])) live.add(b);
      });
      const seg = vaddSegment(key, live, bytes);
      this.checks.value(seg.bytes);
      return { delta: this.appendItem(ns, key, seg.bytes).delta, reply: seg.count };
    });
  }

  async vdel(ns: string, key: Buffer, ids: Buffer[]): Promise<number> {
    this.checks.namespace(ns);
    this.checks.key(key);
    this.checks.batch(ids.length, 'item delete');
    const bytes = encodeDeletes(ids);
    // A replica that has not seen the list yet must not turn the delete into a no-op: at
    // write level ONE the list is still looked up at a quorum (which overlaps the one that
    // acknowledged the items).
    const readLevel = this.consistency.write === 'ONE' ? 'QUORUM' : this.consistency.write;
    return this.update(
      ns,
      key,
      (s) => {
        if (!s.exists()) return { delta: null, reply: 0 };
        const live = liveItemsOf(key, s); // a value that is not a list is refused before anything is written
        for (const b of listBatches(key, [bytes])) live.add(b);
        return { delta: this.appendItem(ns, key, bytes).delta, reply: live.count };
      },
      readLevel,
    );
  }

  vcard(ns: string, key: Buffer): MaybePromise<number> {
    return this.readKey(ns, key, (s) => liveItemsOf(key, s).count);
  }

  vrange(ns: string, key: Buffer, start: number, stop: number, options?: { withVectors?: boolean; withPayloads?: boolean }): MaybePromise<VectorItem[]> {
    return this.readKey(ns, key, (s) => itemRange(key, s.pieces(), start, stop, options));
  }

  /**
   * Each list is searched at one replica, chosen by load: this member when it holds a copy,
   * else the live replica with the fewest requests in flight. Each replica returns its top-k;
   * a replica that does not answer in time makes the answer degraded, naming its keys.
   */
  async vsearch(ns: string, request: VectorSearchRequest): Promise<VectorSearchResult> {
    this.checkReadable();
    this.checks.namespace(ns);
    this.checks.batch(request.keys.length, 'vector search');
    for (const k of request.keys) this.checks.key(k);
    const byNode = new Map<NodeId, Buffer[]>();
    const skipped: Buffer[] = [];
    const planned = new Map<NodeId, number>();
    for (const key of request.keys) {
      const replicas = this.replicasOf(ns, key).filter((r) => r === this.self || this.view.isAlive(r));
      if (replicas.length === 0) {
        skipped.push(key);
        continue;
      }
      const load = (r: NodeId) => this.tracker.inFlight(r) + (planned.get(r) ?? 0);
      const pick = replicas.includes(this.self) ? this.self : replicas.reduce((a, b) => (load(b) < load(a) ? b : a));
      planned.set(pick, (planned.get(pick) ?? 0) + 1);
      let list = byNode.get(pick);
      if (!list) byNode.set(pick, (list = []));
      list.push(key);
    }
    const replies = await Promise.all(
      [...byNode].map(async ([node, keys]): Promise<SearchReply> => {
        const sub = { ...request, keys };
        if (node === this.self) return localVectorSearch(this.store, ns, sub, this.clock.nowMs());
        try {
          return decodeSearchReply(await this.request(node, encodeRequest({ op: 'search', epoch: this.view.epoch, tag: this.view.tag ?? 0, ns, request: sub })), this.limits);
        } catch (err) {
          // The replica's verdict on the request itself (a bad query, not a list) is the
          // answer, with its code; a replica that cannot answer now (unreachable, overloaded,
          // out of service for its clock) is skipped, its lists named as degraded.
          const verdict = asKvError(err, node);
          if (verdict instanceof KvError && (verdict.code === 'INVALID_ARGUMENT' || verdict.code === 'WRONG_TYPE')) throw verdict;
          if (!(err instanceof TransportError)) throw err;
          skipped.push(...keys);
          return { hits: [], unreadable: [] };
        }
      }),
    );
    // Lists a replica could not read are skipped and named too (finishSearch).
    return finishSearch(request, replies, skipped);
  }
}

const zeroByte = Buffer.from([0]);

/** The live items of a list (ids only), over views of its pieces. */
function liveItemsOf(key: Buffer, s: KeyState): LiveItems {
  const live = new LiveItems();
  s.visitPieces((piece) => {
    for (const b of listBatches(key, [piece])) live.add(b);
  });
  return live;
}

/** A record's bytes with fields in name order: equal state, equal bytes. */
function canonical(r: Record): Buffer {
  return encodeRecord({ ...r, fields: new Map([...r.fields].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) });
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A replica's error as the client should see it: a coded remote error keeps its code. */
function asKvError(err: unknown, node: NodeId): unknown {
  if (err instanceof KvError) return err;
  if (err instanceof TransportError && err.code === 'REMOTE' && err.remoteCode && err.remoteCode !== 'INTERNAL' && isErrorCode(err.remoteCode)) {
    return new KvError(err.remoteCode, `${node}: ${err.message}`);
  }
  return err;
}

function printable(key: Buffer): string {
  return key.toString('utf8').slice(0, 64);
}

/** The start of a value for the APPEND guard: its first batch when it starts like one, else its first bytes; null without a value. */
function headOf(s: KeyState): Buffer | null {
  const size = s.size();
  if (size === 0) return null;
  const header = s.range(0, Math.min(size, ITEM_BATCH_HEADER_BYTES));
  const n = firstBatchBytes(header);
  return n === 0 ? Buffer.from(header) : s.range(0, Math.min(size, n));
}
