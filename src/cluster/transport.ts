/**
 * Internode messaging, injected into every protocol core. Production wires TCP
 * (`tcp-transport.ts`); the simulator wires a seeded in-memory network (`sim/`). A message is
 * a channel number (which core handles it) and an opaque payload: each core encodes its own.
 */

import { KvError } from '../common/errors.js';

/** A member's stable id (e.g. `n1`, or a pod name). */
export type NodeId = string;

/** Channels: one per protocol core. */
export const Channel = Object.freeze({
  membership: 1,
  replica: 2,
  hints: 3,
  placement: 4,
  antiEntropy: 5,
});

export type TransportErrorCode =
  /** No connection could be made, or the connection broke before the reply. */
  | 'UNREACHABLE'
  /** The reply did not come before the deadline. */
  | 'TIMEOUT'
  /** A send queue is full: refused at once rather than buffered without bound. */
  | 'OVERLOADED'
  /** The peer's handler failed; the message says how. */
  | 'REMOTE'
  /** The transport is closed. */
  | 'CLOSED';

export class TransportError extends Error {
  readonly code: TransportErrorCode;
  /** For REMOTE: the peer handler's error code (a KvError code such as WRONG_TYPE, or INTERNAL). */
  readonly remoteCode: string | undefined;
  constructor(code: TransportErrorCode, message: string, remoteCode?: string) {
    super(message);
    this.name = 'TransportError';
    this.code = code;
    this.remoteCode = remoteCode;
  }
}

/** Longest error code carried by an error reply. */
const remoteCodeBytesMax = 32;

/**
 * The payload of an error reply: u8 code length, the code (ASCII), then the message (UTF-8).
 * An error with a string `code` (a KvError) keeps it across the wire; anything else is
 * INTERNAL, so a requester can tell the peer's verdict on the request from a peer's bug.
 */
export function encodeRemoteError(err: unknown): Buffer {
  const code = err instanceof KvError ? err.code : 'INTERNAL';
  const message = Buffer.from(err instanceof Error ? err.message : String(err), 'utf8');
  const out = Buffer.allocUnsafe(1 + code.length + message.length);
  out[0] = code.length;
  out.write(code, 1, 'latin1');
  message.copy(out, 1 + code.length);
  return out;
}

/** Reads an error reply; a payload that is not one (malformed: peers of other versions are refused at the handshake) is INTERNAL. */
export function decodeRemoteError(payload: Buffer): TransportError {
  const n = payload.length > 0 ? payload[0]! : 0;
  const code = n >= 1 && n <= remoteCodeBytesMax && payload.length >= 1 + n ? payload.toString('latin1', 1, 1 + n) : '';
  if (!/^[A-Z_]+$/.test(code)) return new TransportError('REMOTE', payload.toString('utf8'), 'INTERNAL');
  return new TransportError('REMOTE', payload.toString('utf8', 1 + n), code);
}

/**
 * What a handler returns: a reply for requests (a Buffer or a promise of one); ignored for
 * one-way messages. A thrown error or rejected promise reaches the requester as REMOTE.
 */
export type Handler = (from: NodeId, payload: Buffer, isRequest: boolean) => Buffer | Promise<Buffer> | void;

export interface Transport {
  /** This node's id. */
  readonly self: NodeId;
  /**
   * Sends a request and resolves with the reply; rejects with a TransportError. A node id
   * is resolved to an address through the address book (`setAddress`).
   */
  request(to: NodeId, channel: number, payload: Buffer, timeoutMs: number): Promise<Buffer>;
  /**
   * Sends a request to an address whose node id is not known yet (a seed); resolves with the
   * peer's id (learned in the handshake) and its reply.
   */
  requestAt(address: string, channel: number, payload: Buffer, timeoutMs: number): Promise<{ from: NodeId; reply: Buffer }>;
  /** One-way message (gossip): dropped and counted when the peer is unreachable or its queue is full. */
  send(to: NodeId, channel: number, payload: Buffer): void;
  /** Registers the handler of a channel (one per channel). */
  handle(channel: number, handler: Handler): void;
  /** Where to reach a node (`host:port`); membership keeps this current. */
  setAddress(id: NodeId, address: string): void;
  /** Stops sending and receiving; pending requests reject with CLOSED. */
  close(): Promise<void>;
}
