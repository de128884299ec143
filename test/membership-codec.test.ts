import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KvError } from '../src/common/errors.js';
import { decodeMessage, encodeMessage, encodeUpdate, type GossipUpdate, type MembershipMessage } from '../src/cluster/membership/codec.js';
import { membershipLimits } from '../src/cluster/membership/config.js';
import { BroadcastQueue, retransmitLimit } from '../src/cluster/membership/broadcast-queue.js';
import { suspicionTimeoutMs } from '../src/cluster/membership/suspicion.js';

const gossip: GossipUpdate[] = [
  { kind: 'alive', id: 'n1', incarnation: 7, address: '10.0.0.1:7000', zone: 'eu-1a', meta: Buffer.from([1, 2, 3]) },
  { kind: 'suspect', id: 'nœud-2', incarnation: 0, from: 'n1' },
  { kind: 'dead', id: 'n3', incarnation: 0xffffffff, from: 'n2' },
  { kind: 'left', id: 'n4', incarnation: 3, from: 'n4' },
];

const messages: MembershipMessage[] = [
  { type: 'ping', seq: 1, target: 'n2', gossip },
  { type: 'ack', seq: 0xffffffff, wallMs: 1_796_000_000_123.5, gossip: [] },
  { type: 'nack', seq: 5, gossip: gossip.slice(1, 2) },
  { type: 'ping-req', seq: 9, target: 'n3', gossip },
  { type: 'gossip', gossip },
  {
    type: 'push-pull',
    wallMs: 1_796_000_000_000,
    join: true,
    states: [
      { id: 'n1', address: 'a:1', incarnation: 2, status: 'alive', zone: '', meta: Buffer.alloc(0) },
      { id: 'n2', address: 'b:1', incarnation: 0, status: 'suspect', zone: 'z', meta: Buffer.alloc(300, 7) },
      { id: 'n3', address: 'c:1', incarnation: 1, status: 'dead', zone: 'z', meta: Buffer.alloc(1) },
      { id: 'n4', address: 'd:1', incarnation: 4, status: 'left', zone: 'z', meta: Buffer.alloc(1) },
    ],
  },
  { type: 'push-pull', join: false, wallMs: 1, states: [] },
];

test('every membership message round-trips', () => {
  for (const m of messages) assert.deepEqual(decodeMessage(encodeMessage(m)), m, m.type);
  // Pre-encoded gossip gives the same bytes as gossip encoded by encodeMessage.
  const m = messages[0]!;
  assert.deepEqual(encodeMessage(m, gossip.map(encodeUpdate)), encodeMessage(m));
});

test('every truncation and trailing garbage is refused as PROTOCOL', () => {
  for (const m of messages) {
    const bytes = encodeMessage(m);
    for (let cut = 0; cut < bytes.length; cut++) {
      assert.throws(() => decodeMessage(bytes.subarray(0, cut)), (e: unknown) => e instanceof KvError && e.code === 'PROTOCOL', `${m.type} cut at ${cut}`);
    }
    assert.throws(() => decodeMessage(Buffer.concat([bytes, Buffer.from([0])])), /trailing/);
  }
});

test('declared lengths and counts over the limits are refused before allocating', () => {
  // ping whose target id declares 65535 bytes.
  const ping = Buffer.from([2, 1, 0, 0, 0, 1, 0xff, 0xff]);
  assert.throws(() => decodeMessage(ping), /member id is 65535 bytes, over limit 'memberIdBytesMax'/);
  // push-pull declaring 4 billion members.
  const pushPull = Buffer.concat([Buffer.from([2, 5, 0]), Buffer.alloc(8), Buffer.from([0xff, 0xff, 0xff, 0xff])]);
  assert.throws(() => decodeMessage(pushPull), /over limit 'membersMax'/);
  // gossip declaring too many updates.
  const many = Buffer.alloc(4);
  many.writeUInt8(2, 0);
  many.writeUInt8(6, 1);
  many.writeUInt16BE(membershipLimits.gossipUpdatesMax + 1, 2);
  assert.throws(() => decodeMessage(many), /over limit 'gossipUpdatesMax'/);
  assert.throws(() => decodeMessage(Buffer.from([1, 6, 0, 0])), /wire version 1, expected 2/);
  assert.throws(() => decodeMessage(Buffer.from([2, 99])), /unknown membership message type 99/);
  assert.throws(() => decodeMessage(Buffer.from([2, 6, 0, 1, 9])), /unknown gossip update kind 9/);
});

test('broadcast queue: fewest sends first, newest among equals, replaced by key, retired at the limit', () => {
  const q = new BroadcastQueue(10);
  q.enqueue('a', Buffer.from('a1'));
  q.enqueue('b', Buffer.from('b1'));
  assert.deepEqual(q.take(1, 1000, 3).map(String), ['b1'], 'newest first among unsent');
  assert.deepEqual(q.take(1, 1000, 3).map(String), ['a1'], 'then the one sent fewest times');
  q.enqueue('a', Buffer.from('a2'));
  assert.deepEqual(q.take(10, 1000, 3).map(String), ['a2', 'b1'], 'a newer broadcast about a replaces the old one');
  assert.deepEqual(q.take(10, 1000, 3).map(String), ['a2', 'b1']);
  assert.equal(q.size, 1, 'b was sent 3 times and retired');
  assert.deepEqual(q.take(10, 1000, 3).map(String), ['a2']);
  assert.equal(q.size, 0);
});

test('broadcast queue: byte budget (first always fits), bound with drop count, finished()', async () => {
  const q = new BroadcastQueue(3);
  q.enqueue('big', Buffer.alloc(100));
  q.enqueue('s1', Buffer.alloc(10));
  assert.deepEqual(q.take(10, 50, 5).map((b) => b.length), [10], 'the big one does not fit after the small one');
  assert.deepEqual(q.take(10, 50, 5).map((b) => b.length), [100], 'alone it is always taken');
  const seq = q.enqueue('s2', Buffer.alloc(10));
  let finished = false;
  const done = q.finished('s2', seq).then(() => (finished = true));
  q.enqueue('s3', Buffer.alloc(10)); // full: the most-sent (big or s1, 1 send each; big is older) is dropped
  assert.equal(q.dropped, 1);
  assert.equal(q.size, 3);
  for (let i = 0; i < 5; i++) q.take(10, 1000, 5);
  await done;
  assert.ok(finished);
  assert.equal(q.size, 0);
  assert.equal(retransmitLimit(4, 5), 4);
  assert.equal(retransmitLimit(4, 10), 8);
  assert.equal(retransmitLimit(4, 100), 12);
});

test('suspicion timeout shrinks from max to min with confirmations', () => {
  assert.equal(suspicionTimeoutMs(1500, 3000, 0, 3), 3000);
  const one = suspicionTimeoutMs(1500, 3000, 1, 3);
  const two = suspicionTimeoutMs(1500, 3000, 2, 3);
  assert.ok(one < 3000 && two < one && two > 1500, `${one} ${two}`);
  assert.equal(suspicionTimeoutMs(1500, 3000, 3, 3), 1500);
  assert.equal(suspicionTimeoutMs(1500, 3000, 0, 0), 1500, 'no one can confirm: the minimum');
});
