/**
 * The frame of a session token (see coordinator/session.ts for what its entries hold):
 *   u8 version | u16 entry count | entries, oldest first
 * Clients need only this much to merge the tokens of replies that come back concurrently:
 * entries of one key are joined when the server reads the token, so concatenating two
 * tokens' entries (the newer last) is their merge.
 */
export const sessionTokenVersion = 1;
export const sessionTokenHeaderBytes = 3;

/** The merge of two tokens (`b` the newer), or `b` alone when the merge would exceed `bytesMax`. */
export function mergeSessionTokens(a: Buffer, b: Buffer, bytesMax: number): Buffer {
  if (a.length < sessionTokenHeaderBytes) return b;
  if (b.length < sessionTokenHeaderBytes) return a;
  if (a[0] !== sessionTokenVersion || b[0] !== sessionTokenVersion) return b;
  const bytes = a.length + b.length - sessionTokenHeaderBytes;
  const count = a.readUInt16BE(1) + b.readUInt16BE(1);
  if (bytes > bytesMax || count > 0xffff) return b;
  const out = Buffer.allocUnsafe(bytes);
  out[0] = sessionTokenVersion;
  out.writeUInt16BE(count, 1);
  a.copy(out, sessionTokenHeaderBytes, sessionTokenHeaderBytes);
  b.copy(out, a.length, sessionTokenHeaderBytes);
  return out;
}
