/**
 * The clustering half of SPANN, small and dependency-free: k-means++ seeding and Lloyd
 * iterations on a sample, assignment of every vector to its nearest centroid with SPANN's
 * boundary replication, nearest-centroid routing of queries, and exact brute-force k-NN for
 * ground truth. Squared L2 throughout, accumulated in doubles.
 */
import { Random } from '../../src/common/random.js';

/** Squared L2 distance of row `ai` of `a` and row `bi` of `b`, both of dimension `dim`. */
export function l2sq(a: Float32Array, ai: number, b: Float32Array, bi: number, dim: number): number {
  const pa = ai * dim;
  const pb = bi * dim;
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0, d = 0;
  const m = dim & ~3;
  for (; d < m; d += 4) {
    const x0 = a[pa + d]! - b[pb + d]!, x1 = a[pa + d + 1]! - b[pb + d + 1]!;
    const x2 = a[pa + d + 2]! - b[pb + d + 2]!, x3 = a[pa + d + 3]! - b[pb + d + 3]!;
    s0 += x0 * x0; s1 += x1 * x1; s2 += x2 * x2; s3 += x3 * x3;
  }
  for (; d < dim; d++) {
    const x = a[pa + d]! - b[pb + d]!;
    s0 += x * x;
  }
  return s0 + s1 + s2 + s3;
}

/**
 * Like `l2sq`, but gives up (returning a value > bound) once a partial sum exceeds `bound`:
 * checked every 32 dimensions. The result is exact whenever it is <= bound.
 */
export function l2sqBounded(a: Float32Array, ai: number, b: Float32Array, bi: number, dim: number, bound: number): number {
  const pa = ai * dim;
  const pb = bi * dim;
  let s = 0;
  let d = 0;
  while (d < dim) {
    const end = Math.min(dim, d + 32);
    let s0 = 0, s1 = 0;
    for (; d + 1 < end; d += 2) {
      const x0 = a[pa + d]! - b[pb + d]!, x1 = a[pa + d + 1]! - b[pb + d + 1]!;
      s0 += x0 * x0; s1 += x1 * x1;
    }
    for (; d < end; d++) {
      const x = a[pa + d]! - b[pb + d]!;
      s0 += x * x;
    }
    s += s0 + s1;
    if (s > bound) return s;
  }
  return s;
}

/** Options of `kmeans`. */
export interface KMeansOptions {
  seed: number;
  /** Points the centroids are trained on (a uniform sample without replacement; default all, at most 20000). */
  sampleSize?: number;
  /** Lloyd iterations after seeding (default 8). */
  iterations?: number;
  /** Called after seeding (iteration 0) and after each Lloyd iteration with the sample's inertia. */
  onIteration?: (iteration: number, inertia: number) => void;
}

/** What `kmeans` found. */
export interface KMeansResult {
  k: number;
  readonly dim: number;
  /** Centroid c is `centroids[c * dim .. (c + 1) * dim)`. */
  centroids: Float32Array;
  /** Sample inertia (sum of squared distances to the nearest centroid): after seeding, then after each iteration. */
  inertia: number[];
  sampleSize: number;
}

/** `n` distinct indices of 0..count-1 (partial Fisher-Yates), in ascending order. */
export function sampleIndices(count: number, n: number, rnd: Random): Int32Array {
  if (n >= count) return Int32Array.from({ length: count }, (_, i) => i);
  const perm = Int32Array.from({ length: count }, (_, i) => i);
  for (let i = 0; i < n; i++) {
    const j = i + rnd.nextInt(count - i);
    const t = perm[i]!;
    perm[i] = perm[j]!;
    perm[j] = t;
  }
  return perm.slice(0, n).sort();
}

/** Index of the nearest centroid to row `i` of `data` and its squared distance. */
export function nearestCentroid(data: Float32Array, i: number, centroids: Float32Array, k: number, dim: number): [number, number] {
  let best = -1;
  let bestD = Infinity;
  for (let c = 0; c < k; c++) {
    const d = l2sqBounded(data, i, centroids, c, dim, bestD);
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return [best, bestD];
}

/**
 * k-means on the rows of `data` (count x dim): k-means++ seeding on a sample, then Lloyd
 * iterations on that sample. An emptied cluster is re-seeded at the sample point farthest
 * from its centroid. Deterministic in `options.seed`.
 */
export function kmeans(data: Float32Array, count: number, dim: number, k: number, options: KMeansOptions): KMeansResult {
  if (!(k >= 1 && k <= count)) throw new RangeError(`k must be 1..${count}, got ${k}`);
  const rnd = new Random(options.seed, 2);
  const sampleSize = Math.max(k, Math.min(count, options.sampleSize ?? Math.min(count, 20_000)));
  const iterations = options.iterations ?? 8;
  const idx = sampleIndices(count, sampleSize, rnd);
  const n = idx.length;
  const sample = new Float32Array(n * dim);
  for (let s = 0; s < n; s++) sample.set(data.subarray(idx[s]! * dim, (idx[s]! + 1) * dim), s * dim);

  // k-means++: each next centroid is a sample point drawn with probability ~ D(x)^2.
  const centroids = new Float32Array(k * dim);
  const d2 = new Float64Array(n).fill(Infinity);
  const assign = new Int32Array(n);
  const first = rnd.nextInt(n);
  for (let c = 0; c < k; c++) {
    const pick = c === 0 ? first : pickWeighted(d2, rnd);
    centroids.set(sample.subarray(pick * dim, (pick + 1) * dim), c * dim);
    for (let s = 0; s < n; s++) {
      const d = l2sqBounded(sample, s, centroids, c, dim, d2[s]!);
      if (d < d2[s]!) {
        d2[s] = d;
        assign[s] = c;
      }
    }
  }
  const inertia: number[] = [sum(d2)];
  options.onIteration?.(0, inertia[0]!);

  const sums = new Float64Array(k * dim);
  const sizes = new Int32Array(k);
  for (let it = 1; it <= iterations; it++) {
    // Update: centroids = means of their points.
    sums.fill(0);
    sizes.fill(0);
    for (let s = 0; s < n; s++) {
      const c = assign[s]!;
      sizes[c]!++;
      const ps = s * dim;
      const pc = c * dim;
      for (let d = 0; d < dim; d++) sums[pc + d] += sample[ps + d]!;
    }
    for (let c = 0; c < k; c++) {
      if (sizes[c] === 0) continue;
      const inv = 1 / sizes[c]!;
      for (let d = 0; d < dim; d++) centroids[c * dim + d] = sums[c * dim + d]! * inv;
    }
    // Re-seed empty clusters at the farthest points (from the last assignment).
    for (let c = 0; c < k; c++) {
      if (sizes[c] !== 0) continue;
      let far = 0;
      for (let s = 1; s < n; s++) if (d2[s]! > d2[far]!) far = s;
      centroids.set(sample.subarray(far * dim, (far + 1) * dim), c * dim);
      d2[far] = 0;
    }
    // Assign: nearest centroid, starting from the previous one (a good first bound).
    for (let s = 0; s < n; s++) {
      let best = assign[s]!;
      let bestD = l2sq(sample, s, centroids, best, dim);
      for (let c = 0; c < k; c++) {
        if (c === assign[s]) continue;
        const d = l2sqBounded(sample, s, centroids, c, dim, bestD);
        if (d < bestD) {
          bestD = d;
          best = c;
        }
      }
      assign[s] = best;
      d2[s] = bestD;
    }
    inertia.push(sum(d2));
    options.onIteration?.(it, inertia[it]!);
  }
  return { k, dim, centroids, inertia, sampleSize: n };
}

function sum(a: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  return s;
}

function pickWeighted(w: Float64Array, rnd: Random): number {
  const total = sum(w);
  if (!(total > 0)) return rnd.nextInt(w.length);
  let r = rnd.nextDouble() * total;
  for (let i = 0; i < w.length; i++) {
    r -= w[i]!;
    if (r < 0) return i;
  }
  return w.length - 1;
}

/** Options of `assignWithReplication`. */
export interface AssignOptions {
  /** Most lists a vector goes to (default 2: nearest and, near a boundary, the second). */
  maxReplicas?: number;
  /**
   * SPANN's closure rule: a vector also goes to centroid j when dist(x, c_j) <= (1 + epsilon) *
   * dist(x, c_nearest), distances not squared (default 0.1).
   */
  epsilon?: number;
}

/**
 * Posting lists: for each centroid, the rows assigned to it (nearest centroid, plus up to
 * maxReplicas - 1 further centroids within SPANN's (1 + epsilon) boundary rule).
 */
export function assignWithReplication(data: Float32Array, count: number, centroids: Float32Array, k: number, dim: number, options: AssignOptions = {}): { lists: Int32Array[]; replicas: number } {
  const maxReplicas = Math.max(1, Math.min(k, options.maxReplicas ?? 2));
  const ratio = (1 + (options.epsilon ?? 0.1)) ** 2;
  const members: number[][] = Array.from({ length: k }, () => []);
  const bestC = new Int32Array(maxReplicas);
  const bestD = new Float64Array(maxReplicas);
  let replicas = 0;
  for (let i = 0; i < count; i++) {
    bestC.fill(-1);
    bestD.fill(Infinity);
    for (let c = 0; c < k; c++) {
      // Anything beyond (1+eps)^2 * nearest is never kept, nor beyond the current worst kept.
      const bound = Math.min(bestD[maxReplicas - 1]!, bestD[0]! * ratio);
      const d = l2sqBounded(data, i, centroids, c, dim, bound);
      if (!(d < bound) && bestC[0] !== -1) continue;
      // insert into the sorted short list
      let p = maxReplicas - 1;
      if (!(d < bestD[p]!)) continue;
      while (p > 0 && d < bestD[p - 1]!) {
        bestD[p] = bestD[p - 1]!;
        bestC[p] = bestC[p - 1]!;
        p--;
      }
      bestD[p] = d;
      bestC[p] = c;
    }
    members[bestC[0]!]!.push(i);
    for (let r = 1; r < maxReplicas; r++) {
      if (bestC[r]! < 0 || !(bestD[r]! <= bestD[0]! * ratio)) break;
      members[bestC[r]!]!.push(i);
      replicas++;
    }
  }
  return { lists: members.map((m) => Int32Array.from(m)), replicas };
}

/** The `n` centroids nearest to `query`, nearest first. */
export function nearestCentroids(query: Float32Array, centroids: Float32Array, k: number, dim: number, n: number): number[] {
  const m = Math.min(n, k);
  const ids = new Int32Array(m).fill(-1);
  const ds = new Float64Array(m).fill(Infinity);
  for (let c = 0; c < k; c++) {
    const d = l2sqBounded(query, 0, centroids, c, dim, ds[m - 1]!);
    if (!(d < ds[m - 1]!)) continue;
    let p = m - 1;
    while (p > 0 && d < ds[p - 1]!) {
      ds[p] = ds[p - 1]!;
      ids[p] = ids[p - 1]!;
      p--;
    }
    ds[p] = d;
    ids[p] = c;
  }
  return Array.from(ids);
}

/** Exact k nearest rows of `data` to each query row (brute force); ties by lower row index. */
export function bruteForceKnn(data: Float32Array, count: number, queries: Float32Array, nq: number, dim: number, k: number): Int32Array[] {
  const out: Int32Array[] = [];
  const ids = new Int32Array(k);
  const ds = new Float64Array(k);
  for (let q = 0; q < nq; q++) {
    ids.fill(-1);
    ds.fill(Infinity);
    for (let i = 0; i < count; i++) {
      const d = l2sqBounded(queries, q, data, i, dim, ds[k - 1]!);
      if (!(d < ds[k - 1]!)) continue;
      let p = k - 1;
      while (p > 0 && d < ds[p - 1]!) {
        ds[p] = ds[p - 1]!;
        ids[p] = ids[p - 1]!;
        p--;
      }
      ds[p] = d;
      ids[p] = i;
    }
    out.push(ids.slice());
  }
  return out;
}

/** recall@k of `found` (row indices, possibly with duplicates) against `truth`. */
export function recallAtK(found: readonly number[], truth: Int32Array, k: number): number {
  const want = new Set<number>();
  for (let i = 0; i < Math.min(k, truth.length); i++) want.add(truth[i]!);
  const seen = new Set<number>();
  for (const f of found) {
    if (seen.size >= k) break;
    seen.add(f);
  }
  let hit = 0;
  for (const f of seen) if (want.has(f)) hit++;
  return hit / want.size;
}

/**
 * SPFresh's split, done once after assignment: a list longer than `maxSize` is split with
 * k-means into ceil(size / targetSize) lists; the first part keeps the old centroid's slot and
 * the others get new centroids at the end. Returns the new centroids and lists (the count may grow).
 */
export function splitLargeLists(
  data: Float32Array, centroids: Float32Array, k: number, dim: number, lists: Int32Array[], maxSize: number, targetSize: number, seed: number,
): { centroids: Float32Array; k: number; lists: Int32Array[]; splits: number } {
  const cents: Float32Array[] = [];
  for (let c = 0; c < k; c++) cents.push(centroids.slice(c * dim, (c + 1) * dim));
  const out = lists.slice();
  let splits = 0;
  for (let c = 0; c < k; c++) {
    const members = lists[c]!;
    if (members.length <= maxSize) continue;
    const parts = Math.ceil(members.length / targetSize);
    const sub = new Float32Array(members.length * dim);
    for (let j = 0; j < members.length; j++) sub.set(data.subarray(members[j]! * dim, (members[j]! + 1) * dim), j * dim);
    const km = kmeans(sub, members.length, dim, parts, { seed: seed + c, iterations: 6 });
    const groups: number[][] = Array.from({ length: parts }, () => []);
    for (let j = 0; j < members.length; j++) groups[nearestCentroid(sub, j, km.centroids, parts, dim)[0]]!.push(members[j]!);
    for (let p = 0; p < parts; p++) {
      const centroid = km.centroids.slice(p * dim, (p + 1) * dim);
      const slot = p === 0 ? c : cents.length;
      cents[slot] = centroid;
      out[slot] = Int32Array.from(groups[p]!);
    }
    splits++;
  }
  const flat = new Float32Array(cents.length * dim);
  cents.forEach((cc, i) => flat.set(cc, i * dim));
  return { centroids: flat, k: cents.length, lists: out, splits };
}
