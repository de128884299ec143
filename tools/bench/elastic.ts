/**
 * `npm run bench:elastic`: what elasticity costs on a loaded cluster (issue 10, item 8).
 *
 * Three member processes (`ragkv start --node-id n<i> --expect-members 3`, loopback, one data
 * directory each under --data) are loaded with K keys of V bytes (pipelined SETs through all
 * three). Then, in order:
 *
 *   1. join: once anti-entropy has rebuilt the digests the load made stale, a steady client
 *      load (--clients connections, 90% GET / 10% SET of random loaded keys, one request at a
 *      time per connection) runs for a baseline window; a 4th member is started with --seeds
 *      and streams its slots by itself; the same load runs until the cluster has settled
 *      (every member on one epoch, no change in flight, n4 in the table), then while the old
 *      owners drop the slots they gave up (until the members' DBSIZEs add up to 3 x K), then
 *      while anti-entropy rebuilds the digests the change made stale, then for a short window
 *      on the 4 members in their steady state. Reported: join time, keys and bytes
 *      streamed (sum of the members' placement counters), throughput and latency of each
 *      window against the baseline, failed requests, CPU per member and window.
 *   2. restore: n3 is killed (SIGKILL), its data directory deleted, and it is started again on
 *      the same id and peer port; it streams back every slot it holds. Timed until its
 *      /cluster shows placement.awaitingRestore false and the cluster has settled.
 *   3. idle anti-entropy: no client load; once every member has compared all its buckets with
 *      every peer since the last change (the digests are rebuilt after a change), the CPU of
 *      every member (process_cpu_seconds_total of /metrics) over --idle-seconds, with the
 *      anti-entropy counters' deltas to show it ran. The figure also holds SWIM gossip and the
 *      members' timers: an upper bound of anti-entropy's cost.
 *
 * A Markdown table on stdout, then one JSON line with every figure (also written to
 * bench-results/elastic-<time>.json). Progress on stderr. Not a test; never run in CI.
 */
import { execFileSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { type ServerProcess, freePorts, spawnServer } from '../loadgen/peers/process.js';
import { ragkvBinPath } from '../loadgen/peers/ragkv.js';
import { settledEpochOf } from '../../src/cli/local-cluster.js';
import {
  type CpuUse, LatencyRecorder, TICKS_PER_SEC, cpuMeter, fmtInt, fmtNum, fmtRatio, machineInfo, machineLine, makeTempDir,
  machineUserTicks, markdownTable, note, nowNs, phase, positiveOption, procCpuTicks, procUserTicks, removeDir, repoRoot, settle, sleep, writeResults,
} from './common.js';

const HELP = `usage: npm run bench:elastic -- [options]

  --keys K               keys loaded before the join (default 1000000)
  --value-bytes V        value size (default 1024)
  --clients C            connections of the steady load, spread over n1..n3 (default 8)
  --durability MODE      members' --durability: fsync, commit or none (default commit)
  --data DIR             parent of the members' data directories (default: a temp dir,
                         removed at the end); kept when given
  --keep                 keep the temp dir (data and the members' logs n<i>.log)
  --load-connections N   pipelined connections loading the keys, spread over n1..n3 (default 6)
  --pipeline N           SETs per pipelined batch while loading (default 128)
  --baseline-seconds S   steady load before the 4th member starts (default 20)
  --after-seconds S      steady load on the 4 members once the old owners dropped the moved
                         slots and anti-entropy rebuilt its digests (default 20)
  --idle-seconds S       idle window for the anti-entropy CPU figure (default 60)
  --ae-wait S            before the baseline and before the idle window, wait up to S seconds
                         for every member to compare all its buckets with every peer: the
                         digests the load or a change made stale are rebuilt by then
                         (default 180; 0 = don't wait)
  --settle-timeout S     longest wait for a join, a restore or a cleanup (default 1800)
  --stream-bytes-per-sec N
                         members' --stream-bytes-per-sec (default: theirs, 64 MiB/s per source)
  --skip-restore         no restore phase
  --out DIR              where the JSON file goes (default bench-results/)
  --wait-quiet S         before the baseline and the idle window, wait up to S seconds for other
                         programs to use less than 15% of a core (default 60; 0 = don't wait)
  --help
`;

/** User-mode CPU (% of one core) of other programs above which a baseline is measured again. */
const NOISY_PCT = 25;

// ---------------------------------------------------------------- members

/** What GET /cluster answers (the parts read here). */
interface ClusterView {
  self: string;
  placement: {
    epoch: number;
    change: { kind: string; member: string; stage: string; moving: number } | null;
    stream: { keys: number; bytes: number; done: boolean; sources: number; sourcesDone: number };
    counters: { streamedKeys: number; streamedBytes: number; droppedKeys: number };
    awaitingRestore: boolean;
  } | null;
  antiEntropy: { rounds: number; bucketsCompared: number; slotsDiffering: number; keysPulled: number; keysPushed: number; slotsHashed: number; keysHashed: number };
  members: { id: string; status: string; inTable: boolean; slots: number }[];
  hints?: { pending: number };
}

interface Member {
  id: string;
  peerPort: number;
  dataDir: string;
  /** `ragkv start` arguments (after the bin path). */
  args: string[];
  server: ServerProcess | null;
  resp: number;
  admin: number;
}

const HOST = '127.0.0.1';

function memberArgs(id: string, dataDir: string, peerPort: number, seeds: number[], extra: string[]): string[] {
  // prettier-ignore
  return [
    'start', '--node-id', id, '--host', HOST, '--data', dataDir,
    '--resp-port', '0', '--grpc-port', '0', '--admin-port', '0',
    '--peer-port', String(peerPort), '--seeds', seeds.map((p) => `${HOST}:${p}`).join(','),
    ...extra,
  ];
}

/** Starts a member's process; resolves once it logged `listening` (its ports read from that line). */
/** When each member's current process was started (performance.now()). */
const startedOf = new Map<string, number>();

async function startMember(m: Member, logDir: string, timeoutMs = 60_000): Promise<void> {
  mkdirSync(m.dataDir, { recursive: true });
  startedOf.set(m.id, performance.now());
  const server = spawnServer(`ragkv ${m.id}`, process.execPath, [ragkvBinPath(), ...m.args]);
  const log = createWriteStream(path.join(logDir, `${m.id}.log`), { flags: 'a' });
  server.child.stdout!.on('data', (d: Buffer) => log.write(d));
  server.child.stderr!.on('data', (d: Buffer) => log.write(d));
  void server.exited.then(() => log.end());
  m.server = server;
  const line = await server.waitForLine(/"msg":"listening"/, timeoutMs);
  const l = JSON.parse(line) as { resp?: number; admin?: number };
  if (!l.resp || !l.admin) throw new Error(`${m.id}: its listening line has no ports: ${line}`);
  m.resp = l.resp;
  m.admin = l.admin;
}

async function httpGet(port: number, route: string, timeoutMs = 5000): Promise<string> {
  const res = await fetch(`http://${HOST}:${port}${route}`, { signal: AbortSignal.timeout(timeoutMs) });
  const body = await res.text();
  if (res.status !== 200) throw new Error(`GET ${route} on ${port}: HTTP ${res.status}: ${body.slice(0, 200)}`);
  return body;
}

async function view(m: Member): Promise<ClusterView | null> {
  if (!m.server) return null;
  try {
    return JSON.parse(await httpGet(m.admin, '/cluster')) as ClusterView;
  } catch {
    return null;
  }
}

interface ProcessMetrics {
  /** process_cpu_seconds_total */
  cpuSeconds: number | null;
  /** process_resident_memory_bytes, MiB */
  rssMiB: number | null;
  /** nodejs_heap_size_used_bytes, MiB */
  heapUsedMiB: number | null;
}

/** The process figures of a member's /metrics (prom-client's default metrics); nulls when it does not answer. */
async function processMetrics(m: Member): Promise<ProcessMetrics> {
  try {
    const text = await httpGet(m.admin, '/metrics');
    const pick = (name: string): number | null => {
      const v = new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1];
      return v === undefined ? null : Number(v);
    };
    const mib = (n: number | null): number | null => (n === null ? null : Math.round(n / (1024 * 1024)));
    return { cpuSeconds: pick('process_cpu_seconds_total'), rssMiB: mib(pick('process_resident_memory_bytes')), heapUsedMiB: mib(pick('nodejs_heap_size_used_bytes')) };
  } catch {
    return { cpuSeconds: null, rssMiB: null, heapUsedMiB: null };
  }
}

/** One settled placement epoch over the members' views (the local cluster's rule). */
function settledEpoch(views: (ClusterView | null)[], inTable: string[]): number | null {
  return settledEpochOf(views, inTable);
}

async function dbsize(m: Member): Promise<number> {
  const c = connect(m.resp);
  try {
    await c.connect();
    return await c.dbsize();
  } finally {
    c.disconnect();
  }
}

function connect(port: number): Redis {
  const c = new Redis({ host: HOST, port, lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null, commandTimeout: 30_000 });
  c.on('error', () => {});
  return c;
}

function describeViews(members: Member[], views: (ClusterView | null)[]): string {
  return views
    .map((v, i) => {
      if (!v) return `${members[i]!.id}: -`;
      const p = v.placement;
      return `${v.self}: epoch ${p?.epoch ?? 0}${p?.change ? ` (${p.change.kind} ${p.change.member} ${p.change.stage})` : ''}${p?.awaitingRestore ? ' awaiting restore' : ''}`;
    })
    .join('; ');
}

function throwIfExited(members: Member[]): void {
  for (const m of members) {
    const c = m.server?.child;
    if (c && (c.exitCode !== null || c.signalCode !== null)) {
      throw new Error(`${m.id} exited (${c.exitCode ?? c.signalCode}):\n${m.server!.tail().slice(-20).join('\n')}`);
    }
  }
}

// ---------------------------------------------------------------- keys and values

function keyName(i: number): string {
  return `key:${String(i).padStart(12, '0')}`;
}

/** Values are windows of one random pool: distinct per key, no per-value allocation. */
class Values {
  private readonly pool: Buffer;
  constructor(readonly bytes: number) {
    const pool = Buffer.alloc(Math.ceil((bytes + 1024 * 1024) / 4) * 4);
    let x = 0x9e3779b9;
    for (let i = 0; i < pool.length; i += 4) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      pool.writeUInt32LE(x >>> 0, i);
    }
    this.pool = pool;
  }
  at(n: number): Buffer {
    const off = (n * 4099) % (this.pool.length - this.bytes);
    return this.pool.subarray(off, off + this.bytes);
  }
}

/** Loads keys 0..K-1 with pipelined SETs over `connections` connections spread over `members`. */
async function loadKeys(members: Member[], keys: number, values: Values, connections: number, pipeline: number): Promise<{ seconds: number; failed: number }> {
  const clients = Array.from({ length: connections }, (_, i) => connect(members[i % members.length]!.resp));
  await Promise.all(clients.map((c) => c.connect()));
  let next = 0;
  let done = 0;
  let failed = 0;
  let firstError = '';
  const start = performance.now();
  let lastAt = start;
  let lastDone = 0;
  const progress = setInterval(() => {
    const now = performance.now();
    note(`  loaded ${fmtInt(done)} / ${fmtInt(keys)} keys (${((100 * done) / keys).toFixed(0)}%), ${fmtInt(((done - lastDone) / (now - lastAt)) * 1000)} keys/s now, ${fmtInt((done / (now - start)) * 1000)} keys/s overall`);
    lastAt = now;
    lastDone = done;
  }, 5000);
  try {
    await Promise.all(
      clients.map(async (c) => {
        while (next < keys) {
          const from = next;
          const to = Math.min(keys, from + pipeline);
          next = to;
          const p = c.pipeline();
          for (let i = from; i < to; i++) p.set(keyName(i), values.at(i));
          const res = (await p.exec()) ?? [];
          for (const [err] of res) {
            if (err) {
              failed++;
              firstError ||= err.message;
            }
          }
          done += to - from;
        }
      }),
    );
  } finally {
    clearInterval(progress);
    clients.forEach((c) => c.disconnect());
  }
  if (failed) note(`  ${fmtInt(failed)} SETs failed while loading; first: ${firstError}`);
  return { seconds: (performance.now() - start) / 1000, failed };
}

// ---------------------------------------------------------------- steady load

interface Window {
  name: string;
  startNs: number;
  endNs: number;
  latency: LatencyRecorder;
  gets: number;
  sets: number;
  failed: number;
  /** GETs of a loaded key that answered nil, or a value of another size. */
  wrong: number;
  errors: string[];
}

interface WindowSummary {
  name: string;
  seconds: number;
  requests: number;
  opsPerSec: number;
  gets: number;
  sets: number;
  failed: number;
  wrong: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
  firstErrors: string[];
}

/**
 * `clients` connections, each one request at a time: 90% GET, 10% SET of a random loaded key.
 * Every request's latency goes to the window open when it completes.
 */
class SteadyLoad {
  private current: Window;
  private readonly windows: Window[] = [];
  private stopped = false;
  private loops: Promise<void>[] = [];
  private readonly clients: Redis[];
  /** Requests completed per second since start (the timeline). */
  readonly perSecond: { ops: number; failed: number; maxUs: number }[] = [];
  private readonly t0 = nowNs();

  constructor(ports: number[], clients: number, private readonly keys: number, private readonly values: Values) {
    this.clients = Array.from({ length: clients }, (_, i) => connect(ports[i % ports.length]!));
    this.current = this.open('warmup');
  }

  private open(name: string): Window {
    const w: Window = { name, startNs: nowNs(), endNs: 0, latency: new LatencyRecorder(), gets: 0, sets: 0, failed: 0, wrong: 0, errors: [] };
    this.windows.push(w);
    return w;
  }

  async start(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.connect()));
    this.current = this.open('warmup');
    this.loops = this.clients.map((c, i) => this.run(c, i));
  }

  /** Closes the window open now and opens `name`. */
  window(name: string): void {
    this.current.endNs = nowNs();
    this.current = this.open(name);
  }

  private async run(c: Redis, i: number): Promise<void> {
    let x = (0x2545f491 * (i + 1)) >>> 0 || 1;
    const rand = (): number => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) / 4294967296;
    };
    while (!this.stopped) {
      const n = Math.floor(rand() * this.keys);
      const isSet = rand() < 0.1;
      const t = nowNs();
      let ok = true;
      let wrong = false;
      let error = '';
      try {
        if (isSet) await c.set(keyName(n), this.values.at(n + 1 + Math.floor(rand() * 1000)));
        else {
          const v = await c.getBuffer(keyName(n));
          wrong = v === null || v.length !== this.values.bytes;
        }
      } catch (err) {
        ok = false;
        error = `${isSet ? 'SET' : 'GET'} ${keyName(n)}: ${(err as Error).message}`;
      }
      const end = nowNs();
      const w = this.current;
      w.latency.addNs(end - t);
      if (isSet) w.sets++;
      else w.gets++;
      if (!ok) {
        w.failed++;
        if (w.errors.length < 10) w.errors.push(error);
      }
      if (wrong) {
        w.wrong++;
        if (w.errors.length < 10) w.errors.push(`GET ${keyName(n)}: ${'nil or a value of another size'}`);
      }
      const sec = Math.floor((end - this.t0) / 1e9);
      const slot = (this.perSecond[sec] ??= { ops: 0, failed: 0, maxUs: 0 });
      slot.ops++;
      if (!ok) slot.failed++;
      slot.maxUs = Math.max(slot.maxUs, (end - t) / 1000);
      if (!ok) await sleep(10); // a connection that broke must not spin
    }
  }

  /** Requests completed in the last `seconds` whole seconds, per second. */
  recentRate(seconds: number): number {
    const now = Math.floor((nowNs() - this.t0) / 1e9);
    let n = 0;
    for (let s = now - seconds; s < now; s++) n += this.perSecond[s]?.ops ?? 0;
    return n / seconds;
  }

  /** Seconds since the load's origin (for the timeline's marks). */
  elapsed(): number {
    return (nowNs() - this.t0) / 1e9;
  }

  async stop(): Promise<void> {
    this.current.endNs = nowNs();
    this.stopped = true;
    await Promise.all(this.loops);
    this.clients.forEach((c) => c.disconnect());
  }

  summary(name: string): WindowSummary {
    const w = [...this.windows].reverse().find((x) => x.name === name);
    if (!w) throw new Error(`no load window '${name}'`);
    const seconds = ((w.endNs || nowNs()) - w.startNs) / 1e9;
    const s = w.latency.summary();
    return {
      name,
      seconds,
      requests: s.count,
      opsPerSec: s.count / seconds,
      gets: w.gets,
      sets: w.sets,
      failed: w.failed,
      wrong: w.wrong,
      p50Ms: s.p50Us / 1000,
      p95Ms: s.p95Us / 1000,
      p99Ms: s.p99Us / 1000,
      maxMs: s.maxUs / 1000,
      meanMs: s.meanUs / 1000,
      firstErrors: w.errors,
    };
  }
}

// ---------------------------------------------------------------- CPU per member

type Ticks = Map<string, number | null>;

function memberTicks(members: Member[]): Ticks {
  return new Map(members.map((m) => [m.id, m.server ? procCpuTicks(m.server.pid) : null]));
}

function memberUserTicks(members: Member[]): Ticks {
  return new Map(members.map((m) => [m.id, m.server ? procUserTicks(m.server.pid) : null]));
}

/** % of one core each member used between two samples (from /proc). */
function cpuPctBetween(a: Ticks, b: Ticks, seconds: number): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  for (const [id, t1] of b) {
    const t0 = a.get(id);
    out[id] = t0 === null || t0 === undefined || t1 === null ? null : Math.round(((t1 - t0) / TICKS_PER_SEC / seconds) * 1000) / 10;
  }
  return out;
}

interface WindowCpu {
  /** Each member's CPU, % of one core (null: not running). */
  members: Record<string, number | null>;
  /** This program (the clients). */
  benchPct: number;
  /** The whole machine (nproc * 100 = saturated). */
  machinePct: number | null;
  /** machine - members - this program: other programs and kernel time charged to no process. */
  othersPct: number | null;
  /** User-mode CPU of other programs only (machine user - members' user - this program's user): the noise signal. */
  othersUserPct: number | null;
}

/**
 * Starts measuring the CPU of the members, this program and the machine; stop() gives the
 * window's figures. A member started during the window counts from 0 (its whole life).
 */
function cpuWindow(members: Member[]): { stop(): WindowCpu } {
  const t0 = memberTicks(members);
  const u0 = memberUserTicks(members);
  const pids = new Map(members.map((m) => [m.id, m.server?.pid]));
  const own0 = process.cpuUsage();
  const machineUser0 = machineUserTicks();
  const meter = cpuMeter();
  const start = performance.now();
  return {
    stop() {
      const seconds = (performance.now() - start) / 1000;
      const use: CpuUse = meter.stop();
      const ownUser = process.cpuUsage(own0).user / 1e6;
      const machineUser1 = machineUserTicks();
      const t1 = memberTicks(members);
      const u1 = memberUserTicks(members);
      // started (or restarted) in the window: from 0
      for (const m of members) {
        if (m.server && pids.get(m.id) !== m.server.pid) {
          t0.set(m.id, 0);
          u0.set(m.id, 0);
        }
      }
      const pct = cpuPctBetween(t0, t1, seconds);
      const userPct = cpuPctBetween(u0, u1, seconds);
      const mine = Object.values(pct).reduce<number>((a, b) => a + (b ?? 0), 0);
      const mineUser = Object.values(userPct).reduce<number>((a, b) => a + (b ?? 0), 0);
      const machineUserPct = machineUser0 === null || machineUser1 === null ? null : ((machineUser1 - machineUser0) / TICKS_PER_SEC / seconds) * 100;
      return {
        members: pct,
        benchPct: use.ownPct,
        machinePct: use.machinePct,
        othersPct: use.machinePct === null ? null : Math.max(0, Math.round(use.machinePct - use.ownPct - mine)),
        othersUserPct: machineUserPct === null ? null : Math.max(0, Math.round(machineUserPct - (ownUser / seconds) * 100 - mineUser)),
      };
    },
  };
}

/** Anti-entropy counters summed over the members. */
interface AeSum {
  rounds: number;
  slotsHashed: number;
  keysHashed: number;
  slotsDiffering: number;
  keysRepaired: number;
}

function aeSum(views: (ClusterView | null)[]): Map<string, AeSum> {
  const out = new Map<string, AeSum>();
  for (const v of views) {
    if (!v) continue;
    const a = v.antiEntropy;
    out.set(v.self, { rounds: a.rounds, slotsHashed: a.slotsHashed, keysHashed: a.keysHashed, slotsDiffering: a.slotsDiffering, keysRepaired: a.keysPulled + a.keysPushed });
  }
  return out;
}

/** Per-window change of the anti-entropy counters, summed over the members (a member that restarted counts from 0). */
function aeDelta(a: Map<string, AeSum>, b: Map<string, AeSum>): AeSum {
  const d: AeSum = { rounds: 0, slotsHashed: 0, keysHashed: 0, slotsDiffering: 0, keysRepaired: 0 };
  for (const [id, y] of b) {
    const x = a.get(id);
    for (const k of Object.keys(d) as (keyof AeSum)[]) d[k] += x && y[k] >= x[k] ? y[k] - x[k] : y[k];
  }
  return d;
}

/** CPU (% of one core) that programs other than the members and this one use over `ms`; null if unknown. */
async function othersCpuPct(members: Member[], ms: number): Promise<number | null> {
  const w = cpuWindow(members);
  await sleep(ms);
  return w.stop().othersPct;
}

/**
 * Waits (up to `maxSeconds`) until programs other than the members and this one use less than
 * 15% of a core, over 1 s windows (the members' own CPU does not count: common.ts's
 * waitForQuiet would count it). Returns the last measurement.
 */
async function waitOthersQuiet(members: Member[], maxSeconds: number, thresholdPct = 15): Promise<number | null> {
  const deadline = performance.now() + maxSeconds * 1000;
  let other = await othersCpuPct(members, 1000);
  let said = false;
  while (other !== null && other >= thresholdPct && performance.now() < deadline) {
    if (!said) {
      note(`  other programs use ${other}% of a core; waiting up to ${maxSeconds} s for them to go below ${thresholdPct}%`);
      said = true;
    }
    other = await othersCpuPct(members, 1000);
  }
  if (said) note(`  ${other !== null && other < thresholdPct ? 'quiet now' : 'still busy; going on'} (${other}%)`);
  return other;
}

// ---------------------------------------------------------------- main

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);

function fmtMiB(bytes: number): string {
  return `${fmtInt(bytes / (1024 * 1024))} MiB`;
}

async function main(): Promise<number> {
  const { values: o } = parseArgs({
    options: {
      keys: { type: 'string' },
      'value-bytes': { type: 'string' },
      clients: { type: 'string' },
      durability: { type: 'string', default: 'commit' },
      data: { type: 'string' },
      keep: { type: 'boolean', default: false },
      'load-connections': { type: 'string' },
      pipeline: { type: 'string' },
      'baseline-seconds': { type: 'string' },
      'after-seconds': { type: 'string' },
      'idle-seconds': { type: 'string' },
      'ae-wait': { type: 'string' },
      'settle-timeout': { type: 'string' },
      'skip-restore': { type: 'boolean', default: false },
      'stream-bytes-per-sec': { type: 'string' },
      out: { type: 'string' },
      'wait-quiet': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (o.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const int = (name: string, s: string | undefined, dflt: number): number => positiveOption(name, s, dflt, true);
  const num = (name: string, s: string | undefined, dflt: number): number => positiveOption(name, s, dflt);
  const orZero = (name: string, s: string | undefined, dflt: number): number => (s === '0' ? 0 : num(name, s, dflt));
  const keys = int('keys', o.keys, 1_000_000);
  const valueBytes = int('value-bytes', o['value-bytes'], 1024);
  const clientCount = int('clients', o.clients, 8);
  const loadConnections = int('load-connections', o['load-connections'], 6);
  const pipeline = int('pipeline', o.pipeline, 128);
  const baselineSeconds = num('baseline-seconds', o['baseline-seconds'], 20);
  const afterSeconds = orZero('after-seconds', o['after-seconds'], 20);
  const idleSeconds = num('idle-seconds', o['idle-seconds'], 60);
  const aeWaitSeconds = orZero('ae-wait', o['ae-wait'], 180);
  const waitQuietSeconds = orZero('wait-quiet', o['wait-quiet'], 60);
  const settleTimeoutMs = num('settle-timeout', o['settle-timeout'], 1800) * 1000;
  const durability = o.durability!;
  if (!['fsync', 'commit', 'none'].includes(durability)) throw new Error(`--durability must be fsync, commit or none, got ${durability}`);
  if (!existsSync(path.join(repoRoot, 'dist', 'src', 'cli', 'main.js'))) {
    process.stderr.write('ragkv is not built (dist/src/cli/main.js missing): run `npx tsc -p .` first\n');
    return 1;
  }
  const ownDir = o.data === undefined;
  const root = o.data === undefined ? makeTempDir('elastic') : path.resolve(o.data);
  mkdirSync(root, { recursive: true });
  if (!ownDir && readdirSync(root).length > 0) throw new Error(`--data ${root} is not empty: give an empty or new directory`);

  const machine = machineInfo();
  const code = codeVersion();
  note(`machine: ${machineLine(machine)}; code ${code}`);
  note(
    `plan: ${fmtInt(keys)} keys x ${valueBytes} B on 3 members (--durability ${durability}); join a 4th under ${clientCount} clients ` +
      `(${baselineSeconds} s baseline); ${o['skip-restore'] ? 'no restore' : 'restore n3 from a wiped disk'}; ${idleSeconds} s idle; data in ${root}`,
  );

  const peerPorts = await freePorts(4);
  const streamRate = o['stream-bytes-per-sec'] === undefined ? null : int('stream-bytes-per-sec', o['stream-bytes-per-sec'], 0);
  const extra = ['--durability', durability, ...(streamRate === null ? [] : ['--stream-bytes-per-sec', String(streamRate)])];
  const members: Member[] = [0, 1, 2, 3].map((i) => {
    const id = `n${i + 1}`;
    const dataDir = path.join(root, id);
    // n1..n3 form the cluster (--expect-members 3); n4 joins through them (no --expect-members).
    const args = i < 3 ? memberArgs(id, dataDir, peerPorts[i]!, peerPorts.slice(0, 3), ['--expect-members', '3', ...extra]) : memberArgs(id, dataDir, peerPorts[i]!, peerPorts.slice(0, 3), extra);
    return { id, peerPort: peerPorts[i]!, dataDir, args, server: null, resp: 0, admin: 0 };
  });
  const original = members.slice(0, 3);
  const joiner = members[3]!;
  const running = (): Member[] => members.filter((m) => m.server !== null);
  const views = (): Promise<(ClusterView | null)[]> => Promise.all(running().map((m) => view(m)));

  let load: SteadyLoad | null = null;
  const stopEverything = async (): Promise<void> => {
    await load?.stop().catch(() => {});
    await Promise.allSettled(members.map((m) => m.server?.stop(10_000)));
    if (ownDir && !o.keep) removeDir(root);
  };
  const onSignal = (sig: NodeJS.Signals): void => {
    note(`${sig}: stopping the members`);
    void stopEverything().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  /** Each time a member saw another one not alive (SWIM suspect/dead) while this program polled: a sign of overload. */
  const membershipEvents: string[] = [];
  const seenStatus = new Set<string>();
  const startedAt = performance.now();
  const noteStatuses = (what: string, vs: (ClusterView | null)[]): void => {
    for (const v of vs) {
      for (const m of v?.members ?? []) {
        const k = `${v!.self}>${m.id}:${m.status}`;
        if (m.status === 'alive') {
          seenStatus.forEach((x) => x.startsWith(`${v!.self}>${m.id}:`) && seenStatus.delete(x));
          continue;
        }
        if (seenStatus.has(k)) continue;
        seenStatus.add(k);
        const e = `+${((performance.now() - startedAt) / 1000).toFixed(0)}s ${v!.self} saw ${m.id} ${m.status} (while waiting for ${what.split(' (')[0]})`;
        membershipEvents.push(e);
        note(`  ${e}`);
      }
    }
  };

  /** Polls until `check` of the running members' views returns non-null; throws after the timeout. */
  const waitViews = async <T>(what: string, check: (v: (ClusterView | null)[]) => T | null, timeoutMs: number, every: (v: (ClusterView | null)[]) => void = () => {}): Promise<T> => {
    const deadline = performance.now() + timeoutMs;
    let last: (ClusterView | null)[] = [];
    for (;;) {
      throwIfExited(running());
      last = await views();
      noteStatuses(what, last);
      every(last);
      const r = check(last);
      if (r !== null) return r;
      if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}; last seen: ${describeViews(running(), last)}`);
      await sleep(250);
    }
  };

  /**
   * Waits (up to `maxSeconds`) until every running member has compared all 256 buckets with
   * each of its peers since now: the digests that writes or a change invalidated are rebuilt
   * by then. Returns the seconds it took.
   */
  const aePass = async (label: string, maxSeconds: number): Promise<number> => {
    const peers = running().length - 1;
    const d = phase(`${label}: wait (up to ${maxSeconds} s) until every member compared all 256 buckets with each of its ${peers} peers (anti-entropy digests rebuilt)`);
    const start0 = new Map((await views()).map((v) => [v?.self ?? '', v?.antiEntropy.bucketsCompared ?? 0]));
    const w0 = performance.now();
    try {
      await waitViews(
        'a full anti-entropy pass',
        (v) => (v.every((x) => x && x.antiEntropy.bucketsCompared - (start0.get(x.self) ?? 0) >= 256 * peers) ? true : null),
        maxSeconds * 1000,
      );
    } catch (err) {
      note(`  ${(err as Error).message.split(';')[0]}: going on`);
    }
    const seconds = (performance.now() - w0) / 1000;
    d();
    return seconds;
  };

  const result: Record<string, unknown> = { kind: 'bench:elastic', machine, code, options: { keys, valueBytes, clients: clientCount, durability, loadConnections, pipeline, baselineSeconds, afterSeconds, idleSeconds, aeWaitSeconds, waitQuietSeconds, streamBytesPerSec: streamRate } };
  const startedAll = performance.now();
  try {
    // ---- form the cluster
    let done = phase('start n1..n3');
    await Promise.all(original.map((m) => startMember(m, root)));
    const formedEpoch = await waitViews('n1..n3 on one table', (v) => settledEpoch(v, ['n1', 'n2', 'n3']), 60_000);
    done(`epoch ${formedEpoch}; pids ${original.map((m) => m.server!.pid).join(', ')}`);

    // ---- load
    const values = new Values(valueBytes);
    done = phase(`load ${fmtInt(keys)} keys of ${valueBytes} B (pipelined SET, ${loadConnections} connections over n1..n3, ${pipeline} per batch)`);
    const loaded = await loadKeys(original, keys, values, loadConnections, pipeline);
    done(`${fmtInt(keys / loaded.seconds)} keys/s${loaded.failed ? `, ${loaded.failed} failed` : ''}`);
    if (loaded.failed) throw new Error(`${loaded.failed} SETs failed while loading`);
    done = phase('wait for every copy (DBSIZE of n1..n3 = 3 x keys), then sync');
    await waitViews('no hints pending', (v) => (v.every((x) => x && (x.hints?.pending ?? 0) === 0) ? true : null), 300_000);
    const copiesDeadline = performance.now() + 300_000;
    let sizes = await Promise.all(original.map(dbsize));
    while (sum(sizes) < 3 * keys && performance.now() < copiesDeadline) {
      await sleep(500);
      sizes = await Promise.all(original.map(dbsize));
    }
    const syncSeconds = await settle();
    done(`DBSIZE ${sizes.map(fmtInt).join(' + ')}; sync ${syncSeconds.toFixed(1)} s`);
    result.load = { keys, valueBytes, seconds: loaded.seconds, keysPerSec: keys / loaded.seconds, dbsizes: sizes, syncSeconds };

    // ---- join under load
    // The load marked every slot's digest stale: let anti-entropy rebuild them first, so the
    // baseline is the steady state (anti-entropy pauses during a change).
    const aeBeforeBaselineSeconds = aeWaitSeconds > 0 ? await aePass('before the baseline', aeWaitSeconds) : 0;
    const quietBeforeBaseline = waitQuietSeconds > 0 ? await waitOthersQuiet(members, waitQuietSeconds) : null;
    load = new SteadyLoad(
      original.map((m) => m.resp),
      clientCount,
      keys,
      values,
    );
    await load.start();
    await sleep(3000);
    done = phase(`steady load: ${clientCount} clients, 90% GET / 10% SET, baseline ${baselineSeconds} s`);
    let cpu: { stop(): WindowCpu };
    let baselineCpu: WindowCpu;
    let ae = new Map<string, AeSum>();
    const aeWindows: Record<string, AeSum> = {};
    // a baseline during which other programs took much CPU is measured again (at most 3 times)
    for (let attempt = 1; ; attempt++) {
      load.window('baseline');
      ae = aeSum(await views());
      cpu = cpuWindow(members);
      await sleep(baselineSeconds * 1000);
      baselineCpu = cpu.stop();
      aeWindows.baseline = aeDelta(ae, aeSum(await views()));
      if ((baselineCpu.othersUserPct ?? 0) <= NOISY_PCT || attempt === 3) break;
      note(`  other programs used ~${baselineCpu.othersUserPct}% of a core during the baseline; measuring it again`);
    }
    load.window('move');
    const base = load.summary('baseline');
    done(`${fmtInt(base.opsPerSec)} ops/s, p50 ${fmtNum(base.p50Ms, 3)} ms, p99 ${fmtNum(base.p99Ms, 3)} ms, ${base.failed} failed`);

    const before = await views();
    const epochBefore = settledEpoch(before, ['n1', 'n2', 'n3']);
    const counters0 = before.map((v) => v?.placement?.counters ?? { streamedKeys: 0, streamedBytes: 0, droppedKeys: 0 });
    done = phase('join n4 (started with --seeds n1..n3) under the same load');
    const marks: { event: string; seconds: number; loadSeconds: number }[] = [];
    const joinStart = performance.now();
    const mark = (event: string): void => {
      const seconds = (performance.now() - joinStart) / 1000;
      marks.push({ event, seconds, loadSeconds: load!.elapsed() });
      note(`  +${seconds.toFixed(1)}s ${event}`);
    };
    ae = aeSum(before);
    cpu = cpuWindow(members);
    await startMember(joiner, root);
    mark('n4 listening');
    let lastStage = '';
    let lastProgress = performance.now();
    const joinEpoch = await waitViews(
      'the join to settle (every member on one epoch, no change, n4 in the table)',
      (v) => (v.length === 4 ? settledEpoch(v, ['n1', 'n2', 'n3', 'n4']) : null),
      settleTimeoutMs,
      (v) => {
        const c = v.find((x) => x?.placement?.change)?.placement?.change;
        const stage = c ? `${c.kind} ${c.member} ${c.stage} (${fmtInt(c.moving)} slot replicas moving)` : '';
        if (stage && stage !== lastStage) {
          mark(`change: ${stage}`);
          lastStage = stage;
        }
        if (performance.now() - lastProgress > 5000) {
          lastProgress = performance.now();
          const s = v[3]?.placement?.stream;
          note(`  n4 stream: ${s ? `${fmtInt(s.keys)} keys, ${fmtMiB(s.bytes)}, sources ${s.sourcesDone}/${s.sources}` : '-'}; clients ${fmtInt(load!.recentRate(5))} ops/s`);
        }
      },
    );
    const joinSeconds = (performance.now() - joinStart) / 1000;
    mark(`settled on epoch ${joinEpoch}`);
    const moveCpu = cpu.stop();
    load.window('cleanup');
    const after = await views();
    aeWindows.join = aeDelta(ae, aeSum(after));
    ae = aeSum(after);
    const counters1 = after.map((v) => v?.placement?.counters ?? { streamedKeys: 0, streamedBytes: 0, droppedKeys: 0 });
    const streamedKeys = sum(counters1.map((c) => c.streamedKeys)) - sum(counters0.map((c) => c.streamedKeys));
    const streamedBytes = sum(counters1.map((c) => c.streamedBytes)) - sum(counters0.map((c) => c.streamedBytes));
    const n4Slots = after[3]?.members.find((m) => m.id === 'n4')?.slots ?? 0;
    done(`${joinSeconds.toFixed(1)} s; ${fmtInt(streamedKeys)} keys, ${fmtMiB(streamedBytes)} streamed; n4 holds ${fmtInt(n4Slots)} slot replicas`);

    // cleanup: the old owners drop the slots n4 took over (the load goes on)
    done = phase('same load while the old owners drop the moved slots (until DBSIZE of n1..n4 = 3 x keys)');
    cpu = cpuWindow(members);
    const cleanupDeadline = performance.now() + settleTimeoutMs;
    let sizes4 = await Promise.all(members.map(dbsize));
    while (sum(sizes4) > 3 * keys && performance.now() < cleanupDeadline) {
      await sleep(1000);
      sizes4 = await Promise.all(members.map(dbsize));
    }
    const cleanupSeconds = (performance.now() - joinStart) / 1000 - joinSeconds;
    const cleanupCpu = cpu.stop();
    load.window('rebuild');
    const afterCleanup = await views();
    aeWindows.cleanup = aeDelta(ae, aeSum(afterCleanup));
    ae = aeSum(afterCleanup);
    const droppedKeys = sum(afterCleanup.map((v) => v?.placement?.counters.droppedKeys ?? 0)) - sum(counters0.map((c) => c.droppedKeys));
    const copiesOk = sum(sizes4) === 3 * keys;
    done(`${copiesOk ? '' : 'NOT DONE: '}DBSIZE ${sizes4.map(fmtInt).join(' + ')} = ${fmtInt(sum(sizes4))}; ${fmtInt(droppedKeys)} keys dropped; ${cleanupSeconds.toFixed(1)} s after the join settled`);
    // The change made every digest stale: the same load while anti-entropy rebuilds them, so that
    // the last window is the 4 members' steady state.
    let rebuildCpu: WindowCpu | null = null;
    let rebuildSeconds = 0;
    if (aeWaitSeconds > 0) {
      cpu = cpuWindow(members);
      rebuildSeconds = await aePass('same load while anti-entropy rebuilds its digests', aeWaitSeconds);
      rebuildCpu = cpu.stop();
      const v = await views();
      aeWindows.rebuild = aeDelta(ae, aeSum(v));
      ae = aeSum(v);
    }
    load.window('after');
    let afterCpu: WindowCpu | null = null;
    if (afterSeconds > 0) {
      done = phase(`same load for ${afterSeconds} s on the 4 settled members`);
      cpu = cpuWindow(members);
      await sleep(afterSeconds * 1000);
      afterCpu = cpu.stop();
      aeWindows.after = aeDelta(ae, aeSum(await views()));
      done();
    }
    await load.stop();
    const move = load.summary('move');
    const cleanupW = load.summary('cleanup');
    const afterW = afterSeconds > 0 ? load.summary('after') : null;
    const rebuildW = aeWaitSeconds > 0 ? load.summary('rebuild') : null;
    const timeline = load.perSecond.map((s, i) => ({ second: i, ops: s?.ops ?? 0, failed: s?.failed ?? 0, maxMs: Math.round((s?.maxUs ?? 0) / 100) / 10 }));
    load = null;

    const windows = [base, move, cleanupW, ...(rebuildW ? [rebuildW] : []), ...(afterW ? [afterW] : [])];
    const failedTotal = sum(windows.map((w) => w.failed));
    const wrongTotal = sum(windows.map((w) => w.wrong));
    result.join = {
      seconds: joinSeconds,
      epochBefore,
      epochAfter: joinEpoch,
      marks,
      streamedKeys,
      streamedBytes,
      n4SlotReplicas: n4Slots,
      cleanup: { seconds: cleanupSeconds, done: copiesOk, dbsizes: sizes4, droppedKeys },
      rebuildSeconds,
      clients: { baseline: base, move, cleanup: cleanupW, rebuild: rebuildW, after: afterW, failed: failedTotal, wrong: wrongTotal },
      ratios: {
        throughput: move.opsPerSec / base.opsPerSec,
        p50: move.p50Ms / base.p50Ms,
        p99: move.p99Ms / base.p99Ms,
        cleanupThroughput: cleanupW.opsPerSec / base.opsPerSec,
        cleanupP99: cleanupW.p99Ms / base.p99Ms,
        afterThroughput: afterW ? afterW.opsPerSec / base.opsPerSec : null,
        afterP99: afterW ? afterW.p99Ms / base.p99Ms : null,
      },
      cpuPct: { baseline: baselineCpu, move: moveCpu, cleanup: cleanupCpu, rebuild: rebuildCpu, after: afterCpu },
      quietBeforeBaselinePct: quietBeforeBaseline,
      aeBeforeBaselineSeconds,
      antiEntropy: aeWindows,
      timeline,
    };

    // ---- restore a wiped member
    let restore: Record<string, unknown> | null = null;
    if (!o['skip-restore']) {
      const victim = members[2]!;
      const keysBefore = await dbsize(victim);
      const epochR0 = settledEpoch(await views(), ['n1', 'n2', 'n3', 'n4'])!;
      done = phase(`restore ${victim.id}: SIGKILL, delete its data directory, start it again (same id and peer port)`);
      victim.server!.child.kill('SIGKILL');
      await victim.server!.exited;
      victim.server = null;
      removeDir(victim.dataDir);
      const restoreStart = performance.now();
      await startMember(victim, root);
      const listeningSeconds = (performance.now() - restoreStart) / 1000;
      let restoreSeen = -1;
      const epochR = await waitViews(
        `${victim.id} restored (placement.awaitingRestore false, every member on one epoch > ${epochR0}, no change)`,
        (v) => {
          const mine = v.find((x) => x?.self === victim.id);
          if (!mine?.placement || mine.placement.awaitingRestore) return null;
          const e = settledEpoch(v, ['n1', 'n2', 'n3', 'n4']);
          return e !== null && e > epochR0 ? e : null;
        },
        settleTimeoutMs,
        (v) => {
          if (restoreSeen < 0 && v.some((x) => x?.placement?.change?.kind === 'restore')) {
            restoreSeen = (performance.now() - restoreStart) / 1000;
            note(`  +${restoreSeen.toFixed(1)}s restore change started`);
          }
        },
      );
      const restoreSeconds = (performance.now() - restoreStart) / 1000;
      const mine = await view(victim);
      const keysAfter = await dbsize(victim);
      restore = {
        member: victim.id,
        seconds: restoreSeconds,
        listeningSeconds,
        changeSeenSeconds: restoreSeen,
        epochBefore: epochR0,
        epochAfter: epochR,
        streamedKeys: mine?.placement?.counters.streamedKeys ?? null,
        streamedBytes: mine?.placement?.counters.streamedBytes ?? null,
        keysBefore,
        keysAfter,
      };
      done(`${restoreSeconds.toFixed(1)} s; ${fmtInt(Number(restore.streamedKeys))} keys, ${fmtMiB(Number(restore.streamedBytes))} streamed; DBSIZE ${fmtInt(keysBefore)} before, ${fmtInt(keysAfter)} after`);
    }
    result.restore = restore;

    // ---- idle anti-entropy CPU
    const warmupSeconds = aeWaitSeconds > 0 ? await aePass('idle', aeWaitSeconds) : 0;
    if (waitQuietSeconds > 0) await waitOthersQuiet(members, waitQuietSeconds);
    done = phase(`idle: CPU of every member over ${idleSeconds} s, no client load`);
    const bg = await othersCpuPct(members, 1000);
    const idleMeter = cpuMeter();
    const pm0 = await Promise.all(members.map(processMetrics));
    const cpu0 = pm0.map((x) => x.cpuSeconds);
    const v0 = await views();
    const pt0 = memberTicks(members);
    const i0 = performance.now();
    await sleep(idleSeconds * 1000);
    const pm1 = await Promise.all(members.map(processMetrics));
    const cpu1 = pm1.map((x) => x.cpuSeconds);
    const v1 = await views();
    const pt1 = memberTicks(members);
    const idleActual = (performance.now() - i0) / 1000;
    const idleMachine = idleMeter.stop();
    const procPct = cpuPctBetween(pt0, pt1, idleActual);
    const idleMembers = members.map((m, i) => {
      const a = v0[i]?.antiEntropy;
      const b = v1[i]?.antiEntropy;
      const d = (k: keyof ClusterView['antiEntropy']): number | null => (a && b ? b[k] - a[k] : null);
      const c0 = cpu0[i];
      const c1 = cpu1[i];
      return {
        id: m.id,
        cpuPct: c0 === null || c1 === null || c0 === undefined || c1 === undefined ? null : Math.round(((c1 - c0) / idleActual) * 1000) / 10,
        procCpuPct: procPct[m.id] ?? null,
        rssMiB: pm1[i]?.rssMiB ?? null,
        heapUsedMiB: pm1[i]?.heapUsedMiB ?? null,
        uptimeSeconds: m.server ? Math.round((performance.now() - (startedOf.get(m.id) ?? 0)) / 1000) : null,
        aeRounds: d('rounds'),
        aeBucketsCompared: d('bucketsCompared'),
        aeSlotsHashed: d('slotsHashed'),
        aeKeysHashed: d('keysHashed'),
        aeSlotsDiffering: d('slotsDiffering'),
        aeKeysRepaired: a && b ? b.keysPulled + b.keysPushed - a.keysPulled - a.keysPushed : null,
      };
    });
    const maxIdle = Math.max(...idleMembers.map((m) => m.cpuPct ?? m.procCpuPct ?? NaN));
    done(idleMembers.map((m) => `${m.id} ${fmtNum(m.cpuPct ?? NaN, 1)}%`).join(', '));
    const idleOthers = idleMachine.machinePct === null ? null : Math.max(0, Math.round(idleMachine.machinePct - idleMachine.ownPct - sum(idleMembers.map((m) => m.procCpuPct ?? 0))));
    result.idle = { seconds: idleActual, warmupSeconds, backgroundCpuPct: bg, machineCpuPct: idleMachine.machinePct, othersCpuPct: idleOthers, members: idleMembers, maxCpuPct: maxIdle };

    const totalSeconds = (performance.now() - startedAll) / 1000;
    result.totalSeconds = totalSeconds;
    result.membershipEvents = membershipEvents;
    result.aims = {
      p99AtMost2x: move.p99Ms / base.p99Ms <= 2,
      throughputAtLeast08x: move.opsPerSec / base.opsPerSec >= 0.8,
      noFailedRequests: failedTotal === 0 && wrongTotal === 0,
      idleCpuAtMost2Pct: maxIdle <= 2,
    };

    // ---- report
    const lines: string[] = [];
    lines.push(`## Elasticity: join, restore, idle anti-entropy (bench:elastic)`, '');
    lines.push(`- date: ${machine.date}; total run time ${totalSeconds.toFixed(0)} s`);
    lines.push(`- machine: ${machineLine(machine)}; code: ${code}`);
    lines.push(
      `- 3 members (\`ragkv start --node-id n<i> --expect-members 3 ${extra.join(' ')}\`, N=3, W=QUORUM, R=ONE) loaded with ${fmtInt(keys)} keys of ${valueBytes} B ` +
        `in ${loaded.seconds.toFixed(0)} s (${fmtInt(keys / loaded.seconds)} keys/s, pipelined SET x${pipeline} over ${loadConnections} connections)`,
    );
    lines.push(`- steady load: ${clientCount} ioredis connections over n1..n3, one request at a time each, 90% GET / 10% SET of random loaded keys`);
    lines.push('');
    const row = (label: string, w: WindowSummary): string[] => [
      label, w.seconds.toFixed(1), fmtInt(w.opsPerSec), fmtRatio(w.opsPerSec, base.opsPerSec), fmtNum(w.p50Ms, 3), fmtNum(w.p99Ms, 3), fmtRatio(w.p99Ms, base.p99Ms), fmtNum(w.maxMs, 1), String(w.failed), String(w.wrong),
    ];
    const loadRows = [row('baseline (3 members)', base), row('join: n4 start to settled', move), row('cleanup: old owners drop moved slots', cleanupW)];
    if (rebuildW) loadRows.push(row('rebuild: anti-entropy digests', rebuildW));
    if (afterW) loadRows.push(row('after: 4 members, steady', afterW));
    lines.push(`### Client load`, '');
    lines.push(markdownTable(['window', 's', 'ops/s', 'vs base', 'p50 ms', 'p99 ms', 'p99 vs base', 'max ms', 'failed', 'nil/wrong'], loadRows), '');
    const rows: string[][] = [
      ['join: start of n4 to settled', `${joinSeconds.toFixed(1)} s`, 'aim: -'],
      ['join: keys / bytes streamed', `${fmtInt(streamedKeys)} / ${fmtMiB(streamedBytes)}`, `n4 holds ${fmtInt(n4Slots)} of ${fmtInt(16384 * 3)} slot replicas`],
      ['join: stream rate', `${fmtInt(streamedKeys / joinSeconds)} keys/s, ${fmtMiB(streamedBytes / joinSeconds)}/s`, 'over the whole join'],
      ['join: throughput during / baseline', fmtRatio(move.opsPerSec, base.opsPerSec), `aim >= 0.8x: ${move.opsPerSec / base.opsPerSec >= 0.8 ? 'met' : 'not met'}`],
      ['join: p50 during / baseline', fmtRatio(move.p50Ms, base.p50Ms), ''],
      ['join: p99 during / baseline', fmtRatio(move.p99Ms, base.p99Ms), `aim <= 2x: ${move.p99Ms / base.p99Ms <= 2 ? 'met' : 'not met'}`],
      ['join: failed requests (+ nil/wrong GETs)', `${failedTotal} (+ ${wrongTotal})`, `aim 0: ${failedTotal + wrongTotal === 0 ? 'met' : 'not met'}`],
      ['join: old owners drop moved slots', `${copiesOk ? '' : 'not done in '}${cleanupSeconds.toFixed(1)} s after settled`, `${fmtInt(droppedKeys)} keys dropped`],
    ];
    if (restore) {
      rows.push(
        ['restore: wiped n3, start to restored', `${Number(restore.seconds).toFixed(1)} s`, `listening after ${listeningSecondsText(restore)}`],
        ['restore: keys / bytes streamed', `${fmtInt(Number(restore.streamedKeys))} / ${fmtMiB(Number(restore.streamedBytes))}`, `DBSIZE ${fmtInt(Number(restore.keysBefore))} before, ${fmtInt(Number(restore.keysAfter))} after`],
      );
    }
    rows.push([
      `idle: CPU per member over ${idleActual.toFixed(0)} s`,
      idleMembers.map((m) => `${m.id} ${fmtNum(m.cpuPct ?? NaN, 1)}%`).join(', '),
      `aim <= 2% of a core: ${maxIdle <= 2 ? 'met' : 'not met'}`,
    ]);
    lines.push(`### Figures`, '');
    lines.push(markdownTable(['measure', 'value', 'note'], rows, 3), '');
    lines.push(`### Idle anti-entropy (deltas over the idle window)`, '');
    lines.push(
      markdownTable(
        ['member', 'CPU % (metrics)', 'CPU % (/proc)', 'AE rounds', 'buckets compared', 'slots hashed', 'keys hashed', 'slots differing', 'keys repaired', 'process age s', 'RSS MiB', 'heap MiB'],
        idleMembers.map((m) => [
          m.id,
          fmtNum(m.cpuPct ?? NaN, 2),
          fmtNum(m.procCpuPct ?? NaN, 1),
          ...[m.aeRounds, m.aeBucketsCompared, m.aeSlotsHashed, m.aeKeysHashed, m.aeSlotsDiffering, m.aeKeysRepaired, m.uptimeSeconds, m.rssMiB, m.heapUsedMiB].map((x) => (x === null ? 'n/a' : fmtInt(x))),
        ]),
      ),
      '',
    );
    lines.push(
      `CPU per member includes SWIM gossip, placement and hint timers: an upper bound of anti-entropy's cost. ` +
        `Other programs used ~${idleOthers ?? '?'}% of a core during the window (~${bg ?? '?'}% in the second before it).`,
      '',
    );
    lines.push(`### CPU during the load windows (% of one core)`, '');
    lines.push(
      markdownTable(
        ['window', ...members.map((m) => m.id), 'bench process', 'others', "others' user", 'machine', 'AE keys hashed'],
        (
          [
            ['baseline', baselineCpu],
            ['join', moveCpu],
            ['cleanup', cleanupCpu],
            ['rebuild', rebuildCpu],
            ['after', afterCpu],
          ] as [string, WindowCpu | null][]
        )
          .filter((x): x is [string, WindowCpu] => x[1] !== null)
          .map(([label, c]) => [label, ...members.map((m) => (c.members[m.id] === null ? '-' : fmtNum(c.members[m.id] ?? NaN, 0))), String(c.benchPct), String(c.othersPct ?? 'n/a'), String(c.othersUserPct ?? 'n/a'), String(c.machinePct ?? 'n/a'), fmtInt(aeWindows[label]?.keysHashed ?? NaN)]),
      ),
      '',
      `"others" = machine - members - this program: other programs on the machine, plus kernel time (loopback networking, write-back) charged to no process; ` +
        `"others' user" = the user-mode CPU of other programs only (well above 0: other work shared the cores and the window's figures are noisy). ` +
        `"AE keys hashed": keys anti-entropy rehashed in the window, all members (a change invalidates every digest; anti-entropy pauses while a change is in flight). ` +
        `The machine has ${machine.nproc * 100}%.`,
      '',
    );
    lines.push(`Join events: ${marks.map((m) => `+${m.seconds.toFixed(1)}s ${m.event}`).join('; ')}`, '');
    if (membershipEvents.length) lines.push(`Members seen not alive while polling: ${membershipEvents.join('; ')}`, '');
    const file = o.out === undefined ? writeResults('elastic', result) : writeResultsTo(o.out, result);
    lines.push(`JSON: ${path.relative(repoRoot, file)}`);
    process.stdout.write(`\n${lines.join('\n')}\n`);
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return failedTotal + wrongTotal === 0 ? 0 : 1;
  } finally {
    const done = phase('stop the members');
    await stopEverything();
    done(ownDir && !o.keep ? `removed ${root}` : `kept ${root}`);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** `git describe`-like: the commit of the checkout, "+ changes" when the tree differs from it. */
function codeVersion(): string {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return `commit ${commit}${dirty ? ' + uncommitted changes' : ''}`;
  } catch {
    return 'unknown (not a git checkout)';
  }
}

/** Writes `data` as JSON to <dir>/elastic-<date>T<time>.json; returns the path. */
function writeResultsTo(dir: string, data: unknown): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(path.resolve(dir), `elastic-${new Date().toISOString().replace(/:/g, '-').replace(/\..*$/, '')}.json`);
  writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
  return file;
}

function listeningSecondsText(r: Record<string, unknown>): string {
  return `${Number(r.listeningSeconds).toFixed(1)} s, restore change seen after ${Number(r.changeSeenSeconds).toFixed(1)} s`;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench:elastic failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
