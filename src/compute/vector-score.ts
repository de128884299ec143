/**
 * Vector scoring at the replica: tight loops per element type over a batch's vector view, a
 * cooperative scan of a whole posting list that yields to the event loop every few ms, and
 * the kernel-rate probe the benchmark reports.
 *
 * Every metric is turned into a distance where lower is better, so top-k is uniform:
 * L2 -> squared Euclidean distance; IP -> -(inner product); COSINE -> 1 - cosine similarity.
 * Hits report both the distance and the metric's natural score.
 */

import { performance } from 'node:perf_hooks';
import { KvError } from '../common/errors.js';
import { Random } from '../common/random.js';
import { type SearchHit, TopK, checkK } from './topk.js';
import { type ElementType, type ItemBatch, FLOAT16_TABLE, encodeItemBatch, idHash, parseSegments } from './vector-items.js';

/** Similarity metrics a search may use. */
export type Metric = 'L2' | 'IP' | 'COSINE';

const METRIC_L2 = 0;
const METRIC_IP = 1;
const METRIC_COSINE = 2;
const metricCodes: Readonly<Record<Metric, number>> = { L2: METRIC_L2, IP: METRIC_IP, COSINE: METRIC_COSINE };

/** Reads a metric name, case-insensitively; throws a RangeError naming the accepted ones. */
export function parseMetric(name: string): Metric {
  const upper = name.toUpperCase();
  if (upper === 'L2' || upper === 'IP' || upper === 'COSINE') return upper;
  throw new RangeError(`unknown metric '${name}' (L2, IP or COSINE)`);
}

/** The metric's natural score for a distance: L2 distance, inner product, or cosine. */
export function distanceToScore(metric: Metric, distance: number): number {
  return metric === 'L2' ? distance : metric === 'IP' ? -distance : 1 - distance;
}

// ---------------------------------------------------------------------------------------------
// kernels: one monomorphic copy per element type (V8 keeps type feedback per function, so a
// shared loop would go polymorphic over the four typed-array classes). Four accumulators let
// the CPU overlap the additions (measured ~1.5-2x over a single sum). `out[i - from]` receives
// item i's distance, or NaN when `live` rules the item out.

type Kernel<V> = (
  v: V, q: Float32Array, dim: number, metric: number, qq: number,
  from: number, to: number, out: Float64Array, live: Uint8Array | null,
) => void;

const cosineDistance = (dot: number, qq: number, vv: number): number => (vv === 0 ? 1 : 1 - dot / Math.sqrt(qq * vv));

function l2F32(v: Float32Array, b: number, q: Float32Array, dim: number): number {
  const m = dim & ~3;
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0, d = 0;
  for (; d < m; d += 4) {
    const x0 = v[b + d]! - q[d]!, x1 = v[b + d + 1]! - q[d + 1]!, x2 = v[b + d + 2]! - q[d + 2]!, x3 = v[b + d + 3]! - q[d + 3]!;
    s0 += x0 * x0; s1 += x1 * x1; s2 += x2 * x2; s3 += x3 * x3;
  }
  for (; d < dim; d++) {
    const x = v[b + d]! - q[d]!;
    s0 += x * x;
  }
  return s0 + s1 + s2 + s3;
}

function dotF32(v: Float32Array, b: number, q: Float32Array, dim: number): number {
  const m = dim & ~3;
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0, d = 0;
  for (; d < m; d += 4) {
    s0 += v[b + d]! * q[d]!; s1 += v[b + d + 1]! * q[d + 1]!; s2 += v[b + d + 2]! * q[d + 2]!; s3 += v[b + d + 3]! * q[d + 3]!;
  }
  for (; d < dim; d++) s0 += v[b + d]! * q[d]!;
  return s0 + s1 + s2 + s3;
}

function cosF32(v: Float32Array, b: number, q: Float32Array, dim: number, qq: number): number {
  const m = dim & ~3;
  let p0 = 0, p1 = 0, n0 = 0, n1 = 0, d = 0;
  for (; d < m; d += 4) {
    const x0 = v[b + d]!, x1 = v[b + d + 1]!, x2 = v[b + d + 2]!, x3 = v[b + d + 3]!;
    p0 += x0 * q[d]! + x2 * q[d + 2]!; p1 += x1 * q[d + 1]! + x3 * q[d + 3]!;
    n0 += x0 * x0 + x2 * x2; n1 += x1 * x1 + x3 * x3;
  }
  for (; d < dim; d++) {
    const x = v[b + d]!;
    p0 += x * q[d]!;
    n0 += x * x;
  }
  return cosineDistance(p0 + p1, qq, n0 + n1);
}

const kernelF32: Kernel<Float32Array> = (v, q, dim, metric, qq, from, to, out, live) => {
  for (let i = from; i < to; i++) {
    const j = i - from;
    if (live !== null && live[j] === 0) out[j] = NaN;
    else if (metric === METRIC_L2) out[j] = l2F32(v, i * dim, q, dim);
    else if (metric === METRIC_IP) out[j] = -dotF32(v, i * dim, q, dim);
    else out[j] = cosF32(v, i * dim, q, dim, qq);
  }
};

function l2F16(v: Uint16Array, b: number, q: Float32Array, dim: number): number {
  const t = FLOAT16_TABLE;
  const m = dim & ~3;
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0, d = 0;
  for (; d < m; d += 4) {
    const x0 = t[v[b + d]!]! - q[d]!, x1 = t[v[b + d + 1]!]! - q[d + 1]!, x2 = t[v[b + d + 2]!]! - q[d + 2]!, x3 = t[v[b + d + 3]!]! - q[d + 3]!;
    s0 += x0 * x0; s1 += x1 * x1; s2 += x2 * x2; s3 += x3 * x3;
  }
  for (; d < dim; d++) {
    const x = t[v[b + d]!]! - q[d]!;
    s0 += x * x;
  }
  return s0 + s1 + s2 + s3;
}

function dotF16(v: Uint16Array, b: number, q: Float32Array, dim: number): number {
  const t = FLOAT16_TABLE;
  const m = dim & ~3;
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0, d = 0;
  for (; d < m; d += 4) {
    s0 += t[v[b + d]!]! * q[d]!; s1 += t[v[b + d + 1]!]! * q[d + 1]!; s2 += t[v[b + d + 2]!]! * q[d + 2]!; s3 += t[v[b + d + 3]!]! * q[d + 3]!;
  }
  for (; d < dim; d++) s0 += t[v[b + d]!]! * q[d]!;
  return s0 + s1 + s2 + s3;
}

function cosF16(v: Uint16Array, b: number, q: Float32Array, dim: number, qq: number): number {
  const t = FLOAT16_TABLE;
  const m = dim & ~3;
  let p0 = 0, p1 = 0, n0 = 0, n1 = 0, d = 0;
  for (; d < m; d += 4) {
    const x0 = t[v[b + d]!]!, x1 = t[v[b + d + 1]!]!, x2 = t[v[b + d + 2]!]!, x3 = t[v[b + d + 3]!]!;
    p0 += x0 * q[d]! + x2 * q[d + 2]!; p1 += x1 * q[d + 1]! + x3 * q[d + 3]!;
    n0 += x0 * x0 + x2 * x2; n1 += x1 * x1 + x3 * x3;
  }
  for (; d < dim; d++) {
    const x = t[v[b + d]!]!;
    p0 += x * q[d]!;
    n0 += x * x;
  }
  return cosineDistance(p0 + p1, qq, n0 + n1);
}

const kernelF16: Kernel<Uint16Array> = (v, q, dim, metric, qq, from, to, out, live) => {
  for (let i = from; i < to; i++) {
    const j = i - from;
    if (live !== null && live[j] === 0) out[j] = NaN;
    else if (metric === METRIC_L2) out[j] = l2F16(v, i * dim, q, dim);
    else if (metric === METRIC_IP) out[j] = -dotF16(v, i * dim, q, dim);
    else out[j] = cosF16(v, i * dim, q, dim, qq);
  }
};

function l2I8(v: Int8Array, b: number, q: Float32Array, dim: number): number {
  const m = dim & ~3;
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0, d = 0;
  for (; d < m; d += 4) {
    const x0 = v[b + d]! - q[d]!, x1 = v[b + d + 1]! - q[d + 1]!, x2 = v[b + d + 2]! - q[d + 2]!, x3 = v[b + d + 3]! - q[d + 3]!;
    s0 += x0 * x0; s1 += x1 * x1; s2 += x2 * x2; s3 += x3 * x3;
  }
  for (; d < dim; d++) {
    const x = v[b + d]! - q[d]!;
    s0 += x * x;
  }
  return s0 + s1 + s2 + s3;
}

function dotI8(v: Int8Array, b: number, q: Float32Array, dim: number): number {
  const m = dim & ~3;
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0, d = 0;
  for (; d < m; d += 4) {
    s0 += v[b + d]! * q[d]!; s1 += v[b + d + 1]! * q[d + 1]!; s2 += v[b + d + 2]! * q[d + 2]!; s3 += v[b + d + 3]! * q[d + 3]!;
  }
  for (; d < dim; d++) s0 += v[b + d]! * q[d]!;
  return s0 + s1 + s2 + s3;
}

function cosI8(v: Int8Array, b: number, q: Float32Array, dim: number, qq: number): number {
  const m = dim & ~3;
  let p0 = 0, p1 = 0, n0 = 0, n1 = 0, d = 0;
  for (; d < m; d += 4) {
    const x0 = v[b + d]!, x1 = v[b + d + 1]!, x2 = v[b + d + 2]!, x3 = v[b + d + 3]!;
    p0 += x0 * q[d]! + x2 * q[d + 2]!; p1 += x1 * q[d + 1]! + x3 * q[d + 3]!;
    n0 += x0 * x0 + x2 * x2; n1 += x1 * x1 + x3 * x3;
  }
  for (; d < dim; d++) {
    const x = v[b + d]!;
    p0 += x * q[d]!;
    n0 += x * x;
  }
  return cosineDistance(p0 + p1, qq, n0 + n1);
}

const kernelI8: Kernel<Int8Array> = (v, q, dim, metric, qq, from, to, out, live) => {
  for (let i = from; i < to; i++) {
    const j = i - from;
    if (live !== null && live[j] === 0) out[j] = NaN;
    else if (metric === METRIC_L2) out[j] = l2I8(v, i * dim, q, dim);
    else if (metric === METRIC_IP) out[j] = -dotI8(v, i * dim, q, dim);
    else out[j] = cosI8(v, i * dim, q, dim, qq);
  }
};

function l2U8(v: Uint8Array, b: number, q: Float32Array, dim: number): number {
  const m = dim & ~3;
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0, d = 0;
  for (; d < m; d += 4) {
    const x0 = v[b + d]! - q[d]!, x1 = v[b + d + 1]! - q[d + 1]!, x2 = v[b + d + 2]! - q[d + 2]!, x3 = v[b + d + 3]! - q[d + 3]!;
    s0 += x0 * x0; s1 += x1 * x1; s2 += x2 * x2; s3 += x3 * x3;
  }
  for (; d < dim; d++) {
    const x = v[b + d]! - q[d]!;
    s0 += x * x;
  }
  return s0 + s1 + s2 + s3;
}

function dotU8(v: Uint8Array, b: number, q: Float32Array, dim: number): number {
  const m = dim & ~3;
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0, d = 0;
  for (; d < m; d += 4) {
    s0 += v[b + d]! * q[d]!; s1 += v[b + d + 1]! * q[d + 1]!; s2 += v[b + d + 2]! * q[d + 2]!; s3 += v[b + d + 3]! * q[d + 3]!;
  }
  for (; d < dim; d++) s0 += v[b + d]! * q[d]!;
  return s0 + s1 + s2 + s3;
}

function cosU8(v: Uint8Array, b: number, q: Float32Array, dim: number, qq: number): number {
  const m = dim & ~3;
  let p0 = 0, p1 = 0, n0 = 0, n1 = 0, d = 0;
  for (; d < m; d += 4) {
    const x0 = v[b + d]!, x1 = v[b + d + 1]!, x2 = v[b + d + 2]!, x3 = v[b + d + 3]!;
    p0 += x0 * q[d]! + x2 * q[d + 2]!; p1 += x1 * q[d + 1]! + x3 * q[d + 3]!;
    n0 += x0 * x0 + x2 * x2; n1 += x1 * x1 + x3 * x3;
  }
  for (; d < dim; d++) {
    const x = v[b + d]!;
    p0 += x * q[d]!;
    n0 += x * x;
  }
  return cosineDistance(p0 + p1, qq, n0 + n1);
}

const kernelU8: Kernel<Uint8Array> = (v, q, dim, metric, qq, from, to, out, live) => {
  for (let i = from; i < to; i++) {
    const j = i - from;
    if (live !== null && live[j] === 0) out[j] = NaN;
    else if (metric === METRIC_L2) out[j] = l2U8(v, i * dim, q, dim);
    else if (metric === METRIC_IP) out[j] = -dotU8(v, i * dim, q, dim);
    else out[j] = cosU8(v, i * dim, q, dim, qq);
  }
};

/** Runs the kernel for the batch's element type over items [from, to). */
function runKernel(batch: ItemBatch, q: Float32Array, metric: number, qq: number, from: number, to: number, out: Float64Array, live: Uint8Array | null): void {
  switch (batch.type) {
    case 'float32':
      return kernelF32(batch.vectors as Float32Array, q, batch.dim, metric, qq, from, to, out, live);
    case 'float16':
      return kernelF16(batch.vectors as Uint16Array, q, batch.dim, metric, qq, from, to, out, live);
    case 'int8':
      return kernelI8(batch.vectors as Int8Array, q, batch.dim, metric, qq, from, to, out, live);
    case 'uint8':
      return kernelU8(batch.vectors as Uint8Array, q, batch.dim, metric, qq, from, to, out, live);
    default:
      throw new Error(`cannot score a ${batch.kind} batch`);
  }
}

/** Checks a query against a dimension (and COSINE's non-zero norm); returns its squared norm. */
function checkQuery(query: Float32Array, dim: number, metric: Metric): number {
  if (!(query instanceof Float32Array)) throw new KvError('INVALID_ARGUMENT', 'query must be a Float32Array');
  if (query.length !== dim) throw new KvError('INVALID_ARGUMENT', `query has ${query.length} dimensions, the list has ${dim}`);
  let qq = 0;
  for (let d = 0; d < dim; d++) {
    const x = query[d]!;
    if (!Number.isFinite(x)) throw new KvError('INVALID_ARGUMENT', `query[${d}] = ${x} is not a finite number`);
    qq += x * x;
  }
  if (metric === 'COSINE' && qq === 0) throw new KvError('INVALID_ARGUMENT', 'query has zero norm; COSINE is undefined for it');
  return qq;
}

/**
 * Distances (lower is better) of every item of an item batch to `query`, into `out` (allocated
 * when not given). Synchronous: for whole posting lists use `scoreSegments`, which yields.
 */
export function scoreBatch(batch: ItemBatch, query: Float32Array, metric: Metric, out?: Float64Array): Float64Array {
  if (batch.kind !== 'items') throw new RangeError('only an item batch can be scored');
  const code = metricCodes[metric];
  if (code === undefined) throw new RangeError(`unknown metric '${String(metric)}' (L2, IP or COSINE)`);
  const qq = checkQuery(query, batch.dim, metric);
  const result = out ?? new Float64Array(batch.count);
  if (result.length < batch.count) throw new RangeError(`out holds ${result.length} distances, the batch has ${batch.count} items`);
  runKernel(batch, query, code, qq, 0, batch.count, result, null);
  return result;
}

// ---------------------------------------------------------------------------------------------
// cooperative scan of a posting list

/** Elements scored between two looks at the clock (~0.1 ms of work). */
const CHECK_ELEMENTS = 131_072;
/** Items scored per kernel call at most (the size of the scratch arrays). */
const CHUNK_ITEMS = 1024;

/** Options of `scoreSegments`. */
export interface ScoreOptions {
  /** Ids dead regardless of the value's own delete batches (strings are UTF-8). */
  deleted?: Iterable<Buffer | string>;
  /** Only items whose payload starts with these bytes are candidates. */
  filterPayloadPrefix?: Buffer;
  /** Work between two yields, in ms (default 2). */
  budgetMs?: number;
  /** Monotonic ms clock (default performance.now). */
  clock?: () => number;
  /** Called (and awaited) when the budget is spent, e.g. `() => new Promise((r) => setImmediate(r))`. */
  yieldFn: () => Promise<void>;
}

/** What `scoreSegments` found. */
export interface ScoreResult {
  /** Best first; `id` and `payload` are views into the value's bytes. */
  hits: SearchHit[];
  /** Items whose distance was computed. */
  scanned: number;
  /** Items ignored because their batch's type or dim differs from the list's declared shape. */
  skippedShape: number;
  /** Times the scan yielded to the event loop. */
  yields: number;
}

/**
 * Scores every live item of a posting list's batches (in append order) against `query` and
 * returns the k best. An item is dead when a later delete batch of the same value names its id
 * or `deleted` holds it; it is live again if appended after that delete. Item batches whose
 * shape differs from the first item batch (possible only after concurrent first appends on
 * different replicas merge) are skipped and counted, so every replica answers alike.
 * Checks the clock every ~0.1 ms of work and awaits `yieldFn` once `budgetMs` is spent.
 */
export async function scoreSegments(batches: readonly ItemBatch[], query: Float32Array, metric: Metric, k: number, options: ScoreOptions): Promise<ScoreResult> {
  const code = metricCodes[metric];
  if (code === undefined) throw new RangeError(`unknown metric '${String(metric)}' (L2, IP or COSINE)`);
  checkK(k);
  const budgetMs = options.budgetMs ?? 2;
  if (!(budgetMs >= 0)) throw new RangeError(`budgetMs must be >= 0, got ${budgetMs}`);
  const clock = options.clock ?? (() => performance.now());
  const yieldFn = options.yieldFn;
  if (typeof yieldFn !== 'function') throw new RangeError('yieldFn is required');
  const prefix = options.filterPayloadPrefix;

  const shape = batches.find((b) => b.kind === 'items');
  const result: ScoreResult = { hits: [], scanned: 0, skippedShape: 0, yields: 0 };
  if (shape === undefined) return result;
  const qq = checkQuery(query, shape.dim, metric);

  // Deletes: an id is dead in batch b when its last delete batch comes after b. The hash set
  // lets live items pass without building a string for their id.
  const lastDelete = new Map<string, number>();
  const alwaysDead = new Set<string>();
  const deleteHashes = new Set<number>();
  for (let b = 0; b < batches.length; b++) {
    const batch = batches[b]!;
    if (batch.kind !== 'deletes') continue;
    for (let i = 0; i < batch.count; i++) {
      lastDelete.set(batch.ids(i).toString('latin1'), b);
      deleteHashes.add(batch.idHash(i));
    }
  }
  for (const id of options.deleted ?? []) {
    const bytes = typeof id === 'string' ? Buffer.from(id) : id;
    alwaysDead.add(bytes.toString('latin1'));
    deleteHashes.add(idHash(bytes));
  }
  const hasDeletes = deleteHashes.size > 0;
  const masked = hasDeletes || prefix !== undefined;

  const heap = new TopK(k);
  const out = new Float64Array(CHUNK_ITEMS);
  const live = new Uint8Array(CHUNK_ITEMS);
  const itemsPerCheck = Math.max(1, Math.min(CHUNK_ITEMS, Math.floor(CHECK_ELEMENTS / shape.dim)));
  let sinceCheck = 0;
  let sliceStart = clock();

  for (let b = 0; b < batches.length; b++) {
    const batch = batches[b]!;
    if (batch.kind !== 'items') continue;
    if (batch.type !== shape.type || batch.dim !== shape.dim) {
      result.skippedShape += batch.count;
      continue;
    }
    for (let from = 0; from < batch.count; from += itemsPerCheck) {
      const to = Math.min(batch.count, from + itemsPerCheck);
      if (masked) {
        for (let i = from; i < to; i++) {
          let ok = prefix === undefined || batch.payloadStartsWith(i, prefix);
          if (ok && hasDeletes && deleteHashes.has(batch.idHash(i))) {
            const name = batch.ids(i).toString('latin1');
            ok = !alwaysDead.has(name) && !((lastDelete.get(name) ?? -1) > b);
          }
          live[i - from] = ok ? 1 : 0;
          if (ok) result.scanned++;
        }
      } else {
        result.scanned += to - from;
      }
      runKernel(batch, query, code, qq, from, to, out, masked ? live : null);
      for (let i = from; i < to; i++) {
        const d = out[i - from]!;
        // NaN (masked out) fails the comparison.
        if (d <= heap.threshold) heap.offer(d, b, i);
      }
      sinceCheck += to - from;
      if (sinceCheck >= itemsPerCheck) {
        sinceCheck = 0;
        if (clock() - sliceStart >= budgetMs) {
          await yieldFn();
          result.yields++;
          sliceStart = clock();
        }
      }
    }
  }

  for (const e of heap.results()) {
    const batch = batches[e.batch]!;
    const hit: SearchHit = { id: batch.ids(e.item), distance: e.distance, score: distanceToScore(metric, e.distance) };
    if (batch.hasPayloads) hit.payload = batch.payload(e.item);
    result.hits.push(hit);
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// kernel rate

/** A synthetic item batch of `items` random vectors (seeded), for benchmarks and tests. */
export function syntheticBatch(type: ElementType, dim: number, items: number, seed = 1): Buffer {
  const rnd = new Random(seed);
  const list = [];
  for (let i = 0; i < items; i++) {
    const vector = new Array<number>(dim);
    for (let d = 0; d < dim; d++) {
      const u = rnd.nextDouble();
      vector[d] = type === 'int8' ? Math.floor(u * 256) - 128 : type === 'uint8' ? Math.floor(u * 256) : u * 2 - 1;
    }
    list.push({ id: Buffer.from(`v${i}`), vector });
  }
  return encodeItemBatch({ type, dim, items: list });
}

/**
 * Vectors scored per second by the kernel for `type` and `dim` over one batch of `items`
 * (synthetic, seeded), measured for about `durationMs` after a warm-up. Not a test: the benchmark
 * reports it.
 */
export function measureKernelRate(type: ElementType, dim: number, items: number, metric: Metric = 'L2', durationMs = 300): number {
  const [batch] = parseSegments(syntheticBatch(type, dim, items));
  const rnd = new Random(2);
  const query = new Float32Array(dim);
  for (let d = 0; d < dim; d++) query[d] = rnd.nextDouble() * 2 - 1;
  const out = new Float64Array(items);
  for (let w = 0; w < 3; w++) scoreBatch(batch!, query, metric, out);
  let scored = 0;
  const start = performance.now();
  let elapsed = 0;
  do {
    scoreBatch(batch!, query, metric, out);
    scored += items;
    elapsed = performance.now() - start;
  } while (elapsed < durationMs);
  return (scored / elapsed) * 1000;
}
