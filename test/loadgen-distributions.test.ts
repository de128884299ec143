import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  fnvHash64,
  fnvHash64Decimal,
  fnvHash64Mod,
  LatestGenerator,
  ScrambledZipfianGenerator,
  UniformGenerator,
  ZipfianGenerator,
  type IntGenerator,
} from '../tools/loadgen/distributions.js';
import { Random } from '../src/common/random.js';

/** YCSB's Utils.fnvhash64 written with BigInt, as the reference for the 32-bit version. */
function fnvReference(value: number): bigint {
  let h = 0xcbf29ce484222325n;
  let v = BigInt(value);
  for (let i = 0; i < 8; i++) {
    h ^= v & 0xffn;
    v >>= 8n;
    h = BigInt.asUintN(64, h * 1099511628211n);
  }
  const signed = BigInt.asIntN(64, h);
  return signed < 0n ? -signed : signed;
}

function counts(gen: IntGenerator, n: number, samples: number): number[] {
  const c = new Array<number>(n).fill(0);
  for (let i = 0; i < samples; i++) {
    const v = gen.next();
    assert.ok(Number.isInteger(v) && v >= 0 && v < n, `sample ${v} outside [0, ${n})`);
    c[v]!++;
  }
  return c;
}

function zetaIndependent(n: number, theta: number): number {
  let s = 0;
  for (let i = n; i >= 1; i--) s += i ** -theta;
  return s;
}

describe('Random', () => {
  it('replays the same sequence from the same seed and differs across seeds and streams', () => {
    const seq = (r: Random) => Array.from({ length: 16 }, () => r.nextU32());
    assert.deepEqual(seq(new Random(42)), seq(new Random(42)));
    assert.notDeepEqual(seq(new Random(42)), seq(new Random(43)));
    assert.notDeepEqual(seq(new Random(42, 0)), seq(new Random(42, 1)));
  });

  it('keeps doubles in [0, 1) and ints in their bounds', () => {
    const r = new Random(7);
    let seenMin = false;
    let seenMax = false;
    for (let i = 0; i < 20_000; i++) {
      const d = r.nextDouble();
      assert.ok(d >= 0 && d < 1);
      const k = r.intBetween(3, 9);
      assert.ok(k >= 3 && k <= 9);
      seenMin ||= k === 3;
      seenMax ||= k === 9;
    }
    assert.ok(seenMin && seenMax, 'both ends of an inclusive range are drawn');
    assert.throws(() => r.nextInt(0), RangeError);
  });
});

describe('uniform', () => {
  it('passes a chi-square test over 100 buckets', () => {
    const n = 100;
    const samples = 100_000;
    const c = counts(new UniformGenerator(new Random(1), 0, n - 1), n, samples);
    const expected = samples / n;
    const chi2 = c.reduce((s, x) => s + (x - expected) ** 2 / expected, 0);
    // Critical value of chi-square with 99 degrees of freedom at p = 0.001.
    assert.ok(chi2 < 148.2, `chi-square ${chi2.toFixed(1)} too large for uniform`);
  });
});

describe('zipfian (0.99, as YCSB computes it)', () => {
  const n = 1000;
  const samples = 200_000;
  const c = counts(new ZipfianGenerator(new Random(3), 0, n - 1), n, samples);
  const zetan = zetaIndependent(n, 0.99);

  it('gives the most popular items their expected share', () => {
    // P(item 0) = 1 / zeta(n), P(item 1) = 2^-0.99 / zeta(n) exactly in Gray's algorithm.
    for (const rank of [0, 1]) {
      const expected = (rank + 1) ** -0.99 / zetan;
      const got = c[rank]! / samples;
      assert.ok(Math.abs(got - expected) / expected < 0.03, `rank ${rank}: share ${got.toFixed(4)}, expected ${expected.toFixed(4)}`);
    }
  });

  it('has a rank-frequency slope near -0.99 on a log-log scale', () => {
    // Least squares over ranks 1..64 (the head, where counts are large).
    const xs: number[] = [];
    const ys: number[] = [];
    for (let r = 1; r <= 64; r++) {
      xs.push(Math.log(r));
      ys.push(Math.log(c[r - 1]!));
    }
    const mx = xs.reduce((a, b) => a + b) / xs.length;
    const my = ys.reduce((a, b) => a + b) / ys.length;
    let num = 0;
    let den = 0;
    for (let i = 0; i < xs.length; i++) {
      num += (xs[i]! - mx) * (ys[i]! - my);
      den += (xs[i]! - mx) ** 2;
    }
    const slope = num / den;
    assert.ok(Math.abs(slope + 0.99) < 0.1, `slope ${slope.toFixed(3)}`);
  });

  it('draws only the first itemCount items with nextBounded and grows zeta incrementally', () => {
    const z = new ZipfianGenerator(new Random(5), 0, 99);
    for (let i = 0; i < 5000; i++) assert.ok(z.nextBounded(10) < 10);
    const grown = counts({ next: () => z.nextBounded(500) }, 500, 50_000);
    const expectedTop = 1 / zetaIndependent(500, 0.99);
    assert.ok(Math.abs(grown[0]! / 50_000 - expectedTop) / expectedTop < 0.06, 'top share after growing to 500 items');
  });
});

describe('scrambled zipfian', () => {
  it('matches YCSB FNV-1 64 (user6284781860667377211 is YCSB key 0)', () => {
    assert.equal(fnvHash64Decimal(0), '6284781860667377211');
    const r = new Random(11);
    for (let i = 0; i < 2000; i++) {
      const v = i < 1000 ? i : Math.floor(r.nextDouble() * 2 ** 53);
      const [hi, lo] = fnvHash64(v);
      const ref = fnvReference(v);
      assert.equal((BigInt(hi) << 32n) | BigInt(lo), ref, `value ${v}`);
      assert.equal(fnvHash64Mod(v, 999_983), Number(ref % 999_983n));
    }
  });

  it('keeps zipfian skew but spreads the hot items over the key space', () => {
    const n = 1000;
    const samples = 200_000;
    const c = counts(new ScrambledZipfianGenerator(new Random(9), 0, n - 1), n, samples);
    const byPopularity = c.map((count, item) => ({ count, item })).sort((a, b) => b.count - a.count);
    // Skewed: the hottest item carries about 1/zeta(10^10) = 3.8% (uniform would be 0.1%).
    assert.ok(byPopularity[0]!.count / samples > 0.03, `hottest share ${byPopularity[0]!.count / samples}`);
    // Spread: the ten hottest items are not the first ten keys, and sit in several deciles.
    const hot = byPopularity.slice(0, 10).map((x) => x.item);
    assert.ok(hot.some((i) => i >= 10), 'hot items are not clustered at the start');
    const deciles = new Set(hot.map((i) => Math.floor(i / 100)));
    assert.ok(deciles.size >= 4, `hot items fall in ${deciles.size} deciles: ${hot.join(',')}`);
  });
});

describe('latest', () => {
  it('favours the most recent items and follows the latest as it grows', () => {
    let latest = 999;
    const gen = new LatestGenerator(new Random(13), () => latest);
    const samples = 100_000;
    let recent = 0;
    let newest = 0;
    for (let i = 0; i < samples; i++) {
      const v = gen.next();
      assert.ok(v >= 0 && v <= latest);
      if (v > latest - 10) recent++;
      if (v === latest) newest++;
    }
    // P(one of the 10 newest) = zeta(10) / zeta(1000).
    const expected = zetaIndependent(10, 0.99) / zetaIndependent(1000, 0.99);
    assert.ok(Math.abs(recent / samples - expected) / expected < 0.05, `recent share ${recent / samples}, expected ${expected}`);
    assert.ok(newest / samples > 0.1, 'the newest item is the most popular');
    latest = 1999;
    let moved = 0;
    for (let i = 0; i < 10_000; i++) if (gen.next() > 1989) moved++;
    assert.ok(moved / 10_000 > 0.3, 'after more inserts the newest keys are the hot ones');
  });
});

describe('determinism', () => {
  it('produces the same key sequence from the same seed', () => {
    const draw = (seed: number) => {
      const g = new ScrambledZipfianGenerator(new Random(seed), 0, 9999);
      return Array.from({ length: 100 }, () => g.next());
    };
    assert.deepEqual(draw(5), draw(5));
    assert.notDeepEqual(draw(5), draw(6));
  });
});
