/**
 * A search over many lists does not fail because one of them cannot be read (a value that is
 * not a posting list, or a broken one): that list is skipped and named, and the answer is
 * degraded. Only when every key named is unreadable is the search refused with WRONGTYPE
 * (a one-key search of a non-list, as before), on a single node and across the wire.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { KvError } from '../src/common/errors.js';
import { encodeItemBatch } from '../src/compute/vector-items.js';
import { decodeSearchReply, encodeSearchReply } from '../src/replica/protocol.js';
import { makeLimits } from '../src/common/limits.js';
import { simVectorCluster } from './helpers/sim-vectors.js';
import { withLocalServer } from './helpers/local-server.js';

const b = (s: string) => Buffer.from(s);
const f32 = (v: number[]) => Buffer.from(Float32Array.from(v).buffer);
const batch = (id: string, x: number) => encodeItemBatch({ type: 'float32', dim: 2, items: [{ id: b(id), vector: [x, 0] }] });
/** A list whose second batch is cut short: it was a list, it cannot be read now. */
const broken = () => Buffer.concat([batch('b0', 0), batch('b1', 1).subarray(0, 20)]);


async function vsearch(r: Redis, k: number, keys: string[], ...extra: string[]) {
  const reply = (await r.callBuffer('VSEARCH', String(k), 'L2', f32([0, 0]), 'KEYS', String(keys.length), ...keys, ...extra)) as unknown[];
  const hits = (reply[1] as Buffer[][]).map((h) => `${h[0]}/${h[1]}`);
  return { hits, degraded: reply[3] === 1, skipped: (reply[5] as Buffer[]).map(String) };
}

test('VSEARCH skips a key that is not a readable list and names it; WRONGTYPE only when no key named is readable', () =>
  withLocalServer(async (redis) => {
    for (const [key, x] of [['l1', 1], ['l2', 2]] as const) {
      assert.equal(await redis.call('VADD', key, 'float32', '2', 'ITEM', `${key}v`, f32([x, 0])), 1);
    }
    await redis.set('plain', 'not a list');
    await redis.set('broken', broken());
    assert.deepEqual(await vsearch(redis, 5, ['l1', 'plain', 'l2', 'broken']), {
      hits: ['l1/l1v', 'l2/l2v'],
      degraded: true,
      skipped: ['plain', 'broken'],
    });
    // A key that holds nothing is an empty list, not a skipped one.
    assert.deepEqual(await vsearch(redis, 5, ['plain', 'missing']), { hits: [], degraded: true, skipped: ['plain'] });
    assert.deepEqual(await vsearch(redis, 5, ['l1', 'missing']), { hits: ['l1/l1v'], degraded: false, skipped: [] });
    // A list the filter rules out is not read, so it is not reported.
    await redis.hset('l1', 'lang', 'en');
    assert.deepEqual(await vsearch(redis, 5, ['l1', 'plain'], 'FILTER', 'lang', 'en'), { hits: ['l1/l1v'], degraded: false, skipped: [] });
    // Nothing readable to degrade from: refused, naming the key (and how many more).
    await assert.rejects(vsearch(redis, 5, ['plain']), /^ReplyError: WRONGTYPE key 'plain': value is not a vector posting list/);
    await assert.rejects(vsearch(redis, 5, ['broken', 'plain', 'plain']), /^ReplyError: WRONGTYPE key 'broken': .*; 1 more key holds no readable list either/);
  }));

test('cluster: a list a replica cannot read is skipped and named, at this node and at remote replicas; WRONGTYPE when none can be read', async () => {
  const c = simVectorCluster({ members: 4, replicas: 1 });
  const kv = c.coords.get('n1')!;
  const keys = Array.from({ length: 8 }, (_, i) => b(`list:${i}`));
  for (const [i, key] of keys.entries()) {
    await c.run(kv.vadd('default', key, { type: 'float32', dim: 2, items: [{ id: b(`v${i}`), vector: [i, 0] }] }));
  }
  // Break one list held here and one held elsewhere (SET replaces the value with bytes that are not a list).
  const here = keys.find((k) => c.replicasOf(k)[0] === 'n1')!;
  const there = keys.find((k) => c.replicasOf(k)[0] !== 'n1')!;
  await c.run(kv.set('default', here, b('plain')));
  await c.run(kv.set('default', there, broken()));
  const q = { keys, query: Float32Array.from([0, 0]), k: 8, metric: 'L2' as const };
  const r = await c.run(kv.vsearch('default', q));
  assert.equal(r.degraded, true);
  assert.deepEqual(r.skippedKeys.map(String).sort(), [here, there].map(String).sort());
  assert.deepEqual(
    r.hits.map((h) => String(h.id)),
    keys.map((k, i) => (k === here || k === there ? null : `v${i}`)).filter((x) => x !== null),
  );
  for (const only of [[here], [there], [here, there]]) {
    await assert.rejects(
      c.run(kv.vsearch('default', { ...q, keys: only })),
      (e: unknown) => e instanceof KvError && e.code === 'WRONG_TYPE' && /not a vector posting list/.test(e.message),
      `keys ${only.map(String)}`,
    );
  }
});

test('replica search reply: hits and unreadable lists round-trip; every truncation is refused', () => {
  const reply = {
    hits: [
      { key: b('k1'), id: b('a'), distance: 0.5, score: 0.5 },
      { key: b('k2'), id: b('b'), distance: 1, score: 1, payload: null },
      { key: b('k2'), id: b('c'), distance: 2, score: 2, payload: b('doc:1') },
    ],
    unreadable: [{ key: b('bad'), reason: "key 'bad': value is not a vector posting list" }],
  };
  const limits = makeLimits();
  const bytes = encodeSearchReply(reply);
  assert.deepEqual(decodeSearchReply(bytes, limits), reply);
  for (let cut = 0; cut < bytes.length; cut++) assert.throws(() => decodeSearchReply(bytes.subarray(0, cut), limits), { code: 'PROTOCOL' }, `cut at ${cut}`);
  assert.throws(() => decodeSearchReply(Buffer.concat([bytes, Buffer.from([0])]), limits), /trailing bytes/);
});
