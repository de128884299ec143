/**
 * ragkv's seeded randomness (load generator, simulator, protocol jitter): xoshiro128** seeded through splitmix32, so
 * a seed replays a data set and an operation sequence exactly. Nothing in `loadgen` calls
 * Math.random.
 */

const TWO_POW_32 = 4294967296;
const TWO_POW_53 = 9007199254740992;

/** splitmix32 step: turns any 32-bit state into a well-mixed word (used for seeding). */
function splitmix32(state: number): [next: number, out: number] {
  const next = (state + 0x9e3779b9) >>> 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return [next, (z ^ (z >>> 16)) >>> 0];
}

/** A seeded pseudo-random generator (xoshiro128**, period 2^128 - 1). */
export class Random {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** `seed` is any safe integer; `stream` derives an independent sequence from the same seed. */
  constructor(seed: number, stream = 0) {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`'seed' must be a safe integer, got ${seed}`);
    if (!Number.isSafeInteger(stream) || stream < 0) throw new RangeError(`'stream' must be a non-negative integer, got ${stream}`);
    let state = (seed >>> 0) ^ Math.imul(Math.floor(seed / TWO_POW_32) >>> 0, 0x27d4eb2d);
    state = (state ^ Math.imul(stream + 1, 0x165667b1)) >>> 0;
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      const [next, out] = splitmix32(state);
      state = next;
      words.push(out);
    }
    // The all-zero state is the one state xoshiro never leaves.
    if ((words[0]! | words[1]! | words[2]! | words[3]!) === 0) words[0] = 1;
    [this.s0, this.s1, this.s2, this.s3] = words as [number, number, number, number];
  }

  /** A uniformly distributed unsigned 32-bit integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** A double in [0, 1) with 53 random bits. */
  nextDouble(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / TWO_POW_53;
  }

  /** An integer in [0, bound) without modulo bias; `bound` up to 2^53. */
  nextInt(bound: number): number {
    if (!(bound >= 1) || !Number.isSafeInteger(bound)) throw new RangeError(`'bound' must be a positive safe integer, got ${bound}`);
    if (bound <= TWO_POW_32) {
      // Lemire-style rejection on 32 bits.
      const limit = TWO_POW_32 - (TWO_POW_32 % bound);
      for (;;) {
        const x = this.nextU32();
        if (x < limit) return x % bound;
      }
    }
    return Math.floor(this.nextDouble() * bound);
  }

  /** An integer in [min, max], both inclusive. */
  intBetween(min: number, max: number): number {
    if (max < min) throw new RangeError(`empty range [${min}, ${max}]`);
    return min + this.nextInt(max - min + 1);
  }

  /** A new generator whose sequence is independent of this one's future output. */
  fork(): Random {
    return new Random(this.nextU32() * 2097152 + (this.nextU32() >>> 11), 0);
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
