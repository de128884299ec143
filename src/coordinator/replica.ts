/**
 * The replica side of the cluster: answers WRITE, READ and SCAN requests from coordinators
 * on the replica channel, against the local ReplicaStore. A WRITE carrying `hintFor` is a
 * sloppy-quorum write for an unreachable owner: it is stored durably as a hint for that
 * owner, not applied here, and replayed when the owner is back (hints.ts).
 */
import type { Clock } from '../common/clock.js';
import { Channel, type NodeId, type Transport } from '../cluster/transport.js';
import type { Record } from '../storage/record.js';
import type { ApplyItem, ApplyResult, ReplicaStore } from './replica-store.js';
import { WireReader, WireWriter } from './wire.js';

const opWrite = 1;
const opRead = 2;
const opScan = 3;

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
    throw new RangeError(`unknown replica op ${op}`);
  }
}

const emptyResult: ApplyResult = { size: 0, wasLive: false, fieldsAdded: 0, fieldsRemoved: 0 };

function encodeResults(results: ApplyResult[]): Buffer {
  const w = new WireWriter().u32(results.length);
  for (const x of results) w.f64(x.size).u8(x.wasLive ? 1 : 0).u32(x.fieldsAdded).u32(x.fieldsRemoved);
  return w.done();
}
