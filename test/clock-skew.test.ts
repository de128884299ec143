/**
 * Clock skew on real member processes under Debian's faketime: one member's wall clock two
 * hours ahead, two hours behind, or members 300 ms apart (within the 500 ms bound).
 *
 * - Far off: the member with the bad clock finds out from its peers' acks, says so (/ready
 *   503 naming the offset, ragkv_clock_skewed 1), and coordinates nothing (CLOCKSKEW);
 *   the others keep serving, and every write they acknowledge survives: 0 lost.
 * - Within the bound: every member serves, and every acknowledged write survives when writes
 *   through different members are further apart in time than the clocks are.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { ProcessCluster, getJson, waitFor } from './helpers/cluster.js';

const hosts = ['127.0.0.51', '127.0.0.52', '127.0.0.53'];

function connect(c: ProcessCluster, i: number): Redis {
  const r = new Redis({ host: c.host(i), port: c.member(i).ports.resp, lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false });
  r.on('error', () => {});
  return r;
}

async function ready(c: ProcessCluster, i: number): Promise<{ status: number; body: string }> {
  const { get } = await import('node:http');
  return new Promise((resolve, reject) => {
    get({ host: c.host(i), port: c.member(i).ports.admin, path: '/ready' }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

async function metric(c: ProcessCluster, i: number, name: string): Promise<number> {
  const { get } = await import('node:http');
  const text = await new Promise<string>((resolve, reject) => {
    get({ host: c.host(i), port: c.member(i).ports.admin, path: '/metrics' }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
}

/**
 * Writes through the given members in turn: SETs of one register (sequential, each after the
 * previous one's reply) and APPENDs of distinct tokens. Counts what was acknowledged.
 */
async function writeThrough(clients: Redis[], rounds: number, pauseMs = 0): Promise<{ lastAcked: string | null; tokens: string[]; failed: string[] }> {
  let lastAcked: string | null = null;
  const tokens: string[] = [];
  const failed: string[] = [];
  for (let i = 0; i < rounds; i++) {
    const r = clients[i % clients.length]!;
    try {
      await r.set('reg', `w${i}`);
      lastAcked = `w${i}`;
    } catch (err) {
      failed.push(`set w${i}: ${(err as Error).message}`);
    }
    try {
      await r.append('log', `<${i}>`);
      tokens.push(`<${i}>`);
    } catch (err) {
      failed.push(`append ${i}: ${(err as Error).message}`);
    }
    // Writes through different members must be further apart than their clocks (see README).
    if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
  }
  return { lastAcked, tokens, failed };
}

/** Checks every acknowledged write on every serving member (reads at QUORUM and at ONE). */
async function checkNoneLost(t: TestContext, clients: Redis[], w: { lastAcked: string | null; tokens: string[] }): Promise<void> {
  let lost = 0;
  for (const [level, r] of clients.flatMap((r) => [['QUORUM', r], ['ONE', r]] as const)) {
    await r.call('RAGKV.CONSISTENCY', 'READ', level);
    const reg = await r.get('reg');
    if (reg !== w.lastAcked) lost++;
    const log = (await r.get('log')) ?? '';
    for (const token of w.tokens) if (!log.includes(token)) lost++;
  }
  t.diagnostic(`acknowledged: ${w.tokens.length} appends, last SET ${w.lastAcked}; lost ${lost}`);
  assert.equal(lost, 0);
}

for (const [name, offset] of [
  ['two hours ahead', '+2h'],
  ['two hours behind', '-2h'],
] as const) {
  test(`clock skew: a member ${name} stops coordinating (CLOCKSKEW, /ready 503, metric); the others lose no acknowledged write`, { timeout: 120_000 }, async (t) => {
    const c = await ProcessCluster.start({ hosts, clockOffsets: [undefined, undefined, offset] });
    const clients: Redis[] = [];
    try {
      await waitFor('the skewed member to say so on /ready', async () => (await ready(c, 2)).status === 503 || undefined, { timeoutMs: 15_000 });
      const r3 = await ready(c, 2);
      assert.match(r3.body, /clock is [+-]?\d+ ms from its peers'.*maxClockOffsetMs/);
      for (const i of [0, 1]) {
        const r = await ready(c, i);
        assert.equal(r.status, 200, `healthy member ${i} is ready: ${r.body}`);
      }
      assert.equal(await metric(c, 2, 'ragkv_clock_skewed'), 1);
      assert.equal(await metric(c, 0, 'ragkv_clock_skewed'), 0);
      assert.ok(Math.abs(await metric(c, 2, 'ragkv_clock_offset_ms')) > 7_000_000, 'the offset is shown');
      for (let i = 0; i < 3; i++) clients.push(connect(c, i));
      await Promise.all(clients.map((r) => r.connect()));
      // The skewed member refuses writes (an expiring one too) and reads.
      await assert.rejects(clients[2]!.set('x', 'y'), /^ReplyError: CLOCKSKEW this member's clock/);
      await assert.rejects(clients[2]!.set('session', 'v', 'EX', 3600), /CLOCKSKEW/);
      await assert.rejects(clients[2]!.get('x'), /CLOCKSKEW/);
      // Writes through the healthy members, while the skewed one is tried too and refuses.
      const w = await writeThrough(clients, 30);
      const healthyFailures = w.failed.filter((f) => !/CLOCKSKEW/.test(f));
      assert.deepEqual(healthyFailures, [], 'every write through a healthy member is acknowledged');
      assert.equal(w.failed.length, 20, 'every write through the skewed member is refused (10 SETs, 10 APPENDs)');
      // An expiring write through a healthy member is visible on the other healthy one.
      await clients[0]!.set('session', 'v', 'EX', 3600);
      assert.equal(await clients[1]!.get('session'), 'v');
      assert.ok((await clients[1]!.ttl('session')) > 3500);
      await checkNoneLost(t, clients.slice(0, 2), w);
      const refused = await metric(c, 2, 'ragkv_versions_refused_total');
      const status = await getJson<{ clock: { state: string } }>(c.host(0), c.member(0).ports.admin, '/cluster');
      assert.equal(status.clock.state, 'ok');
      t.diagnostic(`skewed member refused ${refused} replica writes`);
    } finally {
      for (const r of clients) r.disconnect();
      await c.destroy();
    }
  });
}

test('clock skew within the bound (members +300 ms and -300 ms): every member serves; writes further apart than the clocks keep their order; 0 lost', { timeout: 120_000 }, async (t) => {
  const c = await ProcessCluster.start({ hosts, clockOffsets: [undefined, '+0.3', '-0.3'] });
  const clients: Redis[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      assert.equal((await ready(c, i)).status, 200, `member ${i} is ready`);
      clients.push(connect(c, i));
    }
    await Promise.all(clients.map((r) => r.connect()));
    const w = await writeThrough(clients, 15, 700);
    assert.deepEqual(w.failed, []);
    for (let i = 0; i < 3; i++) assert.equal(await metric(c, i, 'ragkv_clock_skewed'), 0);
    await checkNoneLost(t, clients, w);
  } finally {
    for (const r of clients) r.disconnect();
    await c.destroy();
  }
});
