/**
 * The slot index: one hash slot's records read and dropped without scanning a namespace,
 * kept by every write that creates or removes a record header, built in place when a store
 * of the previous format is opened, and read alike by the LMDB and the in-memory replica.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { open } from 'lmdb';
import { openStore, type LmdbStore } from '../src/storage/lmdb-store.js';
import { type Record, emptyRecord, opIdBytes } from '../src/storage/record.js';
import type { Version } from '../src/storage/version.js';
import { keySlot, slotCount } from '../src/common/slots.js';
import { LmdbReplicaStore } from '../src/replica/lmdb-store.js';
import { MemoryReplicaStore } from '../src/replica/memory-store.js';
import type { ReplicaStore } from '../src/replica/store.js';
import { vectorItemPruner } from '../src/compute/vector-items.js';
import { type GenOp, type OpKind, toDelta } from './helpers/records.js';
import { tempDir } from './helpers/tmp.js';

const now = 1_000_000;
/** Format this code writes, and the one before it (upgraded in place). */
const currentFormat = 3;
const previousFormat = 2;
/** Records the upgrade indexes per transaction (lmdb-store.ts): the upgrade test crosses it. */
const buildBatch = 10_000;

let ts = 0;
const nextVersion = (): Version => ({ ts: ++ts * 1024, node: 1 });

function opId(n: number): Buffer {
  const b = Buffer.alloc(opIdBytes);
  b.writeUInt32BE(n, opIdBytes - 4);
  return b;
}

/** SET: a base (and no expiry). */
function setDelta(value: string): Record {
  const version = nextVersion();
  return { ...emptyRecord(), base: { version, value: Buffer.from(value) }, expiry: { version, atMs: 0 } };
}
/** APPEND: one segment. */
function appendDelta(bytes: string, n: number): Record {
  return { ...emptyRecord(), appends: [{ version: nextVersion(), opId: opId(n), bytes: Buffer.from(bytes) }] };
}
/** HSET of one field. */
function hsetDelta(name: string, value: string): Record {
  return { ...emptyRecord(), fields: new Map([[name, { version: nextVersion(), value: Buffer.from(value) }]]) };
}
/** EXPIRE at `atMs`. */
function expireDelta(atMs: number): Record {
  return { ...emptyRecord(), expiry: { version: nextVersion(), atMs } };
}
/** DEL: a tombstone. */
function delDelta(): Record {
  return { ...emptyRecord(), tomb: nextVersion() };
}

/** The full CRDT state, in a comparable form (as storage.test.ts). */
const state = (r: Record | null) =>
  r && {
    tomb: r.tomb,
    base: r.base && { v: r.base.version, value: r.base.value.toString('hex') },
    appends: r.appends.map((x) => [x.version, x.opId.toString('hex'), x.bytes.toString('hex')]),
    fields: [...r.fields.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, f]) => [k, f.version, f.value?.toString('hex') ?? null]),
    expiry: r.expiry,
  };

const names = (keys: Buffer[]) => keys.map((k) => k.toString('latin1'));
const sorted = (keys: Buffer[]) => [...keys].sort(Buffer.compare);

/** A key `prefix<n>` whose slot is `slot` (searched; about slotCount tries). */
function keyInSlot(slot: number, prefix = 'k'): Buffer {
  for (let i = 0; ; i++) {
    const k = Buffer.from(`${prefix}${i}`);
    if (keySlot(k) === slot) return k;
  }
}

/** Every key of a slot, paged `page` at a time through `after`. */
function pagedSlotKeys(store: LmdbStore, nsId: number, slot: number, page: number): Buffer[] {
  const out: Buffer[] = [];
  let after: Buffer | null = null;
  for (let pages = 0; pages < 10_000; pages++) {
    const keys = store.slotKeys(nsId, slot, after, page);
    assert.ok(keys.length <= page, 'a page holds at most `limit` keys');
    out.push(...keys);
    if (keys.length < page) return out;
    after = keys[keys.length - 1]!;
  }
  throw new Error('paging did not end');
}

/** Reads an LMDB environment directly (the store closed): what is physically there. */
async function withRawEnv<T>(path: string, fn: (env: ReturnType<typeof open>) => T | Promise<T>): Promise<T> {
  const env = open({ path, noSubdir: false, maxDbs: 16 });
  try {
    return await fn(env);
  } finally {
    await env.close();
  }
}
const binary = { keyEncoding: 'binary', encoding: 'binary' } as const;

test('slotKeys returns exactly the keys of a slot, in key order, paged through `after`, for every kind of write', async () => {
  const dir = tempDir();
  const store = openStore({ path: dir.path, durability: 'none' });
  try {
    const nsId = store.ensureNamespace('docs');
    const other = store.ensureNamespace('other');
    // Hash-tagged keys share a slot; plain keys spread over many; the first and last slot too.
    const keys: Buffer[] = [];
    for (let i = 0; i < 40; i++) keys.push(Buffer.from(`doc:{42}:chunk:${i}`));
    for (let i = 0; i < 200; i++) keys.push(Buffer.from(`plain:${i}`));
    const first = keyInSlot(0);
    const last = keyInSlot(slotCount - 1);
    keys.push(first, last, Buffer.from('{42}'), Buffer.alloc(0));
    let n = 0;
    await store.write(() => {
      for (const key of keys) {
        const kind = n++ % 3;
        // SET, APPEND or an HSET-like field write creates the record.
        const delta = kind === 0 ? setDelta(`v${n}`) : kind === 1 ? appendDelta(`a${n}`, n) : hsetDelta('f', `h${n}`);
        store.apply(nsId, key, delta, now);
      }
    });
    // Later writes to existing records (another append, a field, an expiry, a delete) keep one entry each.
    await store.write(() => {
      store.apply(nsId, keys[0]!, appendDelta('more', 10_000), now);
      store.apply(nsId, keys[1]!, hsetDelta('g', 'x'), now);
      store.apply(nsId, keys[2]!, expireDelta(now + 60_000), now);
      store.apply(nsId, keys[3]!, delDelta(), now);
    });
    // The same keys in another namespace are not in this one's slots.
    await store.write(() => store.apply(other, Buffer.from('doc:{42}:elsewhere'), setDelta('o'), now));

    const bySlot = new Map<number, Buffer[]>();
    for (const key of keys) bySlot.set(keySlot(key), [...(bySlot.get(keySlot(key)) ?? []), key]);
    assert.ok(bySlot.size > 100, 'keys spread over many slots');
    for (const [slot, expected] of bySlot) {
      assert.deepEqual(names(store.slotKeys(nsId, slot, null, 1000)), names(sorted(expected)), `slot ${slot}`);
    }
    const tagged = keySlot(Buffer.from('{42}'));
    assert.equal(bySlot.get(tagged)!.length, 41, 'hash-tagged keys and their tag share a slot');
    // A deleted key keeps its record (a tombstone), hence its index entry.
    assert.ok(store.slotKeys(nsId, tagged, null, 1000).some((k) => k.equals(keys[3]!)));
    // Paging: every page size gives the same keys; `after` need not be a stored key.
    const all = sorted(bySlot.get(tagged)!);
    for (const page of [1, 3, 7, 41, 100]) assert.deepEqual(names(pagedSlotKeys(store, nsId, tagged, page)), names(all), `page ${page}`);
    assert.deepEqual(names(store.slotKeys(nsId, tagged, all[9]!, 5)), names(all.slice(10, 15)));
    const between = Buffer.concat([all[9]!, Buffer.from([0])]);
    assert.deepEqual(names(store.slotKeys(nsId, tagged, between, 5)), names(all.slice(10, 15)));
    assert.deepEqual(store.slotKeys(nsId, tagged, all[all.length - 1]!, 5), []);
    // The edges of the slot space and of namespaces.
    assert.deepEqual(names(store.slotKeys(nsId, 0, null, 10)), names(sorted(bySlot.get(0)!)));
    assert.deepEqual(names(store.slotKeys(nsId, slotCount - 1, null, 10)), names(sorted(bySlot.get(slotCount - 1)!)));
    assert.deepEqual(names(store.slotKeys(other, tagged, null, 10)), ['doc:{42}:elsewhere']);
    assert.deepEqual(store.slotKeys(other, 0, null, 10), []);
    assert.deepEqual(store.slotKeys(nsId, tagged, null, 0), []);
    assert.throws(() => store.slotKeys(nsId, slotCount, null, 10), RangeError);
    assert.throws(() => store.slotKeys(nsId, -1, null, 10), RangeError);
  } finally {
    await store.close();
    dir.cleanup();
  }
});

test('dropSlot removes a slot’s records and all they own, in pages, and leaves other slots and the counters right', async () => {
  const dir = tempDir();
  let store = openStore({ path: dir.path, durability: 'none', pruner: vectorItemPruner, compactTailCount: 4, inlineBaseBytesMax: 4 });
  try {
    const nsId = store.ensureNamespace('docs');
    const dropped = Array.from({ length: 11 }, (_, i) => Buffer.from(`doc:{a}:${i}`));
    const kept = Array.from({ length: 6 }, (_, i) => Buffer.from(`doc:{b}:${i}`));
    const slotA = keySlot(dropped[0]!);
    const slotB = keySlot(kept[0]!);
    assert.notEqual(slotA, slotB);
    let n = 0;
    for (const key of [...dropped, ...kept]) {
      // A base out of line, appends (some compacted into a chunk), fields, an expiry.
      await store.write(() => {
        store.apply(nsId, key, setDelta(`base-${key}`), now);
        for (let i = 0; i < 6; i++) store.apply(nsId, key, appendDelta(`+${i}`, ++n), now);
        store.apply(nsId, key, hsetDelta('title', 'x'), now);
        store.apply(nsId, key, hsetDelta('gone', 'y'), now);
        store.apply(nsId, key, { ...emptyRecord(), fields: new Map([['gone', { version: nextVersion(), value: null }]]) }, now);
        store.apply(nsId, key, expireDelta(now + 3_600_000), now);
      });
    }
    // One dropped record is tombstoned, one waits for a prune.
    await store.write(() => store.apply(nsId, dropped[5]!, delDelta(), now));
    assert.equal(await store.queuePrune('docs', [dropped[1]!]), 1);
    assert.equal(store.pruneQueueLength(), 1);
    assert.ok(store.layoutOf(nsId, dropped[0]!).entries > 1, 'the record has segment entries');

    const keptBefore = kept.map((k) => state(store.readRecord(nsId, k)));
    const keptBytes = kept.reduce((sum, k) => sum + store.valueSize(nsId, k, now), 0);
    assert.equal(store.keyCount(nsId), dropped.length + kept.length - 1, 'the tombstone does not count');

    // In pages of 4: 4, 4, 3 (fewer than the limit: none left), then 0.
    const pages: number[] = [];
    for (let i = 0; i < 4; i++) pages.push(await store.dropSlot(nsId, slotA, 4));
    assert.deepEqual(pages, [4, 4, 3, 0]);

    for (const key of dropped) {
      assert.equal(store.readRecord(nsId, key), null, `${key} is gone`);
      assert.equal(store.getValue(nsId, key, now), null);
      assert.deepEqual(store.getFields(nsId, key, now), []);
      assert.deepEqual(store.layoutOf(nsId, key), { headerBytes: 0, entries: 0 });
    }
    assert.deepEqual(store.slotKeys(nsId, slotA, null, 100), []);
    assert.equal(store.keyCount(nsId), kept.length);
    assert.equal(store.totalBytes(), keptBytes, 'bytes of dropped values are no longer counted');
    assert.equal(store.pruneQueueLength(), 0);
    assert.deepEqual(
      kept.map((k) => state(store.readRecord(nsId, k))),
      keptBefore,
      'other slots are untouched',
    );
    assert.deepEqual(names(store.slotKeys(nsId, slotB, null, 100)), names(sorted(kept)));
    assert.equal(await store.dropSlot(store.ensureNamespace('empty'), slotB, 10), 0, 'another namespace holds none of it');
    await store.close();

    // Physically: nothing of the dropped records is left in any table.
    await withRawEnv(dir.path, (env) => {
      const prefixOf = (k: Buffer) => {
        const p = Buffer.allocUnsafe(6 + k.length);
        p.writeUInt32BE(nsId, 0);
        p.writeUInt16BE(k.length, 4);
        k.copy(p, 6);
        return p;
      };
      const keptPrefixes = kept.map(prefixOf);
      for (const table of ['segments', 'fields']) {
        const keys = [...env.openDB<Buffer, Buffer>(table, binary).getKeys({})];
        assert.ok(keys.length > 0);
        for (const k of keys) assert.ok(keptPrefixes.some((p) => k.subarray(0, p.length).equals(p)), `${table} entry of a dropped record`);
      }
      assert.equal(env.openDB<Buffer, Buffer>('records', binary).getCount(), kept.length);
      assert.equal(env.openDB<Buffer, Buffer>('expiries', binary).getCount(), kept.length, 'only the kept records’ expiries');
      assert.equal(env.openDB<Buffer, Buffer>('slots', binary).getCount(), kept.length);
      assert.equal(env.openDB<Buffer, Buffer>('prunes', binary).getCount(), 0);
    });
    // The counters were written with the drop.
    store = openStore({ path: dir.path, durability: 'none' });
    assert.equal(store.keyCount(nsId), kept.length);
    assert.equal(store.totalBytes(), keptBytes);
  } finally {
    await store.close();
    dir.cleanup();
  }
});

test('a store in the previous format gets its slot index built in place, then the new format; a newer format is refused', async () => {
  const dir = tempDir();
  try {
    // More records than one build transaction holds, in two namespaces.
    const total = buildBatch + 1_500;
    let store = openStore({ path: dir.path, durability: 'none' });
    const a = store.ensureNamespace('a');
    const b = store.ensureNamespace('b');
    const expected = new Map<string, Buffer[]>();
    await store.write(() => {
      for (let i = 0; i < total; i++) {
        const nsId = i % 5 === 0 ? b : a;
        const key = Buffer.from(i % 7 === 0 ? `{tag${i % 3}}:${i}` : `key:${i}`);
        store.apply(nsId, key, i % 2 ? setDelta(`v${i}`) : hsetDelta('f', `h${i}`), now);
        const id = `${nsId}/${keySlot(key)}`;
        expected.set(id, [...(expected.get(id) ?? []), key]);
      }
    });
    await store.close();

    // The previous format: no slot index (plus an entry for a record an older version
    // removed since, as an upgrade stopped part way would leave), and the older format number.
    const stale = Buffer.from('removed-meanwhile');
    await withRawEnv(dir.path, async (env) => {
      const slots = env.openDB<Buffer, Buffer>('slots', binary);
      assert.equal(slots.getCount(), total, 'the current format indexes every record');
      slots.clearSync();
      const staleEntry = Buffer.allocUnsafe(6 + stale.length);
      staleEntry.writeUInt32BE(a, 0);
      staleEntry.writeUInt16BE(keySlot(stale), 4);
      stale.copy(staleEntry, 6);
      await slots.put(staleEntry, Buffer.alloc(0));
      const system = env.openDB('system', { encoding: 'msgpack' });
      assert.equal(system.get('format'), currentFormat);
      await system.put('format', previousFormat);
    });

    // On a full disk the store opens and serves slot reads (by scanning), and leaves the format.
    store = openStore({ path: dir.path, durability: 'none', diskFreeBytesMin: Number.MAX_SAFE_INTEGER });
    assert.equal(store.disk.isFull, true);
    for (const [id, keys] of [...expected].slice(0, 50)) {
      const [nsId, slot] = id.split('/').map(Number) as [number, number];
      assert.deepEqual(names(store.slotKeys(nsId, slot, null, 10_000)), names(sorted(keys)), `slot ${id} while not upgraded`);
    }
    assert.deepEqual(store.slotKeys(a, keySlot(stale), null, 10_000).filter((k) => k.equals(stale)), []);
    await store.close();
    await withRawEnv(dir.path, (env) => assert.equal(env.openDB('system', { encoding: 'msgpack' }).get('format'), previousFormat));

    // With space, opening upgrades: the index is complete (and only the records'), the format raised.
    store = openStore({ path: dir.path, durability: 'none' });
    let indexed = 0;
    for (const [id, keys] of expected) {
      const [nsId, slot] = id.split('/').map(Number) as [number, number];
      const got = store.slotKeys(nsId, slot, null, 10_000);
      assert.deepEqual(names(got), names(sorted(keys)), `slot ${id}`);
      indexed += got.length;
    }
    assert.equal(indexed, total);
    assert.deepEqual(store.slotKeys(a, keySlot(stale), null, 10_000).filter((k) => k.equals(stale)), [], 'a stale entry does not survive');
    // Writes after the upgrade keep the index.
    const fresh = Buffer.from('{tag1}:fresh');
    await store.write(() => store.apply(b, fresh, setDelta('new'), now));
    assert.ok(store.slotKeys(b, keySlot(fresh), null, 10_000).some((k) => k.equals(fresh)));
    await store.close();
    await withRawEnv(dir.path, async (env) => {
      assert.equal(env.openDB<Buffer, Buffer>('slots', binary).getCount(), total + 1);
      const system = env.openDB('system', { encoding: 'msgpack' });
      assert.equal(system.get('format'), currentFormat);
      await system.put('format', currentFormat + 1);
    });
    assert.throws(() => openStore({ path: dir.path }), new RegExp(`storage format ${currentFormat + 1}; this ragkv reads format ${currentFormat}`));
  } finally {
    dir.cleanup();
  }
});

/** One write of any kind (SET, APPEND, DEL, HSET, HDEL, EXPIRE); versions are given in order. */
const opArb: fc.Arbitrary<GenOp> = fc.record({
  kind: fc.constantFrom<OpKind>('set', 'append', 'append', 'del', 'hset', 'hdel', 'expire'),
  bytes: fc.uint8Array({ maxLength: 12 }),
  field: fc.integer({ min: 0, max: 2 }),
  atMs: fc.constantFrom(0, 9e12),
});

test('the LMDB and the in-memory replica stores read and drop slots alike', async () => {
  const dir = tempDir();
  const lmdb = new LmdbReplicaStore(openStore({ path: dir.path, durability: 'none' }));
  const memory = new MemoryReplicaStore();
  const stores: [string, ReplicaStore][] = [
    ['lmdb', lmdb],
    ['memory', memory],
  ];
  /** Each slot's records paged `page` at a time, in a comparable form. */
  const readAll = (store: ReplicaStore, ns: string, slot: number, page: number) => {
    const out: { key: string; record: ReturnType<typeof state> }[] = [];
    let after: Buffer | null = null;
    for (;;) {
      const { keys, records } = store.readSlot(ns, slot, after, page);
      assert.equal(records.length, keys.length);
      keys.forEach((k, i) => out.push({ key: k.toString('latin1'), record: state(records[i]!) }));
      if (keys.length < page) return out;
      after = keys[keys.length - 1]!;
    }
  };
  try {
    let run = 0;
    let opNo = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 11 }), opArb), { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1, max: 4 }),
        async (writes, page) => {
          const ns = `ns${run++}`;
          // Twelve keys over three tags (three slots) plus keys of their own.
          const keyOf = (i: number) => Buffer.from(i < 9 ? `{t${i % 3}}:${i}` : `solo${i}`);
          for (const [i, op] of writes) {
            const delta = toDelta(op, nextVersion(), ++opNo);
            for (const [, store] of stores) await store.apply([{ ns, key: keyOf(i), delta }], now);
          }
          const slots = [...new Set(writes.map(([i]) => keySlot(keyOf(i))))];
          for (const slot of slots) {
            const want = readAll(memory, ns, slot, page);
            assert.deepEqual(readAll(lmdb, ns, slot, page), want, `slot ${slot}`);
            assert.ok(want.every(({ key }) => keySlot(Buffer.from(key, 'latin1')) === slot));
          }
          // Drop the first slot in pages: the same counts, then nothing to read, the rest as before.
          const drops = await Promise.all(stores.map(([, store]) => store.dropSlot(ns, slots[0]!, page)));
          assert.equal(drops[0], drops[1], 'the same number dropped');
          assert.ok(drops[0]! <= page);
          for (const [name, store] of stores) {
            while ((await store.dropSlot(ns, slots[0]!, page)) === page);
            assert.deepEqual(store.readSlot(ns, slots[0]!, null, 100).keys, [], `${name}: the slot is empty`);
          }
          assert.equal(lmdb.keyCount(ns), memory.keyCount(ns));
          for (const slot of slots.slice(1)) assert.deepEqual(readAll(lmdb, ns, slot, page), readAll(memory, ns, slot, page));
        },
      ),
      { numRuns: 60 },
    );
    // A namespace neither has stored: nothing, no error.
    for (const [, store] of stores) {
      assert.deepEqual(store.readSlot('never', 0, null, 10), { keys: [], records: [] });
      assert.equal(await store.dropSlot('never', 0, 10), 0);
    }
  } finally {
    await lmdb.close();
    dir.cleanup();
  }
});

test('barrier resolves once earlier writes are committed', async () => {
  const dir = tempDir();
  const store = new LmdbReplicaStore(openStore({ path: dir.path, durability: 'commit' }));
  try {
    const key = Buffer.from('k');
    const write = store.apply([{ ns: 'docs', key, delta: setDelta('v') }], now);
    assert.equal(store.state('docs', key, now).exists(), false, 'not committed yet');
    await store.barrier();
    assert.equal(store.state('docs', key, now).value()?.toString(), 'v');
    await write;
    const memory = new MemoryReplicaStore();
    await memory.barrier();
  } finally {
    await store.close();
    dir.cleanup();
  }
});
