/**
 * What the coordinator sees of placement (it implements coordinator/view.ts's ClusterView):
 * the table's read and write sets per slot, liveness from membership, and the epoch that
 * every replica request carries. Before the cluster has formed there is no table: guards
 * refuse commands then (see node/cluster-member.ts), and the sets are empty.
 */
import { keySlot } from '../../common/slots.js';
import type { NodeId } from '../transport.js';
import type { Placement } from './service.js';
import type { WriteTargets } from './table.js';

const none: readonly NodeId[] = Object.freeze([]);
const noTargets: WriteTargets = Object.freeze({ all: none, sets: null });

/** Who answers now, as membership (or the simulator's network) sees it. */
export interface Liveness {
  isAlive(id: NodeId): boolean;
  /** Every member known, whatever its status. */
  known(): readonly NodeId[];
}

export class PlacementView {
  readonly solo = false;

  constructor(
    private readonly placement: Placement,
    private readonly liveness: Liveness,
    private readonly self: NodeId,
  ) {}

  get epoch(): number {
    return this.placement.epoch;
  }

  get tag(): number {
    return this.placement.tag;
  }

  replicasFor(_ns: string, key: Buffer): readonly NodeId[] {
    const t = this.placement.table;
    if (!t) return none;
    const set = t.readSet(keySlot(key));
    // A wiped member is an owner that holds nothing until its restore starts, and a member
    // restarted on a saved table may hold slots that moved away: never read them locally.
    return this.placement.awaitingRestore || !this.placement.confirmed ? set.filter((id) => id !== this.self) : set;
  }

  keepsReading(_ns: string, key: Buffer): boolean {
    const t = this.placement.table;
    if (!t || this.placement.awaitingRestore || !this.placement.confirmed) return false;
    const slot = keySlot(key);
    return t.readSet(slot).includes(this.self) && (!t.change || t.change.target[slot]!.includes(this.self));
  }

  writeTargets(_ns: string, key: Buffer): WriteTargets {
    return this.placement.table?.writeTargets(keySlot(key)) ?? noTargets;
  }

  walkFrom(ns: string, key: Buffer): readonly NodeId[] {
    return this.placement.table?.walkFrom(ns, key) ?? none;
  }

  /** A replica said the table moved on: fetch it from that replica before retrying. */
  refreshFrom(node: NodeId): Promise<void> {
    return this.placement.fetchFrom(node).catch(() => {});
  }

  isAlive(id: NodeId): boolean {
    return id === this.self || this.liveness.isAlive(id);
  }

  aliveMembers(): NodeId[] {
    const t = this.placement.table;
    return this.liveness.known().filter((id) => (id === this.self || this.liveness.isAlive(id)) && (!t || t.isMember(id)));
  }
}
