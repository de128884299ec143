/**
 * Load generator targets (adapters) and peers (the servers a benchmark starts), against the
 * REAL servers started through the peers module: a ragkv process (RESP and gRPC), Redis
 * standalone, Redis with appendfsync always, Redis primary + 2 replicas, and a 3-member
 * etcd cluster. Missing `redis-server` / `etcd` binaries are installed with apt-get
 * (Debian packages redis-server, redis-tools, etcd-server) by the same code the benchmark uses.
 * Each peer is started once for this file.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { Redis } from 'ioredis';
import { etcdPackages, ragkvSpecs, redisPackages, ensureDebianPackages, findBinary, startPeer, type PeerHandle } from '../tools/loadgen/peers/index.js';
import { createTargetFactory, decodeRecord, encodeRecord, type TargetSpec } from '../tools/loadgen/targets/index.js';
import type { RecordFields, Target } from '../tools/loadgen/target.js';
import { tempDir } from './helpers/tmp.js';

const b = (text: string): Buffer => Buffer.from(text);
const peerTimeout = { timeout: 240_000 }; // generous only for a first-time apt-get install in CI

const logLines: string[] = [];
const log = (line: string): void => {
  logLines.push(line);
};

/** A 10-field YCSB-like record; fields include binary bytes and an empty value. */
function tenFields(tag: string): RecordFields {
  const fields: RecordFields = {};
  for (let i = 0; i < 10; i++) fields[`field${i}`] = b(`${tag}-value-${i}-${'x'.repeat(i * 7)}`);
  fields['field8'] = Buffer.from([0, 1, 2, 0xfe, 0xff, 0x0d, 0x0a]);
  fields['field9'] = Buffer.alloc(0);
  return fields;
}

/** Same field names and bytes, whatever the order. */
function assertSameRecord(actual: RecordFields | null, expected: RecordFields): void {
  assert.ok(actual, 'record is missing');
  assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort());
  for (const [name, value] of Object.entries(expected)) {
    assert.ok(actual[name]!.equals(value), `field ${name}: ${actual[name]!.toString('hex')} != ${value.toString('hex')}`);
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * The adapter contract, run against one target. `scan`: true if the target supports
 * scanRecords (then keys `zz:<name>:...` must sort last in the store, which they do since
 * every other key of these tests starts with the target name).
 */
function adapterContract(getSpec: () => TargetSpec, scan: boolean): void {
  let target: Target;
  let name: string;

  before(async () => {
    const spec = getSpec();
    name = spec.name;
    target = await createTargetFactory(spec).create();
    assert.equal(target.name, spec.name);
  });

  after(async () => {
    await target?.close();
  });

  it('describe() says how operations map to the store', () => {
    assert.match(target.describe(), /\S{10,}/);
  });

  it('insertRecord / readRecord round-trips a 10-field record; a missing record reads null', async () => {
    const fields = tenFields('ins');
    await target.insertRecord(`${name}:user1`, fields);
    assertSameRecord(await target.readRecord(`${name}:user1`), fields);
    assert.equal(await target.readRecord(`${name}:absent`), null);
  });

  it('updateFields changes only the given fields', async () => {
    const fields = tenFields('upd');
    await target.insertRecord(`${name}:user2`, fields);
    const changes = { field3: b('new-3'), field7: b('new-7') };
    await target.updateFields(`${name}:user2`, changes);
    assertSameRecord(await target.readRecord(`${name}:user2`), { ...fields, ...changes });
  });

  it('put / get / getMany: values in request order, null for a missing key', async () => {
    const a = Buffer.from([0, 1, 2, 3, 255]);
    const c = b('chunk c '.repeat(100));
    await target.put(`${name}:a`, a);
    await target.put(`${name}:c`, c);
    assert.ok((await target.get(`${name}:a`))!.equals(a));
    assert.equal(await target.get(`${name}:missing`), null);
    const many = await target.getMany([`${name}:c`, `${name}:missing`, `${name}:a`, `${name}:c`]);
    assert.equal(many.length, 4);
    assert.ok(many[0]!.equals(c));
    assert.equal(many[1], null);
    assert.ok(many[2]!.equals(a));
    assert.ok(many[3]!.equals(c));
    assert.deepEqual(await target.getMany([]), []);
    // put replaces
    await target.put(`${name}:a`, b('replaced'));
    assert.equal((await target.get(`${name}:a`))!.toString(), 'replaced');
  });

  it('append creates a missing value and concatenates', async () => {
    await target.append(`${name}:log`, b('one,'));
    await target.append(`${name}:log`, b('two,'));
    await target.append(`${name}:log`, Buffer.from([0, 0xff]));
    assert.ok((await target.get(`${name}:log`))!.equals(Buffer.concat([b('one,two,'), Buffer.from([0, 0xff])])));
  });

  if (scan) {
    it('scanRecords reads records in key order from the start key, at most count', async () => {
      const key = (i: number): string => `zz:${name}:scan:${String(i).padStart(2, '0')}`;
      for (let i = 0; i < 20; i++) await target.insertRecord(key(i), tenFields(`s${i}`));
      assert.equal(await target.scanRecords(key(5), 10), 10); // limited by count
      assert.equal(await target.scanRecords(key(5), 100), 15); // 05..19: start inclusive
      assert.equal(await target.scanRecords(`${key(5)}a`, 100), 14); // 06..19: key order, not insertion
      assert.equal(await target.scanRecords(key(19), 5), 1);
      assert.equal(await target.scanRecords(`zz:${name}:scan:~`, 5), 0); // after the last key
      assert.equal(await target.scanRecords(key(0), 0), 0);
    });
  } else {
    it('scanRecords is refused with an error naming the alternative', async () => {
      await assert.rejects(target.scanRecords(`${name}:a`, 10), /not supported over RESP.*ragkv-grpc/);
    });
  }

  it('close() closes: later operations fail instead of queueing', async () => {
    const spec = getSpec();
    const own = await createTargetFactory(spec).create();
    await own.put(`${name}:close`, b('v'));
    await own.close();
    await assert.rejects(own.get(`${name}:close`));
    await assert.rejects(own.put(`${name}:close`, b('w')));
  });
}

/** After stop(), every server process is gone. */
async function stopAndCheck(peer: PeerHandle | undefined): Promise<void> {
  if (!peer) return;
  await peer.stop();
  for (const pid of peer.serverPids) assert.equal(pidAlive(pid), false, `server pid ${pid} still alive after stop()`);
}

describe('record codec', () => {
  it('round-trips fields, including empty names and values and binary bytes', () => {
    const fields: RecordFields = { '': b(''), a: Buffer.from([0, 255]), 'ü-name': b('v'.repeat(1000)) };
    assertSameRecord(decodeRecord(encodeRecord(fields)), fields);
    assert.deepEqual(decodeRecord(encodeRecord({})), {});
  });

  it('rejects truncated, padded and foreign bytes with a clear error', () => {
    const encoded = encodeRecord({ f: b('value') });
    assert.throws(() => decodeRecord(encoded.subarray(0, encoded.length - 1)), /past the end/);
    assert.throws(() => decodeRecord(Buffer.concat([encoded, b('!')])), /after the last field/);
    assert.throws(() => decodeRecord(b('hello world')), /not an encoded record/);
    assert.throws(() => decodeRecord(Buffer.alloc(2)), /shorter than the field count/);
  });
});

describe('target factory', () => {
  it('refuses a spec without endpoints and a bad endpoint', async () => {
    assert.throws(() => createTargetFactory({ kind: 'redis', endpoints: [], name: 'r' }), /no endpoints/);
    const factory = createTargetFactory({ kind: 'redis', endpoints: ['nohost'], name: 'r' });
    await assert.rejects(factory.create(), /not host:port/);
  });

  it('refuses waiting for more replicas than the spec has', () => {
    const spec: TargetSpec = { kind: 'redis', endpoints: ['127.0.0.1:1', '127.0.0.1:2'], name: 'rr' };
    assert.throws(() => createTargetFactory(spec, { waitReplicas: 2 }), /more than the 1 replicas/);
  });

  it('fails to create a target when nothing listens (no endless retry)', async () => {
    const spec: TargetSpec = { kind: 'ragkv-resp', endpoints: ['127.0.0.1:1'], name: 'dead' };
    await assert.rejects(createTargetFactory(spec).create(), /cannot connect to 127\.0\.0\.1:1/);
  });
});

describe('ragkv peer (one process) and its RESP and gRPC targets', peerTimeout, () => {
  const dir = tempDir('ragkv-loadgen-');
  let peer: PeerHandle | undefined;

  before(async () => {
    peer = await startPeer('ragkv', { workDir: dir.path, log });
  });
  after(async () => {
    await stopAndCheck(peer);
    dir.cleanup();
  });

  it('starts on loopback with both interfaces and states its durability', () => {
    const { resp, grpc } = ragkvSpecs(peer!);
    assert.equal(peer!.spec, resp);
    assert.equal(resp.kind, 'ragkv-resp');
    assert.equal(grpc.kind, 'ragkv-grpc');
    assert.match(resp.endpoints[0]!, /^127\.0\.0\.1:\d+$/);
    assert.match(grpc.endpoints[0]!, /^127\.0\.0\.1:\d+$/);
    assert.notEqual(resp.endpoints[0], grpc.endpoints[0]);
    assert.match(peer!.describe, /durability fsync/);
    assert.equal(peer!.serverPids.length, 1);
    assert.ok(pidAlive(peer!.serverPids[0]!));
  });

  describe('ragkv-resp', () => adapterContract(() => ragkvSpecs(peer!).resp, false));
  describe('ragkv-grpc', () => {
    adapterContract(() => ragkvSpecs(peer!).grpc, true);
    it('describe() says updateFields is read + rewrite', async () => {
      const target = await createTargetFactory(ragkvSpecs(peer!).grpc).create();
      try {
        assert.match(target.describe(), /RawGet \+ RawPut/);
      } finally {
        await target.close();
      }
    });
  });
});

describe('redis peer (standalone, appendfsync everysec) and target', peerTimeout, () => {
  const dir = tempDir('ragkv-loadgen-redis-');
  let peer: PeerHandle | undefined;

  before(async () => {
    await ensureDebianPackages(redisPackages, log); // installs redis-server if this machine lacks it
    assert.ok(findBinary('redis-server'));
    peer = await startPeer('redis', { workDir: dir.path, log });
  });
  after(async () => {
    await stopAndCheck(peer);
    dir.cleanup();
  });

  it('runs one server on loopback with AOF everysec and no RDB snapshots', async () => {
    assert.equal(peer!.spec.kind, 'redis');
    assert.equal(peer!.spec.endpoints.length, 1);
    assert.equal(peer!.serverPids.length, 1);
    assert.match(peer!.describe, /appendfsync everysec/);
    const [host, port] = peer!.spec.endpoints[0]!.split(':');
    const redis = new Redis({ host, port: Number(port) });
    try {
      assert.deepEqual(await redis.config('GET', 'appendfsync'), ['appendfsync', 'everysec']);
      assert.deepEqual(await redis.config('GET', 'appendonly'), ['appendonly', 'yes']);
      assert.deepEqual(await redis.config('GET', 'save'), ['save', '']);
      assert.deepEqual(await redis.config('GET', 'bind'), ['bind', '127.0.0.1']);
    } finally {
      redis.disconnect();
    }
  });

  describe('redis target', () => adapterContract(() => peer!.spec, true));

  it('keeps the YCSB key index: inserted record keys are members of _index', async () => {
    const [host, port] = peer!.spec.endpoints[0]!.split(':');
    const redis = new Redis({ host, port: Number(port) });
    try {
      assert.equal(await redis.zscore('_index', 'redis:user1'), '0');
      assert.equal(await redis.zscore('_index', 'redis:a'), null); // plain values are not records
    } finally {
      redis.disconnect();
    }
  });
});

describe('redis-always peer', peerTimeout, () => {
  const dir = tempDir('ragkv-loadgen-redis-always-');
  let peer: PeerHandle | undefined;

  before(async () => {
    peer = await startPeer('redis-always', { workDir: dir.path, log });
  });
  after(async () => {
    await stopAndCheck(peer);
    dir.cleanup();
  });

  it('runs with appendfsync always and says so', async () => {
    assert.equal(peer!.spec.name, 'redis-always');
    assert.match(peer!.describe, /appendfsync always/);
    const [host, port] = peer!.spec.endpoints[0]!.split(':');
    const redis = new Redis({ host, port: Number(port) });
    try {
      assert.deepEqual(await redis.config('GET', 'appendfsync'), ['appendfsync', 'always']);
    } finally {
      redis.disconnect();
    }
    const target = await createTargetFactory(peer!.spec).create();
    try {
      await target.put('k', b('v'));
      assert.equal((await target.get('k'))!.toString(), 'v');
    } finally {
      await target.close();
    }
  });
});

describe('redis-replicated peer (primary + 2 replicas) and target', peerTimeout, () => {
  const dir = tempDir('ragkv-loadgen-redis-repl-');
  let peer: PeerHandle | undefined;

  before(async () => {
    peer = await startPeer('redis-replicated', { workDir: dir.path, log });
  });
  after(async () => {
    await stopAndCheck(peer);
    dir.cleanup();
  });

  it('starts a primary and two linked replicas', async () => {
    assert.equal(peer!.spec.name, 'redis-replicated');
    assert.equal(peer!.spec.endpoints.length, 3);
    assert.equal(peer!.serverPids.length, 3);
    for (const endpoint of peer!.spec.endpoints.slice(1)) {
      const [host, port] = endpoint.split(':');
      const replica = new Redis({ host, port: Number(port) });
      try {
        const info = await replica.info('replication');
        assert.match(info, /role:slave/);
        assert.match(info, /master_link_status:up/);
      } finally {
        replica.disconnect();
      }
    }
  });

  describe('redis-replicated target', () => adapterContract(() => peer!.spec, true));

  it('an acknowledged write is already on every replica (WAIT), and describe() says so', async () => {
    const target = await createTargetFactory(peer!.spec).create();
    try {
      assert.match(target.describe(), /WAIT 2 1000/);
      await target.put('repl:k', b('on-all'));
      await target.insertRecord('repl:r', { f: b('1') });
      for (const endpoint of peer!.spec.endpoints.slice(1)) {
        const [host, port] = endpoint.split(':');
        const replica = new Redis({ host, port: Number(port) });
        try {
          assert.equal(await replica.get('repl:k'), 'on-all');
          assert.deepEqual(await replica.hgetall('repl:r'), { f: '1' });
        } finally {
          replica.disconnect();
        }
      }
    } finally {
      await target.close();
    }
  });
});

describe('etcd peer (3 members) and target', peerTimeout, () => {
  const dir = tempDir('ragkv-loadgen-etcd-');
  let peer: PeerHandle | undefined;

  before(async () => {
    await ensureDebianPackages(etcdPackages, log); // installs etcd-server if this machine lacks it
    assert.ok(findBinary('etcd'));
    peer = await startPeer('etcd', { workDir: dir.path, log });
  });
  after(async () => {
    await stopAndCheck(peer);
    dir.cleanup();
  });

  it('forms a 3-member cluster on loopback', async () => {
    assert.equal(peer!.spec.kind, 'etcd');
    assert.equal(peer!.spec.endpoints.length, 3);
    assert.equal(peer!.serverPids.length, 3);
    assert.match(peer!.describe, /3 members/);
    assert.match(peer!.describe, /fsync/);
    for (const endpoint of peer!.spec.endpoints) assert.match(endpoint, /^127\.0\.0\.1:\d+$/);
    const client = new Etcd3({ hosts: `http://${peer!.spec.endpoints[0]}` });
    try {
      const { members } = await client.cluster.memberList({});
      assert.deepEqual(members.map((m) => m.name).sort(), ['m1', 'm2', 'm3']);
    } finally {
      client.close();
    }
  });

  describe('etcd target', () => {
    adapterContract(() => peer!.spec, true);

    it('getMany over the 128-op txn limit keeps request order', async () => {
      const target = await createTargetFactory(peer!.spec).create();
      try {
        for (let i = 0; i < 300; i += 2) await target.put(`etcd:many:${i}`, b(`v${i}`));
        const keys = Array.from({ length: 300 }, (_, i) => `etcd:many:${299 - i}`);
        const values = await target.getMany(keys);
        assert.equal(values.length, 300);
        values.forEach((value, index) => {
          const i = 299 - index;
          if (i % 2 === 0) assert.equal(value?.toString(), `v${i}`);
          else assert.equal(value, null);
        });
      } finally {
        await target.close();
      }
    });

    it('concurrent appends and field updates are not lost (read + compare-and-put)', async () => {
      const target = await createTargetFactory(peer!.spec).create();
      try {
        await Promise.all(Array.from({ length: 8 }, (_, i) => target.append('etcd:race', b(`<${i}>`))));
        const text = (await target.get('etcd:race'))!.toString();
        for (let i = 0; i < 8; i++) assert.ok(text.includes(`<${i}>`), `append ${i} lost: ${text}`);
        assert.equal(text.length, 8 * 3);

        await target.insertRecord('etcd:race-rec', { base: b('0') });
        await Promise.all(Array.from({ length: 6 }, (_, i) => target.updateFields('etcd:race-rec', { [`f${i}`]: b(`${i}`) })));
        const record = await target.readRecord('etcd:race-rec');
        assert.deepEqual(Object.keys(record!).sort(), ['base', 'f0', 'f1', 'f2', 'f3', 'f4', 'f5']);
      } finally {
        await target.close();
      }
    });

    it('refuses a write over etcd request limit with an error naming it, and keeps serving', async () => {
      const target = await createTargetFactory(peer!.spec).create();
      try {
        await assert.rejects(target.put('etcd:big', Buffer.alloc(2 * 1024 * 1024)), /--max-request-bytes/);
        await target.put('etcd:small', b('ok'));
        assert.equal((await target.get('etcd:small'))!.toString(), 'ok');
        assert.equal(await target.get('etcd:big'), null);
      } finally {
        await target.close();
      }
    });
  });
});

describe('peers', () => {
  it('refuses an unknown kind', async () => {
    await assert.rejects(
      startPeer('nope' as never, { workDir: '/nonexistent', log }),
      /unknown peer 'nope'/,
    );
  });
});
