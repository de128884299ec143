/**
 * Members authenticate each other (real processes): three members share a cluster secret;
 * an intruder that knows the cluster name and the addresses, but not the secret, can neither
 * join, nor read a key, nor plant a far-future version. A member started without the secret
 * is refused too. Without a secret a member says it accepts loopback peers only.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { systemClock } from '../src/common/clock.js';
import { makeLimits } from '../src/common/limits.js';
import { Random } from '../src/common/random.js';
import { Channel, TransportError } from '../src/cluster/transport.js';
import { createTcpTransport } from '../src/cluster/tcp-transport.js';
import { encodeMessage } from '../src/cluster/membership/codec.js';
import { encodeRequest } from '../src/replica/protocol.js';
import { emptyRecord } from '../src/storage/record.js';
import { logicalPerMs } from '../src/storage/version.js';
import { ProcessCluster, freePort, getJson, startMemberProcess } from './helpers/cluster.js';
import { tempDir } from './helpers/tmp.js';

const hosts = ['127.0.0.71', '127.0.0.72', '127.0.0.73'];

test('cluster secret: an intruder that knows the cluster name but not the secret cannot join, read or write; members serve on', { timeout: 120_000 }, async (t) => {
  const dir = tempDir('ragkv-secret-');
  const secretFile = join(dir.path, 'secret');
  writeFileSync(secretFile, 'the members know this, intruders do not\n', { mode: 0o600 });
  const c = await ProcessCluster.start({ hosts, extraArgs: ['--cluster-secret-file', secretFile] });
  const redis = new Redis({ host: c.host(0), port: c.member(0).ports.resp });
  const intruder = await createTcpTransport({
    self: 'intruder',
    cluster: 'ragkv',
    host: '127.0.0.74',
    port: 0,
    limits: makeLimits(),
    clock: systemClock,
    random: new Random(1),
    secret: Buffer.from('a guess at the secret, not it...'),
  });
  try {
    await redis.set('doc:1', 'the real value');
    const target = `${c.host(1)}:${c.specs[1]!.peerPort}`;
    const refusedAt = async (what: string, p: Promise<unknown>) => {
      await assert.rejects(p, (err: unknown) => {
        assert.ok(err instanceof TransportError, `${what}: ${String(err)}`);
        assert.equal(err.code, 'UNREACHABLE');
        assert.match(err.message, /does not know this cluster's secret/);
        return true;
      });
    };
    // Join through membership.
    await refusedAt('join', intruder.requestAt(target, Channel.membership, encodeMessage({ type: 'push-pull', join: true, wallMs: Date.now(), states: [] }), 2000));
    // Read a key straight from a replica.
    await refusedAt('read', intruder.requestAt(target, Channel.replica, encodeRequest({ op: 'read', epoch: 0, ns: 'default', keys: [Buffer.from('doc:1')] }), 2000));
    // Plant a version a year ahead that no later SET could beat.
    const delta = emptyRecord();
    delta.base = { version: { ts: (Date.now() + 365 * 86_400_000) * logicalPerMs, node: 1 }, value: Buffer.from('owned') };
    await refusedAt('write', intruder.requestAt(target, Channel.replica, encodeRequest({ op: 'write', epoch: 0, hintFor: null, items: [{ ns: 'default', key: Buffer.from('doc:1'), delta }] }), 2000));
    // The members never saw the intruder, and the data is untouched and writable.
    const status = await getJson<{ members: { id: string }[] }>(c.host(1), c.member(1).ports.admin, '/cluster');
    assert.deepEqual(status.members.map((m) => m.id).sort(), ['n1', 'n2', 'n3']);
    await redis.set('doc:1', 'written after the attack');
    assert.equal(await redis.get('doc:1'), 'written after the attack');

    // A member started without the secret is refused by the others (and says why).
    const host = '127.0.0.75';
    const outsider = await startMemberProcess(
      { id: 'n4', host, peerPort: await freePort(host), dataDir: join(dir.path, 'n4') },
      [`${c.host(0)}:${c.specs[0]!.peerPort}`],
    );
    try {
      const warned = outsider.tail.some((l) => /no cluster secret.*loopback addresses only/.test(l));
      assert.ok(warned, 'a member without a secret says it accepts loopback peers only');
      const seen = await getJson<{ members: { id: string }[] }>(c.host(0), c.member(0).ports.admin, '/cluster');
      assert.ok(!seen.members.some((m) => m.id === 'n4'), 'the member without the secret did not join');
    } finally {
      outsider.proc.kill('SIGKILL');
      await outsider.exited;
    }
    t.diagnostic('join, read and write without the secret refused at the handshake');
  } finally {
    redis.disconnect();
    await intruder.close();
    await c.destroy();
    dir.cleanup();
  }
});
