/**
 * Every limit the RESP server enforces, against the real engine with small limits: input just
 * over the limit gets an error naming the limit, the server keeps serving another client,
 * and nothing stored is lost.
 */
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import pino from 'pino';
import { type Limits, makeLimits } from '../src/common/limits.js';
import { openLocalKv } from '../src/coordinator/index.js';
import type { RequestMetrics } from '../src/server/metrics.js';
import { type RespServer, startRespServer } from '../src/server/resp/index.js';
import { RawClient, encodeCommand } from './helpers/resp.js';

/** A RequestMetrics that records disconnections and lets a test await one. */
class MetricsRecorder extends EventEmitter implements RequestMetrics {
  readonly disconnects: string[] = [];
  readonly errors = new Map<string, number>();
  open = 0;
  observe(_protocol: string, command: string, _seconds: number, errorCode?: string): void {
    if (errorCode !== undefined) this.errors.set(`${command}:${errorCode}`, (this.errors.get(`${command}:${errorCode}`) ?? 0) + 1);
  }
  connections(_protocol: string, delta: number): void {
    this.open += delta;
    this.emit('connections', this.open);
  }
  disconnected(_protocol: string, reason: string): void {
    this.disconnects.push(reason);
    this.emit('disconnected', reason);
  }
  /** Resolves when the server has disconnected a client for `reason`. */
  async disconnectedFor(reason: string): Promise<void> {
    while (!this.disconnects.includes(reason)) await once(this, 'disconnected');
  }
  /** Resolves when the server counts `n` open connections. */
  async openConnections(n: number): Promise<void> {
    while (this.open !== n) await once(this, 'connections');
  }
}


interface Harness {
  server: RespServer;
  metrics: MetricsRecorder;
  limits: Limits;
  client(): Redis;
  close(): Promise<void>;
}

async function startHarness(overrides: Partial<Limits>): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'ragkv-resp-limits-'));
  const limits = makeLimits(overrides);
  const opened = await openLocalKv({ path: dir, limits: overrides, durability: 'commit' });
  const metrics = new MetricsRecorder();
  const server = await startRespServer({
    kv: opened.kv,
    limits,
    host: '127.0.0.1',
    port: 0,
    logger: pino({ level: 'silent' }),
    metrics,
  });
  const clients: Redis[] = [];
  return {
    server,
    metrics,
    limits,
    client() {
      const c = new Redis({ port: server.port, host: '127.0.0.1', retryStrategy: () => null, maxRetriesPerRequest: 0 });
      clients.push(c);
      return c;
    },
    async close() {
      for (const c of clients) c.disconnect();
      await server.close();
      await opened.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

const KiB = 1024;
const MiB = 1024 * KiB;

const small: Partial<Limits> = {
  keyBytesMax: 64,
  valueBytesMax: 1000,
  fieldBytesMax: 64,
  respBulkBytesMax: 1024,
  respArrayLengthMax: 16,
  respInlineBytesMax: 128,
  queryBufferBytesMax: 4096,
  outputBufferBytesMax: 64 * 1024,
  pipelineInFlightMax: 4,
};

describe('RESP limits', () => {
  let h: Harness;
  let witness: Redis;
  const stored = new Map<string, string>();

  before(async () => {
    h = await startHarness(small);
    witness = h.client();
    for (let i = 0; i < 20; i++) stored.set(`kept:${i}`, `value-${i}-${'x'.repeat(900)}`);
    for (const [k, v] of stored) await witness.set(k, v);
  });

  after(async () => {
    await h.close();
  });

  /** Another client is served and every stored value is still there. */
  async function assertServerHealthy(): Promise<void> {
    const other = h.client();
    assert.equal(await other.ping(), 'PONG');
    const keys = [...stored.keys()];
    assert.deepEqual(await other.mget(...keys.slice(0, 10)), keys.slice(0, 10).map((k) => stored.get(k)));
    assert.deepEqual(await other.mget(...keys.slice(10)), keys.slice(10).map((k) => stored.get(k)));
    assert.equal(await witness.get('kept:0'), stored.get('kept:0'), 'the long-lived client is unaffected');
    other.disconnect();
  }

  it("respArrayLengthMax: an array one element too long is refused from its header and the client closed", async () => {
    const c = await RawClient.connect(h.server.port);
    c.send('*17\r\n'); // the elements never need to arrive
    assert.equal(
      await c.readUntilClosed(),
      "-ERR Protocol error: array length is 17, over limit 'respArrayLengthMax' (16)\r\n",
    );
    await h.metrics.disconnectedFor('respArrayLengthMax');
    await assertServerHealthy();
  });

  it('respBulkBytesMax: a bulk string one byte too long is refused before its body is sent', async () => {
    const c = await RawClient.connect(h.server.port);
    c.send('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1025\r\n');
    assert.equal(
      await c.readUntilClosed(),
      "-ERR Protocol error: bulk string is 1025 bytes, over limit 'respBulkBytesMax' (1024)\r\n",
    );
    await h.metrics.disconnectedFor('respBulkBytesMax');
    await assertServerHealthy();
  });

  it('respInlineBytesMax: an inline command one byte too long is refused', async () => {
    const c = await RawClient.connect(h.server.port);
    c.send(`ECHO ${'a'.repeat(124)}\r\n`); // 129 bytes before CRLF
    assert.equal(
      await c.readUntilClosed(),
      "-ERR Protocol error: inline command is over limit 'respInlineBytesMax' (128 bytes)\r\n",
    );
    const ok = await RawClient.connect(h.server.port);
    ok.send(`ECHO ${'a'.repeat(123)}\r\n`); // exactly 128 bytes: fine
    assert.equal(await ok.readBytes(130), `$123\r\n${'a'.repeat(123)}\r\n`);
    ok.close();
    await assertServerHealthy();
  });

  it('queryBufferBytesMax: a command that grows the query buffer over the limit is refused', async () => {
    const c = await RawClient.connect(h.server.port);
    const value = 'q'.repeat(1000);
    // Each bulk is under respBulkBytesMax and the array under respArrayLengthMax, but the
    // whole command is over 4096 bytes.
    c.send(encodeCommand('MSET', 'q:1', value, 'q:2', value, 'q:3', value, 'q:4', value, 'q:5', value));
    assert.match(await c.readUntilClosed(), /^-ERR query buffer is \d+ bytes, over limit 'queryBufferBytesMax' \(4096\)\r\n$/);
    await h.metrics.disconnectedFor('queryBufferBytesMax');
    assert.equal(await witness.exists('q:1', 'q:2', 'q:3', 'q:4', 'q:5'), 0, 'the refused MSET wrote nothing');
    await assertServerHealthy();
  });

  it('malformed protocol: the error names the problem, the client is closed, others are served', async () => {
    const c = await RawClient.connect(h.server.port);
    c.send(Buffer.concat([encodeCommand('SET', 'bad:1', 'v'), Buffer.from('*1\r\n:5\r\n'), encodeCommand('SET', 'bad:2', 'v')]));
    assert.equal(await c.readUntilClosed(), "+OK\r\n-ERR Protocol error: expected '$', got ':'\r\n");
    await h.metrics.disconnectedFor('protocol');
    assert.equal(await witness.get('bad:1'), 'v', 'the command before the bad input ran');
    assert.equal(await witness.exists('bad:2'), 0, 'nothing after the bad input ran');
    await assertServerHealthy();
  });

  it('outputBufferBytesMax: a client that never reads while pipelining large GETs is disconnected', async () => {
    const before = h.server.connectionCount();
    const c = await RawClient.connect(h.server.port);
    c.socket.pause(); // never read a reply
    await h.metrics.openConnections(before + 1);
    // 200 GETs of ~1 KB values in one write: ~200 KB of replies, over the 64 KB limit.
    const gets: Buffer[] = [];
    for (let i = 0; i < 200; i++) gets.push(encodeCommand('GET', `kept:${i % 20}`));
    c.send(Buffer.concat(gets));
    await h.metrics.disconnectedFor('outputBufferBytesMax');
    await h.metrics.openConnections(before);
    c.close();
    await assertServerHealthy();
  });

  it('keyBytesMax: a key one byte too long is refused by the engine; the connection stays usable', async () => {
    const r = h.client();
    const long = 'k'.repeat(65);
    await assert.rejects(r.set(long, 'v'), { message: "ERR key is 65 bytes, over limit 'keyBytesMax' (64)" });
    await assert.rejects(r.get(long), { message: "ERR key is 65 bytes, over limit 'keyBytesMax' (64)" });
    await assert.rejects(r.hset(long, 'f', 'v'), { message: "ERR key is 65 bytes, over limit 'keyBytesMax' (64)" });
    assert.equal(await r.set('k'.repeat(64), 'v'), 'OK', 'a key exactly at the limit is fine');
    assert.equal(await r.ping(), 'PONG');
    await assertServerHealthy();
  });

  it('valueBytesMax: a value one byte too long is refused by the engine; the connection stays usable', async () => {
    const r = h.client();
    const message = "ERR value is 1001 bytes, over limit 'valueBytesMax' (1000)";
    await assert.rejects(r.set('kept:0', 'v'.repeat(1001)), { message });
    await assert.rejects(r.append('kept:1', 'v'.repeat(1001)), { message });
    await assert.rejects(r.hset('h', 'f', 'v'.repeat(1001)), { message });
    assert.equal(await r.set('v:ok', 'v'.repeat(1000)), 'OK');
    assert.equal(h.metrics.errors.get('set:VALUE_TOO_LARGE'), 1, 'metrics count the refusal by error code');
    assert.equal(h.metrics.errors.get('append:VALUE_TOO_LARGE'), 1);
    await assertServerHealthy();
  });

  it('pipelineInFlightMax: a pipeline longer than the in-flight bound still replies in order', async () => {
    const c = await RawClient.connect(h.server.port);
    const commands: Buffer[] = [];
    let expected = '';
    for (let i = 0; i < 50; i++) {
      commands.push(encodeCommand('APPEND', 'inflight', 'x'));
      expected += `:${i + 1}\r\n`;
      if (i % 10 === 9) {
        commands.push(encodeCommand('STRLEN', 'inflight'));
        expected += `:${i + 1}\r\n`;
      }
    }
    c.send(Buffer.concat(commands));
    assert.equal(await c.readBytes(expected.length), expected);
    c.close();
  });
});

describe('RESP connectionsMax', () => {
  it('refuses connections over the limit with the Redis error and serves the others', async () => {
    const h = await startHarness({ connectionsMax: 2 });
    try {
      const a = h.client();
      const b = h.client();
      assert.equal(await a.set('c:k', 'v'), 'OK');
      assert.equal(await b.ping(), 'PONG');
      const extra = await RawClient.connect(h.server.port);
      assert.equal(await extra.readUntilClosed(), '-ERR max number of clients reached\r\n');
      await h.metrics.disconnectedFor('connectionsMax');
      assert.equal(h.server.connectionCount(), 2);
      assert.equal(await a.get('c:k'), 'v');
      // A freed slot can be taken again.
      b.disconnect();
      await h.metrics.openConnections(1);
      const c = h.client();
      assert.equal(await c.get('c:k'), 'v');
    } finally {
      await h.close();
    }
  });
});

describe('RESP connections the server closes', () => {
  // A protocol error's reply is tiny; the input behind it is more than the socket buffers
  // take, so the server's side stays readable (and paused) unless it drains or destroys it.
  const badInput = Buffer.concat([Buffer.from('*x\r\n'), Buffer.alloc(2 * MiB, 'a')]);
  const badReply = '-ERR Protocol error: invalid multibulk length\r\n';

  it('a protocol error followed by 2 MiB of input, never read: the slot is freed (closeLingerMsMax)', { timeout: 30_000 }, async () => {
    const h = await startHarness({ connectionsMax: 1, closeLingerMsMax: 100 });
    try {
      const bad = await RawClient.connect(h.server.port);
      bad.socket.pause(); // never reads its reply
      await h.metrics.openConnections(1);
      bad.send(badInput);
      await h.metrics.disconnectedFor('protocol');
      await h.metrics.openConnections(0); // the server closed its side without the client's help
      const next = h.client();
      assert.equal(await next.ping(), 'PONG', 'the freed slot serves a new client');
      bad.close();
    } finally {
      await h.close();
    }
  });

  it('a client that reads still gets the error reply before the close, with 2 MiB of input behind it', { timeout: 30_000 }, async () => {
    const h = await startHarness({ closeLingerMsMax: 60_000 });
    try {
      const bad = await RawClient.connect(h.server.port);
      bad.send(badInput);
      assert.equal(await bad.readUntilClosed(), badReply);
      await h.metrics.openConnections(0);
    } finally {
      await h.close();
    }
  });

  it('server close does not wait for clients it is closing or has refused', { timeout: 30_000 }, async () => {
    // A linger longer than the test: only close() itself may end these connections.
    const h = await startHarness({ connectionsMax: 1, closeLingerMsMax: 600_000 });
    try {
      const bad = await RawClient.connect(h.server.port);
      bad.socket.pause();
      await h.metrics.openConnections(1);
      bad.send(badInput);
      await h.metrics.disconnectedFor('protocol');
      const refused = await RawClient.connect(h.server.port);
      refused.socket.pause();
      refused.send(badInput);
      await h.metrics.disconnectedFor('connectionsMax');
      await h.server.close(); // resolves once the listener has closed, which waits for every socket
      await h.metrics.openConnections(0);
      assert.equal(h.server.connectionCount(), 0);
      bad.close();
      refused.close();
    } finally {
      await h.close();
    }
  });
});

describe('RESP outputBuffersTotalBytesMax', () => {
  it('clients that never read, each under outputBufferBytesMax, are disconnected when together over the total', { timeout: 60_000 }, async () => {
    // A GET of a 900-byte key replies about as many bytes as it takes, so one read of input
    // (64 KiB) makes one batch of replies well under the per-client limit: only the total
    // can disconnect these clients.
    const h = await startHarness({ keyBytesMax: 1024, outputBufferBytesMax: 256 * KiB, outputBuffersTotalBytesMax: 256 * KiB });
    try {
      const key = `big:${'k'.repeat(900)}`;
      const value = 'v'.repeat(1000);
      const witness = h.client();
      assert.equal(await witness.set(key, value), 'OK');
      // 32 MiB of GETs per client: more than the socket buffers take, so replies back up in
      // the server (each client that stops holds at least the socket's high-water mark).
      const get = encodeCommand('GET', key);
      const flood = Buffer.concat(new Array<Buffer>(Math.ceil((32 * MiB) / get.length)).fill(get));
      const bad: RawClient[] = [];
      for (let i = 0; i < 24; i++) {
        const c = await RawClient.connect(h.server.port);
        c.socket.pause(); // never reads a reply
        c.send(flood);
        bad.push(c);
      }
      await h.metrics.disconnectedFor('outputBuffersTotalBytesMax');
      assert.ok(!h.metrics.disconnects.includes('outputBufferBytesMax'), 'no client went over its own limit');
      assert.equal(await witness.get(key), value, 'a client that reads is served meanwhile');
      for (const c of bad) c.close();
      await h.metrics.openConnections(1);
      assert.equal(await witness.get(key), value);
    } finally {
      await h.close();
    }
  });
});
