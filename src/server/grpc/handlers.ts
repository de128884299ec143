/** The RawKV calls: decode, validate, call the coordinator's KvApi, encode the reply. */
import type { UntypedServiceImplementation, handleUnaryCall } from '@grpc/grpc-js';
import { invalidArgument } from '../../common/errors.js';
import type { Limits } from '../../common/limits.js';
import type { ExpireCondition, KvApi, KvPair } from '../../coordinator/api.js';
import { Session } from '../../coordinator/session.js';
import type { RequestMetrics } from '../metrics.js';
import type { ExpireConditionName, FieldPairMessage, KvPairMessage, RawKvMessages, RawKvMethod } from '../../common/grpc/messages.js';
import { toGrpcFailure } from './status.js';
import { SEARCH_K_MAX, type ElementType } from '../../compute/index.js';

const elementTypeOf: { [name: string]: ElementType | undefined } = { FLOAT32: 'float32', FLOAT16: 'float16', INT8: 'int8', UINT8: 'uint8' };
import {
  bytesOf,
  checkBatch,
  checkEntries,
  checkExpiryMs,
  checkField,
  checkIndex,
  checkItemId,
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
type Run<M extends RawKvMethod> = (request: Request<M>, kv: KvApi) => Response<M> | Promise<Response<M>>;

const emptyBuffer = Buffer.alloc(0);
const nanosecondsPerSecond = 1e9;

/** The store at a request's level, from views made once per level. */
type KvOf = (request: { consistency?: string }) => KvApi;

/**
 * Wraps one call: opens its session from the request's token, times it, reports it to
 * metrics, puts the session's new token in the reply, maps a failure to a gRPC status.
 */
function unary<M extends RawKvMethod>(
  method: M,
  context: RawKvContext,
  kvOf: KvOf,
  run: Run<M>,
): handleUnaryCall<Request<M>, Response<M>> {
  const { limits } = context;
  return (call, callback) => {
    const startedNs = process.hrtime.bigint();
    const seconds = () => Number(process.hrtime.bigint() - startedNs) / nanosecondsPerSecond;
    // An async wrapper turns a synchronous throw (reads, validation) into a rejection.
    let session: Session | undefined;
    (async () => {
      const base = kvOf(call.request);
      const token = call.request.session_token;
      session = Session.decode(token ? bytesOf(token) : emptyBuffer, limits);
      return run(call.request, base.withSession(session));
    })().then(
      (response) => {
        context.metrics.observe('grpc', method, seconds());
        response.session_token = session!.encode(limits.sessionTokenBytesMax);
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

/** Validated field names of a request, labelled by index in errors. */
function fieldNamesOf(fields: Buffer[], limits: Limits): Buffer[] {
  checkEntries('fields', fields.length, limits);
  return fields.map((field, index) => checkField(bytesOf(field), limits, `fields[${index}]`));
}

/** Validated field/value pairs of a FieldPut, labelled by index in errors. */
function fieldPairsOf(fields: FieldPairMessage[], limits: Limits): KvPair[] {
  checkEntries('fields', fields.length, limits);
  return fields.map((pair, index) => ({
    key: checkField(bytesOf(pair.field), limits, `fields[${index}]`),
    value: checkValue(bytesOf(pair.value), limits, `fields[${index}]`),
  }));
}

const expireConditionOf: { [name in ExpireConditionName]: ExpireCondition | undefined } = {
  EXPIRE_ALWAYS: undefined,
  NX: 'NX',
  XX: 'XX',
  GT: 'GT',
  LT: 'LT',
};

/** Builds the RawKV service implementation over a KvApi. */
export function createRawKvHandlers(context: RawKvContext): UntypedServiceImplementation {
  const { kv: base, limits } = context;
  // One view per level, made once: a request naming a level must not allocate for it.
  const byLevel = new Map<string, KvApi>(
    (['ONE', 'QUORUM', 'ALL'] as const).map((level) => [level, base.withConsistency({ read: level, write: level })]),
  );
  const kvOf: KvOf = (request) => (request.consistency && byLevel.get(request.consistency)) || base;
  const handlers: { [M in RawKvMethod]: handleUnaryCall<Request<M>, Response<M>> } = {
    RawGet: unary('RawGet', context, kvOf, async (request, kv) => {
      const value = await kv.get(namespaceOf(request.cf, limits), checkKey(bytesOf(request.key), limits));
      return value === null ? { value: emptyBuffer, not_found: true } : { value, not_found: false };
    }),

    RawPut: unary('RawPut', context, kvOf, async (request, kv) => {
      const ns = namespaceOf(request.cf, limits);
      const key = checkKey(bytesOf(request.key), limits);
      const value = checkValue(bytesOf(request.value), limits);
      const ttlMs = checkTtlMs(request.ttl_ms);
      await kv.set(ns, key, value, ttlMs > 0 ? { ttlMs } : {});
      return {};
    }),

    RawDelete: unary('RawDelete', context, kvOf, async (request, kv) => {
      const ns = namespaceOf(request.cf, limits);
      const existed = await kv.del(ns, [checkKey(bytesOf(request.key), limits)]);
      return { deleted: existed > 0 };
    }),

    RawScan: unary('RawScan', context, kvOf, async (request, kv) => {
      const ns = namespaceOf(request.cf, limits);
      const limit = checkScanLimit(request.limit, limits);
      const start = bytesOf(request.start_key);
      const end = bytesOf(request.end_key);
      checkRange(start, end, limits);
      const keyOnly = request.key_only;
      const pairs = await kv.range(ns, { start, end, limit, keyOnly, reverse: request.reverse });
      return { kvs: keyOnly ? pairs.map((pair) => ({ key: pair.key, value: emptyBuffer })) : pairs };
    }),

    RawBatchGet: unary('RawBatchGet', context, kvOf, async (request, kv) => {
      const ns = namespaceOf(request.cf, limits);
      checkBatch(request.keys.length, limits);
      const keys = request.keys.map((key, index) => checkKey(bytesOf(key), limits, `keys[${index}]`));
      const values = await kv.getMany(ns, keys);
      const pairs: KvPairMessage[] = [];
      values.forEach((value, index) => {
        if (value !== null) pairs.push({ key: keys[index]!, value });
      });
      return { pairs };
    }),

    RawBatchPut: unary('RawBatchPut', context, kvOf, async (request, kv) => {
      const ns = namespaceOf(request.cf, limits);
      const pairs = pairsOf(request.pairs, limits);
      const ttlMs = checkTtlMs(request.ttl_ms);
      await kv.setMany(ns, pairs, ttlMs > 0 ? { ttlMs } : {});
      return {};
    }),

    RawAppend: unary('RawAppend', context, kvOf, async (request, kv) => {
      const ns = namespaceOf(request.cf, limits);
      const key = checkKey(bytesOf(request.key), limits);
      const newSize = await kv.append(ns, key, checkValue(bytesOf(request.value), limits));
      return { new_size: newSize };
    }),

    RawBatchAppend: unary('RawBatchAppend', context, kvOf, async (request, kv) => {
      const ns = namespaceOf(request.cf, limits);
      const newSizes = await kv.appendMany(ns, pairsOf(request.pairs, limits));
      return { new_sizes: newSizes };
    }),

    RawDeleteRange: unary('RawDeleteRange', context, kvOf, async (request, kv) => {
      const ns = namespaceOf(request.cf, limits);
      const start = bytesOf(request.start_key);
      const end = bytesOf(request.end_key);
      if (end.length === 0) {
        throw invalidArgument('end_key must not be empty (a delete range needs an upper bound)');
      }
      checkRange(start, end, limits);
      return { deleted: await kv.deleteRange(ns, start, end) };
    }),

    VectorAppend: unary('VectorAppend', context, kvOf, async (request, kv) => {
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
      return { count: await kv.vadd(ns, key, { type, dim: request.dim, items }) };
    }),

    VectorSearch: unary('VectorSearch', context, kvOf, async (request, kv) => {
      const ns = namespaceOf(request.cf, limits);
      checkBatch(request.keys.length, limits);
      const keys = request.keys.map((key, index) => checkKey(bytesOf(key), limits, `keys[${index}]`));
      if (request.metric === 'METRIC_UNSPECIFIED') throw invalidArgument('metric must be L2, IP or COSINE');
      if (!(request.k >= 1 && request.k <= SEARCH_K_MAX)) throw invalidArgument(`k must be from 1 to ${SEARCH_K_MAX}, got ${request.k}`);
      if (request.query.length === 0) throw invalidArgument('query must not be empty');
      const prefix = bytesOf(request.payload_prefix);
      const result = await kv.vsearch(ns, {
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

    VectorDelete: unary('VectorDelete', context, kvOf, async (request, kv) => {
      const ns = namespaceOf(request.cf, limits);
      const key = checkKey(bytesOf(request.key), limits);
      checkEntries('ids', request.ids.length, limits);
      const ids = request.ids.map((id, index) => checkItemId(bytesOf(id), `ids[${index}]`));
      return { count: await kv.vdel(ns, key, ids) };
    }),

    VectorRange: unary('VectorRange', context, kvOf, async (request, kv) => {
      const ns = namespaceOf(request.cf, limits);
      const key = checkKey(bytesOf(request.key), limits);
      const start = checkIndex('start', request.start);
      const stop = checkIndex('stop', request.stop);
      const withVectors = request.with_vectors;
      const withPayloads = request.with_payloads;
      const items = await kv.vrange(ns, key, start, stop, { withVectors, withPayloads });
      return {
        items: items.map((item) => ({ id: item.id, values: item.vector ?? [], payload: item.payload ?? emptyBuffer })),
      };
    }),

    VectorCount: unary('VectorCount', context, kvOf, async (request, kv) => {
      const ns = namespaceOf(request.cf, limits);
      return { count: await kv.vcard(ns, checkKey(bytesOf(request.key), limits)) };
    }),

    FieldPut: unary('FieldPut', context, kvOf, async (request, kv) => {
      const ns = namespaceOf(request.cf, limits);
      const key = checkKey(bytesOf(request.key), limits);
      return { added: await kv.hset(ns, key, fieldPairsOf(request.fields, limits)) };
    }),

    FieldGet: unary('FieldGet', context, kvOf, async (request, kv) => {
      const ns = namespaceOf(request.cf, limits);
      const key = checkKey(bytesOf(request.key), limits);
      const value = await kv.hget(ns, key, checkField(bytesOf(request.field), limits));
      return value === null ? { value: emptyBuffer, not_found: true } : { value, not_found: false };
    }),

    FieldBatchGet: unary('FieldBatchGet', context, kvOf, async (request, kv) => {
      const ns = namespaceOf(request.cf, limits);
      const key = checkKey(bytesOf(request.key), limits);
      const names = fieldNamesOf(request.fields, limits);
      const values = await kv.hmget(ns, key, names);
      const fields: FieldPairMessage[] = [];
      values.forEach((value, index) => {
        if (value !== null) fields.push({ field: names[index]!, value });
      });
      return { fields };
    }),

    FieldGetAll: unary('FieldGetAll', context, kvOf, async (request, kv) => {
      const ns = namespaceOf(request.cf, limits);
      const pairs = await kv.hgetall(ns, checkKey(bytesOf(request.key), limits));
      return { fields: pairs.map((pair) => ({ field: pair.key, value: pair.value })) };
    }),

    FieldDelete: unary('FieldDelete', context, kvOf, async (request, kv) => {
      const ns = namespaceOf(request.cf, limits);
      const key = checkKey(bytesOf(request.key), limits);
      return { deleted: await kv.hdel(ns, key, fieldNamesOf(request.fields, limits)) };
    }),

    FieldCount: unary('FieldCount', context, kvOf, async (request, kv) => {
      const ns = namespaceOf(request.cf, limits);
      return { count: await kv.hlen(ns, checkKey(bytesOf(request.key), limits)) };
    }),

    FieldExists: unary('FieldExists', context, kvOf, async (request, kv) => {
      const ns = namespaceOf(request.cf, limits);
      const key = checkKey(bytesOf(request.key), limits);
      return { exists: await kv.hexists(ns, key, checkField(bytesOf(request.field), limits)) };
    }),

    RawExpire: unary('RawExpire', context, kvOf, async (request, kv) => {
      const ns = namespaceOf(request.cf, limits);
      const key = checkKey(bytesOf(request.key), limits);
      if (!Object.hasOwn(expireConditionOf, request.condition)) {
        throw invalidArgument(`condition must be EXPIRE_ALWAYS, NX, XX, GT or LT, got ${String(request.condition)}`);
      }
      const condition = expireConditionOf[request.condition];
      // Other protobuf runtimes keep only the last member of a oneof on the wire; protobufjs
      // keeps every one it read, so a client that set two is told instead of guessed at.
      const members = (['ttl_ms', 'at_ms', 'persist'] as const).filter((name) => request[name] !== undefined);
      if (members.length > 1) throw invalidArgument(`set only one of ttl_ms, at_ms and persist, got ${members.join(' and ')}`);
      let atMs: number | null;
      switch (request.expiry) {
        case 'ttl_ms':
          atMs = checkExpiryMs('ttl_ms', request.ttl_ms!, Date.now());
          break;
        case 'at_ms':
          atMs = checkExpiryMs('at_ms', request.at_ms!, Date.now());
          break;
        case 'persist':
          if (request.persist !== true) throw invalidArgument('persist must be true when set (to keep the expiry, send no RawExpire)');
          if (condition !== undefined) throw invalidArgument(`condition ${request.condition} does not apply to persist`);
          atMs = null;
          break;
        default:
          throw invalidArgument('one of ttl_ms, at_ms or persist must be set');
      }
      return { applied: await kv.expireAt(ns, key, atMs, condition) };
    }),

    RawTtl: unary('RawTtl', context, kvOf, async (request, kv) => {
      const ns = namespaceOf(request.cf, limits);
      const ttlMs = await kv.ttlMs(ns, checkKey(bytesOf(request.key), limits));
      // KvApi reports Redis's PTTL codes: -2 for a missing key, -1 for one without expiry.
      if (ttlMs === -2) return { not_found: true, expires: false, ttl_ms: 0 };
      if (ttlMs === -1) return { not_found: false, expires: false, ttl_ms: 0 };
      // Anything else negative is an engine bug: it fails the call as INTERNAL and is logged.
      if (!Number.isSafeInteger(ttlMs) || ttlMs < 0) throw new Error(`KvApi.ttlMs answered ${ttlMs}`);
      return { not_found: false, expires: true, ttl_ms: ttlMs };
    }),
  };
  return handlers as unknown as UntypedServiceImplementation;
}
