/**
 * The internode wire format, without sockets. Every frame, both directions, big-endian:
 *
 *   u32 length (bytes after this field) | u8 kind | u32 request id | u16 channel | payload
 *
 * The first frame each way is a handshake (magic, protocol version, cluster name, node id).
 * The decoder takes Buffers as they arrive, keeps leftovers, and refuses a declared length
 * over its limit from the length field alone, before allocating anything for the frame.
 */
import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { bounds } from '../common/limits.js';

/** Version of this wire format; a peer speaking another version is refused in the handshake. */
/** 2: appends may carry compacted payloads (vector item batches with deleted items removed). */
/**
 * 3: typed replica messages with coded errors; a vector search request says whether to keep
 * every copy of an id, and its reply lists the lists the replica could not read; the
 * handshake proves knowledge of the cluster secret (nonces, HMAC; see handshakeProof).
 */
/**
 * 4: placement on hash slots: every replica request's epoch is enforced (STALE_EPOCH), and
 * the placement (tables, streams) and anti-entropy channels exist. A cluster of version 3
 * members upgrades by a full restart on their data (the store upgrades in place; the first
 * table is made when `--expect-members` members are up); members of both versions refuse
 * each other at the handshake, so no placement is ever mixed.
 */
export const PROTOCOL_VERSION = 4;
/** Bytes of each side's fresh random nonce in a handshake. */
export const HANDSHAKE_NONCE_BYTES = 32;
/** Bytes of a handshake proof (HMAC-SHA256). */
export const HANDSHAKE_PROOF_BYTES = 32;
/** First word of a handshake payload: 'RGKV'. */
export const HANDSHAKE_MAGIC = 0x52474b56;
/** Bytes before the payload: length, kind, request id, channel. */
export const FRAME_HEADER_BYTES = 11;
/** Largest frame accepted before the handshake, so an unknown peer cannot make us allocate much. */
export const HANDSHAKE_FRAME_BYTES_MAX = bounds.handshakeFrameBytesMax;
/** Longest cluster name or node id in a handshake, in UTF-8 bytes. */
export const HANDSHAKE_NAME_BYTES_MAX = bounds.memberIdBytesMax;

const LENGTH_BYTES = 4;
/** Kind, request id and channel: the part of the header the length field counts. */
const HEADER_AFTER_LENGTH_BYTES = FRAME_HEADER_BYTES - LENGTH_BYTES;
const EMPTY = Buffer.alloc(0);

export const FrameKind = Object.freeze({
  /** A request; the peer answers with `reply` or `errorReply` carrying the same id. */
  request: 1,
  reply: 2,
  /** The peer's handler failed; the payload is the message (UTF-8). */
  errorReply: 3,
  /** A message that gets no answer (gossip). */
  oneWay: 4,
  handshake: 5,
  /** A connection-level error (handshake refused, protocol violation); the sender then closes. */
  fatal: 6,
  /** The initiator's proof of the cluster secret: the third and last frame of the handshake. */
  auth: 7,
} as const);
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

const kindMax = FrameKind.auth;

/** One decoded frame. `payload` may be a view into a received chunk: do not modify it. */
export interface Frame {
  kind: FrameKind;
  id: number;
  channel: number;
  payload: Buffer;
}

/** Malformed or over-limit input; the connection it came from must be closed. */
export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

/** Total bytes on the wire of a frame carrying `payloadBytes`. */
export function frameBytes(payloadBytes: number): number {
  return FRAME_HEADER_BYTES + payloadBytes;
}

/** Writes the 11-byte header of a frame carrying `payloadBytes` into `target` at `offset`. */
export function writeFrameHeader(target: Buffer, offset: number, kind: FrameKind, id: number, channel: number, payloadBytes: number): void {
  assert.ok(kind >= 1 && kind <= kindMax, `unknown frame kind ${kind}`);
  assert.ok(Number.isInteger(id) && id >= 0 && id <= 0xffffffff, `request id ${id} is not a u32`);
  assert.ok(Number.isInteger(channel) && channel >= 0 && channel <= 0xffff, `channel ${channel} is not a u16`);
  const length = HEADER_AFTER_LENGTH_BYTES + payloadBytes;
  assert.ok(length <= 0xffffffff, `payload of ${payloadBytes} bytes does not fit a frame`);
  target.writeUInt32BE(length, offset);
  target[offset + 4] = kind;
  target.writeUInt32BE(id, offset + 5);
  target.writeUInt16BE(channel, offset + 9);
}

/** A header alone, to be written just before a large payload (no copy of the payload). */
export function encodeFrameHeader(kind: FrameKind, id: number, channel: number, payloadBytes: number): Buffer {
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  writeFrameHeader(header, 0, kind, id, channel, payloadBytes);
  return header;
}

/** A whole frame in one buffer (header followed by a copy of the payload). */
export function encodeFrame(kind: FrameKind, id: number, channel: number, payload: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  writeFrameHeader(frame, 0, kind, id, channel, payload.length);
  payload.copy(frame, FRAME_HEADER_BYTES);
  return frame;
}

/**
 * Streaming decoder: `push` received chunks, then call `next` until it returns null. A frame
 * that lies whole in one chunk is returned as a view of it (no copy); a frame split across
 * chunks is copied once into a buffer of exactly its size, allocated only after its declared
 * length passed the limit. After a FrameError the decoder stays failed.
 */
export class FrameDecoder {
  private bytesMax: number;
  private limitName: string;
  private readonly chunks: Buffer[] = [];
  /** Read position in chunks[0]. */
  private offset = 0;
  /** Bytes in `chunks` not yet consumed. */
  private buffered = 0;
  /** A header being assembled from several chunks. */
  private readonly header = Buffer.alloc(FRAME_HEADER_BYTES);
  private headerFilled = 0;
  /** The payload of a frame being assembled from several chunks. */
  private body: Buffer | null = null;
  private bodyFilled = 0;
  private failure: FrameError | null = null;

  /** `frameBytesMax` bounds a whole frame (header included); errors name it `limitName`. */
  constructor(frameBytesMax: number, limitName = 'peerFrameBytesMax') {
    this.bytesMax = frameBytesMax;
    this.limitName = limitName;
    this.checkLimit(frameBytesMax);
  }

  /** Changes the frame size limit (after the handshake, from the small pre-handshake one). */
  setLimit(frameBytesMax: number, limitName: string): void {
    this.checkLimit(frameBytesMax);
    this.bytesMax = frameBytesMax;
    this.limitName = limitName;
  }

  /** Bytes received and not yet returned as frames. */
  get bufferedBytes(): number {
    return this.buffered + this.headerFilled + this.bodyFilled;
  }

  /** Adds a received chunk; the decoder keeps a reference to it, not a copy. */
  push(chunk: Buffer): void {
    if (this.failure !== null || chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** The next complete frame, or null when more bytes are needed. Throws FrameError on bad input. */
  next(): Frame | null {
    if (this.failure !== null) throw this.failure;
    try {
      return this.decode();
    } catch (err) {
      if (err instanceof FrameError) {
        this.failure = err;
        this.chunks.length = 0;
        this.buffered = 0;
        this.body = null;
      }
      throw err;
    }
  }

  private decode(): Frame | null {
    if (this.body === null && this.headerFilled === 0) {
      // Fast path: the whole frame lies in the first chunk.
      const chunk = this.chunks[0];
      if (chunk === undefined) return null;
      const at = this.offset;
      const available = chunk.length - at;
      if (available >= LENGTH_BYTES) {
        const length = this.checkLength(chunk.readUInt32BE(at));
        const total = LENGTH_BYTES + length;
        if (available >= total) {
          const frame: Frame = {
            kind: this.checkKind(chunk[at + 4]!),
            id: chunk.readUInt32BE(at + 5),
            channel: chunk.readUInt16BE(at + 9),
            payload: total === FRAME_HEADER_BYTES ? EMPTY : chunk.subarray(at + FRAME_HEADER_BYTES, at + total),
          };
          this.skip(total);
          return frame;
        }
      }
    }
    if (this.body === null) {
      if (this.headerFilled < LENGTH_BYTES) {
        this.headerFilled += this.take(this.header, this.headerFilled, LENGTH_BYTES - this.headerFilled);
        if (this.headerFilled < LENGTH_BYTES) return null;
        this.checkLength(this.header.readUInt32BE(0));
      }
      this.headerFilled += this.take(this.header, this.headerFilled, FRAME_HEADER_BYTES - this.headerFilled);
      if (this.headerFilled < FRAME_HEADER_BYTES) return null;
      this.checkKind(this.header[4]!);
      const payloadBytes = this.header.readUInt32BE(0) - HEADER_AFTER_LENGTH_BYTES;
      this.body = payloadBytes === 0 ? EMPTY : Buffer.allocUnsafe(payloadBytes);
      this.bodyFilled = 0;
    }
    this.bodyFilled += this.take(this.body, this.bodyFilled, this.body.length - this.bodyFilled);
    if (this.bodyFilled < this.body.length) return null;
    const frame: Frame = {
      kind: this.header[4] as FrameKind,
      id: this.header.readUInt32BE(5),
      channel: this.header.readUInt16BE(9),
      payload: this.body,
    };
    this.body = null;
    this.bodyFilled = 0;
    this.headerFilled = 0;
    return frame;
  }

  private checkLimit(frameBytesMax: number): void {
    assert.ok(Number.isSafeInteger(frameBytesMax) && frameBytesMax >= FRAME_HEADER_BYTES, `frame limit ${frameBytesMax} is below the header size`);
  }

  private checkLength(length: number): number {
    if (length < HEADER_AFTER_LENGTH_BYTES) {
      throw new FrameError(`frame length ${length} is shorter than the ${HEADER_AFTER_LENGTH_BYTES}-byte header after the length field`);
    }
    if (LENGTH_BYTES + length > this.bytesMax) {
      throw new FrameError(`frame of ${LENGTH_BYTES + length} bytes is over limit '${this.limitName}' (${this.bytesMax})`);
    }
    return length;
  }

  private checkKind(kind: number): FrameKind {
    if (kind < 1 || kind > kindMax) throw new FrameError(`unknown frame kind ${kind}`);
    return kind as FrameKind;
  }

  /** Consumes `n` bytes that are known to lie in the first chunk. */
  private skip(n: number): void {
    this.offset += n;
    this.buffered -= n;
    if (this.offset === this.chunks[0]!.length) {
      this.chunks.shift();
      this.offset = 0;
    }
  }

  /** Copies up to `n` buffered bytes into `target` at `at`; returns how many were copied. */
  private take(target: Buffer, at: number, n: number): number {
    let copied = 0;
    while (copied < n && this.chunks.length > 0) {
      const chunk = this.chunks[0]!;
      const m = Math.min(n - copied, chunk.length - this.offset);
      chunk.copy(target, at + copied, this.offset, this.offset + m);
      copied += m;
      this.offset += m;
      this.buffered -= m;
      if (this.offset === chunk.length) {
        this.chunks.shift();
        this.offset = 0;
      }
    }
    return copied;
  }
}

/**
 * What a node says about itself in the handshake. The handshake is three frames:
 *
 *   initiator -> acceptor   hello: cluster, node id, nonce
 *   acceptor  -> initiator  hello: cluster, node id, nonce, proof (acceptor's)
 *   initiator -> acceptor   auth:  proof (initiator's)
 *
 * A proof is HMAC-SHA256 over the role, the cluster, both node ids and both fresh nonces,
 * keyed by the cluster secret (`handshakeProof`): each side proves it knows the secret
 * without sending it, and a recorded proof is worthless on another connection. Without a
 * secret the proofs are empty and only loopback peers are accepted.
 */
export interface Handshake {
  cluster: string;
  nodeId: string;
  /** This side's fresh random nonce (HANDSHAKE_NONCE_BYTES). */
  nonce: Buffer;
  /** The acceptor's proof; empty from the initiator, and from an acceptor with no secret. */
  proof?: Buffer;
}

/**
 * Handshake payload: u32 magic, u16 version, then (version 3) u8-length-prefixed UTF-8
 * cluster name and node id, the nonce, and a u8-length-prefixed proof (0 or 32 bytes).
 * `version` and `magic` are parameters only so tests can forge them.
 */
export function encodeHandshake(hello: Handshake, version = PROTOCOL_VERSION, magic = HANDSHAKE_MAGIC): Buffer {
  const cluster = Buffer.from(hello.cluster, 'utf8');
  const nodeId = Buffer.from(hello.nodeId, 'utf8');
  const proof = hello.proof ?? Buffer.alloc(0);
  assert.ok(cluster.length >= 1 && cluster.length <= HANDSHAKE_NAME_BYTES_MAX, `cluster name must be 1 to ${HANDSHAKE_NAME_BYTES_MAX} bytes`);
  assert.ok(nodeId.length >= 1 && nodeId.length <= HANDSHAKE_NAME_BYTES_MAX, `node id must be 1 to ${HANDSHAKE_NAME_BYTES_MAX} bytes`);
  assert.equal(hello.nonce.length, HANDSHAKE_NONCE_BYTES, 'handshake nonce size');
  assert.ok(proof.length === 0 || proof.length === HANDSHAKE_PROOF_BYTES, 'handshake proof size');
  const out = Buffer.allocUnsafe(4 + 2 + 1 + cluster.length + 1 + nodeId.length + HANDSHAKE_NONCE_BYTES + 1 + proof.length);
  let at = out.writeUInt32BE(magic, 0);
  at = out.writeUInt16BE(version, at);
  out[at++] = cluster.length;
  at += cluster.copy(out, at);
  out[at++] = nodeId.length;
  at += nodeId.copy(out, at);
  at += hello.nonce.copy(out, at);
  out[at++] = proof.length;
  proof.copy(out, at);
  return out;
}

export type HandshakeCheck = { ok: true; nodeId: string; nonce: Buffer; proof: Buffer } | { ok: false; reason: string };

/**
 * Reads a peer's hello and checks it against this node's cluster; the refusal reason is
 * sent to the peer as it is, so it names both sides (`peer is in cluster 'x', this node is in
 * cluster 'y'`).
 */
export function checkHandshake(payload: Buffer, cluster: string): HandshakeCheck {
  if (payload.length < 6) return { ok: false, reason: `malformed handshake: ${payload.length} bytes, expected at least 6` };
  const magic = payload.readUInt32BE(0);
  if (magic !== HANDSHAKE_MAGIC) {
    return { ok: false, reason: `not a ragkv internode handshake (magic 0x${hex32(magic)}, expected 0x${hex32(HANDSHAKE_MAGIC)})` };
  }
  const version = payload.readUInt16BE(4);
  if (version !== PROTOCOL_VERSION) {
    return { ok: false, reason: `peer speaks internode protocol version ${version}, this node speaks version ${PROTOCOL_VERSION}` };
  }
  let at = 6;
  const readName = (what: string): string | { reason: string } => {
    if (at >= payload.length) return { reason: `malformed handshake: ${what} is missing` };
    const n = payload[at++]!;
    if (n === 0) return { reason: `malformed handshake: ${what} is empty` };
    if (at + n > payload.length) return { reason: `malformed handshake: ${what} is truncated` };
    const name = payload.toString('utf8', at, at + n);
    at += n;
    return name;
  };
  const peerCluster = readName('cluster name');
  if (typeof peerCluster !== 'string') return { ok: false, reason: peerCluster.reason };
  const nodeId = readName('node id');
  if (typeof nodeId !== 'string') return { ok: false, reason: nodeId.reason };
  if (at + HANDSHAKE_NONCE_BYTES + 1 > payload.length) return { ok: false, reason: 'malformed handshake: nonce is truncated' };
  const nonce = Buffer.from(payload.subarray(at, at + HANDSHAKE_NONCE_BYTES));
  at += HANDSHAKE_NONCE_BYTES;
  const proofLength = payload[at++]!;
  if (proofLength !== 0 && proofLength !== HANDSHAKE_PROOF_BYTES) return { ok: false, reason: `malformed handshake: proof of ${proofLength} bytes` };
  if (at + proofLength > payload.length) return { ok: false, reason: 'malformed handshake: proof is truncated' };
  const proof = Buffer.from(payload.subarray(at, at + proofLength));
  at += proofLength;
  if (at !== payload.length) return { ok: false, reason: `malformed handshake: ${payload.length - at} unexpected trailing bytes` };
  if (peerCluster !== cluster) return { ok: false, reason: `peer is in cluster '${peerCluster}', this node is in cluster '${cluster}'` };
  return { ok: true, nodeId, nonce, proof };
}

/** What both sides of one connection's handshake know: the cluster, both ids, both nonces. */
export interface HandshakeTranscript {
  cluster: string;
  initiatorId: string;
  acceptorId: string;
  initiatorNonce: Buffer;
  acceptorNonce: Buffer;
}

/** One side's proof that it knows the cluster secret, bound to this connection (HMAC-SHA256). */
export function handshakeProof(secret: Buffer, role: 'initiator' | 'acceptor', t: HandshakeTranscript): Buffer {
  const mac = createHmac('sha256', secret);
  for (const part of [`ragkv internode v${PROTOCOL_VERSION} ${role}`, t.cluster, t.initiatorId, t.acceptorId]) {
    const b = Buffer.from(part, 'utf8');
    const len = Buffer.allocUnsafe(2);
    len.writeUInt16BE(b.length, 0);
    mac.update(len).update(b);
  }
  return mac.update(t.initiatorNonce).update(t.acceptorNonce).digest();
}

/** True when `proof` is the expected one (constant time). */
export function proofMatches(proof: Buffer, expected: Buffer): boolean {
  return proof.length === expected.length && timingSafeEqual(proof, expected);
}

/** True for a loopback address (127.0.0.0/8, ::1, and IPv4-mapped loopback). */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  return a === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a);
}

function hex32(n: number): string {
  return n.toString(16).padStart(8, '0');
}
