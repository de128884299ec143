/**
 * SPANN-style search on ragkv (example). For each variant: generate a seeded clustered data
 * set, train ~100-vectors-per-list centroids with k-means, store one posting list per centroid
 * under `list:<c>` with VADD (boundary vectors go to two lists), then for each held-out query
 * route to the nearest `nprobe` centroids in the client and run one VSEARCH over those lists.
 * Reports recall@k against exact brute force and queries/s.
 *
 *   node dist/examples/spann/main.js [--port 6380] [--variants u8x128,f32x768] [--nprobe 32] ...
 *
 * Without --port it starts a ragkv node itself (temp dir, --durability none).
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { queryBlob, row } from './dataset.js';
import { nearestCentroids, recallAtK } from './kmeans.js';
import { type RagkvProcess, startRagkv } from './ragkv-process.js';
import { type SpannIndex, type SpannSpec, VARIANTS, buildIndex, groundTruth, listKey, loadLists, runConcurrent, vsearch } from './spann.js';

const HELP = `usage: node dist/examples/spann/main.js [options]

  --port P          ragkv RESP port to use (default: start a ragkv node in a temp dir)
  --host H          ragkv host (default 127.0.0.1)
  --variants LIST   u8x128 (100k x 128-d uint8, 1000 lists) and/or f32x768 (20k x 768-d
                    float32, 170 lists) (default both)
  --count N         base vectors (default per variant)
  --lists N         centroids / posting lists (default per variant)
  --queries N       held-out queries (default 500 / 300)
  --nprobe LIST     lists searched per query; several values = a sweep (default 32)
  --k K             recall@K and VSEARCH k (default 10)
  --fetch-k K       VSEARCH k (default: --k); VSEARCH returns each id once (a boundary vector's
                    copies count once), so recall@K needs no more than K
  --concurrency C   queries in flight (default 8)
  --seed S          data seed (default per variant)
  --load MODE       vadd (default) or append (APPEND of the encoded item batch)
  --skip-load       the lists are already loaded (same seed and sizes)
  --help
`;

const log = (line: string): void => {
  process.stderr.write(`[${(performance.now() / 1000).toFixed(1).padStart(6)}s] ${line}\n`);
};

interface RunResult {
  variant: string;
  lists: number;
  nprobe: number;
  queries: number;
  recall: number;
  qps: number;
  p50Ms: number;
  p99Ms: number;
  degraded: number;
  duplicates: number;
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

async function searchAll(redis: Redis, index: SpannIndex, truth: Int32Array[], nprobe: number, k: number, fetchK: number, concurrency: number): Promise<RunResult> {
  const { spec, data, km } = index;
  const nq = data.queries.count;
  const lat = new Float64Array(nq);
  let recallSum = 0;
  let degraded = 0;
  let duplicates = 0;
  const start = performance.now();
  await runConcurrent(nq, concurrency, async (q) => {
    const t0 = performance.now();
    const query = row(data.queries, q);
    const keys = nearestCentroids(query, km.centroids, km.k, km.dim, nprobe).map((c) => listKey(spec, c));
    const reply = await vsearch(redis, fetchK, queryBlob(query), keys);
    lat[q] = performance.now() - t0;
    if (reply.degraded) degraded++;
    const ids = reply.hits.map((h) => Number(h.id));
    const top = ids.slice(0, k);
    duplicates += top.length - new Set(top).size;
    recallSum += recallAtK(ids, truth[q]!, k);
  });
  const seconds = (performance.now() - start) / 1000;
  lat.sort();
  return {
    variant: spec.name, lists: index.lists.length, nprobe, queries: nq, recall: recallSum / nq, qps: nq / seconds,
    p50Ms: percentile(lat, 0.5), p99Ms: percentile(lat, 0.99), degraded, duplicates,
  };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' }, host: { type: 'string', default: '127.0.0.1' },
      variants: { type: 'string', default: 'u8x128,f32x768' },
      count: { type: 'string' }, lists: { type: 'string' }, queries: { type: 'string' },
      nprobe: { type: 'string', default: '32' }, k: { type: 'string', default: '10' }, 'fetch-k': { type: 'string' },
      concurrency: { type: 'string', default: '8' }, seed: { type: 'string' },
      load: { type: 'string', default: 'vadd' }, 'skip-load': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const int = (s: string | undefined, what: string): number | undefined => {
    if (s === undefined) return undefined;
    const n = Number(s);
    if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`--${what} must be a positive integer, got '${s}'`);
    return n;
  };
  const k = int(values.k, 'k')!;
  const fetchK = int(values['fetch-k'], 'fetch-k') ?? k;
  const concurrency = int(values.concurrency, 'concurrency')!;
  const nprobes = values.nprobe.split(',').map((s) => int(s, 'nprobe')!);
  if (values.load !== 'vadd' && values.load !== 'append') throw new RangeError(`--load must be vadd or append, got '${values.load}'`);
  const specs: SpannSpec[] = values.variants.split(',').map((v) => {
    const base = VARIANTS[v];
    if (!base) throw new RangeError(`unknown variant '${v}' (${Object.keys(VARIANTS).join(', ')})`);
    return {
      ...base,
      count: int(values.count, 'count') ?? base.count,
      lists: int(values.lists, 'lists') ?? base.lists,
      queries: int(values.queries, 'queries') ?? base.queries,
      seed: int(values.seed, 'seed') ?? base.seed,
    };
  });

  let server: RagkvProcess | null = null;
  let port = int(values.port, 'port');
  if (port === undefined) {
    server = await startRagkv();
    port = server.port;
    log(`started ragkv (pid ${server.proc.pid}) on port ${port}, data in ${server.dataDir}`);
  }
  const redis = new Redis({ host: values.host, port, lazyConnect: true, maxRetriesPerRequest: 0, enableAutoPipelining: false });
  await redis.connect();
  const results: RunResult[] = [];
  try {
    for (const spec of specs) {
      const index = buildIndex(spec, log);
      const t = performance.now();
      const truth = groundTruth(index, k);
      log(`${spec.name}: exact top-${k} of ${spec.queries} queries by brute force in ${((performance.now() - t) / 1000).toFixed(1)}s`);
      if (!values['skip-load']) await loadLists(redis, index, values.load, 32, log);
      for (const nprobe of nprobes) {
        // One short warm-up pass (JIT, page cache), not counted.
        await searchAll(redis, { ...index, data: { ...index.data, queries: { ...index.data.queries, count: Math.min(50, index.data.queries.count) } } }, truth, nprobe, k, fetchK, concurrency);
        const r = await searchAll(redis, index, truth, nprobe, k, fetchK, concurrency);
        results.push(r);
        log(`${spec.name}: nprobe ${nprobe}: recall@${k} ${r.recall.toFixed(4)}, ${r.qps.toFixed(0)} queries/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms, degraded ${r.degraded}, duplicate ids in the first ${k} hits ${r.duplicates}`);
      }
    }
  } finally {
    redis.disconnect();
    await server?.stop();
  }
  const lines = [
    `| variant | vectors | lists | nprobe | VSEARCH k | queries | recall@${k} | queries/s (concurrency ${concurrency}) | p50 ms | p99 ms | degraded |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of results) {
    const spec = specs.find((s) => s.name === r.variant)!;
    lines.push(`| ${r.variant} | ${spec.count} x ${spec.dim}-d ${spec.type} | ${r.lists} | ${r.nprobe} | ${fetchK} | ${r.queries} | ${r.recall.toFixed(4)} | ${r.qps.toFixed(0)} | ${r.p50Ms.toFixed(2)} | ${r.p99Ms.toFixed(2)} | ${r.degraded} |`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  const worst = Math.min(...results.filter((r) => r.nprobe === Math.max(...nprobes)).map((r) => r.recall));
  if (worst < 0.9) log(`recall@${k} ${worst.toFixed(4)} is below 0.9: raise --nprobe`);
  return 0;
}

main().then(
  (code) => (process.exitCode = code),
  (err) => {
    process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
