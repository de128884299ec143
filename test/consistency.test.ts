/** Per-connection (RESP) and per-request (gRPC) consistency levels reach the coordinator. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { createRawKvClient } from '../src/client/grpc.js';
import { openLocalKv, type KvApi, type Consistency, type Session } from '../src/coordinator/index.js';
import { makeLimits } from '../src/common/limits.js';
import { startGrpcServer } from '../src/server/grpc/index.js';
import { startRespServer } from '../src/server/resp/index.js';
import { noMetrics } from '../src/server/metrics.js';
import { tempDir } from './helpers/tmp.js';

const logger = { info() {}, warn() {}, error() {}, debug() {} };

/** Wraps the engine to record which levels each call asked for (the engine itself is real). */
function recording(kv: KvApi, seen: Partial<Consistency>[], levels: Partial<Consistency> = {}): KvApi {
  return new Proxy(kv, {
    get(target, prop, receiver) {
      if (prop === 'withConsistency') return (l: Partial<Consistency>) => recording(kv, seen, { ...levels, ...l });
      if (prop === 'withSession') return (s: Session) => recording(kv.withSession(s), seen, levels);
      const v = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        if (prop === 'get' || prop === 'set' || prop === 'readValue') seen.push(levels);
        return v.apply(target, args);
      };
    },
  });
}

test('RAGKV.CONSISTENCY sets the levels of one connection; RESET clears them; bad levels are refused', async () => {
  const dir = tempDir();
  const local = await openLocalKv({ path: dir.path, durability: 'none' });
  const seen: Partial<Consistency>[] = [];
  const server = await startRespServer({ kv: recording(local.kv, seen), limits: makeLimits(), host: '127.0.0.1', port: 0, logger, metrics: noMetrics });
  const a = new Redis({ port: server.port });
  const other = new Redis({ port: server.port });
  try {
    assert.deepEqual(await a.call('ragkv.consistency'), ['read', 'default', 'write', 'default']);
    assert.deepEqual(await a.call('RAGKV.CONSISTENCY', 'READ', 'quorum', 'WRITE', 'all'), ['read', 'QUORUM', 'write', 'ALL']);
    await a.set('k', 'v');
    assert.equal(await a.get('k'), 'v');
    assert.deepEqual(seen.slice(-2), [{ read: 'QUORUM', write: 'ALL' }, { read: 'QUORUM', write: 'ALL' }]);
    await other.get('k');
    assert.deepEqual(seen.at(-1), {}, 'another connection keeps the defaults');
    await assert.rejects(a.call('ragkv.consistency', 'read', 'most'), /consistency level must be ONE, QUORUM or ALL, got 'most'/);
    await assert.rejects(a.call('ragkv.consistency', 'sideways', 'one'), /syntax error/);
    await a.call('reset');
    assert.deepEqual(await a.call('ragkv.consistency'), ['read', 'default', 'write', 'default']);
  } finally {
    a.disconnect();
    other.disconnect();
    await server.close();
    await local.close();
    dir.cleanup();
  }
});

test('gRPC requests carry a consistency level', async () => {
  const dir = tempDir();
  const local = await openLocalKv({ path: dir.path, durability: 'none' });
  const seen: Partial<Consistency>[] = [];
  const server = await startGrpcServer({ kv: recording(local.kv, seen), limits: makeLimits(), host: '127.0.0.1', port: 0, logger, metrics: noMetrics });
  const client = createRawKvClient(`127.0.0.1:${server.port}`);
  try {
    await client.rawPut({ key: Buffer.from('k'), value: Buffer.from('v'), consistency: 'ALL' } as never);
    const r = await client.rawGet({ key: Buffer.from('k'), consistency: 'QUORUM' } as never);
    assert.equal(String(r.value), 'v');
    await client.rawGet({ key: Buffer.from('k') });
    assert.deepEqual(seen, [{ read: 'ALL', write: 'ALL' }, { read: 'QUORUM', write: 'QUORUM' }, {}]);
  } finally {
    client.close();
    await server.close();
    await local.close();
    dir.cleanup();
  }
});
