/** Session tokens (the server's encoding, the client's view of it, the merge of concurrent replies' tokens) and the bound on the floors a member keeps. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultLimits } from '../src/common/limits.js';
import { mergeSessionTokens, sessionTokenEntries } from '../src/common/session-token.js';
import { Session, SessionFloorPool, type KeyFloor } from '../src/coordinator/session.js';

const v = (ts: number) => ({ ts, node: 7 });
const floor = (ts: number, extra: Partial<KeyFloor> = {}): KeyFloor => ({ tomb: null, base: v(ts), expiry: null, append: null, fields: new Map(), ...extra });

/** A token as the server writes it, for `keys` noted in order (oldest first). */
function tokenOf(keys: string[], ts = 100, bytesMax = defaultLimits.sessionTokenBytesMax): Buffer {
  const s = new Session(defaultLimits.sessionKeysMax, null);
  for (const k of keys) s.note('default', Buffer.from(k), floor(ts));
  return s.encode(bytesMax);
}

/** The keys of a token's entries, oldest first (through the server's decoder). */
function keysOf(token: Buffer): string[] {
  const entries = sessionTokenEntries(token);
  assert.ok(entries, 'well-formed');
  return entries.map((e) => {
    const at = 1 + e[0]!;
    return e.subarray(at + 2, at + 2 + e.readUInt16BE(at)).toString();
  });
}

test('a client walks every kind of entry the server writes (delete, value, expiry, append, fields); a truncated or padded token is unreadable', () => {
  const s = new Session(100, null);
  s.note('default', Buffer.from('a'), floor(1, { tomb: v(2), expiry: v(3), append: { version: v(4), opId: Buffer.alloc(16, 9) } }));
  s.note('ns2', Buffer.from('b'), floor(5, { fields: new Map([['title', v(6)], ['x', v(7)]]) }));
  s.note('default', Buffer.from('c'), { tomb: v(8), base: null, expiry: null, append: null, fields: new Map() });
  const token = s.encode(defaultLimits.sessionTokenBytesMax);
  assert.deepEqual(keysOf(token), ['a', 'b', 'c']);
  assert.equal(sessionTokenEntries(token.subarray(0, token.length - 1)), null);
  assert.equal(sessionTokenEntries(Buffer.concat([token, Buffer.of(0)])), null);
  assert.equal(sessionTokenEntries(Buffer.of(9, 0, 0)), null, 'another version');
  // What the client merges, the server reads back with the same floors.
  const merged = mergeSessionTokens(tokenOf(['a']), token, Buffer.alloc(0), defaultLimits.sessionTokenBytesMax);
  const back = Session.decode(merged, defaultLimits);
  assert.deepEqual(back.floor('ns2', Buffer.from('b'))?.fields.get('title'), v(6));
  assert.deepEqual(back.floor('default', Buffer.from('a'))?.append?.version, v(4));
});

test('merging two full tokens keeps both calls\' own keys and the newest of the rest, within the byte bound; entries the sent token held once', () => {
  const old = Array.from({ length: 300 }, (_, i) => `old:${i}`);
  const a = tokenOf([...old, 'A']);
  const b = tokenOf([...old, 'B']);
  const bytesMax = a.length + 20; // about as full as a token gets
  const merged = mergeSessionTokens(a, b, tokenOf(old), bytesMax);
  const keys = keysOf(merged);
  assert.ok(merged.length <= bytesMax);
  assert.deepEqual(keys.slice(-2), ['A', 'B'], 'the newest of each token last');
  assert.equal(new Set(keys).size, keys.length, 'shared entries once');
  assert.deepEqual(keys.slice(-4, -2), ['old:298', 'old:299'], 'then the newest of the rest');
  assert.ok(!keys.includes('old:0'), 'the oldest fell off');
  // Different floors of one key both stay: the server joins them.
  const x1 = tokenOf(['k'], 100);
  const x2 = tokenOf(['k'], 200);
  const both = mergeSessionTokens(x1, x2, Buffer.alloc(0), 1000);
  assert.deepEqual(keysOf(both), ['k', 'k']);
  assert.deepEqual(Session.decode(both, defaultLimits).floor('default', Buffer.from('k'))?.base, v(200));
});

test('many concurrent calls on a full token: every call\'s own key is kept, older shared keys make room', () => {
  const old = Array.from({ length: 100 }, (_, i) => `old:${String(i).padStart(3, '0')}`);
  const sent = tokenOf(old);
  const bytesMax = sent.length + 8;
  // Each reply: what was sent plus the call's own key (the server drops the oldest to fit).
  const reply = (own: string) => tokenOf([...old, own], 100, bytesMax);
  for (const calls of [3, 40, 150]) {
    let token = reply('X0');
    for (let i = 1; i < calls; i++) token = mergeSessionTokens(token, reply(`X${i}`), sent, bytesMax);
    const keys = keysOf(token);
    const own = keys.filter((k) => k.startsWith('X')).length;
    assert.ok(token.length <= bytesMax);
    // Up to a full token of own keys (all of them, when they fit).
    assert.equal(own, Math.min(calls, keys.length), `${calls} calls: own keys kept ${own} of ${keys.length} entries`);
    if (calls < keys.length) assert.ok(keys.includes('old:099') && !keys.includes('old:001'), 'then the newest shared keys');
  }
});

test('a merge with an unreadable or empty token is the other reply\'s token', () => {
  const b = tokenOf(['b']);
  assert.equal(mergeSessionTokens(Buffer.alloc(0), b, Buffer.alloc(0), 1000), b);
  assert.equal(mergeSessionTokens(Buffer.of(1, 0, 5), b, Buffer.alloc(0), 1000), b);
  const junk = Buffer.of(1, 0, 1, 200);
  assert.equal(mergeSessionTokens(b, junk, Buffer.alloc(0), 1000), junk);
});

test('the floors of all connections of a member are bounded together: the least recently used of any connection go first; a closed connection keeps nothing', () => {
  const pool = new SessionFloorPool(20_000);
  const a = new Session(4096, 'n1', pool);
  const b = new Session(4096, 'n1', pool);
  for (let i = 0; i < 100; i++) a.note('default', Buffer.from(`a:${i}`), floor(i));
  assert.equal(a.size, 100);
  const perKey = pool.bytes / 100;
  for (let i = 0; i < 100; i++) b.note('default', Buffer.from(`b:${i}`), floor(i));
  assert.ok(pool.bytes <= 20_000, `within the bound (${pool.bytes})`);
  assert.equal(pool.size, a.size + b.size);
  assert.ok(a.size < 100 && b.size === 100, `a's older floors went first (a ${a.size}, b ${b.size})`);
  assert.equal(a.floor('default', Buffer.from('a:0')), undefined, 'the oldest of all is gone');
  assert.ok(a.floor('default', Buffer.from('a:99')), 'a\'s newest may remain');
  // Touching a key makes it the most recent again: b's oldest go next.
  a.note('default', Buffer.from('a:99'), floor(500));
  const aHad = a.size;
  for (let i = 0; i < aHad; i++) b.note('default', Buffer.from(`b:${100 + i}`), floor(1));
  assert.ok(a.floor('default', Buffer.from('a:99')), 'the key touched again stays');
  assert.equal(a.floor('default', Buffer.from('a:98')), undefined, 'a\'s older keys went');
  assert.equal(b.floor('default', Buffer.from('b:0')), undefined, 'then b\'s oldest');
  // Big field floors count by their names.
  const fields = new Map(Array.from({ length: 32 }, (_, i) => [`field-name-${'x'.repeat(100)}-${i}`, v(i)] as [string, ReturnType<typeof v>]));
  const big = new SessionFloorPool(1_000_000);
  new Session(4096, 'n1', big).note('default', Buffer.from('f'), floor(2, { fields }));
  assert.ok(big.bytes > 16 * 200, `field names are counted (${big.bytes} bytes)`);
  b.note('default', Buffer.from('b:new'), floor(2, { fields }));
  assert.ok(pool.bytes <= 20_000);
  // A closed connection's floors are freed, and a request still in flight adds nothing.
  const held = b.size;
  b.release();
  assert.equal(pool.size, a.size);
  b.note('default', Buffer.from('late'), floor(1));
  assert.equal(b.size, 0);
  assert.equal(pool.size, a.size);
  a.clear();
  assert.equal(pool.bytes, 0);
  assert.ok(held > 0 && perKey > 100);
});

test('one connection past sessionKeysMax drops its own least recently used key, in the pool too', () => {
  const pool = new SessionFloorPool(1_000_000);
  const s = new Session(10, 'n1', pool);
  for (let i = 0; i < 25; i++) s.note('default', Buffer.from(`k:${i}`), floor(i));
  assert.equal(s.size, 10);
  assert.equal(pool.size, 10);
  assert.equal(s.floor('default', Buffer.from('k:14')), undefined);
  assert.ok(s.floor('default', Buffer.from('k:15')));
});

test('a member reads tokens up to four times its sessionTokenBytesMax (a client merging to a larger bound), and writes its own within it', () => {
  const limits = { ...defaultLimits, sessionTokenBytesMax: 4096 };
  const keys = Array.from({ length: 400 }, (_, i) => `key:${i}`);
  const big = tokenOf(keys, 100, 4 * 4096);
  assert.ok(big.length > 2 * 4096 && big.length <= 4 * 4096, `${big.length}`);
  const s = Session.decode(big, limits);
  assert.equal(s.size, 400);
  const back = s.encode(limits.sessionTokenBytesMax);
  assert.ok(back.length <= 4096);
  assert.deepEqual(keysOf(back).slice(-2), ['key:398', 'key:399'], 'the most recent kept');
  const tooBig = Buffer.concat([big, Buffer.alloc(4 * 4096 + 1 - big.length)]);
  assert.throws(() => Session.decode(tooBig, limits), /session token is 16385 bytes, over 4 × limit 'sessionTokenBytesMax' \(4096\)/);
});
