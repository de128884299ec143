/**
 * The membership wire format. Every message is
 *   version u8 | type u8 | body | gossip
 * where gossip (on every type but push-pull) is a u16 count of updates. Strings are a u16
 * byte length then UTF-8; incarnations and sequence numbers are u32. Every declared length
 * and count is checked against membershipLimits before anything is allocated for it, and a
 * bad message throws a KvError('PROTOCOL') naming the problem.
 */
import assert from 'node:assert/strict';
import { KvError } from '../../common/errors.js';
import type { NodeId } from '../transport.js';
import { membershipLimits } from './config.js';
import { memberStatusCode, memberStatusOf, type MemberState, type MemberStatus } from './state.js';

/** Wire version; a message of another version is refused. 2: acks and push-pulls carry the sender's wall time. */
export const membershipWireVersion = 2;

/** News about one member, piggy-backed on other messages. */
export type GossipUpdate = AliveUpdate | SuspectUpdate | DeadUpdate;
/** A member is alive at an incarnation, with these facts. */
export interface AliveUpdate { kind: 'alive'; id: NodeId; incarnation: number; address: string; zone: string; meta: Buffer }
/** `from` suspects member `id` at an incarnation. */
export interface SuspectUpdate { kind: 'suspect'; id: NodeId; incarnation: number; from: NodeId }
/** `from` declared member `id` dead, or (`left`, from = id) the member left. */
export interface DeadUpdate { kind: 'dead' | 'left'; id: NodeId; incarnation: number; from: NodeId }

/** Every membership message. `gossip` holds already-encoded updates when sending (see encodeUpdate). */
export type MembershipMessage =
  | { type: 'ping'; seq: number; target: NodeId; gossip: GossipUpdate[] }
  /** `wallMs`: the sender's clock when it answered (clock offsets, see clock-check.ts). */
  | { type: 'ack'; seq: number; wallMs: number; gossip: GossipUpdate[] }
  | { type: 'nack'; seq: number; gossip: GossipUpdate[] }
  | { type: 'ping-req'; seq: number; target: NodeId; gossip: GossipUpdate[] }
  | { type: 'push-pull'; join: boolean; wallMs: number; states: MemberState[] }
  | { type: 'gossip'; gossip: GossipUpdate[] };

const typeCode = { ping: 1, ack: 2, nack: 3, 'ping-req': 4, 'push-pull': 5, gossip: 6 } as const;
const updateCode = { alive: 1, suspect: 2, dead: 3, left: 4 } as const;

const U32_MAX = 0xffffffff;

/** Encodes one gossip update (the broadcast queue stores updates encoded, to count their bytes once). */
export function encodeUpdate(u: GossipUpdate): Buffer {
  const w = new Writer();
  w.u8(updateCode[u.kind]);
  w.str(u.id, membershipLimits.memberIdBytesMax, 'member id');
  w.u32(u.incarnation);
  if (u.kind === 'alive') {
    w.str(u.address, membershipLimits.addressBytesMax, 'address');
    w.str(u.zone, membershipLimits.zoneBytesMax, 'zone');
    w.bytes(u.meta, membershipLimits.metaBytesMax, 'meta');
  } else {
    w.str(u.from, membershipLimits.memberIdBytesMax, 'member id');
  }
  return w.finish();
}

/**
 * Encodes a message. Gossip is passed as encoded updates (`encodedGossip`) so that the
 * sender's broadcast queue decides what fits; `message.gossip` is ignored when it is given.
 */
export function encodeMessage(message: MembershipMessage, encodedGossip?: readonly Buffer[]): Buffer {
  const w = new Writer();
  w.u8(membershipWireVersion);
  w.u8(typeCode[message.type]);
  switch (message.type) {
    case 'ping':
    case 'ping-req':
      w.u32(message.seq);
      w.str(message.target, membershipLimits.memberIdBytesMax, 'member id');
      break;
    case 'ack':
      w.u32(message.seq);
      w.f64(message.wallMs);
      break;
    case 'nack':
      w.u32(message.seq);
      break;
    case 'push-pull':
      assert(message.states.length <= membershipLimits.membersMax, 'push-pull over membersMax');
      w.u8(message.join ? 1 : 0);
      w.f64(message.wallMs);
      w.u32(message.states.length);
      for (const s of message.states) {
        w.u8(memberStatusCode[s.status]);
        w.str(s.id, membershipLimits.memberIdBytesMax, 'member id');
        w.u32(s.incarnation);
        w.str(s.address, membershipLimits.addressBytesMax, 'address');
        w.str(s.zone, membershipLimits.zoneBytesMax, 'zone');
        w.bytes(s.meta, membershipLimits.metaBytesMax, 'meta');
      }
      return w.finish();
    case 'gossip':
      break;
  }
  const updates = encodedGossip ?? message.gossip.map(encodeUpdate);
  assert(updates.length <= membershipLimits.gossipUpdatesMax, 'gossip over gossipUpdatesMax');
  w.u16(updates.length);
  for (const u of updates) w.raw(u);
  return w.finish();
}

/** Decodes a message; throws KvError('PROTOCOL') on anything malformed or over a limit. */
export function decodeMessage(buf: Buffer): MembershipMessage {
  const r = new Reader(buf);
  const version = r.u8();
  if (version !== membershipWireVersion) throw protocolError(`membership wire version ${version}, expected ${membershipWireVersion}`);
  const type = r.u8();
  let message: MembershipMessage;
  switch (type) {
    case typeCode.ping:
    case typeCode['ping-req']: {
      const seq = r.u32();
      const target = r.str(membershipLimits.memberIdBytesMax, 'member id');
      message = { type: type === typeCode.ping ? 'ping' : 'ping-req', seq, target, gossip: readGossip(r) };
      break;
    }
    case typeCode.ack: {
      const seq = r.u32();
      const wallMs = r.f64();
      message = { type: 'ack', seq, wallMs, gossip: readGossip(r) };
      break;
    }
    case typeCode.nack: {
      const seq = r.u32();
      message = { type: 'nack', seq, gossip: readGossip(r) };
      break;
    }
    case typeCode['push-pull']: {
      const join = r.u8();
      if (join > 1) throw protocolError(`bad push-pull join flag ${join}`);
      const wallMs = r.f64();
      const count = r.u32();
      if (count > membershipLimits.membersMax) throw protocolError(`push-pull carries ${count} members, over limit 'membersMax' (${membershipLimits.membersMax})`);
      const states: MemberState[] = [];
      for (let i = 0; i < count; i++) {
        const code = r.u8();
        const status: MemberStatus | undefined = memberStatusOf(code);
        if (status === undefined) throw protocolError(`bad member status ${code}`);
        const id = r.str(membershipLimits.memberIdBytesMax, 'member id');
        const incarnation = r.u32();
        const address = r.str(membershipLimits.addressBytesMax, 'address');
        const zone = r.str(membershipLimits.zoneBytesMax, 'zone');
        const meta = r.bytes(membershipLimits.metaBytesMax, 'meta');
        states.push({ id, incarnation, status, address, zone, meta });
      }
      message = { type: 'push-pull', join: join === 1, wallMs, states };
      break;
    }
    case typeCode.gossip:
      message = { type: 'gossip', gossip: readGossip(r) };
      break;
    default:
      throw protocolError(`unknown membership message type ${type}`);
  }
  if (!r.done()) throw protocolError(`${r.remaining()} trailing bytes after a membership ${message.type} message`);
  return message;
}

function readGossip(r: Reader): GossipUpdate[] {
  const count = r.u16();
  if (count > membershipLimits.gossipUpdatesMax) throw protocolError(`${count} gossip updates, over limit 'gossipUpdatesMax' (${membershipLimits.gossipUpdatesMax})`);
  const out: GossipUpdate[] = [];
  for (let i = 0; i < count; i++) {
    const code = r.u8();
    if (code < updateCode.alive || code > updateCode.left) throw protocolError(`unknown gossip update kind ${code}`);
    const id = r.str(membershipLimits.memberIdBytesMax, 'member id');
    const incarnation = r.u32();
    switch (code) {
      case updateCode.alive: {
        const address = r.str(membershipLimits.addressBytesMax, 'address');
        const zone = r.str(membershipLimits.zoneBytesMax, 'zone');
        const meta = r.bytes(membershipLimits.metaBytesMax, 'meta');
        out.push({ kind: 'alive', id, incarnation, address, zone, meta });
        break;
      }
      case updateCode.suspect:
      case updateCode.dead:
      case updateCode.left: {
        const from = r.str(membershipLimits.memberIdBytesMax, 'member id');
        if (code === updateCode.suspect) out.push({ kind: 'suspect', id, incarnation, from });
        else out.push({ kind: code === updateCode.dead ? 'dead' : 'left', id, incarnation, from });
        break;
      }
      default:
        throw protocolError(`unknown gossip update kind ${code}`);
    }
  }
  return out;
}

function protocolError(message: string): KvError {
  return new KvError('PROTOCOL', message);
}

class Writer {
  private readonly parts: Buffer[] = [];
  private readonly scratch = Buffer.allocUnsafe(4);

  u8(v: number): void {
    assert(Number.isInteger(v) && v >= 0 && v <= 0xff, `u8 out of range: ${v}`);
    this.parts.push(Buffer.from([v]));
  }

  u16(v: number): void {
    assert(Number.isInteger(v) && v >= 0 && v <= 0xffff, `u16 out of range: ${v}`);
    this.scratch.writeUInt16BE(v, 0);
    this.parts.push(Buffer.from(this.scratch.subarray(0, 2)));
  }

  f64(v: number): void {
    const b = Buffer.allocUnsafe(8);
    b.writeDoubleBE(v, 0);
    this.parts.push(b);
  }

  u32(v: number): void {
    assert(Number.isInteger(v) && v >= 0 && v <= U32_MAX, `u32 out of range: ${v}`);
    this.scratch.writeUInt32BE(v, 0);
    this.parts.push(Buffer.from(this.scratch));
  }

  str(s: string, max: number, what: string): void {
    this.bytes(Buffer.from(s, 'utf8'), max, what);
  }

  bytes(b: Buffer, max: number, what: string): void {
    assert(b.length <= max && b.length <= 0xffff, `${what} is ${b.length} bytes, over ${max}`);
    this.u16(b.length);
    this.parts.push(b);
  }

  raw(b: Buffer): void {
    this.parts.push(b);
  }

  finish(): Buffer {
    return Buffer.concat(this.parts);
  }
}

class Reader {
  private offset = 0;
  constructor(private readonly buf: Buffer) {}

  private need(n: number, what: string): void {
    if (this.offset + n > this.buf.length) throw protocolError(`membership message truncated reading ${what} at byte ${this.offset}`);
  }

  u8(): number {
    this.need(1, 'u8');
    return this.buf.readUInt8(this.offset++);
  }

  u16(): number {
    this.need(2, 'u16');
    const v = this.buf.readUInt16BE(this.offset);
    this.offset += 2;
    return v;
  }

  u32(): number {
    this.need(4, 'u32');
    const v = this.buf.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }

  f64(): number {
    this.need(8, 'f64');
    const v = this.buf.readDoubleBE(this.offset);
    this.offset += 8;
    return v;
  }

  bytes(max: number, what: string): Buffer {
    const n = this.u16();
    if (n > max) throw protocolError(`${what} is ${n} bytes, over limit '${limitNameOf(what)}' (${max})`);
    this.need(n, what);
    // A copy: the message buffer is not kept alive by one member's meta.
    const out = Buffer.from(this.buf.subarray(this.offset, this.offset + n));
    this.offset += n;
    return out;
  }

  str(max: number, what: string): string {
    const b = this.bytes(max, what);
    const s = b.toString('utf8');
    if (Buffer.byteLength(s) !== b.length) throw protocolError(`${what} is not valid UTF-8`);
    return s;
  }

  done(): boolean {
    return this.offset === this.buf.length;
  }

  remaining(): number {
    return this.buf.length - this.offset;
  }
}

function limitNameOf(what: string): string {
  switch (what) {
    case 'member id':
      return 'memberIdBytesMax';
    case 'address':
      return 'addressBytesMax';
    case 'zone':
      return 'zoneBytesMax';
    default:
      return 'metaBytesMax';
  }
}
