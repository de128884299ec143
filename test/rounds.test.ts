/**
 * The coordinator's pure rounds as transcripts: what a write round sends (to replicas,
 * fallbacks with hints), when its level is met, what it says when it fails; what a read
 * round asks, and how a session floor makes it ask further.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KvError } from '../src/common/errors.js';
import { ReadRound } from '../src/coordinator/read-round.js';
import { floorOf } from '../src/coordinator/session.js';
import { WriteRound } from '../src/coordinator/write-round.js';
import { type Record, emptyRecord } from '../src/storage/record.js';

const ok = { size: 1, wasLive: false, fieldsAdded: 0, fieldsRemoved: 0 };
const alive = (...up: string[]) => (id: string) => up.includes(id);
const all = (ids: string[]) => ({ all: ids, sets: null });
const sendTo = (r: WriteRound, node: string) => r.sends.findIndex((s) => s.node === node);

function valueAt(ts: number): Record {
  const r = emptyRecord();
  r.base = { version: { ts, node: 1 }, value: Buffer.from(`v${ts}`) };
  return r;
}

test('write round: QUORUM of three replicas is met by two acks, this member\'s own among them', () => {
  const r = new WriteRound([all(['a', 'b', 'c'])], 'QUORUM', 'a', alive('a', 'b', 'c'), () => []);
  assert.deepEqual(r.sends.map((s) => [s.node, s.hintFor, s.items]), [['a', null, [0]], ['b', null, [0]], ['c', null, [0]]]);
  r.ack(sendTo(r, 'b'), [ok]);
  assert.equal(r.outcome, 'pending');
  r.ack(sendTo(r, 'c'), [ok]);
  assert.equal(r.outcome, 'pending', 'two acks, but not this member\'s own copy');
  r.ack(sendTo(r, 'a'), [ok]);
  assert.equal(r.outcome, 'met');
  assert.equal(r.results()[0]!.size, 1);
});

test('write round: a replica that is down is replaced by a live member outside the list, which keeps a hint; with none left, this member keeps it', () => {
  const r = new WriteRound([all(['a', 'b', 'c'])], 'QUORUM', 'a', alive('a', 'b', 'd'), () => ['b', 'c', 'd', 'e']);
  assert.deepEqual(r.sends.find((s) => s.node === 'd'), { node: 'd', hintFor: 'c', items: [0] });
  assert.equal(r.sloppy, 1);
  const none = new WriteRound([all(['a', 'b', 'c'])], 'ONE', 'a', alive('a', 'b'), () => []);
  assert.deepEqual(none.ownHints, [{ owner: 'c', items: [0] }]);
});

test('write round: a failed replica leaves a hint for this member to keep; failures alike keep their code; this member\'s own failure fails the write and says the others keep it', () => {
  const r = new WriteRound([all(['a', 'b', 'c'])], 'QUORUM', 'x', alive('a', 'b', 'c'), () => []);
  assert.deepEqual(r.fail(sendTo(r, 'a'), 'overloaded', new KvError('OVERLOADED', 'busy')), { owner: 'a', items: [0] });
  r.fail(sendTo(r, 'b'), 'overloaded', new KvError('OVERLOADED', 'busy'));
  r.ack(sendTo(r, 'c'), [ok]);
  assert.equal(r.outcome, 'failed');
  assert.equal(r.error().code, 'OVERLOADED', 'the replicas\' common code');
  assert.match(r.error().message, /write needs 2 of 3 replicas \(QUORUM\), 1 acknowledged \(those keep it: a later read may see it\): a: overloaded, b: overloaded/);

  const own = new WriteRound([all(['a', 'b', 'c'])], 'QUORUM', 'a', alive('a', 'b', 'c'), () => []);
  own.ack(sendTo(own, 'b'), [ok]);
  own.ack(sendTo(own, 'c'), [ok]);
  assert.equal(own.fail(sendTo(own, 'a'), 'disk full', new KvError('DISK_FULL', 'no space')), null, 'no hint for this member\'s own copy');
  assert.equal(own.outcome, 'failed');
  assert.match(own.error().message, /2 acknowledged \(those keep it: a later read may see it\), not this member's own copy, which is required: a: disk full/);
});

test('read round: ONE asks one replica; a session floor its answer does not cover makes it ask the next and merge', () => {
  const plain = new ReadRound([{ candidates: ['a', 'b', 'c'], replicas: 3 }], 'ONE', () => 'k');
  assert.deepEqual([...plain.next()], [['a', [0]]]);
  plain.answer('a', [0], [valueAt(1)]);
  assert.equal(plain.next().size, 0);
  assert.equal(plain.done, true);
  assert.equal(plain.result(0).merged!.base!.value.toString(), 'v1');

  const floor = floorOf(valueAt(2));
  const session = new ReadRound([{ candidates: ['a', 'b', 'c'], replicas: 3, floor }], 'ONE', () => 'k');
  session.next();
  session.answer('a', [0], [valueAt(1)]);
  assert.deepEqual([...session.next()], [['b', [0]]], 'a\'s copy misses the session\'s write: ask b');
  session.answer('b', [0], [valueAt(2)]);
  assert.equal(session.next().size, 0);
  assert.equal(session.result(0).merged!.base!.value.toString(), 'v2');
  assert.deepEqual(session.result(0).answers.map((x) => x.node), ['a', 'b'], 'both answers, for read repair');

  const stale = new ReadRound([{ candidates: ['a', 'b'], replicas: 3, floor }], 'ONE', () => "key 'k'");
  stale.next();
  stale.answer('a', [0], [valueAt(1)]);
  stale.next();
  stale.answer('b', [0], [null]);
  stale.next();
  assert.equal(stale.done, true);
  assert.throws(() => stale.result(0), (e: unknown) => e instanceof KvError && e.code === 'UNAVAILABLE' && /no reachable replica has this session's latest writes/.test(e.message));
});

test('read round: QUORUM replaces a failed replica by the next; too few reachable fails at once', () => {
  const r = new ReadRound([{ candidates: ['a', 'b', 'c'], replicas: 3 }], 'QUORUM', () => 'k');
  assert.deepEqual([...r.next()], [['a', [0]], ['b', [0]]]);
  r.answer('a', [0], [valueAt(1)]);
  r.fail('b', [0], 'timeout', new KvError('UNAVAILABLE', 'slow'));
  assert.deepEqual([...r.next()], [['c', [0]]]);
  r.answer('c', [0], [valueAt(3)]);
  r.next();
  assert.equal(r.done, true);
  assert.equal(r.result(0).merged!.base!.value.toString(), 'v3');

  const few = new ReadRound([{ candidates: ['a'], replicas: 3 }], 'QUORUM', () => 'k');
  assert.equal(few.done, true);
  assert.throws(() => few.result(0), /read needs 2 of 3 replicas \(QUORUM\), 1 reachable/);
});

test('write round: while a slot moves, the level must be met in the old and in the new replica set', () => {
  const moving = { all: ['a', 'b', 'c', 'd'], sets: [['a', 'b', 'c'], ['a', 'b', 'd']] };
  const r = new WriteRound([moving], 'QUORUM', 'x', alive('a', 'b', 'c', 'd'), () => []);
  assert.equal(r.sends.length, 4, 'written to both sets');
  r.ack(sendTo(r, 'c'), [ok]);
  r.ack(sendTo(r, 'd'), [ok]);
  assert.equal(r.outcome, 'pending', 'one ack in each set is not a quorum of either');
  r.ack(sendTo(r, 'a'), [ok]);
  assert.equal(r.outcome, 'met', 'a is in both sets: two of each');
  const f = new WriteRound([moving], 'QUORUM', 'x', alive('a', 'b', 'c', 'd'), () => []);
  f.ack(sendTo(f, 'c'), [ok]);
  f.ack(sendTo(f, 'b'), [ok]);
  f.fail(sendTo(f, 'a'), 'down', null);
  f.fail(sendTo(f, 'd'), 'down', null);
  assert.equal(f.outcome, 'failed', 'the old set has its quorum, the new one does not');
  assert.match(f.error().message, /2 of 3 and 2 of 3 replicas of the old and new replica sets \(QUORUM: the slot is moving\)/);
});
