/**
 * Hash-slot placement: Redis Cluster's slot function, the planner's balance and movement,
 * the table's stages and codec.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc16, keySlot, slotCount } from '../src/common/slots.js';
import { planSlots, slotLoads, type PlacementMember } from '../src/cluster/placement/planner.js';
import { PlacementTable } from '../src/cluster/placement/table.js';

const ids = (n: number, from = 0): PlacementMember[] => Array.from({ length: n }, (_, i) => ({ id: `n${String(i + from).padStart(2, '0')}` }));

test('slots are Redis Cluster slots: CRC16-XMODEM of the hash tag mod 16384', () => {
  assert.equal(crc16(Buffer.from('123456789')), 0x31c3); // the XMODEM check value
  // Values Redis Cluster's CLUSTER KEYSLOT gives.
  assert.equal(keySlot(Buffer.from('foo')), 12182);
  assert.equal(keySlot(Buffer.from('bar')), 5061);
  assert.equal(keySlot(Buffer.from('hello')), 866);
  assert.equal(keySlot(Buffer.from('{user1000}.following')), keySlot(Buffer.from('user1000')));
  assert.equal(keySlot(Buffer.from('{}foo')), crc16(Buffer.from('{}foo')) % slotCount, 'an empty tag hashes the whole key');
  assert.equal(keySlot(Buffer.from('foo{bar')), crc16(Buffer.from('foo{bar')) % slotCount, 'an unclosed tag hashes the whole key');
  assert.equal(keySlot(Buffer.from('a{b}{c}')), keySlot(Buffer.from('b')), 'the first tag counts');
});

test('balanced: max/mean slot replicas and primaries per member stay within 1.05 for 3 to 64 members', () => {
  for (const m of [3, 4, 5, 6, 7, 9, 12, 16, 24, 33, 48, 64]) {
    const lists = planSlots(null, ids(m), 3);
    const loads = slotLoads(lists);
    assert.equal(loads.size, m);
    const mean = (slotCount * 3) / m;
    const max = Math.max(...[...loads.values()].map((l) => l.replicas));
    assert.ok(max / mean <= 1.05, `${m} members: max ${max}, mean ${mean.toFixed(1)}`);
    const pmax = Math.max(...[...loads.values()].map((l) => l.primaries));
    assert.ok(pmax / (slotCount / m) <= 1.05, `${m} members: primaries max ${pmax}`);
    for (const l of lists) assert.equal(new Set(l).size, 3, 'three distinct members per slot');
  }
});

test('the k-th member joining moves about 1/k of the slot replicas, and only to it; balance holds', () => {
  let prev = planSlots(null, ids(3), 3);
  for (let k = 4; k <= 12; k++) {
    const next = planSlots(prev, ids(k), 3);
    let moved = 0;
    for (let s = 0; s < slotCount; s++) {
      for (const id of next[s]!) {
        if (prev[s]!.includes(id)) continue;
        moved++;
        assert.equal(id, ids(k)[k - 1]!.id, 'only the newcomer gains slots');
      }
    }
    const share = moved / (slotCount * 3);
    assert.ok(Math.abs(share - 1 / k) < 0.01, `join of member ${k}: moved ${share.toFixed(4)}, 1/k = ${(1 / k).toFixed(4)}`);
    const max = Math.max(...[...slotLoads(next).values()].map((l) => l.replicas));
    assert.ok(max / ((slotCount * 3) / k) <= 1.05);
    prev = next;
  }
});

test('a leave moves only the leaver\'s slot replicas', () => {
  const before = planSlots(null, ids(5), 3);
  const after = planSlots(before, ids(4), 3); // n04 leaves
  let moved = 0;
  for (let s = 0; s < slotCount; s++) {
    const lost = before[s]!.filter((id) => !after[s]!.includes(id));
    for (const id of lost) assert.equal(id, 'n04');
    moved += lost.length;
  }
  assert.equal(moved, slotLoads(before).get('n04')!.replicas);
});

test('zones: each slot spans distinct zones when there are enough', () => {
  const members = ids(9).map((m, i) => ({ ...m, zone: `z${i % 3}` }));
  const lists = planSlots(null, members, 3);
  const zoneOf = new Map(members.map((m) => [m.id, m.zone]));
  for (const l of lists) assert.equal(new Set(l.map((id) => zoneOf.get(id))).size, 3);
});

test('fewer members than N: every slot lists all of them', () => {
  const lists = planSlots(null, ids(2), 3);
  for (const l of lists) assert.equal(l.length, 2);
});

test('a join goes write-both/read-old, read-new, then use-new, with epochs rising', () => {
  const t0 = PlacementTable.initial(ids(3), 3, 'n00');
  const t1 = t0.begin('join', 'n03', 'n03');
  assert.equal(t1.epoch, t0.epoch + 1);
  const gained = t1.gains('n03');
  assert.ok(gained.length > 0);
  const s = gained[0]!;
  assert.deepEqual(t1.readSet(s), t0.readSet(s), 'write-both reads the old owners');
  const w = t1.writeTargets(s);
  assert.ok(w.sets, 'a moving slot has two sets');
  assert.ok(w.all.includes('n03') && w.sets![1]!.includes('n03'));
  const unmoved = [...Array(slotCount).keys()].find((x) => !gained.includes(x))!;
  assert.equal(t1.writeTargets(unmoved).sets, null);
  assert.throws(() => t1.begin('leave', 'n00', 'n00'), /one change at a time/);
  const t2 = t1.advance('n00');
  assert.equal(t2.change!.stage, 'read-new');
  assert.ok(t2.readSet(s).includes('n03'), 'read-new reads the target');
  const t3 = t2.advance('n00');
  assert.equal(t3.change, null);
  assert.ok(t3.readSet(s).includes('n03'));
  assert.equal(t3.members.length, 4);
  assert.ok(t0.olderThan(t1) && t1.olderThan(t2) && t2.olderThan(t3));
});

test('remove drops a dead member from reads and writes at once; leave keeps it until use-new', () => {
  const t0 = PlacementTable.initial(ids(4), 3, 'n00');
  const r1 = t0.begin('remove', 'n01', 'n00');
  for (let s = 0; s < slotCount; s++) {
    assert.ok(!r1.readSet(s).includes('n01'));
    assert.ok(!r1.writeTargets(s).all.includes('n01'));
  }
  const done = r1.advance('n00').advance('n00');
  assert.ok(!done.isMember('n01'));
  const l1 = t0.begin('leave', 'n01', 'n01');
  assert.ok(l1.owners.some((l) => l.includes('n01')), 'the leaver still holds its slots while they stream');
  assert.ok(!l1.advance('n01').advance('n01').isMember('n01'));
});

test('restore: the member is written, not read, until its stream is done', () => {
  const t0 = PlacementTable.initial(ids(3), 3, 'n00');
  const t1 = t0.begin('restore', 'n02', 'n02');
  assert.equal(t1.gains('n02').length, slotCount);
  assert.ok(!t1.readSet(0).includes('n02'));
  assert.ok(t1.writeTargets(0).all.includes('n02'));
  const t3 = t1.advance('n02').advance('n02');
  assert.ok(t3.readSet(0).includes('n02'));
});

test('codec round-trips, and a truncated or corrupt table is refused with a PROTOCOL error', () => {
  const t = PlacementTable.initial(ids(5).map((m, i) => ({ ...m, zone: i % 2 ? 'a' : 'b' })), 3, 'n00').begin('join', 'n09', 'n09', { zone: 'a', dataId: 77 });
  const buf = t.encode();
  const back = PlacementTable.decode(buf);
  assert.equal(back.epoch, t.epoch);
  assert.deepEqual(back.members, t.members);
  assert.equal(back.member('n09')!.dataId, 77);
  assert.deepEqual(back.owners, t.owners);
  assert.deepEqual(back.change, t.change);
  for (const cut of [0, 1, 5, 20, buf.length >> 1, buf.length - 1]) assert.throws(() => PlacementTable.decode(buf.subarray(0, cut)));
  const bad = Buffer.from(buf);
  const header = 1 + 4 + 4 + 4 + t.driver.length + 1 + 1 + t.members.reduce((n, m) => n + 12 + m.id.length + (m.zone ?? '').length, 0);
  assert.equal(bad[header], 3, "slot 0's list length");
  bad[header + 1] = 200; // a member index out of range
  assert.throws(() => PlacementTable.decode(bad));
});

test('two proposals from one stable table share an epoch but not a name or a fence; a dead joiner\'s join is given up', () => {
  const t0 = PlacementTable.initial(ids(4), 3, 'n00', 42);
  const a = t0.begin('remove', 'n01', 'n00');
  const b = t0.begin('remove', 'n02', 'n03');
  assert.equal(a.epoch, b.epoch);
  assert.notEqual(a.changeId, b.changeId, 'streams and progress are per change');
  assert.notEqual(a.tag, b.tag, 'replicas tell the two tables apart');
  assert.ok(a.olderThan(b), 'the higher driver wins');
  assert.equal(a.cluster, 42);
  const j = t0.begin('join', 'n09', 'n09');
  const aborted = j.abortJoin('n00');
  assert.equal(aborted.change, null);
  assert.ok(!aborted.isMember('n09'));
  assert.deepEqual(aborted.owners, t0.owners, 'the owners stay as they were');
  assert.throws(() => new PlacementTable(1, 2 ** 31 + 1, 'x', 3, [{ id: 'x' }], t0.owners.map(() => ['x']), null), /out of range/);
});
