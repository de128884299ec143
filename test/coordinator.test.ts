import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openLocalKv } from '../src/coordinator/index.js';
import type { KvError } from '../src/common/errors.js';
import { tempDir } from './helpers/tmp.js';

const b = (s: string) => Buffer.from(s);
const str = (v: Buffer | null) => (v === null ? null : v.toString());

/** A clock the test moves by hand, so expiry needs no sleeping. */
function manualClock(startMs = 1_700_000_000_000) {
  let now = startMs;
  return { nowMs: () => now, advance: (ms: number) => (now += ms) };
}

type Opened = Awaited<ReturnType<typeof openLocalKv>>;
async function withKv(fn: (kv: Opened['kv'], clock: ReturnType<typeof manualClock>, store: Opened['store']) => Promise<void>, limits = {}) {
  const dir = tempDir();
  const clock = manualClock();
  const { kv, store, close } = await openLocalKv({ path: dir.path, durability: 'none', clock, limits });
  try {
    await fn(kv, clock, store);
  } finally {
    await close();
    dir.cleanup();
  }
}

async function rejectsWith(p: Promise<unknown> | (() => unknown), code: string, pattern: RegExp) {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    assert.equal((err as KvError).code, code);
    assert.match((err as Error).message, pattern);
    return;
  }
  assert.fail(`expected ${code}`);
}

test('SET conditions and GET option', () =>
  withKv(async (kv) => {
    assert.deepEqual(await kv.set('default', b('k'), b('1'), { condition: 'XX' }), { written: false });
    assert.equal(await kv.get('default', b('k')), null);
    assert.deepEqual(await kv.set('default', b('k'), b('1'), { condition: 'NX' }), { written: true });
    assert.deepEqual(await kv.set('default', b('k'), b('2'), { condition: 'NX' }), { written: false });
    const r = await kv.set('default', b('k'), b('3'), { condition: 'XX', returnOld: true });
    assert.equal(r.written, true);
    assert.equal(str(r.old!), '1');
    assert.equal(str(await kv.get('default', b('k'))), '3');
    assert.equal((await kv.set('default', b('new'), b('x'), { returnOld: true })).old, null);
  }));

test('expiry: TTL, KEEPTTL, APPEND keeps it, SET clears it, past times delete, conditions', () =>
  withKv(async (kv, clock, store) => {
    await kv.set('default', b('t'), b('v'), { ttlMs: 10_000 });
    assert.equal(await kv.ttlMs('default', b('t')), 10_000);
    clock.advance(4_000);
    assert.equal(await kv.ttlMs('default', b('t')), 6_000);
    await kv.append('default', b('t'), b('+'));
    assert.equal(await kv.ttlMs('default', b('t')), 6_000, 'APPEND keeps the expiry');
    await kv.set('default', b('t'), b('w'), { keepTtl: true });
    assert.equal(await kv.ttlMs('default', b('t')), 6_000, 'KEEPTTL keeps it');
    clock.advance(6_000);
    assert.equal(str(await kv.get('default', b('t'))), 'w', 'alive at exactly its expiry time');
    clock.advance(1);
    assert.equal(await kv.get('default', b('t')), null);
    assert.equal(await kv.ttlMs('default', b('t')), -2);
    assert.equal(await kv.exists('default', b('t')), false);

    await kv.set('default', b('p'), b('v'), { ttlMs: 1000 });
    await kv.set('default', b('p'), b('v2'));
    assert.equal(await kv.ttlMs('default', b('p')), -1, 'SET without KEEPTTL clears the expiry');
    assert.equal(await kv.expireAt('default', b('p'), clock.nowMs() + 5000, 'XX'), false);
    assert.equal(await kv.expireAt('default', b('p'), clock.nowMs() + 5000, 'GT'), false, 'no expiry counts as infinite');
    assert.equal(await kv.expireAt('default', b('p'), clock.nowMs() + 5000, 'NX'), true);
    assert.equal(await kv.expireAt('default', b('p'), clock.nowMs() + 9000, 'LT'), false);
    assert.equal(await kv.expireAt('default', b('p'), clock.nowMs() + 9000, 'GT'), true);
    assert.equal(await kv.expireAt('default', b('p'), null), true, 'PERSIST');
    assert.equal(await kv.expireAt('default', b('p'), null), false, 'PERSIST of a key without expiry');
    assert.equal(await kv.expireAt('default', b('p'), clock.nowMs() - 1), true);
    assert.equal(await kv.exists('default', b('p')), false, 'an expiry in the past deletes the key');
    assert.equal(await kv.expireAt('default', b('missing'), clock.nowMs() + 10), false);
    assert.equal(kv.dbsize('default'), 1, 'only the expired-but-unswept key t is still counted');
    assert.equal(await store.sweepExpired(clock.nowMs(), 100), 1);
    assert.equal(kv.dbsize('default'), 0);
  }));

test('appends grow the value; GETRANGE and STRLEN read parts of it', () =>
  withKv(async (kv) => {
    assert.equal(await kv.append('default', b('log'), b('abc')), 3, 'APPEND on a missing key creates it');
    assert.equal(await kv.append('default', b('log'), b('def')), 6);
    assert.deepEqual(await kv.appendMany('default', [{ key: b('log'), value: b('g') }, { key: b('other'), value: b('xy') }]), [7, 2]);
    assert.equal(str(await kv.get('default', b('log'))), 'abcdefg');
    assert.equal(await kv.strlen('default', b('log')), 7);
    assert.equal(str(await kv.getRange('default', b('log'), 2, 4)), 'cde');
    assert.equal(str(await kv.getRange('default', b('log'), -3, -1)), 'efg');
    assert.equal(str(await kv.getRange('default', b('log'), 5, 100)), 'fg');
    assert.equal(str(await kv.getRange('default', b('log'), 4, 2)), '');
    assert.equal(str(await kv.getRange('default', b('missing'), 0, -1)), '');
    await kv.set('default', b('log'), b('reset'));
    assert.equal(str(await kv.get('default', b('log'))), 'reset', 'SET replaces the value and its appends');
  }));

test('fields: counts of new and deleted fields, coexistence with a value, DEL removes all', () =>
  withKv(async (kv) => {
    assert.equal(await kv.hset('default', b('doc'), [{ key: b('a'), value: b('1') }, { key: b('b'), value: b('2') }, { key: b('a'), value: b('3') }]), 2);
    assert.equal(await kv.hset('default', b('doc'), [{ key: b('a'), value: b('4') }, { key: b('c'), value: b('5') }]), 1);
    assert.equal(await kv.hlen('default', b('doc')), 3);
    assert.deepEqual((await kv.hmget('default', b('doc'), [b('a'), b('zz'), b('c')])).map(str), ['4', null, '5']);
    await kv.set('default', b('doc'), b('body'));
    assert.equal(str(await kv.get('default', b('doc'))), 'body');
    assert.deepEqual((await kv.hgetall('default', b('doc'))).map((p) => `${p.key}=${p.value}`), ['a=4', 'b=2', 'c=5']);
    assert.equal(await kv.hdel('default', b('doc'), [b('a'), b('a'), b('nope')]), 1);
    assert.equal(await kv.hexists('default', b('doc'), b('a')), false);
    assert.equal(kv.dbsize('default'), 1);
    assert.equal(await kv.del('default', [b('doc'), b('doc'), b('missing')]), 1);
    assert.equal(await kv.hlen('default', b('doc')), 0);
    assert.equal(await kv.get('default', b('doc')), null);
    assert.equal(kv.dbsize('default'), 0);
  }));

test('namespaces are isolated; a namespace never written reads as empty', () =>
  withKv(async (kv) => {
    await kv.set('a', b('k'), b('in-a'));
    await kv.set('b', b('k'), b('in-b'));
    assert.equal(str(await kv.get('a', b('k'))), 'in-a');
    assert.equal(str(await kv.get('b', b('k'))), 'in-b');
    assert.equal(await kv.get('never', b('k')), null);
    assert.equal(kv.dbsize('a'), 1);
    assert.equal(await kv.del('a', [b('k')]), 1);
    assert.equal(str(await kv.get('b', b('k'))), 'in-b');
  }));

test('scan visits every live key once, in pages; range and deleteRange honour bounds', () =>
  withKv(async (kv) => {
    await kv.setMany('default', Array.from({ length: 120 }, (_, i) => ({ key: b(`key:${String(i).padStart(3, '0')}`), value: b(`${i}`) })));
    await kv.set('default', b('other'), b('x'));
    const seen: string[] = [];
    let cursor: Buffer | null = null;
    let pages = 0;
    do {
      const page = await kv.scan('default', { cursor, count: 25, match: b('key:*') });
      seen.push(...page.keys.map(String));
      cursor = page.next;
      pages++;
    } while (cursor);
    assert.equal(seen.length, 120);
    assert.equal(new Set(seen).size, 120);
    assert.ok(pages >= 5);
    const fwd = await kv.range('default', { start: b('key:010'), end: b('key:015'), limit: 100 });
    assert.deepEqual(fwd.map((p) => String(p.key)), ['key:010', 'key:011', 'key:012', 'key:013', 'key:014']);
    assert.equal(String(fwd[0]!.value), '10');
    const rev = await kv.range('default', { start: b('key:010'), end: b('key:015'), limit: 3, reverse: true, keyOnly: true });
    assert.deepEqual(rev.map((p) => String(p.key)), ['key:014', 'key:013', 'key:012']);
    assert.equal(rev[0]!.value.length, 0);
    assert.equal((await kv.range('default', { start: b('key:010'), end: b('key:012'), limit: 10, reverse: true })).length, 2, 'reverse includes start');
    assert.equal(await kv.deleteRange('default', b('key:000'), b('key:100')), 100);
    assert.equal(kv.dbsize('default'), 21);
    assert.equal(str(await kv.get('default', b('key:100'))), '100');
  }));

test('limits: each is refused with an error naming it, and nothing is written', () =>
  withKv(
    async (kv) => {
      await rejectsWith(kv.set('default', Buffer.alloc(17, 0x61), b('v')), 'KEY_TOO_LARGE', /key is 17 bytes, over limit 'keyBytesMax' \(16\)/);
      await rejectsWith(() => kv.get('default', Buffer.alloc(17, 0x61)), 'KEY_TOO_LARGE', /keyBytesMax/);
      await rejectsWith(kv.set('default', b('k'), Buffer.alloc(65)), 'VALUE_TOO_LARGE', /value is 65 bytes, over limit 'valueBytesMax' \(64\)/);
      await rejectsWith(kv.append('default', b('k'), Buffer.alloc(65)), 'VALUE_TOO_LARGE', /valueBytesMax/);
      await rejectsWith(kv.hset('default', b('k'), [{ key: Buffer.alloc(9, 0x66), value: b('v') }]), 'FIELD_TOO_LARGE', /fieldBytesMax/);
      await rejectsWith(kv.setMany('default', Array.from({ length: 5 }, (_, i) => ({ key: b(`k${i}`), value: b('v') }))), 'BATCH_TOO_LARGE', /has 5 keys, over limit 'batchKeysMax' \(4\)/);
      await rejectsWith(kv.set('default', b(''), b('v')), 'INVALID_ARGUMENT', /key must not be empty/);
      await rejectsWith(kv.set('n'.repeat(65), b('k'), b('v')), 'INVALID_ARGUMENT', /namespaceBytesMax/);
      await rejectsWith(() => kv.range('default', { limit: 11 }), 'INVALID_ARGUMENT', /scanLimitMax/);
      assert.equal(kv.dbsize('default'), 0, 'no refused write left anything behind');
      await kv.set('ns1', b('k'), b('v'));
      await kv.set('ns2', b('k'), b('v'));
      await rejectsWith(kv.set('ns3', b('k'), b('v')), 'LIMIT_EXCEEDED', /namespacesMax/);
    },
    { keyBytesMax: 16, valueBytesMax: 64, respBulkBytesMax: 64, fieldBytesMax: 8, batchKeysMax: 4, scanLimitMax: 10, namespacesMax: 2 },
  ));
