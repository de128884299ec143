/**
 * Cluster fault tests on real processes: 3 and 5 `ragkv` members, each bound to its own
 * loopback address, under concurrent writes at W=QUORUM (R=ONE, N=3: the defaults).
 *
 * 1. 3 members, `kill -9` one mid-stream: no acknowledged write lost, writes to the live
 *    members and reads keep succeeding; restarted on its data, the member catches up
 *    (hints) and holds every acknowledged key in its own local copy.
 * 2. The same with 5 members (sloppy quorum: writes for the dead member's ranges go to
 *    fallbacks with hints).
 * 3. A network partition {3 members} | {2 members} made with iptables: the majority keeps
 *    serving; after healing, every acknowledged write (on either side) is on every replica.
 *
 * Figures (acknowledged, lost, failed, reads, time to detect, time to converge) go to the
 * test's diagnostics. Every child process is killed in `finally`; the iptables chain is
 * removed in `finally`.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { PlacementTable } from '../src/cluster/placement/table.js';
import { ProcessCluster, waitFor } from './helpers/cluster.js';

// ---------------------------------------------------------------------------------------
// Workload: writers, readers, verification

/** SWIM's documented bound: a crashed member is marked dead within 5 s. */
const detectBoundMs = 5000;
const ns = 'default';

function connect(host: string, port: number): Redis {
  const client = new Redis({
    host,
    port,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
    connectTimeout: 2000,
    // A command with no answer by then has an unknown outcome: counted as failed, not acked.
    commandTimeout: 10_000,
  });
  client.on('error', () => {});
  return client;
}

interface Failure {
  writer: number;
  member: number;
  startedAt: number;
  endedAt: number;
  message: string;
}

interface WorkloadOptions {
  writers: number;
  /** Shared append logs (every writer appends to all of them in turn). */
  logs: number;
  /** The member writer w starts on. */
  route: (w: number) => number;
  /**
   * Called after a write to `member` failed: the member writer w moves to (a new client is
   * connected), or the same member to keep using it, or null to stop that writer.
   */
  onFailure: (w: number, member: number) => number | null;
}

/**
 * Concurrent writers: each iteration either SETs a unique key to a unique value or APPENDs
 * a unique token to one of the shared logs. A write counts as acknowledged only once its
 * reply arrived; a failed write is recorded with its member and start time.
 */
class Workload {
  readonly sets = new Map<string, string>();
  readonly setKeys: string[] = [];
  /** log key -> acknowledged tokens */
  readonly appends = new Map<string, string[]>();
  readonly ackedBy: number[];
  /** Every acknowledged write by id (SET key, or `log|token`). */
  readonly acks = new Map<string, Acked>();
  readonly failures: Failure[] = [];
  acked = 0;
  private stopped = false;
  private loops: Promise<void>[] = [];
  private readonly clients = new Set<Redis>();
  private waiters: { n: number; resolve: () => void }[] = [];

  constructor(
    private readonly cluster: ProcessCluster,
    private readonly options: WorkloadOptions,
    readonly prefix: string,
  ) {
    this.ackedBy = cluster.specs.map(() => 0);
    for (let l = 0; l < options.logs; l++) this.appends.set(this.logKey(l), []);
  }

  logKey(l: number): string {
    return `${this.prefix}log:${l}`;
  }

  get appendsAcked(): number {
    let n = 0;
    for (const t of this.appends.values()) n += t.length;
    return n;
  }

  start(): void {
    this.loops = Array.from({ length: this.options.writers }, (_, w) => this.writer(w));
  }

  /** Resolves once `n` writes in total were acknowledged. */
  reach(n: number, timeoutMs: number): Promise<void> {
    if (this.acked >= n) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const fails = this.failures.slice(-3).map((f) => `${this.cluster.id(f.member)}: ${f.message}`).join('; ');
        reject(new Error(`only ${this.acked} of ${n} writes acknowledged within ${timeoutMs} ms (last failures: ${fails})`));
      }, timeoutMs);
      this.waiters.push({ n, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }

  private acknowledged(member: number): void {
    this.acked++;
    this.ackedBy[member]!++;
    if (this.waiters.length) {
      const ready = this.waiters.filter((x) => this.acked >= x.n);
      this.waiters = this.waiters.filter((x) => this.acked < x.n);
      ready.forEach((x) => x.resolve());
    }
  }

  private async open(member: number): Promise<Redis> {
    const c = connect(this.cluster.host(member), this.cluster.member(member).ports.resp);
    this.clients.add(c);
    await c.connect();
    return c;
  }

  private async writer(w: number): Promise<void> {
    let member: number | null = this.options.route(w);
    let client: Redis | null = null;
    for (let i = 0; !this.stopped && member !== null; i++) {
      const key = `${this.prefix}w${w}:k${i}`;
      const value = `v-${w}-${i}-${'x'.repeat(i % 64)}`;
      const log = this.logKey(i % this.options.logs);
      const token = `<${w}.${i}>`;
      const startedAt = Date.now();
      try {
        client ??= await this.open(member);
        if (i % 2 === 0) {
          await client.set(key, value);
          this.sets.set(key, value);
          this.setKeys.push(key);
          this.acks.set(key, { key, member, startedAt, ackedAt: Date.now() });
        } else {
          await client.append(log, token);
          this.appends.get(log)!.push(token);
          this.acks.set(`${log}|${token}`, { key: log, member, startedAt, ackedAt: Date.now() });
        }
        this.acknowledged(member);
      } catch (err) {
        this.failures.push({ writer: w, member, startedAt, endedAt: Date.now(), message: err instanceof Error ? err.message : String(err) });
        const next = this.options.onFailure(w, member);
        if (next !== member && client) {
          client.disconnect();
          this.clients.delete(client);
          client = null;
        } else if (client && client.status !== 'ready') {
          client.disconnect();
          this.clients.delete(client);
          client = null;
        }
        member = next;
      }
    }
  }

  /** Stops the writers (each finishes its write in flight) and disconnects. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
    this.close();
  }

  /** Disconnects every client (for `finally`). */
  close(): void {
    this.stopped = true;
    for (const c of this.clients) c.disconnect();
    this.clients.clear();
  }
}

/** Readers on one member: GET of acknowledged keys, counting answers, stale answers and errors. */
class Readers {
  ok = 0;
  failed = 0;
  /** Answers that did not show the acknowledged value yet (allowed at R=ONE). */
  stale = 0;
  lastError = '';
  private stopped = false;
  private loops: Promise<void>[] = [];
  private readonly clients: Redis[] = [];

  constructor(
    private readonly cluster: ProcessCluster,
    private readonly member: number,
    private readonly workload: Workload,
    private readonly count = 2,
  ) {}

  async start(): Promise<void> {
    for (let r = 0; r < this.count; r++) {
      const c = connect(this.cluster.host(this.member), this.cluster.member(this.member).ports.resp);
      this.clients.push(c);
      await c.connect();
    }
    this.loops = this.clients.map((c, r) => this.reader(c, r));
  }

  /** Counts since `reset()` are the figures of one phase. */
  reset(): void {
    this.ok = this.failed = this.stale = 0;
  }

  private async reader(client: Redis, r: number): Promise<void> {
    let n = r;
    while (!this.stopped) {
      const keys = this.workload.setKeys;
      if (keys.length === 0) {
        await new Promise((res) => setImmediate(res));
        continue;
      }
      // Recent keys and old keys alike.
      const key = keys[(n = (n * 7919 + 104_729) % 1_000_003) % keys.length]!;
      try {
        const v = await client.get(key);
        this.ok++;
        if (v !== this.workload.sets.get(key)) this.stale++;
      } catch (err) {
        this.failed++;
        this.lastError = err instanceof Error ? err.message : String(err);
        if (client.status !== 'ready') return;
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
    this.close();
  }

  close(): void {
    this.stopped = true;
    this.clients.forEach((c) => c.disconnect());
  }
}

/** One acknowledged write: a SET key, or an append token of a log (id `log|token`). */
interface Acked {
  key: string;
  member: number;
  startedAt: number;
  ackedAt: number;
}

interface Check {
  sets: number;
  appends: number;
  /** Ids of acknowledged writes the member did not show (SET keys, `log|token`). */
  missing: Set<string>;
  /** Acknowledged append tokens present more than once. */
  duplicated: number;
  examples: string[];
}

/**
 * Reads every acknowledged SET key and every shared log through member i (R=ONE: from its
 * own copy for keys it replicates, from one replica otherwise) and collects what is
 * missing or wrong, and acknowledged append tokens present more than once. `only`
 * restricts the check to some keys (e.g. those the member replicates).
 */
async function checkVia(cluster: ProcessCluster, i: number, wl: Workload, only: (key: string) => boolean = () => true): Promise<Check> {
  const client = connect(cluster.host(i), cluster.member(i).ports.resp);
  await client.connect();
  const out: Check = { sets: 0, appends: 0, missing: new Set(), duplicated: 0, examples: [] };
  try {
    const keys = wl.setKeys.filter(only);
    for (let k = 0; k < keys.length; k += 200) {
      const batch = keys.slice(k, k + 200);
      const values = await client.mget(...batch);
      batch.forEach((key, j) => {
        out.sets++;
        if (values[j] !== wl.sets.get(key)) {
          out.missing.add(key);
          if (out.examples.length < 3) out.examples.push(`${key}: want ${wl.sets.get(key)}, got ${values[j]}`);
        }
      });
    }
    for (const [log, tokens] of wl.appends) {
      if (!only(log)) continue;
      const text = (await client.get(log)) ?? '';
      const counts = new Map<string, number>();
      for (const m of text.matchAll(/<\d+\.\d+>/g)) counts.set(m[0], (counts.get(m[0]) ?? 0) + 1);
      for (const tok of tokens) {
        out.appends++;
        const c = counts.get(tok) ?? 0;
        if (c === 0) {
          out.missing.add(`${log}|${tok}`);
          if (out.examples.length < 3) out.examples.push(`${log}: acknowledged append ${tok} missing`);
        } else if (c > 1) {
          out.duplicated++;
          if (out.examples.length < 3) out.examples.push(`${log}: acknowledged append ${tok} present ${c} times`);
        }
      }
    }
  } finally {
    client.disconnect();
  }
  return out;
}

/** The ring the members build (MembershipView: every member remembered, N=3, default vnodes). */
function ringOf(cluster: ProcessCluster): PlacementTable {
  return PlacementTable.initial(cluster.specs.map((s) => ({ id: s.id })), 3, cluster.specs[0]!.id);
}

function describeCheck(c: Check): string {
  return `${c.sets} SET keys and ${c.appends} appends checked: ${c.missing.size} missing or wrong, ${c.duplicated} appends duplicated` +
    (c.examples.length ? ` (e.g. ${c.examples.join('; ')})` : '');
}

interface ReplicaReport {
  /** Acknowledged writes checked. */
  total: number;
  /** Acknowledged writes on none of their replicas: lost. */
  lost: string[];
  /** Acknowledged writes missing on some (not all) of their replicas. */
  underReplicated: string[];
  duplicated: number;
  /** Missing copies per member id. */
  missingPerMember: Map<string, number>;
  /** Human-readable breakdown of the missing copies (by phase and side of the coordinator). */
  breakdown: string[];
}

/**
 * Checks the local copy of every replica: each member answers the keys it replicates from
 * its own store at R=ONE, so reading each key through each of its replicas sees every copy.
 * An acknowledged write missing on all its replicas is lost; missing on some, it is
 * under-replicated (a stale R=ONE read on that replica).
 */
async function checkReplicas(
  cluster: ProcessCluster,
  wl: Workload,
  phases: { name: string; from: number }[],
  sideOf: (member: number) => string = () => '',
): Promise<ReplicaReport> {
  const ring = ringOf(cluster);
  const replicasOf = (key: string) => ring.replicasFor(ns, Buffer.from(key));
  const checks = new Map<string, Check>();
  for (let i = 0; i < cluster.size; i++) {
    const id = cluster.id(i);
    checks.set(id, await checkVia(cluster, i, wl, (key) => replicasOf(key).includes(id)));
  }
  const report: ReplicaReport = { total: wl.acks.size, lost: [], underReplicated: [], duplicated: 0, missingPerMember: new Map(), breakdown: [] };
  const buckets = new Map<string, number>();
  for (const [id, c] of checks) {
    report.missingPerMember.set(id, c.missing.size);
    report.duplicated += c.duplicated;
  }
  for (const [itemId, a] of wl.acks) {
    const replicas = replicasOf(a.key);
    const missingOn = replicas.filter((r) => checks.get(r)!.missing.has(itemId));
    if (missingOn.length === 0) continue;
    (missingOn.length === replicas.length ? report.lost : report.underReplicated).push(itemId);
    const phase = [...phases].reverse().find((p) => a.startedAt >= p.from)?.name ?? 'start';
    const side = sideOf(a.member);
    const bucket = `started ${phase}, via ${cluster.id(a.member)}${side ? ` (${side})` : ''}, missing on ${missingOn.length} of ${replicas.length}`;
    buckets.set(bucket, (buckets.get(bucket) ?? 0) + 1);
  }
  report.breakdown = [...buckets].sort((x, y) => y[1] - x[1]).map(([b, n]) => `${n} ${b}`);
  return report;
}

function describeReplicas(r: ReplicaReport): string {
  const per = [...r.missingPerMember].map(([id, n]) => `${id}=${n}`).join(' ');
  return `${r.total} acknowledged writes checked on every replica: ${r.lost.length} lost (on no replica), ${r.underReplicated.length} missing on some replica ` +
    `(missing copies per member: ${per}), ${r.duplicated} appends duplicated`;
}

// ---------------------------------------------------------------------------------------
// 1 and 2: kill -9 one member under concurrent writes, then restart it

interface KillScenario {
  hosts: string[];
  writers: number;
  /** Acknowledged writes before the kill. */
  ackedBeforeKill: number;
  /** Further acknowledged writes required after the others marked the victim dead. */
  ackedWhileDead: number;
}

async function killAndRestart(t: TestContext, s: KillScenario): Promise<void> {
  const cluster = await ProcessCluster.start({ hosts: s.hosts });
  const victim = cluster.size - 1;
  const readerMember = 0;
  const live = cluster.specs.map((_, i) => i).filter((i) => i !== victim);
  let killed = false;
  const wl = new Workload(
    cluster,
    {
      writers: s.writers,
      logs: 4,
      route: (w) => w % cluster.size,
      // A writer whose member died moves to a live member; one that failed on a live member
      // keeps writing there (the failure is counted).
      onFailure: (w, m) => (m === victim && killed ? live[w % live.length]! : m),
    },
    'kill:',
  );
  const readers = new Readers(cluster, readerMember, wl);
  try {
    wl.start();
    await readers.start();
    await wl.reach(s.ackedBeforeKill, 60_000);
    const ackedAtKill = wl.acked;
    readers.reset();

    // kill -9, and time until every live member's /cluster shows the victim dead.
    killed = true;
    const killedAt = Date.now();
    await cluster.kill9(victim);
    await cluster.waitStatus(live, [victim], 'dead', 20_000);
    const detectMs = Date.now() - killedAt;
    const ackedAtDetect = wl.acked;
    await wl.reach(ackedAtDetect + s.ackedWhileDead, 60_000);
    const readsWhileDown = { ok: readers.ok, failed: readers.failed, stale: readers.stale };

    // Restart on the same data, address and peer port; writes go on until all see it alive.
    const restartedAt = Date.now();
    await cluster.startMember(victim);
    const listeningMs = Date.now() - restartedAt;
    await cluster.waitAllAlive(30_000);
    const aliveMs = Date.now() - restartedAt;
    await wl.stop();
    await readers.stop();
    const delivered = await cluster.waitHintsDrained(60_000);
    const convergeMs = Date.now() - restartedAt;
    const statuses = (await cluster.statuses()).filter((x) => x !== null);
    const hintsStored = statuses.reduce((n, x) => n + x.coordinator.hintsStored, 0);
    const sloppy = statuses.reduce((n, x) => n + x.coordinator.sloppyWrites, 0);

    // Every acknowledged write on every replica, the restarted member included: with R=ONE
    // a member answers a key it replicates from its own copy. Then every key through the
    // restarted member (local or via a replica), as a client of it sees them.
    const detectedAt = killedAt + detectMs;
    const phases = [
      { name: 'before the kill', from: 0 },
      { name: 'between kill and detection', from: killedAt },
      { name: 'while marked dead', from: detectedAt },
      { name: 'after the restart', from: restartedAt },
    ];
    const replicas = await checkReplicas(cluster, wl, phases);
    const victimId = cluster.id(victim);
    const viaVictim = await checkVia(cluster, victim, wl);

    const failedOnVictim = wl.failures.filter((f) => f.member === victim).length;
    const liveFailures = wl.failures.filter((f) => f.member !== victim);
    t.diagnostic(
      `${cluster.size} members, ${s.writers} writers: writes acknowledged ${wl.acks.size} (SET ${wl.sets.size}, APPEND ${wl.appendsAcked}; ` +
        `${ackedAtKill} before the kill, ${wl.acked - ackedAtKill} after); per member ${cluster.specs.map((x, i) => `${x.id}=${wl.ackedBy[i]}`).join(' ')}`,
    );
    t.diagnostic(`failed: ${failedOnVictim} in flight on the killed member (not acknowledged), ${liveFailures.length} on live members`);
    t.diagnostic(`reads on ${cluster.id(readerMember)} from kill to restart: ${readsWhileDown.ok} ok (${readsWhileDown.stale} not yet showing the acked value), ${readsWhileDown.failed} failed`);
    t.diagnostic(`time to detect dead (kill -> all live members show ${victimId} dead): ${detectMs} ms`);
    t.diagnostic(
      `restart: listening after ${listeningMs} ms, seen alive by all after ${aliveMs} ms, hints drained on all (converged) after ${convergeMs} ms; ` +
        `hints delivered ${delivered}, stored by coordinators ${hintsStored}, sloppy-quorum writes ${sloppy}`,
    );
    t.diagnostic(`replicas: ${describeReplicas(replicas)}`);
    for (const line of replicas.breakdown.slice(0, 8)) t.diagnostic(`  missing: ${line}`);
    t.diagnostic(`every key read through ${victimId} (R=ONE): ${describeCheck(viaVictim)}`);

    const victimMissing = replicas.missingPerMember.get(victimId)!;
    assert.equal(replicas.lost.length, 0, `acknowledged writes lost (on no replica): ${replicas.lost.slice(0, 5).join(', ')}`);
    assert.equal(replicas.duplicated, 0, `acknowledged appends applied twice: ${describeReplicas(replicas)}`);
    assert.ok(wl.acked - ackedAtKill >= s.ackedWhileDead, 'writes were acknowledged while the member was down');
    assert.equal(liveFailures.length, 0, `writes to live members failed: ${liveFailures.slice(0, 3).map((f) => `${cluster.id(f.member)}: ${f.message}`).join('; ')}`);
    assert.ok(readsWhileDown.ok > 0, 'reads were answered while the member was down');
    assert.equal(readsWhileDown.failed, 0, `reads failed while the member was down: ${readers.lastError}`);
    assert.ok(detectMs <= detectBoundMs, `dead detected after ${detectMs} ms (bound ${detectBoundMs} ms)`);
    assert.equal(
      victimMissing,
      0,
      `after hints drained, the restarted ${victimId} misses ${victimMissing} acknowledged writes it replicates: ${replicas.breakdown.slice(0, 4).join('; ')}`,
    );
    assert.equal(replicas.underReplicated.length, 0, `replicas did not converge: ${describeReplicas(replicas)}`);
    assert.equal(viaVictim.missing.size, 0, `reads through the restarted member miss acknowledged writes: ${describeCheck(viaVictim)}`);
    const codes = await cluster.stop();
    assert.deepEqual(codes, codes.map(() => 0), `members shut down cleanly: exit codes ${codes.join(', ')}`);
  } finally {
    wl.close();
    readers.close();
    await cluster.destroy();
  }
}

test('3 members: kill -9 one under concurrent QUORUM writes loses nothing; restarted, it holds every key', { timeout: 150_000 }, async (t) => {
  await killAndRestart(t, { hosts: ['127.0.0.11', '127.0.0.12', '127.0.0.13'], writers: 16, ackedBeforeKill: 1500, ackedWhileDead: 1000 });
});

test('5 members: kill -9 one under concurrent QUORUM writes loses nothing; restarted, it holds its keys', { timeout: 150_000 }, async (t) => {
  await killAndRestart(t, { hosts: ['127.0.0.31', '127.0.0.32', '127.0.0.33', '127.0.0.34', '127.0.0.35'], writers: 16, ackedBeforeKill: 1000, ackedWhileDead: 600 });
});

// ---------------------------------------------------------------------------------------
// 3: network partition with iptables

const chain = 'RAGKV_TEST';
/** Group ids the two sides run as: outgoing connections all leave from 127.0.0.1 (members
 * do not bind their address for outgoing peer connections), so rules tell the sides apart
 * by the owner of the socket, and match the destination address. */
const majorityGid = 47_001;
const minorityGid = 47_002;

function iptables(...args: string[]): void {
  execFileSync('iptables', ['-w', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
}

function iptablesOk(...args: string[]): boolean {
  return spawnSync('iptables', ['-w', ...args], { stdio: 'ignore' }).status === 0;
}

/** iptables, installed from Debian when missing (we are root in CI); throws if unusable. */
function ensureIptables(): void {
  if (spawnSync('iptables', ['--version'], { stdio: 'ignore' }).status === 0) return;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const run = (args: string[]) => {
    const r = spawnSync('apt-get', args, { env, encoding: 'utf8', timeout: 120_000 });
    if (r.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed: ${r.stderr || r.error}`);
  };
  run(['update', '-qq']);
  run(['install', '-y', '-qq', '--no-install-recommends', 'iptables']);
}

/** Removes the test chain and its jump, whatever state they are in. Never throws. */
function removeChain(): void {
  while (iptablesOk('-C', 'OUTPUT', '-j', chain)) iptablesOk('-D', 'OUTPUT', '-j', chain);
  iptablesOk('-F', chain);
  iptablesOk('-X', chain);
}

/** Drops every TCP packet a member of one side sends to an address of the other side. */
function partition(majority: string[], minority: string[]): void {
  removeChain();
  iptables('-N', chain);
  // Owner matching works in OUTPUT only; on loopback every packet is locally generated, and
  // TCP needs both directions, so dropping what each side sends to the other is a full cut.
  for (const h of minority) iptables('-A', chain, '-p', 'tcp', '-d', h, '-m', 'owner', '--gid-owner', String(majorityGid), '-j', 'DROP');
  for (const h of majority) iptables('-A', chain, '-p', 'tcp', '-d', h, '-m', 'owner', '--gid-owner', String(minorityGid), '-j', 'DROP');
  iptables('-I', 'OUTPUT', '1', '-j', chain);
}

function heal(): void {
  iptables('-F', chain);
}

test('5 members: partition {3} | {2} with iptables: the majority keeps serving; after healing nothing acknowledged is lost', { timeout: 180_000 }, async (t) => {
  assert.equal(process.getuid?.(), 0, 'the partition test runs as root: iptables rules, and members under their own group ids');
  ensureIptables();
  const hosts = ['127.0.0.21', '127.0.0.22', '127.0.0.23', '127.0.0.24', '127.0.0.25'];
  const majority = [0, 1, 2];
  const minority = [3, 4];
  const side = (m: number) => (majority.includes(m) ? 'majority' : 'minority');
  removeChain(); // left over from an interrupted run
  const cluster = await ProcessCluster.start({ hosts, gids: hosts.map((_, i) => (majority.includes(i) ? majorityGid : minorityGid)) });
  // Every writer stays on its member (a failure is counted, the writer goes on).
  const wl = new Workload(cluster, { writers: 16, logs: 4, route: (w) => w % cluster.size, onFailure: (_w, m) => m }, 'part:');
  const readers = new Readers(cluster, 0, wl);
  let cutAt = 0;
  let majorityDetectedAt = Infinity;
  let minorityDetectedAt = Infinity;
  try {
    wl.start();
    await readers.start();
    await wl.reach(1000, 60_000);
    const ackedAtCut = wl.acked;
    const ackedByAtCut = [...wl.ackedBy];
    const failuresAtCut = wl.failures.length;
    readers.reset();

    cutAt = Date.now();
    partition(majority.map((i) => hosts[i]!), minority.map((i) => hosts[i]!));
    const [majorityDetectMs, minorityDetectMs] = await Promise.all([
      cluster.waitStatus(majority, minority, 'dead', 30_000).then(() => {
        majorityDetectedAt = Date.now();
        return majorityDetectedAt - cutAt;
      }),
      cluster.waitStatus(minority, majority, 'dead', 30_000).then(() => {
        minorityDetectedAt = Date.now();
        return minorityDetectedAt - cutAt;
      }),
    ]);
    // Writes keep being acknowledged by the majority after detection.
    const majorityAcked = () => majority.reduce((n, i) => n + wl.ackedBy[i]!, 0);
    const majorityAtDetect = majorityAcked();
    await waitFor('1000 acknowledged writes on the majority side after detection', () => majorityAcked() >= majorityAtDetect + 1000, {
      timeoutMs: 60_000,
      describe: () => `${majorityAcked() - majorityAtDetect}`,
    });
    const partitionedMs = Date.now() - cutAt;
    const readsDuring = { ok: readers.ok, failed: readers.failed, stale: readers.stale };
    const ackedDuring = wl.ackedBy.map((n, i) => n - ackedByAtCut[i]!);
    const failedDuring = wl.failures.slice(failuresAtCut);

    // Heal; writes go on until every member sees every member alive again.
    const healedAt = Date.now();
    heal();
    await cluster.waitAllAlive(60_000);
    const aliveMs = Date.now() - healedAt;
    await wl.stop();
    await readers.stop();
    const delivered = await cluster.waitHintsDrained(60_000);
    const convergeMs = Date.now() - healedAt;
    const statuses = (await cluster.statuses()).filter((x) => x !== null);
    const hintsStored = statuses.reduce((n, x) => n + x.coordinator.hintsStored, 0);
    const sloppy = statuses.reduce((n, x) => n + x.coordinator.sloppyWrites, 0);

    // Every acknowledged write on every replica (each member answers the keys it replicates
    // from its own copy at R=ONE), then every key through a majority member.
    const phases = [
      { name: 'before the cut', from: 0 },
      { name: 'between cut and detection', from: cutAt },
      { name: 'after detection', from: Math.min(majorityDetectedAt, minorityDetectedAt) },
      { name: 'after the heal', from: healedAt },
    ];
    const replicas = await checkReplicas(cluster, wl, phases, side);
    const viaMajority = await checkVia(cluster, 0, wl);

    const sum = (sideOf: string, xs: number[]) => xs.filter((_, i) => side(i) === sideOf).reduce((a, b) => a + b, 0);
    const failedMajority = failedDuring.filter((f) => side(f.member) === 'majority');
    const failedMajorityAfterDetect = failedMajority.filter((f) => f.startedAt >= majorityDetectedAt);
    const failedMinority = failedDuring.filter((f) => side(f.member) === 'minority');
    t.diagnostic(`writes acknowledged: ${wl.acks.size} in all (SET ${wl.sets.size}, APPEND ${wl.appendsAcked}); ${ackedAtCut} before the cut`);
    t.diagnostic(
      `during the partition (${partitionedMs} ms): majority acknowledged ${sum('majority', ackedDuring)}, failed ${failedMajority.length} ` +
        `(${failedMajorityAfterDetect.length} of them started after detection); minority acknowledged ${sum('minority', ackedDuring)} (sloppy quorum), failed ${failedMinority.length}`,
    );
    if (failedMajority.length) t.diagnostic(`e.g. majority failure: ${failedMajority[0]!.message}`);
    if (failedMinority.length) t.diagnostic(`e.g. minority failure: ${failedMinority[0]!.message}`);
    t.diagnostic(`reads on ${cluster.id(0)} during the partition: ${readsDuring.ok} ok (${readsDuring.stale} not yet showing the acked value), ${readsDuring.failed} failed`);
    t.diagnostic(`time to detect: majority sees the minority dead after ${majorityDetectMs} ms, minority sees the majority dead after ${minorityDetectMs} ms`);
    t.diagnostic(
      `heal: all alive after ${aliveMs} ms, hints drained on all (converged) after ${convergeMs} ms; hints delivered ${delivered}, ` +
        `stored by coordinators ${hintsStored}, sloppy-quorum writes ${sloppy}`,
    );
    t.diagnostic(`replicas: ${describeReplicas(replicas)}`);
    for (const line of replicas.breakdown.slice(0, 10)) t.diagnostic(`  missing: ${line}`);
    t.diagnostic(`every key read through ${cluster.id(0)} (R=ONE): ${describeCheck(viaMajority)}`);

    assert.equal(replicas.lost.length, 0, `acknowledged writes lost (on no replica): ${replicas.lost.slice(0, 5).join(', ')}`);
    assert.equal(replicas.duplicated, 0, `acknowledged appends applied twice: ${describeReplicas(replicas)}`);
    assert.ok(sum('majority', ackedDuring) >= 1000, 'the majority acknowledged writes during the partition');
    assert.equal(failedMajorityAfterDetect.length, 0, `majority writes failed after detection: ${failedMajorityAfterDetect.slice(0, 3).map((f) => f.message).join('; ')}`);
    assert.ok(readsDuring.ok > 0, 'reads were answered on the majority side during the partition');
    assert.equal(readsDuring.failed, 0, `reads failed on the majority side: ${readers.lastError}`);
    assert.ok(majorityDetectMs <= detectBoundMs, `majority detected the cut after ${majorityDetectMs} ms (bound ${detectBoundMs} ms)`);
    assert.equal(
      replicas.underReplicated.length,
      0,
      `after healing and hints drained, replicas miss acknowledged writes: ${describeReplicas(replicas)}; ${replicas.breakdown.slice(0, 4).join('; ')}`,
    );
    assert.equal(viaMajority.missing.size, 0, `reads through ${cluster.id(0)} miss acknowledged writes: ${describeCheck(viaMajority)}`);
    const codes = await cluster.stop();
    assert.deepEqual(codes, codes.map(() => 0), `members shut down cleanly: exit codes ${codes.join(', ')}`);
  } finally {
    removeChain();
    wl.close();
    readers.close();
    await cluster.destroy();
    assert.ok(!iptablesOk('-S', chain), `the ${chain} chain is gone`);
  }
});
