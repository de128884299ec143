/**
 * The production Transport: frames of `frame.ts` over TCP. Each node keeps one outbound
 * connection per peer (opened on first use) and sends its requests and one-way messages on
 * it; it answers a peer's requests on the connection they came in on. So two nodes talking
 * both ways hold two connections, each with one direction of requests.
 *
 * Every queue is bounded: requests in flight per connection (`peerRequestsInFlightMax`),
 * bytes queued per connection (`peerSendQueueBytesMax`, counting the socket's own buffer),
 * inbound requests being handled per connection (reading pauses above it). Past a bound a
 * request is refused OVERLOADED and a one-way message is dropped and counted; nothing waits
 * for a connection that is down: within the reconnect backoff, requests fail UNREACHABLE.
 * Timers (deadlines, backoff, handshake timeouts) go through the injected Clock.
 */
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import type { Clock, Timer } from '../common/clock.js';
import { bounds, type Limits } from '../common/limits.js';
import type { Random } from '../common/random.js';
import {
  FRAME_HEADER_BYTES,
  FrameDecoder,
  FrameError,
  FrameKind,
  HANDSHAKE_FRAME_BYTES_MAX,
  HANDSHAKE_NONCE_BYTES,
  type HandshakeTranscript,
  checkHandshake,
  handshakeProof,
  isLoopbackAddress,
  proofMatches,
  encodeFrame,
  encodeFrameHeader,
  encodeHandshake,
  type Frame,
} from './frame.js';
import { KvError } from '../common/errors.js';
import { TransportError, decodeRemoteError, encodeRemoteError, type Handler, type NodeId, type Transport } from './transport.js';

/** The logging calls the transport makes (a pino logger fits). */
export interface TransportLogger {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  debug(fields: Record<string, unknown>, message: string): void;
}

export interface TcpTransportOptions {
  self: NodeId;
  /** Cluster name; a peer naming another cluster in its handshake is refused. */
  cluster: string;
  /** Address to listen on. */
  host: string;
  /** Port to listen on; 0 picks a free one (see `TcpTransport.port`). */
  port: number;
  limits: Limits;
  clock: Clock;
  /** Jitter of the reconnect backoff. */
  random: Random;
  logger?: TransportLogger;
  /** First reconnect delay; it doubles per failed attempt up to `backoffMsMax`. Default 50. */
  backoffMsMin?: number;
  /** Longest reconnect delay. Default 5000. */
  backoffMsMax?: number;
  /** Time for a TCP connect plus the handshake, both directions. Default 5000. */
  connectTimeoutMs?: number;
  /** A peer used within this long is reconnected in the background after a failure. Default 60000. */
  reconnectIdleMs?: number;
  /** Requests of one inbound connection being handled at once; reading pauses above it. Default 1024. */
  inboundRequestsMax?: number;
  /**
   * The cluster secret: both sides of a connection prove they know it (frame.ts,
   * handshakeProof). Null: no proofs, and only loopback peers are accepted or connected to.
   */
  secret?: Buffer | null;
}

/** Counters for metrics. */
export interface TcpTransportStats {
  /** Outbound connections connecting or open (seed connections included). */
  connectionsOutbound: number;
  /** Inbound connections open. */
  connectionsInbound: number;
  /** Bytes queued for sending, over all connections (the sockets' own buffers included). */
  queuedBytes: number;
  /** One-way messages dropped: peer unreachable or its send queue full. */
  droppedOneWay: number;
  /** Requests sent and awaiting their reply. */
  requestsInFlight: number;
  /** Requests received and being handled. */
  inboundRequestsHandling: number;
  /** Replies that came after their request timed out, and were dropped. */
  lateReplies: number;
}

export type PeerEvent =
  | { type: 'connected'; peer: NodeId; address: string }
  | { type: 'disconnected'; peer: NodeId; address: string; reason: string };

export interface TcpTransport extends Transport {
  /** The bound port. */
  readonly port: number;
  stats(): TcpTransportStats;
  /** Calls `listener` when an outbound connection completes its handshake or breaks; returns an unsubscribe function. */
  onPeerEvent(listener: (event: PeerEvent) => void): () => void;
}

/** Starts listening and resolves with the transport once the port is bound. */
export async function createTcpTransport(options: TcpTransportOptions): Promise<TcpTransport> {
  const transport = new TcpTransportImpl(options);
  await transport.listen(options.host, options.port);
  return transport;
}

const SMALL_FRAME_BYTES = 16 * 1024;
const CLOSE_GRACE_MS = 1000;
const EMPTY = Buffer.alloc(0);

/** Splits `host:port` or `[v6]:port`. */
export function parseAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  const port = Number(address.slice(colon + 1));
  let host = address.slice(0, colon);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (colon <= 0 || host === '' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`address must be host:port, got '${address}'`);
  }
  return { host, port };
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

/**
 * Frames going out on one socket. Writes straight to the socket until `socket.write` says
 * its buffer is full, then queues until 'drain'; also queues before the handshake is done.
 * The byte bound covers this queue and the socket's buffer together.
 */
class FrameWriter {
  private readonly pieces: Buffer[] = [];
  private head = 0;
  private piecesBytes = 0;
  /** False until the handshake is done. */
  private opened = false;
  /** True between a `socket.write` that returned false and 'drain'. */
  private full = false;

  constructor(
    private readonly socket: net.Socket,
    private readonly bytesMax: number,
    private readonly onDrain: () => void,
  ) {
    socket.on('drain', () => {
      if (!this.full) return;
      this.full = false;
      this.flush();
      this.onDrain();
    });
  }

  /** True before the handshake and while the socket's buffer is full. */
  get isBlocked(): boolean {
    return !this.opened || this.full;
  }

  queuedBytes(): number {
    return this.piecesBytes + this.socket.writableLength;
  }

  /** Whether a frame of `bytes` may be queued without passing the bound. */
  fits(bytes: number): boolean {
    return this.queuedBytes() + bytes <= this.bytesMax;
  }

  /** Starts writing (handshake done). */
  open(): void {
    this.opened = true;
    this.flush();
  }

  /** Queues or writes one frame; the caller checked `fits`. `payload` must not change afterwards. */
  write(kind: FrameKind, id: number, channel: number, payload: Buffer): void {
    if (this.isBlocked || this.head < this.pieces.length) {
      this.enqueue(kind, id, channel, payload);
      return;
    }
    let ok: boolean;
    if (payload.length <= SMALL_FRAME_BYTES) {
      ok = this.socket.write(encodeFrame(kind, id, channel, payload));
    } else {
      this.socket.cork();
      this.socket.write(encodeFrameHeader(kind, id, channel, payload.length));
      ok = this.socket.write(payload);
      this.socket.uncork();
    }
    if (!ok) this.full = true;
  }

  /** Drops everything queued (the connection is closing). */
  discard(): void {
    this.pieces.length = 0;
    this.head = 0;
    this.piecesBytes = 0;
  }

  private enqueue(kind: FrameKind, id: number, channel: number, payload: Buffer): void {
    if (payload.length <= SMALL_FRAME_BYTES) {
      this.pieces.push(encodeFrame(kind, id, channel, payload));
    } else {
      this.pieces.push(encodeFrameHeader(kind, id, channel, payload.length), payload);
    }
    this.piecesBytes += FRAME_HEADER_BYTES + payload.length;
  }

  private flush(): void {
    if (this.head === this.pieces.length) return;
    this.socket.cork();
    while (this.head < this.pieces.length && !this.isBlocked) {
      const piece = this.pieces[this.head]!;
      this.pieces[this.head] = EMPTY;
      this.head++;
      this.piecesBytes -= piece.length;
      if (!this.socket.write(piece)) this.full = true;
    }
    this.socket.uncork();
    if (this.head === this.pieces.length) {
      this.pieces.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.pieces.length) {
      this.pieces.splice(0, this.head);
      this.head = 0;
    }
  }
}

interface PendingRequest {
  resolve(reply: Buffer): void;
  reject(err: TransportError): void;
  timer: Timer;
}

/** What the transport keeps per known peer id. */
interface Peer {
  readonly id: NodeId;
  address: string | null;
  conn: Outbound | null;
  /** Consecutive failed connection attempts. */
  attempt: number;
  /** Until then, requests fail fast. */
  retryAtMs: number;
  retryTimer: Timer | null;
  lastError: string;
  lastUsedMs: number;
}

/** A connection this node opened: it carries this node's requests and one-way messages. */
/**
 * The next whole frame from a connection's decoder; null when more bytes are needed, and
 * undefined after a framing error, which `conn.fatal` has reported and closed on.
 */
function nextFrame(decoder: FrameDecoder, conn: { fatal(reason: string): void }): Frame | null | undefined {
  try {
    return decoder.next();
  } catch (err) {
    if (!(err instanceof FrameError)) throw err;
    conn.fatal(err.message);
    return undefined;
  }
}

class Outbound {
  private readonly socket: net.Socket;
  private readonly decoder = new FrameDecoder(HANDSHAKE_FRAME_BYTES_MAX, 'handshake frame size');
  readonly writer: FrameWriter;
  readonly pending = new Map<number, PendingRequest>();
  private nextId = 1;
  private state: 'connecting' | 'ready' | 'closed' = 'connecting';
  /** Set once the connection is being torn down: nothing more is written. */
  private closing = false;
  private closeReason: string | null = null;
  private closeCode: 'UNREACHABLE' | 'CLOSED' = 'UNREACHABLE';
  private connectTimer: Timer | null;
  private graceTimer: Timer | null = null;
  /** Set by the handshake. */
  peerId: NodeId | null = null;
  /** This side's nonce in the handshake. */
  private readonly nonce = randomBytes(HANDSHAKE_NONCE_BYTES);
  /** The peer this is the connection of; null for a seed connection not (yet) adopted. */
  owner: Peer | null;

  constructor(
    private readonly transport: TcpTransportImpl,
    readonly address: string,
    owner: Peer | null,
  ) {
    this.owner = owner;
    const { host, port } = parseAddress(address);
    const socket = net.connect({ host, port });
    this.socket = socket;
    socket.setNoDelay(true);
    this.writer = new FrameWriter(socket, transport.limits.peerSendQueueBytesMax, () => {});
    const ms = transport.connectTimeoutMs;
    this.connectTimer = transport.clock.setTimer(ms, () => this.destroy(`no connection and handshake within ${ms} ms`));
    socket.on('connect', () => {
      if (!transport.secret && !isLoopbackAddress(socket.remoteAddress)) {
        this.destroy(`this member has no cluster secret: it connects to loopback peers only (set --cluster-secret-file)`);
        return;
      }
      socket.write(encodeFrame(FrameKind.handshake, 0, 0, transport.hello(this.nonce)));
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => {
      this.closeReason ??= err.message;
    });
    socket.on('close', () => this.onClose());
  }

  get isReady(): boolean {
    return this.state === 'ready';
  }

  describe(): string {
    return this.peerId === null ? this.address : `node '${this.peerId}' at ${this.address}`;
  }

  request(channel: number, payload: Buffer, timeoutMs: number): Promise<Buffer> {
    const limits = this.transport.limits;
    if (this.closing) {
      return Promise.reject(new TransportError('UNREACHABLE', `connection to ${this.describe()} is closing: ${this.closeReason ?? 'closed'}`));
    }
    if (this.pending.size >= limits.peerRequestsInFlightMax) {
      return Promise.reject(
        new TransportError(
          'OVERLOADED',
          `${this.pending.size} requests in flight to ${this.describe()}, at limit 'peerRequestsInFlightMax' (${limits.peerRequestsInFlightMax})`,
        ),
      );
    }
    const bytes = FRAME_HEADER_BYTES + payload.length;
    if (!this.writer.fits(bytes)) {
      return Promise.reject(new TransportError('OVERLOADED', this.queueFullMessage(bytes)));
    }
    const id = this.allocateId();
    return new Promise<Buffer>((resolve, reject) => {
      const timer = this.transport.clock.setTimer(timeoutMs, () => {
        if (this.pending.delete(id)) {
          reject(new TransportError('TIMEOUT', `no reply from ${this.describe()} within ${timeoutMs} ms`));
        }
      });
      this.pending.set(id, { resolve, reject, timer });
      this.writer.write(FrameKind.request, id, channel, payload);
    });
  }

  /** Sends a one-way message; false when the send queue is full. */
  send(channel: number, payload: Buffer): boolean {
    if (this.closing || !this.writer.fits(FRAME_HEADER_BYTES + payload.length)) return false;
    this.writer.write(FrameKind.oneWay, 0, channel, payload);
    return true;
  }

  queueFullMessage(bytes: number): string {
    const max = this.transport.limits.peerSendQueueBytesMax;
    return `send queue to ${this.describe()} holds ${this.writer.queuedBytes()} bytes; ${bytes} more would pass limit 'peerSendQueueBytesMax' (${max})`;
  }

  /** Closes at once; pending requests reject with `code`. */
  destroy(reason: string, code: 'UNREACHABLE' | 'CLOSED' = 'UNREACHABLE'): void {
    if (this.state === 'closed') return;
    this.closing = true;
    this.closeReason ??= reason;
    this.closeCode = code;
    this.rejectAll();
    this.socket.destroy();
  }

  private allocateId(): number {
    // Bounded: fewer than peerRequestsInFlightMax (< 2^32) ids are in use.
    for (;;) {
      const id = this.nextId;
      this.nextId = id === 0xffffffff ? 1 : id + 1;
      if (!this.pending.has(id)) return id;
    }
  }

  private onData(chunk: Buffer): void {
    if (this.closing) return;
    this.decoder.push(chunk);
    for (;;) {
      const frame = nextFrame(this.decoder, this);
      if (!frame) return;
      this.onFrame(frame);
      if (this.closing) return;
    }
  }

  private onFrame(frame: Frame): void {
    switch (frame.kind) {
      case FrameKind.reply:
      case FrameKind.errorReply: {
        if (this.state !== 'ready') return this.fatal(`expected a handshake first, got frame kind ${frame.kind}`);
        const pending = this.pending.get(frame.id);
        if (pending === undefined) {
          this.transport.counters.lateReplies++;
          return;
        }
        this.pending.delete(frame.id);
        pending.timer.cancel();
        if (frame.kind === FrameKind.reply) pending.resolve(frame.payload);
        else pending.reject(decodeRemoteError(frame.payload));
        return;
      }
      case FrameKind.handshake: {
        if (this.state !== 'connecting') return this.fatal('unexpected second handshake');
        const check = checkHandshake(frame.payload, this.transport.cluster);
        if (!check.ok) return this.fatal(check.reason);
        const expected = this.owner?.id ?? null;
        if (expected !== null && check.nodeId !== expected) {
          return this.fatal(`address ${this.address} is node '${check.nodeId}', expected node '${expected}'`);
        }
        // The acceptor proved it knows the secret; now this side proves it (the auth frame).
        const transcript = { cluster: this.transport.cluster, initiatorId: this.transport.self, acceptorId: check.nodeId, initiatorNonce: this.nonce, acceptorNonce: check.nonce };
        const refusal = this.transport.checkProof(check.proof, 'acceptor', transcript);
        if (refusal) return this.fatal(refusal);
        this.socket.write(encodeFrame(FrameKind.auth, 0, 0, this.transport.proof('initiator', transcript)));
        this.peerId = check.nodeId;
        this.state = 'ready';
        this.connectTimer?.cancel();
        this.connectTimer = null;
        this.decoder.setLimit(this.transport.limits.peerFrameBytesMax, 'peerFrameBytesMax');
        this.writer.open();
        this.transport.outboundReady(this);
        return;
      }
      case FrameKind.fatal:
        this.destroy(`${this.describe()} closed the connection: ${frame.payload.toString('utf8')}`);
        return;
      default:
        // Requests travel on the requester's own outbound connection, never on ours.
        this.fatal(`unexpected frame kind ${frame.kind} on an outbound connection`);
    }
  }

  /** Tells the peer what went wrong, then closes. */
  /** Sends a fatal frame naming the problem and closes the connection. */
  fatal(reason: string): void {
    if (this.closing) return;
    this.closing = true;
    this.transport.logger?.warn({ peer: this.describe(), reason }, 'internode connection closed');
    this.closeReason ??= reason;
    this.writer.discard();
    this.rejectAll();
    this.socket.end(encodeFrame(FrameKind.fatal, 0, 0, Buffer.from(reason, 'utf8')));
    this.graceTimer = this.transport.clock.setTimer(CLOSE_GRACE_MS, () => this.socket.destroy());
  }

  private rejectAll(): void {
    if (this.pending.size === 0) return;
    const message =
      this.closeCode === 'CLOSED'
        ? 'transport closed'
        : `connection to ${this.describe()} failed before the reply: ${this.closeReason ?? 'closed'}`;
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) {
      p.timer.cancel();
      p.reject(new TransportError(this.closeCode, message));
    }
  }

  private onClose(): void {
    const wasReady = this.state === 'ready';
    this.state = 'closed';
    this.closing = true;
    this.connectTimer?.cancel();
    this.graceTimer?.cancel();
    this.writer.discard();
    this.rejectAll();
    this.transport.outboundClosed(this, this.closeReason ?? 'connection closed', wasReady);
  }
}

/** A connection a peer opened: it carries that peer's requests to this node, and our replies. */
class Inbound {
  private readonly decoder = new FrameDecoder(HANDSHAKE_FRAME_BYTES_MAX, 'handshake frame size');
  private readonly writer: FrameWriter;
  private peerId: NodeId | null = null;
  private handling = 0;
  private closing = false;
  private closed = false;
  private handshakeTimer: Timer | null;
  private graceTimer: Timer | null = null;
  private readonly address: string;
  /** Between the peer's hello and its auth frame: what its proof must match. */
  private awaitingAuth: { nodeId: NodeId; transcript: HandshakeTranscript } | null = null;
  private readonly nonce = randomBytes(HANDSHAKE_NONCE_BYTES);

  constructor(
    private readonly transport: TcpTransportImpl,
    private readonly socket: net.Socket,
  ) {
    this.address = `${socket.remoteAddress}:${socket.remotePort}`;
    socket.setNoDelay(true);
    this.writer = new FrameWriter(socket, transport.limits.peerSendQueueBytesMax, () => this.pump());
    const ms = transport.connectTimeoutMs;
    this.handshakeTimer = transport.clock.setTimer(ms, () => this.fatal(`no handshake within ${ms} ms`));
    socket.on('data', (chunk: Buffer) => {
      if (this.closing) return;
      this.decoder.push(chunk);
      this.pump();
    });
    socket.on('error', (err) => transport.logger?.debug({ peer: this.describe(), err: err.message }, 'internode inbound socket error'));
    socket.on('close', () => this.onClose());
  }

  queuedBytes(): number {
    return this.writer.queuedBytes();
  }

  destroy(): void {
    this.closing = true;
    this.socket.destroy();
  }

  private describe(): string {
    return this.peerId === null ? this.address : `node '${this.peerId}' at ${this.address}`;
  }

  /**
   * Decodes and dispatches frames while fewer than `inboundRequestsMax` requests are being
   * handled and our replies are not backed up; otherwise stops reading the socket, so the
   * peer's own send queue fills and it gets OVERLOADED instead of us buffering without bound.
   */
  private pump(): void {
    while (!this.closing && this.handling < this.transport.inboundRequestsMax && !this.repliesBlocked()) {
      const frame = nextFrame(this.decoder, this);
      if (frame === undefined) return;
      if (frame === null) break;
      this.onFrame(frame);
    }
    if (this.closing) return;
    const stop = this.handling >= this.transport.inboundRequestsMax || this.repliesBlocked();
    if (stop && !this.socket.isPaused()) this.socket.pause();
    else if (!stop && this.socket.isPaused()) this.socket.resume();
  }

  private repliesBlocked(): boolean {
    return this.peerId !== null && this.writer.isBlocked;
  }

  private onFrame(frame: Frame): void {
    if (this.peerId === null) {
      if (this.awaitingAuth === null) {
        if (frame.kind !== FrameKind.handshake) return this.fatal(`expected a handshake first, got frame kind ${frame.kind}`);
        if (!this.transport.secret && !isLoopbackAddress(this.socket.remoteAddress)) {
          return this.fatal('this member has no cluster secret and accepts loopback peers only');
        }
        const check = checkHandshake(frame.payload, this.transport.cluster);
        if (!check.ok) return this.fatal(check.reason);
        if (check.proof.length > 0) return this.fatal('malformed handshake: an initiator sends its proof in the auth frame');
        const transcript = { cluster: this.transport.cluster, initiatorId: check.nodeId, acceptorId: this.transport.self, initiatorNonce: check.nonce, acceptorNonce: this.nonce };
        this.awaitingAuth = { nodeId: check.nodeId, transcript };
        this.socket.write(encodeFrame(FrameKind.handshake, 0, 0, this.transport.hello(this.nonce, this.transport.proof('acceptor', transcript))));
        return;
      }
      if (frame.kind !== FrameKind.auth) return this.fatal(`expected the handshake's auth frame, got frame kind ${frame.kind}`);
      const refusal = this.transport.checkProof(frame.payload, 'initiator', this.awaitingAuth.transcript);
      if (refusal) return this.fatal(refusal);
      this.peerId = this.awaitingAuth.nodeId;
      this.awaitingAuth = null;
      this.handshakeTimer?.cancel();
      this.handshakeTimer = null;
      this.decoder.setLimit(this.transport.limits.peerFrameBytesMax, 'peerFrameBytesMax');
      this.writer.open();
      this.transport.logger?.debug({ peer: this.describe() }, 'internode inbound connection');
      return;
    }
    switch (frame.kind) {
      case FrameKind.request:
        return this.onRequest(frame);
      case FrameKind.oneWay:
        return this.onOneWay(frame);
      case FrameKind.fatal:
        this.transport.warnInbound(this.peerId !== null, { peer: this.describe(), reason: frame.payload.toString('utf8', 0, 512) }, 'internode peer closed the connection');
        this.destroy();
        return;
      default:
        return this.fatal(`unexpected frame kind ${frame.kind} on an inbound connection`);
    }
  }

  private onRequest(frame: Frame): void {
    const { id, channel } = frame;
    const handler = this.transport.handlers.get(channel);
    if (handler === undefined) {
      this.reply(id, FrameKind.errorReply, encodeRemoteError(new Error(`no handler for channel ${channel} on node '${this.transport.self}'`)));
      return;
    }
    let result: ReturnType<Handler>;
    try {
      result = handler(this.peerId!, frame.payload, true);
    } catch (err) {
      this.reply(id, FrameKind.errorReply, encodeRemoteError(err));
      return;
    }
    if (!isThenable(result)) {
      this.replyWith(id, result);
      return;
    }
    this.handling++;
    this.transport.counters.inboundHandling++;
    const done = (): void => {
      this.handling--;
      this.transport.counters.inboundHandling--;
      if (!this.closing) this.pump();
    };
    result.then(
      (value) => {
        this.replyWith(id, value);
        done();
      },
      (err: unknown) => {
        this.reply(id, FrameKind.errorReply, encodeRemoteError(err));
        done();
      },
    );
  }

  private onOneWay(frame: Frame): void {
    const handler = this.transport.handlers.get(frame.channel);
    if (handler === undefined) {
      this.transport.logger?.debug({ peer: this.describe(), channel: frame.channel }, 'one-way message for a channel with no handler');
      return;
    }
    const warn = (err: unknown): void =>
      this.transport.logger?.warn({ peer: this.describe(), channel: frame.channel, err: messageOf(err) }, 'one-way message handler failed');
    try {
      const result = handler(this.peerId!, frame.payload, false);
      if (isThenable(result)) result.then(undefined, warn);
    } catch (err) {
      warn(err);
    }
  }

  /** A handler's value as a reply: a Buffer, or nothing (an empty reply). */
  private replyWith(id: number, value: unknown): void {
    if (value === undefined) this.reply(id, FrameKind.reply, EMPTY);
    else if (Buffer.isBuffer(value)) this.reply(id, FrameKind.reply, value);
    else this.reply(id, FrameKind.errorReply, encodeRemoteError(new Error('handler returned a reply that is not a Buffer')));
  }

  private reply(id: number, kind: FrameKind, payload: Buffer): void {
    if (this.closing) return;
    const max = this.transport.limits.peerFrameBytesMax;
    if (FRAME_HEADER_BYTES + payload.length > max) {
      kind = FrameKind.errorReply;
      payload = encodeRemoteError(new KvError('LIMIT_EXCEEDED', `reply of ${FRAME_HEADER_BYTES + payload.length} bytes is over limit 'peerFrameBytesMax' (${max})`));
    }
    const bytes = FRAME_HEADER_BYTES + payload.length;
    if (!this.writer.fits(bytes)) {
      // Reading is paused while replies back up, so only requests already being handled add
      // to this; a peer that still does not read its replies is cut off.
      this.fatal(`replies to ${this.describe()} are not being read: queue over limit 'peerSendQueueBytesMax'`);
      return;
    }
    this.writer.write(kind, id, 0, payload);
  }

  /** Sends a fatal frame naming the problem and closes the connection. */
  fatal(reason: string): void {
    if (this.closing) return;
    this.closing = true;
    this.transport.warnInbound(this.peerId !== null, { peer: this.describe(), reason }, 'internode connection refused or closed');
    this.handshakeTimer?.cancel();
    this.writer.discard();
    this.socket.end(encodeFrame(FrameKind.fatal, 0, 0, Buffer.from(reason, 'utf8')));
    if (this.socket.isPaused()) this.socket.resume();
    this.graceTimer = this.transport.clock.setTimer(CLOSE_GRACE_MS, () => this.socket.destroy());
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.closing = true;
    this.handshakeTimer?.cancel();
    this.graceTimer?.cancel();
    this.writer.discard();
    this.transport.inboundClosed(this);
  }
}

/** A count of warnings per window ('inboundWarningsMax' per 'inboundWarningWindowMs'). */
class WarningBudget {
  private windowStartMs = Number.NEGATIVE_INFINITY;
  private inWindow = 0;
  private suppressed = 0;

  /** Null when this warning is left out (counted); else how many were left out before it. */
  admit(nowMs: number): number | null {
    if (nowMs - this.windowStartMs >= bounds.inboundWarningWindowMs) {
      this.windowStartMs = nowMs;
      this.inWindow = 0;
    }
    if (this.inWindow >= bounds.inboundWarningsMax) {
      this.suppressed++;
      return null;
    }
    this.inWindow++;
    const n = this.suppressed;
    this.suppressed = 0;
    return n;
  }
}

class TcpTransportImpl implements TcpTransport {
  readonly self: NodeId;
  readonly cluster: string;
  readonly limits: Limits;
  readonly clock: Clock;
  readonly logger: TransportLogger | undefined;
  readonly connectTimeoutMs: number;
  readonly inboundRequestsMax: number;
  /** The cluster secret (null: none; loopback peers only). */
  readonly secret: Buffer | null;
  readonly handlers = new Map<number, Handler>();
  readonly counters = { droppedOneWay: 0, lateReplies: 0, inboundHandling: 0 };
  private readonly random: Random;
  private readonly backoffMsMin: number;
  private readonly backoffMsMax: number;
  private readonly reconnectIdleMs: number;
  private readonly server: net.Server;
  private readonly peers = new Map<NodeId, Peer>();
  /** Seed connections not adopted as a peer's connection. */
  private readonly seedConns = new Set<Outbound>();
  private readonly inbound = new Set<Inbound>();
  private readonly listeners = new Set<(event: PeerEvent) => void>();
  private closed = false;
  private closing: Promise<void> | null = null;
  private boundPort = 0;
  /** Warnings about strangers (not yet authenticated) and about members: one budget each. */
  private readonly strangerWarnings = new WarningBudget();
  private readonly memberWarnings = new WarningBudget();

  /**
   * Warns about an inbound connection refused or broken: at most `inboundWarningsMax` per
   * `inboundWarningWindowMs` for connections that never authenticated, and as many for
   * members, so a stranger dialing in a loop can neither flood the log nor hide a member's
   * trouble; the next warning logged says how many were left out (`suppressed`).
   */
  warnInbound(authenticated: boolean, fields: Record<string, unknown>, message: string): void {
    if (!this.logger) return;
    const suppressed = (authenticated ? this.memberWarnings : this.strangerWarnings).admit(this.clock.nowMs());
    if (suppressed === null) return;
    this.logger.warn(suppressed > 0 ? { ...fields, suppressed } : fields, message);
  }

  constructor(options: TcpTransportOptions) {
    const positive = (name: string, value: number | undefined, fallback: number): number => {
      const v = value ?? fallback;
      if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`'${name}' must be a positive integer, got ${v}`);
      return v;
    };
    if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
      throw new RangeError(`'port' must be an integer from 0 to 65535, got ${options.port}`);
    }
    this.self = options.self;
    this.cluster = options.cluster;
    this.limits = options.limits;
    this.clock = options.clock;
    this.random = options.random;
    this.logger = options.logger;
    this.backoffMsMin = positive('backoffMsMin', options.backoffMsMin, 50);
    this.backoffMsMax = positive('backoffMsMax', options.backoffMsMax, 5000);
    if (this.backoffMsMax < this.backoffMsMin) throw new RangeError(`'backoffMsMax' must be at least 'backoffMsMin'`);
    this.connectTimeoutMs = positive('connectTimeoutMs', options.connectTimeoutMs, 5000);
    this.reconnectIdleMs = positive('reconnectIdleMs', options.reconnectIdleMs, 60_000);
    this.inboundRequestsMax = positive('inboundRequestsMax', options.inboundRequestsMax, 1024);
    this.secret = options.secret && options.secret.length > 0 ? Buffer.from(options.secret) : null;
    // Checks the names' sizes too (throws on an empty or over-long cluster name or node id).
    this.hello(Buffer.alloc(HANDSHAKE_NONCE_BYTES));
    this.server = net.createServer((socket) => {
      if (this.closed) {
        socket.destroy();
        return;
      }
      this.inbound.add(new Inbound(this, socket));
    });
  }

  get port(): number {
    return this.boundPort;
  }

  /** This node's hello for a handshake with this side's nonce (and, from an acceptor, its proof). */
  hello(nonce: Buffer, proof?: Buffer): Buffer {
    return encodeHandshake({ cluster: this.cluster, nodeId: this.self, nonce, ...(proof ? { proof } : {}) });
  }

  /** This side's proof of the secret for a handshake (empty without a secret). */
  proof(role: 'initiator' | 'acceptor', transcript: HandshakeTranscript): Buffer {
    return this.secret ? handshakeProof(this.secret, role, transcript) : Buffer.alloc(0);
  }

  /** Why the peer's proof is refused, or null when it shows the same secret as ours (or neither side has one). */
  checkProof(proof: Buffer, role: 'initiator' | 'acceptor', transcript: HandshakeTranscript): string | null {
    if (!this.secret) return proof.length === 0 ? null : 'peer proves a cluster secret, this member has none (set --cluster-secret-file on every member)';
    if (proof.length === 0) return 'peer has no cluster secret, this member requires one';
    return proofMatches(proof, handshakeProof(this.secret, role, transcript)) ? null : "peer does not know this cluster's secret";
  }

  listen(host: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        this.server.on('error', (err) => this.logger?.warn({ err: err.message }, 'internode server error'));
        this.boundPort = (this.server.address() as net.AddressInfo).port;
        resolve();
      });
    });
  }

  request(to: NodeId, channel: number, payload: Buffer, timeoutMs: number): Promise<Buffer> {
    if (this.closed) return Promise.reject(new TransportError('CLOSED', 'transport closed'));
    const tooLarge = this.checkPayload(payload);
    if (tooLarge !== null) return Promise.reject(tooLarge);
    const conn = this.connectionTo(to);
    if (conn instanceof TransportError) return Promise.reject(conn);
    return conn.request(channel, payload, timeoutMs);
  }

  async requestAt(address: string, channel: number, payload: Buffer, timeoutMs: number): Promise<{ from: NodeId; reply: Buffer }> {
    if (this.closed) throw new TransportError('CLOSED', 'transport closed');
    const tooLarge = this.checkPayload(payload);
    if (tooLarge !== null) throw tooLarge;
    parseAddress(address);
    const conn = new Outbound(this, address, null);
    this.seedConns.add(conn);
    try {
      const reply = await conn.request(channel, payload, timeoutMs);
      return { from: conn.peerId!, reply };
    } finally {
      // Kept only when adopted as the peer's connection (see outboundReady).
      if (conn.owner === null) conn.destroy('seed request done');
    }
  }

  send(to: NodeId, channel: number, payload: Buffer): void {
    if (this.closed) return;
    const tooLarge = this.checkPayload(payload);
    if (tooLarge !== null) throw tooLarge;
    const conn = this.connectionTo(to);
    if (conn instanceof TransportError || !conn.send(channel, payload)) {
      this.counters.droppedOneWay++;
    }
  }

  handle(channel: number, handler: Handler): void {
    if (!Number.isInteger(channel) || channel < 0 || channel > 0xffff) throw new RangeError(`channel must be a u16, got ${channel}`);
    if (this.handlers.has(channel)) throw new Error(`channel ${channel} already has a handler`);
    this.handlers.set(channel, handler);
  }

  setAddress(id: NodeId, address: string): void {
    parseAddress(address);
    const peer = this.peerOf(id);
    if (peer.address === address) return;
    peer.address = address;
    peer.attempt = 0;
    peer.retryAtMs = 0;
    peer.retryTimer?.cancel();
    peer.retryTimer = null;
    if (peer.conn !== null && peer.conn.address !== address) {
      const old = peer.conn;
      peer.conn = null;
      old.owner = null;
      old.destroy(`node '${id}' moved to ${address}`);
    }
  }

  onPeerEvent(listener: (event: PeerEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  stats(): TcpTransportStats {
    let connectionsOutbound = this.seedConns.size;
    let queuedBytes = 0;
    let requestsInFlight = 0;
    const count = (conn: Outbound): void => {
      queuedBytes += conn.writer.queuedBytes();
      requestsInFlight += conn.pending.size;
    };
    for (const conn of this.seedConns) count(conn);
    for (const peer of this.peers.values()) {
      if (peer.conn === null) continue;
      connectionsOutbound++;
      count(peer.conn);
    }
    for (const conn of this.inbound) queuedBytes += conn.queuedBytes();
    return {
      connectionsOutbound,
      connectionsInbound: this.inbound.size,
      queuedBytes,
      droppedOneWay: this.counters.droppedOneWay,
      requestsInFlight,
      inboundRequestsHandling: this.counters.inboundHandling,
      lateReplies: this.counters.lateReplies,
    };
  }

  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    this.closed = true;
    const serverClosed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const peer of this.peers.values()) {
      peer.retryTimer?.cancel();
      peer.retryTimer = null;
      peer.conn?.destroy('transport closed', 'CLOSED');
      peer.conn = null;
    }
    for (const conn of this.seedConns) conn.destroy('transport closed', 'CLOSED');
    this.seedConns.clear();
    for (const conn of this.inbound) conn.destroy();
    this.closing = serverClosed;
    return serverClosed;
  }

  /** Called by an outbound connection when its handshake completed. */
  outboundReady(conn: Outbound): void {
    let peer = conn.owner;
    if (peer === null) {
      // A seed connection: keep it as the peer's connection if it has none to another address.
      peer = this.peerOf(conn.peerId!);
      if (peer.conn !== null || (peer.address !== null && peer.address !== conn.address)) return;
      this.seedConns.delete(conn);
      conn.owner = peer;
      peer.conn = conn;
      peer.address = conn.address;
    }
    peer.attempt = 0;
    peer.retryAtMs = 0;
    this.logger?.info({ peer: peer.id, address: conn.address }, 'internode connection up');
    this.emit({ type: 'connected', peer: peer.id, address: conn.address });
  }

  /** Called by an outbound connection once its socket closed. */
  outboundClosed(conn: Outbound, reason: string, wasReady: boolean): void {
    this.seedConns.delete(conn);
    const peer = conn.owner;
    if (peer === null || peer.conn !== conn) return;
    peer.conn = null;
    if (wasReady) {
      this.logger?.info({ peer: peer.id, address: conn.address, reason }, 'internode connection down');
      this.emit({ type: 'disconnected', peer: peer.id, address: conn.address, reason });
    }
    if (this.closed) return;
    peer.lastError = reason;
    this.scheduleReconnect(peer, wasReady);
  }

  inboundClosed(conn: Inbound): void {
    this.inbound.delete(conn);
  }

  private emit(event: PeerEvent): void {
    for (const listener of this.listeners) listener(event);
  }

  private checkPayload(payload: Buffer): RangeError | null {
    const bytes = FRAME_HEADER_BYTES + payload.length;
    if (bytes <= this.limits.peerFrameBytesMax) return null;
    return new RangeError(`frame of ${bytes} bytes is over limit 'peerFrameBytesMax' (${this.limits.peerFrameBytesMax})`);
  }

  private peerOf(id: NodeId): Peer {
    let peer = this.peers.get(id);
    if (peer === undefined) {
      peer = { id, address: null, conn: null, attempt: 0, retryAtMs: 0, retryTimer: null, lastError: '', lastUsedMs: 0 };
      this.peers.set(id, peer);
    }
    return peer;
  }

  /** The peer's connection (opening it if allowed), or why there is none. */
  private connectionTo(to: NodeId): Outbound | TransportError {
    const peer = this.peers.get(to);
    if (peer === undefined || peer.address === null) return new TransportError('UNREACHABLE', `no address known for node '${to}'`);
    const now = this.clock.nowMs();
    peer.lastUsedMs = now;
    if (peer.conn !== null) return peer.conn;
    if (now < peer.retryAtMs) {
      return new TransportError(
        'UNREACHABLE',
        `node '${to}' at ${peer.address} is unreachable (next attempt in ${peer.retryAtMs - now} ms): ${peer.lastError}`,
      );
    }
    return this.connect(peer);
  }

  private connect(peer: Peer): Outbound {
    peer.retryTimer?.cancel();
    peer.retryTimer = null;
    const conn = new Outbound(this, peer.address!, peer);
    peer.conn = conn;
    return conn;
  }

  /**
   * Backoff after a failure: the delay is drawn between `backoffMsMin` and a cap that doubles
   * per consecutive failure up to `backoffMsMax`, so peers that lost the same node do not
   * reconnect in step. A peer used recently is reconnected by a timer; others on next use.
   */
  private scheduleReconnect(peer: Peer, wasReady: boolean): void {
    if (wasReady) peer.attempt = 0;
    const cap = Math.min(this.backoffMsMax, this.backoffMsMin * 2 ** Math.min(peer.attempt, 30));
    const delay = this.random.intBetween(this.backoffMsMin, cap);
    peer.attempt++;
    peer.retryAtMs = this.clock.nowMs() + delay;
    peer.retryTimer?.cancel();
    peer.retryTimer = this.clock.setTimer(delay, () => {
      peer.retryTimer = null;
      if (this.closed || peer.conn !== null || peer.address === null) return;
      if (this.clock.nowMs() - peer.lastUsedMs > this.reconnectIdleMs) return;
      this.connect(peer);
    });
  }
}
