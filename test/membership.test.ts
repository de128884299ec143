import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Random } from '../src/common/random.js';
import { SimClock, SimNetwork, type SimClockScope, type SimNetworkOptions, type SimTransport } from '../testing/sim/index.js';
import { Swim, type MemberStatus, type SwimConfig } from '../src/cluster/membership/index.js';

const lan: SimNetworkOptions = { delayMsMin: 1, delayMsMax: 15, lossRate: 0, duplicateRate: 0 };

interface SimNode {
  id: string;
  scope: SimClockScope;
  transport: SimTransport;
  swim: Swim;
}

/** A simulated cluster of Swim members n1..nN whose seed is n1; every membership event goes to `log`. */
class Cluster {
  readonly clock = new SimClock({ traceCapacity: 2000 });
  readonly network: SimNetwork;
  readonly nodes = new Map<string, SimNode>();
  /** `time observer: member type incarnation`, in the order they happened. */
  readonly log: string[] = [];
  private boots = 0;

  constructor(
    readonly seed: number,
    network: SimNetworkOptions = lan,
    private readonly config: Partial<SwimConfig> = {},
  ) {
    this.network = new SimNetwork(this.clock, new Random(seed), network);
  }

  boot(id: string): SimNode {
    const old = this.nodes.get(id);
    const transport = (old === undefined ? this.network.transport(id) : this.network.restart(id)) as SimTransport;
    const scope = this.clock.scope();
    const swim = new Swim({
      self: { id, address: id, zone: `z${id.length}`, meta: Buffer.from(`meta-${id}`) },
      transport,
      clock: scope,
      random: new Random(this.seed, ++this.boots),
      config: this.config,
      seeds: async () => ['n1'],
    });
    swim.on('change', (e) => this.log.push(`${this.clock.nowMs()} ${id}: ${e.member.id} ${e.type} ${e.member.incarnation}`));
    swim.start();
    const node = { id, scope, transport, swim };
    this.nodes.set(id, node);
    return node;
  }

  /** Boots n1..nN, joins them all through n1, runs until every member sees every other alive. */
  async start(n: number): Promise<number[]> {
    const ids = Array.from({ length: n }, (_, i) => `n${i + 1}`);
    for (const id of ids) this.boot(id);
    const joins = Promise.all(ids.map((id) => this.node(id).swim.join()));
    const converged = await this.clock.runUntilTrue(() => this.converged(ids), 10_000);
    assert.ok(converged, `cluster did not converge:\n${this.describe()}`);
    return joins;
  }

  node(id: string): SimNode {
    const node = this.nodes.get(id);
    assert.ok(node !== undefined, `no node ${id}`);
    return node;
  }

  /** The process dies: no more messages, no more timers. */
  crash(id: string): void {
    const node = this.node(id);
    this.network.crash(id);
    node.scope.cancelAll();
    node.swim.stop();
  }

  statusOf(observer: string, member: string): MemberStatus | undefined {
    return this.node(observer).swim.member(member)?.status;
  }

  /** True when each of `ids` sees each of `ids` alive. */
  converged(ids: readonly string[], status: MemberStatus = 'alive', about: readonly string[] = ids): boolean {
    return ids.every((o) => about.every((m) => this.statusOf(o, m) === status));
  }

  eventsAbout(member: string, type: string): string[] {
    return this.log.filter((line) => line.split(' ').slice(2, 4).join(' ') === `${member} ${type}`);
  }

  describe(): string {
    const views = [...this.nodes.values()].map((n) => `${n.id}: ${n.swim.members().map((m) => `${m.id}=${m.status}@${m.incarnation}`).join(' ')}`);
    return `${views.join('\n')}\nlast events:\n${this.log.slice(-20).join('\n')}\ntrace:\n${this.clock.trace.dump(40)}`;
  }
}

const ids5 = ['n1', 'n2', 'n3', 'n4', 'n5'];

test('five members join through one seed and converge, with addresses set', async () => {
  const c = new Cluster(1);
  const answered = await c.start(5);
  assert.deepEqual(answered, [0, 1, 1, 1, 1], 'n1 skips itself; the others reach the seed');
  assert.ok(c.clock.nowMs() < 3000, `converged only at ${c.clock.nowMs()} ms`);
  for (const id of ids5) {
    const node = c.node(id);
    const members = node.swim.members();
    assert.deepEqual(members.map((m) => m.id), ids5);
    for (const m of members) {
      assert.equal(m.zone, 'z2');
      assert.equal(m.meta.toString(), `meta-${m.id}`);
      if (m.id !== id) assert.equal(node.transport.addressOf(m.id), m.id, `${id} did not set the address of ${m.id}`);
    }
  }
  assert.equal(c.eventsAbout('n3', 'joined').length, 4, 'each other member saw n3 join once');
});

const seeds = [2, 3, 5, 8, 13, 21, 34, 55];

test('a crashed member is declared dead by every other member within 5 s (8 seeds)', async () => {
  for (const seed of seeds) {
    const c = new Cluster(seed);
    await c.start(5);
    await c.clock.runFor(2000);
    const crashedAt = c.clock.nowMs();
    c.crash('n3');
    const others = ids5.filter((id) => id !== 'n3');
    const dead = await c.clock.runUntilTrue(() => c.converged(others, 'dead', ['n3']), 5000);
    assert.ok(dead, `seed ${seed}: n3 not dead everywhere 5 s after the crash:\n${c.describe()}`);
    assert.ok(c.clock.nowMs() - crashedAt <= 5000);
    await c.clock.runFor(5000);
    assert.ok(c.converged(others), `seed ${seed}: the others stay alive`);
    assert.deepEqual(c.log.filter((l) => / dead /.test(l) && !l.includes(': n3 ')), [], `seed ${seed}`);
  }
});

test('a member cut off for less than the suspicion timeout refutes and is never declared dead (8 seeds)', async () => {
  let suspected = 0;
  for (const seed of seeds) {
    const c = new Cluster(seed);
    await c.start(5);
    await c.clock.runFor(3000);
    c.network.isolate('n3');
    await c.clock.runFor(1200);
    c.network.heal();
    await c.clock.runFor(10_000);
    if (c.eventsAbout('n3', 'suspect').length > 0) suspected++;
    assert.ok(c.node('n3').swim.incarnation > 0, `seed ${seed}: n3 refuted by raising its incarnation`);
    assert.deepEqual(c.log.filter((l) => / dead /.test(l)), [], `seed ${seed}: no member was ever declared dead\n${c.describe()}`);
    assert.ok(c.converged(ids5), c.describe());
    const inc = c.node('n3').swim.incarnation;
    for (const id of ids5) assert.equal(c.node(id).swim.member('n3')?.incarnation, inc, `seed ${seed}: ${id} has n3's last incarnation`);
  }
  assert.ok(suspected >= seeds.length / 2, `n3 was suspected in only ${suspected} runs: the test would prove little`);
});

test('a graceful leave is seen as left, not dead', async () => {
  const c = new Cluster(4);
  await c.start(5);
  await c.clock.runFor(1000);
  const leaving = c.node('n5').swim.leave();
  await c.clock.runFor(2500);
  await leaving;
  c.crash('n5'); // the process exits after leaving
  await c.clock.runFor(10_000);
  const others = ids5.slice(0, 4);
  assert.ok(c.converged(others, 'left', ['n5']), c.describe());
  assert.ok(c.converged(others), c.describe());
  assert.equal(c.eventsAbout('n5', 'left').length, 4);
  assert.deepEqual(c.eventsAbout('n5', 'dead'), []);
  assert.deepEqual(c.eventsAbout('n5', 'suspect'), []);
});

test('with 10% message loss the cluster stays converged with no false deads over 60 s (4 seeds)', async () => {
  for (const seed of seeds.slice(0, 4)) {
    const c = new Cluster(seed);
    await c.start(5);
    c.network.configure({ lossRate: 0.1 });
    await c.clock.runFor(60_000);
    assert.ok(c.network.stats.lost > 200, `expected many lost messages, got ${c.network.stats.lost}`);
    assert.deepEqual(c.log.filter((l) => / (dead|left) /.test(l)), [], `seed ${seed}\n${c.describe()}`);
    // A suspicion may be open at this instant; it must resolve without a death.
    assert.ok(await c.clock.runUntilTrue(() => c.converged(ids5), 3000), `seed ${seed}\n${c.describe()}`);
    assert.deepEqual(c.log.filter((l) => / (dead|left) /.test(l)), [], `seed ${seed}`);
  }
});

test('push-pull repairs a member that missed gossip', async () => {
  // Probes and the gossip tick effectively off: only push-pull spreads news.
  const c = new Cluster(6, lan, { probeIntervalMs: 1e9, probeTimeoutMs: 200, gossipIntervalMs: 1e9, pushPullIntervalMs: 5000 });
  for (const id of ['n1', 'n2', 'n3']) c.boot(id);
  const j2 = c.node('n2').swim.join();
  await c.clock.runFor(100);
  assert.equal(await j2, 1);
  const j3 = c.node('n3').swim.join();
  await c.clock.runFor(100);
  assert.equal(await j3, 1);
  assert.equal(c.statusOf('n2', 'n3'), undefined, 'n2 has not heard of n3 yet');
  assert.equal(c.statusOf('n1', 'n3'), 'alive');
  c.node('n3').swim.updateMeta(Buffer.from('tokens-v2'));
  await c.clock.runFor(100);
  assert.equal(c.node('n1').swim.member('n3')?.meta.toString(), 'meta-n3', 'no gossip carried the new meta');
  await c.clock.runFor(10_000);
  for (const id of ['n1', 'n2']) {
    assert.equal(c.statusOf(id, 'n3'), 'alive', c.describe());
    assert.equal(c.node(id).swim.member('n3')?.meta.toString(), 'tokens-v2', c.describe());
  }
  assert.ok(c.log.some((l) => l.includes('n1: n3 updated')), 'n1 saw the meta update as an update');
});

test('a crashed member that restarts refutes its death and is alive again', async () => {
  const c = new Cluster(7);
  await c.start(4);
  c.crash('n4');
  const ids = ['n1', 'n2', 'n3'];
  assert.ok(await c.clock.runUntilTrue(() => c.converged(ids, 'dead', ['n4']), 6000), c.describe());
  const n4 = c.boot('n4');
  void n4.swim.join();
  assert.ok(await c.clock.runUntilTrue(() => c.converged(['n1', 'n2', 'n3', 'n4']), 10_000), c.describe());
  assert.ok(n4.swim.incarnation > 0);
  assert.equal(c.eventsAbout('n4', 'alive').length, 3);
});

async function scenario(seed: number): Promise<{ log: string[]; digest: string }> {
  const c = new Cluster(seed, { delayMsMin: 1, delayMsMax: 20, lossRate: 0.05, duplicateRate: 0.02 });
  await c.start(5);
  c.crash('n2');
  await c.clock.runFor(3000);
  c.network.partition(['n4'], ['n1', 'n3']);
  await c.clock.runFor(1000);
  c.network.heal();
  const leaving = c.node('n5').swim.leave();
  await c.clock.runFor(3000);
  await leaving;
  await c.clock.runFor(5000);
  return { log: c.log, digest: c.clock.trace.digest() };
}

test('same seed, same sequence of membership events; another seed, another one', async () => {
  const a = await scenario(11);
  const b = await scenario(11);
  const other = await scenario(12);
  assert.ok(a.log.length > 30, `expected a busy log, got ${a.log.length} events`);
  assert.deepEqual(a.log, b.log);
  assert.equal(a.digest, b.digest);
  assert.notDeepEqual(a.log, other.log);
});
