/**
 * Latency histograms: a thin wrapper on hdr-histogram-js in whole microseconds with 3
 * significant digits, mergeable across processes through HdrHistogram's compressed encoding.
 */
import * as hdr from 'hdr-histogram-js';

/** Highest latency tracked exactly; longer ones are clamped here (and still counted). */
export const LATENCY_US_MAX = 3_600_000_000; // one hour

/** The percentiles every report shows, in microseconds. */
export interface LatencySummary {
  count: number;
  meanUs: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
}

/** Latencies in microseconds. */
export class LatencyHistogram {
  private readonly h: hdr.Histogram;

  constructor(from?: hdr.Histogram) {
    this.h =
      from ??
      hdr.build({
        bitBucketSize: 32,
        autoResize: false,
        lowestDiscernibleValue: 1,
        highestTrackableValue: LATENCY_US_MAX,
        numberOfSignificantValueDigits: 3,
      });
  }

  /** Records one latency in microseconds (fractions are rounded; negatives count as 0). */
  recordUs(us: number): void {
    const v = Math.round(us);
    this.h.recordValue(v <= 0 ? 0 : v >= LATENCY_US_MAX ? LATENCY_US_MAX : v);
  }

  get count(): number {
    return this.h.totalCount;
  }

  /** The value at a percentile in [0, 100], in microseconds (HdrHistogram's definition). */
  percentileUs(percentile: number): number {
    return this.h.totalCount === 0 ? NaN : this.h.getValueAtPercentile(percentile);
  }

  /** Adds every sample of `other` to this histogram. */
  merge(other: LatencyHistogram): void {
    this.h.add(other.h);
  }

  summary(): LatencySummary {
    const empty = this.h.totalCount === 0;
    return {
      count: this.h.totalCount,
      meanUs: empty ? NaN : this.h.mean,
      p50Us: this.percentileUs(50),
      p90Us: this.percentileUs(90),
      p99Us: this.percentileUs(99),
      p999Us: this.percentileUs(99.9),
      // From the buckets, like the percentiles, so a decoded copy reports the same maximum.
      maxUs: this.percentileUs(100),
    };
  }

  /** Compressed base64 (HdrHistogram V2 format): what a child process sends to its parent. */
  encode(): string {
    return hdr.encodeIntoCompressedBase64(this.h);
  }

  static decode(encoded: string): LatencyHistogram {
    return new LatencyHistogram(hdr.decodeFromCompressedBase64(encoded, 32, false));
  }
}

/** Merges histograms (e.g. one per operation type, or one per process) into a new one. */
export function mergeHistograms(histograms: Iterable<LatencyHistogram>): LatencyHistogram {
  const out = new LatencyHistogram();
  for (const h of histograms) out.merge(h);
  return out;
}
