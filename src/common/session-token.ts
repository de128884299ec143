/**
 * The frame of a session token (see coordinator/session.ts for what its entries hold):
 *   u8 version | u16 entry count | entries, oldest first
 *   entry: u8 ns length | ns | u16 key length | key | u8 flags (1 delete, 2 value, 4 expiry,
 *          8 append) | a version per flag 1/2/4 | append: version + op id |
 *          u8 field count | per field: u16 name length | name | version
 * Clients need only this much to merge the tokens of replies that come back concurrently
 * (`mergeSessionTokens`); the server joins entries of one key when it reads the token.
 */
export const sessionTokenVersion = 1;
export const sessionTokenHeaderBytes = 3;
/** Bytes of a version and of an append's op id in an entry (the storage's sizes; session.ts checks they agree). */
export const sessionTokenVersionBytes = 12;
export const sessionTokenOpIdBytes = 16;

/** A token's entries (views into it), oldest first; null when it is not a token this code reads. */
export function sessionTokenEntries(t: Buffer): Buffer[] | null {
  if (t.length < sessionTokenHeaderBytes || t[0] !== sessionTokenVersion) return null;
  const n = t.readUInt16BE(1);
  const out: Buffer[] = [];
  let at = sessionTokenHeaderBytes;
  const skip = (k: number) => {
    at += k;
    return at <= t.length;
  };
  for (let i = 0; i < n; i++) {
    const start = at;
    if (!skip(1) || !skip(t[at - 1]!) || !skip(2) || !skip(t.readUInt16BE(at - 2)) || !skip(1)) return null;
    const flags = t[at - 1]!;
    const versions = (flags & 1) + ((flags >> 1) & 1) + ((flags >> 2) & 1) + ((flags >> 3) & 1);
    if (!skip(versions * sessionTokenVersionBytes + (flags & 8 ? sessionTokenOpIdBytes : 0)) || !skip(1)) return null;
    const fields = t[at - 1]!;
    for (let j = 0; j < fields; j++) {
      if (!skip(2) || !skip(t.readUInt16BE(at - 2) + sessionTokenVersionBytes)) return null;
    }
    out.push(t.subarray(start, at));
  }
  return at === t.length ? out : null;
}

/**
 * The merge of two tokens returned by concurrent calls (`b` the later reply), within
 * `bytesMax`. Each token holds its session's keys oldest first, the ones its call touched
 * last; the merge keeps the newest of both: entries are taken from the ends of the two
 * tokens alternately (so both calls' own keys come first), byte-identical entries once,
 * until `bytesMax` is reached: what falls off is the oldest. Two different entries of one
 * key both stay (the server joins them). When `a` cannot be read, `b` alone.
 */
export function mergeSessionTokens(a: Buffer, b: Buffer, bytesMax: number): Buffer {
  const ea = sessionTokenEntries(a);
  const eb = sessionTokenEntries(b);
  if (!eb) return b;
  if (!ea || ea.length === 0) return b;
  const seen = new Set<string>();
  const kept: Buffer[] = []; // newest first
  let bytes = sessionTokenHeaderBytes;
  let full = false;
  for (let d = 1; d <= Math.max(ea.length, eb.length) && !full; d++) {
    for (const e of [eb[eb.length - d], ea[ea.length - d]]) {
      if (!e) continue;
      const id = e.toString('latin1');
      if (seen.has(id)) continue;
      if (bytes + e.length > bytesMax || kept.length === 0xffff) {
        full = true;
        break;
      }
      seen.add(id);
      kept.push(e);
      bytes += e.length;
    }
  }
  const out = Buffer.allocUnsafe(bytes);
  out[0] = sessionTokenVersion;
  out.writeUInt16BE(kept.length, 1);
  let at = sessionTokenHeaderBytes;
  for (let i = kept.length - 1; i >= 0; i--) at += kept[i]!.copy(out, at);
  return out;
}
