/**
 * Checks of RawKV request fields, done before the coordinator is called. Each failure is a
 * KvError whose message names the field and, for sizes, the limit in common/limits.ts.
 */
import { KvError, invalidArgument, overLimit } from '../../common/errors.js';
import type { Limits } from '../../common/limits.js';
import { ITEM_ID_BYTES_MAX } from '../../compute/index.js';

const emptyBuffer = Buffer.alloc(0);

/** The namespace a request's `cf` names: "" is "default". */
export function namespaceOf(cf: string, limits: Limits): string {
  if (cf === '') return 'default';
  const size = Buffer.byteLength(cf);
  if (size > limits.namespaceBytesMax) {
    throw overLimit('LIMIT_EXCEEDED', 'cf', size, 'namespaceBytesMax', limits.namespaceBytesMax);
  }
  return cf;
}

/** Prefixes an error with where it was found in a batch, e.g. `pairs[3]: ...`. */
function at(label: string | undefined, error: KvError): KvError {
  return label === undefined ? error : new KvError(error.code, `${label}: ${error.message}`);
}

/** A key: 1 to keyBytesMax bytes. */
export function checkKey(key: Buffer, limits: Limits, label?: string): Buffer {
  if (key.length === 0) throw at(label, invalidArgument('key must not be empty'));
  if (key.length > limits.keyBytesMax) {
    throw at(label, overLimit('KEY_TOO_LARGE', 'key', key.length, 'keyBytesMax', limits.keyBytesMax));
  }
  return key;
}

/** The bytes one write carries: at most valueBytesMax. */
export function checkValue(value: Buffer, limits: Limits, label?: string): Buffer {
  if (value.length > limits.valueBytesMax) {
    throw at(label, overLimit('VALUE_TOO_LARGE', 'value', value.length, 'valueBytesMax', limits.valueBytesMax));
  }
  return value;
}

/** The number of keys of a batch call: at most batchKeysMax. */
export function checkBatch(count: number, limits: Limits): void {
  if (count > limits.batchKeysMax) {
    throw new KvError(
      'BATCH_TOO_LARGE',
      `batch has ${count} keys, over limit 'batchKeysMax' (${limits.batchKeysMax})`,
    );
  }
}

/**
 * The length of a list field that must hold 1 to batchKeysMax entries (field names, item
 * ids), checked before any entry is looked at.
 */
export function checkEntries(name: string, count: number, limits: Limits): void {
  if (count === 0) throw invalidArgument(`${name} must not be empty`);
  if (count > limits.batchKeysMax) {
    throw new KvError('BATCH_TOO_LARGE', `${name} has ${count} entries, over limit 'batchKeysMax' (${limits.batchKeysMax})`);
  }
}

/** A field name: 0 to fieldBytesMax bytes (Redis allows an empty field name, and so does the store). */
export function checkField(name: Buffer, limits: Limits, label?: string): Buffer {
  if (name.length > limits.fieldBytesMax) {
    throw at(label, overLimit('FIELD_TOO_LARGE', 'field', name.length, 'fieldBytesMax', limits.fieldBytesMax));
  }
  return name;
}

/** A vector item id: 1 to ITEM_ID_BYTES_MAX bytes (its length is one byte in the list format). */
export function checkItemId(id: Buffer, label?: string): Buffer {
  if (id.length === 0) throw at(label, invalidArgument('id must not be empty'));
  if (id.length > ITEM_ID_BYTES_MAX) {
    throw at(label, overLimit('LIMIT_EXCEEDED', 'id', id.length, 'ITEM_ID_BYTES_MAX', ITEM_ID_BYTES_MAX));
  }
  return id;
}

/** A list index (VectorRange start/stop): any integer; negative counts from the end. */
export function checkIndex(name: string, index: number): number {
  if (!Number.isSafeInteger(index)) {
    throw invalidArgument(`${name} must be an integer from ${Number.MIN_SAFE_INTEGER} to ${Number.MAX_SAFE_INTEGER}, got ${index}`);
  }
  return index;
}

/**
 * A time of RawExpire (`ttl_ms` or `at_ms`): 1 or more, and the expiry time it makes must be
 * a safe integer. 0 is refused so that a value left unset cannot delete a key.
 */
export function checkExpiryMs(name: 'ttl_ms' | 'at_ms', ms: number, nowMs: number): number {
  const atMs = name === 'ttl_ms' ? nowMs + ms : ms;
  if (!Number.isSafeInteger(ms) || ms < 1 || !Number.isSafeInteger(atMs)) {
    const max = name === 'ttl_ms' ? Number.MAX_SAFE_INTEGER - nowMs : Number.MAX_SAFE_INTEGER;
    throw invalidArgument(`${name} must be an integer from 1 to ${max}, got ${ms}`);
  }
  return atMs;
}

/** A time to live in milliseconds; 0 means none. */
export function checkTtlMs(ttlMs: number): number {
  if (!Number.isSafeInteger(ttlMs) || ttlMs < 0) {
    throw invalidArgument(`ttl_ms must be an integer from 0 to ${Number.MAX_SAFE_INTEGER}, got ${ttlMs}`);
  }
  return ttlMs;
}

/** A scan limit: 1 to scanLimitMax. */
export function checkScanLimit(limit: number, limits: Limits): number {
  if (limit === 0) throw invalidArgument('limit must be at least 1');
  if (limit > limits.scanLimitMax) {
    throw new KvError('LIMIT_EXCEEDED', `limit is ${limit}, over limit 'scanLimitMax' (${limits.scanLimitMax})`);
  }
  return limit;
}

/** A range [start, end): empty bounds are open; bounds are key-sized; start must not pass end. */
export function checkRange(start: Buffer, end: Buffer, limits: Limits): void {
  if (start.length > limits.keyBytesMax) {
    throw overLimit('KEY_TOO_LARGE', 'start_key', start.length, 'keyBytesMax', limits.keyBytesMax);
  }
  if (end.length > limits.keyBytesMax) {
    throw overLimit('KEY_TOO_LARGE', 'end_key', end.length, 'keyBytesMax', limits.keyBytesMax);
  }
  if (start.length > 0 && end.length > 0 && Buffer.compare(start, end) > 0) {
    throw invalidArgument('start_key must not be greater than end_key');
  }
}

/** A bytes field as a Buffer (proto-loader decodes bytes to Buffer; absent fields to empty). */
export function bytesOf(field: Buffer | Uint8Array | null | undefined): Buffer {
  if (field === null || field === undefined) return emptyBuffer;
  return Buffer.isBuffer(field) ? field : Buffer.from(field.buffer, field.byteOffset, field.byteLength);
}
