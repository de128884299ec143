/**
 * Vector search over posting lists, run where the lists are stored: each list is read as
 * its stored pieces (no join), parsed in place, scored with yielding kernels, and only the
 * k best hits leave. Also the item views of a list (count, items i..j) for partial reads.
 */
import { KvError, invalidArgument } from '../common/errors.js';
import { type ElementType, type ItemBatch, idHash, listShape, parseSegments } from './vector-items.js';
import { type Metric, scoreSegments } from './vector-score.js';
import { type KeyedHit, type SearchHit, SEARCH_K_MAX, checkK, mergeTopK } from './topk.js';

export interface VectorSearchRequest {
  keys: Buffer[];
  /** float32 query, of the lists' dimension. */
  query: Float32Array;
  k: number;
  metric: Metric;
  /** Only lists whose record field `field` equals `value` are searched. */
  filter?: { field: Buffer; value: Buffer };
  /** Only items whose payload starts with these bytes are candidates. */
  payloadPrefix?: Buffer;
  withPayloads?: boolean;
  /**
   * Return every list's copy of an id (each (key, id) once). By default each id comes back
   * once, from the list where it scores best: an index that places a vector in several
   * posting lists (SPANN's boundary replicas) gets k distinct ids.
   */
  allCopies?: boolean;
}

export interface VectorHit {
  key: Buffer;
  id: Buffer;
  /** The metric's natural value: L2 squared distance (lower better), inner product or cosine (higher better). */
  score: number;
  /** Lower is better for every metric (what results are sorted by). */
  distance: number;
  payload?: Buffer | null;
}

export interface VectorSearchResult {
  hits: VectorHit[];
  /**
   * True when some keys were not searched (listed in `skippedKeys`): their replica did not
   * answer in time, or the key holds a value that is not a readable posting list.
   */
  degraded: boolean;
  skippedKeys: Buffer[];
}

/** A list that a search could not read (a value that is not a posting list, or a broken one). */
export interface UnreadableList {
  key: Buffer;
  /** The WRONG_TYPE message that names the key and the problem. */
  reason: string;
}

/** What a holder's search of its lists found: its best hits, and the lists it could not read. */
export interface ListSearchResult {
  hits: VectorHit[];
  unreadable: UnreadableList[];
}

/** One list as its holder sees it. */
export interface ListSource {
  key: Buffer;
  /** The value's stored pieces, or null when the key holds no value. */
  pieces: Buffer[] | null;
  /** A record field, for FILTER. */
  field(name: Buffer): Buffer | null;
}

const setImmediateYield = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Parses a list's pieces; a value that is not a posting list is a WRONGTYPE error naming the key. */
export function listBatches(key: Buffer, pieces: Buffer[]): ItemBatch[] {
  try {
    return pieces.flatMap((p) => parseSegments(p));
  } catch (err) {
    if (err instanceof KvError) throw new KvError('WRONG_TYPE', `key '${printable(key)}': ${err.message}`);
    throw err;
  }
}

/**
 * Searches every list and returns the k best hits over all of them (copies, not views). A list
 * that is not a readable posting list is skipped and reported in `unreadable`, so one broken
 * list does not fail a search over many; `finishSearch` decides what the caller sees.
 */
export async function searchLists(
  lists: ListSource[],
  req: VectorSearchRequest,
  yieldFn: () => Promise<void> = setImmediateYield,
): Promise<ListSearchResult> {
  checkK(req.k);
  const perList: KeyedHit[][] = [];
  const unreadable: UnreadableList[] = [];
  for (const list of lists) {
    const pieces = list.pieces; // a getter may read the store: once
    if (!pieces) continue;
    if (req.filter) {
      const v = list.field(req.filter.field);
      if (!v || !v.equals(req.filter.value)) continue;
    }
    let batches: ItemBatch[];
    try {
      batches = listBatches(list.key, pieces);
    } catch (err) {
      if (!(err instanceof KvError) || err.code !== 'WRONG_TYPE') throw err;
      unreadable.push({ key: list.key, reason: err.message });
      continue;
    }
    const hits = await scoreDistinct(batches, req, yieldFn);
    perList.push(
      hits.map((h) => ({
        key: list.key,
        id: Buffer.from(h.id),
        distance: h.distance,
        score: h.score,
        ...(req.withPayloads ? { payload: h.payload ? Buffer.from(h.payload) : null } : {}),
      })),
    );
  }
  // Each per-list answer holds that list's k best distinct ids, so the merge (one copy per
  // id, or per (key, id) with allCopies) holds k distinct ones when the lists do.
  return { hits: mergeTopK(perList, req.k, { allCopies: req.allCopies === true }) as VectorHit[], unreadable };
}

/** Ids of one list's hits, by hash; reused by each call (cleared first, used synchronously). */
const seenIdHashes = new Set<number>();

/** How many distinct ids `hits` holds. */
function distinctIds(hits: readonly SearchHit[]): number {
  seenIdHashes.clear();
  for (const h of hits) seenIdHashes.add(idHash(h.id));
  const n = seenIdHashes.size;
  seenIdHashes.clear();
  // Distinct hashes are distinct ids; a repeated hash is checked on the bytes (rare).
  return n === hits.length ? n : new Set(hits.map((h) => h.id.toString('latin1'))).size;
}

/**
 * A list's best hits holding its k best distinct ids (or every id it has). A list may hold one
 * id twice (two VADDs of it that raced, or one batch that names it twice), and a merge keeps
 * one copy, so the top k is asked again, for at least as many more as copies crowded out,
 * until k distinct ids are in or the list runs out.
 */
async function scoreDistinct(batches: ItemBatch[], req: VectorSearchRequest, yieldFn: () => Promise<void>): Promise<SearchHit[]> {
  const options = { yieldFn, ...(req.payloadPrefix ? { filterPayloadPrefix: req.payloadPrefix } : {}) };
  let want = req.k;
  for (;;) {
    const { hits } = await scoreSegments(batches, req.query, req.metric, want, options);
    if (hits.length < want || want === SEARCH_K_MAX) return hits;
    const distinct = distinctIds(hits);
    if (distinct >= req.k) return hits;
    // Doubling bounds the rescans (about log2 of SEARCH_K_MAX / k) however many copies crowd.
    want = Math.min(SEARCH_K_MAX, Math.max(2 * want, want + req.k - distinct));
  }
}

/**
 * The answer to a search from its parts: each holder's `searchLists` result (or its decoded
 * reply) and the keys that no replica answered for in time. Merges the hits into the k best;
 * unreachable and unreadable keys are skipped and make the answer degraded. When every key
 * named is unreadable, there is nothing to degrade from: throws WRONG_TYPE with the first
 * list's reason (so a search of one key that is not a list fails as before).
 */
export function finishSearch(req: VectorSearchRequest, parts: readonly ListSearchResult[], unreachable: readonly Buffer[]): VectorSearchResult {
  const hits = mergeTopK(parts.map((p) => p.hits), req.k, { allCopies: req.allCopies === true }) as VectorHit[];
  const skippedKeys = unreachable.slice();
  let unreadable: Set<string> | null = null;
  let first: UnreadableList | null = null;
  for (const p of parts) {
    for (const u of p.unreadable) {
      const name = u.key.toString('latin1');
      if ((unreadable ??= new Set()).has(name)) continue;
      unreadable.add(name);
      first ??= u;
      skippedKeys.push(u.key);
    }
  }
  if (unreadable !== null && first !== null && req.keys.every((k) => unreadable.has(k.toString('latin1')))) {
    const more = unreadable.size - 1;
    throw new KvError('WRONG_TYPE', more > 0 ? `${first.reason}; ${more} more ${more === 1 ? 'key holds' : 'keys hold'} no readable list either` : first.reason);
  }
  return { hits, degraded: skippedKeys.length > 0, skippedKeys };
}

/** A live item of a list, in append order. */
export interface ItemRef {
  batch: ItemBatch;
  index: number;
}

/**
 * The live items of a list, built batch by batch in append order: a delete batch kills the
 * ids appended before it; an id appended again later is live again, at its new place.
 * Batches of another shape than the first are skipped (as search skips them).
 */
export class LiveItems {
  private shape: { type: ElementType | null; dim: number } | null = null;
  private readonly live = new Map<string, ItemRef>();

  add(b: ItemBatch): void {
    if (b.kind === 'deletes') {
      for (let i = 0; i < b.count; i++) this.live.delete(b.ids(i).toString('latin1'));
      return;
    }
    this.shape ??= { type: b.type, dim: b.dim };
    if (b.type !== this.shape.type || b.dim !== this.shape.dim) return;
    for (let i = 0; i < b.count; i++) {
      const id = b.ids(i).toString('latin1');
      this.live.delete(id); // re-appended: moves to its new place
      this.live.set(id, { batch: b, index: i });
    }
  }

  get count(): number {
    return this.live.size;
  }

  /** True when an item with this id is live. */
  has(id: Buffer): boolean {
    return this.live.has(id.toString('latin1'));
  }

  /** The live items in order (their batches must still be readable). */
  refs(): ItemRef[] {
    return [...this.live.values()];
  }
}

/** The live items of a list in append order. */
export function liveItems(batches: ItemBatch[]): ItemRef[] {
  const set = new LiveItems();
  for (const b of batches) set.add(b);
  return set.refs();
}

/** Item i's vector as plain numbers (float16 decoded). */
export function itemVector(ref: ItemRef, float16: Float32Array): number[] {
  const { batch, index } = ref;
  const out: number[] = new Array<number>(batch.dim);
  const v = batch.vectors;
  const base = index * batch.dim;
  for (let d = 0; d < batch.dim; d++) out[d] = batch.type === 'float16' ? float16[v[base + d]!]! : v[base + d]!;
  return out;
}

/**
 * Checks that a new batch fits the list's declared shape (the first append fixes it);
 * returns true once a declared shape was found in `pieces` (later pieces need no look).
 */
export function checkShape(key: Buffer, pieces: Buffer[] | null, type: ElementType, dim: number): boolean {
  if (!pieces) return false;
  for (const p of pieces) {
    let shape: { type: ElementType; dim: number } | null;
    try {
      shape = listShape(p);
    } catch (err) {
      if (err instanceof KvError) throw new KvError('WRONG_TYPE', `key '${printable(key)}' holds a value that is not a vector posting list`);
      throw err;
    }
    if (!shape) continue;
    if (shape.type !== type || shape.dim !== dim) {
      throw invalidArgument(`list '${printable(key)}' holds ${shape.type} vectors of dimension ${shape.dim}; got ${type} of dimension ${dim}`);
    }
    return true;
  }
  return false;
}

function printable(key: Buffer): string {
  return key.toString('utf8').slice(0, 64);
}
