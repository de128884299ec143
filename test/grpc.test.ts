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
import { startGrpcServer, toGrpcFailure, type GrpcServer } from '../src/server/grpc/index.js';
import type { RequestMetrics } from '../src/server/metrics.js';

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
