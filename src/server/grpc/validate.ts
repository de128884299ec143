/**
 * Checks of RawKV request fields, done before the coordinator is called. Each failure is a
 * KvError whose message names the field and, for sizes, the limit in common/limits.ts.
 */
import { KvError, invalidArgument, overLimit } from '../../common/errors.js';
import type { Limits } from '../../common/limits.js';

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
