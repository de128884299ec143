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

interface Cluster {
  proc: ChildProcess;
  exited: Promise<number | string>;
  stderr: () => string;
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
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
    if (stderr.includes('Press Ctrl-C to stop every member.')) onBanner(stderr);
  });
  const ready = new Promise<ReadyMember[]>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      const rec = JSON.parse(line) as { msg?: string; members?: ReadyMember[] };
      if (rec.msg === 'cluster ready') resolve(rec.members!);
    });
    void exited.then((code) => reject(new Error(`local-cluster exited (${code}) before ready:\n${stderr}`)));
  });
  ready.catch(() => {});
  return { proc, exited, stderr: () => stderr, banner, ready };
}

const freePortsArgs = ['--base-resp-port', '0', '--base-grpc-port', '0', '--base-admin-port', '0', '--base-peer-port', '0', '--durability', 'none'];

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

    const run = startLocalCluster(['--members', 'three']);
    assert.equal(await run.exited, 2);
    assert.match(run.stderr(), /--members must be an integer/);
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
        members: { id: string; status: string; primaryShare: number }[];
      };
      assert.equal(view.self, 'n1');
      assert.deepEqual(view.members.map((m) => [m.id, m.status]).sort(), [['n1', 'alive'], ['n2', 'alive'], ['n3', 'alive']]);
      const shares = view.members.reduce((sum, m) => sum + m.primaryShare, 0);
      assert.ok(Math.abs(shares - 1) < 0.01, `primary shares sum to ${shares}`);
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

  it('a member that dies is named, the others are stopped, and the exit code is 1', async () => {
    const cluster = startLocalCluster(['--data', path.join(tmp.path, 'dies'), '--members', '2', ...freePortsArgs]);
    try {
      const members = await cluster.ready;
      process.kill(members[1]!.pid, 'SIGKILL');
      assert.equal(await cluster.exited, 1);
      assert.match(cluster.stderr(), /member n2 \(pid \d+\) exited unexpectedly \(SIGKILL\)/);
      assert.equal(isRunning(members[0]!.pid), false, 'n1 was stopped');
      assert.match(readFileSync(members[0]!.log, 'utf8'), /"msg":"stopped"/, 'n1 closed cleanly');
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
