/**
 * Seeded clustered data for the SPANN example and the VSEARCH benchmark: points drawn from
 * Gaussian blobs (one center and one spread per blob), either uint8 (SIFT-like, values rounded
 * and clipped to 0..255) or float32 (embedding-like). The same seed gives the same bytes.
 */
import { Random } from '../../src/common/random.js';

/** Element types the example stores (a subset of the item format's). */
export type DataType = 'uint8' | 'float32';

/** What `generateClustered` makes. */
export interface ClusteredSpec {
  /** Base vectors (indexed). */
  count: number;
  /** Held-out query vectors, drawn from the same blobs. */
  queries: number;
  dim: number;
  /** Number of Gaussian blobs. */
  blobs: number;
  type: DataType;
  seed: number;
  /**
   * Per-dimension standard deviation of a blob, drawn uniformly in [min, max] per blob.
   * Default: uint8 [8, 24] (centers in 32..223); float32 [0.3, 0.6] (centers N(0, 1)).
   */
  spread?: [number, number];
}

/** A data set: row i is `vectors[i * dim .. (i + 1) * dim)`; uint8 rows hold integers 0..255. */
export interface Dataset {
  type: DataType;
  dim: number;
  count: number;
  vectors: Float32Array;
  /** The blob each row was drawn from (for tests and diagnostics). */
  blobOf: Int32Array;
}

/** The base set and the held-out queries. */
export interface ClusteredData {
  base: Dataset;
  queries: Dataset;
  centers: Float32Array;
}

/** A standard normal deviate (Box-Muller; one of the pair, for simplicity). */
export function gaussian(rnd: Random): number {
  let u = 0;
  while (u === 0) u = rnd.nextDouble();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rnd.nextDouble());
}

/**
 * Draws `count + queries` points from `blobs` Gaussian blobs; the last `queries` points are the
 * held-out queries. Blob choice is uniform. Deterministic in `seed`.
 */
export function generateClustered(spec: ClusteredSpec): ClusteredData {
  const { count, queries, dim, blobs, type, seed } = spec;
  if (!(count >= 1 && queries >= 0 && dim >= 1 && blobs >= 1)) throw new RangeError('count, dim and blobs must be >= 1 and queries >= 0');
  const spread = spec.spread ?? (type === 'uint8' ? [8, 24] : [0.3, 0.6]);
  const rnd = new Random(seed, 1);
  const centers = new Float32Array(blobs * dim);
  const sigma = new Float64Array(blobs);
  for (let b = 0; b < blobs; b++) {
    for (let d = 0; d < dim; d++) centers[b * dim + d] = type === 'uint8' ? 32 + rnd.nextDouble() * 191 : gaussian(rnd);
    sigma[b] = spread[0] + rnd.nextDouble() * (spread[1] - spread[0]);
  }
  const total = count + queries;
  const all = new Float32Array(total * dim);
  const blobOf = new Int32Array(total);
  for (let i = 0; i < total; i++) {
    const b = rnd.nextInt(blobs);
    blobOf[i] = b;
    const s = sigma[b]!;
    for (let d = 0; d < dim; d++) {
      const x = centers[b * dim + d]! + s * gaussian(rnd);
      all[i * dim + d] = type === 'uint8' ? Math.min(255, Math.max(0, Math.round(x))) : x;
    }
  }
  return {
    base: { type, dim, count, vectors: all.subarray(0, count * dim), blobOf: blobOf.subarray(0, count) },
    queries: { type, dim, count: queries, vectors: all.subarray(count * dim), blobOf: blobOf.subarray(count) },
    centers,
  };
}

/** Row i of a data set as a float32 query (a view, no copy). */
export function row(ds: Dataset, i: number): Float32Array {
  return ds.vectors.subarray(i * ds.dim, (i + 1) * ds.dim);
}

/** Row i's elements in the item format's bytes (uint8: one byte each; float32: 4 bytes LE). */
export function rowBlob(ds: Dataset, i: number): Buffer {
  const v = row(ds, i);
  if (ds.type === 'uint8') return Buffer.from(Uint8Array.from(v));
  const copy = Float32Array.from(v);
  return Buffer.from(copy.buffer, copy.byteOffset, copy.byteLength);
}

/** A float32 query vector as the VSEARCH query blob (float32 LE). */
export function queryBlob(q: Float32Array): Buffer {
  const copy = Float32Array.from(q);
  return Buffer.from(copy.buffer, copy.byteOffset, copy.byteLength);
}
