/**
 * `npm run bench:vsearch`: near-data vector search against the two ways of doing it without
 * near-data compute, on the same posting lists and the same queries, in one run:
 *
 *   (a) ragkv VSEARCH: the query goes to the data; each list is scored where it is stored and
 *       only the top-k come back.
 *   (b) TiKV-style: MGET the same lists' raw values and score them in the client with the same
 *       kernels (`parseSegments` + `scoreSegments` + `mergeTopK`).
 *   (c) RocksDB-style: the same lists' bytes in a local embedded lmdb-js database, read with
 *       `getBinaryFast` and scored in process with the same kernels.
 *
 * Posting lists of SPFresh's sizes, built SPANN-style (examples/spann): 100k x 128-d uint8
 * vectors in 1000 lists (~100 per list), and 20k x 768-d float32 in 170 lists (~120 per list);
 * each query searches its 32 nearest lists for the top 10. Routing (nearest centroids) is
 * computed once before the timed runs and is the same for all three paths.
 *
 * Reports queries/s, p50/p99 latency, bytes moved per query (request + reply bytes on the
 * client's socket for (a) and (b); bytes read from LMDB for (c), none over a network), CPU per
 * query, and the scoring kernel's rate. Not a test; never run in CI. `--help` lists the options.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { open } from 'lmdb';
import { type KeyedHit, type SearchHit, mergeTopK } from '../../src/compute/topk.js';
import { parseSegments } from '../../src/compute/vector-items.js';
import { measureKernelRate, scoreSegments } from '../../src/compute/vector-score.js';
import { queryBlob, row } from '../../examples/spann/dataset.js';
import { nearestCentroids } from '../../examples/spann/kmeans.js';
import { type RagkvProcess, startRagkv } from '../../examples/spann/ragkv-process.js';
import { type SpannSpec, VARIANTS, buildIndex, encodeList, listKey, loadLists, socketBytes, vsearch } from '../../examples/spann/spann.js';
import {
  LatencyRecorder, TICKS_PER_SEC, fmtInt, fmtNum, fmtRatio, machineInfo, machineLine, makeTempDir, markdownTable, note, nowNs, phase,
  procCpuTicks, removeDir, waitForQuiet, writeResults,
} from './common.js';

const HELP = `usage: npm run bench:vsearch -- [options]

  --port P          benchmark an already running ragkv on P (default: start one, --durability none)
  --host H          its host (default 127.0.0.1)
  --variants LIST   u8x128 and/or f32x768 (default both)
  --nprobe N        lists per query (default 32)
  --k K             top-k (default 10)
  --queries N       distinct queries, cycled (default 500 for u8x128, 300 for f32x768)
  --seconds S       timed run per path and variant (default 8; --quick: 2)
  --warmup S        untimed run before each (default 1)
  --concurrency C   queries in flight for (a) and (b) (default 8); (c) runs one at a time in process
  --paths LIST      any of a,b,c (default a,b,c)
  --load MODE       vadd (default) or append (APPEND of the encoded item batch, for a server
                    without VADD; VSEARCH needs a server with the vector commands either way)
  --skip-load       the lists are already in ragkv (same seeds and sizes)
  --check N         compare the three paths' answers on the first N queries (default 50)
  --wait-quiet S    wait up to S s for other work on the machine to stop first (default 30)
  --quick           shorter runs, for checking that the benchmark works
  --help
`;

type PathName = 'a' | 'b' | 'c';
const PATH_LABEL: Record<PathName, string> = {
  a: '(a) ragkv VSEARCH',
  b: '(b) MGET + score in client',
  c: '(c) local lmdb-js + score in process',
};

interface PathResult {
  variant: string;
  path: PathName;
  queries: number;
  seconds: number;
  qps: number;
  p50Ms: number;
  p99Ms: number;
  bytesPerQuery: number;
  bytesUpPerQuery: number;
  bytesDownPerQuery: number;
  clientCpuMsPerQuery: number;
  serverCpuMsPerQuery: number | null;
  degraded: number;
}

interface Query {
  vector: Float32Array;
  blob: Buffer;
  keys: string[];
  keyBufs: Buffer[];
}

const noYield = { yieldFn: async (): Promise<void> => {}, budgetMs: Infinity };

/** Scores raw posting-list values with the server's kernels; ids are copied (values may be reused buffers). */
async function scoreValues(keys: readonly string[], get: (i: number) => Buffer | null | undefined, q: Float32Array, k: number): Promise<{ hits: KeyedHit[]; bytes: number }> {
  const lists: KeyedHit[][] = [];
  let bytes = 0;
  for (let i = 0; i < keys.length; i++) {
    const value = get(i);
    if (!value || value.length === 0) continue;
    bytes += value.length;
    const r = await scoreSegments(parseSegments(value), q, 'L2', k, noYield);
    lists.push(r.hits.map((h: SearchHit) => ({ key: keys[i]!, id: Buffer.from(h.id), distance: h.distance, score: h.score })));
  }
  return { hits: mergeTopK(lists, k), bytes };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' }, host: { type: 'string', default: '127.0.0.1' },
      variants: { type: 'string', default: 'u8x128,f32x768' },
      nprobe: { type: 'string', default: '32' }, k: { type: 'string', default: '10' },
      queries: { type: 'string' }, seconds: { type: 'string' }, warmup: { type: 'string', default: '1' },
      concurrency: { type: 'string', default: '8' }, paths: { type: 'string', default: 'a,b,c' },
      load: { type: 'string', default: 'vadd' }, 'skip-load': { type: 'boolean', default: false },
      check: { type: 'string', default: '50' }, 'wait-quiet': { type: 'string', default: '30' },
      quick: { type: 'boolean', default: false }, help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const num = (s: string | undefined, what: string, min = 1): number | undefined => {
    if (s === undefined) return undefined;
    const n = Number(s);
    if (!Number.isFinite(n) || n < min) throw new RangeError(`--${what} must be a number >= ${min}, got '${s}'`);
    return n;
  };
  const nprobe = num(values.nprobe, 'nprobe')!;
  const k = num(values.k, 'k')!;
  const seconds = num(values.seconds, 'seconds', 0.1) ?? (values.quick ? 2 : 8);
  const warmup = num(values.warmup, 'warmup', 0)!;
  const concurrency = num(values.concurrency, 'concurrency')!;
  const checkN = num(values.check, 'check', 0)!;
  const paths = values.paths.split(',').map((p) => {
    if (p !== 'a' && p !== 'b' && p !== 'c') throw new RangeError(`--paths: unknown path '${p}' (a, b, c)`);
    return p;
  });
  if (values.load !== 'vadd' && values.load !== 'append') throw new RangeError(`--load must be vadd or append, got '${values.load}'`);
  const specs: SpannSpec[] = values.variants.split(',').map((v) => {
    const base = VARIANTS[v];
    if (!base) throw new RangeError(`unknown variant '${v}' (${Object.keys(VARIANTS).join(', ')})`);
    return { ...base, queries: num(values.queries, 'queries') ?? base.queries };
  });

  const machine = machineInfo();
  note(`machine: ${machineLine(machine)}`);

  // Kernel rate first, on a quiet process.
  const kernel = [
    { type: 'uint8' as const, dim: 128, items: 100 },
    { type: 'float32' as const, dim: 768, items: 120 },
  ].map((s) => {
    const rate = measureKernelRate(s.type, s.dim, s.items, 'L2', values.quick ? 200 : 1000);
    note(`kernel: ${s.type} ${s.dim}-d, L2, batches of ${s.items}: ${fmtInt(rate)} vectors/s on one core (${fmtNum((rate * s.dim) / 1e9, 2)} G elements/s)`);
    return { ...s, vectorsPerSec: rate };
  });

  let server: RagkvProcess | null = null;
  let port = num(values.port, 'port');
  if (port === undefined) {
    const done = phase('starting ragkv (--durability none)');
    server = await startRagkv();
    port = server.port;
    done(`pid ${server.proc.pid}, RESP port ${port}`);
  }
  const connect = async (): Promise<Redis> => {
    const r = new Redis({ host: values.host, port, lazyConnect: true, maxRetriesPerRequest: 0, enableAutoPipelining: false });
    await r.connect();
    return r;
  };
  const loader = await connect();
  const lmdbDir = makeTempDir('vsearch-lmdb');
  const results: PathResult[] = [];
  const checks: { variant: string; queries: number; agreeAB: number; agreeAC: number; recallVsTruthNote: string }[] = [];
  const listStats: Record<string, { lists: number; medianItems: number; meanItems: number; bytesPerList: number; bytesPerQueryLists: number }> = {};
  try {
    for (const spec of specs) {
      const build = phase(`${spec.name}: building posting lists`);
      const index = buildIndex(spec, (l) => note(`  ${l}`));
      build();
      if (!values['skip-load']) await loadLists(loader, index, values.load, 32, (l) => note(`  ${l}`));

      // The raw values as ragkv stores them (MGET), into the local lmdb database for (c).
      const keys = index.lists.map((_, c) => listKey(spec, c));
      const db = open<Buffer, Buffer>({ path: path.join(lmdbDir, spec.name), keyEncoding: 'binary', encoding: 'binary', noSync: true });
      mkdirSync(lmdbDir, { recursive: true });
      let same = 0;
      let total = 0;
      for (let from = 0; from < keys.length; from += 100) {
        const chunk = keys.slice(from, from + 100);
        const vals = await loader.mgetBuffer(...chunk);
        for (let j = 0; j < chunk.length; j++) {
          const c = from + j;
          const local = index.lists[c]!.length ? encodeList(index.data.base, index.lists[c]!) : Buffer.alloc(0);
          const v = vals[j] ?? local;
          if (v.equals(local)) same++;
          total += v.length;
          await db.put(Buffer.from(chunk[j]!), v);
        }
      }
      await db.flushed;
      const sizes = index.lists.map((l) => l.length).sort((a, b) => a - b);
      note(`  ${spec.name}: ${keys.length} lists, ${fmtInt(total)} bytes in ragkv's values; ${same}/${keys.length} equal to one encodeItemBatch of the list; copied into ${path.join(lmdbDir, spec.name)}`);

      // Queries: the nprobe nearest lists of each held-out vector (routing done once, untimed).
      const queries: Query[] = [];
      for (let q = 0; q < index.data.queries.count; q++) {
        const vector = Float32Array.from(row(index.data.queries, q));
        const qkeys = nearestCentroids(vector, index.km.centroids, index.km.k, index.km.dim, nprobe).map((c) => listKey(spec, c));
        queries.push({ vector, blob: queryBlob(vector), keys: qkeys, keyBufs: qkeys.map((s) => Buffer.from(s)) });
      }
      let listBytesPerQuery = 0;
      for (const q of queries) for (const key of q.keys) listBytesPerQuery += (db.getBinaryFast(Buffer.from(key))?.length ?? 0);
      listBytesPerQuery /= queries.length;
      listStats[spec.name] = {
        lists: keys.length, medianItems: sizes[sizes.length >> 1]!, meanItems: sizes.reduce((a, b) => a + b, 0) / sizes.length,
        bytesPerList: total / keys.length, bytesPerQueryLists: listBytesPerQuery,
      };

      const redisA = await connect();
      const redisB = await connect();
      const runA = async (q: Query): Promise<KeyedHit[]> => {
        const r = await vsearch(redisA, k, q.blob, q.keys);
        if (r.degraded) degradedCount++;
        return r.hits.map((h) => ({ key: h.key, id: Buffer.from(h.id), distance: h.score, score: h.score }));
      };
      const runB = async (q: Query): Promise<KeyedHit[]> => {
        const vals = await redisB.mgetBuffer(...q.keys);
        return (await scoreValues(q.keys, (i) => vals[i], q.vector, k)).hits;
      };
      let lmdbBytes = 0;
      const runC = async (q: Query): Promise<KeyedHit[]> => {
        const r = await scoreValues(q.keys, (i) => db.getBinaryFast(q.keyBufs[i]!), q.vector, k);
        lmdbBytes += r.bytes;
        return r.hits;
      };
      const runners: Record<PathName, (q: Query) => Promise<KeyedHit[]>> = { a: runA, b: runB, c: runC };
      let degradedCount = 0;

      // Same answers? (key, id) of the top k, per path, on the first queries.
      if (checkN > 0 && paths.length > 1) {
        const n = Math.min(checkN, queries.length);
        let agreeAB = 0;
        let agreeAC = 0;
        const sig = (hits: KeyedHit[]): string => hits.map((h) => `${String(h.key)}/${h.id.toString()}`).join(',');
        for (let i = 0; i < n; i++) {
          const a = paths.includes('a') ? sig(await runA(queries[i]!)) : '';
          const b = sig(await runB(queries[i]!));
          const c = sig(await runC(queries[i]!));
          if (a === b) agreeAB++;
          if (a === c || (!paths.includes('a') && b === c)) agreeAC++;
        }
        checks.push({ variant: spec.name, queries: n, agreeAB, agreeAC, recallVsTruthNote: 'identical top-k (key, id) lists in order' });
        note(`  ${spec.name}: answers on the first ${n} queries: (a)=(b) ${agreeAB}/${n}, (a)=(c) ${agreeAC}/${n}`);
      }

      for (const p of paths) {
        await waitForQuiet(num(values['wait-quiet'], 'wait-quiet', 0)!);
        const conc = p === 'c' ? 1 : concurrency;
        const redis = p === 'a' ? redisA : p === 'b' ? redisB : null;
        const run = runners[p];
        // warm-up
        let next = 0;
        const deadlineW = performance.now() + warmup * 1000;
        await Promise.all(Array.from({ length: conc }, async () => {
          while (performance.now() < deadlineW) await run(queries[next++ % queries.length]!);
        }));
        const done = phase(`${spec.name}: ${PATH_LABEL[p]} for ${seconds}s, ${conc} in flight`);
        const lat = new LatencyRecorder();
        const bytes0 = redis ? socketBytes(redis) : { read: 0, written: 0 };
        const server0 = procCpuTicks(server?.proc.pid);
        const cpu0 = process.cpuUsage();
        lmdbBytes = 0;
        degradedCount = 0;
        let count = 0;
        const t0 = performance.now();
        const deadline = t0 + seconds * 1000;
        let lastNote = t0;
        await Promise.all(Array.from({ length: conc }, async () => {
          while (performance.now() < deadline) {
            const q = queries[next++ % queries.length]!;
            const s = nowNs();
            await run(q);
            lat.addNs(nowNs() - s);
            count++;
            const now = performance.now();
            if (now - lastNote > 2000) {
              lastNote = now;
              note(`    ${count} queries, ${fmtInt(count / ((now - t0) / 1000))}/s`);
            }
          }
        }));
        const elapsed = (performance.now() - t0) / 1000;
        const cpu = process.cpuUsage(cpu0);
        const server1 = procCpuTicks(server?.proc.pid);
        const bytes1 = redis ? socketBytes(redis) : { read: 0, written: 0 };
        const up = (bytes1.written - bytes0.written) / count;
        const down = (bytes1.read - bytes0.read) / count;
        const s = lat.summary();
        const r: PathResult = {
          variant: spec.name, path: p, queries: count, seconds: elapsed, qps: count / elapsed,
          p50Ms: s.p50Us / 1000, p99Ms: s.p99Us / 1000,
          bytesPerQuery: p === 'c' ? lmdbBytes / count : up + down,
          bytesUpPerQuery: p === 'c' ? 0 : up, bytesDownPerQuery: p === 'c' ? lmdbBytes / count : down,
          clientCpuMsPerQuery: ((cpu.user + cpu.system) / 1000) / count,
          serverCpuMsPerQuery: p === 'c' || server0 === null || server1 === null ? null : (((server1 - server0) / TICKS_PER_SEC) * 1000) / count,
          degraded: degradedCount,
        };
        results.push(r);
        done(`${fmtInt(r.qps)} q/s, p50 ${fmtNum(r.p50Ms)} ms, p99 ${fmtNum(r.p99Ms)} ms, ${fmtInt(r.bytesPerQuery)} B/query${p === 'c' ? ' read from LMDB' : ' on the socket'}`);
      }
      redisA.disconnect();
      redisB.disconnect();
      await db.close();
    }
  } finally {
    loader.disconnect();
    await server?.stop();
    removeDir(lmdbDir);
  }

  // Report.
  const out: string[] = [];
  out.push(`Machine: ${machineLine(machine)}. ${server ? 'ragkv started by the benchmark (single node, --durability none)' : `ragkv at ${values.host}:${port}`}; k=${k}, ${nprobe} lists per query, ${concurrency} queries in flight for (a) and (b), (c) one at a time in process; ${seconds}s per path.`);
  out.push('');
  out.push(`Scoring kernel (L2, one core): ${kernel.map((x) => `${x.type} ${x.dim}-d ${fmtInt(x.vectorsPerSec)} vectors/s`).join('; ')}.`);
  for (const spec of specs) {
    const rs = results.filter((r) => r.variant === spec.name);
    if (rs.length === 0) continue;
    const st = listStats[spec.name]!;
    out.push('');
    out.push(`### ${spec.name}: ${spec.count} x ${spec.dim}-d ${spec.type}, ${st.lists} lists (median ${st.medianItems} items, mean ${fmtNum(st.meanItems, 1)}, ${fmtInt(st.bytesPerList)} B per list; the ${nprobe} lists of a query hold ${fmtInt(st.bytesPerQueryLists)} B)`);
    out.push('');
    const rows = rs.map((r) => [
      PATH_LABEL[r.path], fmtInt(r.qps), fmtNum(r.p50Ms), fmtNum(r.p99Ms), fmtInt(r.bytesPerQuery),
      r.path === 'c' ? '0 (local)' : `${fmtInt(r.bytesUpPerQuery)} / ${fmtInt(r.bytesDownPerQuery)}`,
      fmtNum(r.clientCpuMsPerQuery, 3), r.serverCpuMsPerQuery === null ? 'n/a' : fmtNum(r.serverCpuMsPerQuery, 3),
    ]);
    out.push(markdownTable(['path', 'queries/s', 'p50 ms', 'p99 ms', 'bytes moved / query', 'network up / down B', 'client CPU ms/q', 'server CPU ms/q'], rows));
    const a = rs.find((r) => r.path === 'a');
    const b = rs.find((r) => r.path === 'b');
    const c = rs.find((r) => r.path === 'c');
    const ratios: string[] = [];
    if (a && b) ratios.push(`(a)/(b): queries/s ${fmtRatio(a.qps, b.qps)} (aim >= 3x), bytes moved ${fmtNum(b.bytesPerQuery / a.bytesPerQuery, 0)}x fewer (aim >= 50x)`);
    if (a && c) ratios.push(`(a)/(c): queries/s ${fmtRatio(a.qps, c.qps)} (aim >= 1x)`);
    if (a && a.degraded > 0) ratios.push(`(a) degraded answers: ${a.degraded}`);
    const ck = checks.find((x) => x.variant === spec.name);
    if (ck) ratios.push(`same top-${k} (key, id) lists on the first ${ck.queries} queries: (a)=(b) ${ck.agreeAB}, (a)=(c) ${ck.agreeAC}`);
    out.push('');
    out.push(ratios.map((x) => `- ${x}`).join('\n'));
  }
  process.stdout.write(`${out.join('\n')}\n`);
  const file = writeResults('vsearch', { machine, options: { nprobe, k, seconds, concurrency, paths }, kernel, listStats, checks, results });
  note(`results written to ${file}`);
  return 0;
}

main().then(
  (code) => (process.exitCode = code),
  (err) => {
    process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
