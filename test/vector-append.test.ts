/**
 * APPEND must not break a posting list: raw bytes appended to a list (made by VADD, or SET of
 * a list value) are refused with WRONGTYPE naming the key, on a single node and in a cluster,
 * before anything is written; item and delete batches may still be appended raw, and APPEND
 * to values that are not lists is untouched.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KvError } from '../src/common/errors.js';
import { encodeDeleteBatch, encodeItemBatch } from '../src/compute/vector-items.js';
import { simVectorCluster } from './helpers/sim-vectors.js';
import { withLocalServer } from './helpers/local-server.js';

const b = (s: string) => Buffer.from(s);
const batch = (...ids: string[]) => encodeItemBatch({ type: 'uint8', dim: 2, items: ids.map((id, i) => ({ id: b(id), vector: [i, 1] })) });
const isWrongType = (key: string) => (e: unknown) =>
  e instanceof KvError && e.code === 'WRONG_TYPE' && e.message.includes(`key '${key}'`) && /posting list/.test(e.message);


const q = { query: Float32Array.from([0, 1]), k: 10, metric: 'L2' as const };

test('APPEND of raw bytes to a posting list is refused with WRONGTYPE naming the key; the list stays searchable', () =>
  withLocalServer(async (redis, kv) => {
    assert.equal(await redis.call('VADD', 'list', 'uint8', '2', 'ITEM', 'a', Buffer.from([0, 1]), 'ITEM', 'b', Buffer.from([9, 9])), 2);
    const before = await redis.getBuffer('list');
    await assert.rejects(redis.append('list', 'oops'), /^ReplyError: WRONGTYPE key 'list' holds a vector posting list/);
    assert.deepEqual(await redis.getBuffer('list'), before, 'nothing was written');
    assert.equal(await redis.call('VCARD', 'list'), 2);
    assert.equal(await redis.call('VADD', 'list', 'uint8', '2', 'ITEM', 'c', Buffer.from([1, 1])), 3);
    assert.equal(await redis.call('VDEL', 'list', 'b'), 2);
    const r = await kv.vsearch('default', { ...q, keys: [b('list')] });
    assert.deepEqual(r.hits.map((h) => String(h.id)), ['a', 'c']);

    // Batches may still be appended raw (a client encoding its own items and deletes).
    const size = (await redis.strlen('list')) + batch('d').length;
    assert.equal(await redis.append('list', batch('d')), size);
    assert.equal(await redis.append('list', encodeDeleteBatch([b('a')])), size + encodeDeleteBatch([b('a')]).length);
    assert.equal(await redis.call('VCARD', 'list'), 2);
    // Appending nothing changes nothing, so it is not refused.
    assert.equal(await redis.append('list', ''), await redis.strlen('list'));
    // A run of batches followed by raw bytes is not a run of batches.
    await assert.rejects(redis.append('list', Buffer.concat([batch('e'), b('tail')])), /WRONGTYPE/);
    assert.equal(await redis.call('VCARD', 'list'), 2);
  }));

test('APPEND of well-formed batches of another element type or dimension than the list is refused, naming both shapes; batches of the same shape and onto plain values go through', () =>
  withLocalServer(async (redis) => {
    assert.equal(await redis.call('VADD', 'shaped', 'uint8', '2', 'ITEM', 'a', Buffer.from([0, 1])), 1);
    const before = await redis.getBuffer('shaped');
    const int8dim8 = encodeItemBatch({ type: 'int8', dim: 8, items: [{ id: b('x'), vector: [1, 2, 3, 4, 5, 6, 7, 8] }] });
    await assert.rejects(redis.append('shaped', int8dim8), /^ReplyError: ERR key 'shaped': the list holds uint8 vectors of dimension 2; the appended batch holds int8 of dimension 8/);
    const uint8dim3 = encodeItemBatch({ type: 'uint8', dim: 3, items: [{ id: b('y'), vector: [1, 2, 3] }] });
    await assert.rejects(redis.append('shaped', Buffer.concat([batch('ok'), uint8dim3])), /uint8 of dimension 3/, 'a later batch of a run is checked too');
    assert.deepEqual(await redis.getBuffer('shaped'), before, 'nothing was written');
    await redis.append('shaped', Buffer.concat([encodeDeleteBatch([b('a')]), batch('c')]));
    assert.equal(await redis.call('VCARD', 'shaped'), 1);
    // Batches onto a plain value, or onto nothing, are not a list's business.
    await redis.set('plain', 'text');
    assert.equal(await redis.append('plain', int8dim8), 4 + int8dim8.length);
    assert.equal(await redis.append('fresh', int8dim8), int8dim8.length);
    assert.equal(await redis.call('VCARD', 'fresh'), 1);
  }));

test('single node: an APPEND of raw bytes issued while the VADD that starts the list is not yet committed is refused (check and append are one transaction)', () =>
  withLocalServer(async (_redis, kv) => {
    const [added, appended] = await Promise.allSettled([
      kv.vadd('default', b('racing'), { type: 'uint8', dim: 2, items: [{ id: b('a'), vector: [0, 1] }] }),
      kv.append('default', b('racing'), b('oops')),
    ]);
    assert.equal(added.status, 'fulfilled');
    assert.equal(appended.status, 'rejected');
    assert.ok(isWrongType('racing')((appended as PromiseRejectedResult).reason));
    assert.equal(await kv.vcard('default', b('racing')), 1, 'the list is whole');
  }));

test('SET of a list value then APPEND of raw bytes is refused, and so is an emptied list; APPEND to other values works as before', () =>
  withLocalServer(async (redis) => {
    await redis.set('copied', batch('x', 'y'));
    await assert.rejects(redis.append('copied', 'z'), /WRONGTYPE key 'copied'/);
    assert.equal(await redis.call('VCARD', 'copied'), 2);

    assert.equal(await redis.call('VADD', 'gone', 'uint8', '2', 'ITEM', 'a', Buffer.from([0, 1])), 1);
    assert.equal(await redis.call('VDEL', 'gone', 'a'), 0);
    await redis.call('RAGKV.COMPACT', 'gone');
    await assert.rejects(redis.append('gone', 'z'), /WRONGTYPE key 'gone'/);
    assert.equal(await redis.call('VCARD', 'gone'), 0);

    // An empty first append does not hide the list behind it.
    await redis.append('late', '');
    assert.equal(await redis.call('VADD', 'late', 'uint8', '2', 'ITEM', 'a', Buffer.from([0, 1])), 1);
    await assert.rejects(redis.append('late', 'z'), /WRONGTYPE key 'late'/);

    // Values that are not lists append as before.
    assert.equal(await redis.append('s', 'abc'), 3);
    assert.equal(await redis.append('s', 'def'), 6);
    assert.equal(await redis.get('s'), 'abcdef');
    // A batch header, but the batch behind it is not well-formed: not a list.
    const lookalike = Buffer.from(batch('a'));
    lookalike.writeUInt32LE(7, 16);
    await redis.set('magic', lookalike);
    assert.equal(await redis.append('magic', 'more'), lookalike.length + 4);
    // A raw value may get batch bytes appended; it is still not a list.
    assert.equal(await redis.append('s', batch('a')), 6 + batch('a').length);
    assert.equal(await redis.append('s', 'x'), 7 + batch('a').length);
  }));

test('multi-append is refused whole when one pair would break a list, including a list the same call starts', () =>
  withLocalServer(async (_r, kv) => {
    await kv.vadd('default', b('l'), { type: 'uint8', dim: 2, items: [{ id: b('a'), vector: [0, 1] }] });
    await kv.set('default', b('s'), b('plain'));
    await assert.rejects(kv.appendMany('default', [{ key: b('s'), value: b('+1') }, { key: b('l'), value: b('bad') }]), isWrongType('l'));
    assert.equal(String(await kv.get('default', b('s'))), 'plain', 'the other pair was not written either');
    await assert.rejects(kv.appendMany('default', [{ key: b('n'), value: batch('a') }, { key: b('n'), value: b('bad') }]), isWrongType('n'));
    assert.equal(await kv.get('default', b('n')), null);
    assert.deepEqual(await kv.appendMany('default', [{ key: b('s'), value: b('+1') }, { key: b('l'), value: batch('b') }]), [7, 2 * batch('a').length]);
    assert.equal(await kv.vcard('default', b('l')), 2);
  }));

test('cluster: APPEND of raw bytes to a list is refused at a replica and at a member that holds no copy', async () => {
  const c = simVectorCluster({ members: 4, replicas: 2 });
  const key = b('plist');
  const owner = c.coords.get(c.replicasOf(key)[0]!)!;
  const other = c.coords.get(c.nonReplicaOf(key)!)!;
  assert.equal(await c.run(owner.vadd('default', key, { type: 'uint8', dim: 2, items: [{ id: b('a'), vector: [0, 1] }] })), 1);
  for (const kv of [owner, other]) {
    await assert.rejects(c.run(kv.append('default', key, b('oops'))), isWrongType('plist'));
    await assert.rejects(c.run(kv.appendMany('default', [{ key: b('free'), value: b('x') }, { key, value: b('oops') }])), isWrongType('plist'));
    assert.equal(await c.run(kv.vcard('default', key)), 1);
  }
  assert.equal(await c.run(other.get('default', b('free'))), null, 'a refused multi-append writes nothing');
  const r = await c.run(other.vsearch('default', { ...q, keys: [key] }));
  assert.deepEqual(r.hits.map((h) => String(h.id)), ['a']);
  // Batches still go through, and so do appends to plain values.
  assert.equal(await c.run(other.append('default', key, batch('b'))), 2 * batch('a').length);
  assert.equal(await c.run(other.vcard('default', key)), 2);
  assert.equal(await c.run(other.append('default', b('log'), b('one'))), 3);
  assert.equal(await c.run(owner.append('default', b('log'), b('two'))), 6);
  const lookalike = Buffer.from(batch('a'));
  lookalike.writeUInt32LE(7, 16);
  await c.run(owner.set('default', b('magic'), lookalike));
  assert.equal(await c.run(other.append('default', b('magic'), b('more'))), lookalike.length + 4);
});

test('cluster: with no replica of the key readable, APPEND still goes to fallback members (the guard does not cost availability)', async () => {
  const c = simVectorCluster({ members: 5, replicas: 3, liveView: true });
  const key = b('log');
  const coordinator = c.nonReplicaOf(key)!;
  for (const r of c.replicasOf(key)) c.net.crash(r);
  const kv = c.coords.get(coordinator)!.withConsistency({ write: 'ONE' });
  // A write that only fallbacks hold answers size 0 (they hold hints, not the value).
  assert.equal(typeof (await c.run(kv.append('default', key, b('held as a hint')))), 'number');
  assert.equal((await c.run(kv.appendMany('default', [{ key, value: b('!') }]))).length, 1);
  const hints = c.ids.filter((id) => !c.replicasOf(key).includes(id)).reduce((n, id) => n + c.stores.get(id)!.hintCount(), 0);
  assert.ok(hints >= 2, `each append is held as hints by the fallback members (${hints})`);
});
