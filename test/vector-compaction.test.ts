/**
 * Compaction of vector posting lists: deleted items are physically removed, and nothing a
 * read can see changes. Checked as properties over random lists (reads, search, idempotence,
 * one canonical result whatever was pruned before), as CRDT laws over pruned payloads, and
 * over replicas (memory and LMDB stores) that receive segments in any order, prune at any
 * time and exchange records: none loses a live item, and all end with the same, fully
 * pruned bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeDeleteBatch, encodeItemBatch, parseSegments, pruneDeletedItems, vectorItemPruner } from '../src/compute/vector-items.js';
import { scoreSegments } from '../src/compute/vector-score.js';
import { type Record, emptyRecord, merge } from '../src/storage/record.js';
import { MemoryReplicaStore } from '../src/replica/memory-store.js';
import { LmdbReplicaStore } from '../src/replica/lmdb-store.js';
import type { ReplicaStore } from '../src/replica/store.js';
import { openStore } from '../src/storage/lmdb-store.js';
import { tempDir } from './helpers/tmp.js';

const dim = 3;
const ids = ['a', 'b', 'c', 'd', 'e'];

type BatchSpec = { kind: 'items'; items: { id: string; v: number[]; p?: string }[] } | { kind: 'deletes'; ids: string[] };

const itemArb = fc.record(
  { id: fc.constantFrom(...ids), v: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: dim, maxLength: dim }), p: fc.constantFrom('x', 'yy', '') },
  { requiredKeys: ['id', 'v'] },
);
const batchArb: fc.Arbitrary<BatchSpec> = fc.oneof(
  { weight: 3, arbitrary: fc.array(itemArb, { minLength: 1, maxLength: 4 }).map((items) => ({ kind: 'items' as const, items })) },
  { weight: 2, arbitrary: fc.uniqueArray(fc.constantFrom(...ids), { minLength: 1, maxLength: 3 }).map((d) => ({ kind: 'deletes' as const, ids: d })) },
);
/** A list: segments of one or two batches each (a segment is one append op). */
const listArb = fc.array(fc.array(batchArb, { minLength: 1, maxLength: 2 }), { minLength: 1, maxLength: 10 });

function encodeBatch(b: BatchSpec): Buffer {
  if (b.kind === 'deletes') return encodeDeleteBatch(b.ids.map((i) => Buffer.from(i)));
  const withPayloads = b.items.some((it) => it.p !== undefined);
  return encodeItemBatch({
    type: 'uint8',
    dim,
    items: b.items.map((it) => ({ id: Buffer.from(it.id), vector: it.v, ...(withPayloads ? { payload: Buffer.from(it.p ?? '') } : {}) })),
  });
}
const encodeList = (list: BatchSpec[][]): Buffer[] => list.map((seg) => Buffer.concat(seg.map(encodeBatch)));

/**
 * What a client can read of a list, computed here from the batches (not with the code under
 * test): live items in order, each as id, vector and payload. An id deleted is gone; appended
 * again, it moves to its new place.
 */
function readable(segments: Buffer[]): string[] {
  const live = new Map<string, string>();
  for (const s of segments) {
    for (const b of parseSegments(s)) {
      for (let i = 0; i < b.count; i++) {
        const id = b.ids(i).toString();
        live.delete(id);
        if (b.kind === 'items') live.set(id, `${id}:${b.vectorBytes(i).toString('hex')}:${b.payload(i)?.toString() ?? '-'}`);
      }
    }
  }
  return [...live.values()];
}

/** Items stored (live or not) per segment, and how many of them a later delete names. */
function census(segments: Buffer[]): { stored: number; dead: number } {
  const all = segments.flatMap((s) => parseSegments(s));
  let stored = 0;
  let dead = 0;
  all.forEach((b, at) => {
    if (b.kind !== 'items') return;
    for (let i = 0; i < b.count; i++) {
      stored++;
      const id = b.ids(i);
      if (all.slice(at + 1).some((later) => later.kind === 'deletes' && Array.from({ length: later.count }, (_, j) => later.ids(j)).some((x) => x.equals(id)))) dead++;
    }
  });
  return { stored, dead };
}

const applyPrune = (segments: Buffer[]): Buffer[] => {
  const next = pruneDeletedItems(segments);
  return segments.map((s, i) => next[i] ?? s);
};

async function top(segments: Buffer[], k: number): Promise<string[]> {
  const r = await scoreSegments(segments.flatMap((s) => parseSegments(s)), Float32Array.from([10, 200, 30]), 'L2', k, { yieldFn: async () => {} });
  return r.hits.map((h) => `${h.id.toString()}@${h.distance}`);
}

test('pruning removes exactly the items a later delete names; reads and search are unchanged; a second prune changes nothing', async () => {
  await fc.assert(
    fc.asyncProperty(listArb, async (list) => {
      const segments = encodeList(list);
      const pruned = applyPrune(segments);
      assert.deepEqual(readable(pruned), readable(segments), 'live items, their order, vectors and payloads');
      assert.deepEqual(await top(pruned, 4), await top(segments, 4), 'search');
      const before = census(segments);
      const after = census(pruned);
      assert.equal(after.dead, 0, 'no deleted item is left');
      assert.equal(after.stored, before.stored - before.dead, 'only deleted items were removed');
      for (let i = 0; i < segments.length; i++) assert.ok(pruned[i]!.length <= segments[i]!.length);
      assert.deepEqual(pruneDeletedItems(pruned), pruned.map(() => null), 'idempotent');
      // The declared shape survives even when every item is gone.
      if (segments.some((s) => parseSegments(s).some((b) => b.kind === 'items'))) {
        assert.ok(pruned.some((s) => parseSegments(s).some((b) => b.kind === 'items' && b.type === 'uint8' && b.dim === dim)));
      }
    }),
    { numRuns: 400 },
  );
});

test('pruning is canonical: starting from segments a replica pruned with only some of the list, the result is the same bytes', () => {
  fc.assert(
    fc.property(
      listArb.chain((list) => fc.tuple(fc.constant(list), fc.array(fc.boolean(), { minLength: list.length, maxLength: list.length }))),
      ([list, held]) => {
        const segments = encodeList(list);
        // A replica holding only some segments prunes them; its bytes then meet the rest.
        const heldIdx = segments.map((_, i) => i).filter((i) => held[i]);
        const partial = applyPrune(heldIdx.map((i) => segments[i]!));
        const mixed = segments.map((s, i) => (held[i] ? partial[heldIdx.indexOf(i)]! : s));
        assert.deepEqual(applyPrune(mixed).map((b) => b.toString('hex')), applyPrune(segments).map((b) => b.toString('hex')));
      },
    ),
    { numRuns: 400 },
  );
});

// ---- CRDT laws over records whose ops carry pruned payloads

const version = (i: number) => ({ ts: (i + 1) * 1024, node: 1 + (i % 3) });
const opId = (i: number) => {
  const b = Buffer.alloc(16);
  b.writeUInt32BE(i + 1, 12);
  return b;
};
const segmentDelta = (i: number, bytes: Buffer): Record => ({ ...emptyRecord(), appends: [{ version: version(i), opId: opId(i), bytes }] });

/** Three records over one list: each holds some ops, each op as its original or a pruned payload. */
const prunedRecords = listArb.chain((list) => {
  const segments = encodeList(list);
  // The original payload of each op, by op id.
  const original = new Map(segments.map((s, i) => [opId(i).toString('hex'), s]));
  const full = applyPrune(segments);
  const variants = segments.map((s, i) => [s, full[i]!]);
  const pick = fc.array(fc.integer({ min: 0, max: 2 }), { minLength: segments.length, maxLength: segments.length });
  const build = (p: number[]) =>
    p.reduce((acc: Record, choice, i) => (choice === 0 ? acc : merge(acc, segmentDelta(i, variants[i]![choice - 1]!))), emptyRecord());
  return fc.tuple(pick, pick, pick).map(([x, y, z]) => [build(x), build(y), build(z), original] as const);
});
const canon = (r: Record) => r.appends.map((s) => `${s.version.ts}/${s.opId.toString('hex')}/${s.bytes.toString('hex')}`);

test('merge stays commutative, associative and idempotent when replicas hold pruned payloads of the same ops', () => {
  fc.assert(
    fc.property(prunedRecords, ([a, b, c, original]) => {
      assert.deepEqual(canon(merge(a, b)), canon(merge(b, a)));
      assert.deepEqual(canon(merge(merge(a, b), c)), canon(merge(a, merge(b, c))));
      assert.deepEqual(canon(merge(a, a)), canon(a));
      // Once the merged records hold every op (so every delete a prune relied on), what merge
      // kept reads as the unpruned list.
      const all = merge(merge(a, b), c);
      if (all.appends.length === original.size) {
        assert.deepEqual(readable(all.appends.map((s) => s.bytes)), readable(all.appends.map((s) => original.get(s.opId.toString('hex'))!)));
      }
    }),
    { numRuns: 300 },
  );
});

// ---- replicas: segments in any order, prunes at any time, records exchanged (read repair)

type Event = { kind: 'deliver'; seg: number; to: number } | { kind: 'prune'; at: number } | { kind: 'sync'; from: number; to: number };

const scheduleArb = listArb.chain((list) =>
  fc.tuple(
    fc.constant(list),
    fc.array(
      fc.oneof(
        { weight: 4, arbitrary: fc.record({ kind: fc.constant('deliver' as const), seg: fc.nat(list.length - 1), to: fc.nat(2) }) },
        { weight: 2, arbitrary: fc.record({ kind: fc.constant('prune' as const), at: fc.nat(2) }) },
        { weight: 1, arbitrary: fc.record({ kind: fc.constant('sync' as const), from: fc.nat(2), to: fc.nat(2) }) },
      ),
      { maxLength: 40 },
    ),
  ),
);

const key = Buffer.from('list');
const now = 1_000_000;

async function replicasConverge(stores: ReplicaStore[], list: BatchSpec[][], events: Event[], ns = 'default'): Promise<void> {
  const segments = encodeList(list);
  const held = stores.map(() => new Set<number>());
  const valueOf = (s: ReplicaStore) => (s.read(ns, [key])[0]?.appends ?? []).map((x) => x.bytes);
  for (const e of events) {
    if (e.kind === 'deliver') {
      await stores[e.to]!.apply([{ ns, key, delta: segmentDelta(e.seg, segments[e.seg]!) }], now);
      held[e.to]!.add(e.seg);
    } else if (e.kind === 'prune') {
      await stores[e.at]!.pruneQueued(100);
    } else {
      const r = stores[e.from]!.read(ns, [key])[0];
      if (r) await stores[e.to]!.apply([{ ns, key, delta: r }], now);
      for (const i of held[e.from]!) held[e.to]!.add(i);
    }
    // Pruned payloads travel only inside whole records, with the deletes that justify them:
    // at every step a replica reads exactly as the original segments it holds.
    for (const [r, s] of stores.entries()) {
      assert.deepEqual(readable(valueOf(s)), readable(segments.filter((_, i) => held[r]!.has(i))), `replica ${r} after ${JSON.stringify(e)}`);
    }
  }
  // Everything reaches everyone, then the queued prunes run: all replicas hold the fully
  // pruned list, byte for byte.
  for (const s of stores) for (const [i, seg] of segments.entries()) await s.apply([{ ns, key, delta: segmentDelta(i, seg) }], now);
  for (const s of stores) await s.pruneQueued(100);
  const want = applyPrune(segments).map((b) => b.toString('hex'));
  for (const [r, s] of stores.entries()) {
    assert.deepEqual(valueOf(s).map((b) => b.toString('hex')), want, `replica ${r} ends fully pruned`);
    assert.deepEqual(readable(valueOf(s)), readable(segments));
  }
}

test('memory replicas: any delivery order, prunes and exchanges; nothing live is lost and all end with the same pruned bytes', async () => {
  await fc.assert(
    fc.asyncProperty(scheduleArb, async ([list, events]) => {
      await replicasConverge([0, 1, 2].map(() => new MemoryReplicaStore()), list, events);
    }),
    { numRuns: 300 },
  );
});

test('LMDB replicas: the same, through the store (chunks, the prune queue, payloads replaced on repair)', async () => {
  const dirs = [0, 1, 2].map(() => tempDir());
  // Small chunks, so that pruned ops also live inside chunks.
  const lmdb = dirs.map((d) => openStore({ path: d.path, durability: 'none', compactTailCount: 2, chunkBytesMax: 256, pruner: vectorItemPruner }));
  let run = 0;
  try {
    await fc.assert(
      fc.asyncProperty(scheduleArb, async ([list, events]) => {
        // A fresh namespace per run keeps runs independent.
        await replicasConverge(lmdb.map((s) => new LmdbReplicaStore(s)), list, events, `r${run++}`);
        for (const s of lmdb) assert.equal(s.pruneQueueLength(), 0, 'the queue drains');
      }),
      { numRuns: 60 },
    );
  } finally {
    for (const s of lmdb) await s.close();
    for (const d of dirs) d.cleanup();
  }
});

test('a store keeps its payload of an op when a peer sends one that is not a pruned form of it, and counts the refusal', async () => {
  const dir = tempDir();
  const store = openStore({ path: dir.path, durability: 'none', pruner: vectorItemPruner });
  try {
    const nsId = store.ensureNamespace('default');
    const items = [0, 1, 2].map((i) => ({ id: Buffer.from(`x${i}`), vector: [i, i, i] }));
    const original = encodeItemBatch({ type: 'uint8', dim, items });
    const pruned = encodeItemBatch({ type: 'uint8', dim, items: items.slice(1) });
    // Shorter, so merge would prefer it, but a different vector: not what pruning makes.
    const forged = encodeItemBatch({ type: 'uint8', dim, items: [{ id: items[1]!.id, vector: [9, 9, 9] }] });
    await store.write(() => store.apply(nsId, key, segmentDelta(0, original), now));
    await store.write(() => store.apply(nsId, key, segmentDelta(0, forged), now));
    assert.equal(store.pruned.refused, 1);
    assert.deepEqual(store.valuePieces(nsId, key, now), [original]);
    await store.write(() => store.apply(nsId, key, segmentDelta(0, pruned), now));
    assert.equal(store.pruned.refused, 1, 'a pruned form is taken');
    assert.deepEqual(store.valuePieces(nsId, key, now), [pruned]);
  } finally {
    await store.close();
    dir.cleanup();
  }
});

test('the LMDB prune queue is durable, and pruning frees the bytes it reports', async () => {
  const dir = tempDir();
  try {
    const items = Array.from({ length: 50 }, (_, i) => ({ id: Buffer.from(`item${i}`), vector: [i, i, i] }));
    const segments = [encodeItemBatch({ type: 'uint8', dim, items }), encodeDeleteBatch(items.slice(0, 40).map((it) => it.id))];
    let store = openStore({ path: dir.path, durability: 'fsync', pruner: vectorItemPruner });
    const nsId = store.ensureNamespace('default');
    for (const [i, s] of segments.entries()) await store.write(() => store.apply(nsId, key, segmentDelta(i, s), now));
    const sizeBefore = store.valueSize(nsId, key, now);
    const bytesBefore = store.totalBytes();
    assert.equal(store.pruneQueueLength(), 1);
    await store.close();

    store = openStore({ path: dir.path, durability: 'fsync', pruner: vectorItemPruner });
    assert.equal(store.pruneQueueLength(), 1, 'the queued prune survived the restart');
    const r = await store.pruneQueued(10);
    const sizeAfter = store.valueSize(nsId, key, now);
    assert.equal(r.records, 1);
    assert.equal(r.bytesFreed, sizeBefore - sizeAfter);
    assert.ok(sizeAfter < sizeBefore - 40 * dim, `40 items of ${dim} bytes plus ids are gone (${sizeBefore} -> ${sizeAfter})`);
    assert.equal(store.totalBytes(), bytesBefore - r.bytesFreed);
    assert.equal(store.pruneQueueLength(), 0);
    assert.deepEqual(readable(store.valuePieces(nsId, key, now)!), readable(segments));
    await store.close();
  } finally {
    dir.cleanup();
  }
});
