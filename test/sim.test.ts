import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Random } from '../src/common/random.js';
import { TransportError, type Transport } from '../src/cluster/transport.js';
import { SimClock, SimNetwork, type SimNetworkOptions } from '../testing/sim/index.js';

const quiet: SimNetworkOptions = { delayMsMin: 1, delayMsMax: 10, lossRate: 0, duplicateRate: 0 };

function world(seed: number, options: SimNetworkOptions = quiet) {
  const clock = new SimClock();
  const network = new SimNetwork(clock, new Random(seed), options);
  return { clock, network };
}

/** An echo server on channel 1 that counts one-way messages. */
function echo(t: Transport): { oneway: number } {
  const counts = { oneway: 0 };
  t.handle(1, (_from, payload, isRequest) => {
    if (!isRequest) {
      counts.oneway++;
      return;
    }
    return Buffer.concat([Buffer.from(`${t.self}:`), payload]);
  });
  return counts;
}

async function errorCode(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (err) {
    assert.ok(err instanceof TransportError, `expected a TransportError, got ${String(err)}`);
    return err.code;
  }
}

/** A busy run: 4 nodes send requests and gossip with loss, duplication and a partition. */
async function busyRun(seed: number): Promise<{ digest: string; lines: string[] }> {
  const { clock, network } = world(seed, { delayMsMin: 1, delayMsMax: 30, lossRate: 0.1, duplicateRate: 0.05 });
  const ids = ['a', 'b', 'c', 'd'];
  const ts = ids.map((id) => network.transport(id));
  ts.forEach(echo);
  const rng = new Random(seed, 1);
  const results: string[] = [];
  for (let round = 0; round < 50; round++) {
    const from = ts[rng.nextInt(4)]!;
    const to = ids[rng.nextInt(4)]!;
    from.send(to, 1, Buffer.from(`g${round}`));
    from.request(to, 1, Buffer.from(`r${round}`), 100).then(
      (r) => results.push(`${round}:${r.toString()}`),
      (e: TransportError) => results.push(`${round}:${e.code}`),
    );
    if (round === 20) network.partition(['a'], ['b', 'c']);
    if (round === 35) network.heal();
    await clock.runFor(rng.intBetween(0, 20));
  }
  await clock.runFor(1000);
  clock.trace.record(clock.nowMs(), 'note', '', '', -1, -1, results.join(' '));
  return { digest: clock.trace.digest(), lines: clock.trace.lines() };
}

test('timers fire in (time, order set) and time jumps to each', async () => {
  const clock = new SimClock({ startMs: 1000 });
  const fired: string[] = [];
  clock.setTimer(20, () => fired.push(`b@${clock.nowMs()}`));
  clock.setTimer(10, () => fired.push(`a@${clock.nowMs()}`));
  clock.setTimer(20, () => fired.push(`c@${clock.nowMs()}`));
  const cancelled = clock.setTimer(15, () => fired.push('never'));
  cancelled.cancel();
  assert.equal(clock.pendingTimers(), 3);
  await clock.runUntil(1015);
  assert.deepEqual(fired, ['a@1010']);
  assert.equal(clock.nowMs(), 1015);
  assert.equal(await clock.step(), true);
  assert.deepEqual(fired, ['a@1010', 'b@1020']);
  await clock.runFor(100);
  assert.deepEqual(fired, ['a@1010', 'b@1020', 'c@1020']);
  assert.equal(clock.nowMs(), 1120);
  assert.equal(await clock.step(), false);
});

test('promise continuations settle between timer firings', async () => {
  const clock = new SimClock();
  const log: string[] = [];
  const sleep = (ms: number) => new Promise<void>((r) => clock.setTimer(ms, r));
  async function worker(name: string, ms: number) {
    for (let i = 0; i < 3; i++) {
      await sleep(ms);
      // A deep continuation chain must settle before the next timer fires.
      for (let k = 0; k < 50; k++) await Promise.resolve();
      log.push(`${name}${i}@${clock.nowMs()}`);
    }
  }
  void worker('x', 10);
  void worker('y', 10);
  await clock.runFor(100);
  assert.deepEqual(log, ['x0@10', 'y0@10', 'x1@20', 'y1@20', 'x2@30', 'y2@30']);
});

test('runUntilTrue stops as soon as the predicate holds', async () => {
  const clock = new SimClock();
  let n = 0;
  for (let i = 1; i <= 10; i++) clock.setTimer(i * 100, () => n++);
  assert.equal(await clock.runUntilTrue(() => n >= 3, 10_000), true);
  assert.equal(clock.nowMs(), 300);
  assert.equal(await clock.runUntilTrue(() => n >= 100, 500), false);
  assert.equal(clock.nowMs(), 800);
});

test('a clock scope cancels all its timers at once', async () => {
  const clock = new SimClock();
  const scope = clock.scope();
  let fired = 0;
  scope.setTimer(10, () => fired++);
  scope.setTimer(20, () => fired++);
  clock.setTimer(30, () => fired++);
  await clock.runFor(15);
  scope.cancelAll();
  scope.setTimer(1, () => fired++);
  await clock.runFor(100);
  assert.equal(fired, 2);
});

test('request/reply and one-way messages carry copied payloads', async () => {
  const { clock, network } = world(1);
  const a = network.transport('a');
  const b = network.transport('b');
  let received: Buffer | undefined;
  b.handle(1, (from, payload, isRequest) => {
    assert.equal(from, 'a');
    if (!isRequest) {
      received = payload;
      return;
    }
    return Buffer.from(`hi ${payload.toString()}`);
  });
  const sent = Buffer.from('one');
  a.send('b', 1, sent);
  sent.write('XXX'); // mutating after send must not reach b
  const reply = a.request('b', 1, Buffer.from('x'), 100);
  const at = a.requestAt('b', 1, Buffer.from('y'), 100);
  await clock.runFor(50);
  assert.equal(received?.toString(), 'one');
  assert.equal((await reply).toString(), 'hi x');
  assert.deepEqual(await at.then((r) => [r.from, r.reply.toString()]), ['b', 'hi y']);
  assert.equal(network.stats.delivered, 5);
});

test('handler errors reach the requester as REMOTE; a missing handler too', async () => {
  const { clock, network } = world(2);
  const a = network.transport('a');
  const b = network.transport('b');
  b.handle(1, () => {
    throw new Error('boom');
  });
  b.handle(2, async () => {
    throw new Error('async boom');
  });
  const p1 = errorCode(a.request('b', 1, Buffer.alloc(1), 100));
  const p2 = errorCode(a.request('b', 2, Buffer.alloc(1), 100));
  const p3 = errorCode(a.request('b', 3, Buffer.alloc(1), 100));
  await clock.runFor(100);
  assert.deepEqual([await p1, await p2, await p3], ['REMOTE', 'REMOTE', 'REMOTE']);
});

test('same seed gives an identical trace; another seed a different one', async () => {
  const one = await busyRun(42);
  const two = await busyRun(42);
  const other = await busyRun(43);
  assert.ok(one.lines.length > 200, `expected a busy trace, got ${one.lines.length} events`);
  assert.deepEqual(one.lines, two.lines);
  assert.equal(one.digest, two.digest);
  assert.notEqual(one.digest, other.digest);
});

test('loss and duplication rates are roughly honoured', async () => {
  const { clock, network } = world(7, { delayMsMin: 1, delayMsMax: 5, lossRate: 0.2, duplicateRate: 0.1 });
  const a = network.transport('a');
  const b = network.transport('b');
  const counts = echo(b);
  const n = 5000;
  for (let i = 0; i < n; i++) a.send('b', 1, Buffer.from([i & 0xff]));
  await clock.runFor(100);
  assert.equal(network.stats.sent, n);
  const lost = network.stats.lost / n;
  assert.ok(lost > 0.17 && lost < 0.23, `loss ${lost}`);
  // Duplication is drawn for messages that were not lost: 0.8 * 0.1 of all.
  const dup = network.stats.duplicated / (n - network.stats.lost);
  assert.ok(dup > 0.08 && dup < 0.12, `duplication ${dup}`);
  assert.equal(counts.oneway, n - network.stats.lost + network.stats.duplicated);
});

test('a partition blocks both ways; requests time out; heal restores', async () => {
  const { clock, network } = world(3);
  const [a, b, c] = ['a', 'b', 'c'].map((id) => network.transport(id));
  const counts = [a!, b!, c!].map(echo);
  network.partition(['a'], ['b']);
  assert.ok(network.isBlocked('a', 'b') && network.isBlocked('b', 'a') && !network.isBlocked('a', 'c'));
  a!.send('b', 1, Buffer.alloc(1));
  b!.send('a', 1, Buffer.alloc(1));
  a!.send('c', 1, Buffer.alloc(1));
  const ab = errorCode(a!.request('b', 1, Buffer.alloc(1), 200));
  const ba = errorCode(b!.request('a', 1, Buffer.alloc(1), 200));
  const ac = errorCode(a!.request('c', 1, Buffer.alloc(1), 200));
  await clock.runFor(150);
  assert.deepEqual(counts.map((c) => c.oneway), [0, 0, 1]);
  await clock.runFor(100);
  assert.deepEqual([await ab, await ba, await ac], ['TIMEOUT', 'TIMEOUT', 'OK']);
  assert.equal(clock.nowMs(), 250);

  network.heal();
  const healed = errorCode(a!.request('b', 1, Buffer.alloc(1), 200));
  b!.send('a', 1, Buffer.alloc(1));
  await clock.runFor(200);
  assert.equal(await healed, 'OK');
  assert.equal(counts[0]!.oneway, 1);

  // Isolation, and fail-fast when configured.
  network.isolate('c');
  network.configure({ failFastRate: 1 });
  const fast = errorCode(a!.request('c', 1, Buffer.alloc(1), 200));
  await clock.runFor(1);
  assert.equal(await fast, 'UNREACHABLE');
});

test('a message in flight when the partition starts is dropped', async () => {
  const { clock, network } = world(4, { delayMsMin: 50, delayMsMax: 50, lossRate: 0, duplicateRate: 0 });
  const a = network.transport('a');
  const b = network.transport('b');
  const counts = echo(b);
  a.send('b', 1, Buffer.alloc(1));
  await clock.runFor(10);
  network.partition(['a'], ['b']);
  await clock.runFor(100);
  assert.equal(counts.oneway, 0);
  assert.equal(network.stats.blocked, 1);
});

test('crash: pending requests reject, the node stops; restart gives a fresh transport', async () => {
  const { clock, network } = world(5, { delayMsMin: 10, delayMsMax: 10, lossRate: 0, duplicateRate: 0 });
  const a = network.transport('a');
  const b = network.transport('b');
  const countsA = echo(a);
  echo(b);
  b.handle(2, () => new Promise<Buffer>(() => {})); // never answers
  const pendingFromB = errorCode(b.request('a', 2, Buffer.alloc(1), 1000));
  const toB = errorCode(a.request('b', 2, Buffer.alloc(1), 300));
  const inFlight = errorCode(a.request('b', 1, Buffer.alloc(1), 300));
  await clock.runFor(5);
  network.crash('b');
  assert.equal(network.isUp('b'), false);
  assert.equal(await pendingFromB, 'CLOSED');
  b.send('a', 1, Buffer.alloc(1)); // a dead node sends nothing
  assert.equal(await errorCode(b.request('a', 1, Buffer.alloc(1), 100)), 'CLOSED');
  await clock.runFor(400);
  assert.equal(await toB, 'TIMEOUT');
  assert.equal(await inFlight, 'TIMEOUT', 'the message in flight to the crashed node is lost');
  assert.equal(countsA.oneway, 0);

  const b2 = network.restart('b');
  const noHandler = errorCode(a.request('b', 1, Buffer.alloc(1), 100));
  await clock.runFor(30);
  assert.equal(await noHandler, 'REMOTE', 'no handlers after restart');
  echo(b2);
  const again = a.request('b', 1, Buffer.from('x'), 100);
  await clock.runFor(30);
  assert.equal((await again).toString(), 'b:x');
  // The old transport object stays dead.
  assert.equal(await errorCode(b.request('a', 1, Buffer.alloc(1), 100)), 'CLOSED');
});

test('requestAt an address nobody holds times out', async () => {
  const { clock, network } = world(6);
  const a = network.transport('a');
  const p = errorCode(a.requestAt('nobody:7000', 1, Buffer.alloc(1), 100));
  await clock.runFor(100);
  assert.equal(await p, 'TIMEOUT');
});
