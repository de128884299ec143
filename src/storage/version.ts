/**
 * Versions are hybrid-logical-clock timestamps with the writing node as tie-break.
 * `ts` = wall milliseconds × 1024 + logical counter (fits a double exactly until year 8900);
 * encoded big-endian so that byte order is version order.
 */
export interface Version {
  readonly ts: number;
  readonly node: number;
}

export const versionBytes = 12;
export const logicalPerMs = 1024;
const two32 = 0x1_0000_0000;

export const zeroVersion: Version = Object.freeze({ ts: 0, node: 0 });

/** Negative, zero or positive as a is older than, equal to or newer than b. */
export function compareVersions(a: Version, b: Version): number {
  return a.ts !== b.ts ? a.ts - b.ts : a.node - b.node;
}

export function isNewer(a: Version, b: Version | null | undefined): boolean {
  return b == null || compareVersions(a, b) > 0;
}

export function maxVersion(a: Version | null, b: Version | null): Version | null {
  if (a === null) return b;
  if (b === null) return a;
  return compareVersions(a, b) >= 0 ? a : b;
}

export function writeVersion(buf: Buffer, offset: number, v: Version): void {
  buf.writeUInt32BE(Math.floor(v.ts / two32), offset);
  buf.writeUInt32BE(v.ts >>> 0, offset + 4);
  buf.writeUInt32BE(v.node >>> 0, offset + 8);
}

export function readVersion(buf: Buffer, offset: number): Version {
  return {
    ts: buf.readUInt32BE(offset) * two32 + buf.readUInt32BE(offset + 4),
    node: buf.readUInt32BE(offset + 8),
  };
}

/** The version that expiry at `atMs` stands for: it covers every write stamped at or before atMs. */
export function expiryTombVersion(atMs: number): Version {
  return { ts: atMs * logicalPerMs + (logicalPerMs - 1), node: 0xffff_ffff };
}

/** Wall-clock milliseconds of a version. */
export function versionMs(v: Version): number {
  return tsMs(v.ts);
}

/** Wall-clock milliseconds of a version timestamp. */
export function tsMs(ts: number): number {
  return Math.floor(ts / logicalPerMs);
}
