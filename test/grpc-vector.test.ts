/** VectorAppend and VectorSearch through a real gRPC client on the real engine. */
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
