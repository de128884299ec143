/**
 * The replica protocol's codec (src/replica/protocol.ts): every request and reply round-trips;
 * a message cut at any offset, with trailing bytes, of another version or op, or declaring a
 * count or length over its limit is refused with a PROTOCOL error before anything is
 * allocated for it; an error reply keeps its code across the wire.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeLimits } from '../src/common/limits.js';
import { KvError } from '../src/common/errors.js';
import { TransportError, decodeRemoteError, encodeRemoteError } from '../src/cluster/transport.js';
import {
  type ReplicaRequest,
  decodeReadReply,
  decodeRequest,
  decodeScanReply,
  decodeWriteReply,
  encodeReadReply,
  encodeRequest,
  encodeScanReply,
  encodeWriteReply,
  replicaWireVersion,
} from '../src/replica/protocol.js';
import { MemoryReplicaStore } from '../src/replica/memory-store.js';
import { ReplicaService } from '../src/replica/service.js';
import { emptyRecord } from '../src/storage/record.js';
import { encodeRecord } from '../src/storage/record-codec.js';

const limits = makeLimits({ keyBytesMax: 64, batchKeysMax: 8, scanLimitMax: 100 });
const b = (s: string) => Buffer.from(s);
const v = (ts: number) => ({ ts, node: 7 });

function delta() {
  const d = emptyRecord();
  d.base = { version: v(5), value: b('value') };
  d.appends = [{ version: v(6), opId: Buffer.alloc(16, 3), bytes: b('+tail') }];
  d.fields.set('title', { version: v(7), value: b('T') });
  d.fields.set('gone', { version: v(8), value: null });
  d.expiry = { version: v(5), atMs: 1_800_000_000_000 };
  return d;
}

const requests: ReplicaRequest[] = [
  { op: 'write', epoch: 3, tag: 0xdeadbeef, hintFor: null, items: [{ ns: 'default', key: b('k1'), delta: delta() }, { ns: 'db1', key: b('k2'), delta: { ...emptyRecord(), tomb: v(9) } }] },
  { op: 'write', epoch: 0, tag: 0, hintFor: 'n3', items: [{ ns: 'default', key: b('k'), delta: delta() }] },
  { op: 'read', epoch: 1, tag: 7, ns: 'default', keys: [b('a'), b('b'), b('c')] },
  { op: 'scan', epoch: 2, tag: 1, ns: 'db2', start: b('a'), end: b('z'), limit: 50, reverse: true },
  { op: 'scan', epoch: 2, tag: 1, ns: 'db2', start: b(''), end: null, limit: 1, reverse: false },
  {
    op: 'search',
    epoch: 4,
    tag: 2,
    ns: 'default',
    request: { keys: [b('l1'), b('l2')], query: Float32Array.from([0.5, -1]), k: 5, metric: 'COSINE', withPayloads: true, allCopies: false, filter: { field: b('lang'), value: b('en') }, payloadPrefix: b('doc:') },
  },
];

/** Records and requests compare as their encodings (Maps and typed arrays included). */
function normal(r: ReplicaRequest): unknown {
  switch (r.op) {
    case 'write':
      return { ...r, items: r.items.map((it) => ({ ns: it.ns, key: it.key, delta: encodeRecord(it.delta) })) };
    case 'search':
      return { ...r, request: { ...r.request, query: [...r.request.query] } };
    default:
      return r;
  }
}

test('every request round-trips; cut at any offset or with a trailing byte it is refused as PROTOCOL', () => {
  for (const req of requests) {
    const bytes = encodeRequest(req);
    assert.deepEqual(normal(decodeRequest(bytes, limits)), normal(req), req.op);
    for (let cut = 0; cut < bytes.length; cut++) {
      assert.throws(() => decodeRequest(bytes.subarray(0, cut), limits), (e: unknown) => e instanceof KvError && e.code === 'PROTOCOL', `${req.op} cut at ${cut}`);
    }
    assert.throws(() => decodeRequest(Buffer.concat([bytes, Buffer.from([0])]), limits), /trailing/);
  }
});

test('replies round-trip and check their counts against the request', () => {
  const results = [{ size: 12, wasLive: true, fieldsAdded: 2, fieldsRemoved: 1 }];
  assert.deepEqual(decodeWriteReply(encodeWriteReply(results), 1), results);
  assert.throws(() => decodeWriteReply(encodeWriteReply(results), 2), /1 results for 2 items/);
  const records = [delta(), null];
  const read = decodeReadReply(encodeReadReply(records), 2);
  assert.deepEqual(encodeRecord(read[0]!), encodeRecord(records[0]!));
  assert.equal(read[1], null);
  assert.throws(() => decodeReadReply(encodeReadReply(records), 3), /2 records for 3 keys/);
  assert.deepEqual(decodeScanReply(encodeScanReply([b('a'), b('b')]), limits), [b('a'), b('b')]);
});

test('declared counts and lengths over their limits, another version or an unknown op are refused before allocating', () => {
  const head = (op: number) => Buffer.from([replicaWireVersion, op, 0, 0, 0, 0, 0, 0, 0, 0]); // version, op, epoch, tag
  const u32 = (n: number) => {
    const x = Buffer.alloc(4);
    x.writeUInt32BE(n, 0);
    return x;
  };
  const str = (s: string) => Buffer.concat([u32(Buffer.byteLength(s)), b(s)]);
  // A read declaring 4 billion keys, and one declaring more than batchKeysMax.
  assert.throws(() => decodeRequest(Buffer.concat([head(2), str('default'), u32(0xffffffff)]), limits), /read keys: 4294967295, over limit 'batchKeysMax' \(8\)/);
  assert.throws(() => decodeRequest(Buffer.concat([head(2), str('default'), u32(9)]), limits), /over limit 'batchKeysMax'/);
  // More keys declared than bytes follow.
  assert.throws(() => decodeRequest(Buffer.concat([head(2), str('default'), u32(6), u32(1), b('a')]), limits), /6 declared, only 5 bytes follow/);
  // A key over keyBytesMax, and an empty one.
  assert.throws(() => decodeRequest(Buffer.concat([head(2), str('default'), u32(1), str('k'.repeat(65))]), limits), /key is 65 bytes, over limit 'keyBytesMax' \(64\)/);
  assert.throws(() => decodeRequest(Buffer.concat([head(2), str('default'), u32(1), u32(0)]), limits), /empty key/);
  // A scan limit over scanLimitMax.
  assert.throws(() => decodeRequest(Buffer.concat([head(3), str('default'), str(''), Buffer.from([0]), str(''), u32(101), Buffer.from([0])]), limits), /scan limit 101 is over limit 'scanLimitMax' \(100\)/);
  assert.throws(() => decodeRequest(Buffer.from([replicaWireVersion + 1, 2, 0, 0, 0, 0, 0, 0, 0, 0]), limits), new RegExp(`replica message version ${replicaWireVersion + 1}, this node speaks ${replicaWireVersion}`));
  assert.throws(() => decodeRequest(head(99), limits), /unknown replica op 99/);
});

test("an error reply keeps the replica's code across the wire; anything else is INTERNAL", () => {
  const coded = decodeRemoteError(encodeRemoteError(new KvError('WRONG_TYPE', "key 'x' holds a value that is not a vector posting list")));
  assert.ok(coded instanceof TransportError);
  assert.equal(coded.code, 'REMOTE');
  assert.equal(coded.remoteCode, 'WRONG_TYPE');
  assert.equal(coded.message, "key 'x' holds a value that is not a vector posting list");
  const bug = decodeRemoteError(encodeRemoteError(new TypeError('x is undefined')));
  assert.equal(bug.remoteCode, 'INTERNAL');
  const legacy = decodeRemoteError(Buffer.from('plain text from an old peer'));
  assert.equal(legacy.remoteCode, 'INTERNAL');
  assert.equal(legacy.message, 'plain text from an old peer');
});

test('a written delta holds only what a client could write: values, appends and field values within valueBytesMax, field names within fieldBytesMax (empty ones too), an expiry that is a time', () => {
  const small = makeLimits({ keyBytesMax: 64, batchKeysMax: 8, valueBytesMax: 1024, fieldBytesMax: 16 });
  const write = (d: ReturnType<typeof delta>) => encodeRequest({ op: 'write', epoch: 1, hintFor: null, items: [{ ns: 'default', key: b('k'), delta: d }] });
  assert.equal((decodeRequest(write(delta()), small) as { items: unknown[] }).items.length, 1);
  // An empty field name is a name clients may use (HSET k "" v).
  const emptyName = delta();
  emptyName.fields.set('', { version: v(7), value: b('1') });
  assert.equal((decodeRequest(write(emptyName), small) as { items: unknown[] }).items.length, 1);
  const cases: [string, (d: ReturnType<typeof delta>) => void, RegExp][] = [
    ['value', (d) => (d.base = { version: v(5), value: Buffer.alloc(1025) }), /value is 1025 bytes, over limit 'valueBytesMax' \(1024\)/],
    ['append', (d) => (d.appends = [{ ...d.appends[0]!, bytes: Buffer.alloc(2000) }]), /append is 2000 bytes, over limit 'valueBytesMax'/],
    ['field value', (d) => d.fields.set('f', { version: v(7), value: Buffer.alloc(1025) }), /field value is 1025 bytes/],
    ['field name', (d) => d.fields.set('x'.repeat(17), { version: v(7), value: b('1') }), /field name is 17 bytes, over limit 'fieldBytesMax' \(16\)/],
    ['NaN expiry', (d) => (d.expiry = { version: v(5), atMs: Number.NaN }), /expiry time NaN is not a time/],
    ['infinite expiry', (d) => (d.expiry = { version: v(5), atMs: Number.POSITIVE_INFINITY }), /expiry time Infinity is not a time/],
    ['negative expiry', (d) => (d.expiry = { version: v(5), atMs: -1 }), /expiry time -1 is not a time/],
  ];
  for (const [what, spoil, message] of cases) {
    const d = delta();
    spoil(d);
    assert.throws(() => decodeRequest(write(d), small), (err: unknown) => err instanceof KvError && err.code === 'PROTOCOL' && message.test(err.message), what);
  }
});

test('a replica refuses a hint addressed to itself, and stores nothing', async () => {
  const store = new MemoryReplicaStore();
  const service = new ReplicaService({ store, clock: { nowMs: () => 1_000 } as never, transport: { self: 'n1', handle: () => {} } as never, limits });
  const req = encodeRequest({ op: 'write', epoch: 1, hintFor: 'n1', items: [{ ns: 'default', key: b('k'), delta: { ...emptyRecord(), tomb: v(9) } }] });
  assert.throws(() => service.handle('n2', req), (err: unknown) => err instanceof KvError && err.code === 'PROTOCOL' && /hint for this member itself/.test(err.message));
  assert.equal(store.read('default', [b('k')])[0], null);
  assert.equal(store.hintCount(), 0);
});
