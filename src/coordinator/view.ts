/**
 * What a coordinator needs to know of the cluster: where a key's replicas are, who can
 * answer now, and the placement epoch its requests carry. A single node is the view of a
 * cluster of one (`soloView`): every key's only replica is the node itself.
 */
import type { NodeId } from '../cluster/transport.js';

export interface ClusterView {
  /** Placement version, carried on every replica request (0 until placement has epochs). */
  readonly epoch: number;
  /** True when this node is every key's only replica (a single node): no placement lookup. */
  readonly solo: boolean;
  /** The key's N replicas in preference order (shared array: do not modify). */
  replicasFor(ns: string, key: Buffer): readonly NodeId[];
  /** Members in placement order from the key's position: where sloppy-quorum fallbacks come from. */
  walkFrom(ns: string, key: Buffer): readonly NodeId[];
  isAlive(id: NodeId): boolean;
  /** Members that can answer now (for scans). */
  aliveMembers(): NodeId[];
}

/** The view of a single node: a cluster of one member, `self`. */
export function soloView(self: NodeId): ClusterView {
  const only = Object.freeze([self]);
  return {
    epoch: 0,
    solo: true,
    replicasFor: () => only,
    walkFrom: () => only,
    isAlive: (id) => id === self,
    aliveMembers: () => [self],
  };
}
