import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RecordFields, Target } from '../tools/loadgen/target.js';
import { FRAME_HEADER_BYTES, ValueFactory, verifyValue } from '../tools/loadgen/values.js';
import {
  AckCounter,
  createWorkload,
  RAG1_BATCH_MAX,
  RAG1_BATCH_MIN,
  RAG2_MIX,
  RAG_CHUNKS_PER_DOC,
  ycsbKeyName,
  YCSB_MIXES,
  type Workload,
  type WorkloadParams,
} from '../tools/loadgen/workloads.js';

/** A real (tiny) Target over Maps: the workloads are under test, not a store. */
class MemoryTarget implements Target {
  readonly name = 'memory';
  readonly values = new Map<string, Buffer>();
  readonly records = new Map<string, RecordFields>();
  readonly calls: { op: string; key: string; bytes?: number; keys?: string[] }[] = [];
  describe(): string {
    return 'in-memory Map';
  }
  async insertRecord(key: string, fields: RecordFields): Promise<void> {
    this.calls.push({ op: 'insertRecord', key });
    this.records.set(key, { ...fields });
  }
  async readRecord(key: string): Promise<RecordFields | null> {
    this.calls.push({ op: 'readRecord', key });
    return this.records.get(key) ?? null;
  }
  async updateFields(key: string, fields: RecordFields): Promise<void> {
    this.calls.push({ op: 'updateFields', key });
    this.records.set(key, { ...(this.records.get(key) ?? {}), ...fields });
  }
  async scanRecords(startKey: string, count: number): Promise<number> {
    this.calls.push({ op: 'scanRecords', key: startKey, bytes: count });
    return [...this.records.keys()].filter((k) => k >= startKey).slice(0, count).length;
  }
  async get(key: string): Promise<Buffer | null> {
    this.calls.push({ op: 'get', key });
    return this.values.get(key) ?? null;
  }
  async getMany(keys: string[]): Promise<(Buffer | null)[]> {
    this.calls.push({ op: 'getMany', key: keys[0]!, keys });
    return keys.map((k) => this.values.get(k) ?? null);
  }
  async put(key: string, value: Buffer): Promise<void> {
    this.calls.push({ op: 'put', key, bytes: value.length });
    this.values.set(key, value);
  }
  async append(key: string, bytes: Buffer): Promise<void> {
    this.calls.push({ op: 'append', key, bytes: bytes.length });
    this.values.set(key, Buffer.concat([this.values.get(key) ?? Buffer.alloc(0), bytes]));
  }
  async close(): Promise<void> {}
}

const params = (over: Partial<WorkloadParams> = {}): WorkloadParams => ({ records: 1000, seed: 1, verify: true, processIndex: 0, processCount: 1, ...over });

async function load(w: Workload, t: Target): Promise<void> {
  const src = w.loadSource();
  for (let i = 0; i < w.loadCount; i++) await src.next().run(t);
}

function mixOf(w: Workload, n: number): Record<string, number> {
  const c: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const op = w.next();
    c[op.type] = (c[op.type] ?? 0) + 1;
  }
  for (const k of Object.keys(c)) c[k]! /= n;
  return c;
}

describe('YCSB workloads', () => {
  for (const [name, mix] of Object.entries(YCSB_MIXES)) {
    for (const variant of [name, `${name}-uniform`]) {
      it(`${variant} has YCSB's operation mix`, () => {
        const got = mixOf(createWorkload(variant, params()), 40_000);
        assert.deepEqual(Object.keys(got).sort(), Object.keys(mix).sort());
        for (const [op, share] of Object.entries(mix)) {
          assert.ok(Math.abs(got[op]! - share) < 0.01, `${variant} ${op}: ${got[op]} vs ${share}`);
        }
      });
    }
  }

  it('loads 10 fields of 100 bytes under YCSB key names, split across processes', async () => {
    const seen = new Set<string>();
    for (let p = 0; p < 3; p++) {
      const t = new MemoryTarget();
      const w = createWorkload('ycsb-a', params({ records: 100, processIndex: p, processCount: 3 }));
      await load(w, t);
      for (const [key, rec] of t.records) {
        assert.ok(!seen.has(key), `${key} loaded twice`);
        seen.add(key);
        assert.deepEqual(Object.keys(rec), Array.from({ length: 10 }, (_, i) => `field${i}`));
        for (const v of Object.values(rec)) assert.equal(v.length, 100);
      }
    }
    assert.equal(seen.size, 100);
    assert.ok(seen.has('user6284781860667377211'), 'key 0 is named as YCSB names it');
    assert.ok(seen.has(ycsbKeyName(99)));
  });

  it('workload E scans 1..100 records; D and E insert new keys that reads can then find', async () => {
    const t = new MemoryTarget();
    const e = createWorkload('ycsb-e', params({ records: 200 }));
    await load(e, t);
    const lengths = new Set<number>();
    for (let i = 0; i < 5000; i++) await e.next().run(t);
    for (const c of t.calls.filter((c) => c.op === 'scanRecords')) {
      assert.ok(c.bytes! >= 1 && c.bytes! <= 100);
      lengths.add(c.bytes!);
    }
    assert.ok(lengths.has(1) && lengths.has(100) && lengths.size > 90, 'scan lengths cover 1..100');
    assert.ok(t.records.size > 200, 'inserts added records');

    const d = createWorkload('ycsb-d', params({ records: 200 }));
    const td = new MemoryTarget();
    await load(d, td);
    for (let i = 0; i < 5000; i++) await d.next().run(td);
    assert.equal(d.verifyCounts.mismatches, 0, 'latest never reads a key before its insert is acknowledged');
    const reads = td.calls.filter((c) => c.op === 'readRecord').map((c) => c.key);
    const inserted = new Set(td.calls.filter((c) => c.op === 'insertRecord').slice(200).map((c) => c.key));
    const recentReads = reads.filter((k) => inserted.has(k)).length;
    assert.ok(recentReads / reads.length > 0.3, `latest favours new inserts: ${recentReads}/${reads.length}`);
  });

  it('verify accepts every record written and counts a corrupted field', async () => {
    const t = new MemoryTarget();
    const w = createWorkload('ycsb-a', params({ records: 50 }));
    await load(w, t);
    for (let i = 0; i < 2000; i++) await w.next().run(t);
    assert.ok(w.verifyCounts.checkedValues > 1000);
    assert.equal(w.verifyCounts.mismatches, 0);
    for (const rec of t.records.values()) rec.field3![40] ^= 0xff;
    for (let i = 0; i < 200; i++) await w.next().run(t);
    assert.ok(w.verifyCounts.mismatches > 0);
    assert.deepEqual(Object.keys(w.verifyCounts.byReason), ['checksum']);
  });
});

describe('RAG-1 retrieval', () => {
  it('loads 1-6 KiB chunks and their documents, then alternates multi-gets of 8-32 chunks with a parent read', async () => {
    const t = new MemoryTarget();
    const w = createWorkload('rag-1', params({ records: 800 }));
    await load(w, t);
    const chunkSizes = [...t.values].filter(([k]) => k.startsWith('chunk:')).map(([, v]) => v.length);
    assert.equal(chunkSizes.length, 800);
    assert.equal([...t.values.keys()].filter((k) => k.startsWith('doc:')).length, 800 / RAG_CHUNKS_PER_DOC);
    assert.ok(Math.min(...chunkSizes) >= 1024 && Math.max(...chunkSizes) <= 6144);
    assert.ok(Math.min(...chunkSizes) < 1200 && Math.max(...chunkSizes) > 5900, 'sizes cover the range');

    t.calls.length = 0;
    const sizes = new Set<number>();
    for (let i = 0; i < 4000; i++) {
      const op = w.next();
      assert.equal(op.type, i % 2 === 0 ? 'multiget' : 'parent-read');
      await op.run(t);
    }
    for (let i = 0; i < t.calls.length; i += 2) {
      const batch = t.calls[i]!;
      const parent = t.calls[i + 1]!;
      assert.equal(batch.op, 'getMany');
      const n = batch.keys!.length;
      assert.ok(n >= RAG1_BATCH_MIN && n <= RAG1_BATCH_MAX, `batch of ${n}`);
      assert.equal(new Set(batch.keys).size, n, 'chunks of a batch are distinct');
      sizes.add(n);
      const top = Number(batch.keys![0]!.slice('chunk:'.length));
      assert.deepEqual(parent, { op: 'get', key: `doc:${Math.floor(top / RAG_CHUNKS_PER_DOC)}` });
    }
    assert.equal(sizes.size, RAG1_BATCH_MAX - RAG1_BATCH_MIN + 1, 'every batch size occurs');
    assert.equal(w.verifyCounts.mismatches, 0);
    assert.ok(w.verifyCounts.checkedValues > 30_000);
  });

  it('zipfian popularity concentrates reads; the uniform variant does not', async () => {
    const hottestShare = async (name: string) => {
      const t = new MemoryTarget();
      const w = createWorkload(name, params({ records: 2000, verify: false }));
      for (let i = 0; i < 2000; i++) await w.next().run(t);
      const c = new Map<string, number>();
      let total = 0;
      for (const call of t.calls) for (const k of call.keys ?? []) (c.set(k, (c.get(k) ?? 0) + 1), total++);
      return Math.max(...c.values()) / total;
    };
    assert.ok((await hottestShare('rag-1')) > 0.01);
    assert.ok((await hottestShare('rag-1-uniform')) < 0.005);
  });
});

describe('RAG-2 ingest', () => {
  it('appends 64 B - 4 KiB frames, updates metadata fields and reads the same values, 40/20/40', async () => {
    const t = new MemoryTarget();
    const w = createWorkload('rag-2', params({ records: 300 }));
    await load(w, t);
    const c: Record<string, number> = {};
    const n = 20_000;
    for (let i = 0; i < n; i++) {
      const op = w.next();
      const type = op.type === 'rewrite' ? 'append' : op.type;
      c[type] = (c[type] ?? 0) + 1;
      await op.run(t);
    }
    for (const [op, share] of Object.entries(RAG2_MIX)) assert.ok(Math.abs(c[op]! / n - share) < 0.015, `${op}: ${c[op]! / n}`);
    const appendSizes = t.calls.filter((x) => x.op === 'append').map((x) => x.bytes!);
    assert.ok(Math.min(...appendSizes) >= 64 && Math.max(...appendSizes) <= 4096);
    assert.ok(Math.min(...appendSizes) < 100 && Math.max(...appendSizes) > 4000);
    assert.ok([...t.values].some(([k, v]) => v.length > 8192 && verifyValue(k, v).frames > 2), 'values grew by appends');
    const reads = t.calls.filter((x) => x.op === 'get').map((x) => x.key);
    const written = new Set(t.calls.filter((x) => x.op === 'append').map((x) => x.key));
    assert.ok(reads.filter((k) => written.has(k)).length / reads.length > 0.9, 'reads hit the keys being appended to');
    assert.ok(t.calls.some((x) => x.op === 'updateFields' && x.key.endsWith(':meta')));
    assert.equal(w.verifyCounts.mismatches, 0, 'grown values are sequences of intact frames');
    assert.ok(w.verifyCounts.checkedValues > 7000);
  });
});

describe('values and --verify', () => {
  const f = new ValueFactory(5, 3, true);

  it('accepts a right value and one grown by appends', () => {
    const v = f.make('chunk:1', 1000);
    assert.equal(v.length, 1000);
    assert.deepEqual(verifyValue('chunk:1', v), { ok: true, frames: 1 });
    const grown = Buffer.concat([v, f.make('chunk:1', 64), f.make('chunk:1', FRAME_HEADER_BYTES)]);
    assert.deepEqual(verifyValue('chunk:1', grown), { ok: true, frames: 3 });
  });

  it('detects a corrupted byte, a wrong key, a truncated value and garbage', () => {
    const v = f.make('chunk:2', 500);
    for (const at of [3, 6, 10, 14, 16, 250, 499]) {
      const bad = Buffer.from(v);
      bad[at]! ^= 0x01;
      assert.equal(verifyValue('chunk:2', bad).ok, false, `flip at byte ${at}`);
    }
    assert.equal(verifyValue('chunk:3', v).reason, 'checksum');
    assert.equal(verifyValue('chunk:2', v.subarray(0, 499)).reason, 'bad-frame');
    assert.equal(verifyValue('chunk:2', Buffer.from('hello world, not a frame')).reason, 'bad-frame');
    assert.equal(verifyValue('chunk:2', Buffer.alloc(0)).reason, 'empty');
    assert.equal(verifyValue('chunk:2', new ValueFactory(5, 3, false).make('chunk:2', 100)).reason, 'no-checksum');
  });

  it('generates the same values from the same seed, and new versions differ', () => {
    const a = new ValueFactory(9, 0, true);
    const b = new ValueFactory(9, 0, true);
    const first = a.make('k', 200);
    assert.deepEqual(first, b.make('k', 200));
    assert.notDeepEqual(a.make('k', 200), first);
  });
});

describe('AckCounter', () => {
  it('advances only over contiguous acknowledged inserts', () => {
    const c = new AckCounter(10);
    const [a, b, d] = [c.next(), c.next(), c.next()];
    assert.equal(c.acknowledgedBelow, 10);
    c.ack(b);
    assert.equal(c.acknowledgedBelow, 10, 'a gap stops it');
    c.ack(a);
    assert.equal(c.acknowledgedBelow, 12);
    c.ack(d);
    assert.equal(c.acknowledgedBelow, 13);
  });
});
