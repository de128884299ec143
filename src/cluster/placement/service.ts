/**
 * Placement at run time: this member's copy of the placement table, how tables spread
 * (offered by whoever makes one, fetched from any peer that gossips a newer epoch), and the
 * membership changes themselves (DESIGN.md, "Elasticity"):
 *
 *   - bootstrap: a member with no table that sees `expectMembers` members, none with a table,
 *     and is the lowest id among them, makes the first table of them all;
 *   - propose: join, leave, remove or restore starts a change (stage write-both);
 *   - stream: a member gaining slots pulls them from every live owner (owners adopt the
 *     change's table first and flush the writes they accepted before), merging records, at a
 *     bounded rate, resuming from a saved cursor after a crash of either side;
 *   - steward: the lowest-id live member of the table polls the gainers, and once all are
 *     caught up offers read-new, then the stable table (use-new), to every live member
 *     before going on (a barrier: every live member has it);
 *   - cleanup: a member drops the slots a stable table no longer gives it.
 *
 * Replicas refuse requests carrying an older epoch (STALE_EPOCH), so a coordinator that
 * missed a stage cannot write only to the old owners after a stream has started, nor read
 * a copy that was dropped. Pure: Transport, Clock and the stores are injected.
 */
import type { Clock } from '../../common/clock.js';
import { sleep } from '../../common/clock.js';
import { KvError } from '../../common/errors.js';
import { slotCount } from '../../common/slots.js';
import type { Record } from '../../storage/record.js';
import { WireReader, WireWriter, readKeyedRecords, writeKeyedRecords } from '../../storage/wire.js';
import { Channel, type NodeId, type Transport } from '../transport.js';
import { murmur3 } from '../hash.js';
import { type ChangeKind, PlacementTable } from './table.js';

/** What placement needs of this member's records. */
export interface SlotStore {
  namespaces(): string[];
  readSlot(ns: string, slot: number, after: Buffer | null, limit: number): { keys: Buffer[]; records: Record[] };
  apply(items: { ns: string; key: Buffer; delta: Record }[], nowMs: number): Promise<unknown>;
  /** Resolves once every write queued before it is durable. */
  barrier(): Promise<void>;
  dropSlot(ns: string, slot: number, limit: number): Promise<number>;
}

/** Where the table and the stream cursor survive a restart. */
export interface PlacementPersistence {
  loadTable(): Buffer | null;
  saveTable(table: Buffer): Promise<void>;
  loadStream(): string | null;
  saveStream(state: string): Promise<void>;
}

export interface PlacementOptions {
  self: NodeId;
  zone?: string;
  /** This member's data directory identity (see PlacementMember.dataId). */
  dataId: number;
  replicas: number;
  transport: Transport;
  clock: Clock;
  store: SlotStore;
  persistence: PlacementPersistence;
  isAlive: (id: NodeId) => boolean;
  /** Members known to membership (any status), for barriers and bootstrap. */
  knownMembers: () => { id: NodeId; zone: string; alive: boolean; dataId: number }[];
  /** Members needed before the first table is made (1: a member alone starts a cluster). */
  expectMembers: number;
  /** May this member make the first table (false while its seeds have not answered)? */
  mayBootstrap: () => boolean;
  /** Stream bandwidth per member, bytes/s. */
  streamBytesPerSec: number;
  /** Sees every record that arrives by stream or hand-off (the hybrid clock observes versions). */
  observe?: (r: Record) => void;
  /** Told after records of a slot were dropped here (anti-entropy recomputes that slot's digest). */
  dropped?: (ns: string, slot: number) => void;
  /** Records a cleanup drops per second at most (dropping is writes: client latency feels it). */
  cleanupKeysPerSec?: number;
  /** Records' bytes per stream page. */
  streamPageBytes?: number;
  requestTimeoutMs?: number;
  tickMs?: number;
  log?: (fields: object, message: string) => void;
}

const Op = Object.freeze({ get: 1, offer: 2, progress: 3, stream: 4, push: 5 });

/** A gainer's stream, as the steward and `ragkv cluster status` see it. */
export interface StreamProgress {
  since: number;
  /** The change the stream is for (`since:proposer`). */
  change: string;
  done: boolean;
  slots: number;
  sourcesDone: number;
  sources: number;
  keys: number;
  bytes: number;
}

interface SourceCursor {
  /** The member streamed from (entries are named `<node>` or `<node>#<k>` for a replacement). */
  node: NodeId;
  slots: number[];
  pos: number;
  ns: string;
  after: string | null; // hex
  done: boolean;
  skipped: boolean;
}

interface StreamState {
  since: number;
  change: string;
  sources: { [id: string]: SourceCursor };
  keys: number;
  bytes: number;
}

export class Placement {
  private current: PlacementTable | null;
  private readonly listeners: ((t: PlacementTable, prev: PlacementTable | null) => void)[] = [];
  private readonly fetching = new Map<NodeId, Promise<void>>();
  private stream: StreamState | null = null;
  private streaming: Promise<void> | null = null;
  private stewarding = false;
  private cleaning: Promise<void> | null = null;
  private flushedEpoch = 0;
  private discoverTurn = 0;
  /** Peers that answered they have no table yet (bootstrap waits until every live peer has). */
  private readonly tableless = new Set<NodeId>();
  private flushing: Promise<void> | null = null;
  private timer: { cancel(): void } | null = null;
  private stopped = false;
  readonly counters = { tablesAdopted: 0, staleRefusals: 0, streamedKeys: 0, streamedBytes: 0, droppedKeys: 0, stewardSteps: 0, proposalsLost: 0 };
  private readonly pageBytes: number;
  private readonly timeoutMs: number;

  constructor(private readonly o: PlacementOptions) {
    const saved = o.persistence.loadTable();
    this.current = saved ? PlacementTable.decode(saved) : null;
    // A table from disk may be old (this member was down through changes): its own copy is
    // not read until a peer has confirmed the table, or none is up to ask.
    this.confirmedTable = saved === null;
    const s = o.persistence.loadStream();
    this.stream = s ? (JSON.parse(s) as StreamState) : null;
    this.pageBytes = o.streamPageBytes ?? 256 * 1024;
    this.timeoutMs = o.requestTimeoutMs ?? 5000;
    o.transport.handle(Channel.placement, (from, payload) => this.handle(from, payload));
  }

  get table(): PlacementTable | null {
    return this.current;
  }

  get epoch(): number {
    return this.current?.epoch ?? 0;
  }

  /** The current table's request fence (0 before there is one). */
  get tag(): number {
    return this.current?.tag ?? 0;
  }

  /** False after a start on a saved table, until a peer has shown it is current. */
  get confirmed(): boolean {
    return this.confirmedTable;
  }
  private confirmedTable: boolean;

  /**
   * True while this member is listed as an owner but holds nothing yet: a wiped disk whose
   * restore has not started. Its copy must not answer reads.
   */
  get awaitingRestore(): boolean {
    // Read on every coordinated read (PlacementView): kept per table, not searched per call.
    if (this.awaitingFor !== this.current) {
      const known = this.current?.member(this.o.self)?.dataId;
      this.awaiting = known !== undefined && known !== this.o.dataId;
      this.awaitingFor = this.current;
    }
    return this.awaiting;
  }
  private awaiting = false;
  private awaitingFor: PlacementTable | null | undefined = undefined;

  on(listener: (t: PlacementTable, prev: PlacementTable | null) => void): void {
    this.listeners.push(listener);
  }

  start(): void {
    this.stopped = false;
    if (this.current) this.afterAdopt(this.current, this.current);
    const loop = () => {
      if (this.stopped) return;
      this.timer = this.o.clock.setTimer(this.o.tickMs ?? 200, () => {
        this.tick();
        loop();
      });
    };
    loop();
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
  }

  /** Adopts `t` if it is newer than this member's table; true if it did. */
  adopt(t: PlacementTable): boolean {
    const prev = this.current;
    if (prev && t.cluster !== prev.cluster) {
      this.o.log?.({ theirs: t.cluster, ours: prev.cluster, driver: t.driver }, 'refused a placement table of another cluster (two clusters formed apart, or members of two clusters share a name and secret)');
      return false;
    }
    if (prev && !prev.olderThan(t)) return false;
    this.confirmedTable = true;
    // Another member's table of the same epoch won over this member's proposal.
    if (prev?.change && prev.epoch === t.epoch && prev.driver === this.o.self && t.driver !== this.o.self) this.counters.proposalsLost++;
    this.current = t;
    this.counters.tablesAdopted++;
    void this.o.persistence.saveTable(t.encode()).catch((err: unknown) => this.o.log?.({ err }, 'placement table not saved'));
    this.o.log?.({ ...t.summary() }, 'placement table adopted');
    this.afterAdopt(t, prev);
    for (const l of this.listeners) l(t, prev);
    return true;
  }

  private afterAdopt(t: PlacementTable, prev: PlacementTable | null): void {
    const c = t.change;
    if (c && (!this.stream || this.stream.change !== t.changeId) && t.gains(this.o.self).length > 0) this.stream = null;
    if (c && t.gains(this.o.self).length > 0) this.startStream(t);
    if (!c && prev) this.startCleanup(t, prev);
    // Records in slots it does not hold under a stable table (data from before placement on
    // slots, a cleanup a crash cut short) are handed to the slots' owners, then dropped.
    if (!c) this.startRehome(t);
  }

  private startRehome(t: PlacementTable): void {
    const run = async () => {
      if (this.cleaning) await this.cleaning.catch(() => {});
      let moved = 0;
      for (const ns of this.o.store.namespaces()) {
        for (let slot = 0; slot < slotCount; slot++) {
          if (this.stopped || this.current !== t) return;
          const owners = t.owners[slot]!;
          if (owners.includes(this.o.self)) continue;
          for (;;) {
            const page = this.o.store.readSlot(ns, slot, null, 256);
            if (page.keys.length === 0) break;
            const payload = writeKeyedRecords(new WireWriter().u8(Op.push).u32(t.epoch).str(ns), page.keys.map((key, i) => ({ key, record: page.records[i]! }))).done();
            // Every owner must take them: an owner that is down, or has not learned this table
            // yet, is asked again a little later (and at the next start, past that).
            let taken = false;
            for (let attempt = 0; attempt < 20 && !taken && !this.stopped && this.current === t; attempt++) {
              if (owners.every((o) => this.o.isAlive(o))) {
                taken = await Promise.all(owners.map((o) => this.o.transport.request(o, Channel.placement, payload, this.timeoutMs))).then(
                  () => true,
                  () => false,
                );
              }
              if (!taken) await sleep(this.o.clock, 500);
            }
            if (!taken || this.current !== t) return;
            moved += await this.o.store.dropSlot(ns, slot, page.keys.length);
            this.o.dropped?.(ns, slot);
            if (page.keys.length < 256) break;
          }
        }
      }
      if (moved > 0) {
        this.counters.droppedKeys += moved;
        this.o.log?.({ keys: moved }, 'handed records of slots this member does not hold to their owners');
      }
    };
    this.cleaning = run().catch((err: unknown) => this.o.log?.({ err: String(err) }, 'hand-off of records outside this member\'s slots failed; it runs again at the next start'));
  }

  /** A peer says it has `epoch` (gossip, or a request): fetch its table if newer. */
  noteEpoch(from: NodeId, epoch: number, driver = ''): void {
    if (from === this.o.self) return;
    const cur = this.current;
    if (cur && !cur.olderThan({ epoch, driver })) return;
    if (epoch === 0) return;
    void this.fetchFrom(from).catch(() => {});
  }

  /** Fetches `from`'s table and adopts it if newer. */
  fetchFrom(from: NodeId): Promise<void> {
    let p = this.fetching.get(from);
    if (!p) {
      p = this.o.transport
        .request(from, Channel.placement, new WireWriter().u8(Op.get).done(), this.timeoutMs)
        .then((reply) => {
          if (reply.length > 0) {
            const theirs = PlacementTable.decode(reply);
            if (!this.adopt(theirs) && this.current && theirs.cluster === this.current.cluster) this.confirmedTable = true;
          } else this.tableless.add(from);
        })
        .finally(() => this.fetching.delete(from));
      this.fetching.set(from, p);
    }
    return p;
  }

  /**
   * A request carried (`epoch`, `tag`): refused if its table is older than this member's, or
   * another table of the same epoch (a proposal that lost): the sender refreshes and retries.
   * A read from a newer table is refused until this member has learned it (its copy may be
   * one that moved away); a write from one is taken.
   */
  checkEpoch(from: NodeId, epoch: number, tag: number, read: boolean): void {
    const t = this.current;
    const mine = this.epoch;
    if (epoch < mine || (t && epoch === mine && tag !== 0 && tag !== t.tag)) {
      this.counters.staleRefusals++;
      if (epoch === mine) this.noteEpoch(from, epoch, '\uffff');
      throw new KvError('STALE_EPOCH', `placement epoch ${epoch} is older than this member's ${mine} (or another table of it): refresh the table and retry`);
    }
    if (epoch > mine) {
      this.noteEpoch(from, epoch, '\uffff');
      if (read) throw new KvError('UNAVAILABLE', `this member has not learned placement epoch ${epoch} yet: read another replica`);
    }
  }

  // ---------------------------------------------------------------- changes

  /** Starts a change driven by this member; resolves once every live member has its first table. */
  async propose(kind: ChangeKind, member: NodeId): Promise<PlacementTable> {
    const t = this.current;
    if (!t) throw new KvError('UNAVAILABLE', 'this member has no placement table yet (the cluster has not formed): retry');
    if (kind === 'remove' && this.o.isAlive(member)) {
      throw new KvError('INVALID_ARGUMENT', `'${member}' is alive: a live member leaves ('ragkv cluster leave' on it), only a dead one is removed`);
    }
    // A join whose member died before it caught up would wait forever: removing that member
    // gives the join up instead (the owners took every write of the change).
    const next =
      kind === 'remove' && t.change?.kind === 'join' && t.change.member === member
        ? t.abortJoin(this.o.self)
        : t.begin(kind, member, this.o.self, member === this.o.self ? { ...(this.o.zone ? { zone: this.o.zone } : {}), dataId: this.o.dataId } : {});
    this.adopt(next);
    await this.offerAll(next);
    return next;
  }

  /** Offers `t` to every live member and waits for them (a barrier); a member with a newer table wins. */
  private async offerAll(t: PlacementTable): Promise<void> {
    const ids = new Set<NodeId>(t.members.map((m) => m.id));
    for (const m of this.o.knownMembers()) if (m.alive) ids.add(m.id);
    ids.delete(this.o.self);
    const payload = new WireWriter(t.encode().length + 8).u8(Op.offer).bytes(t.encode()).done();
    await Promise.all(
      [...ids].map(async (id) => {
        for (let attempt = 0; attempt < 5 && !this.stopped; attempt++) {
          if (!this.o.isAlive(id)) return;
          try {
            const reply = new WireReader(await this.o.transport.request(id, Channel.placement, payload, this.timeoutMs));
            const epoch = reply.u32();
            const driver = reply.str();
            if (t.olderThan({ epoch, driver })) this.noteEpoch(id, epoch, driver);
            return;
          } catch {
            await sleep(this.o.clock, 100 * (attempt + 1));
          }
        }
      }),
    );
  }

  private tick(): void {
    if (this.stopped) return;
    const t = this.current;
    if (!t) {
      // Learn the table from a peer (gossip carries epochs too; this does not depend on it).
      const peers = this.o.knownMembers().filter((m) => m.alive && m.id !== this.o.self);
      if (peers.length > 0) void this.fetchFrom(peers[this.discoverTurn++ % peers.length]!.id).catch(() => {});
      return this.maybeBootstrap();
    }
    if (!this.confirmedTable) {
      const peers = t.members.filter((m) => m.id !== this.o.self && this.o.isAlive(m.id));
      if (peers.length === 0) this.confirmedTable = true; // nobody to ask: its table is the cluster's
      else void this.fetchFrom(peers[this.discoverTurn++ % peers.length]!.id).catch(() => {});
    }
    // A stream abandoned for a change that lost (or cut by a crash) starts again for this one.
    if (t.change && !this.streaming && t.gains(this.o.self).length > 0 && !(this.stream?.change === t.changeId && this.progress().done)) this.startStream(t);
    if (t.change && !this.stewarding && this.isSteward(t)) {
      this.stewarding = true;
      void this.steward(t)
        .catch((err: unknown) => this.o.log?.({ err: String(err) }, 'placement steward step failed; retrying'))
        .finally(() => (this.stewarding = false));
    }
  }

  private maybeBootstrap(): void {
    if (!this.o.mayBootstrap()) return;
    const alive = this.o.knownMembers().filter((m) => m.alive || m.id === this.o.self);
    if (alive.length < this.o.expectMembers) return;
    // Wait for every member's data identity (gossiped): the table needs it to tell a wiped disk.
    if (alive.some((m) => !m.dataId)) return;
    // Never start a second cluster beside one that exists: every live peer must have said it
    // has no table (a member joining an existing cluster fetches its table instead).
    if (alive.some((m) => m.id !== this.o.self && !this.tableless.has(m.id))) return;
    const ids = alive.map((m) => m.id).sort();
    if (ids[0] !== this.o.self) return;
    // The cluster's identity: a table of another cluster (formed apart) is never adopted.
    const cluster = (murmur3(Buffer.from(`${this.o.self}/${this.o.dataId}/${this.o.clock.nowMs()}`)) | 1) >>> 0;
    const t = PlacementTable.initial(
      alive.map((m) => ({ id: m.id, ...(m.zone ? { zone: m.zone } : {}), ...(m.dataId ? { dataId: m.dataId } : {}) })),
      this.o.replicas,
      this.o.self,
      cluster,
    );
    this.o.log?.({ members: ids }, 'bootstrapping the cluster: first placement table');
    this.adopt(t);
    void this.offerAll(t);
  }

  /** The lowest-id live member of the table (not the one leaving or removed) drives stages. */
  private isSteward(t: PlacementTable): boolean {
    const c = t.change!;
    for (const m of t.members) {
      if ((c.kind === 'remove' || c.kind === 'leave') && m.id === c.member) continue;
      if (m.id === this.o.self) return true;
      if (this.o.isAlive(m.id)) return false;
    }
    return false;
  }

  private async steward(t: PlacementTable): Promise<void> {
    const c = t.change!;
    if (c.stage === 'write-both') {
      const gainers = new Set<NodeId>();
      for (let s = 0; s < slotCount; s++) for (const id of c.target[s]!) if (!t.owners[s]!.includes(id)) gainers.add(id);
      for (const g of gainers) {
        const p = g === this.o.self ? this.progress() : await this.askProgress(g);
        if (!p || p.change !== t.changeId || !p.done) return; // not caught up yet (or down: the change waits)
      }
    }
    if (this.current !== t) return;
    const next = t.advance(this.o.self);
    this.counters.stewardSteps++;
    this.adopt(next);
    await this.offerAll(next);
  }

  private async askProgress(id: NodeId): Promise<StreamProgress | null> {
    if (!this.o.isAlive(id)) return null;
    const epochBytes = new WireWriter().u8(Op.progress).u32(this.epoch).done();
    const r = new WireReader(await this.o.transport.request(id, Channel.placement, epochBytes, this.timeoutMs));
    return JSON.parse(r.str()) as StreamProgress;
  }

  /** This member's stream for the change in flight. */
  progress(): StreamProgress {
    const t = this.current;
    const since = t?.change?.since ?? 0;
    const change = t?.changeId ?? '';
    const s = this.stream;
    const gains = t?.change ? t.gains(this.o.self).length : 0;
    if (!s || s.change !== change) return { since, change, done: gains === 0, slots: gains, sourcesDone: 0, sources: 0, keys: 0, bytes: 0 };
    const sources = Object.values(s.sources);
    const sourcesDone = sources.filter((x) => x.done).length;
    return { since, change, done: sourcesDone === sources.length && !this.streaming, slots: gains, sourcesDone, sources: sources.length, keys: s.keys, bytes: s.bytes };
  }

  // ---------------------------------------------------------------- streaming

  private startStream(t: PlacementTable): void {
    if (this.streaming) return;
    const c = t.change!;
    if (!this.stream || this.stream.change !== t.changeId) {
      // Each gained slot is streamed from a majority of its old owners: they hold every write
      // acknowledged at QUORUM (any majority meets any other), and a third source would add
      // only bytes. Live owners first, rotated by slot to spread the load.
      const sources: StreamState['sources'] = {};
      for (const slot of t.gains(this.o.self)) {
        const owners = t.owners[slot]!.filter((o) => o !== this.o.self);
        const need = Math.min(owners.length, Math.floor(t.owners[slot]!.length / 2) + 1);
        const k = owners.length ? slot % owners.length : 0;
        const order = [...owners.slice(k), ...owners.slice(0, k)].sort((a, b) => Number(this.o.isAlive(b)) - Number(this.o.isAlive(a)));
        for (const owner of order.slice(0, need)) {
          (sources[owner] ??= { node: owner, slots: [], pos: 0, ns: '', after: null, done: false, skipped: false }).slots.push(slot);
        }
      }
      this.stream = { since: c.since, change: t.changeId, sources, keys: 0, bytes: 0 };
    }
    const state = this.stream;
    this.o.log?.({ since: c.since, sources: Object.keys(state.sources), slots: t.gains(this.o.self).length }, 'streaming gained slots');
    // Cleanup of an earlier change may still be dropping slots: streams start after it.
    const cleaning = this.cleaning;
    this.streaming = (cleaning ? cleaning.catch(() => {}) : Promise.resolve())
      .then(() => Promise.all(Object.keys(state.sources).map((id) => this.streamFrom(id, state))))
      .then(() => this.o.log?.({ since: state.since, keys: state.keys, bytes: state.bytes }, 'stream done'))
      .finally(() => {
        this.streaming = null;
      });
  }

  private async streamFrom(name: string, state: StreamState): Promise<void> {
    const cur = state.sources[name]!;
    cur.node ??= name; // a cursor saved before entries named their member
    const source = cur.node;
    const started = this.o.clock.nowMs();
    let bytesHere = 0;
    let failures = 0;
    while (!cur.done && !this.stopped && this.current?.changeId === state.change) {
      if (!this.o.isAlive(source)) {
        // An owner that is down: its slots still to stream go to other live old owners (a
        // majority of each slot's owners is still streamed from); with none to take a slot, it
        // is skipped only if a majority remains without it, else the stream waits for it. (A
        // write acknowledged at ONE by that owner alone reaches the gainer through hints and
        // anti-entropy.)
        const moved = this.reassign(name, state);
        if (moved) {
          cur.done = true;
          cur.skipped = true;
          this.o.log?.({ source, to: moved.map((m) => state.sources[m]!.node) }, 'stream source down: its slots go to other owners');
          await this.o.persistence.saveStream(JSON.stringify(state)).catch(() => {});
          await Promise.all(moved.map((m) => this.streamFrom(m, state)));
          return;
        }
        if (this.canSkip(name, state)) {
          cur.done = true;
          cur.skipped = true;
          this.o.log?.({ source }, 'stream source down: skipped (a majority of its slots\' owners remain)');
          break;
        }
        await sleep(this.o.clock, 500);
        continue;
      }
      try {
        const w = new WireWriter(64 + cur.slots.length * 2).u8(Op.stream).u32(this.epoch).u32(this.pageBytes).u32(cur.pos).str(cur.ns);
        w.bytes(cur.after ? Buffer.from(cur.after, 'hex') : Buffer.alloc(0)).u8(cur.after ? 1 : 0).u32(cur.slots.length);
        for (const s of cur.slots) w.u32(s);
        const r = new WireReader(await this.o.transport.request(source, Channel.placement, w.done(), this.timeoutMs * 4));
        const count = r.u32();
        const items: { ns: string; key: Buffer; delta: Record }[] = [];
        for (let i = 0; i < count; i++) items.push({ ns: r.str(), key: Buffer.from(r.bytes()), delta: r.record() });
        const more = r.u8() === 1;
        const next = more ? { pos: r.u32(), ns: r.str(), after: Buffer.from(r.bytes()).toString('hex') } : null;
        const pageBytes = r.u32();
        if (this.o.observe) for (const it of items) this.o.observe(it.delta);
        if (items.length) await this.o.store.apply(items, this.o.clock.nowMs());
        state.keys += items.length;
        state.bytes += pageBytes;
        this.counters.streamedKeys += items.length;
        this.counters.streamedBytes += pageBytes;
        bytesHere += pageBytes;
        if (next) Object.assign(cur, next);
        else cur.done = true;
        failures = 0;
        await this.o.persistence.saveStream(JSON.stringify(state));
        // Bandwidth bound: wait until this source's bytes fit the rate.
        const due = started + (bytesHere / this.o.streamBytesPerSec) * 1000 - this.o.clock.nowMs();
        if (due > 0) await sleep(this.o.clock, due);
      } catch (err) {
        failures++;
        this.o.log?.({ source, err: String(err), failures }, 'stream page failed; retrying');
        await sleep(this.o.clock, Math.min(5000, 100 * 2 ** Math.min(failures, 6)));
      }
    }
    await this.o.persistence.saveStream(JSON.stringify(state)).catch(() => {});
  }

  /** Live old owners that no entry streams `slot` from yet. */
  private spareOwners(t: PlacementTable, slot: number, state: StreamState): NodeId[] {
    const taken = new Set(Object.values(state.sources).filter((c) => !c.skipped && c.slots.includes(slot)).map((c) => c.node));
    return t.owners[slot]!.filter((o) => o !== this.o.self && !taken.has(o) && this.o.isAlive(o));
  }

  /**
   * Moves the slots a down source has not finished to other live owners (new entries, each
   * with its own cursor); the names of the new entries, or null when some slot has no spare.
   */
  private reassign(name: string, state: StreamState): string[] | null {
    const t = this.current;
    if (!t?.change || t.changeId !== state.change) return null;
    const cur = state.sources[name]!;
    const remaining = cur.slots.slice(cur.pos);
    const byNode = new Map<NodeId, number[]>();
    for (const slot of remaining) {
      const spare = this.spareOwners(t, slot, state).filter((o) => o !== cur.node);
      if (spare.length === 0) return null;
      const pick = spare[slot % spare.length]!;
      (byNode.get(pick) ?? byNode.set(pick, []).get(pick)!).push(slot);
    }
    const names: string[] = [];
    for (const [node, slots] of byNode) {
      let k = 1;
      while (state.sources[`${node}#${k}`]) k++;
      const entry = `${node}#${k}`;
      state.sources[entry] = { node, slots, pos: 0, ns: '', after: null, done: false, skipped: false };
      names.push(entry);
    }
    return names;
  }

  private canSkip(name: string, state: StreamState): boolean {
    const t = this.current;
    if (!t?.change || t.changeId !== state.change) return true;
    const cur = state.sources[name]!;
    for (const slot of cur.slots.slice(cur.pos)) {
      const owners = t.owners[slot]!;
      const kept =
        (owners.includes(this.o.self) ? 1 : 0) +
        Object.entries(state.sources).filter(([n, c]) => n !== name && !c.skipped && c.node !== cur.node && c.slots.includes(slot)).length;
      if (kept < Math.floor(owners.length / 2) + 1) return false;
    }
    return true;
  }

  /** Serves a page of the requested slots' records, in (slot, namespace, key) order. */
  private async serveStream(from: NodeId, r: WireReader): Promise<Buffer> {
    const epoch = r.u32();
    const maxBytes = Math.min(r.u32(), 8 * 1024 * 1024);
    let pos = r.u32();
    let ns = r.str();
    const afterBytes = Buffer.from(r.bytes());
    let after: Buffer | null = r.u8() === 1 ? afterBytes : null;
    const n = r.u32();
    if (n > slotCount) throw new KvError('PROTOCOL', `stream request names ${n} slots, over ${slotCount}`);
    const slots: number[] = [];
    for (let i = 0; i < n; i++) slots.push(r.u32());
    r.end();
    // The requester streams for a change this member must have adopted first, with every
    // write it accepted before that durable: nothing acknowledged on the old owners is missed.
    if (epoch > this.epoch) await this.fetchFrom(from);
    if (epoch > this.epoch) throw new KvError('UNAVAILABLE', `this member has not learned placement epoch ${epoch} yet: retry`);
    await this.flushedAt(this.epoch);
    const out = new WireWriter(Math.min(maxBytes, 1024 * 1024) + 1024);
    const items: { ns: string; key: Buffer; record: Record }[] = [];
    let bytes = 0;
    const namespaces = this.o.store.namespaces();
    let more = false;
    outer: while (pos < slots.length) {
      const slot = slots[pos]!;
      for (const name of namespaces) {
        if (name < ns) continue;
        if (name !== ns) after = null;
        ns = name;
        for (;;) {
          const page = this.o.store.readSlot(name, slot, after, 256);
          for (let i = 0; i < page.keys.length; i++) {
            const key = page.keys[i]!;
            items.push({ ns: name, key, record: page.records[i]! });
            bytes += key.length + recordBytesEstimate(page.records[i]!);
            after = key;
            if (bytes >= maxBytes) {
              more = true;
              break outer;
            }
          }
          if (page.keys.length < 256) break;
        }
      }
      pos++;
      ns = '';
      after = null;
    }
    out.u32(items.length);
    for (const it of items) out.str(it.ns).bytes(it.key).record(it.record);
    if (more) out.u8(1).u32(pos).str(ns).bytes(after ?? Buffer.alloc(0));
    else out.u8(0);
    out.u32(bytes);
    return out.done();
  }

  /** Resolves once the writes this member accepted before adopting `epoch` are durable. */
  private flushedAt(epoch: number): Promise<void> {
    if (this.flushedEpoch >= epoch) return Promise.resolve();
    if (!this.flushing) {
      this.flushing = this.o.store
        .barrier()
        .then(() => void (this.flushedEpoch = Math.max(this.flushedEpoch, epoch)))
        .finally(() => (this.flushing = null));
    }
    return this.flushing.then(() => this.flushedAt(epoch));
  }

  // ---------------------------------------------------------------- cleanup

  private startCleanup(t: PlacementTable, prev: PlacementTable): void {
    const self = this.o.self;
    const lost: number[] = [];
    for (let s = 0; s < slotCount; s++) {
      const had = prev.owners[s]!.includes(self) || (prev.change?.target[s]!.includes(self) ?? false);
      if (had && !t.owners[s]!.includes(self)) lost.push(s);
    }
    if (lost.length === 0) return;
    const run = async () => {
      if (this.cleaning) await this.cleaning.catch(() => {});
      let dropped = 0;
      for (const ns of this.o.store.namespaces()) {
        for (const slot of lost) {
          // A later table may give the slot back: stop dropping what is owned again.
          if (this.current?.writeTargets(slot).all.includes(self)) continue;
          for (;;) {
            if (this.stopped || this.current?.writeTargets(slot).all.includes(self)) break;
            const n = await this.o.store.dropSlot(ns, slot, 256);
            if (n > 0) this.o.dropped?.(ns, slot);
            dropped += n;
            // Bounded rate: a cleanup of a quarter of the data must not starve clients.
            if (n > 0) await sleep(this.o.clock, (n / (this.o.cleanupKeysPerSec ?? 20_000)) * 1000);
            if (n < 256) break;
          }
        }
      }
      this.counters.droppedKeys += dropped;
      this.o.log?.({ slots: lost.length, keys: dropped }, 'dropped the slots this member no longer holds');
    };
    this.cleaning = run().catch((err: unknown) => this.o.log?.({ err: String(err) }, 'cleanup failed'));
  }

  // ---------------------------------------------------------------- the channel

  private handle(from: NodeId, payload: Buffer): Promise<Buffer> | Buffer {
    const r = new WireReader(payload);
    switch (r.u8()) {
      case Op.get:
        return this.current ? this.current.encode() : Buffer.alloc(0);
      case Op.offer: {
        const t = PlacementTable.decode(r.bytes());
        this.adopt(t);
        // Acknowledged once this member's earlier writes are durable (see serveStream).
        return this.flushedAt(this.epoch).then(() => new WireWriter().u32(this.epoch).str(this.current?.driver ?? '').done());
      }
      case Op.progress: {
        const epoch = r.u32();
        const reply = () => new WireWriter().str(JSON.stringify(this.progress())).done();
        if (epoch > this.epoch) return this.fetchFrom(from).then(reply);
        return reply();
      }
      case Op.stream:
        return this.serveStream(from, r);
      case Op.push: {
        // Records a member held outside its slots, handed to this owner: merged (idempotent).
        const epoch = r.u32();
        if (epoch !== this.epoch) throw new KvError('STALE_EPOCH', `hand-off at placement epoch ${epoch}, this member is at ${this.epoch}`);
        const items = readKeyedRecords(r, r.str(), 4096, 'hand-off');
        if (this.o.observe) for (const it of items) this.o.observe(it.delta);
        return this.o.store.apply(items, this.o.clock.nowMs()).then(() => Buffer.alloc(0));
      }
      default:
        throw new KvError('PROTOCOL', 'unknown placement message');
    }
  }
}

function recordBytesEstimate(r: Record): number {
  let n = 64 + (r.base?.value.length ?? 0);
  for (const a of r.appends) n += 40 + a.bytes.length;
  for (const [k, f] of r.fields) n += k.length + 16 + (f.value?.length ?? 0);
  return n;
}
