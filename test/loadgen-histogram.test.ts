import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LATENCY_US_MAX, LatencyHistogram, mergeHistograms } from '../tools/loadgen/histogram.js';
import { Random } from '../src/common/random.js';

/** Within HdrHistogram's 3 significant digits. */
function near(actual: number, expected: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= Math.max(1, expected * 0.001), `${what}: ${actual}, expected ${expected}`);
}

describe('LatencyHistogram', () => {
  it('computes percentiles of a known distribution (1..10000 us once each)', () => {
    const h = new LatencyHistogram();
    for (let us = 1; us <= 10_000; us++) h.recordUs(us);
    const s = h.summary();
    assert.equal(s.count, 10_000);
    near(s.p50Us, 5000, 'p50');
    near(s.p90Us, 9000, 'p90');
    near(s.p99Us, 9900, 'p99');
    near(s.p999Us, 9990, 'p99.9');
    near(s.maxUs, 10_000, 'max');
    near(s.meanUs, 5000.5, 'mean');
  });

  it('handles a skewed distribution: 99% fast, 1% stalled', () => {
    const h = new LatencyHistogram();
    for (let i = 0; i < 9900; i++) h.recordUs(200);
    for (let i = 0; i < 100; i++) h.recordUs(50_000);
    near(h.percentileUs(50), 200, 'p50');
    near(h.percentileUs(99), 200, 'p99');
    near(h.percentileUs(99.9), 50_000, 'p99.9');
  });

  it('rounds fractions, clamps negatives to 0 and huge values to the maximum', () => {
    const h = new LatencyHistogram();
    h.recordUs(-5);
    h.recordUs(1.4);
    h.recordUs(LATENCY_US_MAX * 10);
    assert.equal(h.count, 3);
    assert.equal(h.percentileUs(0), 0);
    near(h.summary().maxUs, LATENCY_US_MAX, 'max');
    assert.ok(Number.isNaN(new LatencyHistogram().summary().p50Us), 'an empty histogram has no percentiles');
  });

  it('merging two histograms equals one histogram of all samples', () => {
    const rng = new Random(21);
    const a = new LatencyHistogram();
    const b = new LatencyHistogram();
    const all = new LatencyHistogram();
    for (let i = 0; i < 50_000; i++) {
      // Log-uniform from 10 us to 1 s.
      const us = 10 * 10 ** (5 * rng.nextDouble());
      (i % 3 === 0 ? a : b).recordUs(us);
      all.recordUs(us);
    }
    const merged = mergeHistograms([a, b]);
    assert.deepEqual(merged.summary(), all.summary());
    for (const p of [1, 25, 50, 75, 90, 99, 99.9, 99.99]) assert.equal(merged.percentileUs(p), all.percentileUs(p), `p${p}`);
  });

  it('survives an encode/decode round trip (what child processes send)', () => {
    const rng = new Random(22);
    const h = new LatencyHistogram();
    for (let i = 0; i < 10_000; i++) h.recordUs(rng.intBetween(50, 200_000));
    const decoded = LatencyHistogram.decode(h.encode());
    assert.deepEqual(decoded.summary(), h.summary());
    // And a decoded histogram still merges.
    decoded.merge(h);
    assert.equal(decoded.count, 20_000);
    near(decoded.percentileUs(50), h.percentileUs(50), 'p50 after doubling');
  });
});
