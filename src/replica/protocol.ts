/**
 * The replica protocol: what a coordinator asks of a replica, one message type per
 * operation, with its codec. No sockets here (the transport carries the bytes), so every
 * message round-trips in tests and is fed truncated at every offset.
 *
 * Every request starts with
 *   u8 wire version | u8 op | u32 placement epoch | u32 placement tag
 * The epoch is the sender's placement version (0 until placement has epochs); a replica will
 * use it to tell a coordinator on an older placement. Counts and lengths are checked against
 * the limits before anything is allocated for them, and a bad message throws a KvError
 * ('PROTOCOL') naming the problem. Errors go back as error replies with their code
 * (see `encodeRemoteError` in cluster/transport.ts), so WRONG_TYPE stays WRONG_TYPE.
 */
import { KvError } from '../common/errors.js';
import { bounds, type Limits } from '../common/limits.js';
import type { NodeId } from '../cluster/transport.js';
import { float32FromBytes } from '../compute/vector-items.js';
import { parseMetric } from '../compute/vector-score.js';
import type { ListSearchResult, UnreadableList, VectorHit, VectorSearchRequest } from '../compute/vector-search.js';
import type { Record } from '../storage/record.js';
import type { ApplyItem, ApplyResult } from './store.js';
import { WireReader, WireWriter } from '../storage/wire.js';

/** Version of the message layouts below; a replica refuses another version. */
export const replicaWireVersion = 2;

export const ReplicaOp = Object.freeze({ write: 1, read: 2, scan: 3, search: 4 } as const);

/** Apply deltas (or, with `hintFor`, keep them as hints for that member). */
export interface WriteRequest {
  op: 'write';
  epoch: number;
  /** Which table of that epoch (see PlacementTable.tag); 0: none given. */
  tag?: number;
  hintFor: NodeId | null;
  items: ApplyItem[];
}

/** The whole CRDT state of keys (null where nothing is stored). */
export interface ReadRequest {
  op: 'read';
  epoch: number;
  /** Which table of that epoch (see PlacementTable.tag); 0: none given. */
  tag?: number;
  ns: string;
  keys: Buffer[];
}

/** Live keys in order (see ReplicaStore.scan). */
export interface ScanRequest {
  op: 'scan';
  epoch: number;
  /** Which table of that epoch (see PlacementTable.tag); 0: none given. */
  tag?: number;
  ns: string;
  start: Buffer;
  end: Buffer | null;
  limit: number;
  reverse: boolean;
}

/** A vector search over this replica's copies of lists. */
export interface SearchRequest {
  op: 'search';
  epoch: number;
  /** Which table of that epoch (see PlacementTable.tag); 0: none given. */
  tag?: number;
  ns: string;
  request: VectorSearchRequest;
}

export type ReplicaRequest = WriteRequest | ReadRequest | ScanRequest | SearchRequest;

/** A replica's answer to a search: its top hits, and the lists it could not read (with why). */
export type SearchReply = ListSearchResult;

/** What the decoder checks counts and lengths against. */
export type ProtocolLimits = Pick<Limits, 'batchKeysMax' | 'keyBytesMax' | 'namespaceBytesMax' | 'scanLimitMax' | 'valueBytesMax' | 'fieldBytesMax'>;

const nodeIdBytesMax = 255;

// ---------------------------------------------------------------- requests

export function encodeRequest(req: ReplicaRequest): Buffer {
  const w = new WireWriter().u8(replicaWireVersion).u8(ReplicaOp[req.op]).u32(req.epoch).u32(req.tag ?? 0);
  switch (req.op) {
    case 'write':
      w.str(req.hintFor ?? '').u32(req.items.length);
      for (const it of req.items) w.str(it.ns).bytes(it.key).record(it.delta);
      break;
    case 'read':
      w.str(req.ns).u32(req.keys.length);
      for (const k of req.keys) w.bytes(k);
      break;
    case 'scan':
      w.str(req.ns).bytes(req.start).u8(req.end ? 1 : 0).bytes(req.end ?? empty).u32(req.limit).u8(req.reverse ? 1 : 0);
      break;
    case 'search': {
      const s = req.request;
      w.str(req.ns).u32(s.keys.length);
      for (const k of s.keys) w.bytes(k);
      w.bytes(Buffer.from(s.query.buffer, s.query.byteOffset, s.query.byteLength)).u32(s.k).str(s.metric);
      w.u8(s.filter ? 1 : 0);
      if (s.filter) w.bytes(s.filter.field).bytes(s.filter.value);
      w.u8(s.payloadPrefix ? 1 : 0);
      if (s.payloadPrefix) w.bytes(s.payloadPrefix);
      w.u8(s.withPayloads ? 1 : 0);
      w.u8(s.allCopies ? 1 : 0);
      break;
    }
  }
  return w.done();
}

export function decodeRequest(payload: Buffer, limits: ProtocolLimits): ReplicaRequest {
  const r = new Reader(payload);
  const version = r.u8();
  if (version !== replicaWireVersion) throw protocolError(`replica message version ${version}, this node speaks ${replicaWireVersion}`);
  const op = r.u8();
  const epoch = r.u32();
  const tag = r.u32();
  switch (op) {
    case ReplicaOp.write: {
      const hintFor = r.text(nodeIdBytesMax, 'hint target');
      const n = r.count(limits.batchKeysMax, 'write items', 'batchKeysMax');
      const items: ApplyItem[] = [];
      for (let i = 0; i < n; i++) items.push({ ns: r.ns(limits), key: r.key(limits), delta: checkDelta(r.record(), limits) });
      r.end();
      return { op: 'write', epoch, tag, hintFor: hintFor || null, items };
    }
    case ReplicaOp.read: {
      const ns = r.ns(limits);
      const n = r.count(limits.batchKeysMax, 'read keys', 'batchKeysMax');
      const keys: Buffer[] = [];
      for (let i = 0; i < n; i++) keys.push(r.key(limits));
      r.end();
      return { op: 'read', epoch, tag, ns, keys };
    }
    case ReplicaOp.scan: {
      const ns = r.ns(limits);
      const start = r.bounded(limits.keyBytesMax, 'scan start', 'keyBytesMax');
      const hasEnd = r.u8() === 1;
      const end = r.bounded(limits.keyBytesMax, 'scan end', 'keyBytesMax');
      const limit = r.u32();
      if (limit > limits.scanLimitMax) throw protocolError(`scan limit ${limit} is over limit 'scanLimitMax' (${limits.scanLimitMax})`);
      const reverse = r.u8() === 1;
      r.end();
      return { op: 'scan', epoch, tag, ns, start, end: hasEnd ? end : null, limit, reverse };
    }
    case ReplicaOp.search: {
      const ns = r.ns(limits);
      const n = r.count(limits.batchKeysMax, 'search keys', 'batchKeysMax');
      const keys: Buffer[] = [];
      for (let i = 0; i < n; i++) keys.push(r.key(limits));
      const query = float32FromBytes(r.raw());
      const k = r.u32();
      const metric = parseMetric(r.text(16, 'metric'));
      const filter = r.u8() === 1 ? { field: r.raw(), value: r.raw() } : undefined;
      const payloadPrefix = r.u8() === 1 ? r.raw() : undefined;
      const withPayloads = r.u8() === 1;
      const allCopies = r.u8() === 1;
      r.end();
      const request: VectorSearchRequest = { keys, query, k, metric, withPayloads, allCopies, ...(filter ? { filter } : {}), ...(payloadPrefix ? { payloadPrefix } : {}) };
      return { op: 'search', epoch, tag, ns, request };
    }
    default:
      throw protocolError(`unknown replica op ${op}`);
  }
}

// ---------------------------------------------------------------- replies

export function encodeWriteReply(results: ApplyResult[]): Buffer {
  const w = new WireWriter().u32(results.length);
  for (const x of results) w.f64(x.size).u8(x.wasLive ? 1 : 0).u32(x.fieldsAdded).u32(x.fieldsRemoved);
  return w.done();
}

export function decodeWriteReply(buf: Buffer, expected: number): ApplyResult[] {
  const r = new Reader(buf);
  const n = r.u32();
  if (n !== expected) throw protocolError(`write reply has ${n} results for ${expected} items`);
  const out: ApplyResult[] = [];
  for (let i = 0; i < n; i++) out.push({ size: r.f64(), wasLive: r.u8() === 1, fieldsAdded: r.u32(), fieldsRemoved: r.u32() });
  r.end();
  return out;
}

export function encodeReadReply(records: (Record | null)[]): Buffer {
  const w = new WireWriter().u32(records.length);
  for (const rec of records) {
    if (rec) w.u8(1).record(rec);
    else w.u8(0);
  }
  return w.done();
}

export function decodeReadReply(buf: Buffer, expected: number): (Record | null)[] {
  const r = new Reader(buf);
  const n = r.u32();
  if (n !== expected) throw protocolError(`read reply has ${n} records for ${expected} keys`);
  const out: (Record | null)[] = [];
  for (let i = 0; i < n; i++) out.push(r.u8() === 1 ? r.record() : null);
  r.end();
  return out;
}

export function encodeScanReply(keys: Buffer[]): Buffer {
  const w = new WireWriter().u32(keys.length);
  for (const k of keys) w.bytes(k);
  return w.done();
}

export function decodeScanReply(buf: Buffer, limits: ProtocolLimits): Buffer[] {
  const r = new Reader(buf);
  const n = r.count(limits.scanLimitMax, 'scan reply keys', 'scanLimitMax');
  const keys: Buffer[] = [];
  for (let i = 0; i < n; i++) keys.push(r.key(limits));
  r.end();
  return keys;
}

export function encodeSearchReply(reply: SearchReply): Buffer {
  const w = new WireWriter().u32(reply.hits.length);
  for (const h of reply.hits) {
    w.bytes(h.key).bytes(h.id).f64(h.distance).f64(h.score);
    if (h.payload === undefined) w.u8(0);
    else if (h.payload === null) w.u8(1);
    else w.u8(2).bytes(h.payload);
  }
  w.u32(reply.unreadable.length);
  for (const u of reply.unreadable) w.bytes(u.key).str(u.reason);
  return w.done();
}

export function decodeSearchReply(buf: Buffer, limits: ProtocolLimits): SearchReply {
  const r = new Reader(buf);
  // A replica answers at most k hits, and k is at most searchKMax.
  const n = r.count(bounds.searchKMax, 'search hits', 'searchKMax');
  const hits: VectorHit[] = [];
  for (let i = 0; i < n; i++) {
    const key = r.key(limits);
    const id = r.raw();
    const distance = r.f64();
    const score = r.f64();
    const has = r.u8();
    hits.push({ key, id, distance, score, ...(has === 2 ? { payload: r.raw() } : has === 1 ? { payload: null } : {}) });
  }
  const m = r.count(limits.batchKeysMax, 'unreadable lists', 'batchKeysMax');
  const unreadable: UnreadableList[] = [];
  for (let i = 0; i < m; i++) unreadable.push({ key: r.key(limits), reason: r.text(4096, 'reason') });
  r.end();
  return { hits, unreadable };
}

// ---------------------------------------------------------------- reading with bounds

/**
 * A written delta holds only what a client could have written: each value, append and field
 * value within 'valueBytesMax', field names within 'fieldBytesMax', an expiry time that is a
 * time. (A merged record a read repair sends is made of such parts too.) So members must
 * agree on those two limits: a member configured lower refuses the larger parts the others
 * hold, and their repairs and hints to it fail.
 */
function checkDelta(d: Record, limits: ProtocolLimits): Record {
  const over = (what: string, n: number, name: string, max: number) => protocolError(`${what} is ${n} bytes, over limit '${name}' (${max})`);
  if (d.base && d.base.value.length > limits.valueBytesMax) throw over('value', d.base.value.length, 'valueBytesMax', limits.valueBytesMax);
  for (const a of d.appends) {
    if (a.bytes.length > limits.valueBytesMax) throw over('append', a.bytes.length, 'valueBytesMax', limits.valueBytesMax);
  }
  for (const [name, f] of d.fields) {
    if (name.length > limits.fieldBytesMax) throw over('field name', name.length, 'fieldBytesMax', limits.fieldBytesMax);
    if (f.value && f.value.length > limits.valueBytesMax) throw over('field value', f.value.length, 'valueBytesMax', limits.valueBytesMax);
  }
  if (d.expiry && !(Number.isFinite(d.expiry.atMs) && d.expiry.atMs >= 0)) throw protocolError(`expiry time ${d.expiry.atMs} is not a time`);
  return d;
}

function protocolError(message: string): KvError {
  return new KvError('PROTOCOL', `bad replica message: ${message}`);
}

const empty = Buffer.alloc(0);

/** WireReader plus the checks a decoder needs: counts and lengths against limits, as PROTOCOL errors. */
class Reader {
  private readonly r: WireReader;
  constructor(buf: Buffer) {
    this.r = new WireReader(buf);
  }
  private wrap<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof RangeError) throw protocolError(err.message);
      throw err;
    }
  }
  u8(): number {
    return this.wrap(() => this.r.u8());
  }
  u32(): number {
    return this.wrap(() => this.r.u32());
  }
  f64(): number {
    return this.wrap(() => this.r.f64());
  }
  raw(): Buffer {
    return this.wrap(() => this.r.bytes());
  }
  record(): Record {
    return this.wrap(() => this.r.record());
  }
  end(): void {
    this.wrap(() => this.r.end());
  }
  /** A count, refused over `max` and over what the remaining bytes could hold (1 byte each at least). */
  count(max: number, what: string, limitName: string): number {
    const n = this.u32();
    if (n > max) throw protocolError(`${what}: ${n}, over limit '${limitName}' (${max})`);
    if (n > this.r.remaining) throw protocolError(`${what}: ${n} declared, only ${this.r.remaining} bytes follow`);
    return n;
  }
  bounded(max: number, what: string, limitName: string): Buffer {
    const b = this.raw();
    if (b.length > max) throw protocolError(`${what} is ${b.length} bytes, over limit '${limitName}' (${max})`);
    return b;
  }
  key(limits: ProtocolLimits): Buffer {
    const k = this.bounded(limits.keyBytesMax, 'key', 'keyBytesMax');
    if (k.length === 0) throw protocolError('empty key');
    return k;
  }
  ns(limits: ProtocolLimits): string {
    return this.bounded(limits.namespaceBytesMax, 'namespace', 'namespaceBytesMax').toString('utf8');
  }
  text(max: number, what: string): string {
    const b = this.raw();
    if (b.length > max) throw protocolError(`${what} is ${b.length} bytes, over ${max}`);
    return b.toString('utf8');
  }
}
