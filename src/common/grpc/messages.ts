/**
 * TypeScript shapes of the `ragkv.v1.RawKV` messages as @grpc/proto-loader decodes them with
 * `protoLoaderOptions` (every field present, bytes as Buffer, 64-bit integers as number).
 * The .proto file (proto/ragkv/v1/rawkv.proto) is the source of truth; keep these in step.
 */

/** Consistency enum values as proto-loader decodes them (enums: String). */
export type ConsistencyName = 'CONSISTENCY_DEFAULT' | 'ONE' | 'QUORUM' | 'ALL';

export interface KvPairMessage {
  key: Buffer;
  value: Buffer;
}

export interface RawGetRequest {
  cf: string;
  consistency?: ConsistencyName;
  key: Buffer;
}
export interface RawGetResponse {
  value: Buffer;
  not_found: boolean;
}

export interface RawPutRequest {
  cf: string;
  consistency?: ConsistencyName;
  key: Buffer;
  value: Buffer;
  ttl_ms: number;
}
export type RawPutResponse = Record<string, never>;

export interface RawDeleteRequest {
  cf: string;
  consistency?: ConsistencyName;
  key: Buffer;
}
export interface RawDeleteResponse {
  deleted: boolean;
}

export interface RawScanRequest {
  cf: string;
  consistency?: ConsistencyName;
  start_key: Buffer;
  end_key: Buffer;
  limit: number;
  key_only: boolean;
  reverse: boolean;
}
export interface RawScanResponse {
  kvs: KvPairMessage[];
}

export interface RawBatchGetRequest {
  cf: string;
  consistency?: ConsistencyName;
  keys: Buffer[];
}
export interface RawBatchGetResponse {
  pairs: KvPairMessage[];
}

export interface RawBatchPutRequest {
  cf: string;
  consistency?: ConsistencyName;
  pairs: KvPairMessage[];
  ttl_ms: number;
}
export type RawBatchPutResponse = Record<string, never>;

export interface RawAppendRequest {
  cf: string;
  consistency?: ConsistencyName;
  key: Buffer;
  value: Buffer;
}
export interface RawAppendResponse {
  new_size: number;
}

export interface RawBatchAppendRequest {
  cf: string;
  consistency?: ConsistencyName;
  pairs: KvPairMessage[];
}
export interface RawBatchAppendResponse {
  new_sizes: number[];
}

export interface RawDeleteRangeRequest {
  cf: string;
  consistency?: ConsistencyName;
  start_key: Buffer;
  end_key: Buffer;
}
export interface RawDeleteRangeResponse {
  deleted: number;
}

export interface VectorItemMessage {
  id: Buffer;
  values: number[];
  /** Empty (or absent in a request) when the item has none. */
  payload?: Buffer;
}
export interface VectorAppendRequest {
  cf: string;
  consistency?: ConsistencyName;
  key: Buffer;
  type: 'ELEMENT_TYPE_UNSPECIFIED' | 'FLOAT32' | 'FLOAT16' | 'INT8' | 'UINT8';
  dim: number;
  items: VectorItemMessage[];
}
export interface VectorAppendResponse {
  count: number;
}
export interface VectorSearchRequestMessage {
  cf: string;
  consistency?: ConsistencyName;
  keys: Buffer[];
  query: number[];
  k: number;
  metric: 'METRIC_UNSPECIFIED' | 'L2' | 'IP' | 'COSINE';
  filter: { field: Buffer; value: Buffer } | null;
  payload_prefix: Buffer;
  with_payloads: boolean;
  /** Every list's copy of an id, not each id once at its best. */
  all_copies?: boolean;
}
export interface VectorHitMessage {
  key: Buffer;
  id: Buffer;
  score: number;
  payload: Buffer;
}
export interface VectorSearchResponseMessage {
  hits: VectorHitMessage[];
  degraded: boolean;
  skipped_keys: Buffer[];
}

export interface VectorDeleteRequest {
  cf: string;
  consistency?: ConsistencyName;
  key: Buffer;
  ids: Buffer[];
}
export interface VectorDeleteResponse {
  count: number;
}

export interface VectorRangeRequest {
  cf: string;
  consistency?: ConsistencyName;
  key: Buffer;
  start: number;
  stop: number;
  with_vectors: boolean;
  with_payloads: boolean;
}
export interface VectorRangeResponse {
  /** `values` empty unless with_vectors, `payload` empty unless with_payloads. */
  items: Required<VectorItemMessage>[];
}

export interface VectorCountRequest {
  cf: string;
  consistency?: ConsistencyName;
  key: Buffer;
}
export interface VectorCountResponse {
  count: number;
}

export interface FieldPairMessage {
  field: Buffer;
  value: Buffer;
}

export interface FieldPutRequest {
  cf: string;
  consistency?: ConsistencyName;
  key: Buffer;
  fields: FieldPairMessage[];
}
export interface FieldPutResponse {
  added: number;
}

export interface FieldGetRequest {
  cf: string;
  consistency?: ConsistencyName;
  key: Buffer;
  field: Buffer;
}
export interface FieldGetResponse {
  value: Buffer;
  not_found: boolean;
}

export interface FieldBatchGetRequest {
  cf: string;
  consistency?: ConsistencyName;
  key: Buffer;
  fields: Buffer[];
}
export interface FieldBatchGetResponse {
  fields: FieldPairMessage[];
}

export interface FieldGetAllRequest {
  cf: string;
  consistency?: ConsistencyName;
  key: Buffer;
}
export interface FieldGetAllResponse {
  fields: FieldPairMessage[];
}

export interface FieldDeleteRequest {
  cf: string;
  consistency?: ConsistencyName;
  key: Buffer;
  fields: Buffer[];
}
export interface FieldDeleteResponse {
  deleted: number;
}

export interface FieldCountRequest {
  cf: string;
  consistency?: ConsistencyName;
  key: Buffer;
}
export interface FieldCountResponse {
  count: number;
}

export interface FieldExistsRequest {
  cf: string;
  consistency?: ConsistencyName;
  key: Buffer;
  field: Buffer;
}
export interface FieldExistsResponse {
  exists: boolean;
}

/** ExpireCondition enum values as proto-loader decodes them. */
export type ExpireConditionName = 'EXPIRE_ALWAYS' | 'NX' | 'XX' | 'GT' | 'LT';

/**
 * The `expiry` oneof: proto-loader (oneofs: true) names the member that was set in `expiry`
 * and leaves the others undefined (defaults do not apply to oneof members).
 */
export interface RawExpireRequest {
  cf: string;
  consistency?: ConsistencyName;
  key: Buffer;
  expiry?: 'ttl_ms' | 'at_ms' | 'persist';
  ttl_ms?: number;
  at_ms?: number;
  persist?: boolean;
  condition: ExpireConditionName;
}
export interface RawExpireResponse {
  applied: boolean;
}

export interface RawTtlRequest {
  cf: string;
  consistency?: ConsistencyName;
  key: Buffer;
}
export interface RawTtlResponse {
  /** The key does not exist (Redis's -2). */
  not_found: boolean;
  /** The key exists and expires; false with not_found false: no expiry (Redis's -1). */
  expires: boolean;
  /** Milliseconds left when `expires`, else 0. */
  ttl_ms: number;
}

/** Request and response type of every RawKV method, by the method's name in the .proto. */
/**
 * Every request and response carries the client's session token (field 11 in requests, 15
 * in responses): a reply's token, passed on the next call, makes that call read the
 * client's own writes and nothing older than it already read. Empty or absent: no session.
 */
export interface SessionCarrier {
  session_token?: Buffer;
}

type WithSession<T> = { request: T extends { request: infer Q } ? Q & SessionCarrier : never; response: T extends { response: infer R } ? R & SessionCarrier : never };

interface RawKvCalls {
  RawGet: { request: RawGetRequest; response: RawGetResponse };
  RawPut: { request: RawPutRequest; response: RawPutResponse };
  RawDelete: { request: RawDeleteRequest; response: RawDeleteResponse };
  RawScan: { request: RawScanRequest; response: RawScanResponse };
  RawBatchGet: { request: RawBatchGetRequest; response: RawBatchGetResponse };
  RawBatchPut: { request: RawBatchPutRequest; response: RawBatchPutResponse };
  RawAppend: { request: RawAppendRequest; response: RawAppendResponse };
  RawBatchAppend: { request: RawBatchAppendRequest; response: RawBatchAppendResponse };
  RawDeleteRange: { request: RawDeleteRangeRequest; response: RawDeleteRangeResponse };
  VectorAppend: { request: VectorAppendRequest; response: VectorAppendResponse };
  VectorSearch: { request: VectorSearchRequestMessage; response: VectorSearchResponseMessage };
  VectorDelete: { request: VectorDeleteRequest; response: VectorDeleteResponse };
  VectorRange: { request: VectorRangeRequest; response: VectorRangeResponse };
  VectorCount: { request: VectorCountRequest; response: VectorCountResponse };
  FieldPut: { request: FieldPutRequest; response: FieldPutResponse };
  FieldGet: { request: FieldGetRequest; response: FieldGetResponse };
  FieldBatchGet: { request: FieldBatchGetRequest; response: FieldBatchGetResponse };
  FieldGetAll: { request: FieldGetAllRequest; response: FieldGetAllResponse };
  FieldDelete: { request: FieldDeleteRequest; response: FieldDeleteResponse };
  FieldCount: { request: FieldCountRequest; response: FieldCountResponse };
  FieldExists: { request: FieldExistsRequest; response: FieldExistsResponse };
  RawExpire: { request: RawExpireRequest; response: RawExpireResponse };
  RawTtl: { request: RawTtlRequest; response: RawTtlResponse };
}

export type RawKvMessages = { [M in keyof RawKvCalls]: WithSession<RawKvCalls[M]> };

export type RawKvMethod = keyof RawKvMessages;

/** The method names, in .proto order. */
export const rawKvMethods: readonly RawKvMethod[] = [
  'RawGet',
  'RawPut',
  'RawDelete',
  'RawScan',
  'RawBatchGet',
  'RawBatchPut',
  'RawAppend',
  'RawBatchAppend',
  'RawDeleteRange',
  'VectorAppend',
  'VectorSearch',
  'VectorDelete',
  'VectorRange',
  'VectorCount',
  'FieldPut',
  'FieldGet',
  'FieldBatchGet',
  'FieldGetAll',
  'FieldDelete',
  'FieldCount',
  'FieldExists',
  'RawExpire',
  'RawTtl',
];
