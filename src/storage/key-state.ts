/**
 * What a command may ask of a key's current state, whoever holds it: this node's store
 * (read in place, see replica/lmdb-store.ts) or a record merged from replicas' answers
 * (`RecordKeyState`). Each command's meaning is written once over this interface
 * (coordinator/engine.ts), so a single node and a cluster answer alike.
 *
 * Everything is as of one `nowMs`: an expired key does not exist.
 */
import { type Record, type RecordView, view } from './record.js';

export interface KeyState {
  /** The key holds a value or live fields. */
  exists(): boolean;
  /** base followed by live appends; null when there is none. */
  value(): Buffer | null;
  /** Length of the value (0 when there is none). */
  size(): number;
  /** Bytes [start, end) of the value (callers resolve Redis' inclusive and negative offsets). */
  range(start: number, end: number): Buffer;
  /** The value as its stored pieces, each 4-byte aligned (vector blocks are read in place); null without a value. */
  pieces(): Buffer[] | null;
  /** Calls `visit` with each piece as a view valid only during the call; false without a value. */
  visitPieces(visit: (piece: Buffer) => void): boolean;
  field(name: Buffer): Buffer | null;
  /** Live fields in name order. */
  fields(): [Buffer, Buffer][];
  fieldCount(): number;
  /** Unix ms the key expires at; 0 for none (and for an absent key). */
  expireAtMs(): number;
}

/** A KeyState over a record held in memory (merged from replicas, or the simulator's store). */
export class RecordKeyState implements KeyState {
  private v: RecordView | null = null;
  constructor(
    private readonly record: Record | null,
    private readonly nowMs: number,
  ) {}
  private get view(): RecordView | null {
    if (this.v === null && this.record) this.v = view(this.record, this.nowMs);
    return this.v;
  }
  exists(): boolean {
    return this.view?.exists ?? false;
  }
  value(): Buffer | null {
    return this.view?.value ?? null;
  }
  size(): number {
    return this.view?.value?.length ?? 0;
  }
  range(start: number, end: number): Buffer {
    const v = this.view?.value;
    return v && end > start ? v.subarray(start, end) : Buffer.alloc(0);
  }
  pieces(): Buffer[] | null {
    const v = this.view?.value;
    return v ? [aligned(v)] : null;
  }
  visitPieces(visit: (piece: Buffer) => void): boolean {
    const v = this.view?.value;
    if (!v) return false;
    visit(v);
    return true;
  }
  field(name: Buffer): Buffer | null {
    if (!this.exists()) return null;
    return this.record!.fields.get(name.toString('latin1'))?.value ?? null;
  }
  fields(): [Buffer, Buffer][] {
    return this.view?.fields ?? [];
  }
  fieldCount(): number {
    return this.view?.fields.length ?? 0;
  }
  expireAtMs(): number {
    return this.exists() ? this.view!.expireAtMs : 0;
  }
}

/** A 4-byte aligned copy when `b` is not aligned (typed-array views over vector blocks need it). */
function aligned(b: Buffer): Buffer {
  if (b.byteOffset % 8 === 0) return b;
  const out = Buffer.from(new ArrayBuffer(b.length));
  b.copy(out);
  return out;
}
