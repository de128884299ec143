/**
 * Resolves Redis-style inclusive byte indices (negative counts from the end) against a value
 * of `size` bytes into a half-open [from, to) range; null when the range is empty.
 */
export function resolveByteRange(size: number, start: number, end: number): [number, number] | null {
  if (size === 0) return null;
  let s = start < 0 ? size + start : start;
  let e = end < 0 ? size + end : end;
  if (s < 0) s = 0;
  if (e < 0) e = 0;
  if (e >= size) e = size - 1;
  if (s > e) return null;
  return [s, e + 1];
}
