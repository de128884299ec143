/**
 * Workloads: what operations to send, on which keys, with which values.
 *
 * - YCSB core workloads A-F with YCSB's defaults (workloads/workload[a-f]): records of 10 fields
 *   of 100 bytes, keys `user<fnv64(keynum)>`, one field per update, whole record per read and
 *   insert, request distribution zipfian 0.99 (scrambled), D `latest`, E short scans (length
 *   uniform 1..100 from a zipfian start).
 * - RAG-1 retrieval: a multi-get of 8-32 distinct chunks (1-6 KiB each, zipfian popularity),
 *   then a read of the parent document of the top chunk (4-16 KiB; 8 chunks per document).
 * - RAG-2 ingest: appends of 64 B - 4 KiB to growing values, field updates of each value's
 *   metadata record (a sibling key: Redis cannot hold a string and a hash under one key), and
 *   reads of the same values, 40/20/40.
 * - `<name>-uniform`: the same with uniform key popularity.
 *
 * Several load processes split the work: process p of K loads the records i with i % K == p
 * and inserts new keys `records + j*K + p`, so it never reads a key nobody has written. Key
 * choice covers the loaded records plus the process's own acknowledged inserts, as YCSB's
 * AcknowledgedCounterGenerator does for one client.
 */
import {
  fnvHash64Decimal,
  LatestGenerator,
  ScrambledZipfianGenerator,
  UniformGenerator,
  type IntGenerator,
} from './distributions.js';
import { Random } from '../../src/common/random.js';
import type { RecordFields, Target } from './target.js';
import { ValueFactory, verifyValue } from './values.js';

/** One operation of a workload, ready to run against a target. */
export interface Operation {
  /** Operation type for per-type histograms, e.g. `read`, `update`, `multiget`. */
  readonly type: string;
  run(target: Target): Promise<void>;
}

/** Anything that hands out operations (a workload's run phase or load phase). */
export interface OperationSource {
  next(): Operation;
}

/** Counts of `--verify` checks. */
export interface VerifyCounts {
  checkedValues: number;
  mismatches: number;
  /** Mismatches by reason: `missing`, `checksum`, `bad-frame`, `no-checksum`, `empty`, `missing-field`. */
  byReason: Record<string, number>;
}

/** Parameters shared by every workload. */
export interface WorkloadParams {
  /** Records (YCSB) or chunks (RAG-1) or growing values (RAG-2) in the initial data set. */
  records: number;
  seed: number;
  verify: boolean;
  processIndex: number;
  processCount: number;
  /** YCSB's `insertcount * insertproportion * 2` headroom for zipfian over future inserts. */
  expectedInserts?: number;
  fieldCount?: number;
  fieldBytes?: number;
  /** RAG-1 chunk value sizes; RAG-2 initial and appended sizes use `appendMinBytes`.. */
  chunkMinBytes?: number;
  chunkMaxBytes?: number;
  docMinBytes?: number;
  docMaxBytes?: number;
  appendMinBytes?: number;
  appendMaxBytes?: number;
  /** RAG-2: a process rewrites a value instead of appending once it appended this much to it. */
  growMaxBytes?: number;
}

/** A workload bound to one load process. */
export interface Workload extends OperationSource {
  readonly name: string;
  /** One line on what the workload does, for reports. */
  readonly description: string;
  /** Operation types it can produce, in a stable order. */
  readonly opTypes: readonly string[];
  /** Operations of the load phase of this process, in order. */
  readonly loadCount: number;
  loadSource(): OperationSource;
  readonly verifyCounts: VerifyCounts;
}

export const WORKLOAD_NAMES = [
  'ycsb-a',
  'ycsb-b',
  'ycsb-c',
  'ycsb-d',
  'ycsb-e',
  'ycsb-f',
  'rag-1',
  'rag-2',
] as const;

/** Every accepted workload name, including the `-uniform` variants. */
export const ALL_WORKLOAD_NAMES: readonly string[] = [...WORKLOAD_NAMES, ...WORKLOAD_NAMES.map((n) => `${n}-uniform`)];

/** YCSB's operation proportions per core workload (read, update, insert, scan, readmodifywrite). */
export const YCSB_MIXES: Record<string, Record<string, number>> = {
  'ycsb-a': { read: 0.5, update: 0.5 },
  'ycsb-b': { read: 0.95, update: 0.05 },
  'ycsb-c': { read: 1 },
  'ycsb-d': { read: 0.95, insert: 0.05 },
  'ycsb-e': { scan: 0.95, insert: 0.05 },
  'ycsb-f': { read: 0.5, rmw: 0.5 },
};

/** RAG-2's mix. RAG-1 has a fixed shape: a multi-get, then a parent read. */
export const RAG2_MIX: Record<string, number> = { append: 0.4, 'field-update': 0.2, read: 0.4 };

export const RAG_CHUNKS_PER_DOC = 8;
export const RAG1_BATCH_MIN = 8;
export const RAG1_BATCH_MAX = 32;
export const YCSB_SCAN_LENGTH_MAX = 100;

/** Builds a workload by name (see ALL_WORKLOAD_NAMES). */
export function createWorkload(name: string, params: WorkloadParams): Workload {
  checkParams(params);
  const uniform = name.endsWith('-uniform');
  const base = uniform ? name.slice(0, -'-uniform'.length) : name;
  if (base in YCSB_MIXES) return new YcsbWorkload(name, base, uniform, params);
  if (base === 'rag-1') return new Rag1Workload(name, uniform, params);
  if (base === 'rag-2') return new Rag2Workload(name, uniform, params);
  throw new RangeError(`unknown workload '${name}' (one of: ${ALL_WORKLOAD_NAMES.join(', ')})`);
}

function checkParams(p: WorkloadParams): void {
  if (!Number.isSafeInteger(p.records) || p.records < 1) throw new RangeError(`'records' must be a positive integer, got ${p.records}`);
  if (!Number.isSafeInteger(p.processCount) || p.processCount < 1) throw new RangeError(`'processCount' must be a positive integer, got ${p.processCount}`);
  if (!Number.isSafeInteger(p.processIndex) || p.processIndex < 0 || p.processIndex >= p.processCount) {
    throw new RangeError(`'processIndex' must be in [0, ${p.processCount - 1}], got ${p.processIndex}`);
  }
}

/** YCSB's `user<hash>` key name for a key number (orderedinserts=false, zeropadding=1). */
export function ycsbKeyName(keynum: number): string {
  return `user${fnvHash64Decimal(keynum)}`;
}

/** Picks a name by weight: YCSB's DiscreteGenerator. */
export class DiscreteChooser {
  private readonly names: string[];
  private readonly cumulative: number[];

  constructor(
    private readonly rng: Random,
    weights: Record<string, number>,
  ) {
    this.names = Object.keys(weights);
    let sum = 0;
    this.cumulative = this.names.map((n) => (sum += weights[n]!));
    if (!(sum > 0)) throw new RangeError('operation weights must sum to more than 0');
    this.cumulative = this.cumulative.map((c) => c / sum);
  }

  next(): string {
    const u = this.rng.nextDouble();
    for (let i = 0; i < this.cumulative.length; i++) if (u < this.cumulative[i]!) return this.names[i]!;
    return this.names[this.names.length - 1]!;
  }
}

/**
 * YCSB's AcknowledgedCounterGenerator for one process: hands out insert numbers and knows the
 * highest number below which every insert has been acknowledged.
 */
export class AckCounter {
  private issued: number;
  private limit: number;
  private readonly acked = new Set<number>();

  constructor(start: number) {
    this.issued = start;
    this.limit = start;
  }

  /** The next number to insert. */
  next(): number {
    return this.issued++;
  }

  /** Marks an insert done. */
  ack(n: number): void {
    this.acked.add(n);
    while (this.acked.delete(this.limit)) this.limit++;
  }

  /** Every number below this is acknowledged. */
  get acknowledgedBelow(): number {
    return this.limit;
  }
}

abstract class BaseWorkload implements Workload {
  readonly verifyCounts: VerifyCounts = { checkedValues: 0, mismatches: 0, byReason: {} };
  abstract readonly description: string;
  abstract readonly opTypes: readonly string[];
  abstract readonly loadCount: number;
  protected readonly rng: Random;
  protected readonly values: ValueFactory;
  protected readonly p: WorkloadParams;

  constructor(
    readonly name: string,
    params: WorkloadParams,
  ) {
    this.p = params;
    this.rng = new Random(params.seed, 1 + params.processIndex);
    this.values = new ValueFactory(params.seed, params.processIndex, params.verify);
  }

  abstract next(): Operation;
  protected abstract loadOp(i: number): Operation;

  loadSource(): OperationSource {
    let i = 0;
    return {
      next: () => {
        if (i >= this.loadCount) throw new RangeError(`load phase has only ${this.loadCount} operations`);
        return this.loadOp(i++);
      },
    };
  }

  /** Which global items this process loads: i, i+K, i+2K, ... from processIndex. */
  protected loadItem(i: number): number {
    return this.p.processIndex + i * this.p.processCount;
  }

  protected itemsOfThisProcess(total: number): number {
    const { processIndex: p, processCount: k } = this.p;
    return total > p ? Math.ceil((total - p) / k) : 0;
  }

  protected mismatch(reason: string): void {
    this.verifyCounts.mismatches++;
    this.verifyCounts.byReason[reason] = (this.verifyCounts.byReason[reason] ?? 0) + 1;
  }

  /** With --verify, checks a plain value read for `key`; `null` is a miss. */
  protected checkValue(key: string, value: Buffer | null): void {
    if (!this.p.verify) return;
    this.verifyCounts.checkedValues++;
    if (value === null) return this.mismatch('missing');
    const r = verifyValue(key, value);
    if (!r.ok) this.mismatch(r.reason!);
  }
}

// ---------------------------------------------------------------- YCSB

class YcsbWorkload extends BaseWorkload {
  readonly description: string;
  readonly opTypes: readonly string[];
  readonly loadCount: number;
  private readonly mix: DiscreteChooser;
  private readonly keyChooser: IntGenerator;
  private readonly scanLength: UniformGenerator;
  private readonly inserts: AckCounter;
  private readonly fieldNames: string[];
  private readonly fieldBytes: number;
  private readonly keyCache: (string | undefined)[] = [];

  constructor(name: string, base: string, uniform: boolean, params: WorkloadParams) {
    super(name, params);
    const mix = YCSB_MIXES[base]!;
    this.opTypes = Object.keys(mix);
    this.mix = new DiscreteChooser(this.rng, mix);
    const fieldCount = params.fieldCount ?? 10;
    this.fieldBytes = params.fieldBytes ?? 100;
    this.fieldNames = Array.from({ length: fieldCount }, (_, i) => `field${i}`);
    this.loadCount = this.itemsOfThisProcess(params.records);
    this.inserts = new AckCounter(params.records);
    const insertShare = mix.insert ?? 0;
    const expectedInserts = params.expectedInserts ?? (insertShare > 0 ? Math.ceil(params.records * 0.1) : 0);
    const last = params.records + expectedInserts - 1;
    const dist = uniform ? 'uniform' : base === 'ycsb-d' ? 'latest' : 'zipfian';
    if (dist === 'latest') {
      this.keyChooser = new LatestGenerator(this.rng, () => this.inserts.acknowledgedBelow - 1);
    } else if (dist === 'uniform') {
      this.keyChooser = new UniformGenerator(this.rng, 0, params.records - 1);
    } else {
      this.keyChooser = new ScrambledZipfianGenerator(this.rng, 0, last);
    }
    this.scanLength = new UniformGenerator(this.rng, 1, YCSB_SCAN_LENGTH_MAX);
    const mixText = Object.entries(mix)
      .map(([op, share]) => `${Math.round(share * 100)}% ${op}`)
      .join(' / ');
    this.description =
      `YCSB ${base.slice(5).toUpperCase()}: ${mixText}; ${fieldCount} fields x ${this.fieldBytes} B, ` +
      `${dist === 'zipfian' ? 'scrambled zipfian 0.99' : dist === 'latest' ? 'latest (zipfian 0.99 over recency)' : 'uniform'} keys` +
      (base === 'ycsb-e' ? `, scan length uniform 1..${YCSB_SCAN_LENGTH_MAX}` : '');
  }

  /** The key number behind a position in this process's key space (loaded records, then own inserts). */
  private keynumOf(index: number): number {
    const { records, processCount, processIndex } = this.p;
    return index < records ? index : records + (index - records) * processCount + processIndex;
  }

  private keyOf(index: number): string {
    if (index < 1_000_000) return (this.keyCache[index] ??= ycsbKeyName(this.keynumOf(index)));
    return ycsbKeyName(this.keynumOf(index));
  }

  /** YCSB's nextKeynum: redraw while the choice is beyond what has been acknowledged. */
  private chooseKey(): string {
    const below = this.inserts.acknowledgedBelow;
    for (;;) {
      const index = this.keyChooser.next();
      if (index < below) return this.keyOf(index);
    }
  }

  private record(key: string): RecordFields {
    const fields: RecordFields = {};
    for (const f of this.fieldNames) fields[f] = this.values.make(`${key}/${f}`, this.fieldBytes);
    return fields;
  }

  private checkRecord(key: string, rec: RecordFields | null): void {
    if (!this.p.verify) return;
    if (rec === null) {
      this.verifyCounts.checkedValues++;
      return this.mismatch('missing');
    }
    for (const f of this.fieldNames) {
      const v = rec[f];
      if (v === undefined) {
        this.verifyCounts.checkedValues++;
        this.mismatch('missing-field');
      } else {
        this.checkValue(`${key}/${f}`, v);
      }
    }
  }

  protected loadOp(i: number): Operation {
    const key = this.keyOf(this.loadItem(i));
    const fields = this.record(key);
    return { type: 'insert', run: (t) => t.insertRecord(key, fields) };
  }

  next(): Operation {
    const type = this.mix.next();
    switch (type) {
      case 'read': {
        const key = this.chooseKey();
        return { type, run: async (t) => this.checkRecord(key, await t.readRecord(key)) };
      }
      case 'update': {
        const key = this.chooseKey();
        const field = this.fieldNames[this.rng.nextInt(this.fieldNames.length)]!;
        const fields = { [field]: this.values.make(`${key}/${field}`, this.fieldBytes) };
        return { type, run: (t) => t.updateFields(key, fields) };
      }
      case 'rmw': {
        const key = this.chooseKey();
        const field = this.fieldNames[this.rng.nextInt(this.fieldNames.length)]!;
        const fields = { [field]: this.values.make(`${key}/${field}`, this.fieldBytes) };
        return {
          type,
          run: async (t) => {
            this.checkRecord(key, await t.readRecord(key));
            await t.updateFields(key, fields);
          },
        };
      }
      case 'scan': {
        const key = this.chooseKey();
        const count = this.scanLength.next();
        return {
          type,
          run: async (t) => {
            await t.scanRecords(key, count);
          },
        };
      }
      case 'insert': {
        const index = this.inserts.next();
        const key = this.keyOf(index);
        const fields = this.record(key);
        return {
          type,
          run: async (t) => {
            await t.insertRecord(key, fields);
            this.inserts.ack(index);
          },
        };
      }
      default:
        throw new Error(`unreachable: operation ${type}`);
    }
  }
}

// ---------------------------------------------------------------- RAG-1 retrieval

/** RAG key names. */
export const ragChunkKey = (n: number): string => `chunk:${n}`;
export const ragDocKey = (n: number): string => `doc:${n}`;

class Rag1Workload extends BaseWorkload {
  readonly description: string;
  readonly opTypes = ['multiget', 'parent-read'] as const;
  readonly loadCount: number;
  private readonly docs: number;
  private readonly chunkChooser: IntGenerator;
  private pendingParent: number | null = null;
  private readonly chunkMin: number;
  private readonly chunkMax: number;
  private readonly docMin: number;
  private readonly docMax: number;

  constructor(name: string, uniform: boolean, params: WorkloadParams) {
    super(name, params);
    this.docs = Math.ceil(params.records / RAG_CHUNKS_PER_DOC);
    this.loadCount = this.itemsOfThisProcess(params.records + this.docs);
    this.chunkChooser = uniform
      ? new UniformGenerator(this.rng, 0, params.records - 1)
      : new ScrambledZipfianGenerator(this.rng, 0, params.records - 1);
    this.chunkMin = params.chunkMinBytes ?? 1024;
    this.chunkMax = params.chunkMaxBytes ?? 6144;
    this.docMin = params.docMinBytes ?? 4096;
    this.docMax = params.docMaxBytes ?? 16384;
    this.description =
      `RAG-1 retrieval: multi-get of ${RAG1_BATCH_MIN}-${RAG1_BATCH_MAX} distinct chunks (${this.chunkMin}-${this.chunkMax} B, ` +
      `${uniform ? 'uniform' : 'scrambled zipfian 0.99'}), then one parent-document read (${this.docMin}-${this.docMax} B, ${RAG_CHUNKS_PER_DOC} chunks per document)`;
  }

  protected loadOp(i: number): Operation {
    const item = this.loadItem(i);
    const isChunk = item < this.p.records;
    const key = isChunk ? ragChunkKey(item) : ragDocKey(item - this.p.records);
    const value = isChunk
      ? this.values.make(key, this.rng.intBetween(this.chunkMin, this.chunkMax))
      : this.values.make(key, this.rng.intBetween(this.docMin, this.docMax));
    return { type: 'put', run: (t) => t.put(key, value) };
  }

  /** The chunk numbers of one retrieval batch: 8-32 distinct, most relevant first. */
  batch(): number[] {
    const size = Math.min(this.p.records, this.rng.intBetween(RAG1_BATCH_MIN, RAG1_BATCH_MAX));
    const chosen = new Set<number>();
    // Bounded: a tiny key space with a steep skew could otherwise take long to fill.
    for (let tries = 0; chosen.size < size && tries < size * 64; tries++) chosen.add(this.chunkChooser.next());
    return [...chosen];
  }

  next(): Operation {
    if (this.pendingParent !== null) {
      const key = ragDocKey(this.pendingParent);
      this.pendingParent = null;
      return { type: 'parent-read', run: async (t) => this.checkValue(key, await t.get(key)) };
    }
    const chunks = this.batch();
    this.pendingParent = Math.floor(chunks[0]! / RAG_CHUNKS_PER_DOC);
    const keys = chunks.map(ragChunkKey);
    return {
      type: 'multiget',
      run: async (t) => {
        const values = await t.getMany(keys);
        if (values.length !== keys.length) throw new Error(`getMany returned ${values.length} values for ${keys.length} keys`);
        for (let i = 0; i < keys.length; i++) this.checkValue(keys[i]!, values[i]!);
      },
    };
  }
}

// ---------------------------------------------------------------- RAG-2 ingest

export const ragPostingKey = (n: number): string => `post:${n}`;
export const ragMetaKey = (n: number): string => `post:${n}:meta`;

class Rag2Workload extends BaseWorkload {
  readonly description: string;
  readonly opTypes = ['append', 'rewrite', 'field-update', 'read'] as const;
  readonly loadCount: number;
  private readonly mix: DiscreteChooser;
  private readonly keyChooser: IntGenerator;
  private readonly appendMin: number;
  private readonly appendMax: number;
  private readonly growMax: number;
  /** Bytes this process appended per key since it last rewrote it. */
  private readonly grown = new Map<number, number>();

  constructor(name: string, uniform: boolean, params: WorkloadParams) {
    super(name, params);
    this.loadCount = this.itemsOfThisProcess(params.records);
    this.mix = new DiscreteChooser(this.rng, RAG2_MIX);
    this.keyChooser = uniform
      ? new UniformGenerator(this.rng, 0, params.records - 1)
      : new ScrambledZipfianGenerator(this.rng, 0, params.records - 1);
    this.appendMin = params.appendMinBytes ?? 64;
    this.appendMax = params.appendMaxBytes ?? 4096;
    this.growMax = params.growMaxBytes ?? 128 * 1024;
    this.description =
      `RAG-2 ingest: 40% append (${this.appendMin}-${this.appendMax} B) / 20% metadata field update / 40% read of the same values, ` +
      `${uniform ? 'uniform' : 'scrambled zipfian 0.99'} keys; a process rewrites a value after appending ${this.growMax} B to it`;
  }

  protected loadOp(i: number): Operation {
    const n = this.loadItem(i);
    const key = ragPostingKey(n);
    const value = this.values.make(key, this.rng.intBetween(this.appendMin, this.appendMax));
    const meta = { source: this.values.make(`${ragMetaKey(n)}/source`, 100) };
    return {
      type: 'put',
      run: async (t) => {
        await t.put(key, value);
        await t.insertRecord(ragMetaKey(n), meta);
      },
    };
  }

  /** Size of the next append (64 B - 4 KiB). */
  appendSize(): number {
    return this.rng.intBetween(this.appendMin, this.appendMax);
  }

  next(): Operation {
    const type = this.mix.next();
    const n = this.keyChooser.next();
    const key = ragPostingKey(n);
    switch (type) {
      case 'append': {
        const size = this.appendSize();
        const grown = (this.grown.get(n) ?? 0) + size;
        const bytes = this.values.make(key, size);
        if (grown > this.growMax) {
          this.grown.set(n, 0);
          return { type: 'rewrite', run: (t) => t.put(key, bytes) };
        }
        this.grown.set(n, grown);
        return { type, run: (t) => t.append(key, bytes) };
      }
      case 'field-update': {
        const field = `field${this.rng.nextInt(10)}`;
        const fields = { [field]: this.values.make(`${ragMetaKey(n)}/${field}`, 100) };
        return { type, run: (t) => t.updateFields(ragMetaKey(n), fields) };
      }
      case 'read':
        return { type, run: async (t) => this.checkValue(key, await t.get(key)) };
      default:
        throw new Error(`unreachable: operation ${type}`);
    }
  }
}
