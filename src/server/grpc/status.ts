/** The one mapping from ragkv errors to gRPC status codes. */
import { status } from '@grpc/grpc-js';
import { KvError, type ErrorCode } from '../../common/errors.js';

export interface GrpcFailure {
  code: status;
  /** Message sent to the client: the KvError message, or a generic text for internal errors. */
  details: string;
  /** Stable code for metrics and logs (the KvError code, or INTERNAL). */
  errorCode: ErrorCode;
  /** True when this is a server bug that must be logged (the client never sees the cause). */
  internal: boolean;
}

const statusByCode: Readonly<Record<ErrorCode, status>> = {
  KEY_TOO_LARGE: status.INVALID_ARGUMENT,
  VALUE_TOO_LARGE: status.INVALID_ARGUMENT,
  FIELD_TOO_LARGE: status.INVALID_ARGUMENT,
  BATCH_TOO_LARGE: status.INVALID_ARGUMENT,
  INVALID_ARGUMENT: status.INVALID_ARGUMENT,
  PROTOCOL: status.INVALID_ARGUMENT,
  LIMIT_EXCEEDED: status.INVALID_ARGUMENT,
  NOT_FOUND: status.NOT_FOUND,
  // The key holds something the call cannot act on: the client's doing, not a server bug.
  WRONG_TYPE: status.FAILED_PRECONDITION,
  OVERLOADED: status.RESOURCE_EXHAUSTED,
  // gRPC's own words: "perhaps the entire file system is out of space".
  DISK_FULL: status.RESOURCE_EXHAUSTED,
  UNAVAILABLE: status.UNAVAILABLE,
  QUORUM_NOT_MET: status.UNAVAILABLE,
  // This member's clock is off: another member can take the write.
  CLOCK_SKEW: status.UNAVAILABLE,
  // Placement moved under the request: retrying reaches the new replicas.
  STALE_EPOCH: status.UNAVAILABLE,
  INTERNAL: status.INTERNAL,
};

/** Maps any thrown value to the status a gRPC call ends with. Never exposes a stack. */
export function toGrpcFailure(error: unknown): GrpcFailure {
  if (error instanceof KvError && error.code !== 'INTERNAL') {
    return { code: statusByCode[error.code], details: error.message, errorCode: error.code, internal: false };
  }
  return { code: status.INTERNAL, details: 'internal error (see server log)', errorCode: 'INTERNAL', internal: true };
}
