/**
 * Targets: one `Target` implementation per store and protocol, built from a `TargetSpec`.
 *
 * | spec.kind    | adapter          | records                          | scan                     |
 * |--------------|------------------|----------------------------------|--------------------------|
 * | ragkv-resp   | RespTarget       | hash: HSET / HGETALL / HSET      | not over RESP (throws)   |
 * | ragkv-grpc   | RagkvGrpcTarget  | one value; update = get + put    | RawScan                  |
 * | redis        | RespTarget       | hash + ZADD `_index` (YCSB)      | ZRANGEBYLEX + HGETALL    |
 * | etcd         | EtcdTarget       | one value; update = get + CAS    | range with limit         |
 *
 * A `redis` spec with more than one endpoint is a primary (first) with replicas: writes go
 * to the primary and WAIT for replicas, reads go round-robin to the replicas. A `ragkv-resp`
 * spec with more than one endpoint is a cluster: every operation goes to the next member.
 */
import type { Target, TargetFactory } from '../target.js';
import { EtcdTarget, type EtcdTargetOptions } from './etcd.js';
import { RagkvGrpcTarget } from './ragkv-grpc.js';
import { redisKeyIndex, RespTarget } from './resp.js';
import type { TargetSpec } from './spec.js';

export type { TargetKind, TargetSpec } from './spec.js';
export { parseEndpoint } from './spec.js';
export { decodeRecord, encodeRecord } from './record-codec.js';

export interface TargetFactoryOptions {
  /**
   * Replicated Redis: after each write, `WAIT` for this many replicas. Default: all the
   * spec's replicas, so reads from any replica see every acknowledged write; 0 = async
   * replication (reads may be stale).
   */
  waitReplicas?: number;
  /** Timeout of each WAIT; default 1000 ms. A write acknowledged by fewer replicas fails. */
  waitTimeoutMs?: number;
  etcd?: EtcdTargetOptions;
}

export function createTargetFactory(spec: TargetSpec, options: TargetFactoryOptions = {}): TargetFactory {
  if (spec.endpoints.length === 0) throw new Error(`target '${spec.name}' has no endpoints`);
  const first = spec.endpoints[0]!;
  const make = (create: () => Promise<Target>): TargetFactory => ({ name: spec.name, create });

  switch (spec.kind) {
    case 'ragkv-resp': {
      const members = spec.endpoints;
      const where =
        members.length === 1
          ? `at ${first}`
          : `to ${members.length} cluster members ${members.join(',')}, one connection each, every operation (read or write) ` +
            `to the next member round-robin (the member that receives it coordinates the replicas)`;
      return make(() =>
        RespTarget.connect({
          name: spec.name,
          primary: first,
          ...(members.length > 1 ? { readers: members, spreadWrites: true } : {}),
          keyIndex: false,
          describe:
            `ragkv over RESP ${where} (ioredis): records as hashes (HSET all fields / HGETALL / HSET some fields), ` +
            `values GET / MGET / SET / APPEND; no ordered scan over RESP (use ragkv-grpc for YCSB workload E)`,
          scanUnsupported:
            `${spec.name}: scanRecords is not supported over RESP (ragkv's SCAN is not key-ordered); use the ragkv-grpc target for YCSB workload E`,
        }),
      );
    }
    case 'ragkv-grpc':
      return make(() => new RagkvGrpcTarget(spec.name, first).connect());
    case 'redis': {
      const replicas = spec.endpoints.slice(1);
      if (replicas.length === 0) {
        return make(() =>
          RespTarget.connect({
            name: spec.name,
            primary: first,
            keyIndex: true,
            describe:
              `Redis at ${first}: records as hashes like YCSB's binding (HSET + ZADD ${redisKeyIndex} in one pipeline / HGETALL / HSET), ` +
              `scan ZRANGEBYLEX ${redisKeyIndex} + pipelined HGETALL, values GET / MGET / SET / APPEND`,
          }),
        );
      }
      const waitReplicas = options.waitReplicas ?? replicas.length;
      const waitTimeoutMs = options.waitTimeoutMs ?? 1000;
      if (waitReplicas > replicas.length) {
        throw new Error(`waitReplicas ${waitReplicas} is more than the ${replicas.length} replicas of '${spec.name}'`);
      }
      const writes =
        waitReplicas > 0
          ? `writes to the primary ${first} followed by WAIT ${waitReplicas} ${waitTimeoutMs} in the same pipeline (acknowledged once in memory on ${waitReplicas} replicas)`
          : `writes to the primary ${first} (asynchronous replication, no WAIT: replica reads may be stale)`;
      return make(() =>
        RespTarget.connect({
          name: spec.name,
          primary: first,
          readers: replicas,
          keyIndex: true,
          waitReplicas,
          waitTimeoutMs,
          describe:
            `Redis primary + ${replicas.length} replicas: ${writes}; reads round-robin over replicas ${replicas.join(',')}; ` +
            `records as hashes + ZADD ${redisKeyIndex} like YCSB's binding, scan ZRANGEBYLEX + pipelined HGETALL`,
        }),
      );
    }
    case 'etcd':
      return make(() => new EtcdTarget(spec.name, spec.endpoints, options.etcd).connect());
    default: {
      const kind: never = spec.kind;
      throw new Error(`unknown target kind '${String(kind)}'`);
    }
  }
}
