/**
 * Assigns the 16384 hash slots to members: each slot an ordered list of N distinct members
 * (distinct zones while zones allow), balanced, moving as little as a change needs.
 *
 * Slots go in units of 8 (see chunkSlots). A new cluster without zones is laid out in
 * contiguous runs. From a previous assignment: members no longer present are dropped from
 * their lists; each member holding more than its share (ceil(units·N / M)) gives up the excess,
 * its highest units first (so what moves stays in runs: few CLUSTER SLOTS ranges); then every
 * list short of N is filled with the least-loaded eligible member, preferring the member that
 * filled the same place in the previous unit while it is under its share. A join of the k-th member
 * therefore moves about 1/k of the slot replicas (those the newcomer takes), a leave moves
 * exactly the leaver's. Finally each list is ordered so that primaries (first entries, which
 * Redis cluster clients route writes to) are balanced too: reordering moves no data.
 * Deterministic: every member computes the same table from the same inputs.
 */
import { slotCount } from '../../common/slots.js';
import { murmur3 } from '../hash.js';
import type { NodeId } from '../transport.js';

export interface PlacementMember {
  id: NodeId;
  /** Failure zone; empty or absent when not configured. */
  zone?: string;
  /**
   * Identity of the member's data directory (random, made with it). A member that comes back
   * with another one lost its disk: it is restored before it is read (see table.ts).
   */
  dataId?: number;
}

export type SlotLists = readonly (readonly NodeId[])[];

/**
 * Slots are assigned in units of 8 consecutive slots (2048 units): fine enough that members'
 * shares stay within 1.05 of the mean up to 64 members (1 + 64/2048), coarse enough that a
 * slot map has few ranges.
 */
export const chunkSlots = 8;
const unitCount = slotCount / chunkSlots;

function mix(member: number, slot: number): number {
  // A cheap integer hash (splitmix-like), enough to spread which slots a member gives up.
  let h = Math.imul(member ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(slot + 0x632be5ab, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  return h >>> 0;
}

/**
 * The assignment for `members` with `replicas` per slot (fewer when there are fewer
 * members), starting from `previous` (null: from nothing).
 */
export function planSlots(previous: SlotLists | null, members: readonly PlacementMember[], replicas: number): NodeId[][] {
  const sorted = [...members].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const ids = sorted.map((m) => m.id);
  const index = new Map(ids.map((id, i) => [id, i]));
  if (index.size !== ids.length) throw new RangeError('placement members must have distinct ids');
  const M = ids.length;
  const n = Math.min(replicas, M);
  if (M === 0) return Array.from({ length: slotCount }, () => []);
  const U = unitCount;
  const zones = sorted.map((m) => m.zone ?? '');
  const zoneCount = new Set(zones).size;
  const memberSeeds = ids.map((id) => murmur3(Buffer.from(id)));

  // 1. Keep what is still valid (present members, at most n per list).
  const lists: number[][] = new Array(U);
  const load = new Array<number>(M).fill(0);
  if (!previous && zoneCount <= 1) {
    // A new cluster without zones: contiguous runs (member i is first for the i-th M-th of the
    // units, the next members hold its replicas), so CLUSTER SLOTS lists about M ranges.
    for (let u = 0; u < U; u++) {
      const first = Math.floor((u * M) / U);
      lists[u] = Array.from({ length: n }, (_, j) => (first + j) % M);
    }
    return expand(lists.map((l) => l.map((i) => ids[i]!)));
  }
  for (let s = 0; s < U; s++) {
    const out: number[] = [];
    for (const id of previous?.[s * chunkSlots] ?? []) {
      const i = index.get(id);
      if (i !== undefined && !out.includes(i) && out.length < n) out.push(i);
    }
    for (const i of out) load[i]!++;
    lists[s] = out;
  }

  // 2. Members over their share give up the excess, spread by hash.
  const total = U * n;
  const high = Math.ceil(total / M);
  for (let m = 0; m < M; m++) {
    const excess = load[m]! - high;
    if (excess <= 0) continue;
    const held: { slot: number; rank: number }[] = [];
    // Units already short of a replica come last: one unit losing two replicas would make a
    // newcomer unable to fill both, and an old member would take the other back (a wasted move).
    // Otherwise the highest units first: what a member gives up stays in runs (few ranges).
    for (let s = 0; s < U; s++) if (lists[s]!.includes(m)) held.push({ slot: s, rank: U - s + (lists[s]!.length < n ? 2 ** 32 : 0) });
    held.sort((a, b) => a.rank - b.rank || a.slot - b.slot);
    for (let j = 0; j < excess; j++) {
      const list = lists[held[j]!.slot]!;
      list.splice(list.indexOf(m), 1);
      load[m]!--;
    }
  }

  // 3. Fill short lists with the least-loaded eligible member (new zone first while zones remain).
  for (let s = 0; s < U; s++) {
    const list = lists[s]!;
    while (list.length < n) {
      const usedZones = new Set(list.map((i) => zones[i]!));
      let best = -1;
      let bestZoneNew = false;
      for (let m = 0; m < M; m++) {
        if (list.includes(m)) continue;
        const zoneNew = !usedZones.has(zones[m]!) || usedZones.size >= zoneCount;
        // Ties: a member of the previous unit's list first (runs of equal lists), then by hash.
        const near = (x: number) => (s > 0 && lists[s - 1]!.includes(x) ? 0 : 1);
        const tieBetter = near(m) < near(best) || (near(m) === near(best) && mix(memberSeeds[m]!, s) < mix(memberSeeds[best]!, s));
        if (best < 0 || (zoneNew && !bestZoneNew) || (zoneNew === bestZoneNew && (load[m]! < load[best]! || (load[m] === load[best] && tieBetter)))) {
          best = m;
          bestZoneNew = zoneNew;
        }
      }
      // Runs: the member that filled the same position in the previous unit, while under its
      // share, keeps filling (so a leaver's slots go out in runs, not one unit at a time).
      const prevList = s > 0 ? lists[s - 1]! : null;
      const runner = prevList ? prevList[list.length] : undefined;
      if (runner !== undefined && !list.includes(runner) && load[runner]! < high && (bestZoneNew ? !usedZones.has(zones[runner]!) || usedZones.size >= zoneCount : true)) best = runner;
      list.push(best);
      load[best]!++;
    }
  }

  // 4. Balance primaries by reordering lists (keeps a list's previous primary while it is under its share).
  const primaries = new Array<number>(M).fill(0);
  const primaryHigh = Math.ceil(U / M);
  const keep: boolean[] = new Array(U).fill(false);
  for (let s = 0; s < U; s++) {
    const prevFirst = previous?.[s * chunkSlots]?.[0];
    const p = prevFirst === undefined ? undefined : index.get(prevFirst);
    if (p !== undefined && lists[s]!.includes(p) && primaries[p]! < primaryHigh) {
      primaries[p]!++;
      keep[s] = true;
      const list = lists[s]!;
      list.splice(list.indexOf(p), 1);
      list.unshift(p);
    }
  }
  for (let s = 0; s < U; s++) {
    if (keep[s]) continue;
    const list = lists[s]!;
    let best = list[0]!;
    for (const m of list) if (primaries[m]! < primaries[best]!) best = m;
    // The previous unit's primary, while under its share: runs of one primary (few ranges).
    const run = s > 0 ? lists[s - 1]![0]! : -1;
    if (run >= 0 && list.includes(run) && primaries[run]! < primaryHigh) best = run;
    primaries[best]!++;
    list.splice(list.indexOf(best), 1);
    list.unshift(best);
  }
  return expand(lists.map((l) => l.map((i) => ids[i]!)));
}

/** Unit lists to slot lists: every slot of a unit gets the unit's list. */
function expand(units: NodeId[][]): NodeId[][] {
  const out: NodeId[][] = new Array(slotCount);
  for (let s = 0; s < slotCount; s++) out[s] = units[Math.floor(s / chunkSlots)]!;
  return out;
}

/** Slot replicas per member (how many slots list it), for balance checks and /cluster. */
export function slotLoads(lists: SlotLists): Map<NodeId, { replicas: number; primaries: number }> {
  const out = new Map<NodeId, { replicas: number; primaries: number }>();
  lists.forEach((list) =>
    list.forEach((id, pos) => {
      let e = out.get(id);
      if (!e) out.set(id, (e = { replicas: 0, primaries: 0 }));
      e.replicas++;
      if (pos === 0) e.primaries++;
    }),
  );
  return out;
}
