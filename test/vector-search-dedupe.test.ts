/**
 * An id placed in several posting lists (SPANN replicates boundary vectors) comes back once,
 * from the list where it scores best, and the top k holds k distinct ids whenever the lists
 * hold k, on a single node and across replicas (checked against brute force on random data).
 * ALLCOPIES (gRPC all_copies) returns every list's copy instead.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { Random } from '../src/common/random.js';
import type { KvApi, VectorSearchRequest } from '../src/coordinator/api.js';
import { simVectorCluster } from './helpers/sim-vectors.js';
import { decodeRequest, encodeRequest } from '../src/replica/protocol.js';
import { makeLimits } from '../src/common/limits.js';
import { withLocalServer } from './helpers/local-server.js';

const b = (s: string) => Buffer.from(s);
const f32 = (v: number[]) => Buffer.from(Float32Array.from(v).buffer);


async function vsearch(r: Redis, k: number, q: number[], keys: string[], ...extra: string[]) {
  const reply = (await r.callBuffer('VSEARCH', String(k), 'L2', f32(q), 'KEYS', String(keys.length), ...keys, ...extra)) as unknown[];
  return (reply[1] as Buffer[][]).map((h) => `${h[0]}/${h[1]}/${Number(String(h[2]))}`);
}

/** SPANN-like data: every id has one vector and sits in 1..3 of the lists. */
function spannLists(rnd: Random, lists: number, ids: number, dim: number) {
  const content = new Map<string, { id: string; v: number[] }[]>();
  for (let l = 0; l < lists; l++) content.set(`list:${l}`, []);
  const keys = [...content.keys()];
  for (let i = 0; i < ids; i++) {
    const v = Array.from({ length: dim }, () => Math.fround(rnd.nextDouble() * 2 - 1));
    const copies = 1 + rnd.nextInt(3);
    const at = new Set<string>();
    while (at.size < copies) at.add(keys[rnd.nextInt(keys.length)]!);
    for (const key of at) content.get(key)!.push({ id: `id${i}`, v });
  }
  return content;
}

/** The k best by brute force: each id once at its best (ties: lowest key), or every (key, id). */
function bruteForce(content: Map<string, { id: string; v: number[] }[]>, q: number[], k: number, allCopies: boolean): string[] {
  const best = new Map<string, { key: string; id: string; d: number }>();
  for (const [key, items] of content) {
    for (const it of items) {
      const d = it.v.reduce((a, x, i) => a + (x - q[i]!) ** 2, 0);
      const name = allCopies ? `${key}/${it.id}` : it.id;
      const seen = best.get(name);
      if (!seen || d < seen.d || (d === seen.d && key < seen.key)) best.set(name, { key, id: it.id, d });
    }
  }
  return [...best.values()]
    .sort((a, b) => a.d - b.d || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0) || (a.id < b.id ? -1 : 1))
    .slice(0, k)
    .map((h) => `${h.key}/${h.id}`);
}

async function load(kv: KvApi, content: Map<string, { id: string; v: number[] }[]>, run: <T>(p: Promise<T>) => Promise<T> = (p) => p) {
  for (const [key, items] of content) {
    if (items.length === 0) continue;
    await run(kv.vadd('default', b(key), { type: 'float32', dim: items[0]!.v.length, items: items.map((it) => ({ id: b(it.id), vector: it.v })) }));
  }
}

test('VSEARCH returns an id held by several lists once, at its best score; ALLCOPIES returns every copy', () =>
  withLocalServer(async (redis) => {
    // 'shared' sits in three lists with a different vector in each; its best copy is in l2.
    await redis.call('VADD', 'l1', 'float32', '2', 'ITEM', 'shared', f32([3, 0]), 'ITEM', 'a', f32([4, 0]));
    await redis.call('VADD', 'l2', 'float32', '2', 'ITEM', 'shared', f32([1, 0]), 'ITEM', 'b', f32([5, 0]));
    await redis.call('VADD', 'l3', 'float32', '2', 'ITEM', 'shared', f32([2, 0]), 'ITEM', 'c', f32([6, 0]));
    const lists = ['l1', 'l2', 'l3'];
    assert.deepEqual(await vsearch(redis, 3, [0, 0], lists), ['l2/shared/1', 'l1/a/16', 'l2/b/25']);
    assert.deepEqual(await vsearch(redis, 10, [0, 0], lists), ['l2/shared/1', 'l1/a/16', 'l2/b/25', 'l3/c/36']);
    assert.deepEqual(await vsearch(redis, 3, [0, 0], lists, 'ALLCOPIES'), ['l2/shared/1', 'l3/shared/4', 'l1/shared/9']);
    assert.deepEqual(await vsearch(redis, 5, [0, 0], lists, 'WITHPAYLOADS', 'ALLCOPIES').then((h) => h.length), 5);
    // The same copy at the same score in two lists: the lowest key is reported.
    await redis.call('VADD', 'm2', 'float32', '2', 'ITEM', 'twin', f32([1, 1]));
    await redis.call('VADD', 'm1', 'float32', '2', 'ITEM', 'twin', f32([1, 1]));
    assert.deepEqual(await vsearch(redis, 2, [0, 0], ['m2', 'm1']), ['m1/twin/2']);
  }));

test('a list that holds one id twice still yields k distinct ids', () =>
  withLocalServer(async (redis) => {
    // One VADD naming an id twice keeps both copies in the batch; search scored both.
    await redis.call('VADD', 'dup', 'float32', '2', 'ITEM', 'x', f32([0, 0]), 'ITEM', 'x', f32([0, 1]), 'ITEM', 'x', f32([0, 2]), 'ITEM', 'y', f32([0, 3]), 'ITEM', 'z', f32([0, 4]));
    assert.deepEqual(await vsearch(redis, 2, [0, 0], ['dup']), ['dup/x/0', 'dup/y/9']);
    assert.deepEqual(await vsearch(redis, 3, [0, 0], ['dup', 'dup']), ['dup/x/0', 'dup/y/9', 'dup/z/16'], 'a key named twice is one list');
  }));

test('single node: top-k over lists that share ids equals brute force by id (k distinct), and by copy with ALLCOPIES', () =>
  withLocalServer(async (_r, kv) => {
    const rnd = new Random(7);
    const dim = 8;
    const content = spannLists(rnd, 10, 150, dim);
    await load(kv, content);
    const keys = [...content.keys()].map(b);
    for (let qn = 0; qn < 12; qn++) {
      const q = Array.from({ length: dim }, () => Math.fround(rnd.nextDouble() * 2 - 1));
      for (const k of [1, 5, 20]) {
        const req: VectorSearchRequest = { keys, query: Float32Array.from(q), k, metric: 'L2' };
        const got = (await kv.vsearch('default', req)).hits.map((h) => `${h.key}/${h.id}`);
        assert.deepEqual(got, bruteForce(content, q, k, false), `query ${qn} k ${k}`);
        assert.equal(new Set(got.map((g) => g.split('/')[1])).size, k, 'k distinct ids');
        const all = (await kv.vsearch('default', { ...req, allCopies: true })).hits.map((h) => `${h.key}/${h.id}`);
        assert.deepEqual(all, bruteForce(content, q, k, true), `query ${qn} k ${k} ALLCOPIES`);
      }
    }
  }));

test('cluster: ids shared by lists on different replicas come back once, k distinct, equal to brute force', async () => {
  const c = simVectorCluster({ members: 4, replicas: 1, seed: 5 });
  const rnd = new Random(8);
  const dim = 8;
  const content = spannLists(rnd, 12, 120, dim);
  const kv = c.coords.get('n1')!;
  await load(kv, content, c.run);
  const keys = [...content.keys()].map(b);
  assert.ok(new Set(keys.map((k) => c.replicasOf(k)[0])).size >= 3, 'the lists are spread over the members');
  for (let qn = 0; qn < 10; qn++) {
    const q = Array.from({ length: dim }, () => Math.fround(rnd.nextDouble() * 2 - 1));
    for (const k of [3, 10]) {
      const req: VectorSearchRequest = { keys, query: Float32Array.from(q), k, metric: 'L2' };
      const got = (await c.run(c.coords.get(c.ids[qn % c.ids.length]!)!.vsearch('default', req))).hits.map((h) => `${h.key}/${h.id}`);
      assert.deepEqual(got, bruteForce(content, q, k, false), `query ${qn} k ${k}`);
      const all = (await c.run(kv.vsearch('default', { ...req, allCopies: true }))).hits.map((h) => `${h.key}/${h.id}`);
      assert.deepEqual(all, bruteForce(content, q, k, true), `query ${qn} k ${k} ALLCOPIES`);
    }
  }
});

test('replica search request carries ALLCOPIES; every truncation is refused', () => {
  for (const allCopies of [false, true]) {
    const req: VectorSearchRequest = { keys: [b('a'), b('bb')], query: Float32Array.from([1, 2]), k: 4, metric: 'IP', withPayloads: true, allCopies };
    const bytes = encodeRequest({ op: 'search', epoch: 0, ns: 'ns', request: req });
    const read = (buf: Buffer) => {
      const got = decodeRequest(buf, makeLimits());
      assert.ok(got.op === 'search');
      return { ns: got.ns, req: got.request };
    };
    const got = read(bytes);
    assert.equal(got.ns, 'ns');
    assert.equal(got.req.allCopies, allCopies);
    assert.deepEqual({ ...got.req, query: [...got.req.query] }, { ...req, query: [1, 2] });
    for (let cut = 0; cut < bytes.length; cut++) assert.throws(() => read(bytes.subarray(0, cut)), { code: 'PROTOCOL' }, `cut at ${cut}`);
  }
});
