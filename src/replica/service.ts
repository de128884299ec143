/**
 * The replica side of the cluster: answers WRITE, READ and SCAN requests from coordinators
 * on the replica channel, against the local ReplicaStore. A WRITE carrying `hintFor` is a
 * sloppy-quorum write for an unreachable owner: it is stored durably as a hint for that
 * owner, not applied here, and replayed when the owner is back (hints.ts).
 */
import type { Clock } from '../common/clock.js';
import { Channel, type NodeId, type Transport } from '../cluster/transport.js';
import type { Record } from '../storage/record.js';
import type { ApplyItem, ApplyResult, ReplicaStore } from './store.js';
import { WireReader, WireWriter } from './wire.js';
import { parseMetric } from '../compute/vector-score.js';
import { float32FromBytes } from '../compute/vector-items.js';
import { type ListSearchResult, type VectorHit, type VectorSearchRequest, searchLists } from '../compute/vector-search.js';

const opWrite = 1;
const opRead = 2;
const opScan = 3;
const opVectorSearch = 4;

export function encodeVectorSearch(ns: string, req: VectorSearchRequest): Buffer {
  const w = new WireWriter().u8(opVectorSearch).str(ns).u32(req.keys.length);
  for (const k of req.keys) w.bytes(k);
  w.bytes(Buffer.from(req.query.buffer, req.query.byteOffset, req.query.byteLength)).u32(req.k).str(req.metric);
  w.u8(req.filter ? 1 : 0);
  if (req.filter) w.bytes(req.filter.field).bytes(req.filter.value);
  w.u8(req.payloadPrefix ? 1 : 0);
  if (req.payloadPrefix) w.bytes(req.payloadPrefix);
  w.u8(req.withPayloads ? 1 : 0);
  w.u8(req.allCopies ? 1 : 0);
  return w.done();
}

/** Reads a search request after its op byte; exported for codec tests. */
export function decodeVectorSearch(r: WireReader): { ns: string; req: VectorSearchRequest } {
  const ns = r.str();
  const n = r.u32();
  const keys: Buffer[] = [];
  for (let i = 0; i < n; i++) keys.push(r.bytes());
  const q = r.bytes();
  const query = float32FromBytes(q);
  const k = r.u32();
  const metric = parseMetric(r.str());
  const filter = r.u8() === 1 ? { field: r.bytes(), value: r.bytes() } : undefined;
  const payloadPrefix = r.u8() === 1 ? r.bytes() : undefined;
  const withPayloads = r.u8() === 1;
  const allCopies = r.u8() === 1;
  r.end();
  return { ns, req: { keys, query, k, metric, withPayloads, allCopies, ...(filter ? { filter } : {}), ...(payloadPrefix ? { payloadPrefix } : {}) } };
}

/**
 * A replica's search reply: u32 n, then n hits (key, id, f64 distance, f64 score, u8 payload
 * tag: 0 none asked, 1 none, 2 bytes follow); then u32 m, then m lists it could not read (key,
 * reason), which the coordinator reports as skipped (internode protocol 3).
 */
export function encodeVectorSearchReply(result: ListSearchResult): Buffer {
  const w = new WireWriter().u32(result.hits.length);
  for (const h of result.hits) {
    w.bytes(h.key).bytes(h.id).f64(h.distance).f64(h.score);
    if (h.payload === undefined) w.u8(0);
    else if (h.payload === null) w.u8(1);
    else w.u8(2).bytes(h.payload);
  }
  w.u32(result.unreadable.length);
  for (const u of result.unreadable) w.bytes(u.key).str(u.reason);
  return w.done();
}

export function decodeVectorSearchReply(buf: Buffer): ListSearchResult {
  const r = new WireReader(buf);
  const n = r.u32();
  const hits: VectorHit[] = [];
  for (let i = 0; i < n; i++) {
    const key = r.bytes();
    const id = r.bytes();
    const distance = r.f64();
    const score = r.f64();
    const has = r.u8();
    hits.push({ key, id, distance, score, ...(has === 2 ? { payload: r.bytes() } : has === 1 ? { payload: null } : {}) });
  }
  const m = r.u32();
  const unreadable: ListSearchResult['unreadable'] = [];
  for (let i = 0; i < m; i++) unreadable.push({ key: r.bytes(), reason: r.str() });
  r.end();
  return { hits, unreadable };
}

/** Runs a vector search over this replica's copies of the lists. */
export async function localVectorSearch(store: ReplicaStore, ns: string, req: VectorSearchRequest, nowMs: number): Promise<ListSearchResult> {
  return searchLists(req.keys.map((k) => store.listSource(ns, k, nowMs)), req);
}

export function encodeWrite(items: ApplyItem[], hintFor: NodeId | null): Buffer {
  const w = new WireWriter().u8(opWrite).str(hintFor ?? '').u32(items.length);
  for (const it of items) w.str(it.ns).bytes(it.key).record(it.delta);
  return w.done();
}

export function decodeWriteReply(buf: Buffer): ApplyResult[] {
  const r = new WireReader(buf);
  const n = r.u32();
  const out: ApplyResult[] = [];
  for (let i = 0; i < n; i++) out.push({ size: r.f64(), wasLive: r.u8() === 1, fieldsAdded: r.u32(), fieldsRemoved: r.u32() });
  r.end();
  return out;
}

export function encodeRead(ns: string, keys: Buffer[]): Buffer {
  const w = new WireWriter().u8(opRead).str(ns).u32(keys.length);
  for (const k of keys) w.bytes(k);
  return w.done();
}

export function decodeReadReply(buf: Buffer): (Record | null)[] {
  const r = new WireReader(buf);
  const n = r.u32();
  const out: (Record | null)[] = [];
  for (let i = 0; i < n; i++) out.push(r.u8() === 1 ? r.record() : null);
  r.end();
  return out;
}

export interface ScanRequest {
  ns: string;
  start: Buffer;
  end: Buffer | null;
  limit: number;
  reverse: boolean;
}

export function encodeScan(s: ScanRequest): Buffer {
  return new WireWriter().u8(opScan).str(s.ns).bytes(s.start).u8(s.end ? 1 : 0).bytes(s.end ?? Buffer.alloc(0)).u32(s.limit).u8(s.reverse ? 1 : 0).done();
}

export function decodeScanReply(buf: Buffer): Buffer[] {
  const r = new WireReader(buf);
  const n = r.u32();
  const keys: Buffer[] = [];
  for (let i = 0; i < n; i++) keys.push(r.bytes());
  r.end();
  return keys;
}

/** Serves this node's replica channel. */
export class ReplicaService {
  constructor(
    private readonly store: ReplicaStore,
    private readonly clock: Clock,
    transport: Transport,
  ) {
    transport.handle(Channel.replica, (_from, payload) => this.handle(payload));
  }

  /** Handles one request; exported for the local fast path and tests. */
  handle(payload: Buffer): Promise<Buffer> | Buffer {
    const r = new WireReader(payload);
    const op = r.u8();
    if (op === opWrite) {
      const hintFor = r.str();
      const n = r.u32();
      const items: ApplyItem[] = [];
      for (let i = 0; i < n; i++) items.push({ ns: r.str(), key: r.bytes(), delta: r.record() });
      r.end();
      if (hintFor) return this.store.addHints(hintFor, items).then(() => encodeResults(items.map(() => emptyResult)));
      return this.store.apply(items, this.clock.nowMs()).then(encodeResults);
    }
    if (op === opRead) {
      const ns = r.str();
      const n = r.u32();
      const keys: Buffer[] = [];
      for (let i = 0; i < n; i++) keys.push(r.bytes());
      r.end();
      const records = this.store.read(ns, keys);
      const w = new WireWriter().u32(records.length);
      for (const rec of records) {
        if (rec) w.u8(1).record(rec);
        else w.u8(0);
      }
      return w.done();
    }
    if (op === opScan) {
      const ns = r.str();
      const start = r.bytes();
      const hasEnd = r.u8() === 1;
      const end = r.bytes();
      const limit = r.u32();
      const reverse = r.u8() === 1;
      r.end();
      const keys = this.store.scan(ns, start, hasEnd ? end : null, limit, reverse, this.clock.nowMs());
      const w = new WireWriter().u32(keys.length);
      for (const k of keys) w.bytes(k);
      return w.done();
    }
    if (op === opVectorSearch) {
      const { ns, req } = decodeVectorSearch(r);
      return localVectorSearch(this.store, ns, req, this.clock.nowMs()).then(encodeVectorSearchReply);
    }
    throw new RangeError(`unknown replica op ${op}`);
  }
}

const emptyResult: ApplyResult = { size: 0, wasLive: false, fieldsAdded: 0, fieldsRemoved: 0 };

function encodeResults(results: ApplyResult[]): Buffer {
  const w = new WireWriter().u32(results.length);
  for (const x of results) w.f64(x.size).u8(x.wasLive ? 1 : 0).u32(x.fieldsAdded).u32(x.fieldsRemoved);
  return w.done();
}
