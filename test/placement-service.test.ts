/**
 * The placement service in the simulator: a cluster forms once, a member joining an existing
 * cluster never makes a table of its own, and records a member holds outside its slots (data
 * from the ring placement, before the upgrade) are handed to their owners.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Random } from '../src/common/random.js';
import { keySlot } from '../src/common/slots.js';
import { Placement } from '../src/cluster/placement/service.js';
import { MemoryReplicaStore } from '../src/replica/memory-store.js';
import { emptyRecord } from '../src/storage/record.js';
import { SimClock } from '../testing/sim/clock.js';
import { SimNetwork } from '../testing/sim/network.js';

function cluster(ids: string[], expectMembers: number) {
  const clock = new SimClock({ startMs: 1_700_000_000_000 });
  const net = new SimNetwork(clock, new Random(3), { delayMsMin: 1, delayMsMax: 3, lossRate: 0, duplicateRate: 0 });
  const stores = new Map(ids.map((id) => [id, new MemoryReplicaStore()]));
  const started: string[] = [];
  const placements = new Map<string, Placement>();
  const start = (id: string) => {
    started.push(id);
    const p = new Placement({
      self: id,
      dataId: 100 + ids.indexOf(id),
      replicas: 3,
      transport: net.transport(id),
      clock,
      store: stores.get(id)!,
      persistence: { loadTable: () => null, saveTable: async () => {}, loadStream: () => null, saveStream: async () => {} },
      isAlive: (x) => started.includes(x),
      knownMembers: () => started.map((x) => ({ id: x, zone: '', alive: true, dataId: 100 + ids.indexOf(x) })),
      expectMembers,
      mayBootstrap: () => true,
      streamBytesPerSec: 1e9,
      tickMs: 50,
    });
    p.start();
    placements.set(id, p);
    return p;
  };
  return { clock, net, stores, placements, start };
}

test('a cluster forms one table; a member that joins later adopts it and never makes its own', async () => {
  const c = cluster(['n1', 'n2', 'n3', 'n10'], 3);
  for (const id of ['n1', 'n2', 'n3']) c.start(id);
  await c.clock.runUntilTrue(() => ['n1', 'n2', 'n3'].every((id) => c.placements.get(id)!.table?.members.length === 3), 10_000);
  const formed = c.placements.get('n1')!.table!;
  assert.equal(formed.epoch, 1);
  // 'n10' sorts before 'n2' and 'n3': it must still fetch the cluster's table, not bootstrap.
  const p10 = c.start('n10');
  await c.clock.runUntilTrue(() => p10.table !== null, 10_000);
  assert.equal(p10.table!.driver, formed.driver, 'n10 took the cluster\'s table');
  await c.clock.runUntilTrue(() => false, 1000);
  assert.equal(c.placements.get('n1')!.table!.epoch, formed.epoch, 'and offered none of its own');
  void p10.propose('join', 'n10');
  await c.clock.runUntilTrue(() => [...c.placements.values()].every((p) => p.table?.isMember('n10') && !p.table.change), 60_000);
  for (const p of c.placements.values()) assert.equal(p.table!.members.length, 4);
  for (const p of c.placements.values()) p.stop();
});

test('records held outside a member\'s slots (placed by the ring before the upgrade) go to their owners, then are dropped from it', async () => {
  const ids = ['n1', 'n2', 'n3', 'n4', 'n5', 'n6'];
  const c = cluster(ids, 6);
  // n1 holds 300 keys of every slot, as the ring placed them.
  const keys = Array.from({ length: 300 }, (_, i) => Buffer.from(`old:${i}`));
  await c.stores.get('n1')!.apply(
    keys.map((key, i) => {
      const r = emptyRecord();
      r.base = { version: { ts: 1000 + i, node: 1 }, value: Buffer.from(`v${i}`) };
      return { ns: 'default', key, delta: r };
    }),
    c.clock.nowMs(),
  );
  for (const id of ids) c.start(id);
  const owned = () => {
    const t = c.placements.get('n1')!.table;
    if (!t) return false;
    return keys.every((key) => {
      const owners = t.owners[keySlot(key)]!;
      const has = (id: string) => !!c.stores.get(id)!.read('default', [key])[0]?.base;
      // Keys of n1's own slots stay with it (its co-owners get them through anti-entropy);
      // the others are on every owner, and no longer on n1.
      return owners.includes('n1') ? has('n1') : owners.every(has) && !has('n1');
    });
  };
  assert.ok(await c.clock.runUntilTrue(owned, 60_000), 'every key outside n1\'s slots is on its owners, and not on n1');
  const t = c.placements.get('n1')!.table!;
  assert.ok(keys.some((key) => !t.owners[keySlot(key)]!.includes('n1')), 'some keys were outside n1\'s slots');
  for (const p of c.placements.values()) p.stop();
});
