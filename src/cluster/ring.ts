/**
 * Consistent hashing with virtual nodes. Each member owns `vnodes` tokens on a 32-bit ring
 * (murmur3 of `id#i`); a key's position is murmur3 of its hash tag, seeded by its namespace.
 * The preference list of a position is the first N distinct members clockwise, preferring
 * members of zones not yet used when zones are configured. Lists are precomputed per token,
 * so a lookup is one binary search. A Ring is immutable: membership changes build a new one.
 */
import { hashTagOf } from '../common/slots.js';
import { murmur3 } from './hash.js';
import type { NodeId } from './transport.js';

export interface RingMember {
  id: NodeId;
  zone?: string;
}

export interface RingOptions {
  /** Tokens per member; more evens out ownership (see the ring property test). */
  vnodes?: number;
  /** Replicas per key (N). */
  replicas?: number;
}

export const defaultVnodes = 2048;

export class Ring {
  readonly members: readonly RingMember[];
  readonly replicas: number;
  private readonly tokens: Uint32Array;
  /** Preference list of the arc ending at each token (index-aligned with `tokens`). */
  private readonly lists: NodeId[][];
  private readonly nsSeeds = new Map<string, number>();

  constructor(members: RingMember[], options: RingOptions = {}) {
    const vnodes = options.vnodes ?? defaultVnodes;
    if (!Number.isInteger(vnodes) || vnodes < 1) throw new RangeError(`'vnodes' must be a positive integer, got ${vnodes}`);
    const ids = new Set(members.map((m) => m.id));
    if (ids.size !== members.length) throw new RangeError('ring members must have distinct ids');
    this.members = [...members].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    this.replicas = Math.min(options.replicas ?? 3, this.members.length);
    const entries: { token: number; member: number }[] = [];
    this.members.forEach((m, idx) => {
      for (let i = 0; i < vnodes; i++) entries.push({ token: murmur3(Buffer.from(`${m.id}#${i}`)), member: idx });
    });
    // Ties (vanishingly rare) break by member id, so every node builds the same ring.
    entries.sort((a, b) => a.token - b.token || a.member - b.member);
    this.tokens = Uint32Array.from(entries.map((e) => e.token));
    const zoned = this.members.some((m) => m.zone);
    this.lists = entries.map((_, i) => this.walk(entries, i, zoned));
  }

  private walk(entries: { member: number }[], start: number, zoned: boolean): NodeId[] {
    const picked: number[] = [];
    const seen = new Set<number>();
    const zonesUsed = new Set<string>();
    const zoneCount = new Set(this.members.map((m) => m.zone ?? '')).size;
    // First pass: distinct members in distinct zones; second pass: fill with distinct members.
    for (let pass = zoned ? 0 : 1; pass < 2 && picked.length < this.replicas; pass++) {
      for (let j = 0; j < entries.length && picked.length < this.replicas; j++) {
        const m = entries[(start + j) % entries.length]!.member;
        if (seen.has(m)) continue;
        const zone = this.members[m]!.zone ?? '';
        if (pass === 0 && zonesUsed.has(zone) && zonesUsed.size < zoneCount) continue;
        seen.add(m);
        zonesUsed.add(zone);
        picked.push(m);
      }
    }
    return picked.map((m) => this.members[m]!.id);
  }

  /** Ring position of a key: its hash tag, seeded by the namespace. */
  position(ns: string, key: Buffer): number {
    let seed = this.nsSeeds.get(ns);
    if (seed === undefined) {
      seed = murmur3(Buffer.from(ns));
      this.nsSeeds.set(ns, seed);
    }
    return murmur3(hashTagOf(key), seed);
  }

  /** The N replicas of a key, primary first. */
  replicasFor(ns: string, key: Buffer): NodeId[] {
    return this.listAt(this.position(ns, key));
  }

  /** Preference list of a ring position: the owner of the first token at or after it, and on. */
  listAt(position: number): NodeId[] {
    if (this.tokens.length === 0) return [];
    return this.lists[this.tokenAt(position)]!;
  }

  /** Index of the first token at or after `position`, wrapping to 0 past the last. */
  private tokenAt(position: number): number {
    const t = this.tokens;
    let lo = 0;
    let hi = t.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (t[mid]! < position) lo = mid + 1;
      else hi = mid;
    }
    return lo === t.length ? 0 : lo;
  }

  /**
   * Every member in clockwise order from a key's position (the preference list first):
   * where a sloppy-quorum write looks for fallbacks when replicas are down.
   */
  walkFrom(ns: string, key: Buffer): NodeId[] {
    const position = this.position(ns, key);
    const first = this.listAt(position);
    const out = [...first];
    if (out.length === this.members.length) return out;
    const seen = new Set(out);
    const t = this.tokens;
    const lo = this.tokenAt(position);
    for (let j = 0; j < t.length && out.length < this.members.length; j++) {
      const id = this.lists[(lo + j) % t.length]![0]!;
      if (!seen.has(id)) {
        seen.add(id);
        out.push(id);
      }
    }
    return out;
  }

  /** Share of the ring each member owns as primary (sums to 1). */
  primaryShares(): Map<NodeId, number> {
    return this.shares((list) => list.slice(0, 1));
  }

  /** Share of the ring each member holds a replica of (sums to N). */
  replicaShares(): Map<NodeId, number> {
    return this.shares((list) => list);
  }

  private shares(holders: (list: NodeId[]) => NodeId[]): Map<NodeId, number> {
    const shares = new Map<NodeId, number>(this.members.map((m) => [m.id, 0]));
    const t = this.tokens;
    for (let i = 0; i < t.length; i++) {
      const prev = i === 0 ? t[t.length - 1]! - 2 ** 32 : t[i - 1]!;
      for (const id of holders(this.lists[i]!)) shares.set(id, shares.get(id)! + (t[i]! - prev) / 2 ** 32);
    }
    return shares;
  }
}
