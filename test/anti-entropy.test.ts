/**
 * Anti-entropy in the simulator: replicas that differ in a few keys exchange only those
 * keys and end byte-equal; a wiped replica is restored completely with no client read.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Random } from '../src/common/random.js';
import { keySlot } from '../src/common/slots.js';
import { PlacementTable } from '../src/cluster/placement/table.js';
import { AntiEntropy, keyHash } from '../src/replica/anti-entropy.js';
import { MemoryReplicaStore } from '../src/replica/memory-store.js';
import { emptyRecord, type Record } from '../src/storage/record.js';
import { SimClock } from '../testing/sim/clock.js';
import { SimNetwork } from '../testing/sim/network.js';

const ns = 'default';
const ids = ['n1', 'n2', 'n3'];

function valueAt(ts: number, v: string): Record {
  const r = emptyRecord();
  r.base = { version: { ts, node: 1 }, value: Buffer.from(v) };
  return r;
}

function setup(keys: number) {
  const clock = new SimClock({ startMs: 1_700_000_000_000 });
  const net = new SimNetwork(clock, new Random(5), { delayMsMin: 1, delayMsMax: 3, lossRate: 0, duplicateRate: 0 });
  const table = PlacementTable.initial(ids.map((id) => ({ id })), 3, 'n1');
  const stores = new Map(ids.map((id) => [id, new MemoryReplicaStore()]));
  const items = Array.from({ length: keys }, (_, i) => ({ ns, key: Buffer.from(`k${i}`), delta: valueAt(1000 + i, `v${i}`) }));
  const ae = new Map<string, AntiEntropy>();
  const make = (id: string, hashKeysPerRound?: number) => {
    const store = stores.get(id)!;
    const a = new AntiEntropy({ self: id, transport: net.transport(id), clock, store, table: () => table, isAlive: () => true, intervalMs: 100, bucketsPerRound: 64, ...(hashKeysPerRound ? { hashKeysPerRound } : {}) });
    store.onChange = (n, key) => a.changed(n, keySlot(key));
    ae.set(id, a);
    return a;
  };
  return { clock, net, table, stores, items, ae, make };
}

/** Awaits `p` while running the simulated clock (messages and timers need it). */
async function run<T>(clock: SimClock, p: Promise<T>): Promise<T> {
  let out: { v?: T; e?: unknown; done: boolean } = { done: false };
  p.then((v) => (out = { v, done: true }), (e: unknown) => (out = { e, done: true }));
  await clock.runUntilTrue(() => out.done, 600_000);
  if (!out.done) throw new Error('timed out in simulated time');
  if ('e' in out) throw out.e;
  return out.v as T;
}

/** Runs rounds on every member until all stores hold the same records (or `rounds` pass). */
async function converge(s: ReturnType<typeof setup>, rounds: number): Promise<number> {
  for (let r = 0; r < rounds; r++) {
    if (equal(s)) return r;
    await run(s.clock, Promise.all([...s.ae.values()].map((a) => a.round())));
  }
  return equal(s) ? rounds : -1;
}

function fingerprint(store: MemoryReplicaStore, keys: Buffer[]): string[] {
  return store.read(ns, keys).map((r, i) => (r && (r.base || r.tomb) ? keyHash(keys[i]!, r).join(':') : '-'));
}

function equal(s: ReturnType<typeof setup>): boolean {
  const keys = s.items.map((it) => it.key);
  const [a, ...rest] = ids.map((id) => fingerprint(s.stores.get(id)!, keys).join(','));
  return rest.every((x) => x === a);
}

test('anti-entropy: two keys differing among 20,000 move only those keys; replicas end byte-equal', async () => {
  const s = setup(20_000);
  for (const id of ids) await s.stores.get(id)!.apply(s.items, s.clock.nowMs());
  for (const id of ids) s.make(id);
  // n2 misses a newer version of k7; n3 misses k11 entirely (a write while it was down).
  await s.stores.get('n1')!.apply([{ ns, key: Buffer.from('k7'), delta: valueAt(9000, 'new') }], s.clock.nowMs());
  await s.stores.get('n3')!.apply([{ ns, key: Buffer.from('k7'), delta: valueAt(9000, 'new') }], s.clock.nowMs());
  const extra = { ns, key: Buffer.from('k-extra'), delta: valueAt(9001, 'x') };
  s.items.push(extra);
  await s.stores.get('n1')!.apply([extra], s.clock.nowMs());
  await s.stores.get('n2')!.apply([extra], s.clock.nowMs());
  assert.equal(equal(s), false);
  const rounds = await converge(s, 20);
  assert.ok(rounds >= 0, 'replicas converged');
  const moved = [...s.ae.values()].reduce((n, a) => n + a.counters.keysPulled + a.counters.keysPushed, 0);
  assert.ok(moved > 0 && moved <= 8, `keys moved: ${moved} (two keys differ, each pulled and pushed by a pair)`);
  assert.equal(s.stores.get('n2')!.read(ns, [Buffer.from('k7')])[0]!.base!.value.toString(), 'new');
  assert.equal(s.stores.get('n3')!.read(ns, [Buffer.from('k-extra')])[0]!.base!.value.toString(), 'x');
  // Nothing differs any more: a further pass compares digests and moves no key.
  const before = moved;
  for (let r = 0; r < 6; r++) await run(s.clock, Promise.all([...s.ae.values()].map((a) => a.round())));
  const after = [...s.ae.values()].reduce((n, a) => n + a.counters.keysPulled + a.counters.keysPushed, 0);
  assert.equal(after, before, 'equal replicas exchange no keys');
});

test('anti-entropy: a wiped replica is restored completely, with no client read', async () => {
  const s = setup(5000);
  for (const id of ['n1', 'n2']) await s.stores.get(id)!.apply(s.items, s.clock.nowMs());
  for (const id of ids) s.make(id);
  assert.equal(s.stores.get('n3')!.keyCount(ns), 0);
  const rounds = await converge(s, 40);
  assert.ok(rounds >= 0, 'converged');
  assert.equal(s.stores.get('n3')!.keyCount(ns), 5000);
});

test('anti-entropy: a peer on another epoch is skipped (no keys move across placements)', async () => {
  const s = setup(100);
  await s.stores.get('n1')!.apply(s.items, s.clock.nowMs());
  const a = s.make('n1');
  const other = s.table.begin('leave', 'n3', 'n3');
  const b = new AntiEntropy({ self: 'n2', transport: s.net.transport('n2'), clock: s.clock, store: s.stores.get('n2')!, table: () => other, isAlive: () => true, intervalMs: 100 });
  void b;
  await assert.rejects(run(s.clock, a.round()), /epoch/);
  assert.equal(s.stores.get('n2')!.keyCount(ns), 0);
});

test('anti-entropy: hashing is bounded per round on both sides; a round compares fewer buckets, and the pass still converges', async () => {
  const s = setup(5000);
  for (const id of ['n1', 'n2', 'n3']) await s.stores.get(id)!.apply(s.items, s.clock.nowMs());
  const missing = { ns, key: Buffer.from('k-late'), delta: valueAt(9000, 'late') };
  s.items.push(missing);
  await s.stores.get('n1')!.apply([missing], s.clock.nowMs());
  for (const id of ids) s.make(id, 100);
  const first = s.ae.get('n1')!;
  await run(s.clock, first.round());
  assert.ok(first.counters.bucketsCompared > 0 && first.counters.bucketsCompared < 64, `one round compared ${first.counters.bucketsCompared} of 64 buckets`);
  assert.ok(first.counters.keysHashed <= 100 + 200, `hashed ${first.counters.keysHashed} keys (budget 100, plus at most one bucket)`);
  assert.ok((await converge(s, 400)) >= 0, 'converged within the bounded rounds');
});
