/**
 * etcd through its v3 gRPC API (the `etcd3` package), the way an etcd user would store a
 * YCSB record: one encoded value per record (`record-codec.ts`).
 *
 * - updateFields and append are read-modify-write (etcd has no field update or append):
 *   a range read, then a txn that puts the new value only if the key's mod_revision is
 *   unchanged, retried on conflict, so concurrent updates are never lost. Two round trips.
 * - getMany is one txn of range requests: one round trip, one consistent revision. etcd
 *   caps a txn at `--max-txn-ops` (128 by default), so longer lists are sent as several
 *   txns in parallel.
 * - scanRecords is one range request from the start key to the end of the keyspace, limit n.
 * - Reads are linearizable (etcd's default), writes committed by the Raft majority and
 *   fsynced on each member before the answer.
 * - etcd refuses requests over `--max-request-bytes` (1.5 MiB by default): writes that
 *   would exceed it are refused here with an error naming the limit, before sending.
 */
import { CompareResult, CompareTarget, Etcd3, type IKeyValue, type IRequestOp } from 'etcd3';
import type { RecordFields, Target } from '../target.js';
import { decodeRecord, encodeRecord } from './record-codec.js';

/** etcd's default `--max-request-bytes`. */
export const etcdRequestBytesDefault = 1.5 * 1024 * 1024;
/** etcd's default `--max-txn-ops`. */
export const etcdTxnOpsDefault = 128;
/** Framing of a put request beyond its key and value (generous: the txn adds a compare). */
const requestOverheadBytes = 512;

export interface EtcdTargetOptions {
  /** The server's `--max-request-bytes`; default 1.5 MiB. */
  requestBytesMax?: number;
  /** The server's `--max-txn-ops`; default 128. */
  txnOpsMax?: number;
  /** How often a read-modify-write retries after losing a race; default 64. */
  casAttemptsMax?: number;
  /** Largest response accepted (a getMany or scan of large values); default 256 MiB. */
  responseBytesMax?: number;
}

export class EtcdTarget implements Target {
  private readonly client: Etcd3;
  private readonly requestBytesMax: number;
  private readonly txnOpsMax: number;
  private readonly casAttemptsMax: number;

  constructor(
    readonly name: string,
    private readonly endpoints: string[],
    options: EtcdTargetOptions = {},
  ) {
    this.requestBytesMax = options.requestBytesMax ?? etcdRequestBytesDefault;
    this.txnOpsMax = options.txnOpsMax ?? etcdTxnOpsDefault;
    this.casAttemptsMax = options.casAttemptsMax ?? 64;
    const bytesMax = options.responseBytesMax ?? 256 * 1024 * 1024;
    this.client = new Etcd3({
      hosts: endpoints.map((e) => `http://${e}`),
      dialTimeout: 10_000,
      grpcOptions: { 'grpc.max_receive_message_length': bytesMax, 'grpc.max_send_message_length': bytesMax },
    });
  }

  /** One linearizable read, so a target that cannot reach a quorum fails here, not mid-run. */
  async connect(): Promise<this> {
    try {
      await this.client.kv.range({ key: Buffer.from('ragkv-bench-probe') });
    } catch (e) {
      this.client.close();
      throw new Error(`cannot reach etcd at ${this.endpoints.join(',')}: ${(e as Error).message}`);
    }
    return this;
  }

  describe(): string {
    return (
      `etcd v3 at ${this.endpoints.join(',')} (Raft, fsync per commit): a record is one encoded value ` +
      `(put / get); updateFields and append are get + txn put if mod_revision unchanged (no field ` +
      `update or append in etcd), getMany one txn of range ops (${this.txnOpsMax} keys per txn), scan a range ` +
      `with limit; writes over ${this.requestBytesMax} bytes refused (--max-request-bytes)`
    );
  }

  private checkSize(key: string, value: Buffer): void {
    const size = Buffer.byteLength(key) + value.length + requestOverheadBytes;
    if (size > this.requestBytesMax) {
      throw new Error(
        `etcd: a write of key '${key}' with ${value.length} value bytes is over etcd's request limit ` +
          `'--max-request-bytes' (${this.requestBytesMax} bytes)`,
      );
    }
  }

  private async getKv(key: string): Promise<IKeyValue | undefined> {
    const { kvs } = await this.client.kv.range({ key: Buffer.from(key) });
    return kvs[0];
  }

  /** Reads the key, computes the new value, writes it if nobody wrote in between; retries. */
  private async readModifyWrite(key: string, change: (current: Buffer | null) => Buffer): Promise<void> {
    const keyBytes = Buffer.from(key);
    for (let attempt = 0; attempt < this.casAttemptsMax; attempt++) {
      const kv = await this.getKv(key);
      const value = change(kv ? kv.value : null);
      this.checkSize(key, value);
      const { succeeded } = await this.client.kv.txn({
        compare: [{ key: keyBytes, target: CompareTarget.Mod, result: CompareResult.Equal, mod_revision: kv ? kv.mod_revision : 0 }],
        success: [{ request_put: { key: keyBytes, value } }],
      });
      if (succeeded) return;
    }
    throw new Error(`etcd: read-modify-write of '${key}' lost the race ${this.casAttemptsMax} times`);
  }

  async insertRecord(key: string, fields: RecordFields): Promise<void> {
    await this.put(key, encodeRecord(fields));
  }

  async readRecord(key: string): Promise<RecordFields | null> {
    const value = await this.get(key);
    return value === null ? null : decodeRecord(value);
  }

  async updateFields(key: string, fields: RecordFields): Promise<void> {
    await this.readModifyWrite(key, (current) =>
      encodeRecord({ ...(current === null ? {} : decodeRecord(current)), ...fields }),
    );
  }

  async scanRecords(startKey: string, count: number): Promise<number> {
    if (count <= 0) return 0;
    const { kvs } = await this.client.kv.range({ key: Buffer.from(startKey), range_end: Buffer.from([0]), limit: count });
    return kvs.length;
  }

  async get(key: string): Promise<Buffer | null> {
    const kv = await this.getKv(key);
    return kv ? kv.value : null;
  }

  async getMany(keys: string[]): Promise<(Buffer | null)[]> {
    const chunks: string[][] = [];
    for (let i = 0; i < keys.length; i += this.txnOpsMax) chunks.push(keys.slice(i, i + this.txnOpsMax));
    const answers = await Promise.all(
      chunks.map(async (chunk) => {
        const success: IRequestOp[] = chunk.map((key) => ({ request_range: { key: Buffer.from(key) } }));
        const { responses } = await this.client.kv.txn({ success });
        return responses.map((r) => r.response_range.kvs[0]?.value ?? null);
      }),
    );
    return answers.flat();
  }

  async put(key: string, value: Buffer): Promise<void> {
    this.checkSize(key, value);
    await this.client.kv.put({ key: Buffer.from(key), value });
  }

  async append(key: string, bytes: Buffer): Promise<void> {
    await this.readModifyWrite(key, (current) => (current === null ? bytes : Buffer.concat([current, bytes])));
  }

  async close(): Promise<void> {
    this.client.close();
  }
}
