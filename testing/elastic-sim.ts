/**
 * Deterministic simulation of membership changes: the real placement service (bootstrap,
 * join, leave, remove, restore; streams; stewards; cleanup), anti-entropy, coordinators,
 * replica services and hint replay, over the seeded network and clock. One seed is one run.
 *
 * While clients write and read, a script changes the cluster one step at a time, with faults
 * drawn from the seed: a join during a partition, a member crashed and restarted mid-change, a
 * graceful leave, a wiped disk restored, a member that dies for good and is removed. Members'
 * clocks are offset within the bound. Checked:
 *  - at every step (every simulated second during changes, and after each): every write a
 *    session had acknowledged reads back through that session at its level; every write
 *    acknowledged at a level W reads back, through any member, at every level R with
 *    W + R > N (QUORUM/ALL), exactly as written (a failed read is unavailability, counted,
 *    not a violation; a wrong or missing value is);
 *  - once settled and healed: every key has exactly N copies, on its owners (cleanup done);
 *    replicas are byte-equal after anti-entropy; every acknowledged write reads back at ONE
 *    through every member.
 */
import { Random } from '../src/common/random.js';
import { KvError } from '../src/common/errors.js';
import { keySlot } from '../src/common/slots.js';
import { makeLimits } from '../src/common/limits.js';
import { sleep } from '../src/common/clock.js';
import type { NodeId } from '../src/cluster/transport.js';
import { Placement, type PlacementPersistence } from '../src/cluster/placement/service.js';
import { PlacementView } from '../src/cluster/placement/view.js';
import type { Level } from '../src/coordinator/api.js';
import type { KvApi } from '../src/coordinator/api.js';
import { AntiEntropy, keyHash } from '../src/replica/anti-entropy.js';
import { MemoryReplicaStore } from '../src/replica/memory-store.js';
import { SimClock, SimNetwork, type SimClockScope } from './sim/index.js';
import { offsetClock, startSimMember, type SimMember } from './members.js';

export interface ElasticSimOptions {
  clients?: number;
  replicas?: number;
  /** Members' wall clocks off by up to this much (default 0.45 × 'maxClockOffsetMs'). */
  clockOffsetMsMax?: number;
  /** Simulated ms a change may take before the run counts it as stuck. */
  changeTimeoutMs?: number;
}

export interface ElasticSimReport {
  seed: number;
  ok: boolean;
  violations: string[];
  steps: string[];
  writesAcknowledged: number;
  writesFailed: number;
  sessionReads: number;
  crossReads: number;
  readsUnavailable: number;
  keysStreamed: number;
  keysRepairedByAntiEntropy: number;
  /** Proposals that lost to another made from the same table at once. */
  proposalsLost: number;
  finalEpoch: number;
  simulatedMs: number;
  /** Digest of every event of the run: the same seed gives the same digest. */
  traceDigest: string;
  traceTail: string;
}

interface Member {
  id: NodeId;
  store: MemoryReplicaStore;
  persistence: { table: Buffer | null; stream: string | null };
  dataId: number;
  scope: SimClockScope;
  placement: Placement;
  ae: AntiEntropy;
  sim: SimMember;
  up: boolean;
  /** Sessions of this member's clients are dropped when it crashes. */
  incarnation: number;
  leaving?: boolean;
  proposing?: boolean;
}

interface Acked {
  key: string;
  value: string;
  level: Level;
}

const ns = 'default';
const levels: Level[] = ['ONE', 'QUORUM', 'ALL'];

export async function runElasticSim(seed: number, options: ElasticSimOptions = {}): Promise<ElasticSimReport> {
  const replicas = options.replicas ?? 3;
  const clock = new SimClock({ startMs: 1_700_000_000_000 });
  const net = new SimNetwork(clock, new Random(seed, 1), { delayMsMin: 1, delayMsMax: 8, lossRate: 0.002, duplicateRate: 0.002 });
  const limits = makeLimits();
  const random = new Random(seed, 7);
  const offsetMax = options.clockOffsetMsMax ?? Math.floor(limits.maxClockOffsetMs * 0.45);
  const changeTimeoutMs = options.changeTimeoutMs ?? 120_000;
  const members = new Map<NodeId, Member>();
  const known: NodeId[] = [];
  const violations: string[] = [];
  const steps: string[] = [];
  const acked: Acked[] = [];
  const stats = { writesFailed: 0, sessionReads: 0, crossReads: 0, readsUnavailable: 0 };
  const offsets = new Map<NodeId, number>();
  let dataIds = 1000;

  const alive = (from: NodeId, id: NodeId) => id === from || (net.isUp(id) && !net.isBlocked(from, id) && members.get(id)?.up === true);

  function start(id: NodeId, fresh: boolean, expectMembers = 1): Member {
    const prev = members.get(id);
    if (!offsets.has(id)) offsets.set(id, Math.round((random.nextDouble() * 2 - 1) * offsetMax));
    const transport = prev ? net.restart(id) : net.transport(id);
    const scope = clock.scope();
    const mclock = offsetClock(scope, offsets.get(id)!);
    const store = fresh || !prev ? new MemoryReplicaStore(limits.hintsMax, undefined, limits.namespacesMax) : prev.store;
    const persistence = fresh || !prev ? { table: null, stream: null } : prev.persistence;
    const dataId = fresh || !prev ? ++dataIds : prev.dataId;
    const persist: PlacementPersistence = {
      loadTable: () => persistence.table,
      saveTable: async (b) => void (persistence.table = Buffer.from(b)),
      loadStream: () => persistence.stream,
      saveStream: async (s) => void (persistence.stream = s),
    };
    if (!known.includes(id)) known.push(id);
    let ae: AntiEntropy;
    const placement = new Placement({
      self: id,
      dataId,
      replicas,
      transport,
      clock: mclock,
      store,
      persistence: persist,
      isAlive: (x) => alive(id, x),
      knownMembers: () => known.map((x) => ({ id: x, zone: '', alive: alive(id, x), dataId: members.get(x)?.dataId ?? 0 })),
      expectMembers,
      mayBootstrap: () => true,
      streamBytesPerSec: 4 * 1024 * 1024,
      requestTimeoutMs: 500,
      tickMs: 100,
      dropped: (n, slot) => ae.changed(n, slot),
      ...(process.env.RAGKV_SIM_LOG ? { log: (f: object, m: string) => console.log(`${clock.nowMs() - 1_700_000_000_000} ${id} ${m} ${JSON.stringify(f).slice(0, 300)}`) } : {}),
    });
    const view = new PlacementView(placement, { isAlive: (x) => alive(id, x), known: () => known }, id);
    const noTable = () => (placement.table ? null : new KvError('UNAVAILABLE', 'no placement table yet'));
    const sim = startSimMember({
      id,
      net,
      transport,
      clock: mclock,
      store,
      limits,
      seed,
      view,
      requestTimeoutMs: 500,
      writeGuard: noTable,
      readGuard: noTable,
      epochCheck: (from, epoch, tag, read) => placement.checkEpoch(from, epoch, tag, read),
      holds: (_ns, key) => placement.table?.writeTargets(keySlot(key)).all.includes(id) ?? true,
      replicaReadGuard: () => (placement.awaitingRestore ? new KvError('UNAVAILABLE', 'restoring') : null),
      hintOwnersOf: (_ns, key) => placement.table?.writeTargets(keySlot(key)).all ?? null,
      hintIsMember: (x) => placement.table?.isMember(x) ?? true,
    });
    ae = new AntiEntropy({ self: id, transport, clock: mclock, store, table: () => placement.table, isAlive: (x) => alive(id, x), intervalMs: 500, bucketsPerRound: 64, requestTimeoutMs: 500 });
    store.onChange = (n, key) => ae.changed(n, keySlot(key));
    placement.start();
    ae.start();
    const m: Member = { id, store, persistence, dataId, scope, placement, ae, sim, up: true, incarnation: (prev?.incarnation ?? 0) + 1 };
    members.set(id, m);
    // Join, restore: what node/cluster-member.ts does on its own timer.
    const own = () => {
      if (!m.up) return;
      scope.setTimer(300, () => {
        const t = placement.table;
        if (t && !t.change && !m.leaving) {
          const kind = !t.isMember(id) ? 'join' : placement.awaitingRestore ? 'restore' : null;
          if (kind && !m.proposing) {
            m.proposing = true;
            placement.propose(kind, id).catch(() => {}).finally(() => (m.proposing = false));
          }
        }
        own();
      });
    };
    own();
    return m;
  }

  function crash(id: NodeId): void {
    const m = members.get(id)!;
    m.up = false;
    net.crash(id);
    m.placement.stop();
    m.ae.stop();
    m.sim.hints.stop();
    m.scope.cancelAll();
  }

  // ---- clients: each a session on a member; writes unique keys, reads its own back.
  const clientCount = options.clients ?? 3;
  let stopClients = false;
  let seq = 0;
  const clientLoops: Promise<void>[] = [];
  const liveMembers = () => [...members.values()].filter((m) => m.up && m.placement.table);
  for (let c = 0; c < clientCount; c++) {
    clientLoops.push(
      (async () => {
        let on: Member | null = null;
        let onIncarnation = 0;
        let kv: KvApi | null = null;
        const crand = new Random(seed, 100 + c);
        while (!stopClients) {
          if (!on || !on.up || on.incarnation !== onIncarnation || crand.nextDouble() < 0.02) {
            const live = liveMembers();
            if (live.length === 0) {
              await sleep(clock, 100);
              continue;
            }
            on = live[crand.nextInt(live.length)]!;
            onIncarnation = on.incarnation;
            kv = on.sim.engine.withSession(on.sim.engine.newSession());
          }
          const level = levels[crand.nextInt(3)]!;
          const key = `c${c}:${seq++}`;
          const value = `v${seed}:${key}`;
          const me = on;
          try {
            await kv!.withConsistency({ write: level }).set(ns, Buffer.from(key), Buffer.from(value));
            if (!me.up || me.incarnation !== onIncarnation) continue; // acknowledged by a member that then crashed: not seen
            acked.push({ key, value, level });
          } catch {
            stats.writesFailed++;
            await sleep(clock, 20);
            continue;
          }
          // Read your writes through the same session, at a random level.
          const rl = levels[crand.nextInt(3)]!;
          try {
            const got = (await kv!.withConsistency({ read: rl }).get(ns, Buffer.from(key)))?.toString() ?? null;
            stats.sessionReads++;
            if (got !== value) violations.push(`t=${clock.nowMs()}: session read of ${key} at ${rl} through ${me.id} returned ${got}, wrote ${value} at ${level}`);
          } catch {
            stats.readsUnavailable++;
          }
          await sleep(clock, 40 + crand.nextInt(80));
        }
      })(),
    );
  }

  /** Every acknowledged write, read at every level that must see it, through a random live member. */
  async function check(label: string): Promise<void> {
    const live = liveMembers();
    if (live.length === 0) return;
    const n = replicas;
    const need = (l: Level) => (l === 'ONE' ? 1 : l === 'ALL' ? n : Math.floor(n / 2) + 1);
    for (const a of acked.slice(-100)) {
      for (const rl of ['QUORUM', 'ALL'] as Level[]) {
        if (need(a.level) + need(rl) <= n) continue;
        const via = live[random.nextInt(live.length)]!;
        if (!via.up) continue;
        try {
          const got = (await via.sim.engine.withConsistency({ read: rl }).get(ns, Buffer.from(a.key)))?.toString() ?? null;
          stats.crossReads++;
          if (got !== a.value) violations.push(`${label}: ${a.key} (written at ${a.level}) read at ${rl} through ${via.id} returned ${got}`);
        } catch {
          stats.readsUnavailable++;
        }
      }
    }
  }

  /**
   * Right when a change settles (before anti-entropy can help): every write acknowledged at
   * QUORUM or ALL has at least that many copies among its slot's current owners. A stream that
   * missed records breaks this even where reads would still find another copy.
   */
  function copies(label: string): void {
    const t = [...members.values()].find((m) => m.up)?.placement.table;
    if (!t) return;
    const n = replicas;
    // Sloppy quorum: a hint held for an owner is its copy in flight (it counts toward W).
    const hinted = new Set<string>();
    for (const m of members.values()) {
      for (const target of m.store.hintTargets()) {
        for (const it of m.store.peekHints(target, 1_000_000).items) hinted.add(`${target}\u0000${it.key.toString()}`);
      }
    }
    for (const a of acked) {
      if (a.level === 'ONE') continue;
      const need = a.level === 'ALL' ? n : Math.floor(n / 2) + 1;
      const key = Buffer.from(a.key);
      const owners = t.owners[keySlot(key)]!;
      const have = owners.filter((id) => members.get(id)?.store.read(ns, [key])[0]?.base?.value.toString() === a.value || hinted.has(`${id}\u0000${a.key}`)).length;
      if (have < need) {
        violations.push(`${label}: ${a.key} (written at ${a.level}) has ${have} copies on its owners ${owners.join(',')}, needs ${need}`);
        return;
      }
    }
  }

  async function settled(label: string, want: (t: NonNullable<Placement['table']>) => boolean): Promise<boolean> {
    const until = clock.nowMs() + changeTimeoutMs;
    let lastCheck = clock.nowMs();
    while (clock.nowMs() < until) {
      const live = [...members.values()].filter((m) => m.up);
      const tables = live.map((m) => m.placement.table);
      if (tables.every((t) => t && !t.change && t.epoch === tables[0]!.epoch && want(t))) {
        copies(`${label} (settled)`);
        return true;
      }
      if (clock.nowMs() - lastCheck >= 1000) {
        lastCheck = clock.nowMs();
        await check(`${label} (in flight)`);
      }
      await sleep(clock, 100);
    }
    violations.push(`${label}: not settled within ${changeTimeoutMs} ms: ${[...members.values()].filter((m) => m.up).map((m) => `${m.id}@${m.placement.epoch}${m.placement.table?.change ? `(${m.placement.table.change.kind} ${m.placement.table.change.stage})` : ''}`).join(' ')}`);
    return false;
  }

  const step = (s: string) => steps.push(`t=${clock.nowMs() - 1_700_000_000_000}: ${s}`);

  const script = async () => {
    for (const id of ['n1', 'n2', 'n3']) start(id, true, 3);
    if (!(await settled('bootstrap', (t) => t.members.length === 3))) return;
    step('formed n1..n3');
    await sleep(clock, 1000);

    // A join while a partition cuts one old member off the joiner for a while.
    const cut = ['n1', 'n2', 'n3'][random.nextInt(3)]!;
    net.partition([cut], ['n4']);
    step(`join n4 with ${cut} | n4 partitioned`);
    start('n4', true);
    await sleep(clock, 1500 + random.nextInt(2000));
    net.heal();
    if (!(await settled('join n4', (t) => t.isMember('n4')))) return;
    await check('after join n4');

    // A member crashed mid-change: leave of a random old member while another restarts.
    const leaver = ['n1', 'n2', 'n3'][random.nextInt(3)]!;
    const crashed = ['n1', 'n2', 'n3', 'n4'].filter((x) => x !== leaver)[random.nextInt(3)]!;
    step(`leave ${leaver}; crash ${crashed} mid-change, restart it`);
    const leaving = members.get(leaver)!;
    leaving.leaving = true;
    void leaving.placement.propose('leave', leaver).catch((err: unknown) => violations.push(`leave ${leaver} refused: ${String(err)}`));
    await sleep(clock, 200 + random.nextInt(800));
    crash(crashed);
    await sleep(clock, 1000 + random.nextInt(2000));
    start(crashed, false);
    if (!(await settled(`leave ${leaver}`, (t) => !t.isMember(leaver)))) return;
    crash(leaver); // it goes
    await check(`after leave ${leaver}`);

    // A wiped disk: crash, new empty store and data id, restart: restored before it is read.
    const wiped = [...members.values()].filter((m) => m.up)[random.nextInt(3)]!.id;
    step(`wipe ${wiped}`);
    crash(wiped);
    await sleep(clock, 500);
    start(wiped, true);
    if (!(await settled(`restore ${wiped}`, () => !members.get(wiped)!.placement.awaitingRestore))) return;
    await check(`after restore ${wiped}`);

    // A member that joins, then dies for good, and is removed.
    step('join n5');
    start('n5', true);
    if (!(await settled('join n5', (t) => t.isMember('n5')))) return;
    crash('n5');
    step('n5 dies; remove it');
    await sleep(clock, 1000);
    const driver = [...members.values()].find((m) => m.up)!;
    await driver.placement.propose('remove', 'n5').catch((err: unknown) => violations.push(`remove n5 refused: ${String(err)}`));
    if (!(await settled('remove n5', (t) => !t.isMember('n5')))) return;
    await check('after remove n5');

    // Two members join at once: both propose from the same table (one epoch, two changes);
    // the smaller proposal is abandoned and made again after the other.
    step('n6 and n7 join at once');
    start('n6', true);
    start('n7', true);
    if (!(await settled('joins of n6 and n7', (t) => t.isMember('n6') && t.isMember('n7')))) return;
    await check('after joins of n6 and n7');
    step('done');
  };

  let scriptDone = false;
  const scriptRun = script().finally(() => (scriptDone = true));
  await clock.runUntilTrue(() => scriptDone, 20 * changeTimeoutMs);
  await scriptRun;
  stopClients = true;
  await clock.runUntilTrue(() => false, 2000);
  let clientsDone = false;
  void Promise.all(clientLoops).then(() => (clientsDone = true));
  await clock.runUntilTrue(() => clientsDone, 30_000);

  // ---- settled and healed: N copies on the owners, byte-equal after anti-entropy, readable at ONE.
  net.heal();
  const live = [...members.values()].filter((m) => m.up);
  const table = live[0]?.placement.table;
  const keys = acked.map((a) => a.key);
  const converged = () => {
    if (!table) return false;
    for (const k of keys) {
      const key = Buffer.from(k);
      const owners = table.owners[keySlot(key)]!;
      let first: string | null = null;
      for (const m of live) {
        const r = m.store.read(ns, [key])[0];
        const has = !!r && (r.base !== null || r.tomb !== null);
        if (has !== owners.includes(m.id)) return false;
        if (has) {
          const h = keyHash(key, r!).join(':');
          if (first === null) first = h;
          else if (h !== first) return false;
        }
      }
    }
    return true;
  };
  let settledAtEnd = false;
  const endBy = clock.nowMs() + 120_000;
  while (clock.nowMs() < endBy) {
    await clock.runUntilTrue(() => false, 1000);
    if (converged()) {
      settledAtEnd = true;
      break;
    }
  }
  if (!settledAtEnd) {
    // Name the first key that is wrong, and how.
    let detail = '';
    for (const k of keys) {
      const key = Buffer.from(k);
      const owners = table!.owners[keySlot(key)]!;
      const where = live.map((m) => {
        const r = m.store.read(ns, [key])[0];
        const has = !!r && (r.base !== null || r.tomb !== null);
        return `${m.id}${owners.includes(m.id) ? '*' : ''}=${has ? keyHash(key, r!).join(':').slice(0, 8) : '-'}`;
      });
      const hashes = new Set(where.filter((w) => w.includes('*=') && !w.endsWith('=-')).map((w) => w.split('=')[1]));
      if (where.some((w) => (w.includes('*=') && w.endsWith('=-')) || (!w.includes('*=') && !w.endsWith('=-'))) || hashes.size > 1) {
        detail = `${k} (slot ${keySlot(key)}, owners ${owners.join(',')}): ${where.join(' ')}`;
        break;
      }
    }
    violations.push(`after healing: some key is not on exactly its N owners, or its replicas differ, 120 s after the end: ${detail}`);
  }
  const sample = acked.filter((_, i) => i % Math.max(1, Math.floor(acked.length / 500)) === 0);
  for (const m of live) {
    for (const a of sample) {
      let got: string | null = null;
      let done = false;
      const p = (async () => {
        try {
          got = (await m.sim.engine.withConsistency({ read: 'ONE' }).get(ns, Buffer.from(a.key)))?.toString() ?? null;
        } catch (err) {
          got = `error: ${String(err)}`;
        }
        done = true;
      })();
      await clock.runUntilTrue(() => done, 10_000);
      await p;
      if (got !== a.value) {
        violations.push(`end: ${a.key} read at ONE through ${m.id} returned ${got}`);
        break;
      }
    }
  }
  for (const m of live) crash(m.id);
  const keysStreamed = [...members.values()].reduce((n, m) => n + m.placement.counters.streamedKeys, 0);
  const keysRepaired = [...members.values()].reduce((n, m) => n + m.ae.counters.keysPulled + m.ae.counters.keysPushed, 0);
  return {
    seed,
    ok: violations.length === 0,
    violations,
    steps,
    writesAcknowledged: acked.length,
    ...stats,
    keysStreamed,
    keysRepairedByAntiEntropy: keysRepaired,
    proposalsLost: [...members.values()].reduce((n, m) => n + m.placement.counters.proposalsLost, 0),
    finalEpoch: table?.epoch ?? 0,
    simulatedMs: clock.nowMs() - 1_700_000_000_000,
    traceDigest: clock.trace.digest(),
    traceTail: clock.trace.dump(40),
  };
}
