import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Ring } from '../src/cluster/ring.js';
import { murmur3 } from '../src/cluster/hash.js';

const members = (ids: string[], zones?: string[]) => ids.map((id, i) => ({ id, ...(zones ? { zone: zones[i % zones.length]! } : {}) }));
const nodeIds = fc.uniqueArray(fc.stringMatching(/^[a-z][a-z0-9-]{0,11}$/), { minLength: 10, maxLength: 10 });

test('murmur3 matches the reference vectors', () => {
  assert.equal(murmur3(Buffer.alloc(0), 0), 0);
  assert.equal(murmur3(Buffer.alloc(0), 1), 0x514e28b7);
  assert.equal(murmur3(Buffer.from('hello'), 0), 0x248bfa47);
  assert.equal(murmur3(Buffer.from('The quick brown fox jumps over the lazy dog'), 0), 0x2e4ff723);
});

test('ownership is balanced: max/mean primary share <= 1.1 for 10 members', () => {
  fc.assert(
    fc.property(nodeIds, (ids) => {
      const shares = [...new Ring(members(ids)).primaryShares().values()];
      const mean = 1 / ids.length;
      assert.ok(Math.abs(shares.reduce((a, b) => a + b, 0) - 1) < 1e-9);
      assert.ok(Math.max(...shares) / mean <= 1.1, `max/mean = ${(Math.max(...shares) / mean).toFixed(3)}`);
    }),
    { numRuns: 30 },
  );
});

test('adding one member moves about 1/(n+1) of the keys, all to the new member', () => {
  fc.assert(
    fc.property(nodeIds, fc.stringMatching(/^new-[a-z0-9]{1,6}$/), (ids, newcomer) => {
      const before = new Ring(members(ids));
      const after = new Ring(members([...ids, newcomer]));
      let moved = 0;
      const keys = 20_000;
      for (let i = 0; i < keys; i++) {
        const key = Buffer.from(`key:${i}`);
        const a = before.replicasFor('default', key)[0];
        const b = after.replicasFor('default', key)[0];
        if (a !== b) {
          moved++;
          assert.equal(b, newcomer, 'a key only ever moves to the new member');
        }
      }
      const share = moved / keys;
      const expected = 1 / (ids.length + 1);
      assert.ok(share > expected * 0.75 && share < expected * 1.25, `moved ${share.toFixed(3)}, expected about ${expected.toFixed(3)}`);
    }),
    { numRuns: 10 },
  );
});

test('preference lists hold N distinct members, in distinct zones when zones exist', () => {
  const ring = new Ring(members(['a', 'b', 'c', 'd', 'e', 'f'], ['z1', 'z1', 'z2', 'z2', 'z3', 'z3']), { replicas: 3 });
  for (let i = 0; i < 2000; i++) {
    const list = ring.replicasFor('default', Buffer.from(`k${i}`));
    assert.equal(list.length, 3);
    assert.equal(new Set(list).size, 3);
    const zones = list.map((id) => ({ a: 'z1', b: 'z1', c: 'z2', d: 'z2', e: 'z3', f: 'z3' })[id]);
    assert.equal(new Set(zones).size, 3, `list ${list} spans zones ${zones}`);
  }
  const small = new Ring(members(['a', 'b']), { replicas: 3 });
  assert.equal(small.replicasFor('default', Buffer.from('k')).length, 2, 'N is capped by the member count');
  const shares = [...ring.replicaShares().values()];
  assert.ok(Math.abs(shares.reduce((a, b) => a + b, 0) - 3) < 1e-9);
});

test('hash tags place related keys together; namespaces place the same key independently', () => {
  const ring = new Ring(members(['a', 'b', 'c', 'd', 'e']));
  const doc = ring.replicasFor('docs', Buffer.from('doc:{42}'));
  for (let i = 0; i < 50; i++) assert.deepEqual(ring.replicasFor('docs', Buffer.from(`doc:{42}:chunk:${i}`)), doc);
  let differs = 0;
  for (let i = 0; i < 200; i++) {
    const k = Buffer.from(`k${i}`);
    if (ring.replicasFor('a', k)[0] !== ring.replicasFor('b', k)[0]) differs++;
  }
  assert.ok(differs > 100, `namespace changes placement (${differs}/200 differ)`);
  assert.deepEqual(new Ring(members(['e', 'd', 'c', 'b', 'a'])).replicasFor('docs', Buffer.from('doc:{42}')), doc, 'member order does not matter');
});
