/**
 * Binary encoding of a Record (the CRDT state or a delta) for the wire: replication,
 * read replies, hints. Versions are 12 bytes, lengths u32.
 *
 *   flags u8 (1 tomb, 2 base, 4 expiry)
 *   [tomb version] [base version, u32 len, bytes] [expiry version, f64 atMs]
 *   u32 appendCount { version, opId(16), u32 len, bytes }*
 *   u32 fieldCount  { version, u8 live, u16 nameLen, name, [u32 len, bytes if live] }*
 */
import { type Record, opIdBytes } from './record.js';
import { readVersion, versionBytes, writeVersion } from './version.js';

export function encodedRecordBytes(r: Record): number {
  let n = 1 + 4 + 4;
  if (r.tomb) n += versionBytes;
  if (r.base) n += versionBytes + 4 + r.base.value.length;
  if (r.expiry) n += versionBytes + 8;
  for (const s of r.appends) n += versionBytes + opIdBytes + 4 + s.bytes.length;
  for (const [name, f] of r.fields) n += versionBytes + 1 + 2 + Buffer.byteLength(name, 'latin1') + (f.value ? 4 + f.value.length : 0);
  return n;
}

/** Writes `r` at `offset` of `out`; returns the offset after it. */
export function writeRecord(out: Buffer, offset: number, r: Record): number {
  let o = offset;
  out[o++] = (r.tomb ? 1 : 0) | (r.base ? 2 : 0) | (r.expiry ? 4 : 0);
  if (r.tomb) {
    writeVersion(out, o, r.tomb);
    o += versionBytes;
  }
  if (r.base) {
    writeVersion(out, o, r.base.version);
    o = out.writeUInt32BE(r.base.value.length, o + versionBytes);
    o += r.base.value.copy(out, o);
  }
  if (r.expiry) {
    writeVersion(out, o, r.expiry.version);
    o = out.writeDoubleBE(r.expiry.atMs, o + versionBytes);
  }
  o = out.writeUInt32BE(r.appends.length, o);
  for (const s of r.appends) {
    writeVersion(out, o, s.version);
    o += versionBytes;
    o += s.opId.copy(out, o);
    o = out.writeUInt32BE(s.bytes.length, o);
    o += s.bytes.copy(out, o);
  }
  o = out.writeUInt32BE(r.fields.size, o);
  for (const [name, f] of r.fields) {
    writeVersion(out, o, f.version);
    o += versionBytes;
    out[o++] = f.value ? 1 : 0;
    o = out.writeUInt16BE(Buffer.byteLength(name, 'latin1'), o);
    o += out.write(name, o, 'latin1');
    if (f.value) {
      o = out.writeUInt32BE(f.value.length, o);
      o += f.value.copy(out, o);
    }
  }
  return o;
}

export function encodeRecord(r: Record): Buffer {
  const out = Buffer.allocUnsafe(encodedRecordBytes(r));
  writeRecord(out, 0, r);
  return out;
}

/**
 * Reads a record at `offset`; returns it and the offset after it. Byte fields are views of
 * `buf`. Throws RangeError on truncated input (a peer bug: the caller drops the message).
 */
export function readRecord(buf: Buffer, offset: number): { record: Record; next: number } {
  let o = offset;
  const need = (n: number) => {
    if (o + n > buf.length) throw new RangeError(`record truncated at byte ${o} (+${n}) of ${buf.length}`);
  };
  need(1);
  const flags = buf[o++]!;
  const r: Record = { tomb: null, base: null, appends: [], fields: new Map(), expiry: null };
  if (flags & 1) {
    need(versionBytes);
    r.tomb = readVersion(buf, o);
    o += versionBytes;
  }
  if (flags & 2) {
    need(versionBytes + 4);
    const version = readVersion(buf, o);
    const len = buf.readUInt32BE(o + versionBytes);
    o += versionBytes + 4;
    need(len);
    r.base = { version, value: buf.subarray(o, o + len) };
    o += len;
  }
  if (flags & 4) {
    need(versionBytes + 8);
    r.expiry = { version: readVersion(buf, o), atMs: buf.readDoubleBE(o + versionBytes) };
    o += versionBytes + 8;
  }
  need(4);
  const appends = buf.readUInt32BE(o);
  o += 4;
  for (let i = 0; i < appends; i++) {
    need(versionBytes + opIdBytes + 4);
    const version = readVersion(buf, o);
    const opId = buf.subarray(o + versionBytes, o + versionBytes + opIdBytes);
    const len = buf.readUInt32BE(o + versionBytes + opIdBytes);
    o += versionBytes + opIdBytes + 4;
    need(len);
    r.appends.push({ version, opId, bytes: buf.subarray(o, o + len) });
    o += len;
  }
  need(4);
  const fields = buf.readUInt32BE(o);
  o += 4;
  for (let i = 0; i < fields; i++) {
    need(versionBytes + 3);
    const version = readVersion(buf, o);
    const live = buf[o + versionBytes] === 1;
    const nameLen = buf.readUInt16BE(o + versionBytes + 1);
    o += versionBytes + 3;
    need(nameLen);
    const name = buf.toString('latin1', o, o + nameLen);
    o += nameLen;
    let value: Buffer | null = null;
    if (live) {
      need(4);
      const len = buf.readUInt32BE(o);
      o += 4;
      need(len);
      value = buf.subarray(o, o + len);
      o += len;
    }
    r.fields.set(name, { version, value });
  }
  return { record: r, next: o };
}

export function decodeRecord(buf: Buffer): Record {
  const { record, next } = readRecord(buf, 0);
  if (next !== buf.length) throw new RangeError(`record has ${buf.length - next} trailing bytes`);
  return record;
}
