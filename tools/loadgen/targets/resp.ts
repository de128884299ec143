/**
 * Targets over RESP with ioredis: ragkv's RESP interface, Redis standalone, and Redis with
 * replicas. Records are hashes (HSET all fields / HGETALL / HSET the changed fields), the
 * way YCSB's Redis binding stores them; values use GET / MGET / SET / APPEND.
 *
 * - ragkv-resp: no key-ordered range over RESP (SCAN is unordered), so `scanRecords` throws;
 *   ragkv-grpc runs YCSB workload E with RawScan.
 * - redis: like YCSB's binding, an insert also adds the key to the sorted set `_index`
 *   (score 0, so members sort by key), in the same pipeline as the HSET; a scan reads keys
 *   with ZRANGEBYLEX from the start key and then HGETALLs them in one pipeline.
 * - redis-replicated: every write goes to the primary followed, in the same pipeline, by
 *   `WAIT <waitReplicas> <waitTimeoutMs>`, so an acknowledged write is in the memory of that
 *   many replicas (compare ragkv's W=QUORUM/ALL); fewer acks within the timeout is an error.
 *   Reads go round-robin to the replicas.
 * - ragkv-resp with several endpoints (a ragkv cluster): one connection to each member, and
 *   every operation, read or write, goes to the next member round-robin (`spreadWrites`);
 *   any member coordinates any key.
 */
import type { Redis } from 'ioredis';
import type { RecordFields, Target } from '../target.js';
import { closeResp, connectResp, type RespConnectOptions } from './resp-connection.js';

/** The sorted set that indexes record keys for scans (Redis only). */
export const redisKeyIndex = '_index';

export interface RespTargetOptions {
  name: string;
  describe: string;
  /** Endpoint that takes writes (and reads when there are no readers). */
  primary: string;
  /** Endpoints that serve reads round-robin; empty: reads go to the primary. The primary may be one of them (one connection then serves both). */
  readers?: string[];
  /** Writes also go round-robin over the readers (every endpoint takes writes: ragkv cluster members). */
  spreadWrites?: boolean;
  /** Keep the `_index` sorted set and support `scanRecords` (Redis). */
  keyIndex: boolean;
  /** WAIT for this many replicas after each write; 0: do not wait. */
  waitReplicas?: number;
  waitTimeoutMs?: number;
  /** Text of the error `scanRecords` throws when there is no index. */
  scanUnsupported?: string;
  connect?: RespConnectOptions;
}

type PipelineResult = [error: Error | null, result: unknown][] | null;

/** Throws the first error of a pipeline; returns the results. */
function unwrap(results: PipelineResult): unknown[] {
  if (results === null) throw new Error('pipeline was not executed (connection closed)');
  return results.map(([error, result]) => {
    if (error) throw error;
    return result;
  });
}

export class RespTarget implements Target {
  readonly name: string;
  private next = 0;

  private constructor(
    private readonly options: RespTargetOptions,
    private readonly primary: Redis,
    private readonly readers: Redis[],
  ) {
    this.name = options.name;
  }

  static async connect(options: RespTargetOptions): Promise<RespTarget> {
    const opened: Redis[] = [];
    try {
      const primary = await connectResp(options.primary, options.connect);
      opened.push(primary);
      const readers: Redis[] = [];
      for (const endpoint of options.readers ?? []) {
        if (endpoint === options.primary) {
          readers.push(primary);
          continue;
        }
        const reader = await connectResp(endpoint, options.connect);
        opened.push(reader);
        readers.push(reader);
      }
      return new RespTarget(options, primary, readers.length > 0 ? readers : [primary]);
    } catch (e) {
      await Promise.all(opened.map(closeResp));
      throw e;
    }
  }

  describe(): string {
    return this.options.describe;
  }

  private reader(): Redis {
    const reader = this.readers[this.next]!;
    this.next = (this.next + 1) % this.readers.length;
    return reader;
  }

  private get waitReplicas(): number {
    return this.options.waitReplicas ?? 0;
  }

  /** Runs a write (with its index update and WAIT, if any) as one pipeline: one round trip. */
  private async write(build: (p: ReturnType<Redis['pipeline']>) => void): Promise<void> {
    const waiting = this.waitReplicas > 0;
    const timeoutMs = this.options.waitTimeoutMs ?? 1000;
    const p = (this.options.spreadWrites ? this.reader() : this.primary).pipeline();
    build(p);
    if (waiting) p.call('WAIT', this.waitReplicas, timeoutMs);
    const results = unwrap(await p.exec());
    if (waiting) {
      const acked = Number(results[results.length - 1]);
      if (acked < this.waitReplicas) {
        throw new Error(`write not acknowledged by ${this.waitReplicas} replicas within ${timeoutMs} ms (WAIT answered ${acked})`);
      }
    }
  }

  async insertRecord(key: string, fields: RecordFields): Promise<void> {
    await this.write((p) => {
      p.hset(key, fields);
      if (this.options.keyIndex) p.zadd(redisKeyIndex, 0, key);
    });
  }

  async readRecord(key: string): Promise<RecordFields | null> {
    const fields = await this.reader().hgetallBuffer(key);
    return Object.keys(fields).length === 0 ? null : fields;
  }

  async updateFields(key: string, fields: RecordFields): Promise<void> {
    await this.write((p) => p.hset(key, fields));
  }

  async scanRecords(startKey: string, count: number): Promise<number> {
    if (!this.options.keyIndex) {
      throw new Error(this.options.scanUnsupported ?? `${this.name}: scanRecords is not supported`);
    }
    if (count <= 0) return 0;
    const reader = this.reader();
    const keys = await reader.zrangebylex(redisKeyIndex, `[${startKey}`, '+', 'LIMIT', 0, count);
    if (keys.length === 0) return 0;
    const p = reader.pipeline();
    for (const key of keys) p.hgetallBuffer(key);
    const records = unwrap(await p.exec()) as Record<string, Buffer>[];
    return records.filter((fields) => Object.keys(fields).length > 0).length;
  }

  get(key: string): Promise<Buffer | null> {
    return this.reader().getBuffer(key);
  }

  async getMany(keys: string[]): Promise<(Buffer | null)[]> {
    if (keys.length === 0) return [];
    return this.reader().mgetBuffer(keys);
  }

  async put(key: string, value: Buffer): Promise<void> {
    await this.write((p) => p.set(key, value));
  }

  async append(key: string, bytes: Buffer): Promise<void> {
    await this.write((p) => p.append(key, bytes));
  }

  async close(): Promise<void> {
    const all = new Set([this.primary, ...this.readers]);
    await Promise.all([...all].map(closeResp));
  }
}
