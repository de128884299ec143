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

/** Request and response type of every RawKV method, by the method's name in the .proto. */
export interface RawKvMessages {
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
}

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
];
