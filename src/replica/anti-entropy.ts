/**
 * Anti-entropy: replicas of a slot compare what they hold in the background and exchange
 * only the keys that differ, so a replica that missed writes (a hint store that was full, a
 * coordinator that crashed before keeping a hint, a partial disk) converges without any
 * client read.
 *
 * The tree, per namespace: 16384 slot digests (leaves over keys) under 256 bucket digests of
 * 64 slots. A key's hash is 64 bits (two murmur3 seeds) of its key and canonical record; a
 * slot's digest is the XOR of its keys' hashes, so it is independent of order and updated by
 * recomputing only slots that changed: every write marks its slot dirty (after commit), and a
 * few slots are recomputed each round regardless (expiry sweeps rewrite records unseen).
 *
 * A round, every `intervalMs`, with one live peer in turn: exchange bucket digests of the
 * slots both hold (stable table only: no change in flight), then slot digests of differing
 * buckets, then (key, hash) lists of differing slots; the keys whose hashes differ are pulled
 * (merged here) and pushed (merged there). Merge is idempotent, so a repair that overlaps a
 * write is harmless. Bounded: slots per round, keys repaired per round.
 */
import type { Clock, Timer } from '../common/clock.js';
import { KvError } from '../common/errors.js';
import { slotCount } from '../common/slots.js';
import { murmur3 } from '../cluster/hash.js';
import type { PlacementTable } from '../cluster/placement/table.js';
import { Channel, type NodeId, type Transport } from '../cluster/transport.js';
import { encodeRecord, encodedRecordBytes as encodedBytes } from '../storage/record-codec.js';
import { merge, type Record } from '../storage/record.js';
import { WireReader, WireWriter, readKeyedRecords, writeKeyedRecords } from '../storage/wire.js';

export interface AntiEntropyStore {
  namespaces(): string[];
  readSlot(ns: string, slot: number, after: Buffer | null, limit: number): { keys: Buffer[]; records: Record[] };
  read(ns: string, keys: Buffer[]): (Record | null)[];
  apply(items: { ns: string; key: Buffer; delta: Record }[], nowMs: number): Promise<unknown>;
}

export interface AntiEntropyOptions {
  self: NodeId;
  transport: Transport;
  clock: Clock;
  store: AntiEntropyStore;
  table: () => PlacementTable | null;
  isAlive: (id: NodeId) => boolean;
  /** Time between rounds. */
  intervalMs: number;
  /** Buckets (of 64 slots) compared per round with one peer. */
  bucketsPerRound?: number;
  /** Slots recomputed per round even if no write marked them (expiry sweeps). */
  refreshSlotsPerRound?: number;
  /** Keys pulled and pushed per round at most. */
  keysPerRound?: number;
  /** Keys hashed per round (to bring stale digests up to date) before comparing, at most. */
  hashKeysPerRound?: number;
  requestTimeoutMs?: number;
  /** Sees every record pulled or pushed here (the hybrid clock observes versions). */
  observe?: (r: Record) => void;
  log?: (fields: object, message: string) => void;
}

const bucketSlots = 64;
const bucketCount = slotCount / bucketSlots;
const Op = Object.freeze({ buckets: 1, slots: 2, keys: 3, records: 4, push: 5 });
/** Keys listed per slot in one answer (a slot larger than this is compared in pages). */
const keysPageMax = 4096;
/** Bytes of records in one pull answer or one push (well under the internode frame limit). */
const recordBytesMax = 8 * 1024 * 1024;

interface NsDigests {
  hi: Uint32Array;
  lo: Uint32Array;
  valid: Uint8Array;
}

/** The canonical bytes of a record: merge-normalized, fields sorted (replicas may store them in another order). */
function canonicalBytes(r: Record): Buffer {
  const m = merge(r, { tomb: null, base: null, appends: [], fields: new Map(), expiry: null });
  return encodeRecord({ ...m, fields: new Map([...m.fields].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) });
}

/** 64-bit hash of a key and its record, as two 32-bit halves. */
export function keyHash(key: Buffer, r: Record): [number, number] {
  const bytes = Buffer.concat([Buffer.from([key.length >>> 8, key.length & 0xff]), key, canonicalBytes(r)]);
  return [murmur3(bytes, 0x9747b28c), murmur3(bytes, 0x5bd1e995)];
}

export class AntiEntropy {
  private readonly digests = new Map<string, NsDigests>();
  private timer: Timer | null = null;
  private running = false;
  private stopped = true;
  private peerTurn = 0;
  private readonly cursor = new Map<NodeId, number>();
  private refreshCursor = 0;
  private readonly bucketsPerRound: number;
  private readonly refreshPerRound: number;
  private readonly keysPerRound: number;
  private readonly hashKeysPerRound: number;
  private readonly timeoutMs: number;
  readonly counters = { rounds: 0, bucketsCompared: 0, slotsDiffering: 0, keysPulled: 0, keysPushed: 0, slotsHashed: 0, keysHashed: 0 };

  constructor(private readonly o: AntiEntropyOptions) {
    this.bucketsPerRound = o.bucketsPerRound ?? 16;
    this.refreshPerRound = o.refreshSlotsPerRound ?? 16;
    this.keysPerRound = o.keysPerRound ?? 2000;
    this.hashKeysPerRound = o.hashKeysPerRound ?? 4000;
    this.timeoutMs = o.requestTimeoutMs ?? 5000;
    o.transport.handle(Channel.antiEntropy, (from, payload) => this.handle(from, payload));
  }

  start(): void {
    this.stopped = false;
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = this.o.clock.setTimer(this.o.intervalMs, () => {
      if (!this.running) {
        this.running = true;
        void this.round()
          .catch((err: unknown) => this.o.log?.({ err: String(err) }, 'anti-entropy round failed'))
          .finally(() => (this.running = false));
      }
      this.schedule();
    });
  }

  /**
   * A key of `slot` was written here, or records of it dropped (after the commit): the slot's
   * digest is recomputed when next needed. Digests are of this member's records whatever the
   * table says, so a new table invalidates nothing: which slots are compared follows from it.
   */
  changed(ns: string, slot: number): void {
    const d = this.digests.get(ns);
    if (d) d.valid[slot] = 0;
  }

  private ns(ns: string): NsDigests {
    let d = this.digests.get(ns);
    if (!d) this.digests.set(ns, (d = { hi: new Uint32Array(slotCount), lo: new Uint32Array(slotCount), valid: new Uint8Array(slotCount) }));
    return d;
  }

  /** The slot's digest, recomputed if a write marked it. */
  slotDigest(ns: string, slot: number): [number, number] {
    const d = this.ns(ns);
    if (!d.valid[slot]) {
      let hi = 0;
      let lo = 0;
      let after: Buffer | null = null;
      for (;;) {
        const page = this.o.store.readSlot(ns, slot, after, 256);
        for (let i = 0; i < page.keys.length; i++) {
          const [a, b] = keyHash(page.keys[i]!, page.records[i]!);
          hi ^= a;
          lo ^= b;
        }
        this.counters.keysHashed += page.keys.length;
        if (page.keys.length < 256) break;
        after = page.keys[page.keys.length - 1]!;
      }
      d.hi[slot] = hi >>> 0;
      d.lo[slot] = lo >>> 0;
      d.valid[slot] = 1;
      this.counters.slotsHashed++;
    }
    return [d.hi[slot]!, d.lo[slot]!];
  }

  /**
   * Recomputes the stale digests of the buckets' shared slots, yielding the event loop every
   * few slots: hashing a slot is synchronous, and requests must not wait behind many of them.
   */
  private async warm(ns: string, buckets: readonly number[], shared: (slot: number) => boolean, keysMax = Infinity): Promise<number> {
    const d = this.ns(ns);
    const start = this.counters.keysHashed;
    let n = 0;
    for (let i = 0; i < buckets.length; i++) {
      const b = buckets[i]!;
      // Within the budget of keys to hash (the first bucket always: a round makes progress).
      if (i > 0 && this.counters.keysHashed - start >= keysMax) return i;
      for (let s = b * bucketSlots; s < (b + 1) * bucketSlots; s++) {
        if (d.valid[s] || !shared(s)) continue;
        this.slotDigest(ns, s);
        if (++n % 8 === 0) await new Promise<void>((resolve) => this.o.clock.setTimer(0, resolve));
      }
    }
    return buckets.length;
  }

  private bucketDigest(ns: string, bucket: number, shared: (slot: number) => boolean): [number, number] {
    let hi = 0;
    let lo = 0;
    for (let s = bucket * bucketSlots; s < (bucket + 1) * bucketSlots; s++) {
      if (!shared(s)) continue;
      const [a, b] = this.slotDigest(ns, s);
      // Mix the slot number in, so equal slot digests in two slots do not cancel out.
      hi ^= Math.imul(a ^ s, 0x85ebca6b);
      lo ^= Math.imul(b ^ (s << 16), 0xc2b2ae35);
    }
    return [hi >>> 0, lo >>> 0];
  }

  /** One round with the next live peer (exported for tests and the simulator). */
  async round(): Promise<void> {
    const t = this.o.table();
    if (!t || t.change || !t.isMember(this.o.self)) return;
    this.counters.rounds++;
    // Slots no write marked, recomputed a few per round (records an expiry sweep rewrote).
    for (const ns of this.o.store.namespaces()) {
      const d = this.ns(ns);
      for (let i = 0; i < this.refreshPerRound; i++) d.valid[(this.refreshCursor + i) % slotCount] = 0;
    }
    this.refreshCursor = (this.refreshCursor + this.refreshPerRound) % slotCount;
    const peers = t.members.map((m) => m.id).filter((id) => id !== this.o.self && this.o.isAlive(id));
    if (peers.length === 0) return;
    const peer = peers[this.peerTurn++ % peers.length]!;
    const shared = (slot: number) => {
      const owners = t.owners[slot]!;
      return owners.includes(this.o.self) && owners.includes(peer);
    };
    const from = this.cursor.get(peer) ?? 0;
    const candidates: number[] = [];
    for (let i = 0; i < this.bucketsPerRound; i++) candidates.push((from + i) % bucketCount);
    // Hashing is the cost: only the buckets whose digests are current within this round's
    // budget of keys to hash are compared (writes mark slots; under a write load the pass
    // slows down instead of the CPU cost growing with the write rate).
    const namespaces = this.o.store.namespaces();
    let ready = candidates.length;
    for (const ns of namespaces) ready = Math.min(ready, await this.warm(ns, candidates.slice(0, ready), shared, this.hashKeysPerRound));
    const buckets = candidates.slice(0, Math.max(1, ready));
    this.cursor.set(peer, (from + buckets.length) % bucketCount);
    let budget = this.keysPerRound;
    for (const ns of namespaces) {
      if (budget <= 0) break;
      // Level 1: bucket digests.
      await this.warm(ns, buckets, shared);
      const theirs = await this.ask(peer, t.epoch, new WireWriter().u8(Op.buckets).u32(t.epoch).str(ns).u32(buckets.length), (w) => buckets.forEach((b) => w.u32(b)));
      // The peer answers for the buckets it could bring up to date within its own budget.
      const answered = theirs.u32();
      if (answered > buckets.length) throw new KvError('PROTOCOL', `anti-entropy answer for ${answered} of ${buckets.length} buckets`);
      if (answered < buckets.length) this.cursor.set(peer, (from + Math.max(1, answered)) % bucketCount);
      const differing: number[] = [];
      for (const b of buckets.slice(0, answered)) {
        const [hi, lo] = this.bucketDigest(ns, b, shared);
        if (theirs.u32() !== hi || theirs.u32() !== lo) differing.push(b);
      }
      this.counters.bucketsCompared += answered;
      if (differing.length === 0) continue;
      // Level 2: slot digests of the differing buckets.
      const slots: number[] = [];
      for (const b of differing) for (let s = b * bucketSlots; s < (b + 1) * bucketSlots; s++) if (shared(s)) slots.push(s);
      const sd = await this.ask(peer, t.epoch, new WireWriter().u8(Op.slots).u32(t.epoch).str(ns).u32(slots.length), (w) => slots.forEach((s) => w.u32(s)));
      const diffSlots = slots.filter((s) => {
        const [hi, lo] = this.slotDigest(ns, s);
        const a = sd.u32();
        const b = sd.u32();
        return a !== hi || b !== lo;
      });
      this.counters.slotsDiffering += diffSlots.length;
      // Level 3: keys of differing slots; repair those whose hashes differ.
      for (const slot of diffSlots) {
        if (budget <= 0) break;
        budget -= await this.repairSlot(peer, t.epoch, ns, slot, budget);
      }
    }
  }

  private async repairSlot(peer: NodeId, epoch: number, ns: string, slot: number, budget: number): Promise<number> {
    const mine = new Map<string, string>();
    let after: Buffer | null = null;
    for (;;) {
      const page = this.o.store.readSlot(ns, slot, after, 256);
      page.keys.forEach((k, i) => mine.set(k.toString('latin1'), keyHash(k, page.records[i]!).join(':')));
      if (page.keys.length < 256) break;
      after = page.keys[page.keys.length - 1]!;
    }
    const differ = new Set<string>();
    const seen = new Set<string>();
    let cursor: Buffer | null = null;
    for (;;) {
      const w: WireWriter = new WireWriter().u8(Op.keys).u32(epoch).str(ns).u32(slot).u8(cursor ? 1 : 0).bytes(cursor ?? Buffer.alloc(0));
      const r: WireReader = new WireReader(await this.o.transport.request(peer, Channel.antiEntropy, w.done(), this.timeoutMs));
      const n = r.u32();
      let last: Buffer | null = null;
      for (let i = 0; i < n; i++) {
        const k: Buffer = r.bytes();
        const h = `${r.u32()}:${r.u32()}`;
        const id = k.toString('latin1');
        seen.add(id);
        if (mine.get(id) !== h) differ.add(id);
        last = k;
      }
      r.end();
      if (n < keysPageMax || !last) break;
      cursor = Buffer.from(last);
    }
    for (const id of mine.keys()) if (!seen.has(id)) differ.add(id);
    const keys = [...differ].slice(0, budget).map((id) => Buffer.from(id, 'latin1'));
    if (keys.length === 0) return 0;
    // Pull theirs and merge here; push ours (merged with theirs) there.
    const rw = new WireWriter().u8(Op.records).u32(epoch).str(ns).u32(keys.length);
    for (const k of keys) rw.bytes(k);
    const rr = new WireReader(await this.o.transport.request(peer, Channel.antiEntropy, rw.done(), this.timeoutMs));
    // The peer answers for a prefix of the keys (its answer is bounded in bytes): the rest wait for the next round.
    const answered = rr.u32();
    if (answered > keys.length) throw new KvError('PROTOCOL', `anti-entropy answer for ${answered} of ${keys.length} keys`);
    keys.length = answered;
    const theirs: (Record | null)[] = keys.map(() => (rr.u8() === 1 ? rr.record() : null));
    rr.end();
    const ours = this.o.store.read(ns, keys);
    const pull: { ns: string; key: Buffer; delta: Record }[] = [];
    const push: { key: Buffer; record: Record }[] = [];
    keys.forEach((key, i) => {
      const t = theirs[i];
      const o = ours[i];
      if (t) pull.push({ ns, key, delta: t });
      if (o) push.push({ key, record: t ? merge(o, t) : o });
    });
    if (this.o.observe) for (const p of pull) this.o.observe(p.delta);
    if (pull.length) await this.o.store.apply(pull, this.o.clock.nowMs());
    // Pushes in batches bounded in bytes.
    for (let i = 0; i < push.length; ) {
      const batch: typeof push = [];
      let bytes = 0;
      while (i < push.length && (batch.length === 0 || bytes < recordBytesMax)) {
        bytes += push[i]!.key.length + encodedBytes(push[i]!.record);
        batch.push(push[i++]!);
      }
      const pw = writeKeyedRecords(new WireWriter().u8(Op.push).u32(epoch).str(ns), batch);
      await this.o.transport.request(peer, Channel.antiEntropy, pw.done(), this.timeoutMs);
    }
    this.counters.keysPulled += pull.length;
    this.counters.keysPushed += push.length;
    this.o.log?.({ peer, ns, slot, pulled: pull.length, pushed: push.length }, 'anti-entropy repaired keys');
    return keys.length;
  }

  private async ask(peer: NodeId, _epoch: number, w: WireWriter, more: (w: WireWriter) => void): Promise<WireReader> {
    more(w);
    return new WireReader(await this.o.transport.request(peer, Channel.antiEntropy, w.done(), this.timeoutMs));
  }

  // ---------------------------------------------------------------- the peer's side

  private handle(from: NodeId, payload: Buffer): Promise<Buffer> | Buffer {
    const r = new WireReader(payload);
    const op = r.u8();
    const epoch = r.u32();
    const t = this.o.table();
    if (!t || t.epoch !== epoch || t.change) throw new KvError('STALE_EPOCH', `anti-entropy at epoch ${epoch}, this member is at ${t?.epoch ?? 0}${t?.change ? ' with a change in flight' : ''}: skipped`);
    const ns = r.str();
    // A namespace this member has never held: every digest is 0, with nothing allocated for it.
    const known = this.o.store.namespaces().includes(ns);
    const shared = (slot: number) => {
      const owners = t.owners[slot]!;
      return owners.includes(this.o.self) && owners.includes(from);
    };
    const slotArg = () => {
      const s = r.u32();
      if (s >= slotCount) throw new KvError('PROTOCOL', `slot ${s} out of range`);
      return s;
    };
    switch (op) {
      case Op.buckets: {
        const n = r.u32();
        if (n > bucketCount) throw new KvError('PROTOCOL', `${n} buckets, over ${bucketCount}`);
        const buckets: number[] = [];
        for (let i = 0; i < n; i++) {
          const b = r.u32();
          if (b >= bucketCount) throw new KvError('PROTOCOL', `bucket ${b} out of range`);
          buckets.push(b);
        }
        if (!known) return Buffer.concat([new WireWriter(4).u32(n).done(), Buffer.alloc(8 * n)]);
        // Hashing bounded here too: only the buckets current within this round's budget are
        // answered (the asker compares those and comes back for the rest).
        return this.warm(ns, buckets, shared, this.hashKeysPerRound).then((ready) => {
          const w = new WireWriter(8 * ready + 8).u32(ready);
          for (const b of buckets.slice(0, ready)) {
            const [hi, lo] = this.bucketDigest(ns, b, shared);
            w.u32(hi).u32(lo);
          }
          return w.done();
        });
      }
      case Op.slots: {
        const n = r.u32();
        if (n > slotCount) throw new KvError('PROTOCOL', `${n} slots, over ${slotCount}`);
        const w = new WireWriter(8 * n + 8);
        for (let i = 0; i < n; i++) {
          const slot = slotArg();
          const [hi, lo] = known ? this.slotDigest(ns, slot) : [0, 0];
          w.u32(hi).u32(lo);
        }
        return w.done();
      }
      case Op.keys: {
        const slot = slotArg();
        let after: Buffer | null = r.u8() === 1 ? Buffer.from(r.bytes()) : (r.bytes(), null);
        const out: { key: Buffer; h: [number, number] }[] = [];
        while (out.length < keysPageMax) {
          const page = this.o.store.readSlot(ns, slot, after, Math.min(256, keysPageMax - out.length));
          page.keys.forEach((k, i) => out.push({ key: k, h: keyHash(k, page.records[i]!) }));
          if (page.keys.length === 0 || out.length >= keysPageMax) break;
          after = page.keys[page.keys.length - 1]!;
          if (page.keys.length < 256) break;
        }
        const w = new WireWriter().u32(out.length);
        for (const o of out) w.bytes(o.key).u32(o.h[0]).u32(o.h[1]);
        return w.done();
      }
      case Op.records: {
        const n = r.u32();
        if (n > 100_000) throw new KvError('PROTOCOL', `${n} keys, over 100000`);
        const keys: Buffer[] = [];
        const seen = new Set<string>();
        for (let i = 0; i < n; i++) {
          const k = r.bytes();
          const id = k.toString('latin1');
          if (seen.has(id)) throw new KvError('PROTOCOL', 'anti-entropy asked for a key twice');
          seen.add(id);
          keys.push(Buffer.from(k));
        }
        // Answers for a prefix of the keys, bounded in bytes (the asker takes the rest next round).
        const body = new WireWriter();
        let answered = 0;
        let bytes = 0;
        for (const key of keys) {
          if (bytes >= recordBytesMax) break;
          const [rec] = this.o.store.read(ns, [key]);
          if (rec && (rec.base || rec.tomb || rec.appends.length || rec.fields.size || rec.expiry)) {
            body.u8(1).record(rec);
            bytes += encodedBytes(rec);
          } else body.u8(0);
          answered++;
        }
        return Buffer.concat([new WireWriter(4).u32(answered).done(), body.done()]);
      }
      case Op.push: {
        const items = readKeyedRecords(r, ns, 100_000, 'anti-entropy push');
        if (this.o.observe) for (const it of items) this.o.observe(it.delta);
        return this.o.store.apply(items, this.o.clock.nowMs()).then(() => Buffer.alloc(0));
      }
      default:
        throw new KvError('PROTOCOL', 'unknown anti-entropy message');
    }
  }
}
