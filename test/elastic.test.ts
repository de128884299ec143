/**
 * Elasticity with real member processes: 3 → 4 → 3 members under load (a join, then a
 * graceful leave), a member restored after its disk was wiped, and a dead member removed
 * with its slots re-replicated. Counted: failed requests, acknowledged writes missing at
 * level ONE through every member, copies per key once settled (the sum of members' DBSIZE).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { ProcessCluster, waitFor } from './helpers/cluster.js';

const hosts = ['127.0.0.31', '127.0.0.32', '127.0.0.33'];

function connect(host: string, port: number): Redis {
  const c = new Redis({ host, port, lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null, commandTimeout: 10_000 });
  c.on('error', () => {});
  return c;
}

/** Writers and readers through the given members; every acknowledged SET is remembered. */
class Load {
  readonly acked = new Map<string, string>();
  failures: string[] = [];
  reads = 0;
  missing: string[] = [];
  private stopped = false;
  private readonly loops: Promise<void>[];
  private seq = 0;
  private readonly mine: string[][] = [];

  constructor(clients: Redis[]) {
    this.loops = clients.map((c, i) => this.run(c, i));
  }

  private async run(c: Redis, i: number): Promise<void> {
    while (!this.stopped) {
      const key = `load:${i}:${this.seq++}`;
      const value = `v${this.seq}`;
      try {
        await c.set(key, value);
        this.acked.set(key, value);
      } catch (err) {
        this.failures.push(`SET ${key}: ${(err as Error).message}`);
      }
      // Read back a key this connection wrote earlier, at ONE (the default): a connection reads
      // its own acknowledged writes (sessions), through every stage of a change. (Another
      // connection's write just acknowledged at QUORUM may not have reached the replica a read
      // at ONE asks yet: that is ONE's contract at any time; the final check reads them all.)
      const mine = this.mine[i] ??= [];
      if (this.acked.has(key)) mine.push(key);
      const probe = mine[(this.seq * 7919) % mine.length];
      if (probe) {
        try {
          const got = await c.get(probe);
          this.reads++;
          if (got !== this.acked.get(probe)) this.missing.push(`${probe}: ${got}`);
        } catch (err) {
          this.failures.push(`GET ${probe}: ${(err as Error).message}`);
        }
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }
}

async function preload(c: Redis, n: number, into: Map<string, string>): Promise<void> {
  for (let i = 0; i < n; i += 100) {
    const p = c.pipeline();
    for (let j = i; j < Math.min(n, i + 100); j++) p.set(`pre:${j}`, `p${j}`);
    const res = await p.exec();
    res!.forEach(([err], k) => {
      assert.equal(err, null);
      into.set(`pre:${i + k}`, `p${i + k}`);
    });
  }
}

/** Every acknowledged key read at ONE through member i: the keys missing or wrong. */
async function missingVia(cluster: ProcessCluster, i: number, acked: Map<string, string>): Promise<string[]> {
  const c = connect(cluster.host(i), cluster.member(i).ports.resp);
  await c.connect();
  const out: string[] = [];
  const keys = [...acked.keys()];
  for (let k = 0; k < keys.length; k += 200) {
    const batch = keys.slice(k, k + 200);
    const got = await c.mget(...batch);
    batch.forEach((key, j) => {
      if (got[j] !== acked.get(key)) out.push(`${key}=${got[j]}`);
    });
  }
  c.disconnect();
  return out;
}

async function dbsizes(cluster: ProcessCluster, members: number[]): Promise<number[]> {
  return Promise.all(
    members.map(async (i) => {
      const c = connect(cluster.host(i), cluster.member(i).ports.resp);
      await c.connect();
      const n = await c.dbsize();
      c.disconnect();
      return n;
    }),
  );
}

/** Waits until the members hold exactly 3 copies of every key (cleanup of moved slots done). */
async function waitCopies(cluster: ProcessCluster, members: number[], keys: number): Promise<void> {
  let last: number[] = [];
  await waitFor(
    `${keys} keys × 3 copies on ${members.map((i) => cluster.id(i)).join(',')}`,
    async () => {
      last = await dbsizes(cluster, members);
      return last.reduce((a, b) => a + b, 0) === 3 * keys ? true : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 200, describe: () => `DBSIZE ${last.join(' + ')}` },
  );
}

test('3 → 4 → 3 members under load: a join and a leave with no failed request, no missing read, 3 copies of every key', { timeout: 240_000 }, async (t) => {
  const cluster = await ProcessCluster.start({ hosts, extraArgs: ['--durability', 'commit'] });
  t.after(() => cluster.destroy());
  const acked = new Map<string, string>();
  const admin = connect(cluster.host(0), cluster.member(0).ports.resp);
  await admin.connect();
  await preload(admin, 3000, acked);
  admin.disconnect();

  const clients = [0, 1, 2].map((i) => connect(cluster.host(i), cluster.member(i).ports.resp));
  await Promise.all(clients.map((c) => c.connect()));
  const load = new Load(clients);

  // Join: a 4th member started with seeds streams its slots, then serves them.
  const n4 = await cluster.addMember('127.0.0.34');
  await cluster.startMember(n4);
  const epochJoined = await cluster.waitPlacementSettled(60_000);
  const s4 = await cluster.status(n4);
  assert.ok(s4.placement!.counters.streamedKeys > 0, 'the new member streamed keys');
  assert.ok(s4.members.find((m) => m.id === cluster.id(n4))!.slots > 10_000, 'it holds about a quarter of the slot replicas');
  // Progress is in the metrics too.
  const metrics = await (await fetch(`http://${cluster.host(n4)}:${cluster.member(n4).ports.admin}/metrics`)).text();
  assert.match(metrics, new RegExp(`^ragkv_placement_epoch ${epochJoined}$`, 'm'));
  assert.match(metrics, /^ragkv_placement_change_in_flight 0$/m);
  const streamed = Number(/^ragkv_stream_keys_total (\d+)$/m.exec(metrics)?.[1]);
  assert.equal(streamed, s4.placement!.counters.streamedKeys);

  // Leave: the 4th member streams out and stops.
  const left = await cluster.post(n4, '/cluster/leave');
  assert.equal(left.status, 200, left.body);
  await cluster.waitExit(n4);
  const epochLeft = await cluster.waitPlacementSettled(60_000, [0, 1, 2]);
  assert.ok(epochLeft > epochJoined);
  await load.stop();
  clients.forEach((c) => c.disconnect());

  for (const [k, v] of load.acked) acked.set(k, v);
  // Copies a replica missed (it refused a round on an older epoch, say) reach it as hints: once
  // they are delivered, every key reads back at ONE through every member.
  await cluster.waitHintsDrained(30_000);
  assert.deepEqual(load.failures, [], 'no request failed during the join and the leave');
  assert.deepEqual(load.missing, [], 'no acknowledged write read back missing or stale at ONE');
  assert.ok(load.reads > 100, `reads ran during the changes (${load.reads})`);
  for (const i of [0, 1, 2]) assert.deepEqual(await missingVia(cluster, i, acked), [], `every key readable at ONE through ${cluster.id(i)}`);
  await waitCopies(cluster, [0, 1, 2], acked.size);
  const st = await cluster.status(0);
  assert.equal(st.members.filter((m) => m.inTable).length, 3);
});

test('a member back on a wiped disk restores every key before it is read; a dead member is removed and its slots re-replicated', { timeout: 240_000 }, async (t) => {
  const cluster = await ProcessCluster.start({ hosts: ['127.0.0.41', '127.0.0.42', '127.0.0.43', '127.0.0.44'], extraArgs: ['--durability', 'commit'] });
  t.after(() => cluster.destroy());
  const acked = new Map<string, string>();
  const c0 = connect(cluster.host(0), cluster.member(0).ports.resp);
  await c0.connect();
  await preload(c0, 3000, acked);
  const before = (await dbsizes(cluster, [2]))[0]!;
  assert.ok(before > 1000);

  // Wipe n3's disk: it comes back with another data id, is written but not read, and streams.
  await cluster.kill9(2);
  cluster.wipe(2);
  await cluster.startMember(2);
  await waitFor('n3 restored', async () => ((await cluster.status(2)).placement?.awaitingRestore === false ? true : undefined), { timeoutMs: 30_000 });
  await cluster.waitPlacementSettled(60_000);
  assert.equal((await dbsizes(cluster, [2]))[0], before, 'the restored member holds every key it held before');
  assert.deepEqual(await missingVia(cluster, 2, acked), [], 'every key readable at ONE through the restored member');

  // Remove: n4 dies for good; its slots are re-replicated from the survivors.
  await cluster.kill9(3);
  await cluster.waitStatus([0, 1, 2], [3], 'dead', 30_000);
  const removed = await cluster.post(0, `/cluster/remove?id=${cluster.id(3)}`);
  assert.equal(removed.status, 200, removed.body);
  await cluster.waitPlacementSettled(60_000, [0, 1, 2]);
  await waitCopies(cluster, [0, 1, 2], acked.size);
  for (const i of [0, 1, 2]) assert.deepEqual(await missingVia(cluster, i, acked), [], `every key readable at ONE through ${cluster.id(i)}`);
  // Removing a live member is refused with a reason.
  const refused = await cluster.post(0, `/cluster/remove?id=${cluster.id(1)}`);
  assert.equal(refused.status, 400);
  assert.match(refused.body, /is alive/);
  // Nor a member through its own admin port (it is alive: it leaves instead), nor one not in the table.
  const self = await cluster.post(0, `/cluster/remove?id=${cluster.id(0)}`);
  assert.equal(self.status, 400, self.body);
  assert.match(self.body, /is alive/);
  const unknown = await cluster.post(0, '/cluster/remove?id=nope');
  assert.equal(unknown.status, 404, unknown.body);
  assert.match(unknown.body, /not a member/);
  c0.disconnect();
});
