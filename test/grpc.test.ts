/**
 * The gRPC RawKV server against the real local engine, called through the real client that
 * loads rawkv.proto. Covers every call, namespaces, scans, TTL, every error status, and that
 * the server keeps serving after errors.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { createRawKvClient, GrpcStatus, type RawKvClient, type ServiceError } from '../src/client/grpc.js';
import { KvError } from '../src/common/errors.js';
import { defaultLimits, makeLimits, type Limits } from '../src/common/limits.js';
import type { KvApi } from '../src/coordinator/api.js';
import { openLocalKv } from '../src/coordinator/index.js';
import { startGrpcServer, toGrpcFailure, rawKvMethods, type GrpcServer } from '../src/server/grpc/index.js';
import { loadRawKvService } from '../src/common/grpc/proto.js';
import type { Session } from '../src/coordinator/session.js';
import type { Consistency } from '../src/coordinator/api.js';
import { noMetrics, type RequestMetrics } from '../src/server/metrics.js';
import { startRespServer } from '../src/server/resp/index.js';
import { Redis } from 'ioredis';
import { execFile, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const b = (text: string): Buffer => Buffer.from(text);
const keys = (pairs: { key: Buffer }[]): string[] => pairs.map((pair) => pair.key.toString());

interface Observation {
  command: string;
  errorCode: string | undefined;
}

interface Fixture {
  kv: KvApi;
  client: RawKvClient;
  server: GrpcServer;
  observations: Observation[];
  errorsLogged: unknown[][];
  close(): Promise<void>;
}

/** Opens a real engine in a temp dir, serves it over gRPC on a free port, connects a client. */
async function startFixture(overrides: Partial<Limits> = {}, wrapKv: (kv: KvApi) => KvApi = (kv) => kv): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'ragkv-grpc-'));
  const limits = makeLimits(overrides);
  const local = await openLocalKv({ path: dir, limits: overrides, durability: 'none' });
  const observations: Observation[] = [];
  const errorsLogged: unknown[][] = [];
  const metrics: RequestMetrics = {
    observe: (_protocol, command, _seconds, errorCode) => void observations.push({ command, errorCode }),
    connections: () => {},
    disconnected: () => {},
  };
  const logger = { info: () => {}, warn: () => {}, error: (...args: unknown[]) => void errorsLogged.push(args) };
  const server = await startGrpcServer({ kv: wrapKv(local.kv), limits, host: '127.0.0.1', port: 0, logger, metrics });
  const client = createRawKvClient(`127.0.0.1:${server.port}`);
  return {
    kv: local.kv,
    client,
    server,
    observations,
    errorsLogged,
    async close() {
      client.close();
      await server.close();
      await local.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Asserts that a call fails with `code` and a message matching `message`. */
async function assertStatus(call: Promise<unknown>, code: GrpcStatus, message: RegExp): Promise<void> {
  await assert.rejects(call, (error: ServiceError) => {
    assert.equal(error.code, code, `expected status ${GrpcStatus[code]}, got ${GrpcStatus[error.code]}: ${error.details}`);
    assert.match(error.details, message);
    return true;
  });
}

/** Polls `check` until it holds, failing after `timeoutMs` (for expiry, which has no event). */
async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`${what} did not happen within ${timeoutMs} ms`);
    await delay(10);
  }
}

describe('gRPC RawKV with default limits', () => {
  let fixture: Fixture;
  let client: RawKvClient;
  before(async () => {
    fixture = await startFixture();
    client = fixture.client;
  });
  after(() => fixture.close());

  it('puts and gets a binary key and value; a missing key is not_found, not an error', async () => {
    const key = Buffer.from([0, 1, 2, 255, 254]);
    const value = Buffer.from([9, 0, 200, 13, 10]);
    await client.rawPut({ key, value });
    assert.deepEqual(await client.rawGet({ key }), { value, not_found: false });
    assert.deepEqual(await client.rawGet({ key: b('absent') }), { value: Buffer.alloc(0), not_found: true });
  });

  it('an empty value is stored and found', async () => {
    await client.rawPut({ key: b('empty-value') });
    assert.deepEqual(await client.rawGet({ key: b('empty-value') }), { value: Buffer.alloc(0), not_found: false });
  });

  it('put replaces the value', async () => {
    await client.rawPut({ key: b('replaced'), value: b('one') });
    await client.rawPut({ key: b('replaced'), value: b('two') });
    assert.equal((await client.rawGet({ key: b('replaced') })).value.toString(), 'two');
  });

  it('keeps namespaces apart; "" is "default"; a never-written namespace finds nothing', async () => {
    await client.rawPut({ cf: 'iso-a', key: b('shared'), value: b('in a') });
    await client.rawPut({ cf: 'iso-b', key: b('shared'), value: b('in b') });
    await client.rawPut({ cf: '', key: b('shared'), value: b('in default') });
    assert.equal((await client.rawGet({ cf: 'iso-a', key: b('shared') })).value.toString(), 'in a');
    assert.equal((await client.rawGet({ cf: 'iso-b', key: b('shared') })).value.toString(), 'in b');
    assert.equal((await client.rawGet({ cf: 'default', key: b('shared') })).value.toString(), 'in default');
    assert.equal((await client.rawGet({ cf: 'never-written', key: b('shared') })).not_found, true);
    const scan = await client.rawScan({ cf: 'never-written', limit: 10 });
    assert.deepEqual(scan.kvs, []);
    assert.deepEqual((await client.rawDelete({ cf: 'iso-a', key: b('shared') })).deleted, true);
    assert.equal((await client.rawGet({ cf: 'iso-b', key: b('shared') })).value.toString(), 'in b');
  });

  it('deletes a key and reports whether it existed', async () => {
    await client.rawPut({ key: b('doomed'), value: b('x') });
    assert.deepEqual(await client.rawDelete({ key: b('doomed') }), { deleted: true });
    assert.equal((await client.rawGet({ key: b('doomed') })).not_found, true);
    assert.deepEqual(await client.rawDelete({ key: b('doomed') }), { deleted: false });
  });

  describe('RawScan', () => {
    const cf = 'scan';
    before(async () => {
      const pairs = Array.from({ length: 10 }, (_, i) => ({ key: b(`k${i}`), value: b(`v${i}`) }));
      await client.rawBatchPut({ cf, pairs });
    });

    it('walks forward from start (inclusive) to end (exclusive)', async () => {
      const { kvs } = await client.rawScan({ cf, start_key: b('k2'), end_key: b('k5'), limit: 100 });
      assert.deepEqual(keys(kvs), ['k2', 'k3', 'k4']);
      assert.deepEqual(
        kvs.map((pair) => pair.value.toString()),
        ['v2', 'v3', 'v4'],
      );
    });

    it('treats empty bounds as open', async () => {
      assert.deepEqual(keys((await client.rawScan({ cf, limit: 100 })).kvs), Array.from({ length: 10 }, (_, i) => `k${i}`));
      assert.deepEqual(keys((await client.rawScan({ cf, start_key: b('k8'), limit: 100 })).kvs), ['k8', 'k9']);
      assert.deepEqual(keys((await client.rawScan({ cf, end_key: b('k2'), limit: 100 })).kvs), ['k0', 'k1']);
      // A bound between keys works too.
      assert.deepEqual(keys((await client.rawScan({ cf, start_key: b('k55'), end_key: b('k7'), limit: 100 })).kvs), ['k6']);
    });

    it('stops at limit', async () => {
      assert.deepEqual(keys((await client.rawScan({ cf, start_key: b('k3'), limit: 2 })).kvs), ['k3', 'k4']);
    });

    it('walks in reverse from end (exclusive) down to start (inclusive), limit keeping the highest keys', async () => {
      const all = await client.rawScan({ cf, start_key: b('k2'), end_key: b('k6'), limit: 100, reverse: true });
      assert.deepEqual(keys(all.kvs), ['k5', 'k4', 'k3', 'k2']);
      assert.equal(all.kvs[0]!.value.toString(), 'v5');
      const limited = await client.rawScan({ cf, start_key: b('k2'), end_key: b('k6'), limit: 2, reverse: true });
      assert.deepEqual(keys(limited.kvs), ['k5', 'k4']);
      const open = await client.rawScan({ cf, limit: 3, reverse: true });
      assert.deepEqual(keys(open.kvs), ['k9', 'k8', 'k7']);
    });

    it('returns empty values when key_only', async () => {
      const { kvs } = await client.rawScan({ cf, start_key: b('k0'), end_key: b('k3'), limit: 10, key_only: true });
      assert.deepEqual(keys(kvs), ['k0', 'k1', 'k2']);
      for (const pair of kvs) assert.equal(pair.value.length, 0);
    });

    it('an empty range (start == end) finds nothing', async () => {
      assert.deepEqual((await client.rawScan({ cf, start_key: b('k3'), end_key: b('k3'), limit: 10 })).kvs, []);
    });
  });

  it('batch get answers only the keys found, in request order', async () => {
    await client.rawBatchPut({
      cf: 'batch',
      pairs: [
        { key: b('a'), value: b('1') },
        { key: b('b'), value: b('2') },
        { key: b('c'), value: b('3') },
      ],
    });
    const { pairs } = await client.rawBatchGet({ cf: 'batch', keys: [b('c'), b('missing'), b('a')] });
    assert.deepEqual(
      pairs.map((pair) => [pair.key.toString(), pair.value.toString()]),
      [
        ['c', '3'],
        ['a', '1'],
      ],
    );
    assert.deepEqual((await client.rawBatchGet({ cf: 'batch', keys: [] })).pairs, []);
  });

  it('append answers the new size and concatenates', async () => {
    assert.deepEqual(await client.rawAppend({ key: b('log'), value: b('abc') }), { new_size: 3 });
    assert.deepEqual(await client.rawAppend({ key: b('log'), value: b('defg') }), { new_size: 7 });
    assert.equal((await client.rawGet({ key: b('log') })).value.toString(), 'abcdefg');
    await client.rawPut({ key: b('log2'), value: b('base') });
    assert.deepEqual(await client.rawAppend({ key: b('log2'), value: b('+') }), { new_size: 5 });
  });

  it('keeps every one of many concurrent appends to one key', async () => {
    const count = 50;
    const sizes = await Promise.all(
      Array.from({ length: count }, () => client.rawAppend({ cf: 'append-race', key: b('list'), value: b('xy') })),
    );
    assert.equal(Math.max(...sizes.map((response) => response.new_size)), count * 2);
    assert.equal((await client.rawGet({ cf: 'append-race', key: b('list') })).value.length, count * 2);
  });

  it('batch append answers each key\'s new size in request order', async () => {
    await client.rawPut({ cf: 'bappend', key: b('p'), value: b('12') });
    const { new_sizes } = await client.rawBatchAppend({
      cf: 'bappend',
      pairs: [
        { key: b('p'), value: b('345') },
        { key: b('q'), value: b('x') },
      ],
    });
    assert.deepEqual(new_sizes, [5, 1]);
    assert.equal((await client.rawGet({ cf: 'bappend', key: b('p') })).value.toString(), '12345');
    assert.equal((await client.rawGet({ cf: 'bappend', key: b('q') })).value.toString(), 'x');
  });

  it('delete range removes [start, end) and answers how many existed', async () => {
    const cf = 'delrange';
    await client.rawBatchPut({ cf, pairs: ['a', 'b', 'c', 'd', 'e'].map((k) => ({ key: b(k), value: b(k) })) });
    assert.deepEqual(await client.rawDeleteRange({ cf, start_key: b('b'), end_key: b('d') }), { deleted: 2 });
    assert.deepEqual(keys((await client.rawScan({ cf, limit: 10 })).kvs), ['a', 'd', 'e']);
    assert.deepEqual(await client.rawDeleteRange({ cf, start_key: b('b'), end_key: b('d') }), { deleted: 0 });
    // An empty start is the first key of the namespace.
    assert.deepEqual(await client.rawDeleteRange({ cf, end_key: b('e') }), { deleted: 2 });
    assert.deepEqual(keys((await client.rawScan({ cf, limit: 10 })).kvs), ['e']);
  });

  it('a put with ttl_ms expires; one without stays', async () => {
    await client.rawPut({ cf: 'ttl', key: b('short'), value: b('v'), ttl_ms: 20 });
    await client.rawPut({ cf: 'ttl', key: b('long'), value: b('v'), ttl_ms: 600_000 });
    await client.rawPut({ cf: 'ttl', key: b('forever'), value: b('v') });
    await eventually(async () => (await client.rawGet({ cf: 'ttl', key: b('short') })).not_found, 'expiry of "short"');
    assert.equal((await client.rawGet({ cf: 'ttl', key: b('long') })).not_found, false);
    assert.equal((await client.rawGet({ cf: 'ttl', key: b('forever') })).not_found, false);
  });

  it('a batch put with ttl_ms expires every pair', async () => {
    const pairs = [
      { key: b('t1'), value: b('1') },
      { key: b('t2'), value: b('2') },
    ];
    await client.rawBatchPut({ cf: 'bttl', pairs, ttl_ms: 600_000 });
    assert.equal((await client.rawBatchGet({ cf: 'bttl', keys: [b('t1'), b('t2')] })).pairs.length, 2);
    await client.rawBatchPut({ cf: 'bttl', pairs, ttl_ms: 20 });
    await eventually(
      async () => (await client.rawBatchGet({ cf: 'bttl', keys: [b('t1'), b('t2')] })).pairs.length === 0,
      'expiry of the batch',
    );
  });

  describe('fields', () => {
    const fieldsOf = (pairs: { field: Buffer; value: Buffer }[]): string[][] =>
      pairs.map((pair) => [pair.field.toString(), pair.value.toString()]);

    it('FieldPut answers how many fields were new; FieldGet finds them; a missing key or field is not_found', async () => {
      const cf = 'fields';
      const key = b('doc:1');
      assert.deepEqual(
        await client.fieldPut({ cf, key, fields: [{ field: b('title'), value: b('RAG') }, { field: b('lang'), value: b('en') }] }),
        { added: 2 },
      );
      // One replaced, one new, and a field named twice takes its last value and counts once.
      assert.deepEqual(
        await client.fieldPut({
          cf,
          key,
          fields: [
            { field: b('title'), value: b('RAG 2') },
            { field: b('tags'), value: b('a') },
            { field: b('tags'), value: b('a,b') },
          ],
        }),
        { added: 1 },
      );
      assert.deepEqual(await client.fieldGet({ cf, key, field: b('title') }), { value: b('RAG 2'), not_found: false });
      assert.deepEqual(await client.fieldGet({ cf, key, field: b('tags') }), { value: b('a,b'), not_found: false });
      assert.deepEqual(await client.fieldGet({ cf, key, field: b('absent') }), { value: Buffer.alloc(0), not_found: true });
      assert.deepEqual(await client.fieldGet({ cf, key: b('doc:none'), field: b('title') }), { value: Buffer.alloc(0), not_found: true });
      assert.deepEqual(await client.fieldGet({ cf: 'fields-other', key, field: b('title') }), { value: Buffer.alloc(0), not_found: true });
    });

    it('binary and empty field names and an empty value are kept as sent', async () => {
      const cf = 'fields-binary';
      const name = Buffer.from([0, 255, 13, 10]);
      assert.deepEqual(
        await client.fieldPut({ cf, key: b('k'), fields: [{ field: name, value: Buffer.from([1, 0, 2]) }, { field: b(''), value: b('') }] }),
        { added: 2 },
      );
      assert.deepEqual(await client.fieldGet({ cf, key: b('k'), field: name }), { value: Buffer.from([1, 0, 2]), not_found: false });
      assert.deepEqual(await client.fieldGet({ cf, key: b('k'), field: b('') }), { value: Buffer.alloc(0), not_found: false });
      assert.deepEqual(await client.fieldExists({ cf, key: b('k'), field: b('') }), { exists: true });
    });

    it('FieldBatchGet answers only the fields found, in request order; FieldGetAll all of them in name order', async () => {
      const cf = 'fields-many';
      const key = b('doc');
      await client.fieldPut({ cf, key, fields: ['c', 'a', 'b'].map((f) => ({ field: b(f), value: b(`v${f}`) })) });
      const { fields } = await client.fieldBatchGet({ cf, key, fields: [b('b'), b('missing'), b('a'), b('b')] });
      assert.deepEqual(fieldsOf(fields), [['b', 'vb'], ['a', 'va'], ['b', 'vb']]);
      assert.deepEqual((await client.fieldBatchGet({ cf, key: b('no-such-key'), fields: [b('a')] })).fields, []);
      assert.deepEqual(fieldsOf((await client.fieldGetAll({ cf, key })).fields), [['a', 'va'], ['b', 'vb'], ['c', 'vc']]);
      assert.deepEqual((await client.fieldGetAll({ cf, key: b('no-such-key') })).fields, []);
    });

    it('FieldCount and FieldExists; FieldDelete answers how many existed', async () => {
      const cf = 'fields-del';
      const key = b('doc');
      await client.fieldPut({ cf, key, fields: ['a', 'b', 'c'].map((f) => ({ field: b(f), value: b(f) })) });
      assert.deepEqual(await client.fieldCount({ cf, key }), { count: 3 });
      assert.deepEqual(await client.fieldExists({ cf, key, field: b('b') }), { exists: true });
      assert.deepEqual(await client.fieldDelete({ cf, key, fields: [b('b'), b('missing'), b('c'), b('b')] }), { deleted: 2 });
      assert.deepEqual(await client.fieldExists({ cf, key, field: b('b') }), { exists: false });
      assert.deepEqual(await client.fieldCount({ cf, key }), { count: 1 });
      assert.deepEqual(await client.fieldDelete({ cf, key, fields: [b('b')] }), { deleted: 0 });
      assert.deepEqual(await client.fieldCount({ cf, key: b('no-such-key') }), { count: 0 });
      assert.deepEqual(await client.fieldExists({ cf, key: b('no-such-key'), field: b('a') }), { exists: false });
      assert.deepEqual(await client.fieldDelete({ cf, key: b('no-such-key'), fields: [b('a')] }), { deleted: 0 });
    });

    it('fields live beside the value: RawPut keeps them, RawDelete removes them', async () => {
      const cf = 'fields-value';
      const key = b('doc');
      await client.fieldPut({ cf, key, fields: [{ field: b('f'), value: b('1') }] });
      await client.rawPut({ cf, key, value: b('body') });
      assert.equal((await client.rawGet({ cf, key })).value.toString(), 'body');
      assert.deepEqual(await client.fieldGet({ cf, key, field: b('f') }), { value: b('1'), not_found: false });
      assert.deepEqual(await client.rawDelete({ cf, key }), { deleted: true });
      assert.deepEqual(await client.fieldCount({ cf, key }), { count: 0 });
      assert.equal((await client.fieldGet({ cf, key, field: b('f') })).not_found, true);
    });

    it('INVALID_ARGUMENT for a field name over fieldBytesMax (naming its index), an empty list, or an empty key', async () => {
      const { fieldBytesMax } = defaultLimits;
      const cf = 'fields-bad';
      const key = b('doc');
      const long = Buffer.alloc(fieldBytesMax + 1, 'f');
      const over = `field is ${fieldBytesMax + 1} bytes, over limit 'fieldBytesMax' \\(${fieldBytesMax}\\)$`;
      const INVALID = GrpcStatus.INVALID_ARGUMENT;
      await assertStatus(
        client.fieldPut({ cf, key, fields: [{ field: b('ok'), value: b('v') }, { field: long, value: b('v') }] }),
        INVALID,
        new RegExp(`^fields\\[1\\]: ${over}`),
      );
      // Nothing of a refused FieldPut was written.
      assert.deepEqual(await client.fieldCount({ cf, key }), { count: 0 });
      await assertStatus(client.fieldGet({ cf, key, field: long }), INVALID, new RegExp(`^${over}`));
      await assertStatus(client.fieldExists({ cf, key, field: long }), INVALID, new RegExp(`^${over}`));
      await assertStatus(client.fieldBatchGet({ cf, key, fields: [b('a'), long] }), INVALID, new RegExp(`^fields\\[1\\]: ${over}`));
      await assertStatus(client.fieldDelete({ cf, key, fields: [long] }), INVALID, new RegExp(`^fields\\[0\\]: ${over}`));
      // At the limit is fine.
      assert.deepEqual(await client.fieldPut({ cf, key, fields: [{ field: long.subarray(1), value: b('v') }] }), { added: 1 });
      assert.deepEqual(await client.fieldGet({ cf, key, field: long.subarray(1) }), { value: b('v'), not_found: false });

      await assertStatus(client.fieldPut({ cf, key }), INVALID, /^fields must not be empty$/);
      await assertStatus(client.fieldBatchGet({ cf, key }), INVALID, /^fields must not be empty$/);
      await assertStatus(client.fieldDelete({ cf, key }), INVALID, /^fields must not be empty$/);
      await assertStatus(client.fieldPut({ cf, fields: [{ field: b('f'), value: b('v') }] }), INVALID, /^key must not be empty$/);
      await assertStatus(client.fieldGetAll({ cf }), INVALID, /^key must not be empty$/);
      await assertStatus(client.fieldCount({ cf }), INVALID, /^key must not be empty$/);
    });
  });

  describe('expiry', () => {
    const cf = 'expiry';
    const ttlOf = (key: Buffer) => client.rawTtl({ cf, key });

    it('RawTtl tells a missing key, a key without expiry and the time left apart', async () => {
      assert.deepEqual(await ttlOf(b('absent')), { not_found: true, expires: false, ttl_ms: 0 });
      await client.rawPut({ cf, key: b('forever'), value: b('v') });
      assert.deepEqual(await ttlOf(b('forever')), { not_found: false, expires: false, ttl_ms: 0 });
      await client.rawPut({ cf, key: b('ten-minutes'), value: b('v'), ttl_ms: 600_000 });
      const ttl = await ttlOf(b('ten-minutes'));
      assert.equal(ttl.not_found, false);
      assert.equal(ttl.expires, true);
      assert.ok(ttl.ttl_ms > 590_000 && ttl.ttl_ms <= 600_000, `ttl_ms ${ttl.ttl_ms}`);
    });

    it('RawExpire sets an expiry after ttl_ms or at at_ms, and persist removes it', async () => {
      const key = b('set-clear');
      await client.rawPut({ cf, key, value: b('v') });
      assert.deepEqual(await client.rawExpire({ cf, key, ttl_ms: 300_000 }), { applied: true });
      const afterTtl = await ttlOf(key);
      assert.ok(afterTtl.expires && afterTtl.ttl_ms > 290_000 && afterTtl.ttl_ms <= 300_000, JSON.stringify(afterTtl));
      assert.deepEqual(await client.rawExpire({ cf, key, at_ms: Date.now() + 120_000 }), { applied: true });
      const afterAt = await ttlOf(key);
      assert.ok(afterAt.expires && afterAt.ttl_ms > 110_000 && afterAt.ttl_ms <= 120_000, JSON.stringify(afterAt));
      assert.deepEqual(await client.rawExpire({ cf, key, persist: true }), { applied: true });
      assert.deepEqual(await ttlOf(key), { not_found: false, expires: false, ttl_ms: 0 });
      // Nothing to remove: not applied, as PERSIST answers 0.
      assert.deepEqual(await client.rawExpire({ cf, key, persist: true }), { applied: false });
      // A missing key: not applied, and not created.
      assert.deepEqual(await client.rawExpire({ cf, key: b('absent'), ttl_ms: 1000 }), { applied: false });
      assert.deepEqual(await ttlOf(b('absent')), { not_found: true, expires: false, ttl_ms: 0 });
    });

    it('a key given a short ttl_ms expires; an at_ms already past deletes it at once', async () => {
      await client.rawPut({ cf, key: b('short'), value: b('v') });
      assert.deepEqual(await client.rawExpire({ cf, key: b('short'), ttl_ms: 20 }), { applied: true });
      await eventually(async () => (await client.rawGet({ cf, key: b('short') })).not_found, 'expiry of "short"');
      await client.fieldPut({ cf, key: b('past'), fields: [{ field: b('f'), value: b('v') }] });
      assert.deepEqual(await client.rawExpire({ cf, key: b('past'), at_ms: 1 }), { applied: true });
      assert.deepEqual(await ttlOf(b('past')), { not_found: true, expires: false, ttl_ms: 0 });
      assert.deepEqual(await client.fieldCount({ cf, key: b('past') }), { count: 0 });
    });

    it('conditions NX, XX, GT and LT behave as Redis EXPIRE\'s', async () => {
      const key = b('conditions');
      await client.rawPut({ cf, key, value: b('v') });
      const expire = (ttl_ms: number, condition: 'NX' | 'XX' | 'GT' | 'LT') => client.rawExpire({ cf, key, ttl_ms, condition });
      const left = async () => (await ttlOf(key)).ttl_ms;
      // No expiry yet: XX and GT do not apply, LT does (no expiry counts as never).
      assert.deepEqual(await expire(100_000, 'XX'), { applied: false });
      assert.deepEqual(await expire(100_000, 'GT'), { applied: false });
      assert.equal((await ttlOf(key)).expires, false);
      assert.deepEqual(await expire(100_000, 'NX'), { applied: true });
      assert.deepEqual(await expire(200_000, 'NX'), { applied: false });
      assert.ok((await left()) <= 100_000);
      assert.deepEqual(await expire(50_000, 'GT'), { applied: false });
      assert.deepEqual(await expire(200_000, 'GT'), { applied: true });
      assert.ok((await left()) > 100_000);
      assert.deepEqual(await expire(300_000, 'LT'), { applied: false });
      assert.deepEqual(await expire(50_000, 'LT'), { applied: true });
      assert.ok((await left()) <= 50_000);
      assert.deepEqual(await expire(400_000, 'XX'), { applied: true });
      assert.ok((await left()) > 300_000);
      await client.rawExpire({ cf, key, persist: true });
      assert.deepEqual(await expire(10_000, 'LT'), { applied: true });
      assert.equal((await ttlOf(key)).expires, true);
    });

    it('INVALID_ARGUMENT for no expiry given, 0, two members set, persist false or with a condition, an empty key', async () => {
      const key = b('refused');
      await client.rawPut({ cf, key, value: b('v') });
      const INVALID = GrpcStatus.INVALID_ARGUMENT;
      await assertStatus(client.rawExpire({ cf, key }), INVALID, /^one of ttl_ms, at_ms or persist must be set$/);
      await assertStatus(client.rawExpire({ cf, key, ttl_ms: 0 }), INVALID, /^ttl_ms must be an integer from 1 to \d+, got 0$/);
      await assertStatus(client.rawExpire({ cf, key, at_ms: 0 }), INVALID, /^at_ms must be an integer from 1 to \d+, got 0$/);
      await assertStatus(client.rawExpire({ cf, key, ttl_ms: 2 ** 60 }), INVALID, /^ttl_ms must be an integer from 1 to \d+, got \d+$/);
      await assertStatus(
        client.rawExpire({ cf, key, ttl_ms: 1000, at_ms: 1 }),
        INVALID,
        /^set only one of ttl_ms, at_ms and persist, got ttl_ms and at_ms$/,
      );
      await assertStatus(client.rawExpire({ cf, key, persist: false }), INVALID, /^persist must be true/);
      await assertStatus(client.rawExpire({ cf, key, persist: true, condition: 'NX' }), INVALID, /^condition NX does not apply to persist$/);
      await assertStatus(client.rawExpire({ cf, ttl_ms: 1000 }), INVALID, /^key must not be empty$/);
      await assertStatus(client.rawTtl({ cf }), INVALID, /^key must not be empty$/);
      // None of the refused calls touched the key.
      assert.deepEqual(await ttlOf(key), { not_found: false, expires: false, ttl_ms: 0 });
    });
  });

  describe('INVALID_ARGUMENT', () => {
    const INVALID = GrpcStatus.INVALID_ARGUMENT;

    it('for an empty key, on every single-key call', async () => {
      await assertStatus(client.rawGet({ key: b('') }), INVALID, /^key must not be empty$/);
      await assertStatus(client.rawPut({ value: b('v') }), INVALID, /^key must not be empty$/);
      await assertStatus(client.rawDelete({}), INVALID, /^key must not be empty$/);
      await assertStatus(client.rawAppend({ value: b('v') }), INVALID, /^key must not be empty$/);
    });

    it('for an empty key inside a batch, naming its index', async () => {
      await assertStatus(client.rawBatchGet({ keys: [b('ok'), b('')] }), INVALID, /^keys\[1\]: key must not be empty$/);
      const pairs = [
        { key: b('ok'), value: b('v') },
        { key: b(''), value: b('v') },
      ];
      await assertStatus(client.rawBatchPut({ pairs }), INVALID, /^pairs\[1\]: key must not be empty$/);
      await assertStatus(client.rawBatchAppend({ pairs }), INVALID, /^pairs\[1\]: key must not be empty$/);
      // Nothing of a refused batch was written.
      assert.equal((await client.rawGet({ key: b('ok') })).not_found, true);
    });

    it('for a key over keyBytesMax, naming the limit', async () => {
      const { keyBytesMax } = defaultLimits;
      const key = Buffer.alloc(keyBytesMax + 1, 'k');
      const message = new RegExp(`^key is ${keyBytesMax + 1} bytes, over limit 'keyBytesMax' \\(${keyBytesMax}\\)$`);
      await assertStatus(client.rawGet({ key }), INVALID, message);
      await assertStatus(client.rawPut({ key, value: b('v') }), INVALID, message);
      await assertStatus(client.rawDelete({ key }), INVALID, message);
      await assertStatus(client.rawAppend({ key, value: b('v') }), INVALID, message);
      await assertStatus(client.rawScan({ start_key: key, limit: 1 }), INVALID, /^start_key is \d+ bytes.*'keyBytesMax'/);
      // At the limit is fine.
      await client.rawPut({ key: Buffer.alloc(keyBytesMax, 'k'), value: b('v') });
      assert.equal((await client.rawGet({ key: Buffer.alloc(keyBytesMax, 'k') })).not_found, false);
    });

    it('for a scan limit of 0 or over scanLimitMax', async () => {
      const { scanLimitMax } = defaultLimits;
      await assertStatus(client.rawScan({ limit: 0 }), INVALID, /limit must be at least 1/);
      await assertStatus(client.rawScan({ limit: scanLimitMax + 1 }), INVALID, new RegExp(`'scanLimitMax' \\(${scanLimitMax}\\)`));
    });

    it('for start_key greater than end_key', async () => {
      await assertStatus(client.rawScan({ start_key: b('z'), end_key: b('a'), limit: 1 }), INVALID, /start_key/);
      await assertStatus(client.rawDeleteRange({ start_key: b('z'), end_key: b('a') }), INVALID, /start_key/);
    });

    it('for a delete range without end_key', async () => {
      await client.rawPut({ cf: 'keep', key: b('survivor'), value: b('v') });
      await assertStatus(client.rawDeleteRange({ cf: 'keep' }), INVALID, /end_key must not be empty/);
      assert.equal((await client.rawGet({ cf: 'keep', key: b('survivor') })).not_found, false);
    });

    it('for a cf over namespaceBytesMax', async () => {
      const { namespaceBytesMax } = defaultLimits;
      await assertStatus(
        client.rawGet({ cf: 'n'.repeat(namespaceBytesMax + 1), key: b('k') }),
        INVALID,
        new RegExp(`^cf is ${namespaceBytesMax + 1} bytes, over limit 'namespaceBytesMax' \\(${namespaceBytesMax}\\)$`),
      );
    });
  });

  it('reports every call to metrics with its method and error code', async () => {
    fixture.observations.length = 0;
    await client.rawGet({ key: b('anything') });
    await assert.rejects(client.rawGet({ key: b('') }));
    await assert.rejects(client.rawPut({ key: Buffer.alloc(defaultLimits.keyBytesMax + 1, 'k') }));
    assert.deepEqual(fixture.observations, [
      { command: 'RawGet', errorCode: undefined },
      { command: 'RawGet', errorCode: 'INVALID_ARGUMENT' },
      { command: 'RawPut', errorCode: 'KEY_TOO_LARGE' },
    ]);
  });
});

describe('gRPC RawKV with small limits', () => {
  let fixture: Fixture;
  let client: RawKvClient;
  const limits: Partial<Limits> = {
    keyBytesMax: 16,
    valueBytesMax: 1024,
    batchKeysMax: 4,
    scanLimitMax: 5,
    grpcMessageBytesMax: 4096,
  };
  before(async () => {
    fixture = await startFixture(limits);
    client = fixture.client;
  });
  after(() => fixture.close());

  it('INVALID_ARGUMENT for a value over valueBytesMax, on put, append and batches', async () => {
    const value = Buffer.alloc(1025, 'v');
    const message = /value is 1025 bytes, over limit 'valueBytesMax' \(1024\)/;
    await assertStatus(client.rawPut({ key: b('k'), value }), GrpcStatus.INVALID_ARGUMENT, message);
    await assertStatus(client.rawAppend({ key: b('k'), value }), GrpcStatus.INVALID_ARGUMENT, message);
    await assertStatus(client.rawBatchPut({ pairs: [{ key: b('k'), value }] }), GrpcStatus.INVALID_ARGUMENT, message);
    await assertStatus(client.rawBatchAppend({ pairs: [{ key: b('k'), value }] }), GrpcStatus.INVALID_ARGUMENT, message);
    assert.equal((await client.rawGet({ key: b('k') })).not_found, true);
  });

  it('INVALID_ARGUMENT for a key over keyBytesMax as configured', async () => {
    await assertStatus(
      client.rawBatchGet({ keys: [Buffer.alloc(17, 'k')] }),
      GrpcStatus.INVALID_ARGUMENT,
      /^keys\[0\]: key is 17 bytes, over limit 'keyBytesMax' \(16\)$/,
    );
  });

  it('INVALID_ARGUMENT for a batch over batchKeysMax, on every batch call', async () => {
    const five = ['a', 'b', 'c', 'd', 'e'].map((k) => ({ key: b(k), value: b('v') }));
    const message = /batch has 5 keys, over limit 'batchKeysMax' \(4\)/;
    await assertStatus(client.rawBatchGet({ keys: five.map((pair) => pair.key) }), GrpcStatus.INVALID_ARGUMENT, message);
    await assertStatus(client.rawBatchPut({ pairs: five }), GrpcStatus.INVALID_ARGUMENT, message);
    await assertStatus(client.rawBatchAppend({ pairs: five }), GrpcStatus.INVALID_ARGUMENT, message);
    // Exactly at the limit is accepted.
    await client.rawBatchPut({ pairs: five.slice(0, 4) });
    assert.equal((await client.rawBatchGet({ keys: five.map((pair) => pair.key).slice(0, 4) })).pairs.length, 4);
  });

  it('INVALID_ARGUMENT for a field value over valueBytesMax, and for field lists and ids over batchKeysMax', async () => {
    const INVALID = GrpcStatus.INVALID_ARGUMENT;
    const cf = 'small-fields';
    const key = b('k');
    await assertStatus(
      client.fieldPut({ cf, key, fields: [{ field: b('f'), value: Buffer.alloc(1025, 'v') }] }),
      INVALID,
      /^fields\[0\]: value is 1025 bytes, over limit 'valueBytesMax' \(1024\)$/,
    );
    const five = ['a', 'b', 'c', 'd', 'e'].map((f) => b(f));
    const message = /^fields has 5 entries, over limit 'batchKeysMax' \(4\)$/;
    await assertStatus(client.fieldPut({ cf, key, fields: five.map((field) => ({ field, value: b('v') })) }), INVALID, message);
    await assertStatus(client.fieldBatchGet({ cf, key, fields: five }), INVALID, message);
    await assertStatus(client.fieldDelete({ cf, key, fields: five }), INVALID, message);
    await assertStatus(client.vectorDelete({ cf, key, ids: five }), INVALID, /^ids has 5 entries, over limit 'batchKeysMax' \(4\)$/);
    assert.deepEqual(await client.fieldCount({ cf, key }), { count: 0 });
    // Exactly at the limit is accepted.
    assert.deepEqual(await client.fieldPut({ cf, key, fields: five.slice(0, 4).map((field) => ({ field, value: b('v') })) }), { added: 4 });
    assert.equal((await client.fieldBatchGet({ cf, key, fields: five.slice(0, 4) })).fields.length, 4);
  });

  it('INVALID_ARGUMENT for a scan limit over scanLimitMax as configured', async () => {
    await assertStatus(client.rawScan({ limit: 6 }), GrpcStatus.INVALID_ARGUMENT, /limit is 6, over limit 'scanLimitMax' \(5\)/);
  });

  it('RESOURCE_EXHAUSTED for a request over grpcMessageBytesMax, and serving goes on', async () => {
    // Each value is within valueBytesMax, but together they exceed the 4096-byte message limit.
    const pairs = ['a', 'b', 'c', 'd'].map((k) => ({ key: b(`big-${k}`), value: Buffer.alloc(1024, k) }));
    await assertStatus(client.rawBatchPut({ cf: 'big', pairs }), GrpcStatus.RESOURCE_EXHAUSTED, /larger than max/);
    assert.equal((await client.rawGet({ cf: 'big', key: b('big-a') })).not_found, true);
    await client.rawPut({ cf: 'big', key: b('after'), value: b('ok') });
    assert.equal((await client.rawGet({ cf: 'big', key: b('after') })).value.toString(), 'ok');
  });

  it('RESOURCE_EXHAUSTED for a response over grpcMessageBytesMax, and serving goes on', async () => {
    const cf = 'big-reply';
    for (const k of ['a', 'b', 'c', 'd']) {
      await client.rawPut({ cf, key: b(k), value: Buffer.alloc(1024, k) });
    }
    await assertStatus(client.rawScan({ cf, limit: 5 }), GrpcStatus.RESOURCE_EXHAUSTED, /larger than max/);
    assert.equal((await client.rawScan({ cf, limit: 3 })).kvs.length, 3);
    assert.equal((await client.rawScan({ cf, limit: 5, key_only: true })).kvs.length, 4);
  });
});

describe('gRPC RawKV failures inside the server', () => {
  it('maps a non-KvError to INTERNAL without leaking it, logs it, and keeps serving', async () => {
    // Fault injection: the real engine, with one read replaced by a bug.
    const fixture = await startFixture({}, (kv) =>
      new Proxy(kv, {
        get(target, property, receiver) {
          if (property === 'getMany') {
            return () => {
              throw new TypeError('secret internal detail');
            };
          }
          // Sessions: the call runs on this proxy, so the injected bug stays in place.
          if (property === 'withSession') return () => receiver;
          const member = Reflect.get(target, property, receiver) as unknown;
          return typeof member === 'function' ? member.bind(target) : member;
        },
      }),
    );
    try {
      await assert.rejects(fixture.client.rawBatchGet({ keys: [b('k')] }), (error: ServiceError) => {
        assert.equal(error.code, GrpcStatus.INTERNAL);
        assert.doesNotMatch(error.details, /secret|TypeError|at /);
        return true;
      });
      assert.equal(fixture.errorsLogged.length, 1);
      assert.match(String((fixture.errorsLogged[0]![0] as { err: Error }).err.message), /secret internal detail/);
      assert.deepEqual(fixture.observations.at(-1), { command: 'RawBatchGet', errorCode: 'INTERNAL' });
      await fixture.client.rawPut({ key: b('k'), value: b('v') });
      assert.equal((await fixture.client.rawGet({ key: b('k') })).value.toString(), 'v');
    } finally {
      await fixture.close();
    }
  });
});

describe('gRPC RawKV method list', () => {
  it('the client and server list every method of the .proto service, in .proto order', () => {
    assert.deepEqual(Object.keys(loadRawKvService()), [...rawKvMethods]);
  });
});

/** Wraps the engine so that each call records its method and the levels of the view it was made on. */
function recordingLevels(kv: KvApi, calls: string[], levels = 'default'): KvApi {
  return new Proxy(kv, {
    get(target, property, receiver) {
      if (property === 'withConsistency') {
        return (asked: Partial<Consistency>) => recordingLevels(target.withConsistency(asked), calls, `${asked.read}/${asked.write}`);
      }
      // Every call opens its session on the level's view: the calls on it are what is recorded.
      if (property === 'withSession') return (session: Session) => recordingLevels(target.withSession(session), calls, levels);
      if (property === 'newSession') return () => target.newSession();
      const member = Reflect.get(target, property, receiver) as unknown;
      if (typeof member !== 'function') return member;
      return (...args: unknown[]) => {
        calls.push(`${String(property)} ${levels}`);
        return (member as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

describe('gRPC consistency of the field, vector-list and expiry calls', () => {
  it('each call reaches the engine on the view of the level it names, and on the default view without one', async () => {
    const calls: string[] = [];
    const fixture = await startFixture({}, (kv) => recordingLevels(kv, calls));
    const c = fixture.client;
    const key = b('k');
    const consistency = 'QUORUM' as const;
    try {
      await c.vectorAppend({ key: b('list'), type: 'INT8', dim: 1, items: [{ id: b('a'), values: [1] }] });
      calls.length = 0;
      await c.fieldPut({ key, fields: [{ field: b('f'), value: b('v') }], consistency });
      await c.fieldGet({ key, field: b('f'), consistency });
      await c.fieldBatchGet({ key, fields: [b('f')], consistency });
      await c.fieldGetAll({ key, consistency });
      await c.fieldDelete({ key, fields: [b('f')], consistency });
      await c.fieldCount({ key, consistency });
      await c.fieldExists({ key, field: b('f'), consistency });
      await c.vectorDelete({ key: b('list'), ids: [b('a')], consistency });
      await c.vectorRange({ key: b('list'), start: 0, stop: -1, consistency });
      await c.vectorCount({ key: b('list'), consistency });
      await c.rawExpire({ key, ttl_ms: 60_000, consistency });
      await c.rawTtl({ key, consistency });
      const asked = ['hset', 'hget', 'hmget', 'hgetall', 'hdel', 'hlen', 'hexists', 'vdel', 'vrange', 'vcard', 'expireAt', 'ttlMs'];
      assert.deepEqual(calls, asked.map((method) => `${method} QUORUM/QUORUM`));
      calls.length = 0;
      await c.fieldCount({ key });
      await c.rawTtl({ key, consistency: 'ONE' });
      assert.deepEqual(calls, ['hlen default', 'ttlMs ONE/ONE']);
    } finally {
      await fixture.close();
    }
  });
});

describe('gRPC and RESP over one engine (parity)', () => {
  let dir: string;
  let local: Awaited<ReturnType<typeof openLocalKv>>;
  let grpcServer: GrpcServer;
  let respServer: Awaited<ReturnType<typeof startRespServer>>;
  let c: RawKvClient;
  let r: Redis;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ragkv-grpc-resp-'));
    local = await openLocalKv({ path: dir, durability: 'none' });
    const logger = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {} };
    const common = { kv: local.kv, limits: makeLimits(), host: '127.0.0.1', port: 0, logger, metrics: noMetrics };
    grpcServer = await startGrpcServer(common);
    respServer = await startRespServer(common);
    c = createRawKvClient(`127.0.0.1:${grpcServer.port}`);
    r = new Redis({ port: respServer.port, host: '127.0.0.1', retryStrategy: () => null, maxRetriesPerRequest: 0 });
  });
  after(async () => {
    r.disconnect();
    c.close();
    await grpcServer.close();
    await respServer.close();
    await local.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('fields written over gRPC read back identically over RESP, and the other way round', async () => {
    const binary = Buffer.from([0, 255, 10]);
    const fields = [
      { field: b('title'), value: b('RAG') },
      { field: binary, value: Buffer.from([7, 0, 7]) },
      { field: b('empty'), value: b('') },
    ];
    assert.deepEqual(await c.fieldPut({ key: b('p:doc'), fields }), { added: 3 });
    const all = await r.callBuffer('HGETALL', 'p:doc') as Buffer[];
    const fromResp = [];
    for (let i = 0; i < all.length; i += 2) fromResp.push({ field: all[i]!, value: all[i + 1]! });
    assert.deepEqual(fromResp, (await c.fieldGetAll({ key: b('p:doc') })).fields);
    assert.equal(fromResp.length, 3);
    assert.deepEqual(await r.hmgetBuffer('p:doc', 'title', 'missing', binary), [b('RAG'), null, Buffer.from([7, 0, 7])]);
    assert.equal(await r.hlen('p:doc'), (await c.fieldCount({ key: b('p:doc') })).count);

    assert.equal(await r.hset('p:doc', 'lang', 'en', 'title', 'RAG 2'), 1);
    assert.deepEqual(await c.fieldBatchGet({ key: b('p:doc'), fields: [b('lang'), b('title')] }), {
      fields: [{ field: b('lang'), value: b('en') }, { field: b('title'), value: b('RAG 2') }],
    });
    assert.equal(await r.hdel('p:doc', 'lang', 'nope'), 1);
    assert.deepEqual(await c.fieldExists({ key: b('p:doc'), field: b('lang') }), { exists: false });
    assert.deepEqual(await c.fieldDelete({ key: b('p:doc'), fields: [b('title')] }), { deleted: 1 });
    assert.equal(await r.hexists('p:doc', 'title'), 0);
  });

  it('expiry set over gRPC reads back over RESP (PTTL, TTL), and the other way round', async () => {
    await r.set('p:none', 'v');
    assert.equal(await r.pttl('p:absent'), -2);
    assert.deepEqual(await c.rawTtl({ key: b('p:absent') }), { not_found: true, expires: false, ttl_ms: 0 });
    assert.equal(await r.pttl('p:none'), -1);
    assert.deepEqual(await c.rawTtl({ key: b('p:none') }), { not_found: false, expires: false, ttl_ms: 0 });

    assert.deepEqual(await c.rawExpire({ key: b('p:none'), ttl_ms: 300_000 }), { applied: true });
    const pttl = await r.pttl('p:none');
    assert.ok(pttl > 290_000 && pttl <= 300_000, `PTTL ${pttl}`);
    const seconds = await r.ttl('p:none');
    assert.ok(seconds >= 290 && seconds <= 300, `TTL ${seconds}`);
    assert.equal(await r.expire('p:none', 100, 'GT'), 0, 'GT refuses a shorter expiry on RESP as on gRPC');
    assert.deepEqual(await c.rawExpire({ key: b('p:none'), ttl_ms: 100_000, condition: 'GT' }), { applied: false });
    assert.equal(await r.persist('p:none'), 1);
    assert.deepEqual(await c.rawTtl({ key: b('p:none') }), { not_found: false, expires: false, ttl_ms: 0 });
    assert.equal(await r.pexpireat('p:none', Date.now() + 60_000), 1);
    const ttl = await c.rawTtl({ key: b('p:none') });
    assert.ok(ttl.expires && ttl.ttl_ms > 50_000 && ttl.ttl_ms <= 60_000, JSON.stringify(ttl));
  });

  it('a vector list written over gRPC reads back identically over RESP (VCARD, VRANGE), and the other way round', async () => {
    const items = [
      { id: b('a'), values: [0.5, -1], payload: b('chunk:a') },
      { id: b('b'), values: [2, 0.25] },
      { id: b('c'), values: [-3, 4], payload: b('chunk:c') },
    ];
    await c.vectorAppend({ key: b('p:list'), type: 'FLOAT32', dim: 2, items });
    assert.deepEqual(await c.vectorDelete({ key: b('p:list'), ids: [b('a')] }), { count: 2 });
    assert.equal(await r.call('VCARD', 'p:list'), 2);
    const viaResp = (await r.callBuffer('VRANGE', 'p:list', '0', '-1', 'WITHVECTORS', 'WITHPAYLOADS')) as [Buffer, Buffer, Buffer | null][];
    const viaGrpc = (await c.vectorRange({ key: b('p:list'), start: 0, stop: -1, with_vectors: true, with_payloads: true })).items;
    assert.deepEqual(
      viaResp.map(([id, vector, payload]) => [id, vector, payload ?? Buffer.alloc(0)]),
      viaGrpc.map((item) => [item.id, Buffer.from(Float32Array.from(item.values).buffer), item.payload]),
    );
    assert.deepEqual(viaGrpc.map((item) => [item.id.toString(), item.values, item.payload.toString()]), [
      ['b', [2, 0.25], ''],
      ['c', [-3, 4], 'chunk:c'],
    ]);

    assert.equal(await r.call('VDEL', 'p:list', 'c'), 1);
    assert.deepEqual(await c.vectorCount({ key: b('p:list') }), { count: 1 });
    assert.deepEqual((await c.vectorRange({ key: b('p:list'), start: 0, stop: -1 })).items.map((item) => item.id.toString()), ['b']);
  });
});

/** Debian's python3 with python3-grpcio (the pyenv python3 on PATH may lack it). */
const debianPython = '/usr/bin/python3';
const pythonGrpcMissing = ((): string | false => {
  try {
    execFileSync(debianPython, ['-c', 'import grpc'], { stdio: 'ignore' });
    return false;
  } catch {
    return `${debianPython} cannot import grpc (apt-get install python3-grpcio)`;
  }
})();

describe('gRPC RawKV from Python (grpcio, generic call, no stubs)', () => {
  it('FieldPut, FieldGet and an over-limit field name answer as they do to Node', async () => {
    // CI installs python3-grpcio (.ci/run): its absence is a failure, not a skip.
    assert.equal(pythonGrpcMissing, false, String(pythonGrpcMissing));
    const fixture = await startFixture();
    try {
      // The script is not compiled: it is read from the source tree (dist/test -> test/helpers).
      const script = fileURLToPath(new URL('../../test/helpers/grpc-generic-call.py', import.meta.url));
      const { stdout } = await promisify(execFile)(debianPython, [script, String(fixture.server.port)], { timeout: 30_000 });
      const [put, get, refused] = JSON.parse(stdout) as [{ ok: string }, { ok: string }, { code: string; details: string }];
      // The replies' bytes, decoded as the .proto says (not compared byte for byte: an encoder
      // may or may not write a field that holds its default).
      const service = loadRawKvService();
      const withoutToken = (r: { session_token?: Buffer }) => {
        assert.ok(Buffer.isBuffer(r.session_token), 'every reply carries a session token');
        const { session_token: _token, ...rest } = r;
        return rest;
      };
      assert.deepEqual(withoutToken(service.FieldPut!.responseDeserialize(Buffer.from(put.ok, 'hex'))), { added: 1 });
      assert.deepEqual(withoutToken(service.FieldGet!.responseDeserialize(Buffer.from(get.ok, 'hex'))), { value: b('from python'), not_found: false });
      assert.deepEqual(refused, { code: 'INVALID_ARGUMENT', details: "field is 513 bytes, over limit 'fieldBytesMax' (512)" });
      // What Python wrote reads back through the Node client.
      assert.deepEqual(await fixture.client.fieldGetAll({ cf: 'py', key: b('doc') }), {
        fields: [{ field: b('title'), value: b('from python') }],
      });
    } finally {
      await fixture.close();
    }
  });
});

describe('toGrpcFailure', () => {
  it('maps each KvError code to its status and keeps the message', () => {
    const expected: [KvError['code'], GrpcStatus][] = [
      ['KEY_TOO_LARGE', GrpcStatus.INVALID_ARGUMENT],
      ['VALUE_TOO_LARGE', GrpcStatus.INVALID_ARGUMENT],
      ['FIELD_TOO_LARGE', GrpcStatus.INVALID_ARGUMENT],
      ['BATCH_TOO_LARGE', GrpcStatus.INVALID_ARGUMENT],
      ['INVALID_ARGUMENT', GrpcStatus.INVALID_ARGUMENT],
      ['PROTOCOL', GrpcStatus.INVALID_ARGUMENT],
      ['LIMIT_EXCEEDED', GrpcStatus.INVALID_ARGUMENT],
      ['NOT_FOUND', GrpcStatus.NOT_FOUND],
      ['WRONG_TYPE', GrpcStatus.FAILED_PRECONDITION],
      ['OVERLOADED', GrpcStatus.RESOURCE_EXHAUSTED],
      ['DISK_FULL', GrpcStatus.RESOURCE_EXHAUSTED],
      ['UNAVAILABLE', GrpcStatus.UNAVAILABLE],
      ['QUORUM_NOT_MET', GrpcStatus.UNAVAILABLE],
    ];
    for (const [code, status] of expected) {
      const failure = toGrpcFailure(new KvError(code, `message of ${code}`));
      assert.deepEqual(failure, { code: status, details: `message of ${code}`, errorCode: code, internal: false });
    }
  });

  it('hides the message of INTERNAL KvErrors and of anything else thrown', () => {
    for (const error of [new KvError('INTERNAL', 'db handle is null'), new RangeError('stack here'), 'a string']) {
      const failure = toGrpcFailure(error);
      assert.equal(failure.code, GrpcStatus.INTERNAL);
      assert.equal(failure.internal, true);
      assert.equal(failure.errorCode, 'INTERNAL');
      assert.doesNotMatch(failure.details, /handle|stack|string/);
    }
  });
});

describe('gRPC server lifecycle', () => {
  it('refuses calls once closed, and close is idempotent', async () => {
    const fixture = await startFixture();
    try {
      await fixture.client.rawPut({ key: b('k'), value: b('v') });
      await fixture.server.close();
      await fixture.server.close();
      await assertStatus(fixture.client.rawGet({ key: b('k') }), GrpcStatus.UNAVAILABLE, /./);
    } finally {
      await fixture.close();
    }
  });

  it('rejects when the port is taken', async () => {
    const fixture = await startFixture();
    try {
      const { noMetrics } = await import('../src/server/metrics.js');
      const logger = { info: () => {}, warn: () => {}, error: () => {} };
      await assert.rejects(
        startGrpcServer({
          kv: fixture.kv,
          limits: makeLimits(),
          host: '127.0.0.1',
          port: fixture.server.port,
          logger,
          metrics: noMetrics,
        }),
        /could not bind 127\.0\.0\.1:\d+/,
      );
    } finally {
      await fixture.close();
    }
  });
});
