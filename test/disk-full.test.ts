/**
 * Disk full, against real processes on a real full filesystem: a small tmpfs mounted here
 * (CI runs as root; without root the test fails, it is not skipped). A node is filled
 * through RESP until a write is refused; the refusal must be a clear retryable error and no
 * acknowledgement, reads must go on, /ready and /metrics must say so, and freeing space must
 * bring writes back by itself. A node killed on a full disk, and one stopped cleanly on a
 * full disk, must start again there and serve every write acknowledged before. In process:
 * a commit that failed leaves nothing behind, in the counters or in namespace ids.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { tempDir } from './helpers/tmp.js';
import { kill9, startNodeProcess, stopGracefully, type NodeProcess } from './helpers/process.js';
import { openLocalKv } from '../src/coordinator/index.js';
import { createRawKvClient, GrpcStatus, type ServiceError } from '../src/client/grpc.js';
import { KvError } from '../src/common/errors.js';

const MiB = 1024 * 1024;
/** Values big enough that a few fill the disk; each is distinct, so a read checks the bytes. */
const valueBytes = MiB;
/** More writes than the largest mount can hold: a fill that is never refused fails. */
const fillWritesMax = 64;
/**
 * Free bytes under which the node refuses writes before trying them. 1 byte: writes are
 * refused only when a commit has actually failed for lack of space (the path that used to
 * crash the process), or when the filesystem has no byte left (a restart on a full disk).
 */
const env = { ...process.env, RAGKV_DISK_FREE_BYTES_MIN: '1' };

function valueOf(n: number): Buffer {
  const v = Buffer.alloc(valueBytes, n % 251);
  v.write(`value ${n} `, 0);
  return v;
}

async function clientOf(node: NodeProcess): Promise<Redis> {
  const client = new Redis({
    port: node.ports.resp,
    host: '127.0.0.1',
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
    lazyConnect: true,
  });
  client.on('error', () => {}); // a dead server shows as a failed command below
  await client.connect();
  return client;
}

async function httpGet(node: NodeProcess, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${node.ports.admin}${path}`);
  return { status: res.status, body: await res.text() };
}

/** Value of one sample (`name` or `name{labels}`) in the node's /metrics, or undefined. */
async function metric(node: NodeProcess, sample: string): Promise<number | undefined> {
  const { body } = await httpGet(node, '/metrics');
  for (const line of body.split('\n')) {
    if (line.startsWith(sample + ' ')) return Number(line.slice(sample.length + 1));
  }
  return undefined;
}

/** Polls `check` until it returns true; fails with `what` once `deadlineMs` has passed. */
async function waitFor(what: string, check: () => Promise<boolean>, deadlineMs = 15_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Writes the last free bytes of the filesystem at `path` into a file there. */
function fillRest(path: string): void {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (err) {
    assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC', `filling ${path}: ${String(err)}`);
  } finally {
    closeSync(fd);
  }
}

/** Mounts a tmpfs of `size` on a fresh directory; fails (never skips) without root. */
function mountTmpfs(size: string): { path: string; cleanup(): void } {
  const dir = tempDir('ragkv-diskfull-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir.path], { stdio: 'pipe' });
  } catch (err) {
    dir.cleanup();
    assert.fail(`mounting a ${size} tmpfs needs root (CI runs as root): ${(err as Error).message}`);
  }
  return {
    path: dir.path,
    // Lazy: a process that failed the test may still hold files open; it must not hide why.
    cleanup: () => {
      execFileSync('umount', ['--lazy', dir.path], { stdio: 'pipe' });
      dir.cleanup();
    },
  };
}

test('a commit that fails for lack of space leaves no trace: counters and namespaces stay those of the data', async () => {
  const mnt = mountTmpfs('4m');
  const path = join(mnt.path, 'data');
  const limits = { diskFreeBytesMin: 1 };
  let engine: Awaited<ReturnType<typeof openLocalKv>> | undefined;
  try {
    engine = await openLocalKv({ path, limits });
    for (let i = 0; i < 3; i++) await engine.kv.set('default', Buffer.from(`k${i}`), Buffer.from(`v${i}`));
    // One batch (one tick): a new namespace, a small write and one larger than the disk.
    const small = engine.kv.set('ns2', Buffer.from('small'), Buffer.from('s'));
    const big = engine.kv.set('ns2', Buffer.from('big'), Buffer.alloc(5 * MiB, 1));
    for (const [what, write] of [['small', small], ['big', big]] as const) {
      await assert.rejects(write, (err: unknown) => err instanceof KvError && err.code === 'DISK_FULL' && err.retryable, `${what} write`);
    }
    assert.equal(engine.store.disk.isFull, true);
    assert.equal(engine.store.stats().keys, 3, 'keys counted by a commit that failed');
    await assert.rejects(engine.kv.set('default', Buffer.from('k9'), Buffer.from('x')), /no space left on the data disk/);
    assert.equal((await engine.kv.get('default', Buffer.from('k1')))?.toString(), 'v1', 'a read while the disk is full');

    execFileSync('mount', ['-o', 'remount,size=16m', mnt.path], { stdio: 'pipe' });
    engine.store.disk.check();
    assert.equal(engine.store.disk.isFull, false, 'space came back');
    await engine.kv.set('ns2', Buffer.from('after'), Buffer.from('a'));
    assert.equal(engine.store.stats().keys, 4);
    await engine.close(); // idempotent: the finally may close it again
    engine = await openLocalKv({ path, limits });
    assert.equal((await engine.kv.get('ns2', Buffer.from('after')))?.toString(), 'a', 'a write to a namespace created by a failed commit, after a restart');
    assert.equal(await engine.kv.get('ns2', Buffer.from('small')), null, 'a write of a failed commit');
    assert.equal(engine.store.stats().keys, 4, 'keys counted on disk');
  } finally {
    await engine?.close();
    mnt.cleanup();
  }
});

test('a full disk refuses writes with DISKFULL, keeps reads, says so, recovers, and restarts', { timeout: 180_000 }, async () => {
  const mount = mountTmpfs('16m');
  const mnt = mount.path;
  const dataDir = join(mnt, 'data');
  const filler = join(mnt, 'filler');
  writeFileSync(filler, Buffer.alloc(4 * MiB, 1));
  const nodes: NodeProcess[] = [];
  const clients: Redis[] = [];
  /** key -> value number, for every write the server acknowledged. */
  const acked = new Map<string, number>();
  let written = 0;

  /** SETs new keys until one is refused; returns the refusal. */
  const fillUntilRefused = async (client: Redis, prefix: string): Promise<Error> => {
    for (let i = 0; i < fillWritesMax; i++) {
      const n = written++;
      const key = `${prefix}:${n}`;
      try {
        await client.set(key, valueOf(n));
      } catch (err) {
        return err as Error;
      }
      acked.set(key, n);
    }
    return assert.fail(`${fillWritesMax} writes of ${valueBytes} bytes were all acknowledged on a 16 MiB disk`);
  };

  const checkAckedReads = async (client: Redis, when: string): Promise<void> => {
    assert.ok(acked.size > 0, 'no write was acknowledged');
    for (const [key, n] of acked) {
      const got = await client.getBuffer(key);
      assert.ok(got !== null && got.equals(valueOf(n)), `${when}: acknowledged ${key} reads back ${got ? `${got.length} other bytes` : 'nothing'}`);
    }
  };

  const assertDiskFull = async (node: NodeProcess, client: Redis, when: string): Promise<void> => {
    const ready = await httpGet(node, '/ready');
    assert.equal(ready.status, 503, `${when}: /ready while the disk is full: ${ready.body}`);
    assert.match((JSON.parse(ready.body) as { reason: string }).reason, /disk full/, `${when}: /ready reason`);
    assert.equal((await httpGet(node, '/health')).status, 200, `${when}: /health (liveness) stays 200, so nothing restarts the node`);
    assert.equal(await metric(node, 'ragkv_disk_full'), 1, `${when}: ragkv_disk_full`);
    // Even a write small enough to fit in LMDB's free pages is refused: no flapping.
    await assert.rejects(client.set('small', 'x'), /^ReplyError: DISKFULL /, `${when}: a small write while full`);
    const grpc = createRawKvClient(`127.0.0.1:${node.ports.grpc}`);
    try {
      await assert.rejects(
        grpc.rawPut({ key: Buffer.from('small'), value: Buffer.from('x') }),
        (err: ServiceError) => err.code === GrpcStatus.RESOURCE_EXHAUSTED && /no space left on the data disk/.test(err.details),
        `${when}: a gRPC write while full`,
      );
      const read = await grpc.rawGet({ key: Buffer.from(acked.keys().next().value!) });
      assert.equal(read.value?.length, valueBytes, `${when}: a gRPC read while full`);
    } finally {
      grpc.close();
    }
    assert.ok((await metric(node, 'ragkv_disk_full_writes_refused_total'))! >= 1, `${when}: refused writes counted`);
  };

  const assertRecovered = async (node: NodeProcess, client: Redis, key: string, when: string): Promise<void> => {
    await waitFor(`${when}: /ready 200 once space is back`, async () => (await httpGet(node, '/ready')).status === 200);
    assert.equal(await metric(node, 'ragkv_disk_full'), 0, `${when}: ragkv_disk_full`);
    const n = written++;
    assert.equal(await client.set(key, valueOf(n)), 'OK', `${when}: a write once space is back`);
    acked.set(key, n);
  };

  try {
    // ---- 1. Fill a running node until a commit fails for lack of space.
    const first = await startNodeProcess(dataDir, [], 20_000, { env });
    nodes.push(first);
    const c1 = await clientOf(first);
    clients.push(c1);
    const refusal = await fillUntilRefused(c1, 'fill1');
    assert.match(refusal.message, /^DISKFULL no space left/, 'the refusal of a write on a full disk');
    assert.ok(acked.size >= 5, `only ${acked.size} writes acknowledged before the disk was full`);
    assert.equal(first.proc.exitCode, null, 'the node exited when its disk filled');
    await checkAckedReads(c1, 'disk full');
    await assertDiskFull(first, c1, 'disk full');
    const fullLogs = () => first.logs.filter((l) => l.msg === 'disk full: writes refused');
    await waitFor('the disk-full log line', async () => fullLogs().length > 0);
    assert.equal(fullLogs().length, 1, 'one log line when the disk became full, none per refused write');
    assert.equal(fullLogs()[0]!.level, 'error');

    // ---- 2. Space comes back: writes are accepted again without a restart.
    rmSync(filler);
    await assertRecovered(first, c1, 'after-free', 'filler deleted');
    const freeLogs = () => first.logs.filter((l) => l.msg === 'disk has space again: writes accepted');
    await waitFor('the log line of the recovery', async () => freeLogs().length > 0);
    assert.equal(freeLogs().length, 1);
    assert.equal(fullLogs().length, 1);

    // ---- 3. Fill again, kill -9 on the full disk, take its last byte, restart there.
    assert.match((await fillUntilRefused(c1, 'fill2')).message, /^DISKFULL /);
    await kill9(first);
    fillRest(join(mnt, 'rest'));
    const second = await startNodeProcess(dataDir, [], 20_000, { env });
    nodes.push(second);
    const c2 = await clientOf(second);
    clients.push(c2);
    await checkAckedReads(c2, 'restarted on a full disk');
    await assertDiskFull(second, c2, 'restarted on a full disk');
    execFileSync('mount', ['-o', 'remount,size=32m', mnt], { stdio: 'pipe' });
    await assertRecovered(second, c2, 'after-remount', 'mount grown');

    // ---- 4. Fill again; a clean stop on the full disk, then a start there too.
    assert.match((await fillUntilRefused(c2, 'fill3')).message, /^DISKFULL /);
    c2.disconnect();
    assert.equal(await stopGracefully(second), 0, 'exit code of a clean stop on a full disk');
    // Storage closed, not an event loop that ran dry while closing hung.
    await waitFor("'stopped' logged by a clean stop on a full disk", async () => second.logs.some((l) => l.msg === 'stopped'), 5000);
    fillRest(join(mnt, 'rest2'));
    const third = await startNodeProcess(dataDir, [], 20_000, { env });
    nodes.push(third);
    const c3 = await clientOf(third);
    clients.push(c3);
    await checkAckedReads(c3, 'started after a clean stop on a full disk');
    await assertDiskFull(third, c3, 'started after a clean stop on a full disk');
    c3.disconnect();
    assert.equal(await stopGracefully(third), 0);
  } finally {
    for (const c of clients) c.disconnect();
    for (const node of nodes) await kill9(node);
    mount.cleanup();
  }
});
