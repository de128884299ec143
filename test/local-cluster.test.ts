import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { createServer } from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { aliveMembers, getJson, memberStartArgs, parseLocalClusterArgs, planMembers } from '../src/cli/local-cluster.js';
import { RestartPolicy } from '../src/cli/restart-policy.js';
import { waitFor } from './helpers/cluster.js';
import { binPath } from './helpers/process.js';
import { tempDir } from './helpers/tmp.js';

const tmp = tempDir('ragkv-local-cluster-');
after(() => tmp.cleanup());

interface ReadyMember {
  id: string;
  pid: number;
  resp: number;
  grpc: number;
  admin: number;
  peer: number;
  dataDir: string;
  log: string;
}

/** One JSON log line of local-cluster (stdout). */
interface LogRecord {
  msg?: string;
  member?: string;
  memberPid?: number;
  pid?: number;
  resp?: number;
  grpc?: number;
  admin?: number;
  peer?: number;
  restartsInRow?: number;
  restartInMs?: number;
}

interface Cluster {
  proc: ChildProcess;
  exited: Promise<number | string>;
  stderr: () => string;
  /** Every JSON log line so far, in order. */
  records: LogRecord[];
  /** The first log line from index `from` on (seen or to come) that matches; rejects if the process exits first. */
  line: (match: (rec: LogRecord) => boolean, from?: number) => Promise<LogRecord>;
  /** Calls `fn` with every log line from now on. */
  onRecord: (fn: (rec: LogRecord) => void) => void;
  /** Resolves once stderr (a pipe of its own, so not ordered with the log lines) matches; rejects if the process exits first. */
  stderrMatching: (re: RegExp) => Promise<void>;
  /** Resolves once the banner's last line is on stderr (a separate pipe from the ready line). */
  banner: Promise<string>;
  /** Resolves with the members of the `cluster ready` line; rejects if the process exits first. */
  ready: Promise<ReadyMember[]>;
}

/** The environment without RAGKV_* variables (they would configure the members). */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RAGKV_')));
}

/** Runs `ragkv local-cluster` as a real process; `ready` is its `cluster ready` log line (an event, no sleep). */
function startLocalCluster(args: string[]): Cluster {
  const proc = spawn(process.execPath, [binPath, 'local-cluster', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv() });
  const exited = new Promise<number | string>((resolve) => proc.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  let stderr = '';
  let onBanner: (text: string) => void = () => {};
  const banner = new Promise<string>((resolve) => (onBanner = resolve));
  const stderrListeners: (() => void)[] = [];
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
    if (stderr.includes('Press Ctrl-C to stop every member.')) onBanner(stderr);
    for (const fn of stderrListeners) fn();
  });
  const stderrMatching = (re: RegExp): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (re.test(stderr)) resolve();
      };
      check();
      stderrListeners.push(check);
      void exited.then(() => {
        check();
        reject(new Error(`local-cluster exited before its stderr matched ${re}:\n${stderr}`));
      });
    });
  const records: LogRecord[] = [];
  const listeners: ((rec: LogRecord) => void)[] = [];
  const ready = new Promise<ReadyMember[]>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      const rec = JSON.parse(line) as LogRecord & { members?: ReadyMember[] };
      records.push(rec);
      for (const fn of listeners) fn(rec);
      if (rec.msg === 'cluster ready') resolve(rec.members!);
    });
    void exited.then((code) => reject(new Error(`local-cluster exited (${code}) before ready:\n${stderr}`)));
  });
  ready.catch(() => {});
  const onRecord = (fn: (rec: LogRecord) => void): void => void listeners.push(fn);
  const line = (match: (rec: LogRecord) => boolean, from = 0): Promise<LogRecord> =>
    new Promise<LogRecord>((resolve, reject) => {
      const seen = records.slice(from).find(match);
      if (seen) return resolve(seen);
      onRecord((rec) => {
        if (match(rec)) resolve(rec);
      });
      void exited.then((code) => reject(new Error(`local-cluster exited (${code}) before the log line; stderr:\n${stderr}`)));
    });
  return { proc, exited, stderr: () => stderr, records, line, onRecord, stderrMatching, banner, ready };
}

const freePortsArgs = ['--base-resp-port', '0', '--base-grpc-port', '0', '--base-admin-port', '0', '--base-peer-port', '0', '--durability', 'none'];

/** An ioredis client of one member that fails fast instead of queueing (a member may be down). */
function respClient(port: number): Redis {
  return new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
}

/** Connects, runs `fn`, disconnects. */
async function withClient<T>(port: number, fn: (r: Redis) => Promise<T>): Promise<T> {
  const r = respClient(port);
  r.on('error', () => {});
  try {
    await r.connect();
    return await fn(r);
  } finally {
    r.disconnect();
  }
}

/** How many times `needle` occurs in `text`. */
function occurrences(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

function getText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    assert.equal((e as NodeJS.ErrnoException).code, 'ESRCH');
    return false;
  }
}

describe('ragkv local-cluster: arguments', () => {
  it('defaults: 3 members on the documented ports, data under ./data', async () => {
    const a = parseLocalClusterArgs([], '/w');
    assert.equal(a.members, 3);
    assert.equal(a.dataDir, '/w/data');
    const plan = await planMembers(a);
    assert.deepEqual(
      plan.map((m) => [m.id, m.dataDir, m.log, m.resp, m.grpc, m.admin, m.peer]),
      [
        ['n1', '/w/data/n1', '/w/data/n1.log', 6380, 50051, 9180, 7380],
        ['n2', '/w/data/n2', '/w/data/n2.log', 6381, 50052, 9181, 7381],
        ['n3', '/w/data/n3', '/w/data/n3.log', 6382, 50053, 9182, 7382],
      ],
    );
    const args = memberStartArgs(plan[1]!, plan, ['--durability', 'commit']);
    const flag = (name: string): string | undefined => args[args.indexOf(name) + 1];
    assert.equal(args[0], 'start');
    assert.equal(flag('--node-id'), 'n2');
    assert.equal(flag('--peer-port'), '7381');
    assert.equal(flag('--seeds'), '127.0.0.1:7380,127.0.0.1:7381,127.0.0.1:7382');
    assert.equal(flag('--durability'), 'commit');
  });

  it('base port 0 picks distinct free peer ports and lets members bind the others', async () => {
    const plan = await planMembers(parseLocalClusterArgs(['--members', '4', ...freePortsArgs], '/w'));
    assert.equal(plan.length, 4);
    assert.equal(new Set(plan.map((m) => m.peer)).size, 4);
    for (const m of plan) {
      assert.ok(m.peer > 0);
      assert.deepEqual([m.resp, m.grpc, m.admin], [0, 0, 0]);
    }
  });

  it('refuses bad values and overlapping port ranges with a usage error (exit 2)', async () => {
    assert.throws(() => parseLocalClusterArgs(['--members', '0']), /--members must be an integer from 1/);
    assert.throws(() => parseLocalClusterArgs(['--durability', 'sometimes']), /--durability must be one of/);
    assert.throws(() => parseLocalClusterArgs(['--base-resp-port', '7379']), /port 7380 would be both the resp port of n2 and the peer port/);
    assert.throws(() => parseLocalClusterArgs(['--base-peer-port', '65534']), /no room for 3 members/);
    assert.throws(() => parseLocalClusterArgs(['--frob']), /unknown option '--frob'/);
    assert.deepEqual(parseLocalClusterArgs(['--', '--replicas', '2']).memberArgs, ['--replicas', '2']);
    assert.throws(() => parseLocalClusterArgs(['--restart-delay', '40000']), /--restart-delay must be an integer from 0 to 30000/);
    assert.throws(() => parseLocalClusterArgs(['--restarts-max', '-1']), /--restarts-max must be an integer from 0/);
    assert.equal(parseLocalClusterArgs(['--control-port', '9999']).controlPort, 9999);
    assert.equal(parseLocalClusterArgs([]).controlPort, 0, 'a free control port by default');
    assert.throws(() => parseLocalClusterArgs(['--control-port', '6381']), /port 6381 would be both the control port and the resp port of n2/);
    const restart = parseLocalClusterArgs(['--restart-delay', '0', '--restarts-max', '0']);
    assert.deepEqual([restart.restartDelayMs, restart.restartsMax], [0, 0]);

    const run = startLocalCluster(['--members', 'three']);
    assert.equal(await run.exited, 2);
    assert.match(run.stderr(), /--members must be an integer/);
  });
});

describe('ragkv local-cluster: restart policy', () => {
  const options = { delayMs: 500, delayMaxMs: 3000, restartsMax: 4, stableMs: 30_000 };

  it('doubles the delay with each restart in a row, up to the maximum, then leaves the member down', () => {
    const p = new RestartPolicy(options);
    // Each restart exits 1 s after it started: all in a row.
    assert.deepEqual([1, 2, 3, 4, 5].map(() => p.onExit(1000)), [
      { restart: true, delayMs: 500, restartsInRow: 1 },
      { restart: true, delayMs: 1000, restartsInRow: 2 },
      { restart: true, delayMs: 2000, restartsInRow: 3 },
      { restart: true, delayMs: 3000, restartsInRow: 4 },
      { restart: false, restartsInRow: 4 },
    ]);
  });

  it('a member that ran stableMs before exiting starts the count again', () => {
    const p = new RestartPolicy(options);
    assert.deepEqual(p.onExit(10), { restart: true, delayMs: 500, restartsInRow: 1 });
    assert.deepEqual(p.onExit(29_999), { restart: true, delayMs: 1000, restartsInRow: 2 });
    assert.deepEqual(p.onExit(30_000), { restart: true, delayMs: 500, restartsInRow: 1 });
  });

  it('restartsMax 0 never restarts; nonsense options are refused', () => {
    assert.deepEqual(new RestartPolicy({ ...options, restartsMax: 0 }).onExit(60_000), { restart: false, restartsInRow: 0 });
    assert.throws(() => new RestartPolicy({ ...options, delayMaxMs: 100 }), /'delayMaxMs' must be an integer >= 'delayMs'/);
    assert.throws(() => new RestartPolicy({ ...options, stableMs: 0 }), /'stableMs' must be a positive integer/);
  });
});

describe('ragkv local-cluster: a running cluster', { timeout: 120_000 }, () => {
  it('serves a key written on n1 from n3, shows 3 alive members on /cluster, and stops cleanly on SIGTERM', async () => {
    const data = path.join(tmp.path, 'three');
    // Reads wait for a quorum here (flags after '--' go to every member), so a read on n3 right
    // after a write acknowledged by 2 of 3 replicas must see it: no waiting for replication.
    const cluster = startLocalCluster(['--data', data, ...freePortsArgs, '--', '--read-consistency', 'QUORUM']);
    try {
      const members = await cluster.ready;
      assert.deepEqual(members.map((m) => m.id), ['n1', 'n2', 'n3']);
      for (const m of members) assert.ok(isRunning(m.pid), `${m.id} (pid ${m.pid}) runs`);
      // The banner names every member's ports and how to connect.
      const banner = await cluster.banner;
      for (const m of members) assert.match(banner, new RegExp(`${m.id}\\s+RESP ${m.resp}\\s+gRPC ${m.grpc}\\s+admin ${m.admin}\\s+peer ${m.peer}\\s+pid ${m.pid}`));
      assert.match(banner, new RegExp(`redis-cli -p ${members[0]!.resp} `));
      assert.match(banner, new RegExp(`curl http://127\\.0\\.0\\.1:${members[0]!.admin}/cluster`));
      assert.match(banner, /Any member serves any key/);

      const n1 = new Redis({ port: members[0]!.resp, lazyConnect: true });
      const n3 = new Redis({ port: members[2]!.resp, lazyConnect: true });
      try {
        await n1.connect();
        await n3.connect();
        assert.equal(await n1.set('doc:1', 'hello from n1'), 'OK');
        assert.equal(await n3.get('doc:1'), 'hello from n1');
        await n3.hset('doc:1', 'lang', 'en');
        assert.deepEqual(await n1.hgetall('doc:1'), { lang: 'en' });
      } finally {
        n1.disconnect();
        n3.disconnect();
      }

      const view = (await getJson(`http://127.0.0.1:${members[0]!.admin}/cluster`)) as {
        self: string;
        members: { id: string; status: string; primarySlots: number; slots: number }[];
      };
      assert.equal(view.self, 'n1');
      assert.deepEqual(view.members.map((m) => [m.id, m.status]).sort(), [['n1', 'alive'], ['n2', 'alive'], ['n3', 'alive']]);
      const primaries = view.members.reduce((sum, m) => sum + m.primarySlots, 0);
      assert.equal(primaries, 16384, 'every hash slot has one primary');
      assert.equal(view.members.reduce((sum, m) => sum + m.slots, 0), 3 * 16384, 'every slot has 3 replicas');
      assert.deepEqual((await aliveMembers(members[2]!.admin)).sort(), ['n1', 'n2', 'n3']);

      // Logs beside the data directories, which hold only LMDB files.
      for (const m of members) {
        assert.equal(m.log, path.join(data, `${m.id}.log`));
        assert.match(readFileSync(m.log, 'utf8'), /"msg":"listening"/);
        assert.deepEqual(readdirSync(m.dataDir).filter((f) => f.endsWith('.log')), []);
      }

      cluster.proc.kill('SIGTERM');
      assert.equal(await cluster.exited, 0, cluster.stderr());
      for (const m of members) {
        assert.equal(isRunning(m.pid), false, `${m.id} (pid ${m.pid}) stopped`);
        assert.match(readFileSync(m.log, 'utf8'), /"msg":"stopped"/, `${m.id} closed cleanly`);
      }
    } finally {
      if (cluster.proc.exitCode === null && cluster.proc.signalCode === null) cluster.proc.kill('SIGKILL');
    }
  });

  it('kill -9 of a member: the others keep serving, and it is restarted on its data and ports and serves again', async () => {
    const data = path.join(tmp.path, 'failover');
    // QUORUM reads: a read on one member of a write acknowledged by two sees it, no waiting.
    // Default restart policy: the first restart comes 500 ms after the exit.
    const cluster = startLocalCluster(['--data', data, ...freePortsArgs, '--', '--read-consistency', 'QUORUM']);
    try {
      const members = await cluster.ready;
      const [n1, n2, n3] = members as [ReadyMember, ReadyMember, ReadyMember];
      assert.equal(await withClient(n1.resp, (r) => r.set('doc:1', 'before the kill')), 'OK');

      const afterReady = cluster.records.length;
      process.kill(n2.pid, 'SIGKILL');
      const exit = await cluster.line((r) => r.msg === 'member exited unexpectedly; restarting it' && r.member === 'n2', afterReady);
      assert.equal(exit.memberPid, n2.pid);
      assert.equal(exit.restartInMs, 500);
      assert.equal(isRunning(n2.pid), false);
      await cluster.stderrMatching(new RegExp(`member n2 \\(pid ${n2.pid}\\) exited unexpectedly \\(SIGKILL\\) after [0-9.]+ s; restarting it in 500 ms on the same data and ports`));

      // n2 is down (until its restart, 500 ms later, is listening): n1 and n3 serve reads and writes.
      assert.equal(await withClient(n3.resp, (r) => r.get('doc:1')), 'before the kill');
      assert.equal(await withClient(n1.resp, (r) => r.set('doc:2', 'while n2 was down')), 'OK');
      assert.equal(await withClient(n3.resp, (r) => r.get('doc:2')), 'while n2 was down');
      assert.equal(isRunning(n2.pid), false);

      // n2 comes back as a new process on the same ports and data directory.
      const back = await cluster.line((r) => r.msg === 'member restarted' && r.member === 'n2', afterReady);
      assert.notEqual(back.pid, n2.pid);
      assert.ok(isRunning(back.pid!), `restarted n2 (pid ${back.pid}) runs`);
      assert.deepEqual([back.resp, back.grpc, back.admin, back.peer], [n2.resp, n2.grpc, n2.admin, n2.peer]);
      await cluster.stderrMatching(new RegExp(`member n2 is serving again \\(pid ${back.pid}, RESP ${n2.resp}\\)`));
      // The supervisor copies each member's output to its log file as it arrives: wait for it.
      await waitFor('both n2 processes to have logged to n2.log', () => occurrences(readFileSync(n2.log, 'utf8'), '"msg":"listening"') === 2 || undefined, { timeoutMs: 5000 });

      // And it serves again: it reads what was written while it was down, and takes writes.
      // (Polled: right after its restart, n2's view of the others may still be settling.)
      await waitFor('n2 to serve doc:2 again', () => withClient(n2.resp, async (r) => (await r.get('doc:2')) === 'while n2 was down'), { timeoutMs: 30_000, intervalMs: 200 });
      assert.equal(await withClient(n2.resp, (r) => r.set('doc:3', 'through n2 again')), 'OK');
      assert.equal(await withClient(n1.resp, (r) => r.get('doc:3')), 'through n2 again');
      await waitFor('n1 to see n2 alive', async () => (await aliveMembers(n1.admin)).includes('n2'), { timeoutMs: 30_000, intervalMs: 200 });
      assert.ok(isRunning(n1.pid) && isRunning(n3.pid), 'n1 and n3 ran throughout');
      assert.match(await cluster.banner, new RegExp(`kill -9 ${n2.pid} \\(n2\\)`), 'the banner says how to try a failure');

      cluster.proc.kill('SIGTERM');
      assert.equal(await cluster.exited, 0, cluster.stderr());
      for (const pid of [n1.pid, back.pid!, n3.pid]) assert.equal(isRunning(pid), false, `pid ${pid} stopped`);
      for (const m of members) assert.match(readFileSync(m.log, 'utf8'), /"msg":"stopped"/, `${m.id} closed cleanly`);
    } finally {
      if (cluster.proc.exitCode === null && cluster.proc.signalCode === null) cluster.proc.kill('SIGKILL');
    }
  });

  it('a member that keeps exiting is left down after --restarts-max restarts in a row; the others keep serving', async () => {
    const cluster = startLocalCluster(['--data', path.join(tmp.path, 'gives-up'), '--members', '2', ...freePortsArgs, '--restart-delay', '50', '--restarts-max', '2']);
    try {
      const [n1, n2] = (await cluster.ready) as [ReadyMember, ReadyMember];
      assert.equal(await withClient(n1.resp, (r) => r.set('doc:1', 'kept')), 'OK');
      // Every restart of n2 is killed as soon as it is spawned: each one exits quickly.
      const afterReady = cluster.records.length;
      const restartedPids: number[] = [];
      cluster.onRecord((rec) => {
        if (rec.msg === 'starting member' && rec.member === 'n2') {
          restartedPids.push(rec.memberPid!);
          process.kill(rec.memberPid!, 'SIGKILL');
        }
      });
      process.kill(n2.pid, 'SIGKILL');
      const down = await cluster.line((r) => r.msg === 'member keeps exiting; leaving it down' && r.member === 'n2', afterReady);
      assert.equal(down.restartsInRow, 2);
      assert.equal(restartedPids.length, 2, 'restarted twice, then left down');
      assert.equal(down.memberPid, restartedPids[1]);
      await cluster.stderrMatching(/member n2 \(pid \d+\) exited \(SIGKILL\) and each of its last 2 restart\(s\) exited within 30 s: leaving it down; the other members keep serving/);
      assert.deepEqual(cluster.records.slice(afterReady).filter((r) => r.msg === 'member restarted'), [], 'no restart reached listening');

      assert.equal(await withClient(n1.resp, (r) => r.get('doc:1')), 'kept', 'n1 still serves');
      assert.ok(isRunning(n1.pid));
      cluster.proc.kill('SIGTERM');
      assert.equal(await cluster.exited, 1, 'a member was left down');
      assert.match(cluster.stderr(), /member\(s\) left down after repeated exits: n2/);
      assert.equal(isRunning(n1.pid), false);
      assert.match(readFileSync(n1.log, 'utf8'), /"msg":"stopped"/, 'n1 closed cleanly');
    } finally {
      if (cluster.proc.exitCode === null && cluster.proc.signalCode === null) cluster.proc.kill('SIGKILL');
    }
  });

  it('SIGTERM while a restarted member is still starting: it finishes starting, then stops cleanly (exit 0)', async () => {
    const cluster = startLocalCluster(['--data', path.join(tmp.path, 'stop-starting'), '--members', '1', ...freePortsArgs, '--restart-delay', '0']);
    try {
      const [n1] = (await cluster.ready) as [ReadyMember];
      const afterReady = cluster.records.length;
      process.kill(n1.pid, 'SIGKILL');
      const restart = await cluster.line((r) => r.msg === 'starting member' && r.member === 'n1', afterReady);
      cluster.proc.kill('SIGTERM'); // the new process has only just been spawned
      assert.equal(await cluster.exited, 0, cluster.stderr());
      assert.equal(isRunning(restart.memberPid!), false);
      const log = readFileSync(n1.log, 'utf8');
      assert.equal(occurrences(log, '"msg":"listening"'), 2);
      assert.equal(occurrences(log, '"msg":"stopped"'), 1, 'the restarted process closed cleanly (the killed one could not)');
      assert.doesNotMatch(cluster.stderr(), /did not stop cleanly/);
    } finally {
      if (cluster.proc.exitCode === null && cluster.proc.signalCode === null) cluster.proc.kill('SIGKILL');
    }
  });

  // A 30 s restart delay against a 20 s test timeout: the stop must cancel it, not wait it out.
  it('SIGTERM during a restart delay cancels the restart and exits 0', { timeout: 20_000 }, async () => {
    const cluster = startLocalCluster(['--data', path.join(tmp.path, 'stop-delay'), '--members', '1', ...freePortsArgs, '--restart-delay', '30000']);
    try {
      const [n1] = (await cluster.ready) as [ReadyMember];
      const afterReady = cluster.records.length;
      process.kill(n1.pid, 'SIGKILL');
      const exit = await cluster.line((r) => r.msg === 'member exited unexpectedly; restarting it' && r.member === 'n1', afterReady);
      assert.equal(exit.restartInMs, 30_000);
      cluster.proc.kill('SIGTERM');
      assert.equal(await cluster.exited, 0, cluster.stderr());
      assert.deepEqual(cluster.records.slice(afterReady).filter((r) => r.msg === 'starting member'), [], 'no restart after the stop');
      assert.equal(occurrences(readFileSync(n1.log, 'utf8'), '"msg":"listening"'), 1);
    } finally {
      if (cluster.proc.exitCode === null && cluster.proc.signalCode === null) cluster.proc.kill('SIGKILL');
    }
  });

  it('a member that cannot start (its port is taken) fails the start with exit 1 and its output', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const taken = (blocker.address() as { port: number }).port;
    try {
      const dir = path.join(tmp.path, 'taken');
      const cluster = startLocalCluster(['--data', dir, '--members', '1', ...freePortsArgs, '--base-resp-port', String(taken)]);
      await assert.rejects(cluster.ready, /exited \(1\) before ready/);
      assert.equal(await cluster.exited, 1);
      assert.match(cluster.stderr(), /member n1 .*exited/);
      assert.match(cluster.stderr(), /EADDRINUSE|address already in use/i);
      assert.ok(existsSync(path.join(dir, 'n1.log')));
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });
});

/** What `ragkv <args>` did: its exit code and output. */
interface CliRun {
  code: number | string;
  stdout: string;
  stderr: string;
}

/** Runs `ragkv <args>` (e.g. `local-cluster add`) as a real process until it exits. */
function runCli(args: string[]): Promise<CliRun> {
  const proc = spawn(process.execPath, [binPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv() });
  let stdout = '';
  let stderr = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  // 'close': exited, and its output fully read.
  return new Promise((resolve) => proc.once('close', (code, signal) => resolve({ code: code ?? signal ?? 'unknown', stdout, stderr })));
}

/** `<data>/local-cluster.json` as the running local cluster wrote it. */
interface StateFile {
  pid: number;
  control: string;
  members: { id: string; pid: number; running: boolean; resp: number; grpc: number; admin: number; peer: number; log: string }[];
}

interface ClusterDescription {
  placement: { epoch: number; change: unknown } | null;
  members: { id: string; status: string; inTable: boolean; slots: number }[];
}

describe('ragkv local-cluster add and remove: growing and shrinking a running cluster', { timeout: 300_000 }, () => {
  it('add joins n4 with slots and every key reads through it; remove n4 makes it leave for good; every key still reads through n1..n3', { timeout: 240_000 }, async () => {
    const data = path.join(tmp.path, 'elastic');
    const stateFile = path.join(data, 'local-cluster.json');
    // QUORUM reads (flags after '--' go to every member, the added one too): a read sees every
    // write acknowledged before it, whichever member coordinates it. No restart delay: a wrong
    // restart of the member that left would be logged before the removal is.
    const cluster = startLocalCluster(['--data', data, ...freePortsArgs, '--restart-delay', '0', '--', '--read-consistency', 'QUORUM']);
    try {
      const members = await cluster.ready;
      const [n1] = members as [ReadyMember];
      const state = JSON.parse(readFileSync(stateFile, 'utf8')) as StateFile;
      assert.equal(state.pid, cluster.proc.pid);
      assert.match(state.control, /^127\.0\.0\.1:\d+$/);
      assert.deepEqual(state.members.map((m) => [m.id, m.pid, m.resp, m.admin, m.running]), members.map((m) => [m.id, m.pid, m.resp, m.admin, true]));
      const banner = await cluster.banner;
      assert.match(banner, new RegExp(`control endpoint ${state.control.replace(/\./g, '\\.')}`));
      assert.match(banner, /local-cluster add --data /);

      const keys = Array.from({ length: 300 }, (_, i) => `grow:${i}`);
      const values = keys.map((k) => `value of ${k}`);
      await withClient(n1.resp, async (r) => {
        for (let i = 0; i < keys.length; i++) assert.equal(await r.set(keys[i]!, values[i]!), 'OK');
      });

      // Add: n4 joins through n1..n3 and streams its slots; the command returns once settled.
      const added = await runCli(['local-cluster', 'add', '--data', data]);
      assert.equal(added.code, 0, `add failed:\n${added.stderr}\nlocal-cluster:\n${cluster.stderr()}`);
      assert.match(added.stdout, /^member n4 joined the local cluster \(placement epoch \d+, \d+ slot replicas\)/);
      const grown = JSON.parse(readFileSync(stateFile, 'utf8')) as StateFile;
      assert.deepEqual(grown.members.map((m) => m.id), ['n1', 'n2', 'n3', 'n4']);
      const n4 = grown.members[3]!;
      assert.ok(isRunning(n4.pid), `n4 (pid ${n4.pid}) runs`);
      assert.match(added.stdout, new RegExp(`n4\\s+RESP ${n4.resp}\\s+gRPC ${n4.grpc}\\s+admin ${n4.admin}\\s+peer ${n4.peer}\\s+pid ${n4.pid}`));
      assert.equal(n4.log, path.join(data, 'n4.log'));
      assert.match(readFileSync(n4.log, 'utf8'), /"msg":"listening"/);
      const startLine = await cluster.line((r) => r.msg === 'starting member' && r.member === 'n4');
      assert.equal(startLine.memberPid, n4.pid);
      const n4Args = (startLine as LogRecord & { args?: string[] }).args!;
      assert.equal(n4Args.includes('--expect-members'), false, 'a joiner does not form a cluster');
      assert.deepEqual(n4Args[n4Args.indexOf('--seeds') + 1]!.split(',').sort(), [...members.map((m) => `127.0.0.1:${m.peer}`), `127.0.0.1:${n4.peer}`].sort());

      const joined = (await getJson(`http://127.0.0.1:${n1.admin}/cluster`)) as ClusterDescription;
      assert.equal(joined.placement?.change, null, 'no change in flight');
      const n4Row = joined.members.find((m) => m.id === 'n4');
      assert.equal(n4Row?.inTable, true, 'n1 lists n4 in the placement table');
      assert.ok(n4Row.slots > 0, `n4 holds slots (${n4Row.slots})`);
      assert.equal(await withClient(n4.resp, (r) => r.mget(...keys)).then((got) => got.filter((v, i) => v !== values[i]).length), 0, 'every key reads back through n4');

      // Remove: n4 streams its slots out, leaves and exits; it is not restarted.
      const beforeRemove = cluster.records.length;
      const removedRun = await runCli(['local-cluster', 'remove', 'n4', '--data', data]);
      assert.equal(removedRun.code, 0, `remove failed:\n${removedRun.stderr}\nlocal-cluster:\n${cluster.stderr()}`);
      assert.match(removedRun.stdout, /^member n4 left the local cluster and stopped; members now: n1, n2, n3 \(placement epoch \d+\)/);
      assert.equal(isRunning(n4.pid), false, 'n4 exited');
      assert.match(readFileSync(n4.log, 'utf8'), /"msg":"stopped"/, 'n4 closed cleanly after leaving');
      const removedLine = await cluster.line((r) => r.msg === 'member removed' && r.member === 'n4', beforeRemove);
      assert.equal(removedLine.memberPid, n4.pid);
      const since = cluster.records.slice(beforeRemove);
      assert.deepEqual(since.filter((r) => r.member === 'n4' && (r.msg === 'starting member' || r.msg === 'member exited unexpectedly; restarting it')), [], 'n4 was not restarted');
      assert.deepEqual((JSON.parse(readFileSync(stateFile, 'utf8')) as StateFile).members.map((m) => m.id), ['n1', 'n2', 'n3']);

      const shrunk = (await getJson(`http://127.0.0.1:${n1.admin}/cluster`)) as ClusterDescription;
      assert.equal(shrunk.placement?.change, null);
      assert.notEqual(shrunk.members.find((m) => m.id === 'n4')?.inTable, true, 'n4 is no longer in the placement table');
      assert.deepEqual(shrunk.members.filter((m) => m.inTable).map((m) => m.id).sort(), ['n1', 'n2', 'n3']);
      for (const m of members) {
        assert.ok(isRunning(m.pid), `${m.id} ran throughout`);
        assert.equal(await withClient(m.resp, (r) => r.mget(...keys)).then((got) => got.filter((v, i) => v !== values[i]).length), 0, `every key reads back through ${m.id}`);
      }

      // Removing a member that is not there (n4 any more, or one never added) fails and says why.
      for (const id of ['n4', 'n9']) {
        const unknown = await runCli(['local-cluster', 'remove', id, '--data', data]);
        assert.equal(unknown.code, 1);
        assert.match(unknown.stderr, new RegExp(`ragkv local-cluster remove: no member '${id}' in this local cluster \\(its members: n1, n2, n3\\)`));
        assert.equal(unknown.stdout, '');
      }

      const afterChanges = cluster.records.length;
      cluster.proc.kill('SIGTERM');
      assert.equal(await cluster.exited, 0, cluster.stderr());
      assert.deepEqual(cluster.records.slice(afterChanges).filter((r) => r.msg === 'member stopped').map((r) => r.member).sort(), ['n1', 'n2', 'n3'], 'n4 was not running at the stop');
      assert.equal(existsSync(stateFile), false, 'local-cluster.json is removed on exit');

      // No local cluster runs there any more: add says so and names the file.
      const none = await runCli(['local-cluster', 'add', '--data', data]);
      assert.equal(none.code, 1);
      assert.ok(none.stderr.includes(`ragkv local-cluster add: no local cluster is running with data in ${data}: ${stateFile} does not exist`), none.stderr);
    } finally {
      if (cluster.proc.exitCode === null && cluster.proc.signalCode === null) cluster.proc.kill('SIGKILL');
    }
  });

  it('the last member cannot be removed (409); a file left by a killed local cluster is named; usage errors exit 2', async () => {
    const data = path.join(tmp.path, 'one-member');
    const stateFile = path.join(data, 'local-cluster.json');
    const cluster = startLocalCluster(['--data', data, '--members', '1', ...freePortsArgs]);
    try {
      const [n1] = (await cluster.ready) as [ReadyMember];
      const last = await runCli(['local-cluster', 'remove', 'n1', '--data', data]);
      assert.equal(last.code, 1);
      assert.match(last.stderr, /member n1 is the last member; a cluster keeps at least one/);
      assert.ok(isRunning(n1.pid), 'n1 still runs');

      const usage = await runCli(['local-cluster', 'remove', '--data', data]);
      assert.equal(usage.code, 2);
      assert.match(usage.stderr, /give the id of the member to remove/);

      // Killed outright, it cannot remove its file: add names the file and the dead pid.
      const pid = cluster.proc.pid!;
      cluster.proc.kill('SIGKILL');
      await cluster.exited;
      assert.ok(existsSync(stateFile));
      const stale = await runCli(['local-cluster', 'add', '--data', data]);
      assert.equal(stale.code, 1);
      assert.ok(stale.stderr.includes(`no local cluster is running with data in ${data}: ${stateFile} names pid ${pid}, which is not running`), stale.stderr);
    } finally {
      if (cluster.proc.exitCode === null && cluster.proc.signalCode === null) cluster.proc.kill('SIGKILL');
    }
  });
});

describe('ragkv-cluster bench peer and the ragkv-resp adapter over several members', { timeout: 120_000 }, () => {
  it('starts 3 members (N=3, W=QUORUM, R=ONE) and spreads reads and writes over all of them', async () => {
    const { startPeer } = await import('../tools/loadgen/peers/index.js');
    const { createTargetFactory } = await import('../tools/loadgen/targets/index.js');
    const logs: string[] = [];
    const peer = await startPeer('ragkv-cluster', { workDir: path.join(tmp.path, 'peer'), log: (l) => logs.push(l), ragkvArgs: ['--durability', 'none'] });
    try {
      assert.equal(peer.spec.kind, 'ragkv-resp');
      assert.equal(peer.spec.endpoints.length, 3);
      assert.equal(new Set(peer.spec.endpoints).size, 3);
      assert.equal(peer.serverPids.length, 3);
      assert.match(peer.describe, /3 members .*N=3 replicas, writes wait for QUORUM, reads for ONE, durability none/);
      const admins = /admin (\S+);/.exec(peer.describe)![1]!.split(',');
      assert.equal(admins.length, 3);

      const target = await createTargetFactory(peer.spec).create();
      try {
        assert.match(target.describe(), /3 cluster members .*round-robin/);
        // 6 writes and 6 reads: round-robin gives each member 2 of each.
        for (let i = 0; i < 6; i++) await target.put(`k${i}`, Buffer.from(`v${i}`));
        for (let i = 0; i < 6; i++) await target.get(`k${i}`);
      } finally {
        await target.close();
      }
      for (const admin of admins) {
        const metrics = await getText(`http://${admin}/metrics`);
        const count = (command: string): number =>
          Number(new RegExp(`ragkv_requests_total\\{protocol="resp",command="${command}"\\} (\\d+)`).exec(metrics)?.[1] ?? 0);
        assert.equal(count('set'), 2, `SETs coordinated by ${admin}`);
        assert.equal(count('get'), 2, `GETs coordinated by ${admin}`);
      }
    } finally {
      await peer.stop();
    }
    for (const pid of peer.serverPids) assert.equal(isRunning(pid), false, `member pid ${pid} stopped`);
  });
});
