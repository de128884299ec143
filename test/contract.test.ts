/**
 * The contract suite: one set of assertions for every KvApi behaviour, run against a single
 * node on LMDB, a one-member cluster on LMDB restarted between steps, three members in the
 * simulator, and three real member processes (test/contract/targets.ts). Whatever a single
 * node answers, a cluster answers the same; an error has the same code (or, over a wire,
 * the same class) wherever its key lives.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { classOf, contractLimits, memberProcesses, restartedMember, simulatedCluster, singleNode, type ContractTarget } from './contract/targets.js';

const b = (s: string) => Buffer.from(s);
const str = (v: Buffer | null | undefined) => (v === null || v === undefined ? null : v.toString());
const D = 'default';

/** The call is refused with `code` (exactly in process; its class over a wire) and a message matching `pattern`. */
async function rejectsWith(t: ContractTarget, p: Promise<unknown>, code: string, pattern: RegExp): Promise<void> {
  try {
    await p;
  } catch (err) {
    const got = t.errorClass(err);
    assert.equal(got, t.exactCodes ? code : classOf(code), `error ${String(err)}`);
    assert.match(String((err as Error).message ?? err), pattern);
    return;
  }
  assert.fail(`expected ${code} (${pattern})`);
}

type Case = (t: ContractTarget) => Promise<void>;

const cases: [string, Case][] = [
  [
    'values: SET, GET, APPEND sizes, GETRANGE, STRLEN, EXISTS; SET replaces the value and its appends; DEL counts what existed',
    async (t) => {
      const kv = t.kv;
      assert.equal(await kv.get(D, b('v:missing')), null);
      assert.equal(await kv.exists(D, b('v:missing')), false);
      assert.equal(await kv.append(D, b('v:log'), b('abc')), 3, 'APPEND on a missing key creates it');
      assert.equal(await kv.append(D, b('v:log'), b('def')), 6);
      await t.step();
      assert.equal(str(await kv.get(D, b('v:log'))), 'abcdef');
      assert.equal(await kv.strlen(D, b('v:log')), 6);
      assert.equal(str(await kv.getRange(D, b('v:log'), 1, 3)), 'bcd');
      assert.equal(str(await kv.getRange(D, b('v:log'), -2, -1)), 'ef');
      assert.equal(str(await kv.getRange(D, b('v:log'), 4, 100)), 'ef');
      assert.equal(str(await kv.getRange(D, b('v:log'), 4, 2)), '');
      assert.equal(str(await kv.getRange(D, b('v:missing'), 0, -1)), '');
      assert.deepEqual(await kv.set(D, b('v:log'), b('reset')), { written: true });
      await t.step();
      assert.equal(str(await kv.get(D, b('v:log'))), 'reset', 'SET replaced the value and its appends');
      assert.equal(await kv.exists(D, b('v:log')), true);
      assert.equal(await kv.del(D, [b('v:log'), b('v:log'), b('v:missing')]), 1);
      assert.equal(await kv.get(D, b('v:log')), null);
      await t.step();
      assert.equal(await kv.get(D, b('v:log')), null, 'a delete survives');
    },
  ],
  [
    'conditional SET: NX and XX decide, GET returns the old value',
    async (t) => {
      const kv = t.kv;
      assert.deepEqual(await kv.set(D, b('c:k'), b('1'), { condition: 'XX' }), { written: false });
      assert.equal(await kv.get(D, b('c:k')), null);
      assert.deepEqual(await kv.set(D, b('c:k'), b('1'), { condition: 'NX' }), { written: true });
      assert.deepEqual(await kv.set(D, b('c:k'), b('2'), { condition: 'NX' }), { written: false });
      await t.step();
      assert.equal(str((await kv.set(D, b('c:k'), b('3'), { condition: 'XX', returnOld: true })).old), '1');
      assert.equal(str(await kv.get(D, b('c:k'))), '3');
      assert.equal((await kv.set(D, b('c:new'), b('x'), { returnOld: true })).old, null);
    },
  ],
  [
    'expiry: TTL, KEEPTTL, APPEND and HSET keep it, SET clears it, conditions NX/XX/GT/LT, PERSIST, a past time deletes, an expired key is gone',
    async (t) => {
      const kv = t.kv;
      assert.equal(await kv.ttlMs(D, b('e:missing')), -2);
      await kv.set(D, b('e:k'), b('v'), { ttlMs: 600_000 });
      const ttl = await kv.ttlMs(D, b('e:k'));
      assert.ok(ttl > 590_000 && ttl <= 600_000, `ttl ${ttl}`);
      await kv.append(D, b('e:k'), b('+'));
      await kv.hset(D, b('e:k'), [{ key: b('f'), value: b('1') }]);
      assert.ok((await kv.ttlMs(D, b('e:k'))) > 590_000, 'APPEND and HSET keep the expiry');
      await kv.set(D, b('e:k'), b('w'), { keepTtl: true });
      assert.ok((await kv.ttlMs(D, b('e:k'))) > 590_000, 'KEEPTTL keeps it');
      await t.step();
      await kv.set(D, b('e:k'), b('x'));
      assert.equal(await kv.ttlMs(D, b('e:k')), -1, 'SET without KEEPTTL clears it');
      const now = t.nowMs();
      assert.equal(await kv.expireAt(D, b('e:k'), now + 900_000, 'XX'), false, 'XX: no expiry yet');
      assert.equal(await kv.expireAt(D, b('e:k'), now + 900_000, 'NX'), true);
      assert.equal(await kv.expireAt(D, b('e:k'), now + 800_000, 'GT'), false);
      assert.equal(await kv.expireAt(D, b('e:k'), now + 800_000, 'LT'), true);
      assert.equal(await kv.expireAt(D, b('e:k'), null), true, 'PERSIST');
      assert.equal(await kv.expireAt(D, b('e:k'), null), false, 'PERSIST of a key without expiry');
      assert.equal(await kv.expireAt(D, b('e:missing'), now + 10_000), false);
      await t.step();
      assert.equal(await kv.expireAt(D, b('e:k'), t.nowMs() - 1), true);
      assert.equal(await kv.exists(D, b('e:k')), false, 'an expiry in the past deletes');
      await kv.set(D, b('e:short'), b('v'), { ttlMs: 400 });
      assert.equal(str(await kv.get(D, b('e:short'))), 'v');
      await t.advance(800);
      assert.equal(await kv.get(D, b('e:short')), null, 'gone once its time has passed');
      assert.equal(await kv.ttlMs(D, b('e:short')), -2);
    },
  ],
  [
    'fields: counts of new and deleted fields, name order, coexistence with a value, DEL removes both',
    async (t) => {
      const kv = t.kv;
      assert.equal(await kv.hset(D, b('h:doc'), [{ key: b('a'), value: b('1') }, { key: b('b'), value: b('2') }, { key: b('a'), value: b('3') }]), 2);
      assert.equal(await kv.hset(D, b('h:doc'), [{ key: b('a'), value: b('4') }, { key: b('c'), value: b('5') }]), 1);
      await t.step();
      assert.equal(await kv.hlen(D, b('h:doc')), 3);
      assert.deepEqual((await kv.hmget(D, b('h:doc'), [b('a'), b('zz'), b('c')])).map(str), ['4', null, '5']);
      assert.equal(str(await kv.hget(D, b('h:doc'), b('b'))), '2');
      await kv.set(D, b('h:doc'), b('body'));
      assert.equal(str(await kv.get(D, b('h:doc'))), 'body', 'a value and fields live side by side');
      assert.deepEqual((await kv.hgetall(D, b('h:doc'))).map((p) => `${p.key}=${p.value}`), ['a=4', 'b=2', 'c=5']);
      assert.equal(await kv.hdel(D, b('h:doc'), [b('a'), b('a'), b('nope')]), 1);
      assert.equal(await kv.hexists(D, b('h:doc'), b('a')), false);
      assert.equal(await kv.hexists(D, b('h:doc'), b('b')), true);
      // An empty field name is a name like any other (as in Redis), on every replica.
      assert.equal(await kv.hset(D, b('h:empty'), [{ key: b(''), value: b('nameless') }]), 1);
      await t.step();
      assert.equal(str(await kv.hget(D, b('h:empty'), b(''))), 'nameless');
      assert.equal(await kv.del(D, [b('h:doc')]), 1);
      assert.equal(await kv.hlen(D, b('h:doc')), 0);
      assert.equal(await kv.get(D, b('h:doc')), null);
    },
  ],
  [
    'namespaces are isolated; a namespace never written reads as empty',
    async (t) => {
      const kv = t.kv;
      await kv.set('db1', b('n:k'), b('in-1'));
      await kv.set('db2', b('n:k'), b('in-2'));
      await t.step();
      assert.equal(str(await kv.get('db1', b('n:k'))), 'in-1');
      assert.equal(str(await kv.get('db2', b('n:k'))), 'in-2');
      assert.equal(await kv.get('db3', b('n:k')), null);
      assert.equal(await kv.dbsize('db1'), 1);
      assert.equal(await kv.del('db1', [b('n:k')]), 1);
      assert.equal(str(await kv.get('db2', b('n:k'))), 'in-2');
    },
  ],
  [
    'multi-key: MSET/MGET in order, batch appends answer each new size, batch fields (projection)',
    async (t) => {
      const kv = t.kv;
      await kv.setMany(D, [{ key: b('m:1'), value: b('one') }, { key: b('m:2'), value: b('two') }]);
      assert.deepEqual((await kv.getMany(D, [b('m:2'), b('m:none'), b('m:1')])).map(str), ['two', null, 'one']);
      assert.deepEqual(await kv.appendMany(D, [{ key: b('m:1'), value: b('+') }, { key: b('m:3'), value: b('xy') }, { key: b('m:1'), value: b('!') }]), [4, 2, 5]);
      await t.step();
      assert.equal(str(await kv.get(D, b('m:1'))), 'one+!');
      await kv.hset(D, b('m:1'), [{ key: b('title'), value: b('T1') }]);
      await kv.hset(D, b('m:2'), [{ key: b('title'), value: b('T2') }, { key: b('lang'), value: b('en') }]);
      assert.deepEqual((await kv.hmgetMany(D, [b('m:1'), b('m:2'), b('m:none')], [b('title'), b('lang')])).map((r) => r.map(str)), [['T1', null], ['T2', 'en'], [null, null]]);
      await kv.setMany(D, [{ key: b('m:ttl'), value: b('v') }], { ttlMs: 500_000 });
      assert.ok((await kv.ttlMs(D, b('m:ttl'))) > 400_000, 'a batch put with a ttl expires');
    },
  ],
  [
    'keyspace: a scan visits every live key once; range forward, reverse and keys only; range delete counts',
    async (t) => {
      const kv = t.kv;
      const ns = 'db4';
      await kv.setMany(ns, Array.from({ length: 60 }, (_, i) => ({ key: b(`key:${String(i).padStart(3, '0')}`), value: b(`${i}`) })));
      await kv.set(ns, b('other'), b('x'));
      await t.step();
      const seen = await t.scanAll(ns, 'key:*', 7);
      assert.equal(seen.length, 60);
      assert.equal(new Set(seen).size, 60);
      const fwd = await kv.range(ns, { start: b('key:010'), end: b('key:015'), limit: 100 });
      assert.deepEqual(fwd.map((p) => String(p.key)), ['key:010', 'key:011', 'key:012', 'key:013', 'key:014']);
      assert.equal(String(fwd[0]!.value), '10');
      const rev = await kv.range(ns, { start: b('key:010'), end: b('key:015'), limit: 3, reverse: true, keyOnly: true });
      assert.deepEqual(rev.map((p) => String(p.key)), ['key:014', 'key:013', 'key:012']);
      assert.equal(rev[0]!.value.length, 0);
      assert.equal(await kv.deleteRange(ns, b('key:000'), b('key:050')), 50);
      await t.step();
      assert.equal(await kv.dbsize(ns), 11);
      assert.equal(str(await kv.get(ns, b('key:050'))), '50');
      assert.equal(await kv.get(ns, b('key:049')), null);
    },
  ],
  [
    'vector lists: VADD counts and replaces, VDEL, VCARD, VRANGE, VSEARCH of k distinct ids, a plain value is WRONGTYPE and APPEND cannot break a list',
    async (t) => {
      const kv = t.kv;
      const add = (key: string, items: [string, number[], string?][]) =>
        kv.vadd(D, b(key), { type: 'float32', dim: 2, items: items.map(([id, v, p]) => ({ id: b(id), vector: v, ...(p ? { payload: b(p) } : {}) })) });
      assert.equal(await add('vl:a', [['x', [1, 0], 'doc:1'], ['y', [0, 1]]]), 2);
      assert.equal(await add('vl:b', [['x', [0.9, 0.1]], ['z', [5, 5]]]), 2, 'an id may sit in two lists');
      assert.equal(await add('vl:a', [['y', [0.5, 0.5]]]), 2, 'adding a live id replaces it');
      await t.step();
      assert.equal(await kv.vcard(D, b('vl:a')), 2);
      const items = await kv.vrange(D, b('vl:a'), 0, -1, { withVectors: true, withPayloads: true });
      assert.deepEqual(items.map((it) => [String(it.id), it.vector, str(it.payload)]), [['x', [1, 0], 'doc:1'], ['y', [0.5, 0.5], null]]);
      const q = { keys: [b('vl:a'), b('vl:b')], query: Float32Array.from([1, 0]), k: 2, metric: 'L2' as const };
      const r = await kv.vsearch(D, q);
      assert.deepEqual(r.hits.map((h) => `${h.key}/${h.id}`), ['vl:a/x', 'vl:a/y'], 'x once (at its best), then the next distinct id');
      assert.equal(r.degraded, false);
      const all = await kv.vsearch(D, { ...q, allCopies: true });
      assert.deepEqual(all.hits.map((h) => `${h.key}/${h.id}`), ['vl:a/x', 'vl:b/x'], 'ALLCOPIES: every copy');
      assert.equal(await kv.vdel(D, b('vl:a'), [b('x'), b('nope')]), 1);
      assert.deepEqual((await kv.vrange(D, b('vl:a'), 0, -1)).map((it) => String(it.id)), ['y']);
      await kv.set(D, b('vl:plain'), b('not a list'));
      await rejectsWith(t, kv.vcard(D, b('vl:plain')), 'WRONG_TYPE', /not a vector posting list|posting list/);
      const mixed = await kv.vsearch(D, { ...q, keys: [b('vl:a'), b('vl:plain')] });
      assert.equal(mixed.degraded, true, 'a list that cannot be read is skipped, not fatal');
      assert.deepEqual(mixed.skippedKeys.map(String), ['vl:plain']);
      await rejectsWith(t, kv.append(D, b('vl:a'), b('raw bytes')), 'WRONG_TYPE', /posting list/);
      assert.equal(await kv.vcard(D, b('vl:a')), 1, 'the list is intact');
      await rejectsWith(
        t,
        kv.vadd(D, b('vl:a'), { type: 'float32', dim: 3, items: [{ id: b('w'), vector: [1, 2, 3] }] }),
        'INVALID_ARGUMENT',
        /list 'vl:a' holds float32 vectors of dimension 2; got float32 of dimension 3/,
      );
      const compacted = await kv.compact(D, [b('vl:a')]);
      assert.ok(compacted.records >= 1);
      assert.deepEqual((await kv.vrange(D, b('vl:a'), 0, -1)).map((it) => String(it.id)), ['y'], 'compaction changes no answer');
    },
  ],
  [
    'limits and bad input: each refused with an error naming the limit; nothing written',
    async (t) => {
      const kv = t.kv;
      const { keyBytesMax, valueBytesMax, fieldBytesMax, batchKeysMax } = contractLimits as Required<typeof contractLimits>;
      await rejectsWith(t, kv.set(D, Buffer.alloc(keyBytesMax + 1, 0x61), b('v')), 'KEY_TOO_LARGE', new RegExp(`key is ${keyBytesMax + 1} bytes, over limit 'keyBytesMax' \\(${keyBytesMax}\\)`));
      await rejectsWith(t, kv.get(D, Buffer.alloc(keyBytesMax + 1, 0x61)), 'KEY_TOO_LARGE', /keyBytesMax/);
      await rejectsWith(t, kv.set(D, b('l:k'), Buffer.alloc(valueBytesMax + 1)), 'VALUE_TOO_LARGE', /over limit 'valueBytesMax'/);
      await rejectsWith(t, kv.append(D, b('l:k'), Buffer.alloc(valueBytesMax + 1)), 'VALUE_TOO_LARGE', /valueBytesMax/);
      await rejectsWith(t, kv.hset(D, b('l:k'), [{ key: Buffer.alloc(fieldBytesMax + 1, 0x66), value: b('v') }]), 'FIELD_TOO_LARGE', /fieldBytesMax/);
      await rejectsWith(t, kv.hdel(D, b('l:k'), [Buffer.alloc(fieldBytesMax + 1, 0x66)]), 'FIELD_TOO_LARGE', /fieldBytesMax/);
      await rejectsWith(t, kv.hdel(D, b('l:k'), []), 'INVALID_ARGUMENT', /no fields given|wrong number of arguments/);
      await rejectsWith(t, kv.del(D, Array.from({ length: batchKeysMax + 1 }, (_, i) => b(`l:${i}`))), 'BATCH_TOO_LARGE', new RegExp(`over limit 'batchKeysMax' \\(${batchKeysMax}\\)`));
      await rejectsWith(t, kv.set(D, b('l:k'), b('v'), { ttlMs: -5 }), 'INVALID_ARGUMENT', /invalid expire time/);
      assert.equal(await kv.exists(D, b('l:k')), false, 'no refused write left anything behind');
      await t.step();
      assert.equal(await kv.exists(D, b('l:k')), false);
      // Namespaces so far: default, db1, db2, db4; four more reach 'namespacesMax' (8), the next is refused.
      for (const ns of ['db5', 'db6', 'db7', 'db8']) await kv.set(ns, b('l:k'), b('v'));
      await rejectsWith(t, kv.set('db9', b('l:k'), b('v')), 'LIMIT_EXCEEDED', /namespace 'db9' would be one more than limit 'namespacesMax' \(8\)/);
      assert.equal(await kv.get('db9', b('l:k')), null);
    },
  ],
];

/** Every case against one target, in order (each case uses its own keys). */
function suite(make: () => Promise<ContractTarget>, timeoutMs: number) {
  return () => {
    let target: ContractTarget;
    before(async () => {
      target = await make();
    });
    after(async () => {
      await target?.close();
    });
    for (const [name, run] of cases) it(name, { timeout: timeoutMs }, () => run(target));
  };
}

describe('contract: (a) a single node on LMDB', suite(singleNode, 30_000));
describe('contract: (b) a one-member cluster on LMDB, restarted between steps (its clock set back each time)', suite(restartedMember, 30_000));
describe('contract: (c) three members in the simulator', suite(simulatedCluster, 60_000));
describe('contract: (d) three real member processes, through RESP and gRPC', { timeout: 240_000 }, suite(memberProcesses, 60_000));
