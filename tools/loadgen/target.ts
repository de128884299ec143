/**
 * What the load generator drives: one interface over ragkv (RESP, gRPC), Redis and etcd.
 * Workloads speak only these operations; each adapter maps them to its store's natural
 * commands and says how (see `describe`). Keys are strings, values bytes.
 *
 * A YCSB record is a map of fields. Adapters store it the way that store's own YCSB binding
 * would: ragkv and Redis as a hash (HSET/HGETALL, one field per update), etcd as one encoded
 * value (an update rewrites it), so each store is measured doing what its users would do.
 */
export interface RecordFields {
  [field: string]: Buffer;
}

export interface Target {
  /** Short name for tables, e.g. `ragkv-resp`, `redis`, `redis-replicated`, `etcd`. */
  readonly name: string;
  /** One line on how operations map to the store and its durability, shown in reports. */
  describe(): string;

  /** Inserts or replaces a whole record. */
  insertRecord(key: string, fields: RecordFields): Promise<void>;
  /** Reads a whole record; null when absent. */
  readRecord(key: string): Promise<RecordFields | null>;
  /** Updates some fields of a record (YCSB update, metadata enrichment). */
  updateFields(key: string, fields: RecordFields): Promise<void>;
  /** Up to `count` records with keys >= `startKey`, in key order; returns how many were read. */
  scanRecords(startKey: string, count: number): Promise<number>;

  /** Plain values (RAG chunks and documents). */
  get(key: string): Promise<Buffer | null>;
  /** Multi-get in one request where the store has one; result order follows `keys`. */
  getMany(keys: string[]): Promise<(Buffer | null)[]>;
  put(key: string, value: Buffer): Promise<void>;
  /** Appends bytes to a value (RAG ingest); stores without append do read-modify-write. */
  append(key: string, bytes: Buffer): Promise<void>;

  /** Closes connections. */
  close(): Promise<void>;
}

/** Builds a fresh Target connected to an endpoint; each load process makes its own. */
export interface TargetFactory {
  readonly name: string;
  create(): Promise<Target>;
}
