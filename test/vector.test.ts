/**
 * Vector posting lists end to end: VADD/VSEARCH/VDEL/VCARD/VRANGE/MHMGET through the real
 * RESP server on the real engine (top-k checked against brute force on random data), and
 * degraded answers from the cluster coordinator when a replica does not answer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { Random } from '../src/common/random.js';
import { makeLimits } from '../src/common/limits.js';
import { PlacementTable } from '../src/cluster/placement/table.js';
import { SimClock, SimNetwork } from '../testing/sim/index.js';
import { startSimMember } from '../testing/members.js';
import { MemoryReplicaStore } from '../src/replica/memory-store.js';
import { float32FromBytes } from '../src/compute/index.js';
import { withLocalServer } from './helpers/local-server.js';

const f32 = (v: number[]) => Buffer.from(Float32Array.from(v).buffer);

function randomVectors(r: Random, n: number, dim: number): number[][] {
  return Array.from({ length: n }, () => Array.from({ length: dim }, () => r.nextDouble() * 2 - 1));
}

function bruteForce(lists: Map<string, { id: string; v: number[] }[]>, q: number[], k: number, metric: 'L2' | 'IP' | 'COSINE') {
  const all: { key: string; id: string; d: number }[] = [];
  const norm = (v: number[]) => Math.sqrt(v.reduce((a, x) => a + x * x, 0));
  for (const [key, items] of lists) {
    for (const it of items) {
      let d: number;
      if (metric === 'L2') d = it.v.reduce((a, x, i) => a + (x - q[i]!) ** 2, 0);
      else {
        const ip = it.v.reduce((a, x, i) => a + x * q[i]!, 0);
        d = metric === 'IP' ? -ip : 1 - ip / (norm(it.v) * norm(q));
      }
      all.push({ key, id: it.id, d });
    }
  }
  return all.sort((a, b) => a.d - b.d).slice(0, k);
}


const vadd = (r: Redis, key: string, type: string, dim: number, items: { id: string; blob: Buffer; payload?: string }[]) =>
  r.callBuffer('VADD', key, type, String(dim), ...items.flatMap((it) => ['ITEM', it.id, it.blob, ...(it.payload ? ['PAYLOAD', it.payload] : [])])) as Promise<number>;

type Hit = [Buffer, Buffer, Buffer, Buffer?];
async function vsearch(r: Redis, k: number, metric: string, q: number[], keys: string[], ...extra: string[]) {
  const reply = (await r.callBuffer('VSEARCH', String(k), metric, f32(q), 'KEYS', String(keys.length), ...keys, ...extra)) as unknown[];
  const hits = (reply[1] as Hit[]).map((h) => ({ key: String(h[0]), id: String(h[1]), score: Number(String(h[2])), payload: h[3] ? String(h[3]) : undefined }));
  return { hits, degraded: reply[3] === 1, skipped: (reply[5] as Buffer[]).map(String) };
}

test('VSEARCH returns the exact top-k over many lists, for every metric (random data vs brute force)', () =>
  withLocalServer(async (redis) => {
    const rnd = new Random(42);
    const dim = 16;
    const lists = new Map<string, { id: string; v: number[] }[]>();
    for (let l = 0; l < 12; l++) {
      const key = `list:${l}`;
      const items = randomVectors(rnd, 40, dim).map((v, i) => ({ id: `${l}-${i}`, v }));
      lists.set(key, items);
      // Two appends per list: the search must see both batches.
      for (const half of [items.slice(0, 25), items.slice(25)]) {
        const count = await vadd(redis, key, 'float32', dim, half.map((it) => ({ id: it.id, blob: f32(it.v) })));
        assert.equal(count, half === items.slice(0, 25) ? 25 : items.indexOf(half[half.length - 1]!) + 1);
      }
      assert.equal(await redis.call('VCARD', key), 40);
    }
    for (const metric of ['L2', 'IP', 'COSINE'] as const) {
      for (let qn = 0; qn < 5; qn++) {
        const q = randomVectors(rnd, 1, dim)[0]!;
        const got = await vsearch(redis, 10, metric, q, [...lists.keys()]);
        const want = bruteForce(lists, q, 10, metric);
        assert.deepEqual(got.hits.map((h) => `${h.key}/${h.id}`), want.map((w) => `${w.key}/${w.id}`), `${metric} query ${qn}`);
        assert.equal(got.degraded, false);
      }
    }
  }));

test('deletes are honoured, payload prefix and field filters apply, partial reads and projection work', () =>
  withLocalServer(async (redis) => {
    const dim = 4;
    const items = [
      { id: 'a', blob: f32([0, 0, 0, 0]), payload: 'doc:1|intro' },
      { id: 'b', blob: f32([1, 0, 0, 0]), payload: 'doc:2|body' },
      { id: 'c', blob: f32([2, 0, 0, 0]), payload: 'doc:1|end' },
    ];
    assert.equal(await vadd(redis, 'p1', 'float32', dim, items), 3);
    assert.equal(await vadd(redis, 'p2', 'float32', dim, [{ id: 'z', blob: f32([0.1, 0, 0, 0]) }]), 1);
    let r = await vsearch(redis, 2, 'L2', [0, 0, 0, 0], ['p1', 'p2'], 'WITHPAYLOADS');
    assert.deepEqual(r.hits.map((h) => h.id), ['a', 'z']);
    assert.equal(r.hits[0]!.payload, 'doc:1|intro');
    assert.equal(await redis.call('VDEL', 'p1', 'a'), 2);
    r = await vsearch(redis, 3, 'L2', [0, 0, 0, 0], ['p1']);
    assert.deepEqual(r.hits.map((h) => h.id), ['b', 'c'], 'a deleted item is never returned');
    r = await vsearch(redis, 3, 'L2', [0, 0, 0, 0], ['p1'], 'PREFIX', 'doc:1|');
    assert.deepEqual(r.hits.map((h) => h.id), ['c'], 'payload prefix filter');
    await redis.hset('p2', 'lang', 'fr');
    await redis.hset('p1', 'lang', 'en');
    r = await vsearch(redis, 3, 'L2', [0, 0, 0, 0], ['p1', 'p2'], 'FILTER', 'lang', 'fr');
    assert.deepEqual(r.hits.map((h) => h.id), ['z'], 'field filter on the lists\' records');
    assert.equal(await vadd(redis, 'p1', 'float32', dim, [{ id: 'a', blob: f32([5, 5, 5, 5]) }]), 3, 'a re-added id is live again');
    const range = (await redis.callBuffer('VRANGE', 'p1', '0', '-1', 'WITHVECTORS', 'WITHPAYLOADS')) as [Buffer, Buffer, Buffer | null][];
    assert.deepEqual(range.map((x) => String(x[0])), ['b', 'c', 'a'], 'items in append order');
    assert.deepEqual([...float32FromBytes(range[2]![1]!)], [5, 5, 5, 5]);
    assert.equal(String(range[0]![2]), 'doc:2|body');
    const part = (await redis.callBuffer('VRANGE', 'p1', '1', '1')) as [Buffer][];
    assert.deepEqual(part.map((x) => String(x[0])), ['c']);
    await redis.hset('doc:1', 'title', 'T1', 'body', 'long text', 'lang', 'en');
    await redis.hset('doc:2', 'title', 'T2', 'body', 'more text');
    assert.deepEqual(await redis.call('MHMGET', '2', 'doc:1', 'doc:2', 'title', 'lang'), [['T1', 'en'], ['T2', null]]);
  }));

test('type, dimension and input errors are refused with clear messages; nothing stored is harmed', () =>
  withLocalServer(async (redis) => {
    assert.equal(await vadd(redis, 'v', 'uint8', 3, [{ id: 'x', blob: Buffer.from([1, 2, 3]) }]), 1);
    await assert.rejects(vadd(redis, 'v', 'uint8', 4, [{ id: 'y', blob: Buffer.from([1, 2, 3, 4]) }]), /list 'v' holds uint8 vectors of dimension 3; got uint8 of dimension 4/);
    await assert.rejects(vadd(redis, 'v', 'float32', 3, [{ id: 'y', blob: f32([1, 2, 3]) }]), /holds uint8 vectors of dimension 3; got float32/);
    await assert.rejects(vadd(redis, 'v', 'uint8', 3, [{ id: 'y', blob: Buffer.from([1, 2]) }]), /vector of item 'y' is 2 bytes; uint8 of dimension 3 needs 3/);
    await assert.rejects(redis.call('VADD', 'v', 'bf16', '3', 'ITEM', 'y', 'abc'), /element type must be float32, float16, int8 or uint8/);
    await assert.rejects(vsearch(redis, 5, 'L2', [1, 2], ['v']), /dim|dimension/i);
    await assert.rejects(vsearch(redis, 5, 'HAMMING', [1, 2, 3], ['v']), /metric must be L2, IP or COSINE/);
    await assert.rejects(redis.callBuffer('VSEARCH', '5', 'L2', Buffer.alloc(6), 'KEYS', '1', 'v'), /multiple of 4/);
    await redis.set('plain', 'not a list');
    await assert.rejects(vsearch(redis, 5, 'L2', [1, 2, 3], ['plain']), /WRONGTYPE.*not a vector posting list/);
    await assert.rejects(vadd(redis, 'plain', 'uint8', 3, [{ id: 'x', blob: Buffer.from([1, 2, 3]) }]), /WRONGTYPE/);
    assert.equal(await redis.get('plain'), 'not a list');
    assert.equal(await redis.call('VCARD', 'v'), 1, 'the list is intact');
  }));

test('cluster: lists are searched at their replicas; a replica that does not answer makes the answer degraded, naming its keys', async () => {
  const clock = new SimClock({ startMs: 1_700_000_000_000 });
  const net = new SimNetwork(clock, new Random(3), { delayMsMin: 1, delayMsMax: 3, lossRate: 0, duplicateRate: 0 });
  const ids = ['n1', 'n2', 'n3', 'n4'];
  const ring = PlacementTable.initial(ids.map((id) => ({ id })), 1, ids[0]!);
  const stores = new Map(ids.map((id) => [id, new MemoryReplicaStore()]));
  const coords = new Map(
    ids.map((id) => {
      const m = startSimMember({ id, ring, net, transport: net.transport(id), clock, store: stores.get(id)!, limits: makeLimits(), seed: 1, requestTimeoutMs: 100 });
      m.hints.stop();
      return [id, m.engine];
    }),
  );
  const run = async <T>(p: Promise<T>): Promise<T> => {
    let out: { v?: T; e?: unknown } | null = null;
    p.then((v) => (out = { v }), (e) => (out = { e }));
    await clock.runUntilTrue(() => out !== null, 10_000);
    const o = out as unknown as { v?: T; e?: unknown };
    if (o.e) throw o.e;
    return o.v as T;
  };
  const kv = coords.get('n1')!;
  const keys = Array.from({ length: 8 }, (_, i) => Buffer.from(`list:${i}`));
  for (const [i, key] of keys.entries()) {
    await run(kv.vadd('default', key, { type: 'float32', dim: 2, items: [{ id: Buffer.from(`v${i}`), vector: [i, 0] }] }));
  }
  const q = { keys, query: Float32Array.from([0, 0]), k: 8, metric: 'L2' as const };
  const full = await run(kv.vsearch('default', q));
  assert.equal(full.degraded, false);
  assert.deepEqual(full.hits.map((h) => String(h.id)), keys.map((_, i) => `v${i}`));
  const victim = ids.find((id) => id !== 'n1' && keys.some((k) => ring.replicasFor('default', k)[0] === id))!;
  const lost = keys.filter((k) => ring.replicasFor('default', k)[0] === victim).map(String);
  net.crash(victim);
  const partial = await run(kv.vsearch('default', q));
  assert.equal(partial.degraded, true);
  assert.deepEqual(partial.skippedKeys.map(String).sort(), lost.sort());
  assert.equal(partial.hits.length, keys.length - lost.length, 'the other lists still answer');
  assert.ok(partial.hits.every((h) => !lost.includes(String(h.key))));
});

test('RAGKV.COMPACT removes deleted items now: the list shrinks, reads and search do not change; other values are left alone', () =>
  withLocalServer(async (redis) => {
    const dim = 8;
    const items = Array.from({ length: 30 }, (_, i) => ({ id: `it${i}`, blob: Buffer.alloc(dim, i) }));
    assert.equal(await vadd(redis, 'pl', 'uint8', dim, items), 30);
    assert.equal(await redis.call('VDEL', 'pl', ...items.slice(0, 20).map((it) => it.id)), 10);
    await redis.set('plain', 'just bytes');
    const before = Number(await redis.strlen('pl'));
    const rangeBefore = await redis.callBuffer('VRANGE', 'pl', '0', '-1', 'WITHVECTORS');
    const searchBefore = await vsearch(redis, 3, 'L2', Array.from({ length: dim }, () => 25), ['pl']);
    const reply = (await redis.call('RAGKV.COMPACT', 'pl', 'plain', 'missing')) as [string, number, string, number];
    assert.equal(reply[0], 'records');
    assert.ok(reply[1] >= 2, 'both stored keys were looked at');
    assert.equal(reply[2], 'bytes_freed');
    const after = Number(await redis.strlen('pl'));
    assert.equal(reply[3], before - after, 'the bytes reported are the bytes the list lost');
    assert.ok(after <= before - 20 * dim, `20 deleted vectors are gone (${before} -> ${after})`);
    assert.deepEqual(await redis.callBuffer('VRANGE', 'pl', '0', '-1', 'WITHVECTORS'), rangeBefore);
    assert.deepEqual(await vsearch(redis, 3, 'L2', Array.from({ length: dim }, () => 25), ['pl']), searchBefore);
    assert.equal(await redis.get('plain'), 'just bytes');
    assert.deepEqual(await redis.call('RAGKV.COMPACT', 'pl'), ['records', 1, 'bytes_freed', 0], 'nothing left to remove');
    await assert.rejects(redis.call('RAGKV.COMPACT', 'x'.repeat(2000)), /keyBytesMax/);
  }));
