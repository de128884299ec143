/**
 * One write round, as a pure state machine (no I/O, no time): which replicas each item goes
 * to, who keeps hints, and when the level is met. The coordinator's shell (engine.ts) sends
 * `sends`, feeds back `ack` / `fail`, stores the hints `fail` returns, and settles on
 * `outcome`. Transcripts: test/rounds.test.ts.
 *
 * - Each item goes to its N natural replicas. A replica known to be down is replaced by the
 *   next live member outside the list, which keeps the write as a durable hint for it
 *   (sloppy quorum); with no member left, this coordinator keeps the hint (it does not count).
 * - The level is met when every item has `required(level, N)` acks. While the item's slot
 *   moves (placement's write-both and read-new stages) it goes to the old and the new
 *   replica sets together, and the level must be met in each set. When this coordinator
 *   is itself a natural replica of an item, its own ack is also required: a connection's
 *   next read is then served by a local copy that has the write (read-your-writes).
 * - A replica that fails gets a hint kept by this coordinator (returned by `fail`).
 * - On failure the error keeps the replicas' code when they all failed alike (OVERLOADED,
 *   CLOCK_SKEW, ...), so a single node and a cluster report the same error; otherwise it is
 *   QUORUM_NOT_MET naming how many answered and why the others did not.
 */
import { KvError } from '../common/errors.js';
import type { NodeId } from '../cluster/transport.js';
import type { ApplyResult } from '../replica/store.js';
import type { Level } from './api.js';
import { required } from './quorum.js';
import type { WriteTargets } from './view.js';

/** One message of a round: items (indexes) for one member, applied there or kept as hints for `hintFor`. */
export interface WriteSend {
  node: NodeId;
  hintFor: NodeId | null;
  items: number[];
}

export type WriteOutcome = 'pending' | 'met' | 'failed';

interface ReplicaSet {
  members: readonly NodeId[];
  need: number;
  acks: number;
}

interface ItemState {
  natural: readonly NodeId[];
  need: number;
  acks: number;
  /** While the slot moves: the old and new sets, each of which must meet the level. */
  sets: ReplicaSet[] | null;
  /** This coordinator is a natural replica: its ack is required. */
  needSelf: boolean;
  selfAcked: boolean;
  selfFailed: boolean;
  failures: { why: string; error: unknown }[];
  result: ApplyResult;
}

export class WriteRound {
  readonly sends: WriteSend[] = [];
  /** Owners that are down with no fallback member: this coordinator keeps their hints (they do not count). */
  readonly ownHints: { owner: NodeId; items: number[] }[] = [];
  /** Items written to a fallback member instead of a down replica. */
  sloppy = 0;
  private readonly items: ItemState[];
  private outstanding = 0;

  constructor(
    targets: readonly WriteTargets[],
    readonly level: Level,
    private readonly self: NodeId,
    isAlive: (id: NodeId) => boolean,
    fallbacks: (item: number) => readonly NodeId[],
  ) {
    const natural = targets.map((t) => t.all);
    this.items = targets.map((t) => ({
      natural: t.all,
      need: required(level, t.all.length),
      acks: 0,
      sets: t.sets ? t.sets.map((members) => ({ members, need: required(level, members.length), acks: 0 })) : null,
      needSelf: t.all.includes(self),
      selfAcked: false,
      selfFailed: false,
      failures: [],
      result: { size: 0, wasLive: false, fieldsAdded: 0, fieldsRemoved: 0 },
    }));
    // node -> hintFor ('' for none) -> item indexes: one message per (member, hint target).
    const plan = new Map<NodeId, Map<string, number[]>>();
    const add = (node: NodeId, hintFor: string, i: number) => {
      let byHint = plan.get(node);
      if (!byHint) plan.set(node, (byHint = new Map()));
      let list = byHint.get(hintFor);
      if (!list) byHint.set(hintFor, (list = []));
      list.push(i);
    };
    const own = new Map<NodeId, number[]>();
    natural.forEach((replicas, i) => {
      let spare: NodeId[] | null = null;
      for (const r of replicas) {
        if (r === self || isAlive(r)) {
          add(r, '', i);
          continue;
        }
        spare ??= fallbacks(i).filter((m) => !replicas.includes(m) && (m === self || isAlive(m)));
        const fb = spare.shift();
        if (fb !== undefined) {
          add(fb, r, i);
          this.sloppy++;
        } else {
          this.items[i]!.failures.push({ why: `${r}: down, no fallback member`, error: null });
          let list = own.get(r);
          if (!list) own.set(r, (list = []));
          list.push(i);
        }
      }
    });
    for (const [node, byHint] of plan) for (const [hintFor, items] of byHint) this.sends.push({ node, hintFor: hintFor || null, items });
    for (const [owner, items] of own) this.ownHints.push({ owner, items });
    this.outstanding = this.sends.length;
  }

  /** Send `i` was acknowledged with one result per item. */
  ack(i: number, results: readonly ApplyResult[]): void {
    const send = this.sends[i]!;
    this.outstanding--;
    send.items.forEach((item, j) => {
      const p = this.items[item]!;
      p.acks++;
      if (p.sets) {
        const owner = send.hintFor ?? send.node;
        for (const set of p.sets) if (set.members.includes(owner)) set.acks++;
      }
      if (send.node === this.self && send.hintFor === null) p.selfAcked = true;
      if (send.hintFor === null) {
        const r = results[j]!;
        p.result.size = Math.max(p.result.size, r.size);
        p.result.wasLive ||= r.wasLive;
        p.result.fieldsAdded = Math.max(p.result.fieldsAdded, r.fieldsAdded);
        p.result.fieldsRemoved = Math.max(p.result.fieldsRemoved, r.fieldsRemoved);
      }
    });
  }

  /**
   * Send `i` failed. Returns the hint this coordinator must keep so the owner still gets
   * the write (null when the owner is this node: its own copy failed, nothing to hand off).
   */
  fail(i: number, why: string, error: unknown): { owner: NodeId; items: number[] } | null {
    const send = this.sends[i]!;
    this.outstanding--;
    for (const item of send.items) {
      const p = this.items[item]!;
      p.failures.push({ why: `${send.node}: ${why}`, error });
      if (send.node === this.self && send.hintFor === null) p.selfFailed = true;
    }
    const owner = send.hintFor ?? send.node;
    return owner === this.self ? null : { owner, items: send.items };
  }

  private met(p: ItemState): boolean {
    if (p.sets && !p.sets.every((set) => set.acks >= set.need)) return false;
    return (p.sets !== null || p.acks >= p.need) && (!p.needSelf || p.selfAcked);
  }

  get outcome(): WriteOutcome {
    let pending = false;
    for (const p of this.items) {
      if (this.met(p)) continue;
      if (p.needSelf && p.selfFailed) return 'failed';
      pending = true;
    }
    if (!pending) return 'met';
    return this.outstanding > 0 ? 'pending' : 'failed';
  }

  /** Per item: the largest size, fields added or removed, and whether any replica held the key. */
  results(): ApplyResult[] {
    return this.items.map((p) => p.result);
  }

  /** Why the round failed: the replicas' common error, or QUORUM_NOT_MET with the details. */
  error(): KvError {
    const p = this.items.find((x) => !this.met(x))!;
    const codes = new Set(p.failures.map((f) => (f.error instanceof KvError ? f.error.code : '')));
    if (p.natural.length === 1 && p.failures.length === 1 && p.failures[0]!.error instanceof KvError) return p.failures[0]!.error;
    const details = p.failures.map((f) => f.why).join(', ');
    const own = p.needSelf && !p.selfAcked && p.acks >= p.need ? ", not this member's own copy, which is required" : '';
    // Not acknowledged is not undone: the replicas that took it keep it (a later read may see it).
    const kept = p.acks > 0 ? ' (those keep it: a later read may see it)' : '';
    const needs = p.sets
      ? `${p.sets.map((set) => `${set.need} of ${set.members.length}`).join(' and ')} replicas of the old and new replica sets (${this.level}: the slot is moving)`
      : `${p.need} of ${p.natural.length} replicas (${this.level})`;
    const message = `write needs ${needs}, ${p.acks} acknowledged${kept}${own}${details ? `: ${details}` : ''}`;
    if (codes.size === 1 && !codes.has('')) return new KvError((p.failures[0]!.error as KvError).code, message);
    return new KvError('QUORUM_NOT_MET', message);
  }
}
