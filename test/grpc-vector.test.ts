/** VectorAppend, VectorSearch, VectorDelete, VectorRange and VectorCount through a real gRPC client on the real engine. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRawKvClient, GrpcStatus, type ServiceError } from '../src/client/grpc.js';
import { openLocalKv } from '../src/coordinator/index.js';
import { makeLimits } from '../src/common/limits.js';
import { startGrpcServer } from '../src/server/grpc/index.js';
import { noMetrics } from '../src/server/metrics.js';
import { tempDir } from './helpers/tmp.js';

const logger = { info() {}, warn() {}, error() {}, debug() {} };

test('gRPC VectorAppend and VectorSearch: nearest items over lists, payloads, and clear errors', async () => {
  const dir = tempDir();
  const local = await openLocalKv({ path: dir.path, durability: 'none' });
  const server = await startGrpcServer({ kv: local.kv, limits: makeLimits(), host: '127.0.0.1', port: 0, logger, metrics: noMetrics });
  const c = createRawKvClient(`127.0.0.1:${server.port}`);
  const status = async (p: Promise<unknown>) => {
    try {
      await p;
    } catch (e) {
      return (e as ServiceError).code;
    }
    return 'ok';
  };
  try {
    const r1 = await c.vectorAppend({
      key: Buffer.from('l1'),
      type: 'INT8',
      dim: 3,
      items: [
        { id: Buffer.from('a'), values: [1, 0, 0], payload: Buffer.from('chunk:a') },
        { id: Buffer.from('b'), values: [0, 9, 0] },
      ],
    });
    assert.equal(r1.count, 2);
    await c.vectorAppend({ key: Buffer.from('l2'), type: 'INT8', dim: 3, items: [{ id: Buffer.from('c'), values: [2, 0, 0] }] });
    const res = await c.vectorSearch({ keys: [Buffer.from('l1'), Buffer.from('l2')], query: [1, 0, 0], k: 2, metric: 'L2', with_payloads: true });
    assert.deepEqual(res.hits.map((h) => `${h.key}/${h.id}/${h.score}`), ['l1/a/0', 'l2/c/1']);
    assert.equal(String(res.hits[0]!.payload), 'chunk:a');
    assert.equal(res.degraded, false);
    // An id in two lists comes back once, from the list where it is nearest, unless all_copies.
    await c.vectorAppend({ key: Buffer.from('l2'), type: 'INT8', dim: 3, items: [{ id: Buffer.from('a'), values: [1, 1, 0] }] });
    const once = await c.vectorSearch({ keys: [Buffer.from('l1'), Buffer.from('l2')], query: [1, 0, 0], k: 3, metric: 'L2' });
    assert.deepEqual(once.hits.map((h) => `${h.key}/${h.id}/${h.score}`), ['l1/a/0', 'l2/c/1', 'l1/b/82']);
    const copies = await c.vectorSearch({ keys: [Buffer.from('l1'), Buffer.from('l2')], query: [1, 0, 0], k: 3, metric: 'L2', all_copies: true });
    assert.deepEqual(copies.hits.map((h) => `${h.key}/${h.id}/${h.score}`), ['l1/a/0', 'l2/a/1', 'l2/c/1']);
    assert.equal(await status(c.vectorSearch({ keys: [Buffer.from('l1')], query: [1, 0, 0], k: 2 })), GrpcStatus.INVALID_ARGUMENT, 'metric is required');
    assert.equal(await status(c.vectorSearch({ keys: [Buffer.from('l1')], query: [1, 0], k: 2, metric: 'L2' })), GrpcStatus.INVALID_ARGUMENT, 'query of another dimension');
    assert.equal(
      await status(c.vectorAppend({ key: Buffer.from('l1'), type: 'FLOAT32', dim: 3, items: [{ id: Buffer.from('x'), values: [1, 2, 3] }] })),
      GrpcStatus.INVALID_ARGUMENT,
      'a list keeps its element type',
    );
    assert.equal(
      await status(c.vectorAppend({ key: Buffer.from('l3'), type: 'INT8', dim: 2, items: [{ id: Buffer.from('x'), values: [1, 300] }] })),
      GrpcStatus.INVALID_ARGUMENT,
      'int8 values in range',
    );
    await c.rawPut({ key: Buffer.from('plain'), value: Buffer.from('text') });
    assert.equal(await status(c.vectorSearch({ keys: [Buffer.from('plain')], query: [1, 0, 0], k: 1, metric: 'L2' })), GrpcStatus.FAILED_PRECONDITION, 'not a list: wrong type');
  } finally {
    c.close();
    await server.close();
    await local.close();
    dir.cleanup();
  }
});

test('gRPC VectorDelete, VectorRange and VectorCount: live counts, ranges with vectors and payloads, and clear errors', async () => {
  const dir = tempDir();
  const local = await openLocalKv({ path: dir.path, durability: 'none' });
  const server = await startGrpcServer({ kv: local.kv, limits: makeLimits(), host: '127.0.0.1', port: 0, logger, metrics: noMetrics });
  const c = createRawKvClient(`127.0.0.1:${server.port}`);
  const b = (text: string) => Buffer.from(text);
  /** Rejects with `code` and a message matching `message`. */
  const refused = (p: Promise<unknown>, code: GrpcStatus, message: RegExp) =>
    assert.rejects(p, (e: ServiceError) => {
      assert.equal(e.code, code, `expected ${GrpcStatus[code]}, got ${GrpcStatus[e.code]}: ${e.details}`);
      assert.match(e.details, message);
      return true;
    });
  const ids = async (key: string, start: number, stop: number) =>
    (await c.vectorRange({ cf: 'v', key: b(key), start, stop })).items.map((it) => it.id.toString());
  try {
    const items = ['a', 'b', 'c', 'd'].map((id, i) => ({ id: b(id), values: [i, 5 - i], ...(i % 2 === 0 ? { payload: b(`p:${id}`) } : {}) }));
    assert.deepEqual(await c.vectorAppend({ cf: 'v', key: b('list'), type: 'INT8', dim: 2, items }), { count: 4 });
    const key = b('list');
    assert.deepEqual(await c.vectorCount({ cf: 'v', key }), { count: 4 });

    // Whole list with vectors and payloads; an item without a payload has an empty one.
    const full = await c.vectorRange({ cf: 'v', key, start: 0, stop: -1, with_vectors: true, with_payloads: true });
    assert.deepEqual(
      full.items.map((it) => [it.id.toString(), it.values, it.payload.toString()]),
      [['a', [0, 5], 'p:a'], ['b', [1, 4], ''], ['c', [2, 3], 'p:c'], ['d', [3, 2], '']],
    );
    // Without the options, ids only.
    const bare = await c.vectorRange({ cf: 'v', key, start: 0, stop: 0 });
    assert.deepEqual(bare.items.map((it) => [it.id.toString(), it.values, it.payload.length]), [['a', [], 0]]);

    // VDEL answers the live count; unknown ids are ignored; deleted items leave ranges and search.
    assert.deepEqual(await c.vectorDelete({ cf: 'v', key, ids: [b('b'), b('zz')] }), { count: 3 });
    assert.deepEqual(await c.vectorCount({ cf: 'v', key }), { count: 3 });
    const hits = await c.vectorSearch({ cf: 'v', keys: [key], query: [1, -1], k: 4, metric: 'L2' });
    assert.deepEqual(hits.hits.map((h) => h.id.toString()).sort(), ['a', 'c', 'd']);
    // An id added again is live again.
    assert.deepEqual(await c.vectorAppend({ cf: 'v', key, type: 'INT8', dim: 2, items: [{ id: b('b'), values: [9, 9] }] }), { count: 4 });

    // LRANGE indexing: negatives from the end, out-of-range clamped, start past stop empty.
    const inCf = async (start: number, stop: number) =>
      (await c.vectorRange({ cf: 'v', key, start, stop })).items.map((it) => it.id.toString());
    assert.deepEqual(await inCf(0, -1), ['a', 'c', 'd', 'b']);
    assert.deepEqual(await inCf(-2, -1), ['d', 'b']);
    assert.deepEqual(await inCf(1, 2), ['c', 'd']);
    assert.deepEqual(await inCf(-100, 100), ['a', 'c', 'd', 'b']);
    assert.deepEqual(await inCf(3, 1), []);
    assert.deepEqual(await inCf(10, 20), []);

    // A missing list: 0, no items, and a delete answers 0 without creating it.
    assert.deepEqual(await c.vectorCount({ cf: 'v', key: b('none') }), { count: 0 });
    assert.deepEqual(await ids('none', 0, -1), []);
    assert.deepEqual(await c.vectorDelete({ cf: 'v', key: b('none'), ids: [b('a')] }), { count: 0 });
    assert.deepEqual((await c.rawGet({ cf: 'v', key: b('none') })).not_found, true);

    // Wrong type: a plain value is not a posting list, and a refused delete leaves it alone.
    await c.rawPut({ cf: 'v', key: b('plain'), value: b('text') });
    const FAILED = GrpcStatus.FAILED_PRECONDITION;
    await refused(c.vectorCount({ cf: 'v', key: b('plain') }), FAILED, /not a vector posting list/);
    await refused(c.vectorRange({ cf: 'v', key: b('plain'), start: 0, stop: -1 }), FAILED, /not a vector posting list/);
    await refused(c.vectorDelete({ cf: 'v', key: b('plain'), ids: [b('a')] }), FAILED, /not a vector posting list/);
    assert.equal((await c.rawGet({ cf: 'v', key: b('plain') })).value.toString(), 'text');

    // Bad ids, named by index; nothing of a refused delete is applied.
    const INVALID = GrpcStatus.INVALID_ARGUMENT;
    await refused(c.vectorDelete({ cf: 'v', key, ids: [b('a'), b('')] }), INVALID, /^ids\[1\]: id must not be empty$/);
    await refused(
      c.vectorDelete({ cf: 'v', key, ids: [Buffer.alloc(256, 'i')] }),
      INVALID,
      /^ids\[0\]: id is 256 bytes, over limit 'ITEM_ID_BYTES_MAX' \(255\)$/,
    );
    await refused(c.vectorDelete({ cf: 'v', key }), INVALID, /^ids must not be empty$/);
    assert.deepEqual(await c.vectorCount({ cf: 'v', key }), { count: 4 });
    // An id of exactly 255 bytes is accepted (and, not being in the list, ignored).
    assert.deepEqual(await c.vectorDelete({ cf: 'v', key, ids: [Buffer.alloc(255, 'i')] }), { count: 4 });

    // Indexes beyond 2^53 cannot be represented exactly: refused, not rounded.
    await refused(c.vectorRange({ cf: 'v', key, start: 2 ** 60, stop: -1 }), INVALID, /^start must be an integer from -\d+ to \d+, got \d+$/);
    await refused(c.vectorRange({ cf: 'v', key, start: 0, stop: -(2 ** 60) }), INVALID, /^stop must be an integer/);
    await refused(c.vectorCount({ cf: 'v' }), INVALID, /^key must not be empty$/);
    await refused(c.vectorRange({ cf: 'v', key: Buffer.alloc(1025, 'k'), start: 0, stop: 1 }), INVALID, /'keyBytesMax' \(1024\)/);
  } finally {
    c.close();
    await server.close();
    await local.close();
    dir.cleanup();
  }
});
