/**
 * The four things the contract suite runs against, behind one interface:
 *
 *  (a) a single node on LMDB (`openLocalKv`);
 *  (b) a one-member cluster on LMDB (the cluster path: a member's view, not the solo one),
 *      closed and reopened at every `step()`, with its wall clock set back a minute each time;
 *  (c) three members in the deterministic simulator (memory replicas, N=3);
 *  (d) three real member processes, through the clients users have: RESP (ioredis) on one
 *      connection, and gRPC for the calls RESP has no command for (range, range delete,
 *      batch append, batch put with a ttl).
 *
 * Each exposes the KvApi as promises, `advance(ms)` to let time pass, and how to read an
 * error's code: in process the exact KvError code, over a wire its class (a RESP prefix or a
 * gRPC status says no more), which `rejectsWith` compares.
 */
import { Redis } from 'ioredis';
import { makeLimits, type Limits } from '../../src/common/limits.js';
import { KvError, type ErrorCode } from '../../src/common/errors.js';
import { Random } from '../../src/common/random.js';
import { PlacementTable } from '../../src/cluster/placement/table.js';
import { murmur3 } from '../../src/cluster/hash.js';
import { createRawKvClient, type RawKvClient } from '../../src/client/grpc.js';
import { Engine, type KvApi, type KvPair, type VectorItem, nodeClock, openLocalKv } from '../../src/coordinator/index.js';
import { openReplicaStore, type LmdbReplicaStore } from '../../src/replica/lmdb-store.js';
import { MemoryReplicaStore } from '../../src/replica/memory-store.js';
import { SimClock, SimNetwork } from '../../testing/sim/index.js';
import { startSimMember } from '../../testing/members.js';
import { ProcessCluster } from '../helpers/cluster.js';
import { tempDir } from '../helpers/tmp.js';

type Asyncify<F> = F extends (...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : never;

/** The KvApi as promises (reads may answer synchronously in process), less what is not a command. */
export type AsyncKv = { [K in Exclude<keyof KvApi, 'withConsistency' | 'newSession' | 'withSession' | 'readValue' | 'scan'>]: Asyncify<KvApi[K]> };

export interface ContractTarget {
  name: string;
  kv: AsyncKv;
  /** Every live key of a namespace matching a glob, by scanning page after page. */
  scanAll(ns: string, match: string, count: number): Promise<string[]>;
  /** Lets `ms` of (the target's) time pass. */
  advance(ms: number): Promise<void>;
  /** The current time as the target's clock has it (for absolute expiry times). */
  nowMs(): number;
  /** Between steps of a case: target (b) restarts here. */
  step(): Promise<void>;
  /** The error's code when the target knows it exactly; its class otherwise. */
  errorClass(err: unknown): string;
  exactCodes: boolean;
  close(): Promise<void>;
}

/** The limits every target runs with (small, so that the limit cases are cheap). */
export const contractLimits: Partial<Limits> = {
  keyBytesMax: 64,
  valueBytesMax: 16 * 1024,
  // A little above the value limit, as by default: an over-long value meets 'valueBytesMax'.
  respBulkBytesMax: 17 * 1024,
  fieldBytesMax: 32,
  batchKeysMax: 64,
  scanLimitMax: 500,
  namespacesMax: 8,
};

/** What a code tells a client over a wire: its class. */
export function classOf(code: ErrorCode | string): string {
  switch (code) {
    case 'WRONG_TYPE':
      return 'wrong type';
    case 'OVERLOADED':
    case 'UNAVAILABLE':
    case 'QUORUM_NOT_MET':
      return 'retry';
    case 'CLOCK_SKEW':
      return 'clock';
    case 'DISK_FULL':
      return 'disk full';
    default:
      return 'refused';
  }
}

const inProcessErrors = {
  errorClass: (err: unknown) => (err instanceof KvError ? err.code : `not a KvError: ${String(err)}`),
  exactCodes: true,
};

/** A manual clock: time moves only when the case says so. */
function manualClock(startMs = 1_700_000_000_000) {
  let now = startMs;
  return { nowMs: () => now, set: (ms: number) => (now = ms), advance: (ms: number) => (now += ms) };
}

/** Wraps a KvApi (reads may answer synchronously) as promises, through `run`. */
function asyncKv(kv: () => KvApi, run: <T>(v: T | Promise<T>) => Promise<T>): AsyncKv {
  return new Proxy({} as AsyncKv, {
    get(_t, prop: string) {
      return (...args: unknown[]) => {
        const target = kv();
        const fn = (target as unknown as { [k: string]: (...a: unknown[]) => unknown })[prop]!;
        try {
          return run(fn.apply(target, args));
        } catch (err) {
          return Promise.reject(err);
        }
      };
    },
  });
}

/** Every key a scan returns, page after page until its cursor comes back empty. */
async function scanPages(kv: () => KvApi, ns: string, match: string, count: number, run: <T>(v: T | Promise<T>) => Promise<T>): Promise<string[]> {
  const seen: string[] = [];
  let cursor: Buffer | null = null;
  do {
    const page: { keys: Buffer[]; next: Buffer | null } = await run(kv().scan(ns, { cursor, count, match: Buffer.from(match) }));
    seen.push(...page.keys.map(String));
    cursor = page.next;
  } while (cursor);
  return seen;
}

const direct = <T>(v: T | Promise<T>): Promise<T> => Promise.resolve(v);

/** (a) A single node on LMDB. */
export async function singleNode(): Promise<ContractTarget> {
  const dir = tempDir('ragkv-contract-a-');
  const clock = manualClock();
  const opened = await openLocalKv({ path: dir.path, durability: 'none', clock, limits: contractLimits });
  const kv = asyncKv(() => opened.kv, direct);
  return {
    name: 'single node (LMDB)',
    kv,
    scanAll: (ns, match, count) => scanPages(() => opened.kv, ns, match, count, direct),
    advance: async (ms) => void clock.advance(ms),
    nowMs: () => clock.nowMs(),
    step: async () => {},
    ...inProcessErrors,
    close: async () => {
      await opened.close();
      dir.cleanup();
    },
  };
}

/**
 * (b) A cluster of one member on LMDB: the engine sees a cluster view (not the solo one),
 * and is closed and reopened at every step with its clock set back a minute, so every step
 * also checks that what was acknowledged survived a restart and that versions stamped after
 * it win.
 */
export async function restartedMember(): Promise<ContractTarget> {
  const dir = tempDir('ragkv-contract-b-');
  const clock = manualClock();
  const limits = makeLimits(contractLimits);
  const self = 'm1';
  const ring = PlacementTable.initial([{ id: self }], 1, self);
  let store: LmdbReplicaStore;
  let engine: Engine;
  const open = () => {
    store = openReplicaStore({ path: dir.path, limits, durability: 'none' });
    const hlc = nodeClock(store, clock, murmur3(Buffer.from(self)), limits);
    engine = new Engine({
      self,
      view: {
        epoch: 0,
        solo: false,
        replicasFor: (ns, key) => ring.replicasFor(ns, key),
        writeTargets: (ns, key) => ({ all: ring.replicasFor(ns, key), sets: null }),
        walkFrom: (ns, key) => ring.walkFrom(ns, key),
        isAlive: (id) => id === self,
        aliveMembers: () => [self],
      },
      transport: null,
      clock,
      random: new Random(7),
      store,
      limits,
      hlc,
    });
  };
  open();
  const kv = asyncKv(() => engine, direct);
  return {
    name: 'one-member cluster (LMDB), restarted between steps',
    kv,
    scanAll: (ns, match, count) => scanPages(() => engine, ns, match, count, direct),
    advance: async (ms) => void clock.advance(ms),
    nowMs: () => clock.nowMs(),
    step: async () => {
      await store!.close();
      clock.advance(-60_000); // the clock went back a minute over the restart
      open();
    },
    ...inProcessErrors,
    close: async () => {
      await store!.close();
      dir.cleanup();
    },
  };
}

/** (c) Three members in the simulator, N=3, the client on member n1. */
export async function simulatedCluster(seed = 11): Promise<ContractTarget> {
  const clock = new SimClock({ startMs: 1_700_000_000_000 });
  const net = new SimNetwork(clock, new Random(seed), { delayMsMin: 1, delayMsMax: 4, lossRate: 0, duplicateRate: 0 });
  const ids = ['n1', 'n2', 'n3'];
  const ring = PlacementTable.initial(ids.map((id) => ({ id })), 3, ids[0]!);
  const limits = makeLimits(contractLimits);
  const members = ids.map((id) => startSimMember({ id, ring, net, transport: net.transport(id), clock, store: new MemoryReplicaStore(limits.hintsMax, undefined, limits.namespacesMax), limits, seed }));
  const engine = members[0]!.engine.withSession(members[0]!.engine.newSession()) as Engine;
  const run = async <T>(v: T | Promise<T>): Promise<T> => {
    if (!(v instanceof Promise)) return v;
    let out: { v?: T; e?: unknown; done: boolean } = { done: false };
    v.then((x) => (out = { v: x, done: true }), (e) => (out = { e, done: true }));
    await clock.runUntilTrue(() => out.done, 60_000);
    if (!out.done) throw new Error('operation did not settle in simulated time');
    if (out.e !== undefined) throw out.e;
    return out.v as T;
  };
  const kv = asyncKv(() => engine, run);
  return {
    name: 'three members in the simulator',
    kv,
    scanAll: (ns, match, count) => scanPages(() => engine, ns, match, count, run),
    advance: (ms) => clock.runFor(ms).then(() => undefined),
    nowMs: () => clock.nowMs(),
    step: async () => {},
    ...inProcessErrors,
    close: async () => {
      for (const m of members) m.hints.stop();
    },
  };
}

/** The RESP database of a namespace the suite uses ('default', 'db1', 'db2', ...). */
function dbOf(ns: string): number {
  if (ns === 'default') return 0;
  const m = /^db(\d+)$/.exec(ns);
  if (!m) throw new Error(`the contract suite names namespaces default, db1, db2, ... (got '${ns}')`);
  return Number(m[1]);
}

/** The class of an error a RESP or gRPC client got. */
function wireErrorClass(err: unknown): string {
  const e = err as { message?: string; code?: number };
  if (typeof e?.code === 'number') {
    // gRPC status
    return e.code === 9 ? 'wrong type' : e.code === 14 ? 'retry' : e.code === 8 ? 'retry' : 'refused';
  }
  const m = /^(?:ReplyError: )?([A-Z]+) /.exec(String(e?.message ?? err));
  switch (m?.[1]) {
    case 'WRONGTYPE':
      return 'wrong type';
    case 'TRYAGAIN':
      return 'retry';
    case 'CLOCKSKEW':
      return 'clock';
    case 'DISKFULL':
      return 'disk full';
    default:
      return 'refused';
  }
}

const f32 = (v: ArrayLike<number>) => Buffer.from(Float32Array.from(v).buffer);
const u8 = (v: ArrayLike<number>) => Buffer.from(Uint8Array.from(v));

/** (d) Three real member processes, through ioredis (one connection per database) and the gRPC client. */
export async function memberProcesses(): Promise<ContractTarget> {
  const flags = Object.entries(contractLimits).flatMap(([k, v]) => [`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`, String(v)]);
  const c = await ProcessCluster.start({ hosts: ['127.0.0.81', '127.0.0.82', '127.0.0.83'], extraArgs: flags });
  const host = c.host(0);
  const dbs = new Map<number, Redis>();
  const redis = async (ns: string): Promise<Redis> => {
    const db = dbOf(ns);
    let r = dbs.get(db);
    if (!r) {
      r = new Redis({ host, port: c.member(0).ports.resp, db, lazyConnect: true, maxRetriesPerRequest: 0 });
      await r.connect();
      dbs.set(db, r);
    }
    return r;
  };
  const grpc: RawKvClient = createRawKvClient(`${host}:${c.member(0).ports.grpc}`);
  const call = async (ns: string, ...args: (string | Buffer | number)[]) => (await redis(ns)).callBuffer(String(args[0]), ...args.slice(1).map((a) => (typeof a === 'number' ? String(a) : a)));
  const bufOrNull = (v: unknown) => (v === null ? null : Buffer.from(v as Buffer));
  const kv: AsyncKv = {
    get: async (ns, key) => bufOrNull(await call(ns, 'GET', key)),
    getMany: async (ns, keys) => ((await call(ns, 'MGET', ...keys)) as (Buffer | null)[]).map(bufOrNull),
    getRange: async (ns, key, start, end) => (await call(ns, 'GETRANGE', key, start, end)) as Buffer,
    strlen: async (ns, key) => Number(await call(ns, 'STRLEN', key)),
    exists: async (ns, key) => Number(await call(ns, 'EXISTS', key)) === 1,
    set: async (ns, key, value, o = {}) => {
      const args: (string | Buffer | number)[] = ['SET', key, value];
      if (o.ttlMs !== undefined) args.push('PX', o.ttlMs);
      if (o.expireAtMs !== undefined) args.push('PXAT', o.expireAtMs);
      if (o.keepTtl) args.push('KEEPTTL');
      if (o.condition) args.push(o.condition);
      if (o.returnOld) args.push('GET');
      const reply = await call(ns, ...args);
      if (o.returnOld) return { written: true, old: bufOrNull(reply) };
      return { written: reply !== null };
    },
    setMany: async (ns, pairs, o = {}) => {
      if (o.ttlMs) await grpc.rawBatchPut({ cf: ns, pairs, ttl_ms: o.ttlMs });
      else await call(ns, 'MSET', ...pairs.flatMap((p) => [p.key, p.value]));
    },
    append: async (ns, key, bytes) => Number(await call(ns, 'APPEND', key, bytes)),
    appendMany: async (ns, pairs) => (await grpc.rawBatchAppend({ cf: ns, pairs })).new_sizes.map(Number),
    del: async (ns, keys) => Number(await call(ns, 'DEL', ...keys)),
    deleteRange: async (ns, start, end) => Number((await grpc.rawDeleteRange({ cf: ns, start_key: start, end_key: end })).deleted),
    expireAt: async (ns, key, atMs, condition) =>
      Number(atMs === null ? await call(ns, 'PERSIST', key) : await call(ns, 'PEXPIREAT', key, atMs, ...(condition ? [condition] : []))) === 1,
    ttlMs: async (ns, key) => Number(await call(ns, 'PTTL', key)),
    hset: async (ns, key, fields) => Number(await call(ns, 'HSET', key, ...fields.flatMap((f) => [f.key, f.value]))),
    hget: async (ns, key, field) => bufOrNull(await call(ns, 'HGET', key, field)),
    hmget: async (ns, key, fields) => ((await call(ns, 'HMGET', key, ...fields)) as (Buffer | null)[]).map(bufOrNull),
    hgetall: async (ns, key) => {
      const flat = (await call(ns, 'HGETALL', key)) as Buffer[];
      const out: KvPair[] = [];
      for (let i = 0; i < flat.length; i += 2) out.push({ key: flat[i]!, value: flat[i + 1]! });
      return out;
    },
    hdel: async (ns, key, fields) => Number(await call(ns, 'HDEL', key, ...fields)),
    hlen: async (ns, key) => Number(await call(ns, 'HLEN', key)),
    hexists: async (ns, key, field) => Number(await call(ns, 'HEXISTS', key, field)) === 1,
    hmgetMany: async (ns, keys, fields) => ((await call(ns, 'MHMGET', keys.length, ...keys, ...fields)) as (Buffer | null)[][]).map((row) => row.map(bufOrNull)),
    range: async (ns, o) => {
      const r = await grpc.rawScan({ cf: ns, start_key: o.start ?? Buffer.alloc(0), end_key: o.end ?? Buffer.alloc(0), limit: o.limit, key_only: o.keyOnly ?? false, reverse: o.reverse ?? false });
      return r.kvs.map((p) => ({ key: p.key, value: p.value }));
    },
    dbsize: async (ns) => Number(await call(ns, 'DBSIZE')),
    vadd: async (ns, key, batch) => {
      const blob = (v: ArrayLike<number>) => (batch.type === 'float32' ? f32(v) : batch.type === 'uint8' ? u8(v) : Buffer.from(Int8Array.from(v).buffer));
      const items = batch.items.flatMap((it) => ['ITEM', it.id, blob(it.vector), ...(it.payload ? ['PAYLOAD', it.payload] : [])]);
      return Number(await call(ns, 'VADD', key, batch.type, batch.dim, ...items));
    },
    vdel: async (ns, key, ids) => Number(await call(ns, 'VDEL', key, ...ids)),
    vcard: async (ns, key) => Number(await call(ns, 'VCARD', key)),
    vrange: async (ns, key, start, stop, o = {}) => {
      const rows = (await call(ns, 'VRANGE', key, start, stop, ...(o.withVectors ? ['WITHVECTORS'] : []), ...(o.withPayloads ? ['WITHPAYLOADS'] : []))) as Buffer[][];
      return rows.map((row) => {
        let i = 1;
        const item: VectorItem = { id: row[0]! };
        if (o.withVectors) item.vector = [...new Float32Array(Uint8Array.from(row[i++]!).buffer)];
        if (o.withPayloads) item.payload = bufOrNull(row[i++] ?? null);
        return item;
      });
    },
    vsearch: async (ns, req) => {
      const args: (string | Buffer | number)[] = ['VSEARCH', req.k, req.metric, f32([...req.query]), 'KEYS', req.keys.length, ...req.keys];
      if (req.filter) args.push('FILTER', req.filter.field, req.filter.value);
      if (req.payloadPrefix) args.push('PREFIX', req.payloadPrefix);
      if (req.withPayloads) args.push('WITHPAYLOADS');
      if (req.allCopies) args.push('ALLCOPIES');
      const reply = (await call(ns, ...args)) as unknown[];
      const hits = (reply[1] as Buffer[][]).map((h) => ({ key: h[0]!, id: h[1]!, score: Number(String(h[2])), distance: NaN, ...(h.length > 3 ? { payload: bufOrNull(h[3] ?? null) } : {}) }));
      const skippedKeys = (reply[5] as Buffer[]).map((k) => Buffer.from(k));
      return { hits, degraded: Number(reply[3]) === 1, skippedKeys };
    },
    compact: async (ns, keys) => {
      const r = (await call(ns, 'RAGKV.COMPACT', ...keys)) as unknown[];
      return { records: Number(r[1]), bytesFreed: Number(r[3]) };
    },
  };
  return {
    name: 'three member processes (RESP and gRPC)',
    kv,
    scanAll: async (ns, match, count) => {
      const r = await redis(ns);
      const seen: string[] = [];
      let cursor = '0';
      do {
        const [next, keys] = await r.scan(cursor, 'MATCH', match, 'COUNT', count);
        seen.push(...keys);
        cursor = next;
      } while (cursor !== '0');
      return seen;
    },
    // Real time: expiry on real processes passes only by waiting.
    advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    nowMs: () => Date.now(),
    step: async () => {},
    errorClass: wireErrorClass,
    exactCodes: false,
    close: async () => {
      for (const r of dbs.values()) r.disconnect();
      grpc.close();
      await c.destroy();
    },
  };
}
