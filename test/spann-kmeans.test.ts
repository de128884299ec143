import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateClustered } from '../examples/spann/dataset.js';
import { assignWithReplication, bruteForceKnn, kmeans, l2sq, l2sqBounded, nearestCentroid, nearestCentroids, recallAtK } from '../examples/spann/kmeans.js';

const small = { count: 2000, queries: 50, dim: 16, blobs: 20, type: 'uint8' as const, seed: 7 };

test('generator: same seed, same data; other seed, other data; uint8 rows are integers 0..255', () => {
  const a = generateClustered(small);
  const b = generateClustered(small);
  const c = generateClustered({ ...small, seed: 8 });
  assert.deepEqual(a.base.vectors, b.base.vectors);
  assert.deepEqual(a.queries.vectors, b.queries.vectors);
  assert.notDeepEqual(a.base.vectors, c.base.vectors);
  assert.equal(a.base.vectors.length, 2000 * 16);
  assert.equal(a.queries.vectors.length, 50 * 16);
  for (const x of a.base.vectors) assert.ok(Number.isInteger(x) && x >= 0 && x <= 255);
  const f = generateClustered({ ...small, type: 'float32' });
  assert.ok(f.base.vectors.some((x) => !Number.isInteger(x)));
});

test('generator: points lie near their own blob center', () => {
  const { base, centers } = generateClustered(small);
  let nearestIsOwn = 0;
  for (let i = 0; i < base.count; i++) {
    const [c] = nearestCentroid(base.vectors, i, centers, small.blobs, small.dim);
    if (c === base.blobOf[i]) nearestIsOwn++;
  }
  assert.ok(nearestIsOwn / base.count > 0.95, `${nearestIsOwn}/${base.count}`);
});

test('l2sqBounded: exact under the bound, above it otherwise', () => {
  const { base } = generateClustered({ ...small, dim: 100 });
  for (let i = 1; i < 50; i++) {
    const exact = l2sq(base.vectors, 0, base.vectors, i, 100);
    assert.equal(l2sqBounded(base.vectors, 0, base.vectors, i, 100, Infinity), exact);
    assert.ok(l2sqBounded(base.vectors, 0, base.vectors, i, 100, exact / 2) > exact / 2);
  }
});

test('k-means: deterministic in the seed, and Lloyd iterations never raise the inertia', () => {
  const { base } = generateClustered(small);
  const r1 = kmeans(base.vectors, base.count, small.dim, 20, { seed: 1, iterations: 6 });
  const r2 = kmeans(base.vectors, base.count, small.dim, 20, { seed: 1, iterations: 6 });
  assert.deepEqual(r1.centroids, r2.centroids);
  assert.deepEqual(r1.inertia, r2.inertia);
  assert.equal(r1.inertia.length, 7);
  for (let i = 1; i < r1.inertia.length; i++) assert.ok(r1.inertia[i]! <= r1.inertia[i - 1]! * (1 + 1e-9), `iteration ${i}: ${r1.inertia}`);
  assert.ok(r1.inertia[r1.inertia.length - 1]! < r1.inertia[0]!);
  // Sampled training works too.
  const s = kmeans(base.vectors, base.count, small.dim, 20, { seed: 1, iterations: 3, sampleSize: 500 });
  assert.equal(s.sampleSize, 500);
});

test('assignment: every vector is in its nearest centroid\'s list; copies only within (1+eps) of the nearest', () => {
  const { base } = generateClustered({ ...small, blobs: 40 });
  const k = 20;
  const { centroids } = kmeans(base.vectors, base.count, small.dim, k, { seed: 3, iterations: 4 });
  const { lists, replicas } = assignWithReplication(base.vectors, base.count, centroids, k, small.dim, { maxReplicas: 2, epsilon: 0.1 });
  const where = Array.from({ length: base.count }, () => [] as number[]);
  lists.forEach((l, c) => l.forEach((i) => where[i]!.push(c)));
  assert.equal(lists.reduce((n, l) => n + l.length, 0), base.count + replicas);
  for (let i = 0; i < base.count; i++) {
    const [nearest, d0] = nearestCentroid(base.vectors, i, centroids, k, small.dim);
    assert.ok(where[i]!.includes(nearest), `row ${i}`);
    assert.ok(where[i]!.length <= 2);
    for (const c of where[i]!) assert.ok(Math.sqrt(l2sq(base.vectors, i, centroids, c, small.dim)) <= 1.1 * Math.sqrt(d0) + 1e-9);
    // A second centroid within the rule must have been used.
    const second = nearestCentroids(base.vectors.subarray(i * small.dim, (i + 1) * small.dim), centroids, k, small.dim, 2)[1]!;
    const d1 = l2sq(base.vectors, i, centroids, second, small.dim);
    if (Math.sqrt(d1) < 1.1 * Math.sqrt(d0) * (1 - 1e-9)) assert.equal(where[i]!.length, 2, `row ${i}`);
  }
});

test('brute force k-NN and recall@k', () => {
  const { base, queries } = generateClustered(small);
  const truth = bruteForceKnn(base.vectors, base.count, queries.vectors, queries.count, small.dim, 10);
  for (let q = 0; q < 5; q++) {
    const all = Array.from({ length: base.count }, (_, i) => i).sort((a, b) => {
      const da = l2sq(queries.vectors, q, base.vectors, a, small.dim);
      const db = l2sq(queries.vectors, q, base.vectors, b, small.dim);
      return da - db || a - b;
    });
    assert.deepEqual(Array.from(truth[q]!), all.slice(0, 10));
  }
  const t = truth[0]!;
  assert.equal(recallAtK(Array.from(t), t, 10), 1);
  // duplicates count once
  assert.equal(recallAtK([t[0]!, t[0]!, t[1]!], t, 10), 0.2);
  assert.equal(recallAtK([-1, -2], t, 10), 0);
});

test('splitLargeLists: long lists are split into lists of about the target size, no vector lost', async () => {
  const { splitLargeLists } = await import('../examples/spann/kmeans.js');
  const { base } = generateClustered({ ...small, blobs: 10 });
  const { centroids } = kmeans(base.vectors, base.count, small.dim, 4, { seed: 5, iterations: 3 });
  const { lists } = assignWithReplication(base.vectors, base.count, centroids, 4, small.dim, { maxReplicas: 1 });
  const r = splitLargeLists(base.vectors, centroids, 4, small.dim, lists, 300, 200, 9);
  assert.ok(r.k > 4);
  assert.equal(r.centroids.length, r.k * small.dim);
  assert.equal(r.lists.length, r.k);
  const all = r.lists.flatMap((l) => Array.from(l)).sort((a, b) => a - b);
  assert.deepEqual(all, Array.from({ length: base.count }, (_, i) => i));
  assert.ok(Math.max(...r.lists.map((l) => l.length)) < 600);
});
