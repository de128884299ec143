/**
 * Session guarantees on real member processes, through clients nobody here wrote: a
 * connection reads its own acknowledged writes (read-your-writes) and never reads older than
 * it already read (monotonic reads), at the default levels (W=QUORUM, R=ONE), pipelined or
 * not, whether or not the member it is connected to holds the key.
 *
 * Four members with N=3: each member replicates three quarters of the keys, so a quarter of
 * every client's keys live elsewhere and are read through another member's replicas.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import * as grpc from '@grpc/grpc-js';
import { PlacementTable } from '../src/cluster/placement/table.js';
import { createRawKvClient, type RawKvClient } from '../src/client/grpc.js';
import { sessionTokenEntries } from '../src/common/session-token.js';
import { ProcessCluster } from './helpers/cluster.js';

const hosts = ['127.0.0.41', '127.0.0.42', '127.0.0.43', '127.0.0.44'];
const replicas = 3;

/** The members' ring as they build it (same members, same N, default vnodes). */
function ringOf(c: ProcessCluster): PlacementTable {
  return PlacementTable.initial(hosts.map((_, i) => ({ id: c.id(i) })), replicas, c.id(0));
}

/** Keys that `member` does not replicate (read through other members). */
function remoteKeys(ring: PlacementTable, member: string, prefix: string, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) {
    const k = `${prefix}:${i}`;
    if (!ring.replicasFor('default', Buffer.from(k)).includes(member)) out.push(k);
  }
  return out;
}

/** Runs redis-cli with `commands` on stdin (one connection, one command at a time) and returns its output lines. */
function redisCli(host: string, port: number, commands: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const p = spawn('redis-cli', ['-h', host, '-p', String(port)], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve(out.split('\n').filter((l) => l.length > 0)) : reject(new Error(`redis-cli exited ${code}`))));
    p.stdin.end(commands.join('\n') + '\n');
  });
}

test('sessions: 0 stale reads in 10,000 through ioredis (pipelined), node-redis (awaited) and redis-cli, on keys local and remote to the member', { timeout: 240_000 }, async (t) => {
  const c = await ProcessCluster.start({ hosts, extraArgs: ['--replicas', String(replicas)] });
  const ring = ringOf(c);
  let stale = 0;
  let reads = 0;
  const staleExamples: string[] = [];
  const check = (what: string, key: string, want: string, got: string | null) => {
    reads++;
    if (got !== want) {
      stale++;
      if (staleExamples.length < 5) staleExamples.push(`${what} ${key}: wrote ${want}, read ${got}`);
    }
  };
  try {
    // ioredis, pipelined: SET k v then GET k in one pipeline, 4000 pairs over 4 members.
    for (let m = 0; m < hosts.length; m++) {
      const r = new Redis({ host: c.host(m), port: c.member(m).ports.resp, lazyConnect: true });
      await r.connect();
      try {
        // Half the keys are new, half are overwritten again and again (an old value is stale too).
        const remote = remoteKeys(ring, c.id(m), `io${m}`, 20);
        for (let round = 0; round < 10; round++) {
          const p = r.pipeline();
          const keys: string[] = [];
          for (let i = 0; i < 100; i++) {
            // New keys, one hot key overwritten all the time, and keys this member does not hold.
            const key = i % 2 === 0 ? `io${m}:new:${round}:${i}` : i % 4 === 1 ? `io${m}:hot` : remote[i % remote.length]!;
            keys.push(key);
            p.set(key, `${round}.${i}`);
            p.get(key);
          }
          const res = (await p.exec())!;
          keys.forEach((k, i) => check('ioredis', k, `${round}.${i}`, res[2 * i + 1]![1] as string | null));
        }
      } finally {
        r.disconnect();
      }
    }
    t.diagnostic(`ioredis: reads ${reads}, stale ${stale}`);
    // node-redis, each command awaited: 3000 pairs.
    const clients = await Promise.all(
      hosts.map(async (_, m) => {
        const client = createClient({ socket: { host: c.host(m), port: c.member(m).ports.resp } });
        client.on('error', () => {});
        await client.connect();
        return client;
      }),
    );
    try {
      await Promise.all(
        clients.map(async (client, m) => {
          const remote = remoteKeys(ring, c.id(m), `nr${m}`, 10);
          for (let i = 0; i < 750; i++) {
            const key = i % 3 === 0 ? `nr${m}:new:${i}` : remote[i % remote.length]!;
            await client.set(key, `v${i}`);
            check('node-redis', key, `v${i}`, await client.get(key));
          }
        }),
      );
    } finally {
      await Promise.all(clients.map((client) => client.quit()));
    }
    t.diagnostic(`+ node-redis: reads ${reads}, stale ${stale}`);
    // redis-cli, commands one at a time on one connection per member: 3000 pairs.
    await Promise.all(
      hosts.map(async (_, m) => {
        const remote = remoteKeys(ring, c.id(m), `cli${m}`, 10);
        const commands: string[] = [];
        const expect: [string, string][] = [];
        for (let i = 0; i < 750; i++) {
          const key = i % 2 === 0 ? `cli${m}:new:${i}` : remote[i % remote.length]!;
          commands.push(`SET ${key} c${i}`, `GET ${key}`);
          expect.push([key, `c${i}`]);
        }
        const lines = await redisCli(c.host(m), c.member(m).ports.resp, commands);
        assert.equal(lines.length, commands.length, `redis-cli printed one line per command (member ${m})`);
        expect.forEach(([key, want], i) => {
          assert.equal(lines[2 * i], 'OK');
          check('redis-cli', key, want, lines[2 * i + 1] === '(nil)' ? null : lines[2 * i + 1]!);
        });
      }),
    );
    t.diagnostic(`reads ${reads}, stale ${stale}${staleExamples.length ? `: ${staleExamples.join('; ')}` : ''}`);
    assert.equal(reads, 10_000);
    assert.equal(stale, 0, `stale reads: ${staleExamples.join('; ')}`);
  } finally {
    await c.destroy();
  }
});

test('sessions: a reader never goes back while another connection writes through another member (monotonic reads)', { timeout: 120_000 }, async (t) => {
  const c = await ProcessCluster.start({ hosts, extraArgs: ['--replicas', String(replicas)] });
  const ring = ringOf(c);
  try {
    // The key lives away from the reader's member, so its reads go to other members' replicas.
    const [key] = remoteKeys(ring, c.id(3), 'mono', 1);
    const writer = new Redis({ host: c.host(0), port: c.member(0).ports.resp });
    const reader = new Redis({ host: c.host(3), port: c.member(3).ports.resp });
    let written = 0;
    let stop = false;
    const writing = (async () => {
      while (!stop && written < 3000) await writer.set(key!, String(++written));
    })();
    let last = 0;
    let reads = 0;
    let backwards = 0;
    while (written < 3000) {
      const p = reader.pipeline();
      for (let i = 0; i < 50; i++) p.get(key!);
      for (const [, v] of (await p.exec())!) {
        const n = Number(v ?? 0);
        reads++;
        if (n < last) backwards++;
        last = Math.max(last, n);
      }
    }
    stop = true;
    await writing;
    writer.disconnect();
    reader.disconnect();
    t.diagnostic(`reads ${reads}, went back ${backwards}, last seen ${last} of ${written}`);
    assert.ok(reads > 1000, `the reader read while the writer wrote (${reads})`);
    assert.equal(backwards, 0);
  } finally {
    await c.destroy();
  }
});

test('sessions: a pipelined conditional write decides on state that includes the connection\'s earlier writes (SET then EXPIRE, SET NX twice, DEL then SET XX)', { timeout: 120_000 }, async (t) => {
  const c = await ProcessCluster.start({ hosts, extraArgs: ['--replicas', String(replicas)] });
  const ring = ringOf(c);
  try {
    const r = new Redis({ host: c.host(0), port: c.member(0).ports.resp });
    const keys = [...Array.from({ length: 20 }, (_, i) => `cond:${i}`), ...remoteKeys(ring, c.id(0), 'cond:remote', 20)];
    const p = r.pipeline();
    for (const k of keys) {
      p.set(k, 'v');
      p.expire(k, 100);
      p.ttl(k);
      p.set(`${k}:nx`, 'first', 'NX');
      p.set(`${k}:nx`, 'second', 'NX');
      p.del(`${k}:nx`);
      p.set(`${k}:nx`, 'third', 'XX');
    }
    const res = (await p.exec())!.map(([err, v]) => (err ? `error: ${err.message}` : v));
    let wrong = 0;
    keys.forEach((k, i) => {
      const [set, expire, ttl, nx1, nx2, del, xx] = res.slice(7 * i, 7 * i + 7);
      const ok = set === 'OK' && expire === 1 && typeof ttl === 'number' && ttl > 90 && nx1 === 'OK' && nx2 === null && del === 1 && xx === null;
      if (!ok) {
        wrong++;
        t.diagnostic(`${k}: ${JSON.stringify([set, expire, ttl, nx1, nx2, del, xx])}`);
      }
    });
    r.disconnect();
    assert.equal(wrong, 0, 'every pipelined conditional write saw the writes before it');
  } finally {
    await c.destroy();
  }
});

test('sessions over gRPC: a token carried from member to member reads its writes and never goes back (W=ONE, R=ONE); the bundled client keeps both concurrent calls\' keys when its token is full', { timeout: 120_000 }, async (t) => {
  const c = await ProcessCluster.start({ hosts, extraArgs: ['--replicas', String(replicas)] });
  const clients: RawKvClient[] = [];
  try {
    const via = hosts.map((_, m) => {
      const client = createRawKvClient(`${c.host(m)}:${c.member(m).ports.grpc}`, { session: false });
      clients.push(client);
      return client;
    });
    // One session hops members on every call: writes at ONE through one member, reads at
    // ONE through the next (whose copy may not have the write yet).
    let token: Buffer = Buffer.alloc(0);
    let stale = 0;
    let staleWithout = 0;
    const examples: string[] = [];
    for (let i = 0; i < 1500; i++) {
      const key = Buffer.from(i % 3 === 0 ? 'g:hot' : `g:${i}`);
      const value = Buffer.from(`v${i}`);
      const w = await via[i % 4]!.rawPut({ key, value, consistency: 'ONE', session_token: token });
      token = w.session_token!;
      const r = await via[(i + 1) % 4]!.rawGet({ key, consistency: 'ONE', session_token: token });
      token = r.session_token!;
      if (r.not_found || !r.value.equals(value)) {
        stale++;
        if (examples.length < 5) examples.push(`${key}: wrote ${value}, read ${r.not_found ? '(not found)' : r.value}`);
      }
      // The same read without the session, for comparison (not asserted: it may be lucky).
      const bare = await via[(i + 2) % 4]!.rawGet({ key, consistency: 'ONE' });
      if (bare.not_found || !bare.value.equals(value)) staleWithout++;
    }
    t.diagnostic(`1500 write/read pairs across members: stale with the token ${stale}, without ${staleWithout}`);
    assert.equal(stale, 0, examples.join('; '));

    // The bundled client, its token full (600 keys written), makes two calls at once: the
    // token it sends next holds both calls' keys.
    const sent: Buffer[] = [];
    const capture: grpc.Interceptor = (o, next) =>
      new grpc.InterceptingCall(next(o), { sendMessage: (m: { session_token?: Buffer }, nx: (m: unknown) => void) => (sent.push(m.session_token ?? Buffer.alloc(0)), nx(m)) });
    const s = createRawKvClient(`${c.host(0)}:${c.member(0).ports.grpc}`, { channelOptions: { interceptors: [capture] } });
    clients.push(s);
    for (let i = 0; i < 600; i++) await s.rawPut({ key: Buffer.from(`fill:${i}`), value: Buffer.from('x'), consistency: 'ONE' });
    const full = sent[sent.length - 1]!;
    assert.ok(full.length > 15 * 1024, `the token filled up (${full.length} bytes)`);
    await Promise.all([
      s.rawPut({ key: Buffer.from('conc:A'), value: Buffer.from('a'), consistency: 'ONE' }),
      s.rawPut({ key: Buffer.from('conc:B'), value: Buffer.from('b'), consistency: 'ONE' }),
    ]);
    await s.rawGet({ key: Buffer.from('fill:599') });
    const next = sent[sent.length - 1]!;
    const entries = sessionTokenEntries(next);
    assert.ok(entries, 'the client sends a well-formed token');
    const keysIn = entries.map((e) => e.subarray(1 + e[0]! + 2, 1 + e[0]! + 2 + e.readUInt16BE(1 + e[0]!)).toString());
    assert.ok(keysIn.includes('conc:A') && keysIn.includes('conc:B'), `both concurrent calls' keys are in the token (${keysIn.slice(-4).join(', ')})`);
    assert.ok(next.length <= 16 * 1024, `the token stays within sessionTokenBytesMax (${next.length})`);
    for (const [k, v] of [['conc:A', 'a'], ['conc:B', 'b']] as const) {
      const r = await via[1]!.rawGet({ key: Buffer.from(k), consistency: 'ONE', session_token: next });
      assert.equal(r.value.toString(), v, `${k} read through another member with the client's token`);
    }
  } finally {
    for (const client of clients) client.close();
    await c.destroy();
  }
});
