/**
 * The cluster coordinator on the simulated network: consistency levels, the error when too
 * few replicas answer, sloppy quorum with hints, read repair, and per-request levels.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Random } from '../src/common/random.js';
import { makeLimits } from '../src/common/limits.js';
import { PlacementTable } from '../src/cluster/placement/table.js';
import { SimClock, SimNetwork } from '../testing/sim/index.js';
import { MemoryReplicaStore } from '../src/replica/memory-store.js';
import { startSimMember } from '../testing/members.js';
import { KvError } from '../src/common/errors.js';

const b = (s: string) => Buffer.from(s);

function cluster(n: number, seed = 1) {
  const clock = new SimClock({ startMs: 1_700_000_000_000 });
  const net = new SimNetwork(clock, new Random(seed), { delayMsMin: 1, delayMsMax: 5, lossRate: 0, duplicateRate: 0 });
  const ids = Array.from({ length: n }, (_, i) => `n${i + 1}`);
  const ring = PlacementTable.initial(ids.map((id) => ({ id })), 3, 'n1');
  const stores = new Map(ids.map((id) => [id, new MemoryReplicaStore()]));
  const boot = (id: string, transport = net.transport(id)) => {
    const m = startSimMember({ id, ring, net, transport, clock, store: stores.get(id)!, limits: makeLimits(), seed, requestTimeoutMs: 200, hintIntervalMs: 100 });
    return { kv: m.engine, hints: m.hints };
  };
  const nodes = new Map(ids.map((id) => [id, boot(id)]));
  /** Brings a crashed member back on its store (a restart). */
  const restart = (id: string) => nodes.set(id, boot(id, net.restart(id)));
  /** Runs `p` on simulated time until it settles. */
  const run = async <T>(p: Promise<T> | T): Promise<T> => {
    let done = false;
    let value: T | undefined;
    let error: unknown;
    Promise.resolve(p).then((v) => ((value = v), (done = true)), (e) => ((error = e), (done = true)));
    await clock.runUntilTrue(() => done, 10_000);
    assert.ok(done, 'operation did not settle');
    if (error) throw error;
    return value as T;
  };
  const stop = () => nodes.forEach((x) => x.hints.stop());
  return { clock, net, ring, stores, nodes, run, stop, ids, restart };
}

test('levels: with one of three replicas down, QUORUM writes and reads succeed, ALL is refused with a retryable error naming the count', async () => {
  const c = cluster(3);
  const kv = c.nodes.get('n1')!.kv;
  await c.run(kv.set('default', b('k'), b('v1')));
  c.net.crash('n3');
  await c.run(kv.set('default', b('k'), b('v2')));
  const all = kv.withConsistency({ read: 'ALL', write: 'ALL' });
  await assert.rejects(c.run(all.set('default', b('k'), b('v3'))), (e: KvError) => {
    assert.equal(e.code, 'QUORUM_NOT_MET');
    assert.equal(e.retryable, true);
    assert.match(e.message, /write needs 3 of 3 replicas \(ALL\), 2 acknowledged \(those keep it: a later read may see it\)/);
    return true;
  });
  await assert.rejects(c.run(all.get('default', b('k'))), /read needs 3 of 3 replicas \(ALL\), 2 reachable/);
  // A refused write is not acknowledged, but the replicas that answered did apply it
  // (Dynamo semantics, documented in the README): a later read may see it.
  const quorum = kv.withConsistency({ read: 'QUORUM' });
  assert.equal(String(await c.run(quorum.get('default', b('k')))), 'v3');
  c.stop();
});

test('with two of three replicas down, QUORUM writes to a 3-node cluster fail (no fallback member left), ONE succeeds', async () => {
  const c = cluster(3);
  const kv = c.nodes.get('n1')!.kv;
  c.net.crash('n2');
  c.net.crash('n3');
  await assert.rejects(c.run(kv.set('default', b('k'), b('v'))), /write needs 2 of 3 replicas \(QUORUM\), 1 acknowledged/);
  await c.run(kv.withConsistency({ write: 'ONE' }).set('default', b('k'), b('one')));
  assert.equal(String(await c.run(kv.get('default', b('k')))), 'one');
  c.stop();
});

test('sloppy quorum: a write for a down replica goes to a fallback member as a hint and reaches the owner when it returns', async () => {
  const c = cluster(5);
  const key = b('doc:1');
  const owners = c.ring.replicasFor('default', key);
  const down = owners[1]!;
  const coord = c.ids.find((id) => !owners.includes(id))!;
  c.net.crash(down);
  await c.run(c.nodes.get(coord)!.kv.withConsistency({ write: 'ALL' }).set('default', key, b('hinted')));
  assert.equal(c.stores.get(down)!.read('default', [key])[0], null, 'the down owner has not seen it');
  const holders = c.ids.filter((id) => c.stores.get(id)!.hintCount() > 0);
  assert.equal(holders.length, 1, 'one fallback member holds the hint');
  assert.ok(!owners.includes(holders[0]!), 'the fallback is outside the preference list');
  c.restart(down);
  const delivered = await c.clock.runUntilTrue(() => c.stores.get(down)!.read('default', [key])[0] !== null, 5_000);
  assert.ok(delivered, 'the hint was replayed to the owner');
  const removed = await c.clock.runUntilTrue(() => c.stores.get(holders[0]!)!.hintCount() === 0, 5_000);
  assert.ok(removed, 'and removed from the fallback once the owner acknowledged it');
  c.stop();
});

test('a hint holder whose disk is full keeps the hint (no crash) and removes it once space is back', async () => {
  const c = cluster(5);
  const key = b('doc:2');
  const owners = c.ring.replicasFor('default', key);
  const down = owners[1]!;
  const coord = c.ids.find((id) => !owners.includes(id))!;
  c.net.crash(down);
  await c.run(c.nodes.get(coord)!.kv.withConsistency({ write: 'ALL' }).set('default', key, b('hinted')));
  const holder = c.stores.get(c.ids.find((id) => c.stores.get(id)!.hintCount() > 0)!)!;
  // The holder's disk is full: removing delivered hints (a write) fails.
  const removeHints = holder.removeHints.bind(holder);
  let refused = 0;
  let full = true;
  holder.removeHints = (target, ids) => {
    if (!full) return removeHints(target, ids);
    refused++;
    return Promise.reject(new KvError('DISK_FULL', 'no space left on the data disk'));
  };
  c.restart(down);
  assert.ok(await c.clock.runUntilTrue(() => refused >= 3, 5_000), 'delivered again each round while the removal fails');
  assert.equal(holder.hintCount(), 1, 'the hint is kept while it cannot be removed');
  assert.equal(c.stores.get(down)!.read('default', [key])[0]?.base?.value.toString(), 'hinted');
  full = false;
  assert.ok(await c.clock.runUntilTrue(() => holder.hintCount() === 0, 5_000), 'removed once space is back');
  c.stop();
});

test('read repair: a QUORUM read fixes a stale replica', async () => {
  const c = cluster(3);
  const kv = c.nodes.get('n1')!.kv;
  await c.run(kv.withConsistency({ write: 'ALL' }).set('default', b('k'), b('old')));
  c.net.partition(['n1', 'n2'], ['n3']);
  await c.run(kv.set('default', b('k'), b('new')));
  for (const n of c.nodes.values()) n.hints.stop(); // only read repair may fix n3
  c.net.heal();
  assert.equal(String(c.stores.get('n3')!.read('default', [b('k')])[0]!.base!.value), 'old');
  const r3 = c.nodes.get('n3')!.kv.withConsistency({ read: 'ALL' });
  assert.equal(String(await c.run(r3.get('default', b('k')))), 'new', 'the merged answer is the newest');
  await c.clock.runFor(100);
  assert.equal(String(c.stores.get('n3')!.read('default', [b('k')])[0]!.base!.value), 'new', 'the stale replica was repaired');
  assert.ok(c.nodes.get('n3')!.kv.counters.readRepairs >= 1);
});

test('multi-key and counting commands across replicas: MGET order, DEL counts, HSET new fields, APPEND sizes, SCAN pages', async () => {
  const c = cluster(5);
  const kv = c.nodes.get('n2')!.kv;
  const keys = Array.from({ length: 30 }, (_, i) => b(`key:${String(i).padStart(2, '0')}`));
  await c.run(kv.setMany('default', keys.map((k, i) => ({ key: k, value: b(`v${i}`) }))));
  const got = await c.run(kv.getMany('default', [keys[3]!, b('missing'), keys[29]!]));
  assert.deepEqual(got.map((v) => (v ? String(v) : null)), ['v3', null, 'v29']);
  assert.equal(await c.run(kv.del('default', [keys[0]!, keys[1]!, b('missing')])), 2);
  assert.equal(await c.run(kv.hset('default', b('h'), [{ key: b('a'), value: b('1') }, { key: b('b'), value: b('2') }])), 2);
  assert.equal(await c.run(kv.hset('default', b('h'), [{ key: b('a'), value: b('3') }])), 0);
  assert.equal(await c.run(kv.append('default', b('log'), b('abc'))), 3);
  assert.equal(await c.run(kv.append('default', b('log'), b('de'))), 5);
  const seen: string[] = [];
  let cursor: Buffer | null = null;
  do {
    const page: { keys: Buffer[]; next: Buffer | null } = await c.run(kv.scan('default', { cursor, count: 7, match: b('key:*') }));
    seen.push(...page.keys.map(String));
    cursor = page.next;
  } while (cursor);
  assert.equal(seen.length, 28, 'every live key once');
  assert.equal(new Set(seen).size, 28);
  assert.deepEqual(seen, [...seen].sort());
  c.stop();
});

test('concurrent appenders on both sides of a partition: after healing every acknowledged append is there, once', async () => {
  const c = cluster(5, 7);
  const key = b('posting:{7}');
  const sideA = ['n1', 'n2'];
  const sideB = ['n3', 'n4', 'n5'];
  c.net.partition(sideA, sideB);
  const acked: string[] = [];
  const writers = [...sideA, ...sideB].map(async (id, w) => {
    for (let i = 0; i < 20; i++) {
      const token = `<${id}.${i}>`;
      try {
        await c.nodes.get(id)!.kv.append('default', key, b(token));
        acked.push(token);
      } catch {
        // not acknowledged: may or may not survive
      }
      await new Promise<void>((r) => c.clock.setTimer(3 + w, r));
    }
  });
  await c.run(Promise.all(writers));
  const fromA = acked.filter((t) => t.startsWith('<n1') || t.startsWith('<n2')).length;
  const fromB = acked.length - fromA;
  assert.ok(fromA > 0 && fromB > 0, `both sides acknowledged appends (A ${fromA}, B ${fromB})`);
  c.net.heal();
  const value = String(await c.run(c.nodes.get('n1')!.kv.withConsistency({ read: 'ALL' }).get('default', key)));
  const tokens: string[] = value.match(/<n\d\.\d+>/g) ?? [];
  assert.equal(new Set(tokens).size, tokens.length, 'no append applied twice');
  for (const t of acked) assert.ok(tokens.includes(t), `acknowledged append ${t} survived the partition`);
  c.stop();
});
