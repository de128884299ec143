/**
 * Deterministic simulation of a whole ragkv cluster in one process: N nodes with the real
 * coordinator, replica service and hint replay, over a seeded simulated network (delay,
 * loss, duplication, partitions, crashes and restarts) and a simulated clock. One seed is
 * one run; the same seed replays it exactly (the trace digest proves it).
 *
 * Clients issue writes while faults happen, and record which writes were acknowledged.
 * After healing, the checkers verify:
 *  - no acknowledged append is lost, and none is applied twice (append-only keys);
 *  - no acknowledged SET or HSET is lost: the value read is the last one written, or one
 *    written after it (last-writer-wins keys and fields);
 *  - no acknowledged vector item is lost, none acknowledged deleted is live, and after
 *    compaction no replica keeps the bytes of a deleted item;
 *  - every key's replicas converge to the same record (compacted lists byte for byte).
 * Failure detection is an oracle over the simulated network: membership (SWIM) is
 * simulated on its own; this run checks replication.
 */
import { Random } from '../src/common/random.js';
import { PlacementTable } from '../src/cluster/placement/table.js';
import type { NodeId } from '../src/cluster/transport.js';
import { SimClock, SimNetwork, type SimClockScope } from './sim/index.js';
import type { Engine } from '../src/coordinator/engine.js';
import type { HintReplayer } from '../src/replica/hints.js';
import { offsetClock, startSimMember } from './members.js';
import { sleep } from '../src/common/clock.js';
import { MemoryReplicaStore } from '../src/replica/memory-store.js';
import { LmdbReplicaStore, openReplicaStore } from '../src/replica/lmdb-store.js';
import type { ReplicaStore } from '../src/replica/store.js';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { makeLimits } from '../src/common/limits.js';
import { encodeRecord } from '../src/storage/record-codec.js';
import { type Record, merge } from '../src/storage/record.js';
import { pruneDeletedItems } from '../src/compute/vector-items.js';

export interface ClusterSimOptions {
  nodes?: number;
  replicas?: number;
  clients?: number;
  /** Simulated milliseconds of workload with faults. */
  durationMs?: number;
  keys?: number;
  /**
   * Members whose replica is LMDB on disk (closed at a crash, reopened at the restart, its
   * clock started above its versions), the rest in memory. Default: 2 on every third seed.
   */
  lmdbMembers?: number;
  /** Members' wall clocks off by up to this much, either way (default: within the bound, 0.45 × 'maxClockOffsetMs'). */
  clockOffsetMsMax?: number;
}

export interface ClusterSimReport {
  seed: number;
  ok: boolean;
  violations: string[];
  writesAcknowledged: number;
  writesFailed: number;
  appendsAcknowledged: number;
  /** Vector items whose VADD was acknowledged, and items whose VDEL was. */
  itemsAcknowledged: number;
  itemsDeleted: number;
  faults: string[];
  hintsDelivered: number;
  /** Reads right after a client's own acknowledged write, through the same session (checked). */
  sessionReads: number;
  /** Members on LMDB, and the members' clock offsets (ms). */
  lmdbMembers: string[];
  clockOffsetsMs: { [id: string]: number };
  readRepairs: number;
  /** Simulated ms from heal until every replica agreed. */
  convergeMs: number;
  traceDigest: string;
  /** Last events of the run, printed when it fails. */
  traceTail: string;
}

interface SimNode {
  id: NodeId;
  store: ReplicaStore;
  /** Set while an LMDB store is closed by a crash (null once closed, or for memory stores). */
  closing: Promise<void> | null;
  scope: SimClockScope;
  coordinator: Engine;
  replayer: HintReplayer;
  /** Bumped on crash: operations of an older epoch never count as acknowledged. */
  epoch: number;
  up: boolean;
}

const ns = 'default';

export async function runClusterSim(seed: number, options: ClusterSimOptions = {}): Promise<ClusterSimReport> {
  const nodeCount = options.nodes ?? 5;
  const replicas = options.replicas ?? 3;
  const clients = options.clients ?? 6;
  const durationMs = options.durationMs ?? 20_000;
  const keyCount = options.keys ?? 12;
  const clock = new SimClock({ startMs: 1_700_000_000_000 });
  const net = new SimNetwork(clock, new Random(seed, 1), { delayMsMin: 1, delayMsMax: 15, lossRate: 0.01, duplicateRate: 0.01 });
  const limits = makeLimits();
  const ids = Array.from({ length: nodeCount }, (_, i) => `n${i + 1}`);
  const ring = PlacementTable.initial(ids.map((id) => ({ id })), replicas, ids[0]!);
  const nodes = new Map<NodeId, SimNode>();
  const requestTimeoutMs = 300;

  // Clock offsets within the bound (pairwise at most 2 × clockOffsetMsMax) and LMDB members, from the seed.
  const offsetMax = options.clockOffsetMsMax ?? Math.floor(limits.maxClockOffsetMs * 0.45);
  const drawn = new Random(seed, 9);
  const offsets = new Map(ids.map((id) => [id, Math.round((drawn.nextDouble() * 2 - 1) * offsetMax)]));
  const offsetValues = [...offsets.values()];
  const clockSpreadMs = Math.max(...offsetValues) - Math.min(...offsetValues);
  const lmdbIds = new Set(ids.slice(0, options.lmdbMembers ?? (seed % 3 === 0 ? 2 : 0)));
  const diskRandom = new Random(seed, 11);
  /** A slow disk: how late the next local write lands (simulated ms). */
  const slowDisk = () => (diskRandom.nextInt(4) === 0 ? diskRandom.intBetween(1, 20) : 0);
  const diskDir = lmdbIds.size > 0 ? mkdtempSync(path.join(tmpdir(), `ragkv-sim-${seed}-`)) : null;
  const openDisk = (id: NodeId) => openReplicaStore({ path: path.join(diskDir!, id), limits, durability: 'none', syncCommits: true });

  const boot = (id: NodeId, store: ReplicaStore, transport = net.transport(id)): SimNode => {
    const scope = clock.scope();
    const life = (nodes.get(id)?.epoch ?? 0) + 1;
    const member = startSimMember({
      id,
      ring,
      net,
      transport,
      clock: offsetClock(scope, offsets.get(id)!),
      // What this process writes lands only while it lives (a crashed process keeps no hint),
      // and its disk is slow now and then: a write lands 0-20 ms late, after the network's.
      store: untilCrash(store, () => nodes.get(id)?.epoch === life && nodes.get(id)!.up, (ms) => sleep(scope, ms), slowDisk),
      limits,
      seed,
      requestTimeoutMs,
      readRepairChance: 0.2,
      ...(store instanceof LmdbReplicaStore ? { highTs: store.highTs } : {}),
    });
    const coordinator = member.engine;
    const replayer = member.hints;
    // Compaction runs in the background, as on a real node (stopped by a crash with its timers).
    const pruneTick = () => {
      void store.pruneQueued(16);
      scope.setTimer(100, pruneTick);
    };
    scope.setTimer(100, pruneTick);
    const node: SimNode = { id, store, closing: null, scope, coordinator, replayer, epoch: life, up: true };
    nodes.set(id, node);
    return node;
  };
  for (const id of ids) boot(id, lmdbIds.has(id) ? openDisk(id) : new MemoryReplicaStore());

  const faults: string[] = [];
  /** When each member crashed (simulated ms). */
  const crashTimes = new Map<NodeId, number[]>();
  const crash = (id: NodeId) => {
    const n = nodes.get(id)!;
    if (!n.up) return;
    n.up = false;
    n.epoch++;
    n.replayer.stop();
    n.scope.cancelAll();
    net.crash(id);
    crashTimes.set(id, [...(crashTimes.get(id) ?? []), clock.nowMs()]);
    // A process dies with its disk intact: the LMDB store is closed, reopened at the restart.
    if (n.store instanceof LmdbReplicaStore) {
      const closing: Promise<void> = n.store.close().then(() => {
        if (n.closing === closing) n.closing = null;
      });
      n.closing = closing;
    }
    faults.push(`${clock.nowMs() - start}ms crash ${id}`);
  };
  const restart = (id: NodeId) => {
    const n = nodes.get(id)!;
    if (n.up) return;
    // Commits are synchronous here, so a close started at the crash has finished (microtasks
    // drain between timers); reopening the same files is what a restarted process does.
    assert(n.closing === null, `${id}: LMDB store still closing at its restart`);
    boot(id, n.store instanceof LmdbReplicaStore ? openDisk(id) : n.store, net.restart(id));
    faults.push(`${clock.nowMs() - start}ms restart ${id}`);
  };

  // ---- what clients did
  const appendKeys = Array.from({ length: keyCount }, (_, i) => Buffer.from(`log:${i}`));
  const setKeys = Array.from({ length: keyCount }, (_, i) => Buffer.from(`reg:${i}`));
  const hashKey = Buffer.from('doc');
  const vecKeys = Array.from({ length: Math.max(2, keyCount >> 2) }, (_, i) => Buffer.from(`vec:${i}`));
  /** Per vector list: item ids whose VADD was acknowledged, and ids a VDEL was issued for (acked or not). */
  const ackedItems = new Map<string, string[]>();
  const deleteIssued = new Set<string>();
  const deleteAcked = new Set<string>();
  /** Replacements (VADD of a live id) not yet settled, per item; a VDEL issued meanwhile races them. */
  const replacing = new Map<string, number>();
  const racy = new Set<string>();
  let itemsAcked = 0;
  const ackedAppends = new Map<string, Set<string>>();
  /** Who acknowledged each append, and when. */
  const appendCoordinator = new Map<string, { node: NodeId; atMs: number }>();
  /** Per register (SET key or hash field): every write in issue order, with its ack. */
  const registerWrites = new Map<string, { value: string; issuedAt: number; acked: boolean; doneAt: number }[]>();
  let acked = 0;
  let failed = 0;
  let appendsAcked = 0;
  let opSeq = 0;
  const start = clock.nowMs();
  const end = start + durationMs;

  /** Per client, member and member life: the session-bound engine (a connection). */
  const sessions = new Map<string, Engine>();
  const sessionViolations: string[] = [];
  let sessionReads = 0;

  const pickCoordinator = (r: Random): SimNode | null => {
    const up = ids.filter((id) => nodes.get(id)!.up);
    if (up.length === 0) return null;
    return nodes.get(up[r.nextInt(up.length)]!)!;
  };

  const client = async (c: number) => {
    const r = new Random(seed, 1000 + c);
    while (clock.nowMs() < end) {
      await new Promise<void>((resolve) => clock.setTimer(r.intBetween(1, 40), resolve));
      const node = pickCoordinator(r);
      if (!node) continue;
      const epoch = node.epoch;
      // Each client keeps one session (a connection) per member and life of that member.
      const sessionKey = `${c}/${node.id}/${epoch}`;
      let kv = sessions.get(sessionKey);
      if (!kv) sessions.set(sessionKey, (kv = node.coordinator.withSession(node.coordinator.newSession())));
      const op = r.nextInt(12);
      const seq = ++opSeq;
      let pending: { doneAt: number } | null = null;
      try {
        if (op < 5) {
          const key = appendKeys[r.nextInt(appendKeys.length)]!;
          const token = `<${c}.${seq}>`;
          await kv.append(ns, key, Buffer.from(token));
          if (node.epoch !== epoch) continue;
          const set = ackedAppends.get(key.toString()) ?? new Set<string>();
          set.add(token);
          appendCoordinator.set(token, { node: node.id, atMs: clock.nowMs() });
          ackedAppends.set(key.toString(), set);
          appendsAcked++;
        } else if (op < 8) {
          const key = setKeys[r.nextInt(setKeys.length)]!;
          const value = `v${c}.${seq}`;
          const w = { value, issuedAt: clock.nowMs(), acked: false, doneAt: Infinity };
          const list = registerWrites.get(`set:${key}`) ?? [];
          list.push(w);
          pending = w;
          registerWrites.set(`set:${key}`, list);
          await kv.set(ns, key, Buffer.from(value));
          if (node.epoch === epoch) w.acked = true;
          w.doneAt = clock.nowMs();
          if (w.acked && r.nextInt(2) === 0) {
            // Read your writes: the same session reads the key back at once. It may fail
            // (too few replicas), but it must not answer older than this write.
            pending = null;
            const got = (await kv.get(ns, key))?.toString() ?? null;
            if (node.epoch === epoch) {
              sessionReads++;
              const mine = list.indexOf(w);
              const allowed = new Set(list.filter((x, i) => i >= mine || x.doneAt >= w.issuedAt - clockSpreadMs).map((x) => x.value));
              if (got === null || !allowed.has(got)) sessionViolations.push(`${key}: client ${c} read ${got} through ${node.id} right after its acknowledged write ${value} (read-your-writes)`);
            }
          }
        } else if (op >= 10) {
          const key = vecKeys[r.nextInt(vecKeys.length)]!;
          const acked = ackedItems.get(key.toString()) ?? [];
          if (op === 11 && acked.length > 0) {
            // Delete one or two items this run saw acknowledged.
            const doomed = [...new Set([acked[r.nextInt(acked.length)]!, acked[r.nextInt(acked.length)]!])];
            for (const id of doomed) {
              deleteIssued.add(`${key}/${id}`);
              if ((replacing.get(`${key}/${id}`) ?? 0) > 0) racy.add(`${key}/${id}`);
            }
            await kv.vdel(ns, key, doomed.map((id) => Buffer.from(id)));
            if (node.epoch === epoch) for (const id of doomed) deleteAcked.add(`${key}/${id}`);
          } else {
            const items = Array.from({ length: 1 + r.nextInt(3) }, (_, j) => ({ id: Buffer.from(`i${c}.${seq}.${j}`), vector: [r.nextInt(256), r.nextInt(256)] }));
            // Now and then replace an item (a new vector for an id that is live and not being deleted).
            const keep = acked.filter((id) => !deleteIssued.has(`${key}/${id}`));
            let replaced: string | null = null;
            if (keep.length > 0 && r.nextInt(3) === 0) {
              replaced = `${key}/${keep[r.nextInt(keep.length)]!}`;
              items.push({ id: Buffer.from(replaced.slice(key.length + 1)), vector: [r.nextInt(256), r.nextInt(256)] });
              replacing.set(replaced, (replacing.get(replaced) ?? 0) + 1);
            }
            try {
              await kv.vadd(ns, key, { type: 'uint8', dim: 2, items });
            } finally {
              // Settled either way (a failed replacement got its version before it failed).
              if (replaced) replacing.set(replaced, replacing.get(replaced)! - 1);
            }
            if (node.epoch !== epoch) continue;
            for (const it of items) if (!acked.includes(it.id.toString())) acked.push(it.id.toString());
            ackedItems.set(key.toString(), acked);
            itemsAcked += items.length;
          }
        } else {
          const field = `f${r.nextInt(4)}`;
          const value = `h${c}.${seq}`;
          const w = { value, issuedAt: clock.nowMs(), acked: false, doneAt: Infinity };
          const list = registerWrites.get(`hash:${field}`) ?? [];
          list.push(w);
          pending = w;
          registerWrites.set(`hash:${field}`, list);
          await kv.hset(ns, hashKey, [{ key: Buffer.from(field), value: Buffer.from(value) }]);
          if (node.epoch === epoch) w.acked = true;
          w.doneAt = clock.nowMs();
        }
        if (node.epoch === epoch) acked++;
      } catch {
        failed++;
        // A failed register write may still have landed: it counts as concurrent until now.
        if (pending) pending.doneAt = clock.nowMs();
      }
    }
  };

  // ---- faults, drawn from the seed
  const faultLoop = async () => {
    const r = new Random(seed, 7);
    while (clock.nowMs() < end - 2000) {
      await new Promise<void>((resolve) => clock.setTimer(r.intBetween(500, 2500), resolve));
      const kind = r.nextInt(5);
      const victim = ids[r.nextInt(ids.length)]!;
      if (kind === 0) crash(victim);
      else if (kind === 1) restart(victim);
      else if (kind === 2) {
        const shuffled = [...ids].sort(() => r.nextDouble() - 0.5);
        const cut = r.intBetween(1, ids.length - 1);
        net.partition(shuffled.slice(0, cut), shuffled.slice(cut));
        faults.push(`${clock.nowMs() - start}ms partition ${shuffled.slice(0, cut)} | ${shuffled.slice(cut)}`);
      } else if (kind === 3) {
        net.heal();
        faults.push(`${clock.nowMs() - start}ms heal`);
      } else {
        net.configure({ lossRate: r.nextDouble() * 0.1 });
      }
    }
  };

  const running = [faultLoop(), ...Array.from({ length: clients }, (_, c) => client(c))];
  let done = false;
  void Promise.all(running).then(() => (done = true));
  await clock.runUntilTrue(() => done, durationMs + 10_000);

  // ---- heal everything, then let hints replay and read repair finish
  net.heal();
  net.configure({ lossRate: 0, duplicateRate: 0 });
  for (const id of ids) restart(id);
  const healedAt = clock.nowMs();
  const violations: string[] = [...sessionViolations];
  // Requests still in flight settle first (their failures create hints), then every node
  // empties its hint store.
  await clock.runFor(1000);
  await clock.runUntilTrue(() => ids.every((id) => nodes.get(id)!.store.hintCount() === 0), 30_000);
  for (const id of ids) if (nodes.get(id)!.store.hintCount() > 0) violations.push(`${id} still holds ${nodes.get(id)!.store.hintCount()} hints after healing`);
  // Hinted handoff alone must have brought every replica every acknowledged append: checked
  // before any read, since a read at ALL would repair what hints failed to deliver.
  for (const key of appendKeys) {
    for (const id of ring.replicasFor(ns, key)) {
      const r = nodes.get(id)!.store.read(ns, [key])[0];
      const tokens = new Set<string>();
      for (const seg of r?.appends ?? []) tokens.add(seg.bytes.toString());
      for (const t of ackedAppends.get(key.toString()) ?? []) {
        // A coordinator that crashed while a replica's copy was still in flight (after the
        // acknowledgement) could not keep a hint for it: that copy comes from the read repair
        // below (and, later, anti-entropy), not from hints. Any other missing copy is a bug.
        const by = appendCoordinator.get(t)!;
        const crashedInFlight = (crashTimes.get(by.node) ?? []).some((at) => at >= by.atMs && at <= by.atMs + requestTimeoutMs);
        if (crashedInFlight) continue;
        if (!tokens.has(t)) violations.push(`${key}: acknowledged append ${t} never reached replica ${id} (hints drained)`);
      }
    }
  }
  // Then one read at ALL of every key repairs replicas that missed writes without a hint
  // (a coordinator that crashed before it could store one).
  const reader = nodes.get(ids[0]!)!.coordinator.withConsistency({ read: 'ALL' });
  const allKeys = [...appendKeys, ...setKeys, hashKey, ...vecKeys];
  const finalItems = new Map<string, Set<string>>();
  const finalValues = new Map<string, Buffer | null>();
  let readsDone = false;
  void (async () => {
    for (const k of allKeys) finalValues.set(k.toString(), await reader.get(ns, k));
    for (let f = 0; f < 4; f++) finalValues.set(`hash:f${f}`, await reader.hget(ns, hashKey, Buffer.from(`f${f}`)));
    for (const k of vecKeys) finalItems.set(k.toString(), new Set((await reader.vrange(ns, k, 0, -1)).map((it) => it.id.toString())));
    readsDone = true;
  })().catch((err: unknown) => {
    violations.push(`final read failed: ${err instanceof Error ? err.message : String(err)}`);
    readsDone = true;
  });
  await clock.runUntilTrue(() => readsDone, 30_000);
  const converged = () => allKeys.every((k) => replicasAgree(ring, nodes, k));
  await clock.runUntilTrue(converged, 30_000);
  const convergeMs = clock.nowMs() - healedAt;

  // ---- checkers
  for (const k of allKeys) if (!replicasAgree(ring, nodes, k)) violations.push(`replicas of ${k} differ after healing`);
  for (const key of appendKeys) {
    const value = finalValues.get(key.toString())?.toString() ?? '';
    const tokens = value.match(/<\d+\.\d+>/g) ?? [];
    if (new Set(tokens).size !== tokens.length) violations.push(`${key}: an append was applied twice`);
    const present = new Set(tokens);
    for (const t of ackedAppends.get(key.toString()) ?? []) {
      if (!present.has(t)) violations.push(`${key}: acknowledged append ${t} lost`);
    }
  }
  for (const key of vecKeys) {
    const live = finalItems.get(key.toString()) ?? new Set<string>();
    for (const id of ackedItems.get(key.toString()) ?? []) {
      const name = `${key}/${id}`;
      if (!deleteIssued.has(name) && !live.has(id)) violations.push(`${key}: acknowledged item ${id} lost`);
      if (deleteAcked.has(name) && !racy.has(name) && live.has(id)) violations.push(`${key}: item ${id} is live after an acknowledged delete`);
    }
    // Compaction ran everywhere: no replica keeps the bytes of a deleted item.
    for (const id of ring.replicasFor(ns, key)) {
      const r = nodes.get(id)!.store.read(ns, [key])[0];
      const left = r ? pruneDeletedItems(r.appends.map((s) => s.bytes)).filter((b) => b !== null).length : 0;
      if (left > 0) violations.push(`${key}: replica ${id} still holds deleted items in ${left} segments after compaction`);
    }
  }
  for (const [register, writes] of registerWrites) {
    const colon = register.indexOf(':');
    const kind = register.slice(0, colon);
    const name = register.slice(colon + 1);
    const got = (kind === 'set' ? finalValues.get(name) : finalValues.get(`hash:${name}`))?.toString() ?? null;
    const lastAcked = writes.reduce((acc, w, i) => (w.acked ? i : acc), -1);
    if (lastAcked < 0) continue;
    // LWW: the survivor is the last acknowledged write, one issued after it, or one concurrent
    // with it (not finished before it was issued, ties in the same ms included): concurrent
    // writes are ordered by their versions, not by when the clients sent them. Members' clocks
    // are up to `clockSpreadMs` apart, so writes closer together than that count as concurrent
    // (README: writes further apart than the clocks keep their order).
    const last = writes[lastAcked]!;
    const allowed = new Set(writes.filter((w, i) => i >= lastAcked || w.doneAt >= last.issuedAt - clockSpreadMs).map((w) => w.value));
    if (got === null || !allowed.has(got)) {
      violations.push(`${register}: read ${got}, but acknowledged ${writes[lastAcked]!.value} (or a later or concurrent write) must survive`);
    }
  }

  let hintsDelivered = 0;
  let readRepairs = 0;
  for (const n of nodes.values()) {
    hintsDelivered += n.replayer.delivered;
    readRepairs += n.coordinator.counters.readRepairs;
    n.replayer.stop();
    n.scope.cancelAll();
    if (n.store instanceof LmdbReplicaStore) await n.store.close();
  }
  if (diskDir) rmSync(diskDir, { recursive: true, force: true });
  return {
    seed,
    ok: violations.length === 0,
    violations,
    writesAcknowledged: acked,
    writesFailed: failed,
    appendsAcknowledged: appendsAcked,
    itemsAcknowledged: itemsAcked,
    itemsDeleted: deleteAcked.size,
    faults,
    hintsDelivered,
    sessionReads,
    lmdbMembers: [...lmdbIds],
    clockOffsetsMs: Object.fromEntries(offsets),
    readRepairs,
    convergeMs,
    traceDigest: clock.trace.digest(),
    traceTail: clock.trace.dump(60),
  };
}

const writeMethods = new Set(['apply', 'update', 'addHints', 'removeHints', 'queuePrune', 'pruneQueued']);

/**
 * The store as one process life sees it: a write lands `delay()` ms late (a slow disk; reads
 * see it only then), and fails once that life has ended (a crash).
 */
function untilCrash(store: ReplicaStore, alive: () => boolean, wait: (ms: number) => Promise<void>, delay: () => number): ReplicaStore {
  const dead = () => Promise.reject(new Error('the process crashed: nothing it writes lands'));
  return new Proxy(store, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function') return v;
      const fn = v as (...a: unknown[]) => unknown;
      if (!writeMethods.has(String(prop))) return fn.bind(target);
      return (...args: unknown[]) => {
        if (!alive()) return dead();
        const ms = prop === 'apply' || prop === 'update' ? delay() : 0;
        if (ms === 0) return fn.apply(target, args);
        return wait(ms).then(() => (alive() ? fn.apply(target, args) : dead()));
      };
    },
  });
}

function replicasAgree(ring: PlacementTable, nodes: Map<NodeId, SimNode>, key: Buffer): boolean {
  let first: Buffer | null = null;
  for (const id of ring.replicasFor(ns, key)) {
    const r: Record | null = nodes.get(id)!.store.read(ns, [key])[0]!;
    const bytes = r ? canonical(r) : Buffer.alloc(0);
    if (first === null) first = bytes;
    else if (!first.equals(bytes)) return false;
  }
  return true;
}

function canonical(r: Record): Buffer {
  const m = merge(r, { tomb: null, base: null, appends: [], fields: new Map(), expiry: null });
  return encodeRecord({ ...m, fields: new Map([...m.fields].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) });
}
