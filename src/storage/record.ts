/**
 * The record: what a key holds, as a state-based CRDT (see DESIGN.md "Data model").
 *
 * - `base`: bytes, last-writer-wins by version (SET / PUT);
 * - `appends`: segments with unique op ids, kept sorted by (version, opId); a segment not
 *   newer than `base` is covered by it; the value reads as base followed by live segments;
 * - `fields`: per-field last-writer-wins map; a deleted field keeps its version (value null);
 * - `tomb`: a delete covers everything not newer than it;
 * - `expiry`: last-writer-wins register of the expiry time (0 = none). Once the time has
 *   passed, the expiry acts as a tombstone at `expiryTombVersion(atMs)` (see `expire`).
 *
 * The same type is the delta a write applies: a SET is a record with only `base` and
 * `expiry`, an APPEND one with a single segment, and so on. `merge` is commutative,
 * associative and idempotent; the LMDB store applies deltas with the same result.
 */
import { type Version, compareVersions, expiryTombVersion, isNewer, maxVersion, tsMs } from './version.js';

export const opIdBytes = 16;

export interface Segment {
  readonly version: Version;
  /** Unique id of the append operation (16 bytes); re-applying the same op is a no-op. */
  readonly opId: Buffer;
  readonly bytes: Buffer;
}

export interface FieldValue {
  readonly version: Version;
  /** null marks a deleted field (kept so an older concurrent set cannot revive it). */
  readonly value: Buffer | null;
}

export interface Expiry {
  readonly version: Version;
  /** Unix ms at which the record expires; 0 means no expiry. */
  readonly atMs: number;
}

export interface Record {
  tomb: Version | null;
  base: { version: Version; value: Buffer } | null;
  appends: Segment[];
  /** Field name (as latin1 string of its bytes, so any bytes round-trip) -> value. */
  fields: Map<string, FieldValue>;
  expiry: Expiry | null;
}

export function emptyRecord(): Record {
  return { tomb: null, base: null, appends: [], fields: new Map(), expiry: null };
}

/** Orders segments by version, then op id. */
export function compareSegments(a: Segment, b: Segment): number {
  return compareVersions(a.version, b.version) || Buffer.compare(a.opId, b.opId);
}

/** Union of two records; the result shares no mutable state with the inputs. */
export function merge(a: Record, b: Record): Record {
  const out: Record = {
    tomb: maxVersion(a.tomb, b.tomb),
    base: a.base && b.base ? (compareVersions(a.base.version, b.base.version) >= 0 ? a.base : b.base) : (a.base ?? b.base),
    appends: mergeSegments(a.appends, b.appends),
    fields: new Map(a.fields),
    expiry:
      a.expiry && b.expiry ? (compareVersions(a.expiry.version, b.expiry.version) >= 0 ? a.expiry : b.expiry) : (a.expiry ?? b.expiry),
  };
  for (const [name, fv] of b.fields) {
    const mine = out.fields.get(name);
    if (!mine || compareVersions(fv.version, mine.version) > 0) out.fields.set(name, fv);
  }
  return normalize(out);
}

function mergeSegments(a: Segment[], b: Segment[]): Segment[] {
  const out: Segment[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (j >= b.length) out.push(a[i++]!);
    else if (i >= a.length) out.push(b[j++]!);
    else {
      const c = compareSegments(a[i]!, b[j]!);
      if (c < 0) out.push(a[i++]!);
      else if (c > 0) out.push(b[j++]!);
      else {
        const x = a[i++]!;
        const y = b[j++]!;
        out.push(preferredPayload(x.bytes, y.bytes) === x.bytes ? x : y);
      }
    }
  }
  return out;
}

/**
 * Of two payloads of one op, the one a merge keeps. They differ only when compaction pruned
 * the op's dead parts on one replica (see storage/pruner.ts): the shorter is the more pruned,
 * and reads the same. Ties (two replicas that pruned different dead parts) go to the lower
 * bytes, so the choice is a total order and merge stays commutative, associative and
 * idempotent; the keeping replica's next prune removes what the other had removed.
 */
export function preferredPayload(a: Buffer, b: Buffer): Buffer {
  if (a === b) return a;
  if (a.length !== b.length) return a.length < b.length ? a : b;
  return Buffer.compare(a, b) <= 0 ? a : b;
}

/** Drops what the tombstone and base cover; mutates and returns `r`. */
export function normalize(r: Record): Record {
  const tomb = r.tomb;
  if (tomb) {
    if (r.base && !isNewer(r.base.version, tomb)) r.base = null;
    if (r.expiry && !isNewer(r.expiry.version, tomb)) r.expiry = null;
    for (const [name, fv] of r.fields) if (!isNewer(fv.version, tomb)) r.fields.delete(name);
  }
  const floor = maxVersion(tomb, r.base?.version ?? null);
  if (floor) r.appends = r.appends.filter((s) => isNewer(s.version, floor));
  return r;
}

/** Applies the expiry if its time has passed at `nowMs`: it becomes a tombstone. */
export function expire(r: Record, nowMs: number): Record {
  if (!r.expiry || r.expiry.atMs === 0 || nowMs <= r.expiry.atMs) return r;
  return merge(r, { ...emptyRecord(), tomb: expiryTombVersion(r.expiry.atMs) });
}

/** What a client reads from a record at `nowMs`. */
export interface RecordView {
  exists: boolean;
  /** base followed by live appends; null when neither exists. */
  value: Buffer | null;
  /** Live fields, sorted by name bytes. */
  fields: [Buffer, Buffer][];
  /** Expiry time in Unix ms, 0 for none. */
  expireAtMs: number;
}

export function view(record: Record, nowMs: number): RecordView {
  const r = expire(record, nowMs);
  const parts: Buffer[] = [];
  if (r.base) parts.push(r.base.value);
  for (const s of r.appends) parts.push(s.bytes);
  const fields: [Buffer, Buffer][] = [];
  for (const [name, fv] of r.fields) if (fv.value) fields.push([Buffer.from(name, 'latin1'), fv.value]);
  fields.sort((x, y) => Buffer.compare(x[0], y[0]));
  const hasValue = r.base !== null || r.appends.length > 0;
  return {
    exists: hasValue || fields.length > 0,
    value: hasValue ? Buffer.concat(parts) : null,
    fields,
    expireAtMs: r.expiry?.atMs ?? 0,
  };
}

/** The newest version timestamp in a record or delta (0 when it holds none). */
export function newestTs(r: Record): number {
  let ts = 0;
  if (r.tomb && r.tomb.ts > ts) ts = r.tomb.ts;
  if (r.base && r.base.version.ts > ts) ts = r.base.version.ts;
  if (r.expiry && r.expiry.version.ts > ts) ts = r.expiry.version.ts;
  for (const s of r.appends) if (s.version.ts > ts) ts = s.version.ts;
  for (const f of r.fields.values()) if (f.version.ts > ts) ts = f.version.ts;
  return ts;
}

/**
 * The time a stored expiry is judged at when `delta` applies: the delta's own newest version
 * (a write stamped after the expiry sees the key gone), not the replica's clock, which may
 * run ahead. A delta with no version (the sweeper's) passes the time itself.
 */
export function expiryAsOfMs(delta: Record, nowMs: number): number {
  const ts = newestTs(delta);
  return ts === 0 ? nowMs : tsMs(ts);
}
