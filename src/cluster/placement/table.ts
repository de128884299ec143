/**
 * The placement table: for each of the 16384 hash slots, the ordered list of members that
 * hold it, with an epoch. At most one membership change is in flight, following the staged
 * template of DESIGN.md ("Elasticity"):
 *
 *   stable       reads and writes go to `owners`
 *   write-both   writes reach their level in `owners` AND in `change.target`; reads use
 *                `owners`; members gaining a slot stream it from its owners
 *   read-new     writes still go to both; reads use `change.target`
 *   (use-new)    the next stable table, whose owners are the target; members that lost a
 *                slot drop their copies of it (cleanup)
 *
 * Every stage is a new table with a higher epoch. Tables are totally ordered by (epoch,
 * driver): a member adopts any table greater than its own, so members converge even if two
 * members proposed a change at once (the smaller proposal is abandoned). Immutable.
 */
import { KvError } from '../../common/errors.js';
import { keySlot, slotCount } from '../../common/slots.js';
import { WireReader, WireWriter } from '../../storage/wire.js';
import { murmur3 } from '../hash.js';
import type { NodeId } from '../transport.js';
import { type PlacementMember, type SlotLists, planSlots } from './planner.js';

export type ChangeKind = 'join' | 'leave' | 'remove' | 'restore';
export type ChangeStage = 'write-both' | 'read-new';

export interface PlacementChange {
  kind: ChangeKind;
  /** The member joining, leaving, removed or restoring. */
  member: NodeId;
  stage: ChangeStage;
  /** Epoch of the change's first table. */
  since: number;
  /** Who proposed it: with `since`, names the change (two proposals at once share `since`). */
  proposer: NodeId;
  /** The assignment the change moves to. */
  target: SlotLists;
}

/** Version of the table's encoding. */
export const placementCodecVersion = 1;
const kinds: readonly ChangeKind[] = ['join', 'leave', 'remove', 'restore'];
const stages: readonly ChangeStage[] = ['write-both', 'read-new'];
/** Highest epoch a table may carry (a table offered with more is refused: epochs never wrap). */
export const epochMax = 2 ** 31;
/** Members a table can name (member indexes are one byte on the wire). */
export const placementMembersMax = 255;

/** Where a write for one slot goes: every member, and the sets that must each meet the level (null: just `all`). */
export interface WriteTargets {
  all: readonly NodeId[];
  sets: readonly (readonly NodeId[])[] | null;
}

export class PlacementTable {
  /** Read sets per slot (the owners, or the target once reads moved). */
  private readonly reads: (readonly NodeId[])[];
  private readonly writes: WriteTargets[];
  private readonly fallbackOrder: readonly NodeId[];

  /** Fences requests: (cluster, driver) hashed; requests carry it with the epoch. */
  readonly tag: number;

  constructor(
    /** The cluster's identity, drawn when it formed: a table of another cluster is never adopted. */
    readonly cluster: number,
    readonly epoch: number,
    /** Who made this table (tie-break between tables of one epoch). */
    readonly driver: NodeId,
    /** Replicas per slot wanted (N); a list is shorter while there are fewer members. */
    readonly replicas: number,
    readonly members: readonly PlacementMember[],
    readonly owners: SlotLists,
    readonly change: PlacementChange | null,
  ) {
    if (owners.length !== slotCount) throw new RangeError(`a placement table has ${slotCount} slots, got ${owners.length}`);
    if (!Number.isInteger(epoch) || epoch < 0 || epoch > epochMax) throw new RangeError(`placement epoch ${epoch} out of range (0..${epochMax})`);
    this.tag = (murmur3(Buffer.from(`${cluster}/${driver}`)) | 1) >>> 0;
    if (members.length > placementMembersMax) throw new RangeError(`a placement table names at most ${placementMembersMax} members`);
    const known = new Set(members.map((m) => m.id));
    this.reads = new Array(slotCount);
    this.writes = new Array(slotCount);
    for (let s = 0; s < slotCount; s++) {
      const old = Object.freeze([...owners[s]!]);
      for (const id of old) if (!known.has(id)) throw new RangeError(`slot ${s} names '${id}', not a member of the table`);
      const next = change ? Object.freeze([...change.target[s]!]) : old;
      for (const id of next) if (!known.has(id)) throw new RangeError(`slot ${s} target names '${id}', not a member of the table`);
      this.reads[s] = change?.stage === 'read-new' ? next : old;
      const same = next.length === old.length && next.every((id) => old.includes(id));
      if (same) this.writes[s] = Object.freeze({ all: old, sets: null });
      else {
        const all = Object.freeze([...old, ...next.filter((id) => !old.includes(id))]);
        this.writes[s] = Object.freeze({ all, sets: Object.freeze([old, next]) });
      }
    }
    this.fallbackOrder = Object.freeze(members.map((m) => m.id).sort());
  }

  /** The first table of a cluster: `members`, nothing moving. */
  static initial(members: readonly PlacementMember[], replicas: number, driver: NodeId, cluster = 1, epoch = 1): PlacementTable {
    return new PlacementTable(cluster, epoch, driver, replicas, sortMembers(members), planSlots(null, members, replicas), null);
  }

  /** The change's name: streams and their progress are for one change, not one epoch. */
  get changeId(): string {
    return this.change ? `${this.change.since}:${this.change.proposer}` : '';
  }

  /** Is `other` newer than this table (members adopt a newer table)? */
  olderThan(other: { epoch: number; driver: NodeId }): boolean {
    return this.epoch < other.epoch || (this.epoch === other.epoch && this.driver < other.driver);
  }

  /** The key's read set (its replicas, preferred first). */
  replicasFor(_ns: string, key: Buffer): readonly NodeId[] {
    return this.reads[keySlot(key)]!;
  }

  readSet(slot: number): readonly NodeId[] {
    return this.reads[slot]!;
  }

  writeTargets(slot: number): WriteTargets {
    return this.writes[slot]!;
  }

  /**
   * Every member, the slot's write set first, then the rest in an order that depends on the
   * slot (so fallbacks for a down replica spread over the members).
   */
  walkFrom(_ns: string, key: Buffer): readonly NodeId[] {
    const slot = keySlot(key);
    const first = this.writes[slot]!.all;
    const rest = this.fallbackOrder.filter((id) => !first.includes(id));
    const k = rest.length ? slot % rest.length : 0;
    return [...first, ...rest.slice(k), ...rest.slice(0, k)];
  }

  isMember(id: NodeId): boolean {
    return this.members.some((m) => m.id === id);
  }

  member(id: NodeId): PlacementMember | undefined {
    return this.members.find((m) => m.id === id);
  }

  /** Slots `id` gains in the change in flight (in the target, not among the owners). */
  gains(id: NodeId): number[] {
    if (!this.change) return [];
    const out: number[] = [];
    for (let s = 0; s < slotCount; s++) if (this.change.target[s]!.includes(id) && !this.owners[s]!.includes(id)) out.push(s);
    return out;
  }

  /** Slot replicas that the change in flight moves (target entries not among the owners). */
  movingSlots(): number {
    if (!this.change) return 0;
    let n = 0;
    for (let s = 0; s < slotCount; s++) for (const id of this.change.target[s]!) if (!this.owners[s]!.includes(id)) n++;
    return n;
  }

  /** The table a change starts with (stage write-both), from this stable table. */
  begin(kind: ChangeKind, member: NodeId, driver: NodeId, identity: { zone?: string; dataId?: number } = {}): PlacementTable {
    const { zone, dataId } = identity;
    if (this.change) throw new KvError('UNAVAILABLE', `a membership change is in flight (${this.change.kind} of '${this.change.member}', ${this.change.stage}, epoch ${this.epoch}): one change at a time; retry when it is done`);
    const present = this.isMember(member);
    let members = [...this.members];
    let owners: SlotLists = this.owners;
    let target: SlotLists;
    switch (kind) {
      case 'join':
        if (present) throw new KvError('INVALID_ARGUMENT', `'${member}' is already a member`);
        members = sortMembers([...members, { id: member, ...(zone ? { zone } : {}), ...(dataId !== undefined ? { dataId } : {}) }]);
        target = planSlots(this.owners, members, this.replicas);
        break;
      case 'leave':
      case 'remove':
        if (!present) throw new KvError('NOT_FOUND', `'${member}' is not a member`);
        if (this.members.length === 1) throw new KvError('INVALID_ARGUMENT', `'${member}' is the only member: a cluster cannot lose its last one`);
        target = planSlots(this.owners, members.filter((m) => m.id !== member), this.replicas);
        // A removed member is dead: it is no longer read or written; its copies come from the others.
        if (kind === 'remove') owners = this.owners.map((l) => l.filter((id) => id !== member));
        break;
      case 'restore':
        if (!present) throw new KvError('NOT_FOUND', `'${member}' is not a member`);
        // The member lost its data: it is written but not read until it has streamed it back.
        target = this.owners;
        owners = this.owners.map((l) => (l.length > 1 ? l.filter((id) => id !== member) : l));
        // The table now knows the member's new disk: it is no longer "awaiting restore".
        members = members.map((m) => (m.id === member && dataId !== undefined ? { ...m, dataId } : m));
        break;
    }
    return new PlacementTable(this.cluster, this.epoch + 1, driver, this.replicas, members, owners, { kind, member, stage: 'write-both', since: this.epoch + 1, proposer: driver, target });
  }

  /**
   * Gives up a join whose member died before it caught up: the owners stay as they were (they
   * took every write of the change), the member is no longer in the table.
   */
  abortJoin(driver: NodeId): PlacementTable {
    const c = this.change;
    if (!c || c.kind !== 'join') throw new KvError('INVALID_ARGUMENT', 'no join is in flight');
    return new PlacementTable(this.cluster, this.epoch + 1, driver, this.replicas, this.members.filter((m) => m.id !== c.member), this.owners, null);
  }

  /** The next stage of the change in flight: read-new, then the stable table (use-new). */
  advance(driver: NodeId): PlacementTable {
    const c = this.change;
    if (!c) throw new KvError('INVALID_ARGUMENT', 'no membership change is in flight');
    if (c.stage === 'write-both') return new PlacementTable(this.cluster, this.epoch + 1, driver, this.replicas, this.members, this.owners, { ...c, stage: 'read-new' });
    const used = new Set(c.target.flat());
    const members = this.members.filter((m) => used.has(m.id) || (c.kind === 'join' && m.id === c.member));
    const kept = c.kind === 'leave' || c.kind === 'remove' ? members.filter((m) => m.id !== c.member) : members;
    return new PlacementTable(this.cluster, this.epoch + 1, driver, this.replicas, kept, c.target, null);
  }

  encode(): Buffer {
    const w = new WireWriter().u8(placementCodecVersion).u32(this.cluster).u32(this.epoch).str(this.driver).u8(this.replicas).u8(this.members.length);
    const index = new Map(this.members.map((m, i) => [m.id, i]));
    for (const m of this.members) w.str(m.id).str(m.zone ?? '').u32(m.dataId ?? 0);
    const lists = (ls: SlotLists) => {
      for (const l of ls) {
        w.u8(l.length);
        for (const id of l) w.u8(index.get(id)!);
      }
    };
    lists(this.owners);
    if (!this.change) w.u8(0);
    else {
      w.u8(1).u8(kinds.indexOf(this.change.kind)).str(this.change.member).u8(stages.indexOf(this.change.stage)).u32(this.change.since).str(this.change.proposer);
      lists(this.change.target);
    }
    return w.done();
  }

  static decode(buf: Buffer): PlacementTable {
    const r = new WireReader(buf);
    const version = r.u8();
    if (version !== placementCodecVersion) throw new KvError('PROTOCOL', `placement table in encoding ${version}; this member reads ${placementCodecVersion}`);
    const cluster = r.u32();
    const epoch = r.u32();
    const driver = r.str();
    const replicas = r.u8();
    const count = r.u8();
    const members: PlacementMember[] = [];
    for (let i = 0; i < count; i++) {
      const id = r.str();
      const zone = r.str();
      const dataId = r.u32();
      members.push({ id, ...(zone ? { zone } : {}), ...(dataId ? { dataId } : {}) });
    }
    const lists = (): NodeId[][] => {
      const out: NodeId[][] = new Array(slotCount);
      for (let s = 0; s < slotCount; s++) {
        const len = r.u8();
        if (len > count) throw new KvError('PROTOCOL', `placement table: slot ${s} lists ${len} of ${count} members`);
        const l: NodeId[] = [];
        for (let j = 0; j < len; j++) {
          const i = r.u8();
          if (i >= count) throw new KvError('PROTOCOL', `placement table: slot ${s} names member ${i} of ${count}`);
          l.push(members[i]!.id);
        }
        out[s] = l;
      }
      return out;
    };
    const owners = lists();
    let change: PlacementChange | null = null;
    if (r.u8() === 1) {
      const kind = kinds[r.u8()];
      const member = r.str();
      const stage = stages[r.u8()];
      const since = r.u32();
      const proposer = r.str();
      if (!kind || !stage) throw new KvError('PROTOCOL', 'placement table: unknown change kind or stage');
      change = { kind, member, stage, since, proposer, target: lists() };
    }
    r.end();
    try {
      return new PlacementTable(cluster, epoch, driver, replicas, members, owners, change);
    } catch (err) {
      throw new KvError('PROTOCOL', `placement table: ${(err as Error).message}`);
    }
  }

  /** A short summary for logs, /cluster and CLUSTER INFO. */
  summary(): { epoch: number; driver: NodeId; members: number; change: { kind: ChangeKind; member: NodeId; stage: ChangeStage; moving: number } | null } {
    return {
      epoch: this.epoch,
      driver: this.driver,
      members: this.members.length,
      change: this.change ? { kind: this.change.kind, member: this.change.member, stage: this.change.stage, moving: this.movingSlots() } : null,
    };
  }
}

function sortMembers(members: readonly PlacementMember[]): PlacementMember[] {
  return [...members].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}
