/** A small bounds-checked binary writer/reader for internode messages. */
import { KvError } from '../common/errors.js';
import { encodedRecordBytes, readRecord, writeRecord } from './record-codec.js';
import type { Record } from './record.js';

export class WireWriter {
  private buf: Buffer;
  private pos = 0;
  constructor(initialBytes = 256) {
    this.buf = Buffer.allocUnsafe(initialBytes);
  }
  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }
  u8(v: number): this {
    this.ensure(1);
    this.buf[this.pos++] = v;
    return this;
  }
  u32(v: number): this {
    this.ensure(4);
    this.pos = this.buf.writeUInt32BE(v, this.pos);
    return this;
  }
  f64(v: number): this {
    this.ensure(8);
    this.pos = this.buf.writeDoubleBE(v, this.pos);
    return this;
  }
  bytes(b: Buffer): this {
    this.u32(b.length);
    this.ensure(b.length);
    this.pos += b.copy(this.buf, this.pos);
    return this;
  }
  str(s: string): this {
    return this.bytes(Buffer.from(s));
  }
  record(r: Record): this {
    this.ensure(encodedRecordBytes(r));
    this.pos = writeRecord(this.buf, this.pos, r);
    return this;
  }
  done(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

export class WireReader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}
  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new RangeError(`message truncated at byte ${this.pos} (+${n}) of ${this.buf.length}`);
  }
  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  f64(): number {
    this.need(8);
    const v = this.buf.readDoubleBE(this.pos);
    this.pos += 8;
    return v;
  }
  bytes(): Buffer {
    const n = this.u32();
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  str(): string {
    return this.bytes().toString();
  }
  record(): Record {
    const { record, next } = readRecord(this.buf, this.pos);
    this.pos = next;
    return record;
  }
  /** Bytes not read yet. */
  get remaining(): number {
    return this.buf.length - this.pos;
  }
  end(): void {
    if (this.pos !== this.buf.length) throw new RangeError(`message has ${this.buf.length - this.pos} trailing bytes`);
  }
}

/** (key, record) pairs of one namespace, as the placement hand-off and anti-entropy carry them: u32 count, then each. */
export function writeKeyedRecords(w: WireWriter, items: readonly { key: Buffer; record: Record }[]): WireWriter {
  w.u32(items.length);
  for (const it of items) w.bytes(it.key).record(it.record);
  return w;
}

/** Reads what writeKeyedRecords wrote (at most `max`, checked before anything is read) as deltas of `ns`. */
export function readKeyedRecords(r: WireReader, ns: string, max: number, what: string): { ns: string; key: Buffer; delta: Record }[] {
  const n = r.u32();
  if (n > max) throw new KvError('PROTOCOL', `${what}: ${n} records, over ${max}`);
  const items: { ns: string; key: Buffer; delta: Record }[] = [];
  for (let i = 0; i < n; i++) items.push({ ns, key: Buffer.from(r.bytes()), delta: r.record() });
  r.end();
  return items;
}
