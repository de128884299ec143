/**
 * Top-k selection. A replica keeps its k best candidates in a bounded max-heap over typed
 * arrays (no object per candidate); the coordinator merges the replicas' short lists.
 * Order everywhere: distance ascending (lower is better), ties broken by position, so
 * results are deterministic and equal to the first k of a full sort.
 */
import { bounds } from '../common/limits.js';

/** Largest k a search may ask for (common/limits.ts). */
export const SEARCH_K_MAX = bounds.searchKMax;

/** Throws a RangeError unless k is an integer 1..SEARCH_K_MAX. */
export function checkK(k: number): number {
  if (!Number.isInteger(k) || k < 1 || k > SEARCH_K_MAX) throw new RangeError(`k must be an integer 1..${SEARCH_K_MAX}, got ${k}`);
  return k;
}

/** One kept candidate: where it is (batch, item) and its distance. */
export interface TopKEntry {
  distance: number;
  batch: number;
  item: number;
}

/**
 * The k smallest (distance, batch, item) triples offered so far. The root of the max-heap is
 * the worst kept candidate, so a candidate that cannot enter costs one comparison.
 */
export class TopK {
  readonly k: number;
  private readonly dist: Float64Array;
  private readonly batch: Int32Array;
  private readonly item: Int32Array;
  private size = 0;

  constructor(k: number) {
    this.k = checkK(k);
    this.dist = new Float64Array(k);
    this.batch = new Int32Array(k);
    this.item = new Int32Array(k);
  }

  /** Candidates kept so far (at most k). */
  get length(): number {
    return this.size;
  }

  /** Distance a candidate must beat to enter (Infinity until k are kept). */
  get threshold(): number {
    return this.size < this.k ? Infinity : this.dist[0]!;
  }

  /** Offers a candidate; returns true when it was kept. NaN distances are never kept. */
  offer(distance: number, batch: number, item: number): boolean {
    if (!(distance === distance)) return false;
    if (this.size < this.k) {
      this.siftUp(this.size++, distance, batch, item);
      return true;
    }
    if (!this.worse(this.dist[0]!, this.batch[0]!, this.item[0]!, distance, batch, item)) return false;
    this.siftDown(distance, batch, item);
    return true;
  }

  /** The kept candidates, best (lowest distance) first. */
  results(): TopKEntry[] {
    const out: TopKEntry[] = [];
    for (let i = 0; i < this.size; i++) out.push({ distance: this.dist[i]!, batch: this.batch[i]!, item: this.item[i]! });
    out.sort((a, b) => a.distance - b.distance || a.batch - b.batch || a.item - b.item);
    return out;
  }

  /** True when (d1, b1, i1) orders after (d2, b2, i2). */
  private worse(d1: number, b1: number, i1: number, d2: number, b2: number, i2: number): boolean {
    return d1 > d2 || (d1 === d2 && (b1 > b2 || (b1 === b2 && i1 > i2)));
  }

  private siftUp(pos: number, d: number, b: number, it: number): void {
    const { dist, batch, item } = this;
    while (pos > 0) {
      const parent = (pos - 1) >> 1;
      if (!this.worse(d, b, it, dist[parent]!, batch[parent]!, item[parent]!)) break;
      dist[pos] = dist[parent]!;
      batch[pos] = batch[parent]!;
      item[pos] = item[parent]!;
      pos = parent;
    }
    dist[pos] = d;
    batch[pos] = b;
    item[pos] = it;
  }

  /** Replaces the root with (d, b, it) and restores the heap. */
  private siftDown(d: number, b: number, it: number): void {
    const { dist, batch, item, size } = this;
    let pos = 0;
    for (;;) {
      let child = 2 * pos + 1;
      if (child >= size) break;
      const right = child + 1;
      if (right < size && this.worse(dist[right]!, batch[right]!, item[right]!, dist[child]!, batch[child]!, item[child]!)) child = right;
      if (!this.worse(dist[child]!, batch[child]!, item[child]!, d, b, it)) break;
      dist[pos] = dist[child]!;
      batch[pos] = batch[child]!;
      item[pos] = item[child]!;
      pos = child;
    }
    dist[pos] = d;
    batch[pos] = b;
    item[pos] = it;
  }
}

/** One search hit as a replica reports it (the key is added by whoever searched the key). */
export interface SearchHit {
  id: Buffer;
  /** Lower is better: L2 squared distance, -inner product, or 1 - cosine. */
  distance: number;
  /** The metric's natural value: L2 squared distance, inner product, or cosine similarity. */
  score: number;
  payload?: Buffer | null;
}

/** A hit with the key (posting list) it came from, as merged by the coordinator. */
export interface KeyedHit extends SearchHit {
  key: Buffer | string;
}

const keyBytes = (key: Buffer | string): Buffer => (typeof key === 'string' ? Buffer.from(key) : key);

/** Options of `mergeTopK`. */
export interface MergeOptions {
  /**
   * Keep every list's copy of an id (each (key, id) once) instead of each id once. An index
   * that places a vector in several posting lists (SPANN's boundary replicas) wants each id
   * once; the default.
   */
  allCopies?: boolean;
}

/**
 * Merges per-replica (or per-key) result lists into the k best. Each id counts once, at its
 * lowest distance (ties: the lowest key), so k distinct ids come out whenever the lists hold
 * k; with `allCopies`, each (key, id) counts once instead. Order: distance, then key, then id
 * bytes.
 *
 * For k distinct ids to come out, each input list must hold its own k best distinct ids (or
 * all it has): an id left out of a list was beaten there by k others, so it cannot be in the
 * k best overall. `searchLists` makes its per-list and per-replica lists so.
 */
export function mergeTopK<T extends KeyedHit>(lists: readonly (readonly T[])[], k: number, options: MergeOptions = {}): T[] {
  checkK(k);
  const allCopies = options.allCopies === true;
  const best = new Map<string, T>();
  for (const list of lists) {
    for (const hit of list) {
      if (!(hit.distance === hit.distance)) continue;
      let name: string;
      if (allCopies) {
        const kb = keyBytes(hit.key);
        // Length-prefixed so that (key, id) pairs cannot collide when concatenated.
        name = `${kb.length}:${kb.toString('latin1')}${hit.id.toString('latin1')}`;
      } else {
        name = hit.id.toString('latin1');
      }
      const seen = best.get(name);
      if (
        seen === undefined ||
        hit.distance < seen.distance ||
        (hit.distance === seen.distance && Buffer.compare(keyBytes(hit.key), keyBytes(seen.key)) < 0)
      ) {
        best.set(name, hit);
      }
    }
  }
  const all = [...best.values()];
  all.sort((a, b) => a.distance - b.distance || Buffer.compare(keyBytes(a.key), keyBytes(b.key)) || Buffer.compare(a.id, b.id));
  return all.length > k ? all.slice(0, k) : all;
}
