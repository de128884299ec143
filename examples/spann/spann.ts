/**
 * SPANN-style index on ragkv, the parts the example and the benchmark share: build (data,
 * k-means centroids, posting lists with boundary replication), the posting lists' keys and
 * bytes, loading them with VADD, searching them with VSEARCH, and counting socket bytes.
 */
import { performance } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import { encodeItemBatch } from '../../src/compute/vector-items.js';
import { type ClusteredData, type DataType, type Dataset, generateClustered, row, rowBlob } from './dataset.js';
import { type KMeansResult, assignWithReplication, bruteForceKnn, kmeans, splitLargeLists } from './kmeans.js';

/** What to build. */
export interface SpannSpec {
  name: string;
  type: DataType;
  dim: number;
  count: number;
  queries: number;
  blobs: number;
  /** Per-blob standard deviation range (see `ClusteredSpec.spread`); default the type's. */
  spread?: [number, number];
  /** Number of centroids = posting lists. */
  lists: number;
  seed: number;
  sampleSize: number;
  iterations: number;
  maxReplicas: number;
  epsilon: number;
  /**
   * Lists longer than this are split (SPFresh's split) into lists of about count/lists
   * vectors; 0 = never.
   */
  maxListSize: number;
  /** Key of list c is `${keyPrefix}${c}`. */
  keyPrefix: string;
}

/** The two variants of the issue: SIFT-like 128-d uint8 and embedding-like 768-d float32. */
export const VARIANTS: Record<string, SpannSpec> = {
  u8x128: {
    name: 'u8x128', type: 'uint8', dim: 128, count: 100_000, queries: 500, blobs: 1000, lists: 1000,
    seed: 42, sampleSize: 20_000, iterations: 8, maxReplicas: 2, epsilon: 0.1, maxListSize: 150, keyPrefix: 'list:',
  },
  f32x768: {
    name: 'f32x768', type: 'float32', dim: 768, count: 20_000, queries: 300, blobs: 170, lists: 170,
    seed: 43, sampleSize: 20_000, iterations: 8, maxReplicas: 2, epsilon: 0.1, maxListSize: 180, keyPrefix: 'list768:',
  },
};

/** A built index (in memory, before loading). */
export interface SpannIndex {
  spec: SpannSpec;
  data: ClusteredData;
  km: KMeansResult;
  /** Row indices of each posting list. */
  lists: Int32Array[];
  /** Extra copies made by boundary replication. */
  replicas: number;
  seconds: { generate: number; kmeans: number; assign: number };
}

type Log = (line: string) => void;

/** Generates the data, trains centroids and assigns every vector (with replication). */
export function buildIndex(spec: SpannSpec, log: Log = () => {}): SpannIndex {
  let t = performance.now();
  const lap = (): number => {
    const now = performance.now();
    const s = (now - t) / 1000;
    t = now;
    return s;
  };
  const data = generateClustered({ count: spec.count, queries: spec.queries, dim: spec.dim, blobs: spec.blobs, type: spec.type, seed: spec.seed, ...(spec.spread ? { spread: spec.spread } : {}) });
  const generate = lap();
  log(`${spec.name}: generated ${spec.count} x ${spec.dim}-d ${spec.type} vectors from ${spec.blobs} blobs (+${spec.queries} held-out queries) in ${generate.toFixed(1)}s`);
  const km = kmeans(data.base.vectors, spec.count, spec.dim, spec.lists, {
    seed: spec.seed, sampleSize: spec.sampleSize, iterations: spec.iterations,
    onIteration: (it, inertia) => log(`${spec.name}: k-means ${it === 0 ? 'k-means++ seeding' : `iteration ${it}/${spec.iterations}`}: sample inertia ${inertia.toExponential(4)}`),
  });
  const kmSeconds = lap();
  log(`${spec.name}: k-means (k=${spec.lists}, sample ${km.sampleSize}) in ${kmSeconds.toFixed(1)}s`);
  const assigned = assignWithReplication(data.base.vectors, spec.count, km.centroids, spec.lists, spec.dim, { maxReplicas: spec.maxReplicas, epsilon: spec.epsilon });
  const replicas = assigned.replicas;
  let lists = assigned.lists;
  if (spec.maxListSize > 0) {
    const target = Math.max(1, Math.round(spec.count / spec.lists));
    const split = splitLargeLists(data.base.vectors, km.centroids, km.k, spec.dim, lists, spec.maxListSize, target, spec.seed);
    if (split.splits > 0) log(`${spec.name}: split ${split.splits} lists longer than ${spec.maxListSize} into lists of ~${target}: ${km.k} -> ${split.k} lists`);
    km.centroids = split.centroids;
    km.k = split.k;
    lists = split.lists;
  }
  const assign = lap();
  const sizes = lists.map((l) => l.length).sort((a, b) => a - b);
  log(`${spec.name}: assigned in ${assign.toFixed(1)}s; ${replicas} boundary copies (${((100 * replicas) / spec.count).toFixed(1)}%); list sizes min ${sizes[0]} median ${sizes[sizes.length >> 1]} max ${sizes[sizes.length - 1]}`);
  return { spec, data, km, lists, replicas, seconds: { generate, kmeans: kmSeconds, assign } };
}

/** Exact top-k rows for every query (brute force over the base set). */
export function groundTruth(index: SpannIndex, k: number): Int32Array[] {
  const { base, queries } = index.data;
  return bruteForceKnn(base.vectors, base.count, queries.vectors, queries.count, base.dim, k);
}

/** A row's item id: its index in decimal. */
export const itemId = (i: number): Buffer => Buffer.from(String(i));

/** Key of posting list c. */
export const listKey = (spec: SpannSpec, c: number): string => `${spec.keyPrefix}${c}`;

/** VADD arguments (after the command name) for rows `members` of `ds` into `key`. */
export function vaddArgs(key: string, ds: Dataset, members: ArrayLike<number>): (string | Buffer)[] {
  const args: (string | Buffer)[] = [key, ds.type, String(ds.dim)];
  for (let j = 0; j < members.length; j++) args.push('ITEM', itemId(members[j]!), rowBlob(ds, members[j]!));
  return args;
}

/** The bytes one VADD of `members` appends: one item batch (what MGET returns for a list loaded in one VADD). */
export function encodeList(ds: Dataset, members: ArrayLike<number>): Buffer {
  const items = [];
  for (let j = 0; j < members.length; j++) items.push({ id: itemId(members[j]!), vector: row(ds, members[j]!) });
  return encodeItemBatch({ type: ds.type, dim: ds.dim, items });
}

/**
 * Loads every posting list into ragkv: DEL, then one VADD per list (or APPEND of the encoded
 * batch with `mode: 'append'`), at most `window` commands in flight on the connection.
 */
export async function loadLists(redis: Redis, index: SpannIndex, mode: 'vadd' | 'append' = 'vadd', window = 32, log: Log = () => {}): Promise<number> {
  const start = performance.now();
  const { spec, lists, data } = index;
  const inflight = new Set<Promise<unknown>>();
  let bytes = 0;
  for (let c = 0; c < lists.length; c++) {
    const key = listKey(spec, c);
    const members = lists[c]!;
    const run = async (): Promise<void> => {
      await redis.del(key);
      if (members.length === 0) return;
      if (mode === 'append') {
        const value = encodeList(data.base, members);
        bytes += value.length;
        await redis.append(key, value);
      } else {
        const args = vaddArgs(key, data.base, members);
        bytes += args.reduce<number>((n, a) => n + a.length, 0);
        const live = await redis.call('VADD', ...args);
        if (Number(live) !== members.length) throw new Error(`VADD ${key}: list holds ${String(live)} items, expected ${members.length}`);
      }
    };
    const p: Promise<unknown> = run().finally(() => inflight.delete(p));
    inflight.add(p);
    if (inflight.size >= window) await Promise.race(inflight);
    if ((c + 1) % 200 === 0) log(`${spec.name}: loaded ${c + 1}/${lists.length} lists`);
  }
  await Promise.all(inflight);
  const seconds = (performance.now() - start) / 1000;
  log(`${spec.name}: loaded ${lists.length} lists (${(bytes / 1e6).toFixed(1)} MB of vectors and ids) with ${mode.toUpperCase()} in ${seconds.toFixed(1)}s`);
  return seconds;
}

/** One VSEARCH hit. */
export interface VHit {
  key: string;
  id: string;
  score: number;
}

/** A parsed VSEARCH reply. */
export interface VSearchReply {
  hits: VHit[];
  degraded: boolean;
  skipped: string[];
}

/** Parses the RESP2 reply `["results", [[key, id, score], ...], "degraded", 0|1, "skipped", [...]]`. */
export function parseVSearchReply(reply: unknown): VSearchReply {
  if (!Array.isArray(reply)) throw new Error(`VSEARCH reply is not an array: ${String(reply)}`);
  const out: VSearchReply = { hits: [], degraded: false, skipped: [] };
  for (let i = 0; i + 1 < reply.length; i += 2) {
    const name = String(reply[i]);
    const value = reply[i + 1];
    if (name === 'results') {
      for (const h of value as unknown[][]) out.hits.push({ key: String(h[0]), id: String(h[1]), score: Number(h[2]) });
    } else if (name === 'degraded') {
      out.degraded = Number(value) === 1 || value === true;
    } else if (name === 'skipped') {
      out.skipped = (value as unknown[]).map(String);
    }
  }
  return out;
}

/** VSEARCH k L2 over `keys`. */
export async function vsearch(redis: Redis, k: number, query: Buffer, keys: readonly string[]): Promise<VSearchReply> {
  const reply = await redis.call('VSEARCH', String(k), 'L2', query, 'KEYS', String(keys.length), ...keys);
  return parseVSearchReply(reply);
}

/** Bytes read and written so far on the connection's socket. */
export function socketBytes(redis: Redis): { read: number; written: number } {
  const s = (redis as unknown as { stream?: { bytesRead: number; bytesWritten: number } }).stream;
  return { read: s?.bytesRead ?? NaN, written: s?.bytesWritten ?? NaN };
}

/** Runs `task(i)` for i in 0..n-1 with at most `concurrency` in flight. */
export async function runConcurrent(n: number, concurrency: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
}
