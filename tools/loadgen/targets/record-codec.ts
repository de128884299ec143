/**
 * One YCSB record (field name -> bytes) as one value, for stores without a field API
 * (ragkv over gRPC, etcd). Layout, all integers unsigned 32-bit big-endian:
 *
 *   count, then per field: nameLength, name (UTF-8), valueLength, value
 *
 * Fields are written in the record's own order; decoding checks every length against the
 * bytes left, so a foreign or truncated value is reported, never read past its end.
 */
import type { RecordFields } from '../target.js';

export function encodeRecord(fields: RecordFields): Buffer {
  const names = Object.keys(fields);
  const nameBytes = names.map((name) => Buffer.from(name, 'utf8'));
  let size = 4;
  names.forEach((name, i) => (size += 8 + nameBytes[i]!.length + fields[name]!.length));
  const out = Buffer.allocUnsafe(size);
  let at = out.writeUInt32BE(names.length, 0);
  names.forEach((name, i) => {
    const n = nameBytes[i]!;
    const v = fields[name]!;
    at = out.writeUInt32BE(n.length, at);
    at += n.copy(out, at);
    at = out.writeUInt32BE(v.length, at);
    at += v.copy(out, at);
  });
  return out;
}

export class RecordDecodeError extends Error {
  override readonly name = 'RecordDecodeError';
}

export function decodeRecord(bytes: Buffer): RecordFields {
  const fail = (what: string): never => {
    throw new RecordDecodeError(`not an encoded record (${bytes.length} bytes): ${what}`);
  };
  if (bytes.length < 4) fail('shorter than the field count');
  const count = bytes.readUInt32BE(0);
  // Each field takes at least 8 bytes: a count beyond that is garbage, not a reason to loop.
  if (count > (bytes.length - 4) / 8) fail(`field count ${count} does not fit`);
  const fields: RecordFields = {};
  let at = 4;
  const take = (what: string): Buffer => {
    if (at + 4 > bytes.length) fail(`${what} length past the end`);
    const length = bytes.readUInt32BE(at);
    at += 4;
    if (at + length > bytes.length) fail(`${what} of ${length} bytes past the end`);
    const slice = bytes.subarray(at, at + length);
    at += length;
    return slice;
  };
  for (let i = 0; i < count; i++) {
    const name = take('field name').toString('utf8');
    fields[name] = take('field value');
  }
  if (at !== bytes.length) fail(`${bytes.length - at} bytes after the last field`);
  return fields;
}
