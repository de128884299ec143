/**
 * Key-choice distributions with YCSB's semantics (site.ycsb.generator): uniform, zipfian
 * (Gray et al.'s algorithm, as YCSB computes it, incl. zeta and its incremental update),
 * scrambled zipfian (zipfian over 10^10 items, hashed with FNV-1 64 onto the key space, so the
 * hot items are spread across the key space rather than clustered at its start) and latest
 * (zipfian over recency: the most recently inserted item is the most popular).
 */
import type { Random } from '../../src/common/random.js';

/** YCSB's default zipfian constant. */
export const ZIPFIAN_CONSTANT = 0.99;
/** Item count YCSB's ScrambledZipfianGenerator draws from before hashing. */
export const SCRAMBLED_ITEM_COUNT = 10_000_000_000;
/** zeta(SCRAMBLED_ITEM_COUNT, 0.99), the constant YCSB hard-codes (computing it takes minutes). */
export const SCRAMBLED_ZETAN = 26.46902820178302;

/** Draws integers. */
export interface IntGenerator {
  next(): number;
}

/** zeta(n, theta) = sum_{i=1..n} 1 / i^theta, continued from a partial sum over the first `from` items. */
export function zeta(n: number, theta: number, from = 0, initialSum = 0): number {
  let sum = initialSum;
  for (let i = from; i < n; i++) sum += 1 / Math.pow(i + 1, theta);
  return sum;
}

/** Uniform integers in [min, max]. */
export class UniformGenerator implements IntGenerator {
  constructor(
    private readonly rng: Random,
    readonly min: number,
    readonly max: number,
  ) {
    if (!(max >= min)) throw new RangeError(`uniform: empty range [${min}, ${max}]`);
  }

  next(): number {
    return this.rng.intBetween(this.min, this.max);
  }
}

/**
 * Zipfian integers in [min, max]: item min is the most popular, then min+1, ... (YCSB's
 * ZipfianGenerator). `nextBounded(itemCount)` draws from the first itemCount items and grows
 * zeta incrementally when the count grows (used by `latest`).
 */
export class ZipfianGenerator implements IntGenerator {
  readonly items: number;
  private readonly theta: number;
  private readonly alpha: number;
  private readonly zeta2theta: number;
  private readonly half: number;
  private zetan: number;
  private countForZeta: number;
  private eta: number;

  /** `zetan` may be given when known (it is O(items) to compute). */
  constructor(
    private readonly rng: Random,
    readonly min: number,
    readonly max: number,
    readonly constant = ZIPFIAN_CONSTANT,
    zetan?: number,
  ) {
    if (!(max >= min)) throw new RangeError(`zipfian: empty range [${min}, ${max}]`);
    if (!(constant > 0 && constant < 1)) throw new RangeError(`zipfian: constant must be in (0, 1), got ${constant}`);
    this.items = max - min + 1;
    this.theta = constant;
    this.zeta2theta = zeta(2, constant);
    this.alpha = 1 / (1 - constant);
    this.half = Math.pow(0.5, constant);
    this.zetan = zetan ?? zeta(this.items, constant);
    this.countForZeta = this.items;
    this.eta = this.etaFor(this.items);
  }

  next(): number {
    return this.nextBounded(this.items);
  }

  /** A value in [min, min + itemCount): zipfian over the first itemCount items. */
  nextBounded(itemCount: number): number {
    if (itemCount !== this.countForZeta) {
      if (itemCount > this.countForZeta) {
        this.zetan = zeta(itemCount, this.theta, this.countForZeta, this.zetan);
      } else {
        // YCSB forbids shrinking by default; recomputing keeps the draw correct instead.
        this.zetan = zeta(itemCount, this.theta);
      }
      this.countForZeta = itemCount;
      this.eta = this.etaFor(itemCount);
    }
    const u = this.rng.nextDouble();
    const uz = u * this.zetan;
    if (uz < 1) return this.min;
    if (uz < 1 + this.half) return this.min + 1;
    const ret = this.min + Math.floor(itemCount * Math.pow(this.eta * u - this.eta + 1, this.alpha));
    // Rounding at u -> 1 could touch the bound.
    return Math.min(ret, this.min + itemCount - 1);
  }

  private etaFor(itemCount: number): number {
    return (1 - Math.pow(2 / itemCount, 1 - this.theta)) / (1 - this.zeta2theta / this.zetan);
  }
}

/** Zipfian popularity, with the popular items scattered over [min, max] by FNV-1 64 (YCSB's default). */
export class ScrambledZipfianGenerator implements IntGenerator {
  private readonly zipfian: ZipfianGenerator;
  private readonly itemCount: number;

  constructor(
    rng: Random,
    readonly min: number,
    readonly max: number,
    constant = ZIPFIAN_CONSTANT,
  ) {
    if (!(max >= min)) throw new RangeError(`scrambled zipfian: empty range [${min}, ${max}]`);
    this.itemCount = max - min + 1;
    const zetan = constant === ZIPFIAN_CONSTANT ? SCRAMBLED_ZETAN : undefined;
    this.zipfian = new ZipfianGenerator(rng, 0, SCRAMBLED_ITEM_COUNT, constant, zetan);
  }

  next(): number {
    return this.min + fnvHash64Mod(this.zipfian.next(), this.itemCount);
  }
}

/**
 * YCSB's SkewedLatestGenerator: `latest - zipfian(latest + 1)`, where `latest()` is the highest
 * item known to exist (it grows as inserts are acknowledged).
 */
export class LatestGenerator implements IntGenerator {
  private readonly zipfian: ZipfianGenerator;

  constructor(
    rng: Random,
    private readonly latest: () => number,
  ) {
    this.zipfian = new ZipfianGenerator(rng, 0, Math.max(1, latest()));
  }

  next(): number {
    const max = this.latest();
    return max - this.zipfian.nextBounded(max + 1);
  }
}

// ---------------------------------------------------------------- FNV-1 64 (YCSB's Utils.fnvhash64)

const FNV_OFFSET_HI = 0xcbf29ce4;
const FNV_OFFSET_LO = 0x84222325;

/**
 * YCSB's `Utils.fnvhash64(val)` for 0 <= val < 2^53: FNV-1 over the 8 little-endian octets of
 * the long, then `Math.abs` of the signed result. Returned as [hi, lo] unsigned 32-bit halves.
 */
export function fnvHash64(value: number): [hi: number, lo: number] {
  let vHi = Math.floor(value / 4294967296) >>> 0;
  let vLo = value >>> 0;
  let hi = FNV_OFFSET_HI;
  let lo = FNV_OFFSET_LO;
  for (let i = 0; i < 8; i++) {
    const octet = vLo & 0xff;
    vLo = ((vLo >>> 8) | (vHi << 24)) >>> 0;
    vHi = vHi >>> 8;
    lo = (lo ^ octet) >>> 0;
    // (hi:lo) * 0x100000001b3 mod 2^64 = (hi:lo) * 0x1b3 + (lo << 40)
    const loProduct = lo * 0x1b3; // < 2^41: exact
    const carry = Math.floor(loProduct / 4294967296);
    const newLo = loProduct >>> 0;
    hi = (Math.imul(hi, 0x1b3) + carry + (lo << 8)) >>> 0;
    lo = newLo;
  }
  if (hi & 0x80000000) {
    // Math.abs of a negative long: two's complement negation.
    lo = (~lo + 1) >>> 0;
    hi = (~hi + (lo === 0 ? 1 : 0)) >>> 0;
  }
  return [hi, lo];
}

/** fnvHash64(value) mod n, for 1 <= n <= 2^32. */
export function fnvHash64Mod(value: number, n: number): number {
  const [hi, lo] = fnvHash64(value);
  // (hi * 2^32 + lo) mod n, in steps that stay below 2^53.
  const hiMod = hi % n;
  const shifted = mulMod(hiMod, 4294967296 % n, n);
  return (shifted + (lo % n)) % n;
}

/** fnvHash64(value) as YCSB prints it (decimal), for key names `user<hash>`. */
export function fnvHash64Decimal(value: number): string {
  const [hi, lo] = fnvHash64(value);
  return ((BigInt(hi) << 32n) | BigInt(lo)).toString();
}

/** a * b mod n without losing precision (a, b < n <= 2^32). */
function mulMod(a: number, b: number, n: number): number {
  if (a * b < 9007199254740992) return (a * b) % n;
  // Split b into 16-bit halves: a * b = a * bHi * 2^16 + a * bLo, each product < 2^48.
  const bHi = Math.floor(b / 65536);
  const bLo = b % 65536;
  return (((a * bHi) % n) * 65536 % n + (a * bLo) % n) % n;
}
