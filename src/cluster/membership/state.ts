/**
 * Member records and the rules that decide which news about a member wins. A member's
 * incarnation is bumped only by the member itself (to refute suspicion or to change its
 * metadata), so for one member: higher incarnation wins; at equal incarnation
 * left > dead > suspect > alive, the order memberlist uses.
 */
import type { NodeId } from '../transport.js';

/** Where a member stands, as this node believes. */
export type MemberStatus = 'alive' | 'suspect' | 'dead' | 'left';

/** Status codes on the wire (codec.ts). */
export const memberStatusCode: Readonly<Record<MemberStatus, number>> = Object.freeze({ alive: 1, suspect: 2, dead: 3, left: 4 });

/** The inverse of memberStatusCode. */
export function memberStatusOf(code: number): MemberStatus | undefined {
  switch (code) {
    case 1:
      return 'alive';
    case 2:
      return 'suspect';
    case 3:
      return 'dead';
    case 4:
      return 'left';
    default:
      return undefined;
  }
}

/** A member as other layers see it (a snapshot: later changes do not show in it). */
export interface MemberView {
  readonly id: NodeId;
  /** Where the transport reaches it (`host:port`; the node id in the simulator). */
  readonly address: string;
  readonly incarnation: number;
  readonly status: MemberStatus;
  /** Failure zone (rack, availability zone); empty when not configured. */
  readonly zone: string;
  /** Opaque bytes the member publishes (the ring's tokens and such). */
  readonly meta: Buffer;
  /** Simulated or real ms of the last status change, on this node's clock. */
  readonly statusChangedAtMs: number;
}

/** What a member says about itself (Swim's `self`). */
export interface MemberIdentity {
  id: NodeId;
  address: string;
  zone?: string;
  meta?: Buffer;
}

/** A member record, mutable inside Swim only. */
export interface Member {
  id: NodeId;
  address: string;
  incarnation: number;
  status: MemberStatus;
  zone: string;
  meta: Buffer;
  statusChangedAtMs: number;
}

/** Copies a record into a view (meta copied: a listener must not change the record). */
export function viewOf(m: Member): MemberView {
  return {
    id: m.id,
    address: m.address,
    incarnation: m.incarnation,
    status: m.status,
    zone: m.zone,
    meta: Buffer.from(m.meta),
    statusChangedAtMs: m.statusChangedAtMs,
  };
}

/** A full member state as exchanged by push-pull. */
export interface MemberState {
  id: NodeId;
  address: string;
  incarnation: number;
  status: MemberStatus;
  zone: string;
  meta: Buffer;
}

/** True when the alive facts (address, zone, meta) differ. */
export function aliveFactsDiffer(a: { address: string; zone: string; meta: Buffer }, b: { address: string; zone: string; meta: Buffer }): boolean {
  return a.address !== b.address || a.zone !== b.zone || !a.meta.equals(b.meta);
}
