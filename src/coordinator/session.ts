/**
 * Session guarantees: a client reads its own acknowledged writes and never reads older than
 * it already has (read-your-writes and monotonic reads), at every consistency level.
 *
 * A session keeps, per key, a *floor*: the newest version of each part of the record (value,
 * delete, expiry, newest append, fields) that the client wrote or read. A replica's answer
 * *covers* a floor when it holds each of those versions or something newer; a read keeps
 * asking replicas (and merging) until the answer covers the floor.
 *
 * A RESP connection is *pinned* to the member it is connected to. For keys that member
 * replicates no floor is needed: its writes wait for the local replica, and its reads either
 * come from the local replica or repair it before replying, so the local copy already holds
 * everything the connection saw. Floors are kept only for keys stored elsewhere, at most
 * `sessionKeysMax` of them (the least recently used go first). A gRPC call has no
 * connection: its session travels as a token (`encode` / `decode`) that holds the floors of
 * every key, newest first, within `sessionTokenBytesMax`.
 */
import { KvError } from '../common/errors.js';
import { sessionTokenOpIdBytes, sessionTokenVersion, sessionTokenVersionBytes } from '../common/session-token.js';
import { bounds, type Limits } from '../common/limits.js';
import type { NodeId } from '../cluster/transport.js';
import { type Record, opIdBytes } from '../storage/record.js';
import { type Version, compareVersions, expiryTombVersion, readVersion, versionBytes, writeVersion } from '../storage/version.js';

/** The newest version of each part of a key's record that a session has seen. */
export interface KeyFloor {
  tomb: Version | null;
  base: Version | null;
  expiry: Version | null;
  /** The newest append: that exact append must be there, or covered by a newer value or delete. */
  append: { version: Version; opId: Buffer } | null;
  /** Field name (latin1) -> version; at most `floorFieldsMax`, the newest kept. */
  fields: Map<string, Version>;
}

/** Fields one floor tracks; past this the oldest are dropped (their guarantee then rests on the rest). */
export const floorFieldsMax = bounds.sessionFloorFieldsMax;

function newer(a: Version | null, b: Version | null): Version | null {
  if (a === null) return b;
  if (b === null) return a;
  return compareVersions(a, b) >= 0 ? a : b;
}

function atLeast(have: Version | null | undefined, want: Version): boolean {
  return have != null && compareVersions(have, want) >= 0;
}

/** The floor a record (a delta written, or a merged answer read) sets. */
export function floorOf(r: Record): KeyFloor {
  const last = r.appends[r.appends.length - 1];
  const fields = new Map<string, Version>();
  for (const [name, f] of r.fields) fields.set(name, f.version);
  return boundFields({
    tomb: r.tomb,
    base: r.base?.version ?? null,
    expiry: r.expiry?.version ?? null,
    // A copy: the op id may be a view of a whole reply frame.
    append: last ? { version: last.version, opId: Buffer.from(last.opId) } : null,
    fields,
  });
}

/** The newer of two floors, part by part. */
export function joinFloors(a: KeyFloor, b: KeyFloor): KeyFloor {
  const fields = new Map(a.fields);
  for (const [name, v] of b.fields) fields.set(name, newer(fields.get(name) ?? null, v)!);
  const append = !a.append ? b.append : !b.append ? a.append : compareVersions(a.append.version, b.append.version) >= 0 ? a.append : b.append;
  return boundFields({ tomb: newer(a.tomb, b.tomb), base: newer(a.base, b.base), expiry: newer(a.expiry, b.expiry), append, fields });
}

function boundFields(f: KeyFloor): KeyFloor {
  if (f.fields.size <= floorFieldsMax) return f;
  const kept = [...f.fields].sort((x, y) => compareVersions(y[1], x[1])).slice(0, floorFieldsMax);
  f.fields = new Map(kept);
  return f;
}

/** True when `r` (as stored, expiry not applied) holds everything `floor` names, or newer. */
export function covers(r: Record | null, floor: KeyFloor): boolean {
  // An expiry stands for a delete at its time (a replica that swept the key holds that
  // tombstone; one that has not yet holds the same expiry): either covers it.
  const expiryTomb = r?.expiry && r.expiry.atMs > 0 ? expiryTombVersion(r.expiry.atMs) : null;
  const tomb = r?.tomb && expiryTomb ? (compareVersions(r.tomb, expiryTomb) >= 0 ? r.tomb : expiryTomb) : (r?.tomb ?? expiryTomb);
  const deleted = (v: Version) => atLeast(tomb, v);
  if (floor.tomb && !deleted(floor.tomb)) return false;
  if (!r) return !floor.base && !floor.expiry && !floor.append && floor.fields.size === 0;
  if (floor.base && !atLeast(r.base?.version, floor.base) && !deleted(floor.base)) return false;
  if (floor.expiry && !atLeast(r.expiry?.version, floor.expiry) && !deleted(floor.expiry)) return false;
  if (floor.append) {
    const { version, opId } = floor.append;
    if (!deleted(version) && !atLeast(r.base?.version, version) && !r.appends.some((s) => compareVersions(s.version, version) === 0 && s.opId.equals(opId))) {
      return false;
    }
  }
  for (const [name, v] of floor.fields) {
    if (!atLeast(r.fields.get(name)?.version, v) && !deleted(v)) return false;
  }
  return true;
}

/** Every version a floor names (the hybrid clock observes them before stamping a write). */
export function floorVersions(f: KeyFloor): Version[] {
  const out: Version[] = [];
  if (f.tomb) out.push(f.tomb);
  if (f.base) out.push(f.base);
  if (f.expiry) out.push(f.expiry);
  if (f.append) out.push(f.append.version);
  for (const v of f.fields.values()) out.push(v);
  return out;
}

interface Entry {
  ns: string;
  key: Buffer;
  floor: KeyFloor;
  /** The session's map key for it, and its approximate memory (what the pool counts). */
  id: string;
  bytes: number;
}

/** About what an entry takes in memory: its key, namespace, field names, and the objects around them. */
function entryBytes(ns: string, key: Buffer, floor: KeyFloor): number {
  let bytes = 160 + 2 * ns.length + 2 * key.length;
  for (const name of floor.fields.keys()) bytes += 64 + 2 * name.length;
  return bytes;
}

/**
 * The floors of every pinned session of one member (its RESP connections), together bounded
 * in bytes: past `bytesMax` the least recently used floor of any session is dropped (that
 * key's guarantees then rest on the levels, as for one past `sessionKeysMax`).
 */
export class SessionFloorPool {
  private readonly lru = new Map<Entry, Session>();
  /**
   * Walks `lru` oldest first, kept across evictions: entries are added only at the end and
   * everything it passed was evicted, so its next is always the oldest entry. (A fresh
   * iterator per eviction would step over every deleted slot at the front each time.)
   */
  private cursor: IterableIterator<[Entry, Session]> = this.lru.entries();
  private used = 0;

  constructor(readonly bytesMax: number) {}

  /** Bytes the floors take now. */
  get bytes(): number {
    return this.used;
  }

  /** Floors held. */
  get size(): number {
    return this.lru.size;
  }

  /** `e` (of `s`) replaces `old`, as the most recently used; then the oldest go until within bounds. */
  touch(s: Session, e: Entry, old: Entry | undefined): void {
    if (old) this.remove(old);
    this.lru.set(e, s);
    this.used += e.bytes;
    while (this.used > this.bytesMax) {
      let next = this.cursor.next();
      if (next.done) {
        this.cursor = this.lru.entries();
        next = this.cursor.next();
      }
      const [oldest, owner] = next.value!;
      owner.drop(oldest);
    }
  }

  remove(e: Entry): void {
    if (this.lru.delete(e)) this.used -= e.bytes;
  }
}

const tokenVersion = sessionTokenVersion;
/** How many times 'sessionTokenBytesMax' a token read may be (see Session.decode). */
export const sessionTokenTolerance = 4;
// Clients walk tokens with common/session-token.ts's sizes: they must be the storage's.
if (sessionTokenVersionBytes !== versionBytes || sessionTokenOpIdBytes !== opIdBytes) throw new Error('session token frame sizes disagree with the storage');
const emptyToken = Buffer.alloc(0);

/** One client's session: floors of the keys it touched, least recently used first. */
export class Session {
  private readonly floors = new Map<string, Entry>();
  /** The last read of this session to finish (reads finish in the order they started). */
  readTail: Promise<void> | null = null;

  /**
   * `pinnedTo`: the member every request of this session goes through (a RESP connection's),
   * whose own replicas need no floors; null for a token-carried session.
   */
  constructor(
    readonly keysMax: number,
    readonly pinnedTo: NodeId | null,
    private readonly pool: SessionFloorPool | null = null,
  ) {}

  /** Set by `release`: the session's connection is gone, nothing more is kept. */
  private released = false;
  /** Walks `floors` oldest first for evictions past keysMax (see SessionFloorPool.cursor). */
  private cursor: IterableIterator<Entry> = this.floors.values();

  /** Keys with a floor. */
  get size(): number {
    return this.floors.size;
  }

  floor(ns: string, key: Buffer): KeyFloor | undefined {
    if (this.floors.size === 0) return undefined;
    return this.floors.get(entryId(ns, key))?.floor;
  }

  /** Raises the key's floor to include `floor` (it becomes the most recently used). */
  note(ns: string, key: Buffer, floor: KeyFloor): void {
    if (this.released) return;
    const id = entryId(ns, key);
    const had = this.floors.get(id);
    if (had) this.floors.delete(id);
    const joined = had ? joinFloors(had.floor, floor) : floor;
    const e: Entry = { ns, key: had?.key ?? Buffer.from(key), floor: joined, id, bytes: entryBytes(ns, key, joined) };
    this.floors.set(id, e);
    if (this.floors.size > this.keysMax) {
      let next = this.cursor.next();
      if (next.done) {
        this.cursor = this.floors.values();
        next = this.cursor.next();
      }
      this.drop(next.value!);
    }
    if (this.pool) {
      if (this.floors.get(id) === e) this.pool.touch(this, e, had);
      else if (had) this.pool.remove(had);
    }
  }

  /** Forgets one floor (the session's oldest, or the pool's). */
  drop(e: Entry): void {
    if (this.floors.get(e.id) === e) this.floors.delete(e.id);
    this.pool?.remove(e);
  }

  /** Forgets everything (RESET). */
  clear(): void {
    if (this.pool) for (const e of this.floors.values()) this.pool.remove(e);
    this.floors.clear();
  }

  /** The connection closed: forgets everything and keeps nothing noted later (by requests still in flight). */
  release(): void {
    this.released = true;
    this.clear();
  }

  /** The session as a token: floors of the most recently used keys first, within `bytesMax`. */
  encode(bytesMax: number): Buffer {
    if (this.floors.size === 0) return emptyToken;
    const parts: Buffer[] = [];
    let bytes = 3;
    const entries = [...this.floors.values()].reverse();
    for (const e of entries) {
      const b = encodeEntry(e);
      if (bytes + b.length > bytesMax) break;
      parts.push(b);
      bytes += b.length;
    }
    const head = Buffer.allocUnsafe(3);
    head[0] = tokenVersion;
    head.writeUInt16BE(parts.length, 1);
    // Oldest first, so decoding re-creates the order of use.
    return Buffer.concat([head, ...parts.reverse()]);
  }

  /** A token-carried session from a client's token (empty: a new session); INVALID_ARGUMENT when malformed. */
  static decode(token: Buffer, limits: Pick<Limits, 'sessionKeysMax' | 'sessionTokenBytesMax' | 'keyBytesMax' | 'namespaceBytesMax'>): Session {
    const s = new Session(limits.sessionKeysMax, null);
    if (token.length === 0) return s;
    const bad = (why: string) => new KvError('INVALID_ARGUMENT', `session token is malformed: ${why}`);
    // Tokens this member writes fit 'sessionTokenBytesMax'; a client that merged concurrent
    // replies' tokens to its own (default) bound may send more, up to four times that.
    if (token.length > sessionTokenTolerance * limits.sessionTokenBytesMax) {
      throw new KvError(
        'INVALID_ARGUMENT',
        `session token is ${token.length} bytes, over ${sessionTokenTolerance} × limit 'sessionTokenBytesMax' (${limits.sessionTokenBytesMax})`,
      );
    }
    if (token[0] !== tokenVersion) throw bad(`version ${token[0]}`);
    if (token.length < 3) throw bad('truncated');
    const n = token.readUInt16BE(1);
    let at = 3;
    const need = (k: number) => {
      if (at + k > token.length) throw bad('truncated');
    };
    const version = (): Version => {
      need(versionBytes);
      const v = readVersion(token, at);
      at += versionBytes;
      return v;
    };
    for (let i = 0; i < n; i++) {
      need(1);
      const nsLen = token[at++]!;
      need(nsLen);
      if (nsLen === 0 || nsLen > limits.namespaceBytesMax) throw bad('namespace length');
      const ns = token.toString('utf8', at, at + nsLen);
      at += nsLen;
      need(2);
      const keyLen = token.readUInt16BE(at);
      at += 2;
      if (keyLen === 0 || keyLen > limits.keyBytesMax) throw bad('key length');
      need(keyLen);
      const key = token.subarray(at, at + keyLen);
      at += keyLen;
      need(1);
      const flags = token[at++]!;
      const floor: KeyFloor = { tomb: null, base: null, expiry: null, append: null, fields: new Map() };
      if (flags & 1) floor.tomb = version();
      if (flags & 2) floor.base = version();
      if (flags & 4) floor.expiry = version();
      if (flags & 8) {
        const v = version();
        need(opIdBytes);
        floor.append = { version: v, opId: Buffer.from(token.subarray(at, at + opIdBytes)) };
        at += opIdBytes;
      }
      need(1);
      const fieldCount = token[at++]!;
      if (fieldCount > floorFieldsMax) throw bad('field count');
      for (let j = 0; j < fieldCount; j++) {
        need(2);
        const nameLen = token.readUInt16BE(at);
        at += 2;
        need(nameLen);
        const name = token.toString('latin1', at, at + nameLen);
        at += nameLen;
        floor.fields.set(name, version());
      }
      s.note(ns, key, floor);
    }
    if (at !== token.length) throw bad(`${token.length - at} trailing bytes`);
    return s;
  }
}

function entryId(ns: string, key: Buffer): string {
  // Length-prefixed namespace: no two (ns, key) pairs share an id.
  return `${ns.length}:${ns}${key.toString('latin1')}`;
}

function encodeEntry(e: Entry): Buffer {
  const f = e.floor;
  const ns = Buffer.from(e.ns, 'utf8');
  const names = [...f.fields.keys()].map((n) => Buffer.from(n, 'latin1'));
  let bytes = 1 + ns.length + 2 + e.key.length + 1 + 1;
  const versions = [f.tomb, f.base, f.expiry].filter((v) => v !== null).length + (f.append ? 1 : 0);
  bytes += versions * versionBytes + (f.append ? opIdBytes : 0);
  for (const n of names) bytes += 2 + n.length + versionBytes;
  const out = Buffer.allocUnsafe(bytes);
  let at = 0;
  out[at++] = ns.length;
  at += ns.copy(out, at);
  at = out.writeUInt16BE(e.key.length, at);
  at += e.key.copy(out, at);
  out[at++] = (f.tomb ? 1 : 0) | (f.base ? 2 : 0) | (f.expiry ? 4 : 0) | (f.append ? 8 : 0);
  for (const v of [f.tomb, f.base, f.expiry]) {
    if (v) {
      writeVersion(out, at, v);
      at += versionBytes;
    }
  }
  if (f.append) {
    writeVersion(out, at, f.append.version);
    at += versionBytes;
    at += f.append.opId.copy(out, at);
  }
  out[at++] = names.length;
  let i = 0;
  for (const v of f.fields.values()) {
    const n = names[i++]!;
    at = out.writeUInt16BE(n.length, at);
    at += n.copy(out, at);
    writeVersion(out, at, v);
    at += versionBytes;
  }
  return out;
}
