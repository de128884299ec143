/**
 * Operating errors: typed values with a stable code, mapped once to RESP error replies and
 * gRPC status codes (see server/). Programmer errors are assertions (`assert`) and crash.
 */

/** Every operating error code; stable across versions (clients and peers see them). */
export const errorCodes = [
  'KEY_TOO_LARGE',
  'VALUE_TOO_LARGE',
  'FIELD_TOO_LARGE',
  'BATCH_TOO_LARGE',
  'INVALID_ARGUMENT',
  'NOT_FOUND',
  'WRONG_TYPE',
  'OVERLOADED',
  /** The data disk is full: writes are refused until space is freed (reads go on). */
  'DISK_FULL',
  'UNAVAILABLE',
  'QUORUM_NOT_MET',
  /** A clock too far from the cluster's: this member does not coordinate writes, or a version is from too far ahead. */
  'CLOCK_SKEW',
  /** The sender's placement table is older than this member's: refresh it and retry. */
  'STALE_EPOCH',
  'PROTOCOL',
  'LIMIT_EXCEEDED',
  'INTERNAL',
] as const;

export type ErrorCode = (typeof errorCodes)[number];

const knownCodes: ReadonlySet<string> = new Set(errorCodes);

/** True for a code this version knows (a peer's error reply may name one it does not). */
export function isErrorCode(code: string): code is ErrorCode {
  return knownCodes.has(code);
}

/** Codes after which the same request may succeed if retried (DISK_FULL: once space is freed). */
const retryableCodes: ReadonlySet<ErrorCode> = new Set(['OVERLOADED', 'DISK_FULL', 'UNAVAILABLE', 'QUORUM_NOT_MET', 'CLOCK_SKEW', 'STALE_EPOCH']);

/** An error a client caused or may retry; its message is shown to the client as it is. */
export class KvError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'KvError';
    this.code = code;
  }

  /** True when the client may retry the same request later. */
  get retryable(): boolean {
    return retryableCodes.has(this.code);
  }
}

/** Error for a size over a named limit, e.g. `key is 2048 bytes, over limit 'keyBytesMax' (1024)`. */
export function overLimit(code: ErrorCode, what: string, size: number, limitName: string, limit: number): KvError {
  return new KvError(code, `${what} is ${size} bytes, over limit '${limitName}' (${limit})`);
}

export function invalidArgument(message: string): KvError {
  return new KvError('INVALID_ARGUMENT', message);
}

export function overloaded(message: string): KvError {
  return new KvError('OVERLOADED', message);
}
