/** Input checks shared by every coordinator: each names the limit it enforces. */
import type { Limits } from '../common/limits.js';
import { KvError, invalidArgument, overLimit } from '../common/errors.js';
import type { ExpireCondition } from './api.js';

export class InputChecks {
  constructor(readonly limits: Limits) {}

  key(key: Buffer): void {
    if (key.length === 0) throw invalidArgument('key must not be empty');
    if (key.length > this.limits.keyBytesMax) {
      throw overLimit('KEY_TOO_LARGE', 'key', key.length, 'keyBytesMax', this.limits.keyBytesMax);
    }
  }

  value(value: Buffer): void {
    if (value.length > this.limits.valueBytesMax) {
      throw overLimit('VALUE_TOO_LARGE', 'value', value.length, 'valueBytesMax', this.limits.valueBytesMax);
    }
  }

  field(name: Buffer): void {
    if (name.length > this.limits.fieldBytesMax) {
      throw overLimit('FIELD_TOO_LARGE', 'field name', name.length, 'fieldBytesMax', this.limits.fieldBytesMax);
    }
  }

  batch(n: number, what: string): void {
    if (n > this.limits.batchKeysMax) {
      throw new KvError('BATCH_TOO_LARGE', `${what} has ${n} keys, over limit 'batchKeysMax' (${this.limits.batchKeysMax})`);
    }
  }

  namespace(ns: string): void {
    const bytes = Buffer.byteLength(ns);
    if (bytes === 0) throw invalidArgument('namespace must not be empty');
    if (bytes > this.limits.namespaceBytesMax) {
      throw new KvError('INVALID_ARGUMENT', `namespace is ${bytes} bytes, over limit 'namespaceBytesMax' (${this.limits.namespaceBytesMax})`);
    }
  }

  ttlMs(ttlMs: number): void {
    if (!(ttlMs > 0) || !Number.isFinite(ttlMs)) throw invalidArgument(`invalid expire time: ${ttlMs} ms`);
  }

  rangeLimit(limit: number): void {
    if (!(limit > 0)) throw invalidArgument('limit must be positive');
    if (limit > this.limits.scanLimitMax) {
      throw invalidArgument(`limit ${limit} is over limit 'scanLimitMax' (${this.limits.scanLimitMax})`);
    }
  }

  rangeBounds(start: Buffer, end: Buffer | null): void {
    if (end && end.length > 0 && Buffer.compare(start, end) > 0) throw invalidArgument('start key must not be after end key');
  }
}

/** Whether EXPIRE's NX|XX|GT|LT condition lets a new expiry `atMs` replace `current` (0 = none). */
export function expiryConditionHolds(condition: ExpireCondition | undefined, current: number, atMs: number): boolean {
  switch (condition) {
    case undefined:
      return true;
    case 'NX':
      return current === 0;
    case 'XX':
      return current > 0;
    case 'GT':
      // A key without expiry counts as expiring never: nothing is greater.
      return current > 0 && atMs > current;
    case 'LT':
      return current === 0 || atMs < current;
  }
}
