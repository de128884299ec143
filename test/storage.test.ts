import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { openStore, type LmdbStore } from '../src/storage/lmdb-store.js';
import { type Record, emptyRecord, merge, view } from '../src/storage/record.js';
import { opsArb } from './helpers/records.js';
import { decodeRecord, encodeRecord } from '../src/storage/record-codec.js';

/** The full CRDT state, in a comparable form. */
const state = (r: Record | null) =>
  r && {
    tomb: r.tomb,
    base: r.base && { v: r.base.version, value: r.base.value.toString('hex') },
    appends: r.appends.map((x) => [x.version, x.opId.toString('hex'), x.bytes.toString('hex')]),
    fields: [...r.fields.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, f]) => [k, f.version, f.value?.toString('hex') ?? null]),
    expiry: r.expiry,
  };
import { tempDir } from './helpers/tmp.js';

const now = 1_000_000;

function withStore(options: Partial<Parameters<typeof openStore>[0]>, fn: (store: LmdbStore, path: string) => Promise<void>) {
  return async () => {
    const dir = tempDir();
    const store = openStore({ path: dir.path, durability: 'none', ...options });
    try {
      await fn(store, dir.path);
    } finally {
      await store.close();
      dir.cleanup();
    }
  };
}

function observe(store: LmdbStore, nsId: number, key: Buffer) {
  return {
    exists: store.isLive(nsId, key, now),
    value: store.getValue(nsId, key, now)?.toString('hex') ?? null,
    size: store.valueSize(nsId, key, now),
    fields: store.getFields(nsId, key, now).map(([k, v]) => [k.toString('latin1'), v.toString('hex')]),
    fieldCount: store.fieldCount(nsId, key, now),
  };
}

function expected(r: Record) {
  const v = view(r, now);
  return {
    exists: v.exists,
    value: v.value?.toString('hex') ?? null,
    size: v.exists ? (v.value?.length ?? 0) : 0,
    fields: v.fields.map(([k, val]) => [k.toString('latin1'), val.toString('hex')]),
    fieldCount: v.fields.length,
  };
}

test(
  'the LMDB store applying deltas in any order, with repeats and compaction, reads as merge does',
  withStore({ compactTailCount: 3, chunkBytesMax: 48, inlineBaseBytesMax: 8 }, async (store) => {
    let keyNo = 0;
    await fc.assert(
      fc.asyncProperty(
        opsArb(40).chain((d) =>
          fc.tuple(
            fc.constant(d),
            fc.shuffledSubarray(d, { minLength: d.length, maxLength: d.length }),
            fc.array(fc.integer({ min: 0, max: d.length - 1 }), { maxLength: 8 }),
            fc.integer({ min: 1, max: 5 }),
          ),
        ),
        async ([deltas, shuffled, repeats, perTxn]) => {
          const key = Buffer.from(`k${keyNo++}`);
          const nsId = store.ensureNamespace('default');
          const order = [...shuffled, ...repeats.map((i) => deltas[i]!)];
          for (let i = 0; i < order.length; i += perTxn) {
            const batch = order.slice(i, i + perTxn);
            await store.write(() => batch.forEach((d) => store.apply(nsId, key, d, now)));
          }
          const model = deltas.reduce((acc, d) => merge(acc, d), emptyRecord());
          assert.deepEqual(observe(store, nsId, key), expected(model));
          // The full state read back (for replication) is the model's, and survives the wire codec.
          const stored = store.readRecord(nsId, key);
          const modelState = state(model);
          const empty = !model.tomb && !model.base && model.appends.length === 0 && model.fields.size === 0 && !model.expiry;
          assert.deepEqual(state(stored), empty ? null : modelState);
          if (stored) assert.deepEqual(state(decodeRecord(encodeRecord(stored))), modelState);
        },
      ),
      { numRuns: 300 },
    );
  }),
);

test(
  'GETRANGE-style partial reads return the same bytes as slicing the whole value',
  withStore({ compactTailCount: 4, chunkBytesMax: 64 }, async (store) => {
    const nsId = store.ensureNamespace('default');
    const key = Buffer.from('doc');
    const parts: Buffer[] = [];
    for (let i = 0; i < 50; i++) {
      const bytes = Buffer.from(`part-${i};`);
      parts.push(bytes);
      const opId = Buffer.alloc(16);
      opId.writeUInt32BE(i, 12);
      await store.write(() => store.apply(nsId, key, { ...emptyRecord(), appends: [{ version: { ts: (i + 1) * 1024, node: 1 }, opId, bytes }] }, now));
    }
    const whole = Buffer.concat(parts);
    assert.equal(store.getValue(nsId, key, now)!.toString(), whole.toString());
    for (const [s, e] of [[0, 1], [3, 40], [0, whole.length], [whole.length - 5, whole.length], [17, 18], [100, 250]] as const) {
      assert.equal(store.getValueRange(nsId, key, s, e, now).toString(), whole.subarray(s, e).toString(), `range ${s}..${e}`);
    }
  }),
);

test(
  'an append writes only its bytes: the header stays small and entries stay bounded as a record grows',
  withStore({}, async (store) => {
    const nsId = store.ensureNamespace('default');
    const key = Buffer.from('big');
    const base = Buffer.alloc(4 * 1024 * 1024, 0x61);
    await store.write(() => store.apply(nsId, key, { ...emptyRecord(), base: { version: { ts: 1024, node: 1 }, value: base } }, now));
    const appends = 2000;
    for (let i = 0; i < appends; i += 100) {
      await store.write(() => {
        for (let j = i; j < i + 100; j++) {
          const opId = Buffer.alloc(16);
          opId.writeUInt32BE(j, 12);
          store.apply(nsId, key, { ...emptyRecord(), appends: [{ version: { ts: (j + 2) * 1024, node: 1 }, opId, bytes: Buffer.from('0123456789') }] }, now);
        }
      });
    }
    const layout = store.layoutOf(nsId, key);
    assert.ok(layout.headerBytes < 128, `header is ${layout.headerBytes} bytes: it must not hold the value`);
    // 2000 small appends fold into chunks of up to 128 ops: far fewer entries than appends.
    assert.ok(layout.entries <= 1 + Math.ceil(appends / 32) + 32, `${layout.entries} segment entries for ${appends} appends`);
    assert.equal(store.valueSize(nsId, key, now), base.length + appends * 10);
    const v = store.getValue(nsId, key, now)!;
    assert.equal(v.length, base.length + appends * 10);
    assert.equal(v.subarray(base.length, base.length + 20).toString(), '01234567890123456789');
  }),
);

test('writes acknowledged with fsync durability are there after reopening', async () => {
  const dir = tempDir('ragkv.dotted.'); // a dot in the directory name must not make it a file
  try {
    let store = openStore({ path: dir.path, durability: 'fsync' });
    const nsId = store.ensureNamespace('docs');
    await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        store.write(() => store.apply(nsId, Buffer.from(`k${i}`), { ...emptyRecord(), base: { version: { ts: (i + 1) * 1024, node: 1 }, value: Buffer.from(`v${i}`) } }, now)),
      ),
    );
    const highTs = store.highTs;
    await store.close();
    store = openStore({ path: dir.path, durability: 'fsync' });
    assert.equal(store.namespaceId('docs'), nsId);
    assert.equal(store.keyCount(nsId), 200);
    assert.equal(store.highTs, highTs, 'the HLC high-water mark survives a restart');
    for (let i = 0; i < 200; i++) assert.equal(store.getValue(nsId, Buffer.from(`k${i}`), now)?.toString(), `v${i}`);
    await store.close();
    // Data in another storage format is refused, not misread.
    const { open } = await import('lmdb');
    const env = open({ path: dir.path, noSubdir: false });
    await env.openDB('system', { encoding: 'msgpack' }).put('format', 999);
    await env.close();
    assert.throws(() => openStore({ path: dir.path }), /storage format 999; this ragkv reads format 3/);
  } finally {
    dir.cleanup();
  }
});

test(
  'the write queue is bounded: writes over writeQueueMax are refused as OVERLOADED',
  withStore({ writeQueueMax: 4 }, async (store) => {
    const nsId = store.ensureNamespace('default');
    const writes = Array.from({ length: 6 }, (_, i) =>
      store.write(() => store.apply(nsId, Buffer.from(`q${i}`), { ...emptyRecord(), base: { version: { ts: (i + 1) * 1024, node: 1 }, value: Buffer.from('x') } }, now)),
    );
    const results = await Promise.allSettled(writes);
    const refused = results.filter((r) => r.status === 'rejected');
    assert.equal(refused.length, 2);
    for (const r of refused) {
      const err = (r as PromiseRejectedResult).reason;
      assert.equal(err.code, 'OVERLOADED');
      assert.match(err.message, /writeQueueMax/);
      assert.equal(err.retryable, true);
    }
    assert.equal(store.keyCount(nsId), 4, 'the accepted writes are all stored');
  }),
);

test(
  'expired records are swept into tombstones and stop counting',
  withStore({}, async (store) => {
    const nsId = store.ensureNamespace('default');
    for (let i = 0; i < 10; i++) {
      const version = { ts: (i + 1) * 1024, node: 1 };
      await store.write(() =>
        store.apply(nsId, Buffer.from(`e${i}`), { ...emptyRecord(), base: { version, value: Buffer.from('x') }, expiry: { version, atMs: i < 6 ? now - 1 : now + 10_000 } }, now - 100),
      );
    }
    assert.equal(store.keyCount(nsId), 10);
    assert.equal(store.isLive(nsId, Buffer.from('e0'), now), false, 'expired keys read as absent before the sweep');
    assert.equal(await store.sweepExpired(now, 100), 6);
    assert.equal(store.keyCount(nsId), 4);
    assert.equal(await store.sweepExpired(now, 100), 0);
  }),
);
