/**
 * The vector item format: one APPEND of a batch of items is one self-describing segment, and a
 * posting list is the concatenation of such segments (a record with no base, only appends).
 * The layout lets a replica score vectors straight out of the value's bytes, without decoding
 * or copying item by item.
 *
 * Batch layout (all integers little-endian; every block starts on a 4-byte boundary relative
 * to the batch start, and every batch's length is a multiple of 4, so a concatenation keeps
 * the alignment of its first byte):
 *
 * ```
 *  0  u8   magic 0xA7
 *  1  u8   format version (1)
 *  2  u8   element type: float32=1 float16=2 int8=3 uint8=4 (0 in a delete batch)
 *  3  u8   kind: items=1 deletes=2
 *  4  u16  dim (0 in a delete batch)
 *  6  u8   flags: bit 0 = payload block present
 *  7  u8   reserved (0)
 *  8  u32  count (items or deleted ids, >= 1)
 * 12  u32  byte length of the whole batch, padding included
 * 16  ids: u32 offsets[count + 1] (offsets[0] = 0, relative to the id bytes), then the id bytes
 *     pad to 4
 *     vectors (items only): count * dim elements, contiguous, item i at [i * dim, (i + 1) * dim)
 *     pad to 4
 *     payloads (if flagged): u32 offsets[count + 1], then the payload bytes
 *     pad to 4
 * ```
 *
 * A delete batch holds only ids: it deletes those ids appended in earlier batches of the same
 * value; items appended after it are live again. To replace an item atomically, append one
 * segment made of a delete batch followed by an item batch.
 *
 * An item batch may hold 0 items only as the result of compaction (`pruneDeletedItems`): it
 * keeps the batch's type and dim, so a list whose items were all deleted keeps its shape.
 */

import { bounds } from '../common/limits.js';
import { KvError } from '../common/errors.js';
import type { SegmentPruner } from '../storage/pruner.js';

/** First byte of every batch. */
export const ITEM_BATCH_MAGIC = 0xa7;
/** Format version this code writes and reads. */
export const ITEM_BATCH_VERSION = 1;
/** Largest vector dimension (common/limits.ts). */
export const VECTOR_DIM_MAX = bounds.vectorDimMax;
/** Largest item id, in bytes (common/limits.ts). */
export const ITEM_ID_BYTES_MAX = bounds.itemIdBytesMax;
/** Fixed header size of a batch, in bytes. */
export const ITEM_BATCH_HEADER_BYTES = 16;

const FLAG_PAYLOAD = 1;
const KIND_ITEMS = 1;
const KIND_DELETES = 2;
const U32_MAX = 0xffffffff;

/** Element types of a vector, by name. */
export type ElementType = 'float32' | 'float16' | 'int8' | 'uint8';
/** Batch kinds, by name. */
export type BatchKind = 'items' | 'deletes';

/** Wire codes of the element types. */
export const elementTypeCodes: Readonly<Record<ElementType, number>> = Object.freeze({ float32: 1, float16: 2, int8: 3, uint8: 4 });
const elementTypeByCode: readonly (ElementType | undefined)[] = [undefined, 'float32', 'float16', 'int8', 'uint8'];
/** Bytes per element of each type. */
export const elementBytes: Readonly<Record<ElementType, number>> = Object.freeze({ float32: 4, float16: 2, int8: 1, uint8: 1 });

/** A typed-array view over a batch's vectors; float16 elements are raw IEEE half bits. */
export type VectorArray = Float32Array | Uint16Array | Int8Array | Uint8Array;

/** One item to encode. */
export interface VectorItemInput {
  id: Buffer;
  vector: ArrayLike<number>;
  payload?: Buffer;
}

/** What `encodeItemBatch` takes. */
export interface ItemBatchInput {
  type: ElementType;
  dim: number;
  items: readonly VectorItemInput[];
}

const pad4 = (n: number): number => (n + 3) & ~3;

// ---------------------------------------------------------------------------------------------
// float16

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** Shifts `v` right by `s` (1..31) bits, rounding to nearest, ties to even. */
function shiftRoundEven(v: number, s: number): number {
  const q = v >>> s;
  const rem = v & ((1 << s) - 1);
  const half = 1 << (s - 1);
  return rem > half || (rem === half && (q & 1) === 1) ? q + 1 : q;
}

/** IEEE 754 half bits nearest to `x` (round to nearest even; overflow gives infinity). */
export function float16Bits(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return mant === 0 ? sign | 0x7c00 : sign | 0x7e00;
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // Half subnormal (or zero): value / 2^-24, from the 24-bit significand.
    if (e < -10) return sign;
    return sign | shiftRoundEven(mant | 0x800000, 14 - e);
  }
  // A rounding carry out of the mantissa correctly bumps the exponent (up to infinity).
  return sign | (((e << 10) | (mant >>> 13)) + (shiftRoundEven(mant, 13) - (mant >>> 13)));
}

function float16Value(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Value of every half-precision bit pattern: scoring reads float16 through this table. */
export const FLOAT16_TABLE: Float32Array = (() => {
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) table[h] = float16Value(h);
  return table;
})();

/** Largest finite float16 value. */
export const FLOAT16_MAX = 65504;

// ---------------------------------------------------------------------------------------------
// encoding

function checkId(id: unknown, what: string): Buffer {
  if (!Buffer.isBuffer(id)) throw new RangeError(`${what}: id must be a Buffer`);
  if (id.length < 1 || id.length > ITEM_ID_BYTES_MAX) {
    throw new RangeError(`${what}: id is ${id.length} bytes, must be 1..${ITEM_ID_BYTES_MAX}`);
  }
  return id;
}

function writeHeader(out: Buffer, typeCode: number, kind: number, dim: number, flags: number, count: number): void {
  out[0] = ITEM_BATCH_MAGIC;
  out[1] = ITEM_BATCH_VERSION;
  out[2] = typeCode;
  out[3] = kind;
  out.writeUInt16LE(dim, 4);
  out[6] = flags;
  out[7] = 0;
  out.writeUInt32LE(count, 8);
  out.writeUInt32LE(out.length, 12);
}

/** Writes offsets[count+1] then the concatenated bytes at `at`; returns the end offset. */
function writeBlobs(out: Buffer, at: number, blobs: readonly Buffer[]): number {
  let data = at + 4 * (blobs.length + 1);
  let rel = 0;
  out.writeUInt32LE(0, at);
  for (let i = 0; i < blobs.length; i++) {
    const b = blobs[i]!;
    b.copy(out, data);
    data += b.length;
    rel += b.length;
    out.writeUInt32LE(rel, at + 4 * (i + 1));
  }
  return data;
}

const blobsBytes = (blobs: readonly Buffer[]): number => 4 * (blobs.length + 1) + blobs.reduce((n, b) => n + b.length, 0);

/**
 * Encodes a batch of items into one segment; throws a RangeError naming the item index and the
 * problem (dim 1..4096, at least one item, id 1..255 bytes, vector length = dim, int8/uint8
 * integers in range, finite floats within the element type's range).
 */
export function encodeItemBatch(input: ItemBatchInput): Buffer {
  const { type, dim, items } = input;
  const typeCode = elementTypeCodes[type];
  if (typeCode === undefined) throw new RangeError(`unknown element type '${String(type)}' (float32, float16, int8 or uint8)`);
  if (!Number.isInteger(dim) || dim < 1 || dim > VECTOR_DIM_MAX) throw new RangeError(`dim must be an integer 1..${VECTOR_DIM_MAX}, got ${dim}`);
  if (!Array.isArray(items) || items.length < 1) throw new RangeError('a batch must hold at least one item');
  const count = items.length;
  const ids: Buffer[] = new Array(count);
  let hasPayload = false;
  for (let i = 0; i < count; i++) {
    const item = items[i]!;
    ids[i] = checkId(item.id, `item ${i}`);
    if (item.payload !== undefined) {
      if (!Buffer.isBuffer(item.payload)) throw new RangeError(`item ${i}: payload must be a Buffer`);
      hasPayload = true;
    }
    const v = item.vector;
    if (v === null || typeof v !== 'object' || typeof v.length !== 'number') throw new RangeError(`item ${i}: vector must be an array of numbers`);
    if (v.length !== dim) throw new RangeError(`item ${i}: vector has ${v.length} elements, dim is ${dim}`);
  }
  const payloads = hasPayload ? items.map((it) => it.payload ?? Buffer.alloc(0)) : [];

  const idsAt = ITEM_BATCH_HEADER_BYTES;
  const vectorsAt = pad4(idsAt + blobsBytes(ids));
  const vectorBytes = count * dim * elementBytes[type];
  const payloadAt = pad4(vectorsAt + vectorBytes);
  const total = pad4(payloadAt + (hasPayload ? blobsBytes(payloads) : 0));
  if (total > U32_MAX) throw new RangeError(`batch would be ${total} bytes, over the format's 4 GiB`);

  const out = Buffer.alloc(total);
  writeHeader(out, typeCode, KIND_ITEMS, dim, hasPayload ? FLAG_PAYLOAD : 0, count);
  writeBlobs(out, idsAt, ids);
  writeVectors(out, vectorsAt, type, dim, items);
  if (hasPayload) writeBlobs(out, payloadAt, payloads);
  return out;
}

function badElement(i: number, j: number, x: number, why: string): RangeError {
  return new RangeError(`item ${i}: vector[${j}] = ${x} ${why}`);
}

function writeVectors(out: Buffer, at: number, type: ElementType, dim: number, items: readonly VectorItemInput[]): void {
  for (let i = 0; i < items.length; i++) {
    const v = items[i]!.vector;
    const base = at + i * dim * elementBytes[type];
    for (let j = 0; j < dim; j++) {
      const x = v[j]!;
      if (typeof x !== 'number' || !Number.isFinite(x)) throw badElement(i, j, x, 'is not a finite number');
      switch (type) {
        case 'float32': {
          f32Scratch[0] = x;
          if (!Number.isFinite(f32Scratch[0]!)) throw badElement(i, j, x, 'is outside the float32 range');
          out.writeFloatLE(x, base + 4 * j);
          break;
        }
        case 'float16': {
          const h = float16Bits(x);
          if ((h & 0x7c00) === 0x7c00) throw badElement(i, j, x, `is outside the float16 range (±${FLOAT16_MAX})`);
          out.writeUInt16LE(h, base + 2 * j);
          break;
        }
        case 'int8':
          if (!Number.isInteger(x) || x < -128 || x > 127) throw badElement(i, j, x, 'is not an integer in -128..127');
          out.writeInt8(x, base + j);
          break;
        case 'uint8':
          if (!Number.isInteger(x) || x < 0 || x > 255) throw badElement(i, j, x, 'is not an integer in 0..255');
          out[base + j] = x;
          break;
      }
    }
  }
}

/** Encodes a delete batch: these ids are deleted from the batches appended before it. */
export function encodeDeleteBatch(ids: readonly Buffer[]): Buffer {
  if (!Array.isArray(ids) || ids.length < 1) throw new RangeError('a delete batch must hold at least one id');
  for (let i = 0; i < ids.length; i++) checkId(ids[i], `id ${i}`);
  const total = pad4(ITEM_BATCH_HEADER_BYTES + blobsBytes(ids));
  if (total > U32_MAX) throw new RangeError(`batch would be ${total} bytes, over the format's 4 GiB`);
  const out = Buffer.alloc(total);
  writeHeader(out, 0, KIND_DELETES, 0, 0, ids.length);
  writeBlobs(out, ITEM_BATCH_HEADER_BYTES, ids);
  return out;
}

// ---------------------------------------------------------------------------------------------
// parsing

/** A value that is not a posting list (or a corrupt one). */
function notAList(at: number, why: string): KvError {
  return new KvError('WRONG_TYPE', `value is not a vector posting list: batch at byte ${at}: ${why}`);
}

/**
 * A view over one batch inside a value. `ids(i)` and `payload(i)` are Buffer views (no copy);
 * `vectors` is a typed-array view over the value's memory when its bytes are aligned for the
 * element type, otherwise (a value Buffer starting at an odd offset of its ArrayBuffer) one copy
 * of this batch's vector block, made once at parse time (`vectorsCopied` says so).
 */
export class ItemBatch {
  readonly kind: BatchKind;
  /** Element type (items); a delete batch reports null. */
  readonly type: ElementType | null;
  readonly dim: number;
  readonly count: number;
  /** Offset of this batch inside the parsed value. */
  readonly byteOffset: number;
  readonly byteLength: number;
  readonly hasPayloads: boolean;
  private readonly vectorsAt: number;
  private view: { vectors: VectorArray; copied: boolean } | null = null;
  private readonly buf: Buffer;
  private readonly idOffsetsAt: number;
  private readonly idBytesAt: number;
  private readonly payloadOffsetsAt: number;
  private readonly payloadBytesAt: number;

  /** Built by `parseSegments` after it has checked every bound. */
  constructor(fields: {
    kind: BatchKind;
    type: ElementType | null;
    dim: number;
    count: number;
    byteOffset: number;
    byteLength: number;
    vectorsAt: number;
    buf: Buffer;
    idOffsetsAt: number;
    idBytesAt: number;
    payloadOffsetsAt: number;
    payloadBytesAt: number;
  }) {
    this.kind = fields.kind;
    this.type = fields.type;
    this.dim = fields.dim;
    this.count = fields.count;
    this.byteOffset = fields.byteOffset;
    this.byteLength = fields.byteLength;
    this.vectorsAt = fields.vectorsAt;
    this.buf = fields.buf;
    this.idOffsetsAt = fields.idOffsetsAt;
    this.idBytesAt = fields.idBytesAt;
    this.payloadOffsetsAt = fields.payloadOffsetsAt;
    this.payloadBytesAt = fields.payloadBytesAt;
    this.hasPayloads = fields.payloadOffsetsAt >= 0;
  }

  /**
   * Item i's elements are `vectors[i * dim .. (i + 1) * dim)`; empty for a delete batch.
   * Made on first use, so reading ids or counting items never touches (or copies) vectors.
   */
  get vectors(): VectorArray {
    return (this.view ??= this.makeView()).vectors;
  }

  /** True when the vectors had to be copied (the value's memory was misaligned). */
  get vectorsCopied(): boolean {
    return (this.view ??= this.makeView()).copied;
  }

  private makeView(): { vectors: VectorArray; copied: boolean } {
    if (this.kind === 'deletes' || this.type === null) return { vectors: new Float32Array(0), copied: false };
    return vectorView(this.buf, this.vectorsAt, this.type, this.count * this.dim);
  }

  /** Item i's id, a view into the value. */
  ids(i: number): Buffer {
    const o = this.idOffsetsAt + 4 * i;
    return this.buf.subarray(this.idBytesAt + this.buf.readUInt32LE(o), this.idBytesAt + this.buf.readUInt32LE(o + 4));
  }

  /** Item i's vector as raw little-endian element bytes, a view into the value. */
  vectorBytes(i: number): Buffer {
    if (this.type === null) throw new RangeError('a delete batch has no vectors');
    const width = this.dim * elementBytes[this.type];
    return this.buf.subarray(this.vectorsAt + i * width, this.vectorsAt + (i + 1) * width);
  }

  /** The whole batch, a view into the value. */
  bytes(): Buffer {
    return this.buf.subarray(this.byteOffset, this.byteOffset + this.byteLength);
  }

  /** Item i's payload, a view into the value; null when the batch has no payloads. */
  payload(i: number): Buffer | null {
    if (this.payloadOffsetsAt < 0) return null;
    const o = this.payloadOffsetsAt + 4 * i;
    return this.buf.subarray(this.payloadBytesAt + this.buf.readUInt32LE(o), this.payloadBytesAt + this.buf.readUInt32LE(o + 4));
  }

  /** 32-bit FNV-1a hash of item i's id, computed in place (no allocation). */
  idHash(i: number): number {
    const o = this.idOffsetsAt + 4 * i;
    const buf = this.buf;
    const from = this.idBytesAt + buf.readUInt32LE(o);
    const to = this.idBytesAt + buf.readUInt32LE(o + 4);
    let h = 0x811c9dc5;
    for (let p = from; p < to; p++) h = Math.imul(h ^ buf[p]!, 0x01000193);
    return h >>> 0;
  }

  /** True when item i has a payload that starts with `prefix` (compared in place). */
  payloadStartsWith(i: number, prefix: Buffer): boolean {
    if (this.payloadOffsetsAt < 0) return false;
    const o = this.payloadOffsetsAt + 4 * i;
    const buf = this.buf;
    const from = this.payloadBytesAt + buf.readUInt32LE(o);
    const to = this.payloadBytesAt + buf.readUInt32LE(o + 4);
    const n = prefix.length;
    if (to - from < n) return false;
    for (let j = 0; j < n; j++) if (buf[from + j] !== prefix[j]) return false;
    return true;
  }
}

/** 32-bit FNV-1a hash of a byte string; equals `ItemBatch.idHash` for the same bytes. */
export function idHash(id: Buffer): number {
  let h = 0x811c9dc5;
  for (let p = 0; p < id.length; p++) h = Math.imul(h ^ id[p]!, 0x01000193);
  return h >>> 0;
}

/**
 * Why a u32 offsets table of `count + 1` entries at `at` is bad (it must start at 0, ascend by
 * minEach..maxEach per entry and end at `size`), or null when it is good.
 */
function offsetsProblem(buf: Buffer, at: number, count: number, size: number, minEach: number, maxEach: number, what: string): string | null {
  if (buf.readUInt32LE(at) !== 0) return `${what} offsets do not start at 0`;
  let prev = 0;
  for (let i = 1; i <= count; i++) {
    const off = buf.readUInt32LE(at + 4 * i);
    if (off < prev + minEach || off - prev > maxEach) return `${what} ${i - 1} has a bad length`;
    prev = off;
  }
  if (prev !== size) return `${what} offsets end at ${prev}, expected ${size}`;
  return null;
}

function vectorView(buf: Buffer, at: number, type: ElementType, length: number): { vectors: VectorArray; copied: boolean } {
  const abs = buf.byteOffset + at;
  const width = elementBytes[type];
  const aligned = abs % width === 0;
  // Misaligned (only possible when the value's Buffer itself starts misaligned): copy once.
  const source = aligned ? buf.buffer : buf.buffer.slice(abs, abs + length * width);
  const offset = aligned ? abs : 0;
  switch (type) {
    case 'float32':
      return { vectors: new Float32Array(source, offset, length), copied: !aligned };
    case 'float16':
      return { vectors: new Uint16Array(source, offset, length), copied: !aligned };
    case 'int8':
      return { vectors: new Int8Array(source, offset, length), copied: false };
    case 'uint8':
      return { vectors: new Uint8Array(source, offset, length), copied: false };
  }
}

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Why the bytes of `value` from `at` do not start with one well-formed batch, or null when they
 * do. Every length is checked against the bytes present before it is used; nothing is
 * allocated unless a problem is found (its message).
 */
function batchProblem(value: Buffer, at: number): string | null {
  const left = value.length - at;
  if (left < ITEM_BATCH_HEADER_BYTES) return `${left} trailing bytes, shorter than a batch header`;
  if (value[at] !== ITEM_BATCH_MAGIC) return `bad magic byte 0x${value[at]!.toString(16)}`;
  if (value[at + 1] !== ITEM_BATCH_VERSION) return `unsupported format version ${value[at + 1]}`;
  const typeCode = value[at + 2]!;
  const kindCode = value[at + 3]!;
  const dim = value.readUInt16LE(at + 4);
  const flags = value[at + 6]!;
  const count = value.readUInt32LE(at + 8);
  const length = value.readUInt32LE(at + 12);
  if (length > left || length < ITEM_BATCH_HEADER_BYTES || length % 4 !== 0) return `batch length ${length} does not fit the ${left} bytes left`;
  // Only compaction leaves an empty item batch; a delete batch always names an id.
  if (count < 1 && kindCode !== KIND_ITEMS) return 'count is 0';
  if ((flags & ~FLAG_PAYLOAD) !== 0 || value[at + 7] !== 0) return 'unknown flags';
  const end = at + length;
  const idOffsetsAt = at + ITEM_BATCH_HEADER_BYTES;
  // Bound count by the bytes present before walking any table.
  if (count > (length - ITEM_BATCH_HEADER_BYTES) / 4 - 1) return `count ${count} does not fit the batch`;
  const idBytesAt = idOffsetsAt + 4 * (count + 1);
  const idBytes = value.readUInt32LE(idOffsetsAt + 4 * count);
  if (idBytes > end - idBytesAt) return 'ids overrun the batch';
  const ids = offsetsProblem(value, idOffsetsAt, count, idBytes, 1, ITEM_ID_BYTES_MAX, 'id');
  if (ids !== null) return ids;
  const idsEnd = pad4(idBytesAt + idBytes - at) + at;
  if (kindCode === KIND_DELETES) {
    if (typeCode !== 0 || dim !== 0 || flags !== 0) return 'a delete batch has a type, dim or payloads';
    if (idsEnd !== end) return `delete batch length ${length} does not match its ids`;
    return null;
  }
  if (kindCode !== KIND_ITEMS) return `unknown batch kind ${kindCode}`;
  const type = elementTypeByCode[typeCode];
  if (type === undefined) return `unknown element type ${typeCode}`;
  if (dim < 1 || dim > VECTOR_DIM_MAX) return `dim ${dim} is outside 1..${VECTOR_DIM_MAX}`;
  const vectorBytes = count * dim * elementBytes[type];
  if (vectorBytes > end - idsEnd) return 'vectors overrun the batch';
  let blockEnd = pad4(idsEnd + vectorBytes - at) + at;
  if (flags & FLAG_PAYLOAD) {
    const payloadOffsetsAt = blockEnd;
    const payloadBytesAt = payloadOffsetsAt + 4 * (count + 1);
    if (payloadBytesAt > end) return 'payload offsets overrun the batch';
    const payloadBytes = value.readUInt32LE(payloadOffsetsAt + 4 * count);
    if (payloadBytes > end - payloadBytesAt) return 'payloads overrun the batch';
    const payloads = offsetsProblem(value, payloadOffsetsAt, count, payloadBytes, 0, U32_MAX, 'payload');
    if (payloads !== null) return payloads;
    blockEnd = pad4(payloadBytesAt + payloadBytes - at) + at;
  }
  if (blockEnd !== end) return `batch length ${length} does not match its blocks (${blockEnd - at})`;
  return null;
}

/** A view over the batch at `at`, which `batchProblem` has found well-formed. */
function batchView(value: Buffer, at: number): ItemBatch {
  const count = value.readUInt32LE(at + 8);
  const length = value.readUInt32LE(at + 12);
  const idOffsetsAt = at + ITEM_BATCH_HEADER_BYTES;
  const idBytesAt = idOffsetsAt + 4 * (count + 1);
  const idsEnd = pad4(idBytesAt + value.readUInt32LE(idOffsetsAt + 4 * count) - at) + at;
  if (value[at + 3] === KIND_DELETES) {
    return new ItemBatch({
      kind: 'deletes', type: null, dim: 0, count, byteOffset: at, byteLength: length, vectorsAt: -1,
      buf: value, idOffsetsAt, idBytesAt, payloadOffsetsAt: -1, payloadBytesAt: -1,
    });
  }
  const type = elementTypeByCode[value[at + 2]!]!;
  const dim = value.readUInt16LE(at + 4);
  let payloadOffsetsAt = -1;
  let payloadBytesAt = -1;
  if (value[at + 6]! & FLAG_PAYLOAD) {
    payloadOffsetsAt = pad4(idsEnd + count * dim * elementBytes[type] - at) + at;
    payloadBytesAt = payloadOffsetsAt + 4 * (count + 1);
  }
  return new ItemBatch({
    kind: 'items', type, dim, count, byteOffset: at, byteLength: length, vectorsAt: idsEnd,
    buf: value, idOffsetsAt, idBytesAt, payloadOffsetsAt, payloadBytesAt,
  });
}

/**
 * Parses a value made of concatenated batches into batch views, in append (version) order; an
 * empty value is an empty list.
 * Throws KvError WRONG_TYPE naming the offset and the problem when the bytes are not a
 * posting list. Every length is checked against the value before it is used.
 */
export function parseSegments(value: Buffer): ItemBatch[] {
  // Typed-array views read host order; the format is little-endian (so is every Node target).
  if (!littleEndian) throw new Error('ragkv vector items need a little-endian host');
  const batches: ItemBatch[] = [];
  let at = 0;
  while (at < value.length) {
    const problem = batchProblem(value, at);
    if (problem !== null) throw notAList(at, problem);
    batches.push(batchView(value, at));
    at += value.readUInt32LE(at + 12);
  }
  return batches;
}

/**
 * The shape a posting list was declared with: its first item batch's {type, dim}, or null when
 * it holds no items yet. Reads only batch headers (cheap on a long list); `parseSegments`
 * does the full check. Throws KvError WRONG_TYPE when the headers are not a posting list.
 */
export function listShape(value: Buffer): { type: ElementType; dim: number } | null {
  let at = 0;
  if (value.length === 0) return null;
  while (at < value.length) {
    const left = value.length - at;
    if (left < ITEM_BATCH_HEADER_BYTES) throw notAList(at, `${left} trailing bytes, shorter than a batch header`);
    if (value[at] !== ITEM_BATCH_MAGIC) throw notAList(at, `bad magic byte 0x${value[at]!.toString(16)}`);
    if (value[at + 1] !== ITEM_BATCH_VERSION) throw notAList(at, `unsupported format version ${value[at + 1]}`);
    const length = value.readUInt32LE(at + 12);
    if (length > left || length < ITEM_BATCH_HEADER_BYTES || length % 4 !== 0) throw notAList(at, `batch length ${length} does not fit the ${left} bytes left`);
    if (value[at + 3] === KIND_ITEMS) {
      const type = elementTypeByCode[value[at + 2]!];
      const dim = value.readUInt16LE(at + 4);
      if (type === undefined) throw notAList(at, `unknown element type ${value[at + 2]}`);
      if (dim < 1 || dim > VECTOR_DIM_MAX) throw notAList(at, `dim ${dim} is outside 1..${VECTOR_DIM_MAX}`);
      return { type, dim };
    }
    at += length;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// raw appends

/**
 * True when `bytes` is a run of well-formed batches (what VADD and VDEL append). Allocates
 * nothing; bytes that do not start with the magic byte are refused at the first byte.
 */
export function isBatchRun(bytes: Buffer): boolean {
  if (bytes.length === 0 || bytes[0] !== ITEM_BATCH_MAGIC) return false;
  let at = 0;
  while (at < bytes.length) {
    if (batchProblem(bytes, at) !== null) return false;
    at += bytes.readUInt32LE(at + 12);
  }
  return true;
}

/**
 * How many bytes the first batch of a value takes, as the batch header at the start of
 * `header` declares it (magic, version, a known kind, a length of at least a header and a
 * multiple of 4); 0 when `header` does not start like a batch. Lets a caller that reads a
 * value by ranges fetch 16 bytes first, and the first batch only when the value may be a list.
 */
export function firstBatchBytes(header: Buffer): number {
  if (header.length < ITEM_BATCH_HEADER_BYTES || header[0] !== ITEM_BATCH_MAGIC || header[1] !== ITEM_BATCH_VERSION) return 0;
  if (header[3] !== KIND_ITEMS && header[3] !== KIND_DELETES) return 0;
  const length = header.readUInt32LE(12);
  return length >= ITEM_BATCH_HEADER_BYTES && length % 4 === 0 ? length : 0;
}

/**
 * True when a value that starts with `head` is a posting list: it starts with a well-formed
 * batch. `head` must hold the value's first batch whole (a value's first stored piece does,
 * and so do the first `firstBatchBytes` bytes); an empty value is not a list yet.
 */
export function startsWithBatch(head: Buffer): boolean {
  return head.length > 0 && head[0] === ITEM_BATCH_MAGIC && batchProblem(head, 0) === null;
}

/**
 * Why item batches in `bytes` (a run of batches) cannot go onto the list whose first batch
 * `head` holds: they are of another element type or dimension, and search would skip them.
 * Null when they fit, when `head` is not a list, or when its first batch is a delete batch.
 */
export function appendShapeMismatch(head: Buffer | null, bytes: Buffer): string | null {
  if (head === null || !startsWithBatch(head) || head[3] !== KIND_ITEMS || !isBatchRun(bytes)) return null;
  const type = head[2]!;
  const dim = head.readUInt16LE(4);
  for (let at = 0; at < bytes.length; at += bytes.readUInt32LE(at + 12)) {
    if (bytes[at + 3] !== KIND_ITEMS) continue;
    const t = bytes[at + 2]!;
    const d = bytes.readUInt16LE(at + 4);
    if (t !== type || d !== dim) {
      return `the list holds ${elementTypeByCode[type]} vectors of dimension ${dim}; the appended batch holds ${elementTypeByCode[t]} of dimension ${d}`;
    }
  }
  return null;
}

/**
 * The APPEND guard: true when appending `bytes` to the value that starts with `head` (null:
 * no value) would leave a posting list unreadable, because the value is a list and the bytes
 * are not a run of batches. `head` is as `startsWithBatch` takes it. The common APPEND (bytes
 * that are not batches onto a value that is not a list) costs a few byte comparisons.
 */
export function appendBreaksList(head: Buffer | null, bytes: Buffer): boolean {
  if (bytes.length === 0 || head === null || head.length === 0 || head[0] !== ITEM_BATCH_MAGIC) return false;
  return !isBatchRun(bytes) && startsWithBatch(head);
}

/** A copy of `bytes` in a fresh ArrayBuffer: aligned for any typed array, never Node's shared pool. */
export function alignedCopy(bytes: Uint8Array): ArrayBuffer {
  const out = new ArrayBuffer(bytes.length);
  new Uint8Array(out).set(bytes);
  return out;
}

/** float32 little-endian bytes as a Float32Array (a copy; length must be a multiple of 4). */
export function float32FromBytes(bytes: Uint8Array): Float32Array {
  return new Float32Array(alignedCopy(bytes), 0, bytes.length >>> 2);
}

// ---------------------------------------------------------------------------------------------
// compaction

/** True when `segment` starts like an item batch (it may hold items a later delete kills). */
export function looksLikeItemBatches(segment: Buffer): boolean {
  return segment.length >= ITEM_BATCH_HEADER_BYTES && segment[0] === ITEM_BATCH_MAGIC && segment[1] === ITEM_BATCH_VERSION;
}

/**
 * True when `segment` is a run of batches that holds a delete batch (so items appended before
 * it may now be dead). Reads batch headers only; false for anything that is not a list.
 */
export function holdsDeleteBatch(segment: Buffer): boolean {
  let at = 0;
  while (at + ITEM_BATCH_HEADER_BYTES <= segment.length) {
    if (segment[at] !== ITEM_BATCH_MAGIC || segment[at + 1] !== ITEM_BATCH_VERSION) return false;
    if (segment[at + 3] === KIND_DELETES) return true;
    const length = segment.readUInt32LE(at + 12);
    if (length < ITEM_BATCH_HEADER_BYTES || length % 4 !== 0) return false;
    at += length;
  }
  return false;
}

/** Re-encodes an item batch with only the items at `keep` (ascending indexes). */
function keepItems(b: ItemBatch, keep: readonly number[]): Buffer {
  const type = b.type!;
  const ids = keep.map((i) => b.ids(i));
  const hasPayload = b.hasPayloads && keep.length > 0;
  const payloads = hasPayload ? keep.map((i) => b.payload(i)!) : [];
  const idsAt = ITEM_BATCH_HEADER_BYTES;
  const vectorsAt = pad4(idsAt + blobsBytes(ids));
  const width = b.dim * elementBytes[type];
  const payloadAt = pad4(vectorsAt + keep.length * width);
  const total = pad4(payloadAt + (hasPayload ? blobsBytes(payloads) : 0));
  const out = Buffer.alloc(total);
  writeHeader(out, elementTypeCodes[type], KIND_ITEMS, b.dim, hasPayload ? FLAG_PAYLOAD : 0, keep.length);
  writeBlobs(out, idsAt, ids);
  for (let j = 0; j < keep.length; j++) b.vectorBytes(keep[j]!).copy(out, vectorsAt + j * width);
  if (hasPayload) writeBlobs(out, payloadAt, payloads);
  return out;
}

/**
 * Compaction of a posting list: removes every item that a delete batch later in the value
 * names (the items no read can see), and nothing else. `segments` are the value's segments in
 * value order; the result holds, per segment, its new bytes, or null when nothing in it is
 * dead. Delete batches are kept whole: a segment still in flight to this replica, older than
 * the delete, must be killed by it when it lands. An item batch left with no items stays as an
 * empty batch, keeping the list's type and dim.
 *
 * Whether an item is removed depends only on the segments present, never on the order they
 * arrived in, and removing more of them later (or starting from an already pruned segment)
 * gives the same bytes: replicas that hold the same segments prune to the same bytes.
 * Throws KvError WRONG_TYPE when the value is not a posting list.
 */
export function pruneDeletedItems(segments: readonly Buffer[]): (Buffer | null)[] {
  const parsed = segments.map((s) => parseSegments(s));
  const out: (Buffer | null)[] = new Array<Buffer | null>(segments.length).fill(null);
  const dead = new Set<string>();
  for (let s = segments.length - 1; s >= 0; s--) {
    const batches = parsed[s]!;
    let parts: Buffer[] | null = null;
    for (let b = batches.length - 1; b >= 0; b--) {
      const batch = batches[b]!;
      let replaced: Buffer | null = null;
      if (batch.kind === 'deletes') {
        for (let i = 0; i < batch.count; i++) dead.add(batch.ids(i).toString('latin1'));
      } else if (dead.size > 0) {
        const keep: number[] = [];
        for (let i = 0; i < batch.count; i++) if (!dead.has(batch.ids(i).toString('latin1'))) keep.push(i);
        if (keep.length < batch.count) replaced = keepItems(batch, keep);
      }
      if (replaced && !parts) parts = batches.map((x) => x.bytes());
      if (replaced) parts![b] = replaced;
    }
    if (parts) out[s] = Buffer.concat(parts);
  }
  return out;
}

/**
 * True when `candidate` is what pruning could make of `stored`: the same batches, delete
 * batches byte for byte, and each item batch of the same shape holding a subsequence of the
 * stored items (ids, vectors and payloads equal).
 */
export function isPrunedForm(candidate: Buffer, stored: Buffer): boolean {
  let a: ItemBatch[];
  let b: ItemBatch[];
  try {
    a = parseSegments(candidate);
    b = parseSegments(stored);
  } catch {
    return false;
  }
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.kind !== y.kind) return false;
    if (x.kind === 'deletes') {
      if (!x.bytes().equals(y.bytes())) return false;
      continue;
    }
    if (x.type !== y.type || x.dim !== y.dim || x.count > y.count) return false;
    let j = 0;
    for (let k = 0; k < x.count; k++) {
      const id = x.ids(k);
      while (j < y.count && !y.ids(j).equals(id)) j++;
      if (j === y.count) return false;
      if (!x.vectorBytes(k).equals(y.vectorBytes(j))) return false;
      const px = x.payload(k);
      const py = y.payload(j);
      if (px ? !py || !px.equals(py) : py !== null && py.length > 0) return false;
      j++;
    }
  }
  return true;
}

/** The storage pruner for posting lists: a delete batch queues a prune; items may die. */
export const vectorItemPruner: SegmentPruner = Object.freeze({
  killsEarlier: holdsDeleteBatch,
  mayDie: looksLikeItemBatches,
  prune: pruneDeletedItems,
  prunedFrom: isPrunedForm,
});
