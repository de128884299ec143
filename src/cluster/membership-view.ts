/**
 * What the coordinator sees of membership (it implements coordinator/view.ts's ClusterView):
 * a ring over every member remembered, whether alive, suspect, dead or left (a stopped member
 * keeps its ranges, Dynamo-style, so keys do not move when a node stops: its writes go to
 * fallbacks with hints until it returns), and liveness for routing.
 */
import type { Swim, MemberView } from './membership/index.js';
import { Ring } from './ring.js';
import type { NodeId } from './transport.js';

export class MembershipView {
  /** Placement has no epochs yet (hash slots bring them); requests carry 0. */
  readonly epoch = 0;
  readonly solo = false;
  private current: Ring;
  private memberKey = '';
  private readonly unsubscribe: () => void;

  constructor(
    private readonly swim: Swim,
    private readonly self: NodeId,
    private readonly replicas: number,
    private readonly vnodes?: number,
  ) {
    this.current = this.build();
    this.unsubscribe = swim.on('change', () => {
      this.current = this.build();
    });
  }

  /**
   * Every member still remembered, left ones included: a member stopped gracefully (SIGTERM
   * makes it leave) keeps its ranges like a crashed one, and gets its writes back as hints
   * when it returns, instead of its keys moving to members that never had them. Removing a
   * member for good, with its data streamed elsewhere, is an operator's act (not built yet).
   */
  private ringMembers(): MemberView[] {
    return this.swim.members();
  }

  private build(): Ring {
    const members = this.ringMembers();
    const key = members.map((m) => `${m.id}@${m.zone}`).sort().join(',');
    if (key === this.memberKey && this.current) return this.current;
    this.memberKey = key;
    return new Ring(
      members.map((m) => (m.zone ? { id: m.id, zone: m.zone } : { id: m.id })),
      { replicas: this.replicas, ...(this.vnodes ? { vnodes: this.vnodes } : {}) },
    );
  }

  ring(): Ring {
    return this.current;
  }

  replicasFor(ns: string, key: Buffer): readonly NodeId[] {
    return this.current.replicasFor(ns, key);
  }

  walkFrom(ns: string, key: Buffer): readonly NodeId[] {
    return this.current.walkFrom(ns, key);
  }

  isAlive(id: NodeId): boolean {
    if (id === this.self) return true;
    return this.swim.member(id)?.status === 'alive';
  }

  aliveMembers(): NodeId[] {
    return this.swim
      .members()
      .filter((m) => m.id === this.self || m.status === 'alive')
      .map((m) => m.id);
  }

  close(): void {
    this.unsubscribe();
  }
}
