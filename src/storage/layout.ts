/**
 * How a record is laid out in LMDB, so that no write rewrites bytes it did not change:
 *
 *   records   nsId(4) key                      -> header (fixed 69 bytes [+ inline base])
 *   segments  nsId(4) keyLen(2) key segKey(28) -> entry: base, one append, or a chunk
 *   fields    nsId(4) keyLen(2) key name       -> version(12) live(1) value
 *   expiries  atMs(8) nsId(4) key              -> (empty): index for the expiry sweeper
 *   slots     nsId(4) slot(2) key              -> (empty): index of a hash slot's records
 *
 * The slots table holds one entry per record header (tombstones included), written and
 * removed in the transaction that creates or removes the header: one slot's records are
 * read, moved or dropped without scanning the namespace. Slot is `keySlot(key)`, big-endian,
 * so a slot's entries are contiguous and in key order.
 *
 * segKey = version(12) opId(16), so a record's entries sort in version order. The base is
 * inlined in the header while the record has no appends (one lookup per GET); the first
 * append moves it to a segment entry keyed (baseVersion, zero op id).
 *
 * A chunk folds a run of consecutive small appends into one entry keyed by its first
 * segKey; it keeps each op's segKey and length, so compaction never changes what merge
 * yields. Invariant: no other entry's key falls inside a chunk's [first, last] range.
 */
import { type Version, readVersion, versionBytes, writeVersion, zeroVersion } from './version.js';
import { opIdBytes } from './record.js';

export const nsIdBytes = 4;
export const segKeyBytes = versionBytes + opIdBytes;

export const entryKindAppend = 0;
export const entryKindChunk = 1;
export const entryKindBase = 2;

const zeroOpId = Buffer.alloc(opIdBytes);

// ---- record keys ----

export function recordKey(nsId: number, key: Buffer): Buffer {
  const out = Buffer.allocUnsafe(nsIdBytes + key.length);
  out.writeUInt32BE(nsId, 0);
  key.copy(out, nsIdBytes);
  return out;
}

/** First key of a namespace in the records table. */
export function nsStart(nsId: number): Buffer {
  const out = Buffer.allocUnsafe(nsIdBytes);
  out.writeUInt32BE(nsId, 0);
  return out;
}

/** First key past a namespace in the records table. */
export function nsEnd(nsId: number): Buffer {
  return nsStart(nsId + 1);
}

/** Prefix shared by a record's segments and fields. */
export function ownerPrefix(nsId: number, key: Buffer): Buffer {
  const out = Buffer.allocUnsafe(nsIdBytes + 2 + key.length);
  out.writeUInt32BE(nsId, 0);
  out.writeUInt16BE(key.length, nsIdBytes);
  key.copy(out, nsIdBytes + 2);
  return out;
}

/** The key just past every key that starts with `prefix` (prefix + 0xff... is not enough). */
export function prefixEnd(prefix: Buffer): Buffer {
  const out = Buffer.from(prefix);
  for (let i = out.length - 1; i >= 0; i--) {
    if (out[i]! < 0xff) {
      out[i]!++;
      return out.subarray(0, i + 1);
    }
  }
  // All 0xff: no finite bound; callers use an absent end instead.
  return Buffer.alloc(0);
}

export function segmentKey(prefix: Buffer, version: Version, opId: Buffer): Buffer {
  const out = Buffer.allocUnsafe(prefix.length + segKeyBytes);
  prefix.copy(out, 0);
  writeVersion(out, prefix.length, version);
  opId.copy(out, prefix.length + versionBytes);
  return out;
}

export function baseSegmentKey(prefix: Buffer, version: Version): Buffer {
  return segmentKey(prefix, version, zeroOpId);
}

/** Segment key of everything not newer than `v`: the exclusive end of a cover range. */
export function coverEnd(prefix: Buffer, v: Version): Buffer {
  const out = Buffer.alloc(prefix.length + segKeyBytes, 0xff);
  prefix.copy(out, 0);
  writeVersion(out, prefix.length, v);
  return out;
}

export function fieldKey(prefix: Buffer, name: Buffer): Buffer {
  return Buffer.concat([prefix, name], prefix.length + name.length);
}

export function expiryKey(atMs: number, nsId: number, key: Buffer): Buffer {
  const out = Buffer.allocUnsafe(8 + nsIdBytes + key.length);
  out.writeBigUInt64BE(BigInt(atMs), 0);
  out.writeUInt32BE(nsId, 8);
  key.copy(out, 12);
  return out;
}

export function decodeExpiryKey(k: Buffer): { atMs: number; nsId: number; key: Buffer } {
  return { atMs: Number(k.readBigUInt64BE(0)), nsId: k.readUInt32BE(8), key: k.subarray(12) };
}

// ---- slot index keys ----

export const slotKeyPrefixBytes = nsIdBytes + 2;

/**
 * Slot index key of (nsId, slot, key), built in one buffer. `pad` zero bytes are appended:
 * with 1, the smallest key after it (the exclusive start of a page).
 */
export function slotEntryKey(nsId: number, slot: number, key: Buffer, pad = 0): Buffer {
  const out = Buffer.allocUnsafe(slotKeyPrefixBytes + key.length + pad);
  out.writeUInt32BE(nsId, 0);
  out.writeUInt16BE(slot, nsIdBytes);
  key.copy(out, slotKeyPrefixBytes);
  if (pad > 0) out.fill(0, slotKeyPrefixBytes + key.length);
  return out;
}

/**
 * First slot index key of (nsId, slot); `slotStart(nsId, slot + 1)` is the end of the slot
 * (slot 16383 + 1 still fits the u16 and sorts after every slot).
 */
export function slotStart(nsId: number, slot: number): Buffer {
  const out = Buffer.allocUnsafe(slotKeyPrefixBytes);
  out.writeUInt32BE(nsId, 0);
  out.writeUInt16BE(slot, nsIdBytes);
  return out;
}

// ---- header ----

const flagTomb = 1;
const flagBase = 2;
const flagInline = 4;
const flagExpiry = 8;

const offTomb = 1;
const offBase = offTomb + versionBytes;
const offExpiryVersion = offBase + versionBytes;
const offExpireAt = offExpiryVersion + versionBytes;
const offSize = offExpireAt + 8;
const offEntries = offSize + 8;
const offTail = offEntries + 4;
const offFields = offTail + 4;
const offFieldEntries = offFields + 4;
export const headerBytes = offFieldEntries + 4;

/** Decoded header of a record; mutable while a write transaction builds the next one. */
export interface Header {
  tomb: Version | null;
  baseVersion: Version | null;
  /** Base bytes when inlined in the header (only while the record has no segment entries). */
  inlineBase: Buffer | null;
  expiryVersion: Version | null;
  expireAtMs: number;
  /** Length of the value: base plus live appends. */
  size: number;
  /** Entries in the segments table (base entry, appends, chunks). */
  entries: number;
  /** Single appends written since the last compaction (compaction trigger). */
  tail: number;
  /** Live fields. */
  fieldCount: number;
  /** Entries in the fields table: live fields plus deleted-field markers. */
  fieldEntries: number;
}

export function emptyHeader(): Header {
  return {
    tomb: null,
    baseVersion: null,
    inlineBase: null,
    expiryVersion: null,
    expireAtMs: 0,
    size: 0,
    entries: 0,
    tail: 0,
    fieldCount: 0,
    fieldEntries: 0,
  };
}

export function encodeHeader(h: Header): Buffer {
  const inline = h.inlineBase;
  const out = Buffer.allocUnsafe(headerBytes + (inline ? inline.length : 0));
  out[0] = (h.tomb ? flagTomb : 0) | (h.baseVersion ? flagBase : 0) | (inline ? flagInline : 0) | (h.expiryVersion ? flagExpiry : 0);
  writeVersion(out, offTomb, h.tomb ?? zeroVersion);
  writeVersion(out, offBase, h.baseVersion ?? zeroVersion);
  writeVersion(out, offExpiryVersion, h.expiryVersion ?? zeroVersion);
  out.writeDoubleBE(h.expireAtMs, offExpireAt);
  out.writeDoubleBE(h.size, offSize);
  out.writeUInt32BE(h.entries, offEntries);
  out.writeUInt32BE(h.tail, offTail);
  out.writeUInt32BE(h.fieldCount, offFields);
  out.writeUInt32BE(h.fieldEntries, offFieldEntries);
  if (inline) inline.copy(out, headerBytes);
  return out;
}

export function decodeHeader(b: Buffer): Header {
  const flags = b[0]!;
  return {
    tomb: flags & flagTomb ? readVersion(b, offTomb) : null,
    baseVersion: flags & flagBase ? readVersion(b, offBase) : null,
    inlineBase: flags & flagInline ? b.subarray(headerBytes) : null,
    expiryVersion: flags & flagExpiry ? readVersion(b, offExpiryVersion) : null,
    expireAtMs: b.readDoubleBE(offExpireAt),
    size: b.readDoubleBE(offSize),
    entries: b.readUInt32BE(offEntries),
    tail: b.readUInt32BE(offTail),
    fieldCount: b.readUInt32BE(offFields),
    fieldEntries: b.readUInt32BE(offFieldEntries),
  };
}

// Fast accessors for the read path: no decode, no allocation.

export function headerExpireAt(b: Buffer): number {
  return b[0]! & flagExpiry ? b.readDoubleBE(offExpireAt) : 0;
}

export function headerHasValue(b: Buffer): boolean {
  return (b[0]! & flagBase) !== 0 || b.readUInt32BE(offEntries) > 0;
}

export function headerIsLive(b: Buffer, nowMs: number): boolean {
  const at = headerExpireAt(b);
  if (at > 0 && nowMs > at) return false;
  return headerHasValue(b) || b.readUInt32BE(offFields) > 0;
}

/** Inline base bytes (a view), or null when the value lives in segment entries. */
export function headerInline(b: Buffer): Buffer | null {
  return b[0]! & flagInline ? b.subarray(headerBytes) : null;
}

export function headerSize(b: Buffer): number {
  return b.readDoubleBE(offSize);
}

export function headerFieldCount(b: Buffer): number {
  return b.readUInt32BE(offFields);
}

// ---- segment entries ----

export function encodeSingle(kind: number, bytes: Buffer): Buffer {
  const out = Buffer.allocUnsafe(1 + bytes.length);
  out[0] = kind;
  bytes.copy(out, 1);
  return out;
}

/** One op inside a chunk. */
export interface ChunkPart {
  segKey: Buffer;
  bytes: Buffer;
}

export function encodeChunk(parts: ChunkPart[]): Buffer {
  let payload = 0;
  for (const p of parts) payload += p.bytes.length;
  const tableBytes = parts.length * (segKeyBytes + 4);
  const out = Buffer.allocUnsafe(5 + tableBytes + payload);
  out[0] = entryKindChunk;
  out.writeUInt32BE(parts.length, 1);
  let t = 5;
  let d = 5 + tableBytes;
  for (const p of parts) {
    p.segKey.copy(out, t);
    out.writeUInt32BE(p.bytes.length, t + segKeyBytes);
    t += segKeyBytes + 4;
    p.bytes.copy(out, d);
    d += p.bytes.length;
  }
  return out;
}

/** The concatenated payload of an entry of any kind (a view). */
export function entryPayload(entry: Buffer): Buffer {
  if (entry[0] !== entryKindChunk) return entry.subarray(1);
  const n = entry.readUInt32BE(1);
  return entry.subarray(5 + n * (segKeyBytes + 4));
}

export function decodeChunk(entry: Buffer): ChunkPart[] {
  const n = entry.readUInt32BE(1);
  const parts: ChunkPart[] = [];
  let t = 5;
  let d = 5 + n * (segKeyBytes + 4);
  for (let i = 0; i < n; i++) {
    const len = entry.readUInt32BE(t + segKeyBytes);
    parts.push({ segKey: entry.subarray(t, t + segKeyBytes), bytes: entry.subarray(d, d + len) });
    t += segKeyBytes + 4;
    d += len;
  }
  return parts;
}

/** segKey of the last op in a chunk. */
export function chunkLastSegKey(entry: Buffer): Buffer {
  const n = entry.readUInt32BE(1);
  const t = 5 + (n - 1) * (segKeyBytes + 4);
  return entry.subarray(t, t + segKeyBytes);
}

/** Reads the version out of a segKey (the 28-byte suffix of a segments key). */
export function segKeyVersion(segKey: Buffer): Version {
  return readVersion(segKey, 0);
}

// ---- field values ----

export function encodeField(version: Version, value: Buffer | null): Buffer {
  const out = Buffer.allocUnsafe(versionBytes + 1 + (value ? value.length : 0));
  writeVersion(out, 0, version);
  out[versionBytes] = value ? 1 : 0;
  if (value) value.copy(out, versionBytes + 1);
  return out;
}

export function fieldVersion(b: Buffer): Version {
  return readVersion(b, 0);
}

/** Field value (a view), or null for a deleted field. */
export function fieldValue(b: Buffer): Buffer | null {
  return b[versionBytes] === 1 ? b.subarray(versionBytes + 1) : null;
}
