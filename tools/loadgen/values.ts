/**
 * Values for the load generator, generated from a seed. Every value is one or more frames;
 * a frame is a 16-byte header followed by payload bytes taken from a seeded pool:
 *
 *   magic u16 'RK' | writer u16 | version u32 | frame length u32 (incl. header) | checksum u32
 *
 * The checksum covers the key, writer, version, length and the payload, so a reader can check
 * a value it did not write: a wrong key, a torn or altered value, or garbage all fail. Appends
 * add whole frames, so a grown value is still a sequence of checkable frames. Without
 * `--verify` the checksum is left 0 and not computed (the payload hash is the only real cost).
 */
import { Random } from '../../src/common/random.js';

export const FRAME_HEADER_BYTES = 16;
const MAGIC = 0x524b; // 'RK'
const POOL_BYTES = 1 << 20;

/** FNV-1a 32 over a string's UTF-16 code units (keys are ASCII). */
export function hashKey32(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

function hashBytes32(buf: Buffer, start: number, end: number, seed: number): number {
  let h = seed;
  for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i]!, 0x01000193);
  return h >>> 0;
}

function checksum(keyHash: number, writer: number, version: number, length: number, buf: Buffer, start: number, end: number): number {
  let h = Math.imul(keyHash ^ writer, 0x9e3779b1);
  h = Math.imul(h ^ version, 0x85ebca6b);
  h = Math.imul(h ^ length, 0xc2b2ae35);
  h = hashBytes32(buf, start, end, h);
  // A zero checksum means "not computed"; keep real ones non-zero.
  return h >>> 0 || 1;
}

/** Makes values for one writer (a load process): versions count up from 1. */
export class ValueFactory {
  private readonly pool: Buffer;
  private version = 0;

  /** `writer` tells concurrent load processes apart (0..65535). */
  constructor(
    seed: number,
    readonly writer: number,
    readonly checksums: boolean,
  ) {
    if (!Number.isInteger(writer) || writer < 0 || writer > 0xffff) throw new RangeError(`'writer' must be in [0, 65535], got ${writer}`);
    const rng = new Random(seed, 0x7a1);
    this.pool = Buffer.allocUnsafe(POOL_BYTES);
    for (let i = 0; i < POOL_BYTES; i += 4) this.pool.writeUInt32LE(rng.nextU32(), i);
  }

  /** A fresh frame of exactly `lengthBytes` bytes (>= 16) for `key`, with the next version. */
  make(key: string, lengthBytes: number): Buffer {
    if (!Number.isInteger(lengthBytes) || lengthBytes < FRAME_HEADER_BYTES || lengthBytes - FRAME_HEADER_BYTES > POOL_BYTES) {
      throw new RangeError(`value length must be an integer in [${FRAME_HEADER_BYTES}, ${POOL_BYTES + FRAME_HEADER_BYTES}], got ${lengthBytes}`);
    }
    this.version = (this.version + 1) >>> 0;
    const version = this.version;
    const payload = lengthBytes - FRAME_HEADER_BYTES;
    const keyHash = hashKey32(key);
    const offset = Math.imul(keyHash ^ version, 0x9e3779b1) >>> 0;
    const from = offset % (POOL_BYTES - payload + 1);
    const out = Buffer.allocUnsafe(lengthBytes);
    this.pool.copy(out, FRAME_HEADER_BYTES, from, from + payload);
    out.writeUInt16BE(MAGIC, 0);
    out.writeUInt16BE(this.writer, 2);
    out.writeUInt32BE(version, 4);
    out.writeUInt32BE(lengthBytes, 8);
    const sum = this.checksums ? checksum(keyHash, this.writer, version, lengthBytes, out, FRAME_HEADER_BYTES, lengthBytes) : 0;
    out.writeUInt32BE(sum, 12);
    return out;
  }
}

/** What checking a value found. */
export interface VerifyResult {
  ok: boolean;
  frames: number;
  /** Why it failed: `bad-frame` (not a frame / wrong length), `no-checksum`, `checksum`. */
  reason?: 'bad-frame' | 'no-checksum' | 'checksum' | 'empty';
}

/** Checks that `value` is a sequence of intact frames written for `key`. */
export function verifyValue(key: string, value: Buffer): VerifyResult {
  if (value.length === 0) return { ok: false, frames: 0, reason: 'empty' };
  const keyHash = hashKey32(key);
  let at = 0;
  let frames = 0;
  while (at < value.length) {
    if (value.length - at < FRAME_HEADER_BYTES || value.readUInt16BE(at) !== MAGIC) return { ok: false, frames, reason: 'bad-frame' };
    const length = value.readUInt32BE(at + 8);
    if (length < FRAME_HEADER_BYTES || at + length > value.length) return { ok: false, frames, reason: 'bad-frame' };
    const stored = value.readUInt32BE(at + 12);
    if (stored === 0) return { ok: false, frames, reason: 'no-checksum' };
    const expected = checksum(keyHash, value.readUInt16BE(at + 2), value.readUInt32BE(at + 4), length, value, at + FRAME_HEADER_BYTES, at + length);
    if (stored !== expected) return { ok: false, frames, reason: 'checksum' };
    at += length;
    frames++;
  }
  return { ok: true, frames };
}
