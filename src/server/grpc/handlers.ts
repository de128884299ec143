/** The RawKV calls: decode, validate, call the coordinator's KvApi, encode the reply. */
import type { UntypedServiceImplementation, handleUnaryCall } from '@grpc/grpc-js';
import { invalidArgument } from '../../common/errors.js';
import type { Limits } from '../../common/limits.js';
import type { KvApi, KvPair } from '../../coordinator/api.js';
import type { RequestMetrics } from '../metrics.js';
import type { KvPairMessage, RawKvMessages, RawKvMethod } from '../../common/grpc/messages.js';
import { toGrpcFailure } from './status.js';
import { SEARCH_K_MAX, type ElementType } from '../../compute/index.js';

const elementTypeOf: { [name: string]: ElementType | undefined } = { FLOAT32: 'float32', FLOAT16: 'float16', INT8: 'int8', UINT8: 'uint8' };
import {
  bytesOf,
  checkBatch,
  checkKey,
  checkRange,
  checkScanLimit,
  checkTtlMs,
  checkValue,
  namespaceOf,
} from './validate.js';

export interface GrpcLogger {
  info: Function;
  warn: Function;
  error: Function;
}

export interface RawKvContext {
  kv: KvApi;
  limits: Limits;
  logger: GrpcLogger;
  metrics: RequestMetrics;
}

type Request<M extends RawKvMethod> = RawKvMessages[M]['request'];
type Response<M extends RawKvMethod> = RawKvMessages[M]['response'];
type Run<M extends RawKvMethod> = (request: Request<M>) => Response<M> | Promise<Response<M>>;

const emptyBuffer = Buffer.alloc(0);
const nanosecondsPerSecond = 1e9;

/** Wraps one call: times it, reports it to metrics, maps a failure to a gRPC status. */
function unary<M extends RawKvMethod>(
  method: M,
  context: RawKvContext,
  run: Run<M>,
): handleUnaryCall<Request<M>, Response<M>> {
  return (call, callback) => {
    const startedNs = process.hrtime.bigint();
    const seconds = () => Number(process.hrtime.bigint() - startedNs) / nanosecondsPerSecond;
    // An async wrapper turns a synchronous throw (reads, validation) into a rejection.
    (async () => run(call.request))().then(
      (response) => {
        context.metrics.observe('grpc', method, seconds());
        callback(null, response);
      },
      (error: unknown) => {
        const failure = toGrpcFailure(error);
        context.metrics.observe('grpc', method, seconds(), failure.errorCode);
        if (failure.internal) {
          context.logger.error({ err: error, method, peer: call.getPeer() }, 'gRPC call failed');
        }
        callback({ code: failure.code, details: failure.details }, null);
      },
    );
  };
}

/** Validated key/value pairs of a batch write, labelled by index in errors. */
function pairsOf(pairs: KvPairMessage[], limits: Limits): KvPair[] {
  checkBatch(pairs.length, limits);
  return pairs.map((pair, index) => ({
    key: checkKey(bytesOf(pair.key), limits, `pairs[${index}]`),
    value: checkValue(bytesOf(pair.value), limits, `pairs[${index}]`),
  }));
}

/** Builds the RawKV service implementation over a KvApi. */
export function createRawKvHandlers(context: RawKvContext): UntypedServiceImplementation {
  const { kv, limits } = context;
  // One view per level, made once: a request naming a level must not allocate for it.
  const byLevel = new Map<string, KvApi>(
    (['ONE', 'QUORUM', 'ALL'] as const).map((level) => [level, kv.withConsistency({ read: level, write: level })]),
  );
  const kvOf = (request: { consistency?: string }): KvApi =>
    (request.consistency && byLevel.get(request.consistency)) || kv;
  const handlers: { [M in RawKvMethod]: handleUnaryCall<Request<M>, Response<M>> } = {
    RawGet: unary('RawGet', context, async (request) => {
      const value = await kvOf(request).get(namespaceOf(request.cf, limits), checkKey(bytesOf(request.key), limits));
      return value === null ? { value: emptyBuffer, not_found: true } : { value, not_found: false };
    }),

    RawPut: unary('RawPut', context, async (request) => {
      const ns = namespaceOf(request.cf, limits);
      const key = checkKey(bytesOf(request.key), limits);
      const value = checkValue(bytesOf(request.value), limits);
      const ttlMs = checkTtlMs(request.ttl_ms);
      await kvOf(request).set(ns, key, value, ttlMs > 0 ? { ttlMs } : {});
      return {};
    }),

    RawDelete: unary('RawDelete', context, async (request) => {
      const ns = namespaceOf(request.cf, limits);
      const existed = await kvOf(request).del(ns, [checkKey(bytesOf(request.key), limits)]);
      return { deleted: existed > 0 };
    }),

    RawScan: unary('RawScan', context, async (request) => {
      const ns = namespaceOf(request.cf, limits);
      const limit = checkScanLimit(request.limit, limits);
      const start = bytesOf(request.start_key);
      const end = bytesOf(request.end_key);
      checkRange(start, end, limits);
      const keyOnly = request.key_only;
      const pairs = await kvOf(request).range(ns, { start, end, limit, keyOnly, reverse: request.reverse });
      return { kvs: keyOnly ? pairs.map((pair) => ({ key: pair.key, value: emptyBuffer })) : pairs };
    }),

    RawBatchGet: unary('RawBatchGet', context, async (request) => {
      const ns = namespaceOf(request.cf, limits);
      checkBatch(request.keys.length, limits);
      const keys = request.keys.map((key, index) => checkKey(bytesOf(key), limits, `keys[${index}]`));
      const values = await kvOf(request).getMany(ns, keys);
      const pairs: KvPairMessage[] = [];
      values.forEach((value, index) => {
        if (value !== null) pairs.push({ key: keys[index]!, value });
      });
      return { pairs };
    }),

    RawBatchPut: unary('RawBatchPut', context, async (request) => {
      const ns = namespaceOf(request.cf, limits);
      const pairs = pairsOf(request.pairs, limits);
      const ttlMs = checkTtlMs(request.ttl_ms);
      await kvOf(request).setMany(ns, pairs, ttlMs > 0 ? { ttlMs } : {});
      return {};
    }),

    RawAppend: unary('RawAppend', context, async (request) => {
      const ns = namespaceOf(request.cf, limits);
      const key = checkKey(bytesOf(request.key), limits);
      const newSize = await kvOf(request).append(ns, key, checkValue(bytesOf(request.value), limits));
      return { new_size: newSize };
    }),

    RawBatchAppend: unary('RawBatchAppend', context, async (request) => {
      const ns = namespaceOf(request.cf, limits);
      const newSizes = await kvOf(request).appendMany(ns, pairsOf(request.pairs, limits));
      return { new_sizes: newSizes };
    }),

    RawDeleteRange: unary('RawDeleteRange', context, async (request) => {
      const ns = namespaceOf(request.cf, limits);
      const start = bytesOf(request.start_key);
      const end = bytesOf(request.end_key);
      if (end.length === 0) {
        throw invalidArgument('end_key must not be empty (a delete range needs an upper bound)');
      }
      checkRange(start, end, limits);
      return { deleted: await kvOf(request).deleteRange(ns, start, end) };
    }),

    VectorAppend: unary('VectorAppend', context, async (request) => {
      const ns = namespaceOf(request.cf, limits);
      const key = checkKey(bytesOf(request.key), limits);
      const type = elementTypeOf[request.type];
      if (!type) throw invalidArgument('type must be FLOAT32, FLOAT16, INT8 or UINT8');
      checkBatch(request.items.length, limits);
      const items = request.items.map((it) => ({
        id: bytesOf(it.id),
        vector: it.values,
        ...(bytesOf(it.payload).length > 0 ? { payload: bytesOf(it.payload) } : {}),
      }));
      return { count: await kvOf(request).vadd(ns, key, { type, dim: request.dim, items }) };
    }),

    VectorSearch: unary('VectorSearch', context, async (request) => {
      const ns = namespaceOf(request.cf, limits);
      checkBatch(request.keys.length, limits);
      const keys = request.keys.map((key, index) => checkKey(bytesOf(key), limits, `keys[${index}]`));
      if (request.metric === 'METRIC_UNSPECIFIED') throw invalidArgument('metric must be L2, IP or COSINE');
      if (!(request.k >= 1 && request.k <= SEARCH_K_MAX)) throw invalidArgument(`k must be from 1 to ${SEARCH_K_MAX}, got ${request.k}`);
      if (request.query.length === 0) throw invalidArgument('query must not be empty');
      const prefix = bytesOf(request.payload_prefix);
      const result = await kvOf(request).vsearch(ns, {
        keys,
        query: Float32Array.from(request.query),
        k: request.k,
        metric: request.metric,
        withPayloads: request.with_payloads,
        allCopies: request.all_copies === true,
        ...(request.filter ? { filter: { field: bytesOf(request.filter.field), value: bytesOf(request.filter.value) } } : {}),
        ...(prefix.length > 0 ? { payloadPrefix: prefix } : {}),
      });
      return {
        hits: result.hits.map((h) => ({ key: h.key, id: h.id, score: h.score, payload: h.payload ?? emptyBuffer })),
        degraded: result.degraded,
        skipped_keys: result.skippedKeys,
      };
    }),
  };
  return handlers as unknown as UntypedServiceImplementation;
}
