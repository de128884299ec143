/**
 * The TCP transport over real sockets on 127.0.0.1: round trips, many requests in flight with
 * out-of-order replies, one-way messages, handshake refusals (other cluster, other protocol
 * version, forged by a raw socket), the frame size limit, deadlines, unreachable peers and
 * reconnection, backpressure against a peer that stops reading, remote errors and close.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { FrameDecoder, FrameKind, PROTOCOL_VERSION, encodeFrame, encodeHandshake, handshakeProof, isLoopbackAddress, type Frame } from '../src/cluster/frame.js';
import { createTcpTransport, type PeerEvent, type TcpTransport, type TcpTransportOptions } from '../src/cluster/tcp-transport.js';
import { TransportError, type TransportErrorCode } from '../src/cluster/transport.js';
import { systemClock } from '../src/common/clock.js';
import { bounds, makeLimits } from '../src/common/limits.js';
import { Random } from '../src/common/random.js';

const limits = makeLimits();
let seed = 1;
const open: TcpTransport[] = [];
const cleanups: (() => void | Promise<void>)[] = [];

afterEach(async () => {
  for (const t of open.splice(0)) await t.close();
  for (const c of cleanups.splice(0)) await c();
});

async function node(self: string, options: Partial<TcpTransportOptions> = {}): Promise<TcpTransport> {
  const t = await createTcpTransport({
    self,
    cluster: 'test',
    host: '127.0.0.1',
    port: 0,
    limits,
    clock: systemClock,
    random: new Random(seed++),
    backoffMsMin: 10,
    backoffMsMax: 100,
    ...options,
  });
  open.push(t);
  return t;
}

function addr(t: TcpTransport): string {
  return `127.0.0.1:${t.port}`;
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
}

function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

async function rejectsWith(promise: Promise<unknown>, code: TransportErrorCode, message?: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof TransportError, `expected a TransportError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message !== undefined) assert.match(err.message, message);
    return true;
  });
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
}

/** Resolves with the first event of `type` for `peer`. */
function nextPeerEvent(t: TcpTransport, type: PeerEvent['type'], peer: string): Promise<PeerEvent> {
  return new Promise((resolve) => {
    const off = t.onPeerEvent((e) => {
      if (e.type === type && e.peer === peer) {
        off();
        resolve(e);
      }
    });
  });
}

/** A raw client socket; resolves once connected. */
async function rawSocket(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  cleanups.push(() => void socket.destroy());
  await once(socket, 'connect');
  return socket;
}

/** Every frame a socket receives until it closes. */
function framesUntilClose(socket: net.Socket): Promise<Frame[]> {
  const decoder = new FrameDecoder(limits.peerFrameBytesMax);
  const frames: Frame[] = [];
  socket.on('data', (chunk: Buffer) => {
    decoder.push(chunk);
    for (let f = decoder.next(); f !== null; f = decoder.next()) frames.push(f);
  });
  return new Promise((resolve) => socket.on('close', () => resolve(frames)));
}

/** A port nothing listens on. */
async function deadPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('tcp transport', { timeout: 15_000 }, () => {
  it('round-trips a request; the handler sees the requester id', async () => {
    const a = await node('a');
    const b = await node('b');
    const seen: [string, string, boolean][] = [];
    b.handle(1, (from, payload, isRequest) => {
      seen.push([from, payload.toString(), isRequest]);
      return Buffer.concat([Buffer.from('re:'), payload]);
    });
    b.handle(2, async (_from, payload) => Buffer.from(payload.toString().toUpperCase()));
    b.handle(3, () => undefined);
    a.setAddress('b', addr(b));
    assert.equal((await a.request('b', 1, Buffer.from('hi'), 2000)).toString(), 're:hi');
    assert.equal((await a.request('b', 2, Buffer.from('async'), 2000)).toString(), 'ASYNC');
    assert.equal((await a.request('b', 3, Buffer.from('ack'), 2000)).length, 0);
    assert.deepEqual(seen, [['a', 'hi', true]]);
    assert.equal(a.self, 'a');
    assert.equal(a.stats().connectionsOutbound, 1);
    assert.equal(b.stats().connectionsInbound, 1);
    assert.equal(a.stats().requestsInFlight, 0);
  });

  it('carries 1000 concurrent requests on one connection, replies matched by id out of order', async () => {
    const a = await node('a');
    const b = await node('b');
    const n = 1000;
    const gates = new Map<number, Deferred<void>>();
    const allArrived = deferred();
    b.handle(1, async (_from, payload) => {
      const i = payload.readUInt32BE(0);
      const gate = deferred();
      gates.set(i, gate);
      if (gates.size === n) allArrived.resolve();
      await gate.promise;
      return Buffer.from(`reply ${i}`);
    });
    a.setAddress('b', addr(b));
    const resolvedOrder: number[] = [];
    const requests = Array.from({ length: n }, (_, i) =>
      a.request('b', 1, u32(i), 10_000).then((reply) => {
        resolvedOrder.push(i);
        return reply;
      }),
    );
    await allArrived.promise;
    assert.equal(a.stats().requestsInFlight, n);
    assert.equal(a.stats().connectionsOutbound, 1);
    assert.equal(b.stats().connectionsInbound, 1);
    assert.equal(b.stats().inboundRequestsHandling, n);
    // Release in a seeded shuffled order.
    const order = Array.from({ length: n }, (_, i) => i);
    const random = new Random(42);
    for (let i = n - 1; i > 0; i--) {
      const j = random.nextInt(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    for (const i of order) gates.get(i)!.resolve();
    const replies = await Promise.all(requests);
    replies.forEach((reply, i) => assert.equal(reply.toString(), `reply ${i}`));
    assert.deepEqual(resolvedOrder, order);
    assert.equal(a.stats().requestsInFlight, 0);
  });

  it('delivers one-way messages with the sender id; drops and counts those for unknown peers', async () => {
    const a = await node('a');
    const b = await node('b');
    const got = deferred<[string, string, boolean]>();
    b.handle(3, (from, payload, isRequest) => got.resolve([from, payload.toString(), isRequest]));
    a.setAddress('b', addr(b));
    a.send('b', 3, Buffer.from('gossip'));
    assert.deepEqual(await got.promise, ['a', 'gossip', false]);
    a.send('nobody', 3, Buffer.from('lost'));
    assert.equal(a.stats().droppedOneWay, 1);
  });

  it('refuses a peer from another cluster, naming both clusters', async () => {
    const a = await node('a', { cluster: 'x' });
    const b = await node('b', { cluster: 'y' });
    let called = false;
    b.handle(1, () => {
      called = true;
      return Buffer.from('no');
    });
    a.setAddress('b', addr(b));
    await rejectsWith(a.request('b', 1, Buffer.from('hi'), 2000), 'UNREACHABLE', /peer is in cluster 'x', this node is in cluster 'y'/);
    await rejectsWith(a.requestAt(addr(b), 1, Buffer.from('hi'), 2000), 'UNREACHABLE', /peer is in cluster 'x', this node is in cluster 'y'/);
    assert.equal(called, false);
  });

  it('members with the same cluster secret connect; a wrong secret, or none on one side, is refused at the handshake', async () => {
    const secret = Buffer.from('correct horse battery staple, v1');
    const a = await node('a', { secret });
    const b = await node('b', { secret });
    b.handle(1, (_from, payload) => Buffer.concat([Buffer.from('echo:'), payload]));
    assert.equal((await a.requestAt(addr(b), 1, Buffer.from('hi'), 2000)).reply.toString(), 'echo:hi');
    let called = false;
    const guarded = await node('guarded', { secret });
    guarded.handle(1, () => {
      called = true;
      return Buffer.alloc(0);
    });
    const intruder = await node('intruder', { secret: Buffer.from('a guess that is wrong, v1 .....') });
    await rejectsWith(intruder.requestAt(addr(guarded), 1, Buffer.from('read everything'), 2000), 'UNREACHABLE', /does not know this cluster's secret/);
    const open = await node('open');
    await rejectsWith(open.requestAt(addr(guarded), 1, Buffer.from('x'), 2000), 'UNREACHABLE', /peer proves a cluster secret, this member has none/);
    await rejectsWith(guarded.requestAt(addr(open), 1, Buffer.from('x'), 2000), 'UNREACHABLE', /peer has no cluster secret, this member requires one/);
    assert.equal(called, false, 'no request reached the handler without the secret');
  });

  it('a proof is bound to its connection: a raw peer that knows the name but not the secret, or replays a proof, is refused', async () => {
    const secret = Buffer.from('sixteen+ bytes of cluster secret');
    const b = await node('b', { secret });
    let called = false;
    b.handle(1, () => {
      called = true;
      return Buffer.alloc(0);
    });
    // Round 1: a raw initiator learns b's nonce and proof, then answers with a proof made for another connection's nonces.
    const socket = await rawSocket(b.port);
    const frames = framesUntilClose(socket);
    const myNonce = Buffer.alloc(32, 1);
    socket.write(encodeFrame(FrameKind.handshake, 0, 0, encodeHandshake({ cluster: 'test', nodeId: 'raw', nonce: myNonce })));
    const stale = handshakeProof(secret, 'initiator', { cluster: 'test', initiatorId: 'raw', acceptorId: 'b', initiatorNonce: myNonce, acceptorNonce: Buffer.alloc(32, 2) });
    socket.write(encodeFrame(FrameKind.auth, 0, 0, stale));
    socket.write(encodeFrame(FrameKind.request, 1, 1, Buffer.from('sneaky')));
    const received = await frames;
    assert.deepEqual(received.map((f) => f.kind), [FrameKind.handshake, FrameKind.fatal]);
    assert.equal(received[1]!.payload.toString(), "peer does not know this cluster's secret");
    assert.equal(called, false);
  });

  it('tells loopback addresses apart (a member without a secret accepts and dials only these)', () => {
    for (const a of ['127.0.0.1', '127.8.9.10', '::1', '::ffff:127.0.0.1']) assert.equal(isLoopbackAddress(a), true, a);
    for (const a of ['10.0.0.1', '::ffff:10.0.0.1', '128.0.0.1', 'fe80::1', '0.0.0.0', '', undefined]) assert.equal(isLoopbackAddress(a), false, String(a));
  });

  it('refuses a forged handshake with another protocol version, then closes', async () => {
    const b = await node('b');
    const socket = await rawSocket(b.port);
    const frames = framesUntilClose(socket);
    socket.write(encodeFrame(FrameKind.handshake, 0, 0, encodeHandshake({ cluster: 'test', nodeId: 'evil', nonce: Buffer.alloc(32) }, 1)));
    const received = await frames;
    assert.equal(received.length, 1);
    assert.equal(received[0]!.kind, FrameKind.fatal);
    assert.equal(received[0]!.payload.toString(), `peer speaks internode protocol version 1, this node speaks version ${PROTOCOL_VERSION}`);
  });

  it('refuses a request frame sent before the handshake', async () => {
    const b = await node('b');
    let called = false;
    b.handle(1, () => {
      called = true;
      return Buffer.alloc(0);
    });
    const socket = await rawSocket(b.port);
    const frames = framesUntilClose(socket);
    socket.write(encodeFrame(FrameKind.request, 1, 1, Buffer.from('sneaky')));
    const received = await frames;
    assert.equal(received[0]!.kind, FrameKind.fatal);
    assert.match(received[0]!.payload.toString(), /expected a handshake first/);
    assert.equal(called, false);
  });

  it('a stranger dialing in a loop cannot flood the log nor hide a member: refusals are logged at most inboundWarningsMax per window, then counted', async () => {
    let now = 1_000_000;
    const warnings: Record<string, unknown>[] = [];
    const logger = { debug: () => {}, info: () => {}, warn: (fields: Record<string, unknown>) => void warnings.push(fields) };
    const b = await node('b', { clock: { nowMs: () => now, setTimer: systemClock.setTimer }, logger });
    const refuse = async () => {
      const socket = await rawSocket(b.port);
      const frames = framesUntilClose(socket);
      socket.write(encodeFrame(FrameKind.request, 1, 1, Buffer.from('sneaky')));
      const received = await frames;
      assert.equal(received[0]!.kind, FrameKind.fatal, 'every stranger is still told why');
    };
    for (let i = 0; i < 30; i++) await refuse();
    assert.equal(warnings.length, bounds.inboundWarningsMax);
    now += bounds.inboundWarningWindowMs;
    await refuse();
    assert.equal(warnings.length, bounds.inboundWarningsMax + 1);
    assert.equal(warnings.at(-1)!.suppressed, 30 - bounds.inboundWarningsMax, 'the next warning counts those left out');
    // Strangers have used up their budget again; a member's trouble is still logged.
    for (let i = 0; i < 30; i++) await refuse();
    const before = warnings.length;
    const member = await rawSocket(b.port);
    const closed = framesUntilClose(member);
    member.write(encodeFrame(FrameKind.handshake, 0, 0, encodeHandshake({ cluster: 'test', nodeId: 'member', nonce: Buffer.alloc(32) })));
    member.write(encodeFrame(FrameKind.auth, 0, 0, Buffer.alloc(0))); // no secret on either side: an empty proof
    member.write(u32(1024 * 1024 * 1024));
    await closed;
    assert.equal(warnings.length, before + 1);
    assert.match(String(warnings.at(-1)!.peer), /node 'member'/);
  });

  it('closes a connection whose frame declares 1 GiB, without allocating it', async () => {
    const b = await node('b');
    const before = process.memoryUsage().arrayBuffers;
    const socket = await rawSocket(b.port);
    const frames = framesUntilClose(socket);
    socket.write(encodeFrame(FrameKind.handshake, 0, 0, encodeHandshake({ cluster: 'test', nodeId: 'raw', nonce: Buffer.alloc(32) })));
    socket.write(encodeFrame(FrameKind.auth, 0, 0, Buffer.alloc(0))); // no secret on either side: an empty proof
    socket.write(u32(1024 * 1024 * 1024));
    const received = await frames;
    assert.deepEqual(
      received.map((f) => f.kind),
      [FrameKind.handshake, FrameKind.fatal],
    );
    assert.equal(received[1]!.payload.toString(), `frame of 1073741828 bytes is over limit 'peerFrameBytesMax' (${limits.peerFrameBytesMax})`);
    assert.ok(process.memoryUsage().arrayBuffers - before < 64 * 1024 * 1024, 'no frame-sized allocation');

    // Before the handshake the limit is small: an HTTP request is refused from its first 4 bytes.
    const http = await rawSocket(b.port);
    const refused = framesUntilClose(http);
    http.write('GET / HTTP/1.1\r\n\r\n');
    const [fatal] = await refused;
    assert.match(fatal!.payload.toString(), /over limit 'handshake frame size' \(1024\)/);
  });

  it('rejects TIMEOUT at the deadline and drops the late reply', async () => {
    const a = await node('a');
    const b = await node('b');
    const gate = deferred();
    b.handle(1, () => gate.promise.then(() => Buffer.from('late')));
    b.handle(2, (_from, payload) => payload);
    a.setAddress('b', addr(b));
    const started = Date.now();
    await rejectsWith(a.request('b', 1, Buffer.from('slow'), 100), 'TIMEOUT', /no reply from node 'b' at 127\.0\.0\.1:\d+ within 100 ms/);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 90 && elapsed < 2000, `timed out after ${elapsed} ms`);
    assert.equal(a.stats().requestsInFlight, 0);
    gate.resolve();
    // The late reply was written before this one's, on the same connection.
    assert.equal((await a.request('b', 2, Buffer.from('ping'), 2000)).toString(), 'ping');
    assert.equal(a.stats().lateReplies, 1);
  });

  it('fails fast with UNREACHABLE when the peer is down, and within the backoff', async () => {
    const a = await node('a', { backoffMsMin: 500, backoffMsMax: 1000 });
    await rejectsWith(a.request('ghost', 1, Buffer.from('x'), 2000), 'UNREACHABLE', /no address known for node 'ghost'/);
    a.setAddress('b', `127.0.0.1:${await deadPort()}`);
    let started = Date.now();
    await rejectsWith(a.request('b', 1, Buffer.from('x'), 5000), 'UNREACHABLE', /ECONNREFUSED/);
    assert.ok(Date.now() - started < 1000);
    started = Date.now();
    await rejectsWith(a.request('b', 1, Buffer.from('x'), 5000), 'UNREACHABLE', /next attempt in \d+ ms/);
    assert.ok(Date.now() - started < 50, 'no connection attempt within the backoff');
    a.send('b', 1, Buffer.from('gossip'));
    assert.equal(a.stats().droppedOneWay, 1);
  });

  it('rejects pending requests UNREACHABLE when the peer goes away, and reconnects when it is back', async () => {
    const a = await node('a');
    let b = await node('b');
    const port = b.port;
    const held = deferred<void>();
    b.handle(1, (_from, payload) => payload);
    b.handle(2, () => {
      held.resolve();
      return new Promise<Buffer>(() => {});
    });
    a.setAddress('b', addr(b));
    assert.equal((await a.request('b', 1, Buffer.from('one'), 2000)).toString(), 'one');
    const pending = a.request('b', 2, Buffer.from('never'), 10_000);
    await held.promise;
    const down = nextPeerEvent(a, 'disconnected', 'b');
    await b.close();
    await rejectsWith(pending, 'UNREACHABLE', /connection to node 'b' at .* failed before the reply/);
    await down;
    await rejectsWith(a.request('b', 1, Buffer.from('down'), 2000), 'UNREACHABLE');

    const up = nextPeerEvent(a, 'connected', 'b');
    b = await node('b', { port });
    b.handle(1, (_from, payload) => payload);
    await up;
    assert.equal((await a.request('b', 1, Buffer.from('back'), 2000)).toString(), 'back');
  });

  it('refuses OVERLOADED past peerRequestsInFlightMax', async () => {
    const a = await node('a', { limits: makeLimits({ peerRequestsInFlightMax: 2 }) });
    const b = await node('b');
    const gate = deferred();
    b.handle(1, () => gate.promise.then(() => Buffer.from('ok')));
    a.setAddress('b', addr(b));
    const first = a.request('b', 1, Buffer.alloc(0), 5000);
    const second = a.request('b', 1, Buffer.alloc(0), 5000);
    await rejectsWith(a.request('b', 1, Buffer.alloc(0), 5000), 'OVERLOADED', /2 requests in flight .* 'peerRequestsInFlightMax' \(2\)/);
    gate.resolve();
    assert.deepEqual((await Promise.all([first, second])).map(String), ['ok', 'ok']);
  });

  it('bounds the send queue when the peer stops reading: OVERLOADED, drops counted, memory bounded', async () => {
    const queueMax = 1024 * 1024;
    const small = makeLimits({ valueBytesMax: 64 * 1024, peerFrameBytesMax: 256 * 1024, peerSendQueueBytesMax: queueMax });
    // A peer that completes the handshake, then never reads again.
    const sockets: net.Socket[] = [];
    const deaf = net.createServer((socket) => {
      sockets.push(socket);
      const decoder = new FrameDecoder(1024);
      socket.on('data', (chunk: Buffer) => {
        decoder.push(chunk);
        if (decoder.next()?.kind === FrameKind.handshake) {
          socket.write(encodeFrame(FrameKind.handshake, 0, 0, encodeHandshake({ cluster: 'test', nodeId: 'deaf', nonce: Buffer.alloc(32) })));
          socket.pause();
        }
      });
    });
    await new Promise<void>((resolve) => deaf.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => deaf.close(() => resolve()));
    });
    const a = await node('a', { limits: small });
    a.setAddress('deaf', `127.0.0.1:${(deaf.address() as net.AddressInfo).port}`);
    const up = nextPeerEvent(a, 'connected', 'deaf');
    a.send('deaf', 1, Buffer.from('hello'));
    await up;

    const before = process.memoryUsage().arrayBuffers;
    const payload = Buffer.alloc(8 * 1024, 1);
    const attempts = 20_000; // 160 MiB if nothing were refused
    for (let i = 0; i < attempts; i++) a.send('deaf', 1, payload);
    const stats = a.stats();
    assert.ok(stats.droppedOneWay > 0, 'some one-way messages dropped');
    assert.ok(stats.droppedOneWay < attempts, 'some one-way messages sent');
    assert.ok(stats.queuedBytes <= queueMax, `queued ${stats.queuedBytes} bytes`);
    assert.ok(process.memoryUsage().arrayBuffers - before < 32 * 1024 * 1024, 'memory stays bounded');
    await rejectsWith(a.request('deaf', 1, payload, 5000), 'OVERLOADED', /'peerSendQueueBytesMax' \(1048576\)/);
  });

  it('pauses reading while inboundRequestsMax requests are being handled', async () => {
    const a = await node('a');
    const b = await node('b', { inboundRequestsMax: 2 });
    let running = 0;
    let runningMax = 0;
    let calls = 0;
    const gates: Deferred<void>[] = [];
    const twoHeld = deferred();
    b.handle(1, async (_from, payload) => {
      calls++;
      running++;
      runningMax = Math.max(runningMax, running);
      if (calls <= 2) {
        const gate = deferred();
        gates.push(gate);
        if (calls === 2) twoHeld.resolve();
        await gate.promise;
      }
      running--;
      return payload;
    });
    a.setAddress('b', addr(b));
    const requests = Array.from({ length: 6 }, (_, i) => a.request('b', 1, u32(i), 5000));
    await twoHeld.promise;
    assert.equal(b.stats().inboundRequestsHandling, 2);
    for (const gate of gates) gate.resolve();
    const replies = await Promise.all(requests);
    replies.forEach((r, i) => assert.equal(r.readUInt32BE(0), i));
    assert.equal(runningMax, 2);
  });

  it('turns handler errors into REMOTE errors carrying the message', async () => {
    const a = await node('a');
    const b = await node('b');
    b.handle(1, () => {
      throw new Error('boom');
    });
    b.handle(2, async () => {
      throw new Error('async boom');
    });
    a.setAddress('b', addr(b));
    await rejectsWith(a.request('b', 1, Buffer.alloc(0), 2000), 'REMOTE', /^boom$/);
    await rejectsWith(a.request('b', 2, Buffer.alloc(0), 2000), 'REMOTE', /^async boom$/);
    await rejectsWith(a.request('b', 9, Buffer.alloc(0), 2000), 'REMOTE', /no handler for channel 9 on node 'b'/);
    // The connection survives handler errors.
    assert.equal(a.stats().connectionsOutbound, 1);
  });

  it('requestAt learns the peer id from the handshake and keeps the connection for it', async () => {
    const a = await node('a');
    const b = await node('b');
    const froms: string[] = [];
    b.handle(1, (from, payload) => {
      froms.push(from);
      return payload;
    });
    const { from, reply } = await a.requestAt(addr(b), 1, Buffer.from('seed'), 2000);
    assert.equal(from, 'b');
    assert.equal(reply.toString(), 'seed');
    // No setAddress: the seed connection became b's connection.
    assert.equal((await a.request('b', 1, Buffer.from('again'), 2000)).toString(), 'again');
    assert.equal(a.stats().connectionsOutbound, 1);
    assert.equal(b.stats().connectionsInbound, 1);
    assert.deepEqual(froms, ['a', 'a']);
    await rejectsWith(a.requestAt(`127.0.0.1:${await deadPort()}`, 1, Buffer.alloc(0), 2000), 'UNREACHABLE', /ECONNREFUSED/);
  });

  it('close rejects pending requests with CLOSED and refuses new ones', async () => {
    const a = await node('a');
    const b = await node('b');
    const called = deferred();
    b.handle(1, () => {
      called.resolve();
      return new Promise<Buffer>(() => {});
    });
    a.setAddress('b', addr(b));
    const pending = a.request('b', 1, Buffer.alloc(0), 10_000);
    await called.promise;
    await a.close();
    await rejectsWith(pending, 'CLOSED');
    await rejectsWith(a.request('b', 1, Buffer.alloc(0), 1000), 'CLOSED');
    assert.equal(a.stats().connectionsOutbound, 0);
  });
});
