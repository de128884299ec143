/**
 * Hash slots, exactly as Redis Cluster computes them: a key's slot is CRC16-CCITT (XMODEM:
 * polynomial 0x1021, initial 0) of its hash tag, mod 16384. The hash tag is the bytes inside
 * the first `{...}` when that is non-empty (so `doc:{42}:chunk:7` and `doc:{42}` share a
 * slot, hence replicas), else the whole key. The namespace does not change the slot. Lives in
 * common/ because storage indexes records by slot and placement assigns slots to members.
 */

/** Number of hash slots (Redis Cluster's). */
export const slotCount = 16384;

const crcTable = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 8;
    for (let j = 0; j < 8; j++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
    t[i] = c;
  }
  return t;
})();

/** CRC16-CCITT (XMODEM) of bytes [start, end). */
export function crc16(buf: Uint8Array, start = 0, end = buf.length): number {
  let crc = 0;
  for (let i = start; i < end; i++) crc = ((crc << 8) & 0xffff) ^ crcTable[((crc >> 8) ^ buf[i]!) & 0xff]!;
  return crc;
}

/** The part of a key that placement hashes (see the header). */
export function hashTagOf(key: Buffer): Buffer {
  const open = key.indexOf(0x7b /* { */);
  if (open < 0) return key;
  const close = key.indexOf(0x7d /* } */, open + 1);
  if (close < 0 || close === open + 1) return key;
  return key.subarray(open + 1, close);
}

/** A key's hash slot, 0..16383 (no allocation). */
export function keySlot(key: Uint8Array): number {
  let start = 0;
  let end = key.length;
  const open = key.indexOf(0x7b);
  if (open >= 0) {
    const close = key.indexOf(0x7d, open + 1);
    if (close > open + 1) {
      start = open + 1;
      end = close;
    }
  }
  return crc16(key, start, end) & (slotCount - 1);
}
