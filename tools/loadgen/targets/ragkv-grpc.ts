/**
 * ragkv over its gRPC RawKV service. RawKV has no field API, so a record is one value
 * (`record-codec.ts`) and `updateFields` reads, merges and rewrites it: two round trips and
 * last-writer-wins, so two concurrent updates of one record can lose one's fields.
 * Values: RawGet / RawBatchGet (one request; the answer lists only found keys and is mapped
 * back to request order) / RawPut / RawAppend. Scans: RawScan from the start key.
 */
import { createRawKvClient, type RawKvClient } from '../../../src/client/grpc.js';
import type { RecordFields, Target } from '../target.js';
import { decodeRecord, encodeRecord } from './record-codec.js';

export class RagkvGrpcTarget implements Target {
  private readonly client: RawKvClient;

  constructor(
    readonly name: string,
    private readonly endpoint: string,
    /** Namespace (`cf`); empty: the default one. */
    private readonly cf = '',
  ) {
    this.client = createRawKvClient(endpoint);
  }

  /** Opens the channel and fails fast when nothing listens there. */
  async connect(timeoutMs = 10_000): Promise<this> {
    await new Promise<void>((resolve, reject) =>
      this.client.grpcClient.waitForReady(Date.now() + timeoutMs, (error) =>
        error ? reject(new Error(`cannot connect to ragkv gRPC at ${this.endpoint}: ${error.message}`)) : resolve(),
      ),
    );
    return this;
  }

  describe(): string {
    return (
      `ragkv gRPC RawKV at ${this.endpoint}: a record is one encoded value (RawPut / RawGet); ` +
      `updateFields is RawGet + RawPut (no field API over gRPC; not atomic), scan RawScan, ` +
      `getMany one RawBatchGet, append RawAppend`
    );
  }

  async insertRecord(key: string, fields: RecordFields): Promise<void> {
    await this.put(key, encodeRecord(fields));
  }

  async readRecord(key: string): Promise<RecordFields | null> {
    const value = await this.get(key);
    return value === null ? null : decodeRecord(value);
  }

  async updateFields(key: string, fields: RecordFields): Promise<void> {
    const current = await this.readRecord(key);
    await this.insertRecord(key, { ...(current ?? {}), ...fields });
  }

  async scanRecords(startKey: string, count: number): Promise<number> {
    if (count <= 0) return 0;
    const { kvs } = await this.client.rawScan({ cf: this.cf, start_key: Buffer.from(startKey), limit: count, key_only: false });
    return kvs.length;
  }

  async get(key: string): Promise<Buffer | null> {
    const { value, not_found } = await this.client.rawGet({ cf: this.cf, key: Buffer.from(key) });
    return not_found ? null : value;
  }

  async getMany(keys: string[]): Promise<(Buffer | null)[]> {
    if (keys.length === 0) return [];
    const { pairs } = await this.client.rawBatchGet({ cf: this.cf, keys: keys.map((k) => Buffer.from(k)) });
    const found = new Map<string, Buffer>();
    for (const pair of pairs) found.set(pair.key.toString('latin1'), pair.value);
    return keys.map((key) => found.get(Buffer.from(key).toString('latin1')) ?? null);
  }

  async put(key: string, value: Buffer): Promise<void> {
    await this.client.rawPut({ cf: this.cf, key: Buffer.from(key), value });
  }

  async append(key: string, bytes: Buffer): Promise<void> {
    await this.client.rawAppend({ cf: this.cf, key: Buffer.from(key), value: bytes });
  }

  async close(): Promise<void> {
    this.client.close();
  }
}
