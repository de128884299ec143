/**
 * Clocks, in one process: the offset verdict (who is skewed), the hybrid clock's bounds, a
 * replica refusing versions from the future with a code that crosses the wire, and a member's
 * clock starting above the versions on its disk after a restart with the wall clock behind.
 * Real processes under faketime are in clock-skew.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClockOffsets } from '../src/cluster/membership/clock-check.js';
import { HybridClock } from '../src/storage/hlc.js';
import { logicalPerMs } from '../src/storage/version.js';
import { makeLimits } from '../src/common/limits.js';
import { Random } from '../src/common/random.js';
import { PlacementTable } from '../src/cluster/placement/table.js';
import { emptyRecord } from '../src/storage/record.js';
import { MemoryReplicaStore } from '../src/replica/memory-store.js';
import { encodeRequest } from '../src/replica/protocol.js';
import { Channel, TransportError } from '../src/cluster/transport.js';
import { openLocalKv } from '../src/coordinator/index.js';
import { SimClock, SimNetwork } from '../testing/sim/index.js';
import { offsetClock, startSimMember } from '../testing/members.js';
import { tempDir } from './helpers/tmp.js';

const b = (s: string) => Buffer.from(s);

test('clock verdict: the member whose clock is off is the skewed one; two that disagree both stop; none measured is unchecked', () => {
  const max = 500;
  const live = () => true;
  const now = 1_000_000;
  // This member is 2 h behind both peers.
  const behind = new ClockOffsets();
  behind.record('n2', now - 2, now, now - 1 + 7_200_000);
  behind.record('n3', now - 2, now, now - 1 + 7_200_000);
  assert.equal(behind.verdict(now, max, live, 2).state, 'skewed');
  assert.equal(Math.round(behind.verdict(now, max, live, 2).offsetMs), 7_200_000);
  // A healthy member sees one peer 2 h ahead and one in step: it is fine.
  const healthy = new ClockOffsets();
  healthy.record('n1', now - 2, now, now - 1 + 7_200_000);
  healthy.record('n3', now - 2, now, now - 1 + 30);
  assert.deepEqual(healthy.verdict(now, max, live, 2), { state: 'ok', offsetMs: 7_200_000, measured: 2, far: 1 });
  // Two members that disagree: neither can tell who is right, both stop.
  const pair = new ClockOffsets();
  pair.record('n2', now - 2, now, now - 1 - 3_000);
  assert.equal(pair.verdict(now, max, live, 1).state, 'skewed');
  // Within the bound (300 ms), and an offset the round trip makes uncertain, are fine.
  const near = new ClockOffsets();
  near.record('n2', now - 2, now, now - 1 + 300);
  near.record('n3', now - 400, now, now - 200 + 650); // 650 ms, but ±200 ms of error: not certainly over
  assert.equal(near.verdict(now, max, live, 2).state, 'ok');
  // Only the bad peer measured so far (the other not yet): cannot tell yet.
  const partial = new ClockOffsets();
  partial.record('n3', now - 2, now, now - 1 + 7_200_000);
  assert.equal(partial.verdict(now, max, live, 2).state, 'unchecked');
  // Peers known, none measured: cannot tell yet. Alone: fine.
  assert.equal(new ClockOffsets().verdict(now, max, live, 2).state, 'unchecked');
  assert.equal(new ClockOffsets().verdict(now, max, live, 0).state, 'ok');
  // Stale samples and members not alive do not count.
  assert.equal(behind.verdict(now + 61_000, max, live, 2).state, 'unchecked');
  assert.equal(behind.verdict(now, max, (id) => id !== 'n2' && id !== 'n3', 2).state, 'unchecked');
});

test('hybrid clock: never observes a version further ahead than its bound, but always the versions on its own disk', () => {
  let wall = 1_700_000_000_000;
  const hlc = new HybridClock({ nowMs: () => wall }, 1, 500);
  const ahead = (ms: number) => ({ ts: (wall + ms) * logicalPerMs, node: 2 });
  assert.equal(hlc.observe(ahead(400)), true);
  assert.ok(hlc.now().ts > ahead(400).ts, 'observed within the bound: stamps after it');
  assert.equal(hlc.observe(ahead(7_200_000)), false, 'two hours ahead is refused');
  assert.equal(hlc.refused, 1);
  assert.ok(hlc.now().ts < ahead(1000).ts, 'and does not drag this clock into the future');
  hlc.observeStored((wall + 60_000) * logicalPerMs);
  assert.ok(hlc.now().ts > (wall + 60_000) * logicalPerMs, 'its own disk is observed without a bound');
  wall += 1;
});

test('a replica refuses a write whose versions are too far ahead of its clock, with CLOCK_SKEW across the wire; within the bound it applies', async () => {
  const clock = new SimClock({ startMs: 1_700_000_000_000 });
  const net = new SimNetwork(clock, new Random(5), { delayMsMin: 1, delayMsMax: 2, lossRate: 0, duplicateRate: 0 });
  const ring = PlacementTable.initial([{ id: 'n1' }, { id: 'n2' }], 2, 'n1');
  const store = new MemoryReplicaStore();
  const limits = makeLimits();
  const member = startSimMember({ id: 'n1', ring, net, transport: net.transport('n1'), clock, store, limits, seed: 1 });
  member.hints.stop();
  const peer = net.transport('n2');
  let lastTs = 0;
  const write = (aheadMs: number) => {
    const delta = emptyRecord();
    lastTs = (clock.nowMs() + aheadMs) * logicalPerMs;
    delta.base = { version: { ts: lastTs, node: 9 }, value: b(`v${aheadMs}`) };
    return encodeRequest({ op: 'write', epoch: 0, hintFor: null, items: [{ ns: 'default', key: b('k'), delta }] });
  };
  let outcome: unknown = null;
  peer.request('n1', Channel.replica, write(7_200_000), 1000).then((r) => (outcome = r), (e) => (outcome = e));
  await clock.runUntilTrue(() => outcome !== null, 5000);
  assert.ok(outcome instanceof TransportError);
  assert.equal(outcome.remoteCode, 'CLOCK_SKEW');
  assert.match(outcome.message, /ahead of this replica's clock, over 1000 ms \(twice 'maxClockOffsetMs'\)/);
  assert.equal(store.read('default', [b('k')])[0], null, 'nothing was stored');
  assert.equal(member.service.refusedAhead, 1);
  outcome = null;
  peer.request('n1', Channel.replica, write(300), 1000).then((r) => (outcome = r), (e) => (outcome = e));
  await clock.runUntilTrue(() => outcome !== null, 5000);
  assert.ok(Buffer.isBuffer(outcome), 'a version 300 ms ahead is within the bound');
  assert.equal(String(store.read('default', [b('k')])[0]!.base!.value), 'v300');
  // The replica's clock moved past what it accepted: its own next write is newer.
  assert.ok(member.hlc.now().ts > lastTs);
});

test('a member restarted with its clock behind still stamps newer versions: an acknowledged SET after the restart wins', async () => {
  const dir = tempDir();
  let wall = 1_700_000_000_000;
  const clock = { nowMs: () => wall };
  try {
    const first = await openLocalKv({ path: dir.path, durability: 'none', clock });
    await first.kv.set('default', b('k'), b('old'));
    await first.close();
    wall -= 3_600_000; // the clock went back an hour
    const second = await openLocalKv({ path: dir.path, durability: 'none', clock });
    await second.kv.set('default', b('k'), b('new'));
    assert.equal(String(await second.kv.get('default', b('k'))), 'new');
    await second.close();
  } finally {
    dir.cleanup();
  }
});

test('a replica two hours behind refuses the healthy members\' versions: the write is acknowledged by the other two and lost by none', async () => {
  const clock = new SimClock({ startMs: 1_700_000_000_000 });
  const net = new SimNetwork(clock, new Random(7), { delayMsMin: 1, delayMsMax: 2, lossRate: 0, duplicateRate: 0 });
  const ring = PlacementTable.initial([{ id: 'n1' }, { id: 'n2' }, { id: 'n3' }], 3, 'n1');
  const limits = makeLimits();
  const stores = new Map(['n1', 'n2', 'n3'].map((id) => [id, new MemoryReplicaStore()]));
  // n3 runs two hours behind.
  const offsets: Record<string, number> = { n1: 0, n2: 0, n3: -7_200_000 };
  const members = new Map(
    ['n1', 'n2', 'n3'].map((id) => {
      const m = startSimMember({ id, ring, net, transport: net.transport(id), clock: offsetClock(clock, offsets[id]!), store: stores.get(id)!, limits, seed: 3 });
      m.hints.stop();
      return [id, m];
    }),
  );
  const run = async <T>(p: Promise<T>): Promise<{ v?: T; e?: unknown }> => {
    let out: { v?: T; e?: unknown } | null = null;
    p.then((v) => (out = { v }), (e) => (out = { e }));
    await clock.runUntilTrue(() => out !== null, 10_000);
    return out!;
  };
  // Healthy members write; n3's replica refuses the versions (two hours ahead of its clock),
  // so the write is acknowledged by the other two (QUORUM) and n3 holds nothing.
  const w = await run(members.get('n1')!.engine.set('default', b('k'), b('v'), { ttlMs: 3_600_000 }));
  assert.equal(w.e, undefined);
  assert.equal(stores.get('n3')!.read('default', [b('k')])[0], null);
  assert.ok(members.get('n3')!.service.refusedAhead >= 1);
  assert.equal(String((await run(Promise.resolve(members.get('n2')!.engine.get('default', b('k'))))).v), 'v');
});
