/**
 * `npm run bench:storage`: the ragkv storage layer (through `openLocalKv`, the single-node
 * KvApi) against raw lmdb-js on the same data, in one process, at equal durability.
 *
 * For each durability mode and each implementation, in a fresh temp dir:
 *   load    KEYS keys of SIZE bytes (64 writes outstanding)
 *   get     random keys, one synchronous loop, SECONDS long
 *   put     random keys overwritten with SIZE bytes, 64 writes outstanding, SECONDS long
 *   append  APPEND bytes to random keys, 64 outstanding, SECONDS long
 *           (raw lmdb-js has no append: read-modify-write in a lmdb-js transaction)
 *   append latency (run after all throughput phases, in fresh dirs, because its 64 MiB
 *           records write a lot) at record sizes 1 KiB, 1 MiB, 64 MiB: a record of that size is written
 *           (one SET of the size), then APPENDS appends of APPEND bytes, each awaited before
 *           the next; p50/p99/mean per size, and the ratio 64 MiB / 1 KiB.
 *
 * Between phases the program runs `sync`, so one phase's write-back does not slow the next.
 *
 * Equal durability: `fsync` = resolve after the commit is flushed (lmdb-js overlappingSync,
 * await the commit then `db.flushed`, as the storage layer does); `commit` = resolve after
 * the commit, flush left to the OS; `none` = LMDB noSync.
 *
 * Not a test; never run in CI. `--help` lists the options.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { open, type RootDatabase } from 'lmdb';
import type { KvApi } from '../../src/coordinator/api.js';
import type { Limits } from '../../src/common/limits.js';
import {
  LatencyRecorder,
  type CpuUse,
  cpuMeter,
  type LatencySummary,
  fmtBytes,
  fmtInt,
  fmtNum,
  fmtRatio,
  machineInfo,
  machineLine,
  makeTempDir,
  markdownTable,
  note,
  nowNs,
  phase,
  removeDir,
  repoRoot,
  settle,
  waitForQuiet,
  writeResults,
  positiveOption,
} from './common.js';

const HELP = `usage: npm run bench:storage -- [options]

  --seconds S        length of each throughput phase (default 5; --quick: 1)
  --keys K           keys loaded and read (default 100000)
  --size BYTES       value size (default 1024)
  --append-bytes B   bytes per append (default 100)
  --appends N        appends timed per record size (default 2000; --quick: 200)
  --record-sizes L   record sizes for append latency (default 1KiB,1MiB,64MiB)
  --max-seconds S    time cap per record size in the latency phase; at least 50 appends are
                     always timed (default 30)
  --concurrency C    writes outstanding in put/append throughput (default 64)
  --durability L     modes to run, any of fsync,commit,none (default fsync,commit)
  --impl L           implementations, any of lmdb,storage (default lmdb,storage)
  --quick            short phases, for checking that the benchmark works
  --wait-quiet S     before each phase, wait up to S seconds for other work on the machine to
                     stop (below 15% of a core) (default 60; 0 = don't wait)
  --keep             keep the temp data dirs
  --help
`;

type Durability = 'fsync' | 'commit' | 'none';
type ImplName = 'lmdb' | 'storage';

const IMPL_LABEL: Record<ImplName, string> = {
  lmdb: 'raw lmdb-js',
  storage: 'ragkv storage',
};

/** The operations measured, over either implementation. */
interface Impl {
  get(key: Buffer): Buffer | null | undefined;
  set(key: Buffer, value: Buffer): Promise<unknown>;
  /** Appends; resolves with the new length when the implementation knows it. */
  append(key: Buffer, bytes: Buffer): Promise<number | undefined>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------- implementations

async function openRawLmdb(dir: string, durability: Durability): Promise<Impl> {
  const db: RootDatabase<Buffer, Buffer> = open<Buffer, Buffer>({
    path: dir,
    keyEncoding: 'binary',
    encoding: 'binary',
    // as the storage layer opens its env
    mapSize: 64 * 1024 * 1024 * 1024,
    overlappingSync: durability !== 'none',
    noSync: durability === 'none',
  });
  const durable = async <T>(p: Promise<T>): Promise<T> => {
    const r = await p;
    if (durability === 'fsync') await db.flushed;
    return r;
  };
  return {
    get: (key) => db.get(key),
    set: (key, value) => durable(db.put(key, value)),
    append: (key, bytes) =>
      durable(
        db.transaction(() => {
          const old = db.get(key);
          const next = old ? Buffer.concat([old, bytes]) : bytes;
          void db.put(key, next);
          return next.length;
        }),
      ),
    close: () => db.close(),
  };
}

type OpenLocalKv = (options: {
  path: string;
  durability?: Durability;
  limits?: Partial<Limits>;
}) => Promise<{ kv: KvApi; close(): Promise<void> }>;

const storageModulePath = path.join(repoRoot, 'dist', 'src', 'coordinator', 'index.js');

async function loadOpenLocalKv(): Promise<OpenLocalKv | null> {
  if (!existsSync(storageModulePath)) return null;
  const mod = (await import(pathToFileURL(storageModulePath).href)) as { openLocalKv?: OpenLocalKv };
  return typeof mod.openLocalKv === 'function' ? mod.openLocalKv : null;
}

async function openStorage(openLocalKv: OpenLocalKv, dir: string, durability: Durability): Promise<Impl> {
  const { kv, close } = await openLocalKv({ path: dir, durability });
  const ns = 'default';
  return {
    // The single-node engine answers reads synchronously.
    get: (key) => kv.get(ns, key) as Buffer | null,
    set: (key, value) => kv.set(ns, key, value),
    append: (key, bytes) => kv.append(ns, key, bytes),
    close,
  };
}

// ---------------------------------------------------------------- workloads

/** xorshift32, so every implementation sees the same key sequence. */
function randomIndexes(count: number, below: number, seed = 0x9e3779b9): Uint32Array {
  const out = new Uint32Array(count);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < count; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x % below;
  }
  return out;
}

function makeKeys(count: number): Buffer[] {
  const keys: Buffer[] = new Array(count);
  for (let i = 0; i < count; i++) keys[i] = Buffer.from(`key:${String(i).padStart(12, '0')}`);
  return keys;
}

interface Throughput {
  ops: number;
  seconds: number;
  opsPerSec: number;
}

/** Prints a progress line at most every 5 s while a phase runs. */
function ticker(label: string): (done: number, total?: number) => void {
  let last = performance.now();
  const start = last;
  return (done, total) => {
    const now = performance.now();
    if (now - last < 5000) return;
    last = now;
    const rate = done / ((now - start) / 1000);
    note(`  ${label}: ${fmtInt(done)}${total ? `/${fmtInt(total)}` : ''} ops, ${fmtInt(rate)} ops/s so far`);
  };
}

/**
 * Keeps `concurrency` operations outstanding until `count` ops were started (if given) or
 * `seconds` have passed.
 */
async function closedLoop(
  label: string,
  concurrency: number,
  op: (i: number) => Promise<unknown>,
  limit: { seconds?: number; count?: number },
): Promise<Throughput> {
  const start = performance.now();
  const end = limit.seconds === undefined ? Infinity : start + limit.seconds * 1000;
  const count = limit.count ?? Infinity;
  const tick = ticker(label);
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < count && performance.now() < end) {
      await op(next++);
      done++;
      if ((done & 1023) === 0) tick(done, Number.isFinite(count) ? count : undefined);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - start) / 1000;
  return { ops: done, seconds, opsPerSec: done / seconds };
}

/** Synchronous random gets for `seconds`; checks every value is present. */
function getLoop(impl: Impl, keys: Buffer[], order: Uint32Array, seconds: number): Throughput {
  const start = performance.now();
  const end = start + seconds * 1000;
  let ops = 0;
  let bytes = 0;
  const mask = order.length - 1; // order.length is a power of two
  for (;;) {
    for (let j = 0; j < 1024; j++) {
      const v = impl.get(keys[order[(ops + j) & mask]!]!);
      if (!v) throw new Error(`get: key ${keys[order[(ops + j) & mask]!]!.toString()} missing`);
      bytes += v.length;
    }
    ops += 1024;
    if (performance.now() >= end) break;
  }
  const s = (performance.now() - start) / 1000;
  if (bytes === 0) throw new Error('get read nothing');
  return { ops, seconds: s, opsPerSec: ops / s };
}

interface LatencyResult {
  recordBytes: number;
  appendBytes: number;
  buildSeconds: number;
  cappedByTime: boolean;
  latency: LatencySummary;
}

async function appendLatency(
  impl: Impl,
  recordBytes: number,
  appendBytes: number,
  appends: number,
  maxSeconds: number,
  label: string,
): Promise<LatencyResult> {
  const key = Buffer.from(`big:${recordBytes}`);
  const t0 = performance.now();
  await impl.set(key, Buffer.alloc(recordBytes, 'b'));
  const buildSeconds = (performance.now() - t0) / 1000;
  const chunk = Buffer.alloc(appendBytes, 'a');
  const rec = new LatencyRecorder();
  const start = performance.now();
  const deadline = start + maxSeconds * 1000;
  const tick = ticker(label);
  let length: number | undefined;
  let cappedByTime = false;
  for (let i = 0; i < appends; i++) {
    if (i >= 50 && performance.now() > deadline) {
      cappedByTime = true;
      break;
    }
    const a = nowNs();
    length = await impl.append(key, chunk);
    rec.addNs(nowNs() - a);
    tick(i + 1, appends);
  }
  const expected = recordBytes + rec.count * appendBytes;
  if (length !== undefined && length !== expected) {
    throw new Error(`append to a ${fmtBytes(recordBytes)} record returned length ${length}, expected ${expected}`);
  }
  const got = impl.get(key);
  if (!got || got.length !== expected) {
    throw new Error(`after appends, the ${fmtBytes(recordBytes)} record has ${got?.length ?? 'no'} bytes, expected ${expected}`);
  }
  if (got[got.length - 1] !== 0x61 || got[0] !== 0x62) throw new Error('appended bytes not where expected');
  return { recordBytes, appendBytes, buildSeconds, cappedByTime, latency: rec.summary() };
}

// ---------------------------------------------------------------- main

/** User-mode CPU (% of one core) of other programs during a phase above which it counts as disturbed. */
const NOISY_PCT = 25;

interface CpuRecord extends CpuUse {
  phase: string;
  /** Other work on the machine measured just before the phase, % of one core. */
  backgroundPct: number | null;
  /** Runs of this phase (a phase is run again when other work disturbed it). */
  attempts: number;
  /** Other work still took more than NOISY_PCT of a core during the kept run. */
  noisy: boolean;
}

interface RunResult {
  impl: ImplName;
  durability: Durability;
  load: Throughput;
  get: Throughput;
  put: Throughput;
  append: Throughput;
  appendLatency: LatencyResult[];
}

function parseSize(s: string): number {
  const m = /^(\d+)\s*(B|KiB|MiB|GiB)?$/i.exec(s.trim());
  if (!m) throw new Error(`bad size '${s}' (use e.g. 1KiB, 1MiB, 64MiB)`);
  const unit = (m[2] ?? 'B').toLowerCase();
  const mult = unit === 'kib' ? 1024 : unit === 'mib' ? 1024 ** 2 : unit === 'gib' ? 1024 ** 3 : 1;
  return Number(m[1]) * mult;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string' },
      keys: { type: 'string', default: '100000' },
      size: { type: 'string', default: '1024' },
      'append-bytes': { type: 'string', default: '100' },
      appends: { type: 'string' },
      'record-sizes': { type: 'string', default: '1KiB,1MiB,64MiB' },
      'max-seconds': { type: 'string', default: '30' },
      concurrency: { type: 'string', default: '64' },
      durability: { type: 'string', default: 'fsync,commit' },
      impl: { type: 'string', default: 'lmdb,storage' },
      quick: { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      'wait-quiet': { type: 'string', default: '60' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const num = (name: string, s: string | undefined, dflt: number): number => positiveOption(name, s, dflt);
  const seconds = num('seconds', values.seconds, values.quick ? 1 : 5);
  const keyCount = Math.floor(num('keys', values.keys, 100_000));
  const size = Math.floor(num('size', values.size, 1024));
  const appendBytes = Math.floor(num('append-bytes', values['append-bytes'], 100));
  const appends = Math.floor(num('appends', values.appends, values.quick ? 200 : 2000));
  const maxSeconds = num('max-seconds', values['max-seconds'], 30);
  const concurrency = Math.floor(num('concurrency', values.concurrency, 64));
  const waitQuietSeconds = values['wait-quiet'] === '0' ? 0 : num('wait-quiet', values['wait-quiet'], 60);
  const recordSizes = values['record-sizes']!.split(',').map(parseSize);
  const modes = values.durability!.split(',').map((d) => d.trim()) as Durability[];
  for (const d of modes) if (!['fsync', 'commit', 'none'].includes(d)) throw new Error(`unknown durability '${d}'`);
  let impls = values.impl!.split(',').map((d) => d.trim()) as ImplName[];
  for (const d of impls) if (!(d in IMPL_LABEL)) throw new Error(`unknown implementation '${d}'`);

  const openLocalKv = impls.includes('storage') ? await loadOpenLocalKv() : null;
  if (impls.includes('storage') && !openLocalKv) {
    note(`ragkv storage not available (${path.relative(repoRoot, storageModulePath)} missing or without openLocalKv; run \`npx tsc -p .\`): measuring raw lmdb-js only`);
    impls = impls.filter((i) => i !== 'storage');
  }
  if (impls.length === 0) return 1;

  const machine = machineInfo();
  note(`machine: ${machineLine(machine)}`);
  note(
    `plan: ${impls.map((i) => IMPL_LABEL[i]).join(' and ')} at durability ${modes.join(', ')}; ${fmtInt(keyCount)} keys x ${size} B; ` +
      `${seconds} s per throughput phase; concurrency ${concurrency}; ${appends} appends of ${appendBytes} B at ${recordSizes.map(fmtBytes).join(', ')}`,
  );

  const keys = makeKeys(keyCount);
  let orderLen = 1;
  while (orderLen < 1 << 20) orderLen <<= 1;
  const order = randomIndexes(orderLen, keyCount);
  const value = Buffer.alloc(size, 'v');
  const appendChunk = Buffer.alloc(appendBytes, 'a');

  const results: RunResult[] = [];
  const cpuLog: CpuRecord[] = [];
  let lastBackground: number | null = null;
  const settleNote = async () => {
    const s = await settle();
    if (s > 1) note(`  (sync: flushing earlier writes took ${s.toFixed(1)} s)`);
    lastBackground = await waitForQuiet(waitQuietSeconds);
  };
  /**
   * Runs a phase and records the CPU it used. When other work on the machine took more than
   * NOISY_PCT of a core meanwhile, the phase is run again (at most twice more) if `repeatable`;
   * a phase still noisy after that is marked in the report.
   */
  const measured = async <T>(name: string, fn: () => Promise<T> | T, repeatable = true): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      const meter = cpuMeter();
      const r = await fn();
      const c = meter.stop();
      const noisy = c.otherUserPct !== null && c.otherUserPct > NOISY_PCT;
      if (noisy && repeatable && attempt < 3) {
        note(`  ${name}: other programs used ${c.otherUserPct}% of a core meanwhile; measuring again`);
        await settleNote();
        continue;
      }
      cpuLog.push({ phase: name, ...c, backgroundPct: lastBackground, attempts: attempt, noisy });
      return r;
    }
  };
  const mark = (name: string) => (cpuLog.find((c) => c.phase === name)?.noisy ? ' (noisy)' : '');
  // Part 1: throughput. Part 2 (after, in fresh dirs): append latency, whose 64 MiB records
  // write a lot and would slow later throughput phases down through write-back.
  for (const part of ['throughput', 'latency'] as const) {
    for (const durability of modes) {
      for (const implName of impls) {
        const label = `${IMPL_LABEL[implName]} [${durability}]`;
        const dir = makeTempDir(`${implName}-${durability}`);
        await settleNote();
        const doneOpen = phase(`${label}: open in ${dir}`);
        const impl = implName === 'lmdb' ? await openRawLmdb(dir, durability) : await openStorage(openLocalKv!, dir, durability);
        doneOpen();
        try {
          if (part === 'throughput') {
            let d = phase(`${label}: load ${fmtInt(keyCount)} keys`);
            // not repeatable: a second run would overwrite keys instead of creating them
            const load = await measured(
              `${label} load`,
              () => closedLoop(`${label} load`, concurrency, (i) => impl.set(keys[i]!, value), { count: keyCount }),
              false,
            );
            d(`${fmtInt(load.opsPerSec)} ops/s`);
            await settleNote();

            d = phase(`${label}: get, random keys, 1 thread, ${seconds} s`);
            getLoop(impl, keys, order, Math.min(0.5, seconds)); // warm-up
            const get = await measured(`${label} get`, () => getLoop(impl, keys, order, seconds));
            d(`${fmtInt(get.opsPerSec)} ops/s`);
            await settleNote();

            d = phase(`${label}: put ${size} B, ${concurrency} outstanding, ${seconds} s`);
            const put = await measured(`${label} put`, () =>
              closedLoop(`${label} put`, concurrency, (i) => impl.set(keys[order[i & (orderLen - 1)]!]!, value), { seconds }),
            );
            d(`${fmtInt(put.opsPerSec)} ops/s`);
            await settleNote();

            d = phase(`${label}: append ${appendBytes} B, ${concurrency} outstanding, ${seconds} s`);
            const append = await measured(`${label} append`, () =>
              closedLoop(`${label} append`, concurrency, (i) => impl.append(keys[order[(i * 7 + 13) & (orderLen - 1)]!]!, appendChunk), {
                seconds,
              }),
            );
            d(`${fmtInt(append.opsPerSec)} ops/s`);
            results.push({ impl: implName, durability, load, get, put, append, appendLatency: [] });
          } else {
            const res = results.find((r) => r.impl === implName && r.durability === durability)!;
            for (const recordBytes of recordSizes) {
              await settleNote();
              const d = phase(`${label}: append latency, record ${fmtBytes(recordBytes)}, ${appends} x ${appendBytes} B sequential`);
              const r = await measured(`${label} append latency @${fmtBytes(recordBytes)}`, () =>
                appendLatency(impl, recordBytes, appendBytes, appends, maxSeconds, `${label} append@${fmtBytes(recordBytes)}`),
              );
              res.appendLatency.push(r);
              d(
                `n ${r.latency.count}${r.cappedByTime ? ` (capped at ${maxSeconds} s)` : ''}, p50 ${fmtNum(r.latency.p50Us, 0)} us, ` +
                  `p99 ${fmtNum(r.latency.p99Us, 0)} us, mean ${fmtNum(r.latency.meanUs, 0)} us (building the record took ${r.buildSeconds.toFixed(2)} s)`,
              );
            }
          }
        } finally {
          const dc = phase(`${label}: close`);
          await impl.close();
          dc();
          if (values.keep) note(`  kept ${dir}`);
          else removeDir(dir);
        }
      }
    }
  }

  // ---- report
  const lines: string[] = [];
  lines.push(`## Storage benchmark: ragkv storage layer vs raw lmdb-js`, '');
  lines.push(`- date: ${machine.date}`);
  lines.push(`- machine: ${machineLine(machine)}`);
  lines.push(
    `- data: ${fmtInt(keyCount)} keys of ${size} B; throughput phases ${seconds} s each; writes with ${concurrency} outstanding; ` +
      `appends of ${appendBytes} B; latency: ${appends} sequential appends per record size`,
  );
  lines.push(
    `- raw lmdb-js: \`open({ keyEncoding: 'binary', encoding: 'binary' })\`, \`db.get\`, \`db.put\`; its "append" is a read-modify-write ` +
      `(get, concat, put) in \`db.transaction\`, so it rewrites the whole value`,
  );
  lines.push(`- ragkv storage: \`openLocalKv({ path, durability })\` -> \`kv.get/set/append('default', ...)\``);
  lines.push(
    `- durability (same for both): fsync = resolve after the commit is flushed to disk; commit = after the commit, flush left to the OS; none = LMDB noSync`,
  );
  lines.push('');
  const by = (impl: ImplName, d: Durability) => results.find((r) => r.impl === impl && r.durability === d);
  for (const d of modes) {
    const raw = by('lmdb', d);
    const st = by('storage', d);
    lines.push(`### Throughput, durability \`${d}\``, '');
    const row = (name: string, pick: (r: RunResult) => number, target: string, phaseName: string): string[] => {
      const a = raw ? pick(raw) : NaN;
      const b = st ? pick(st) : NaN;
      return [
        name,
        raw ? fmtInt(a) + mark(`${IMPL_LABEL.lmdb} [${d}] ${phaseName}`) : 'n/a',
        st ? fmtInt(b) + mark(`${IMPL_LABEL.storage} [${d}] ${phaseName}`) : 'n/a',
        raw && st ? fmtRatio(b, a) : 'n/a',
        target,
      ];
    };
    const getRatio = raw && st ? st.get.opsPerSec / raw.get.opsPerSec : NaN;
    lines.push(
      markdownTable(
        ['operation', 'raw lmdb-js ops/s', 'ragkv storage ops/s', 'storage/raw', 'target'],
        [
          row(`get ${fmtBytes(size)}, random, 1 thread`, (r) => r.get.opsPerSec, `>= 0.80x${Number.isFinite(getRatio) ? (getRatio >= 0.8 ? ' (met)' : ' (NOT met)') : ''}`, 'get'),
          row(`put ${fmtBytes(size)}, ${concurrency} outstanding`, (r) => r.put.opsPerSec, '', 'put'),
          row(`append ${appendBytes} B, ${concurrency} outstanding`, (r) => r.append.opsPerSec, '', 'append'),
          row(`load (put new keys), ${concurrency} outstanding`, (r) => r.load.opsPerSec, '', 'load'),
        ],
      ),
      '',
    );
    lines.push(`### Append latency by record size, durability \`${d}\` (microseconds)`, '');
    const latRows: string[][] = [];
    for (const r of [raw, st]) {
      if (!r) continue;
      for (const l of r.appendLatency) {
        latRows.push([
          IMPL_LABEL[r.impl],
          fmtBytes(l.recordBytes) + mark(`${IMPL_LABEL[r.impl]} [${d}] append latency @${fmtBytes(l.recordBytes)}`),
          `${l.latency.count}${l.cappedByTime ? '*' : ''}`,
          fmtNum(l.latency.p50Us, 0),
          fmtNum(l.latency.p99Us, 0),
          fmtNum(l.latency.meanUs, 0),
          fmtNum(l.latency.maxUs, 0),
        ]);
      }
      const small = r.appendLatency.find((l) => l.recordBytes === Math.min(...recordSizes));
      const big = r.appendLatency.find((l) => l.recordBytes === Math.max(...recordSizes));
      if (small && big && small !== big) {
        const p50 = big.latency.p50Us / small.latency.p50Us;
        const mean = big.latency.meanUs / small.latency.meanUs;
        const target = r.impl === 'storage' ? ` (target <= 1.5x: ${p50 <= 1.5 && mean <= 1.5 ? 'met' : 'NOT met'})` : '';
        latRows.push([
          IMPL_LABEL[r.impl],
          `ratio ${fmtBytes(big.recordBytes)}/${fmtBytes(small.recordBytes)}${target}`,
          '',
          `${p50.toFixed(2)}x`,
          `${(big.latency.p99Us / small.latency.p99Us).toFixed(2)}x`,
          `${mean.toFixed(2)}x`,
          '',
        ]);
      }
    }
    lines.push(markdownTable(['implementation', 'record size', 'n', 'p50 us', 'p99 us', 'mean us', 'max us'], latRows, 2), '');
    if (latRows.some((r) => r[2]!.endsWith('*'))) lines.push(`\\* stopped early by the ${maxSeconds} s cap per record size`, '');
  }
  lines.push(`### CPU per phase (% of one core; ${machine.nproc} CPUs)`, '');
  lines.push(
    markdownTable(
      ['phase', 'runs', 'this process', 'machine', 'other during', "others' user", 'other before'],
      cpuLog.map((c) => [
        c.phase + (c.noisy ? ' (noisy)' : ''),
        String(c.attempts),
        String(c.ownPct),
        c.machinePct === null ? 'n/a' : String(c.machinePct),
        c.otherPct === null ? 'n/a' : String(c.otherPct),
        c.otherUserPct === null ? 'n/a' : String(c.otherUserPct),
        c.backgroundPct === null ? 'n/a' : String(c.backgroundPct),
      ]),
    ),
    '',
  );
  lines.push(
    `"other" is machine minus this process: kernel write-back (which the benchmark causes itself) and anything else running; ` +
      `"others' user" is the user-mode CPU of other programs only. A phase during which other programs used more than ${NOISY_PCT}% ` +
      `of a core is run again (up to 3 runs; "runs"), except the load; one still disturbed is marked (noisy).`,
    '',
  );
  const file = writeResults('storage', {
    kind: 'bench:storage',
    machine,
    options: { seconds, keyCount, size, appendBytes, appends, maxSeconds, concurrency, recordSizes, modes, impls },
    results,
    cpu: cpuLog,
  });
  lines.push(`JSON: ${path.relative(repoRoot, file)}`);
  process.stdout.write(`\n${lines.join('\n')}\n`);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench:storage failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
