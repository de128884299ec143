/**
 * The part of a key that placement hashes: the bytes inside the first `{...}` when that is
 * non-empty (so `doc:{42}:chunk:7` and `doc:{42}` land on the same replicas), else the key.
 * Same rule as Redis Cluster, so users' existing key designs keep their meaning.
 */
export function hashTagOf(key: Buffer): Buffer {
  const open = key.indexOf(0x7b /* { */);
  if (open < 0) return key;
  const close = key.indexOf(0x7d /* } */, open + 1);
  if (close < 0 || close === open + 1) return key;
  return key.subarray(open + 1, close);
}
