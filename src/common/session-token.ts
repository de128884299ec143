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
 * The client's token once a call's reply comes back while others ran concurrently:
 * `current` (what the client holds now) plus the entries of the call's `reply` that were not
 * in the token it was `sent` with (the keys the call touched), as the most recent; the oldest
 * entries go first when the result would exceed `bytesMax`. Two different entries of one key
 * may both stay (the server joins them). When `current` cannot be read, `reply` alone.
 */
export function mergeSessionTokens(current: Buffer, reply: Buffer, sent: Buffer, bytesMax: number): Buffer {
  const ec = sessionTokenEntries(current);
  const er = sessionTokenEntries(reply);
  if (!er) return reply;
  if (!ec || ec.length === 0) return reply;
  const id = (e: Buffer) => e.toString('latin1');
  const before = new Set((sessionTokenEntries(sent) ?? []).map(id));
  const fresh = er.filter((e) => !before.has(id(e)));
  const freshIds = new Set(fresh.map(id));
  const all = [...ec.filter((e) => !freshIds.has(id(e))), ...fresh]; // least recently used first
  let bytes = sessionTokenHeaderBytes;
  let from = all.length;
  while (from > 0 && bytes + all[from - 1]!.length <= bytesMax && all.length - from < 0xffff) bytes += all[--from]!.length;
  const out = Buffer.allocUnsafe(bytes);
  out[0] = sessionTokenVersion;
  out.writeUInt16BE(all.length - from, 1);
  let at = sessionTokenHeaderBytes;
  for (let i = from; i < all.length; i++) at += all[i]!.copy(out, at);
  return out;
}
