/** Vector-list helpers shared by the coordinators: encoding a batch and reading items. */
import { KvError, invalidArgument } from '../common/errors.js';
import { appendBreaksList, appendShapeMismatch, encodeDeleteBatch, encodeItemBatch, FLOAT16_TABLE, type ItemBatchInput } from '../compute/vector-items.js';
import { LiveItems, itemVector, listBatches, liveItems } from '../compute/vector-search.js';
import type { KvPair, VectorItem } from './api.js';

/** Encodes a batch, turning format errors into INVALID_ARGUMENT errors for the client. */
export function encodeBatch(batch: ItemBatchInput): Buffer {
  try {
    return encodeItemBatch(batch);
  } catch (err) {
    if (err instanceof RangeError) throw invalidArgument(err.message);
    throw err;
  }
}

export function encodeDeletes(ids: Buffer[]): Buffer {
  if (ids.length === 0) throw invalidArgument('no ids given');
  try {
    return encodeDeleteBatch(ids);
  } catch (err) {
    if (err instanceof RangeError) throw invalidArgument(err.message);
    throw err;
  }
}

/**
 * Refuses an APPEND that would leave a posting list unreadable (see `appendBreaksList`):
 * WRONG_TYPE naming the key. `head` is the start of the key's value (its first stored piece,
 * or its first batch), null when it holds none. Call it before writing.
 */
export function checkAppend(key: Buffer, head: Buffer | null, bytes: Buffer): void {
  if (appendBreaksList(head, bytes)) {
    throw new KvError(
      'WRONG_TYPE',
      `key '${key.toString('utf8').slice(0, 64)}' holds a vector posting list; appending bytes that are not item batches would make it unreadable (use VADD and VDEL)`,
    );
  }
  const mismatch = appendShapeMismatch(head, bytes);
  if (mismatch) throw invalidArgument(`key '${key.toString('utf8').slice(0, 64)}': ${mismatch} (search would skip them)`);
}

/**
 * `checkAppend` for every pair of a multi-append, all before anything is written (a refusal
 * refuses the whole call). `headOf(i)` reads the start of pair i's key's value as stored
 * before the call (it may return a view valid until the next read, and may skip the read,
 * returning null, for an empty append); a key with no value yet
 * starts with the bytes the first earlier pair of the call appends to it.
 */
export function checkAppends(pairs: readonly KvPair[], headOf: (i: number) => Buffer | null): void {
  let firsts: Map<string, Buffer> | null = null;
  for (let i = 0; i < pairs.length; i++) {
    const { key, value } = pairs[i]!;
    const head = headOf(i) ?? firsts?.get(key.toString('latin1')) ?? null;
    checkAppend(key, head, value);
    if (head === null && value.length > 0) (firsts ??= new Map()).set(key.toString('latin1'), value);
  }
}

/**
 * What a VADD appends to a list whose live items are `live`: the encoded batch, preceded by a
 * delete batch of the ids it replaces, so the old copies are dead by a delete (search and
 * reads skip them, and compaction removes them). Also the live count once it is applied;
 * `live` is updated to it.
 */
export function vaddSegment(key: Buffer, live: LiveItems, batchBytes: Buffer): { bytes: Buffer; count: number } {
  const batches = listBatches(key, [batchBytes]);
  const replaced: Buffer[] = [];
  const seen = new Set<string>();
  for (const b of batches) {
    for (let i = 0; i < b.count; i++) {
      const id = b.ids(i);
      const name = id.toString('latin1');
      if (!seen.has(name) && live.has(id)) replaced.push(id);
      seen.add(name);
    }
  }
  for (const b of batches) live.add(b);
  const bytes = replaced.length > 0 ? Buffer.concat([encodeDeleteBatch(replaced), batchBytes]) : batchBytes;
  return { bytes, count: live.count };
}

/** Items start..stop, inclusive, negative from the end (LRANGE semantics). */
export function itemRange(
  key: Buffer,
  pieces: Buffer[] | null,
  start: number,
  stop: number,
  options: { withVectors?: boolean; withPayloads?: boolean } = {},
): VectorItem[] {
  if (!Number.isInteger(start) || !Number.isInteger(stop)) throw invalidArgument('start and stop must be integers');
  if (!pieces) return [];
  const items = liveItems(listBatches(key, pieces));
  const n = items.length;
  let s = start < 0 ? n + start : start;
  let e = stop < 0 ? n + stop : stop;
  if (s < 0) s = 0;
  if (e >= n) e = n - 1;
  if (s > e) return [];
  return items.slice(s, e + 1).map((ref) => ({
    id: Buffer.from(ref.batch.ids(ref.index)),
    ...(options.withVectors ? { vector: itemVector(ref, FLOAT16_TABLE) } : {}),
    ...(options.withPayloads ? { payload: ref.batch.payload(ref.index) ? Buffer.from(ref.batch.payload(ref.index)!) : null } : {}),
  }));
}

