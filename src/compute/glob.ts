/**
 * Redis glob matching over bytes (SCAN MATCH, KEYS): `*`, `?`, `[abc]`, `[^a-z]`, `\x`.
 * Iterative with one backtrack point for `*`, so a hostile pattern cannot blow up.
 */
export function globMatch(pattern: Buffer, subject: Buffer): boolean {
  let p = 0;
  let s = 0;
  let starP = -1;
  let starS = 0;
  while (s < subject.length) {
    if (p < pattern.length) {
      const c = pattern[p]!;
      if (c === 0x2a /* * */) {
        while (p < pattern.length && pattern[p] === 0x2a) p++;
        if (p === pattern.length) return true;
        starP = p;
        starS = s;
        continue;
      }
      if (c === 0x3f /* ? */) {
        p++;
        s++;
        continue;
      }
      if (c === 0x5b /* [ */) {
        const r = matchClass(pattern, p, subject[s]!);
        if (r.matched) {
          p = r.next;
          s++;
          continue;
        }
      } else {
        let lit = c;
        let next = p + 1;
        if (c === 0x5c /* \ */ && p + 1 < pattern.length) {
          lit = pattern[p + 1]!;
          next = p + 2;
        }
        if (lit === subject[s]) {
          p = next;
          s++;
          continue;
        }
      }
    }
    if (starP < 0) return false;
    p = starP;
    s = ++starS;
  }
  while (p < pattern.length && pattern[p] === 0x2a) p++;
  return p === pattern.length;
}

function matchClass(pattern: Buffer, open: number, ch: number): { matched: boolean; next: number } {
  let p = open + 1;
  let negate = false;
  if (pattern[p] === 0x5e /* ^ */) {
    negate = true;
    p++;
  }
  let matched = false;
  while (p < pattern.length && pattern[p] !== 0x5d /* ] */) {
    if (pattern[p] === 0x5c && p + 1 < pattern.length) {
      if (pattern[p + 1] === ch) matched = true;
      p += 2;
    } else if (p + 2 < pattern.length && pattern[p + 1] === 0x2d /* - */ && pattern[p + 2] !== 0x5d) {
      let lo = pattern[p]!;
      let hi = pattern[p + 2]!;
      if (lo > hi) [lo, hi] = [hi, lo];
      if (ch >= lo && ch <= hi) matched = true;
      p += 3;
    } else {
      if (pattern[p] === ch) matched = true;
      p++;
    }
  }
  // An unterminated class matches up to the end of the pattern, as in Redis.
  const next = p < pattern.length ? p + 1 : p;
  return { matched: negate ? !matched : matched, next };
}
