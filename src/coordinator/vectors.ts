/** Vector-list helpers shared by the coordinators: encoding a batch and reading items. */
import { invalidArgument } from '../common/errors.js';
import { encodeDeleteBatch, encodeItemBatch, FLOAT16_TABLE, type ItemBatchInput } from '../compute/vector-items.js';
import { itemVector, listBatches, liveItems } from '../compute/vector-search.js';
import type { VectorItem } from './api.js';

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

export function itemCount(key: Buffer, pieces: Buffer[] | null): number {
  return pieces ? liveItems(listBatches(key, pieces)).length : 0;
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

