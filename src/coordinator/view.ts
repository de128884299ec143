/**
 * What a coordinator needs to know of the cluster: where a key's replicas are, who can
 * answer now, and the placement epoch its requests carry. A single node is the view of a
 * cluster of one (`soloView`): every key's only replica is the node itself.
 */
import type { NodeId } from '../cluster/transport.js';

/** Where a write goes: every member, and the sets that must each meet the level (null: just `all`). */
export interface WriteTargets {
  all: readonly NodeId[];
  sets: readonly (readonly NodeId[])[] | null;
}

export interface ClusterView {
  /** Placement version, carried on every replica request. */
  readonly epoch: number;
  /** Which table of that epoch (two proposals at once share an epoch); 0 or absent: none. */
  readonly tag?: number;
  /** True when this node is every key's only replica (a single node): no placement lookup. */
  readonly solo: boolean;
  /** The key's read set, preferred first (shared array: do not modify). */
  replicasFor(ns: string, key: Buffer): readonly NodeId[];
  /**
   * Where a write of the key goes. While a slot moves, it is the old and the new replica
   * sets together, and the level must be met in each.
   */
  writeTargets(ns: string, key: Buffer): WriteTargets;
  /** Members in placement order from the key's position: where sloppy-quorum fallbacks come from. */
  walkFrom(ns: string, key: Buffer): readonly NodeId[];
  /**
   * True when this member reads the key from its own copy now and will through the change in
   * flight (it stays in the key's read set): a session need not remember its writes of it.
   */
  keepsReading?(ns: string, key: Buffer): boolean;
  /** A replica refused a request as being on an older epoch: learn the newer table from it. */
  refreshFrom?(node: NodeId): Promise<void>;
  isAlive(id: NodeId): boolean;
  /** Members that can answer now (for scans). */
  aliveMembers(): NodeId[];
}

/** The view of a single node: a cluster of one member, `self`. */
export function soloView(self: NodeId): ClusterView {
  const only = Object.freeze([self]);
  const targets: WriteTargets = Object.freeze({ all: only, sets: null });
  return {
    epoch: 0,
    solo: true,
    replicasFor: () => only,
    writeTargets: () => targets,
    walkFrom: () => only,
    isAlive: (id) => id === self,
    aliveMembers: () => [self],
  };
}
