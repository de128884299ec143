import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { type Record, emptyRecord, merge, view } from '../src/storage/record.js';
import { opsArb } from './helpers/records.js';

const now = 1_000_000;
const build = (deltas: Record[]) => deltas.reduce((acc, d) => merge(acc, d), emptyRecord());
/** Records compare by what a client can observe plus what later merges depend on. */
const canon = (r: Record) => ({
  view: view(r, now),
  tomb: r.tomb,
  base: r.base && { v: r.base.version, value: r.base.value.toString('hex') },
  appends: r.appends.map((s) => [s.version, s.opId.toString('hex'), s.bytes.toString('hex')]),
  fields: [...r.fields.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, f]) => [k, f.version, f.value?.toString('hex') ?? null]),
  expiry: r.expiry,
});

// Three records over one shared op history: ops split between them at random, overlapping.
const threeRecords = opsArb(30).chain((deltas) =>
  fc
    .tuple(...[0, 1, 2].map(() => fc.array(fc.boolean(), { minLength: deltas.length, maxLength: deltas.length })))
    .map((masks) => masks.map((m) => build(deltas.filter((_, i) => m[i]))) as [Record, Record, Record]),
);

test('merge is commutative', () => {
  fc.assert(fc.property(threeRecords, ([a, b]) => assert.deepEqual(canon(merge(a, b)), canon(merge(b, a)))), { numRuns: 400 });
});

test('merge is associative', () => {
  fc.assert(
    fc.property(threeRecords, ([a, b, c]) => assert.deepEqual(canon(merge(merge(a, b), c)), canon(merge(a, merge(b, c))))),
    { numRuns: 400 },
  );
});

test('merge is idempotent', () => {
  fc.assert(fc.property(threeRecords, ([a, b]) => {
    assert.deepEqual(canon(merge(a, a)), canon(a));
    const ab = merge(a, b);
    assert.deepEqual(canon(merge(ab, b)), canon(ab));
  }), { numRuns: 400 });
});

test('applying the same ops in any order, with repeats, gives the same record', () => {
  fc.assert(
    fc.property(opsArb(30).chain((d) => fc.tuple(fc.constant(d), fc.shuffledSubarray(d, { minLength: d.length, maxLength: d.length }), fc.array(fc.integer({ min: 0, max: d.length - 1 }), { maxLength: 10 }))),
      ([deltas, shuffled, repeats]) => {
        const again = [...shuffled, ...repeats.map((i) => deltas[i]!)];
        assert.deepEqual(canon(build(again)), canon(build(deltas)));
      }),
    { numRuns: 400 },
  );
});

test('no concurrent append is lost: every append newer than the last set and delete is read', () => {
  fc.assert(fc.property(opsArb(30), (deltas) => {
    const r = build(deltas);
    const floor = Math.max(r.base?.version.ts ?? 0, r.tomb?.ts ?? 0);
    const expected = deltas.flatMap((d) => d.appends).filter((s) => s.version.ts > floor).length;
    assert.equal(r.appends.length, expected);
  }), { numRuns: 300 });
});

test('a tombstone covers older writes but not newer ones', () => {
  const v = (ts: number) => ({ ts, node: 1 });
  const set = { ...emptyRecord(), base: { version: v(10), value: Buffer.from('old') } };
  const del = { ...emptyRecord(), tomb: v(20) };
  const set2 = { ...emptyRecord(), base: { version: v(30), value: Buffer.from('new') } };
  assert.equal(view(merge(set, del), now).exists, false);
  assert.equal(view(merge(merge(set, del), set2), now).value?.toString(), 'new');
  assert.equal(view(merge(set2, merge(del, set)), now).value?.toString(), 'new');
});

test('an expiry whose time has passed reads as deleted, and a later write revives the key', () => {
  const v = (ts: number) => ({ ts, node: 1 });
  const r = { ...emptyRecord(), base: { version: v(1024), value: Buffer.from('x') }, expiry: { version: v(1024), atMs: 500 } };
  assert.equal(view(r, 500).exists, true, 'alive at its expiry ms, as in Redis');
  assert.equal(view(r, 501).exists, false);
  const later = { ...emptyRecord(), base: { version: v(600 * 1024), value: Buffer.from('y') } };
  assert.equal(view(merge(r, later), 700).value?.toString(), 'y');
});
