import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Random } from '../src/common/random.js';
import { KvError } from '../src/common/errors.js';
import {
  type ElementType, type VectorItemInput, FLOAT16_TABLE, ITEM_BATCH_HEADER_BYTES, encodeDeleteBatch, encodeItemBatch,
  appendBreaksList, firstBatchBytes, float16Bits, isBatchRun, listShape, parseSegments, startsWithBatch,
} from '../src/compute/vector-items.js';
import { type Metric, type ScoreOptions, scoreBatch, scoreSegments } from '../src/compute/vector-score.js';
import { type KeyedHit, TopK, mergeTopK } from '../src/compute/topk.js';

const types: ElementType[] = ['float32', 'float16', 'int8', 'uint8'];
const metrics: Metric[] = ['L2', 'IP', 'COSINE'];
const noYield: ScoreOptions = { yieldFn: async () => {}, budgetMs: Infinity };

/** A random element of `type` (exactly representable, so decoding must give it back). */
function randomElement(rnd: Random, type: ElementType): number {
  switch (type) {
    case 'float32':
      return Math.fround(rnd.nextDouble() * 4 - 2);
    case 'float16':
      return FLOAT16_TABLE[float16Bits(rnd.nextDouble() * 4 - 2)]!;
    case 'int8':
      return rnd.intBetween(-128, 127);
    case 'uint8':
      return rnd.intBetween(0, 255);
  }
}

function randomItems(rnd: Random, type: ElementType, dim: number, count: number, opts: { payload?: boolean; prefix?: string } = {}): VectorItemInput[] {
  const items: VectorItemInput[] = [];
  for (let i = 0; i < count; i++) {
    const vector = Array.from({ length: dim }, () => randomElement(rnd, type));
    const item: VectorItemInput = { id: Buffer.from(`${opts.prefix ?? 'id'}-${i}-${rnd.nextU32()}`), vector };
    if (opts.payload) item.payload = Buffer.from(rnd.nextInt(2) === 0 ? `even:${i}` : `odd:${i}`);
    items.push(item);
  }
  return items;
}

/** The naive reference: distance from plain arrays, in doubles, one element at a time. */
function referenceDistance(metric: Metric, v: ArrayLike<number>, q: ArrayLike<number>): number {
  let l2 = 0;
  let dot = 0;
  let vv = 0;
  let qq = 0;
  for (let d = 0; d < q.length; d++) {
    l2 += (v[d]! - q[d]!) ** 2;
    dot += v[d]! * q[d]!;
    vv += v[d]! ** 2;
    qq += q[d]! ** 2;
  }
  if (metric === 'L2') return l2;
  if (metric === 'IP') return -dot;
  return vv === 0 ? 1 : 1 - dot / Math.sqrt(vv * qq);
}

function randomQuery(rnd: Random, dim: number): Float32Array {
  return Float32Array.from({ length: dim }, () => rnd.nextDouble() * 4 - 2);
}

const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);

test('encode/parse round trip for every element type, with and without payloads', () => {
  const rnd = new Random(1);
  for (const type of types) {
    for (const dim of [1, 3, 128]) {
      const a = randomItems(rnd, type, dim, 7, { payload: true });
      const b = randomItems(rnd, type, dim, 5);
      const value = Buffer.concat([encodeItemBatch({ type, dim, items: a }), encodeDeleteBatch([a[0]!.id]), encodeItemBatch({ type, dim, items: b })]);
      const batches = parseSegments(value);
      assert.equal(batches.length, 3);
      assert.deepEqual(listShape(value), { type, dim });
      let offset = 0;
      for (const batch of batches) {
        assert.equal(batch.byteOffset, offset);
        assert.equal(batch.byteLength % 4, 0);
        offset += batch.byteLength;
      }
      assert.equal(offset, value.length);
      const check = (batchIndex: number, items: VectorItemInput[], withPayload: boolean) => {
        const batch = batches[batchIndex]!;
        assert.equal(batch.kind, 'items');
        assert.equal(batch.type, type);
        assert.equal(batch.dim, dim);
        assert.equal(batch.count, items.length);
        items.forEach((item, i) => {
          assert.deepEqual(batch.ids(i), item.id);
          assert.deepEqual(batch.payload(i), withPayload ? item.payload : null);
          const raw = Array.from(batch.vectors.subarray(i * dim, (i + 1) * dim));
          const decoded = type === 'float16' ? raw.map((h) => FLOAT16_TABLE[h]!) : raw;
          assert.deepEqual(decoded, Array.from(item.vector));
        });
      };
      check(0, a, true);
      check(2, b, false);
      assert.equal(batches[1]!.kind, 'deletes');
      assert.equal(batches[1]!.count, 1);
      assert.deepEqual(batches[1]!.ids(0), a[0]!.id);
    }
  }
});

test('typed-array vectors are accepted as input', () => {
  const value = Buffer.concat([
    encodeItemBatch({ type: 'float32', dim: 2, items: [{ id: Buffer.from('a'), vector: new Float32Array([1.5, -2]) }] }),
  ]);
  assert.deepEqual(Array.from(parseSegments(value)[0]!.vectors), [1.5, -2]);
  const i8 = parseSegments(encodeItemBatch({ type: 'int8', dim: 2, items: [{ id: Buffer.from('a'), vector: new Int8Array([-128, 127]) }] }))[0]!;
  assert.deepEqual(Array.from(i8.vectors), [-128, 127]);
  const u8 = parseSegments(encodeItemBatch({ type: 'uint8', dim: 2, items: [{ id: Buffer.from('a'), vector: new Uint8Array([0, 255]) }] }))[0]!;
  assert.deepEqual(Array.from(u8.vectors), [0, 255]);
});

test('aligned batches are views: writing the value changes vectors, ids and payloads', () => {
  const rnd = new Random(2);
  for (const type of types) {
    const dim = 5;
    const items = randomItems(rnd, type, dim, 3, { payload: true });
    // Concatenation after an odd-length delete batch still leaves the vectors aligned.
    const value = Buffer.concat([encodeDeleteBatch([Buffer.from('x')]), encodeItemBatch({ type, dim, items })]);
    const batch = parseSegments(value)[1]!;
    assert.equal(batch.vectorsCopied, false);
    assert.equal(batch.vectors.buffer, value.buffer, 'vectors share the value memory');
    // Write element dim + 1 through the Buffer; the view must see it.
    const at = batch.vectors.byteOffset - value.byteOffset + (dim + 1) * batch.vectors.BYTES_PER_ELEMENT;
    const written = { float32: 42.5, float16: 0x3c00, int8: -99, uint8: 201 }[type];
    if (type === 'float32') value.writeFloatLE(written, at);
    else if (type === 'float16') value.writeUInt16LE(written, at);
    else if (type === 'int8') value.writeInt8(written, at);
    else value[at] = written;
    assert.equal(batch.vectors[dim + 1], written);
    const id = batch.ids(2);
    id[0] = 0x5a;
    assert.equal(batch.ids(2)[0], 0x5a, 'ids(i) is a view');
    const payload = batch.payload(1)!;
    payload[0] = 0x21;
    assert.equal(batch.payload(1)![0], 0x21, 'payload(i) is a view');
  }
});

test('a value starting at a misaligned address gets one copy of its vectors, with the same contents', () => {
  const rnd = new Random(3);
  const items = randomItems(rnd, 'float32', 4, 6);
  const encoded = encodeItemBatch({ type: 'float32', dim: 4, items });
  const backing = new ArrayBuffer(encoded.length + 1);
  const value = Buffer.from(backing, 1, encoded.length);
  encoded.copy(value);
  const batch = parseSegments(value)[0]!;
  assert.equal(batch.vectorsCopied, true);
  assert.deepEqual(Array.from(batch.vectors), items.flatMap((it) => Array.from(it.vector)));
  const q = randomQuery(rnd, 4);
  const out = scoreBatch(batch, q, 'L2');
  items.forEach((it, i) => close(out[i]!, referenceDistance('L2', it.vector, q), `item ${i}`));
});

test('encode rejects bad input with a message naming the item and the problem', () => {
  const id = Buffer.from('a');
  const cases: [() => unknown, RegExp][] = [
    [() => encodeItemBatch({ type: 'float32', dim: 0, items: [{ id, vector: [] }] }), /dim must be an integer 1\.\.4096, got 0/],
    [() => encodeItemBatch({ type: 'float32', dim: 4097, items: [{ id, vector: [] }] }), /dim must be an integer 1\.\.4096, got 4097/],
    [() => encodeItemBatch({ type: 'float64' as ElementType, dim: 1, items: [{ id, vector: [1] }] }), /unknown element type 'float64'/],
    [() => encodeItemBatch({ type: 'float32', dim: 1, items: [] }), /at least one item/],
    [() => encodeItemBatch({ type: 'float32', dim: 1, items: [{ id, vector: [1] }, { id: Buffer.alloc(0), vector: [1] }] }), /item 1: id is 0 bytes, must be 1\.\.255/],
    [() => encodeItemBatch({ type: 'float32', dim: 1, items: [{ id: Buffer.alloc(256), vector: [1] }] }), /item 0: id is 256 bytes/],
    [() => encodeItemBatch({ type: 'float32', dim: 3, items: [{ id, vector: [1, 2, 3] }, { id, vector: [1, 2] }] }), /item 1: vector has 2 elements, dim is 3/],
    [() => encodeItemBatch({ type: 'float32', dim: 2, items: [{ id, vector: [1, NaN] }] }), /item 0: vector\[1\] = NaN is not a finite number/],
    [() => encodeItemBatch({ type: 'float32', dim: 1, items: [{ id, vector: [1e39] }] }), /outside the float32 range/],
    [() => encodeItemBatch({ type: 'float16', dim: 2, items: [{ id, vector: [0, 70000] }] }), /item 0: vector\[1\] = 70000 is outside the float16 range/],
    [() => encodeItemBatch({ type: 'int8', dim: 2, items: [{ id, vector: [1, 1.5] }] }), /vector\[1\] = 1\.5 is not an integer in -128\.\.127/],
    [() => encodeItemBatch({ type: 'int8', dim: 1, items: [{ id, vector: [128] }] }), /= 128 is not an integer in -128\.\.127/],
    [() => encodeItemBatch({ type: 'uint8', dim: 1, items: [{ id, vector: [-1] }] }), /= -1 is not an integer in 0\.\.255/],
    [() => encodeItemBatch({ type: 'uint8', dim: 1, items: [{ id, vector: [256] }] }), /= 256 is not an integer in 0\.\.255/],
    [() => encodeDeleteBatch([]), /at least one id/],
    [() => encodeDeleteBatch([id, Buffer.alloc(300)]), /id 1: id is 300 bytes/],
  ];
  for (const [fn, message] of cases) assert.throws(fn, (e: unknown) => e instanceof RangeError && message.test(e.message), String(message));
});

test('isBatchRun agrees with parseSegments at every truncation and byte flip, without throwing', () => {
  const rnd = new Random(9);
  const value = Buffer.concat([
    encodeItemBatch({ type: 'int8', dim: 5, items: randomItems(rnd, 'int8', 5, 4, { payload: true }) }),
    encodeDeleteBatch([Buffer.from('gone')]),
    encodeItemBatch({ type: 'int8', dim: 5, items: randomItems(rnd, 'int8', 5, 3) }),
  ]);
  const parses = (v: Buffer) => {
    try {
      parseSegments(v);
      return true;
    } catch {
      return false;
    }
  };
  let runs = 0;
  for (let cut = 1; cut <= value.length; cut++) {
    const prefix = value.subarray(0, cut);
    assert.equal(isBatchRun(prefix), parses(prefix), `cut at ${cut}`);
    if (isBatchRun(prefix)) runs++;
  }
  assert.equal(runs, 3, 'a prefix is a run exactly at each batch boundary');
  for (let at = 0; at < value.length; at++) {
    for (const x of [0x00, 0xff, 0x80, 0x01]) {
      const bad = Buffer.from(value);
      bad[at] = bad[at]! ^ x;
      assert.equal(isBatchRun(bad), parses(bad), `byte ${at} ^ ${x}`);
    }
  }
  assert.equal(isBatchRun(Buffer.alloc(0)), false, 'no bytes are no batch');
  assert.equal(isBatchRun(Buffer.from('plain text')), false);
});

test('appendBreaksList: only raw bytes onto a value that starts with a well-formed batch', () => {
  const items = encodeItemBatch({ type: 'uint8', dim: 2, items: [{ id: Buffer.from('a'), vector: [1, 2] }] });
  const deletes = encodeDeleteBatch([Buffer.from('a')]);
  const list = Buffer.concat([items, deletes]);
  const raw = Buffer.from('raw bytes');
  const broken = Buffer.from(items);
  broken.writeUInt32LE(7, ITEM_BATCH_HEADER_BYTES); // id offsets must start at 0
  const cases: [string, Buffer | null, Buffer, boolean][] = [
    ['raw onto a list', list, raw, true],
    ['raw onto a list that starts with a delete batch', deletes, raw, true],
    ['raw onto the first piece only', items, raw, true],
    ['batches followed by raw bytes onto a list', list, Buffer.concat([items, raw]), true],
    ['an item batch onto a list', list, items, false],
    ['a delete batch onto a list', list, deletes, false],
    ['nothing onto a list', list, Buffer.alloc(0), false],
    ['raw onto no value', null, raw, false],
    ['raw onto an empty value', Buffer.alloc(0), raw, false],
    ['raw onto a plain value', Buffer.from('hello'), raw, false],
    ['raw onto a value with a batch header but a bad batch', broken, raw, false],
    ['raw onto a value with only a batch header', items.subarray(0, ITEM_BATCH_HEADER_BYTES), raw, false],
    ['raw onto a value starting with the magic byte', Buffer.from([0xa7, 1, 2, 3]), raw, false],
  ];
  for (const [what, head, bytes, want] of cases) assert.equal(appendBreaksList(head, bytes), want, what);
  assert.equal(startsWithBatch(list), true);
  assert.equal(startsWithBatch(broken), false);
  // The 16-byte header says how much to read next; 0 when it does not start like a batch.
  assert.equal(firstBatchBytes(list.subarray(0, ITEM_BATCH_HEADER_BYTES)), items.length);
  assert.equal(firstBatchBytes(deletes), deletes.length);
  assert.equal(firstBatchBytes(list.subarray(0, ITEM_BATCH_HEADER_BYTES - 1)), 0);
  assert.equal(firstBatchBytes(Buffer.from('0123456789abcdef')), 0);
  assert.equal(appendBreaksList(list.subarray(0, firstBatchBytes(list)), raw), true, 'the first batch is enough to tell');
});

test('parse rejects values that are not posting lists, at every truncation and byte flip', () => {
  const isWrongType = (e: unknown) => e instanceof KvError && e.code === 'WRONG_TYPE' && /not a vector posting list/.test(e.message);
  assert.deepEqual(parseSegments(Buffer.alloc(0)), []);
  assert.equal(listShape(Buffer.alloc(0)), null);
  assert.throws(() => parseSegments(Buffer.from('hello world, this is a plain string')), isWrongType);
  assert.throws(() => listShape(Buffer.from('hello world, this is a plain string')), isWrongType);
  const header = encodeItemBatch({ type: 'float32', dim: 1, items: [{ id: Buffer.from('a'), vector: [1] }] });
  const badVersion = Buffer.from(header);
  badVersion[1] = 9;
  assert.throws(() => parseSegments(badVersion), /unsupported format version 9/);
  const hugeCount = Buffer.from(header);
  hugeCount.writeUInt32LE(0xffffffff, 8);
  assert.throws(() => parseSegments(hugeCount), /count 4294967295 does not fit the batch/);
  // Offsets of ids 'aa', 'bb' are [0, 2, 4]; an out-of-order middle offset is caught.
  const two = encodeItemBatch({ type: 'uint8', dim: 1, items: [{ id: Buffer.from('aa'), vector: [1] }, { id: Buffer.from('bb'), vector: [2] }] });
  const badOffset = Buffer.from(two);
  badOffset.writeUInt32LE(5, ITEM_BATCH_HEADER_BYTES + 4);
  assert.throws(() => parseSegments(badOffset), /id 1 has a bad length/);
  const emptyId = Buffer.from(two);
  emptyId.writeUInt32LE(0, ITEM_BATCH_HEADER_BYTES + 4);
  assert.throws(() => parseSegments(emptyId), /id 0 has a bad length/);

  const rnd = new Random(4);
  const value = Buffer.concat([
    encodeItemBatch({ type: 'float16', dim: 3, items: randomItems(rnd, 'float16', 3, 3, { payload: true }) }),
    encodeDeleteBatch([Buffer.from('abc')]),
    encodeItemBatch({ type: 'float16', dim: 3, items: randomItems(rnd, 'float16', 3, 2) }),
  ]);
  const boundaries = new Set([0, ...parseSegments(value).map((b) => b.byteOffset + b.byteLength)]);
  for (let cut = 0; cut < value.length; cut++) {
    const prefix = value.subarray(0, cut);
    if (boundaries.has(cut)) assert.equal(parseSegments(prefix).length, [...boundaries].filter((b) => b > 0 && b <= cut).length);
    else assert.throws(() => parseSegments(prefix), isWrongType, `cut at ${cut}`);
  }
  // Any single corrupted byte either still parses (e.g. inside vector data) or is refused as
  // WRONG_TYPE; it never escapes as another error (an out-of-bounds read, a bad view).
  let refused = 0;
  for (let at = 0; at < value.length; at++) {
    for (const x of [0x00, 0xff, 0x80, 0x01]) {
      const bad = Buffer.from(value);
      bad[at] = bad[at]! ^ x;
      try {
        parseSegments(bad);
      } catch (e) {
        assert.ok(isWrongType(e), `byte ${at} ^ ${x}: ${String(e)}`);
        refused++;
      }
    }
  }
  assert.ok(refused > ITEM_BATCH_HEADER_BYTES * 3, `header corruption is detected (${refused} refused)`);
});

test('float16 conversion: exact on every half value, rounds to nearest even, error <= half an ulp', () => {
  for (let h = 0; h < 65536; h++) {
    const x = FLOAT16_TABLE[h]!;
    if (Number.isNaN(x)) continue;
    assert.equal(float16Bits(x), h, `half 0x${h.toString(16)}`);
  }
  assert.equal(FLOAT16_TABLE[float16Bits(65504)], 65504);
  assert.equal(FLOAT16_TABLE[float16Bits(2 ** -24)], 2 ** -24);
  assert.equal(FLOAT16_TABLE[float16Bits(2 ** -26)], 0, 'below half the smallest subnormal rounds to 0');
  assert.equal(FLOAT16_TABLE[float16Bits(1 + 2 ** -11)], 1, 'tie goes to the even mantissa');
  assert.equal(FLOAT16_TABLE[float16Bits(1 + 3 * 2 ** -11)], 1 + 2 ** -9, 'tie goes to the even mantissa');
  assert.equal(FLOAT16_TABLE[float16Bits(1 + 2 ** -11 + 2 ** -20)], 1 + 2 ** -10, 'above the tie rounds up');
  assert.equal(FLOAT16_TABLE[float16Bits(65520)], Infinity, 'overflow gives infinity');
  assert.equal(FLOAT16_TABLE[float16Bits(-1.5)], -1.5);
  const rnd = new Random(5);
  for (let i = 0; i < 20_000; i++) {
    const x = (rnd.nextDouble() * 2 - 1) * 2 ** rnd.intBetween(-14, 15);
    const y = FLOAT16_TABLE[float16Bits(x)]!;
    // Half an ulp: relative 2^-11 for normals, absolute 2^-25 in the subnormal range.
    assert.ok(Math.abs(y - x) <= Math.max(Math.abs(x) * 2 ** -11, 2 ** -25), `${x} -> ${y}`);
  }
});

test('scoring equals a naive reference for every metric and element type', () => {
  const rnd = new Random(6);
  for (const type of types) {
    for (const dim of [1, 7, 64, 130]) {
      const items = randomItems(rnd, type, dim, 40);
      items.push({ id: Buffer.from('zero'), vector: new Array(dim).fill(0) });
      const batch = parseSegments(encodeItemBatch({ type, dim, items }))[0]!;
      const q = randomQuery(rnd, dim);
      for (const metric of metrics) {
        const out = scoreBatch(batch, q, metric);
        items.forEach((it, i) => close(out[i]!, referenceDistance(metric, it.vector, q), `${type} d=${dim} ${metric} item ${i}`));
      }
    }
  }
});

test('top-k equals the first k of a full sort, ties broken by position', () => {
  const rnd = new Random(7);
  for (let round = 0; round < 200; round++) {
    const n = rnd.intBetween(0, 300);
    const k = rnd.intBetween(1, 40);
    const heap = new TopK(k);
    const all: { distance: number; batch: number; item: number }[] = [];
    for (let i = 0; i < n; i++) {
      const c = { distance: rnd.intBetween(0, 20) / 4, batch: rnd.intBetween(0, 3), item: i };
      all.push(c);
      heap.offer(c.distance, c.batch, c.item);
    }
    heap.offer(NaN, 0, 0);
    all.sort((a, b) => a.distance - b.distance || a.batch - b.batch || a.item - b.item);
    assert.deepEqual(heap.results(), all.slice(0, k));
  }
  assert.throws(() => new TopK(0), /k must be an integer 1\.\.10000, got 0/);
});

test('mergeTopK keeps one copy of a (key, id) reported by several replicas, best first', () => {
  const hit = (key: string, id: string, distance: number): KeyedHit => ({ key, id: Buffer.from(id), distance, score: -distance });
  const merged = mergeTopK(
    [
      [hit('p1', 'a', 1), hit('p1', 'b', 3), hit('p2', 'a', 4)],
      [hit('p1', 'a', 1), hit('p1', 'c', 2), hit('p2', 'x', 3)],
      [],
    ],
    4,
  );
  assert.deepEqual(merged.map((h) => `${h.key}/${h.id}:${h.distance}`), ['p1/a:1', 'p1/c:2', 'p1/b:3', 'p2/x:3']);
  assert.equal(mergeTopK([[hit('k', 'a', 1)]], 5).length, 1);
});

test('mergeTopK keeps each id once at its best (ties: lowest key) so k distinct ids come out; allCopies keeps each (key, id)', () => {
  const hit = (key: string, id: string, distance: number): KeyedHit => ({ key, id: Buffer.from(id), distance, score: -distance });
  const lists = [
    [hit('p3', 's', 1), hit('p3', 't', 2), hit('p3', 'u', 2.5)],
    [hit('p1', 's', 1), hit('p1', 't', 1.5), hit('p1', 'v', 3)],
    [hit('p2', 't', 4), hit('p2', 'w', 5)],
  ];
  const names = (hs: KeyedHit[]) => hs.map((h) => `${h.key}/${h.id}:${h.distance}`);
  assert.deepEqual(names(mergeTopK(lists, 4)), ['p1/s:1', 'p1/t:1.5', 'p3/u:2.5', 'p1/v:3']);
  assert.deepEqual(names(mergeTopK(lists, 4, { allCopies: true })), ['p1/s:1', 'p3/s:1', 'p1/t:1.5', 'p3/t:2']);
  assert.deepEqual(names(mergeTopK([...lists].reverse(), 1)), ['p1/s:1'], 'the tie goes to the lowest key whatever the order');
});

/** Brute force over a list with the same delete rule, for comparison. */
function bruteForce(parts: { items?: VectorItemInput[]; deletes?: Buffer[] }[], q: Float32Array, metric: Metric, k: number, prefix?: Buffer) {
  const live: { id: string; v: ArrayLike<number>; payload?: Buffer; pos: number }[] = [];
  let pos = 0;
  for (const part of parts) {
    if (part.deletes) {
      const dead = new Set(part.deletes.map((d) => d.toString('latin1')));
      for (let i = live.length - 1; i >= 0; i--) if (dead.has(live[i]!.id)) live.splice(i, 1);
    }
    for (const it of part.items ?? []) live.push({ id: it.id.toString('latin1'), v: it.vector, payload: it.payload, pos: pos++ });
  }
  return live
    .filter((x) => !prefix || (x.payload && x.payload.subarray(0, prefix.length).equals(prefix)))
    .map((x) => ({ id: x.id, d: referenceDistance(metric, x.v, q), pos: x.pos }))
    .sort((a, b) => a.d - b.d || a.pos - b.pos)
    .slice(0, k);
}

const encodeParts = (type: ElementType, dim: number, parts: { items?: VectorItemInput[]; deletes?: Buffer[] }[]) =>
  Buffer.concat(parts.map((p) => (p.deletes ? encodeDeleteBatch(p.deletes) : encodeItemBatch({ type, dim, items: p.items! }))));

test('scoreSegments honours deletes; an id appended after its delete is live again', async () => {
  const rnd = new Random(8);
  const dim = 8;
  const a = randomItems(rnd, 'float32', dim, 50, { prefix: 'a' });
  const b = randomItems(rnd, 'float32', dim, 50, { prefix: 'b' });
  const q = randomQuery(rnd, dim);
  // Delete the items nearest to q, then re-append one of them with a new vector.
  const nearest = bruteForce([{ items: a }], q, 'L2', 5).map((x) => Buffer.from(x.id, 'latin1'));
  const reappended = { id: nearest[0]!, vector: Array.from(q, (x) => Math.fround(x + 0.001)) };
  const parts = [{ items: a }, { deletes: nearest }, { items: b }, { items: [reappended] }];
  const value = encodeParts('float32', dim, parts);
  const result = await scoreSegments(parseSegments(value), q, 'L2', 10, noYield);
  const expected = bruteForce(parts, q, 'L2', 10);
  assert.deepEqual(result.hits.map((h) => h.id.toString('latin1')), expected.map((x) => x.id));
  assert.deepEqual(result.hits[0]!.id, nearest[0], 'the re-appended item is live (and nearest)');
  for (const dead of nearest.slice(1)) assert.ok(!result.hits.some((h) => h.id.equals(dead)), 'deleted ids are gone');
  assert.equal(result.scanned, 100 + 1 - 5);
  result.hits.forEach((h, i) => close(h.distance, expected[i]!.d, `hit ${i}`));

  // Ids deleted by the caller are dead wherever they were appended.
  const withCaller = await scoreSegments(parseSegments(value), q, 'L2', 10, { ...noYield, deleted: new Set([nearest[0]!.toString()]) });
  assert.ok(!withCaller.hits.some((h) => h.id.equals(nearest[0]!)));
  assert.equal(withCaller.hits.length, 10);
});

test('scoreSegments filters on a payload prefix and reports payloads and scores', async () => {
  const rnd = new Random(9);
  const dim = 16;
  const items = randomItems(rnd, 'int8', dim, 200, { payload: true });
  const value = encodeParts('int8', dim, [{ items }]);
  const q = randomQuery(rnd, dim);
  for (const metric of metrics) {
    const prefix = Buffer.from('even:');
    const result = await scoreSegments(parseSegments(value), q, metric, 7, { ...noYield, filterPayloadPrefix: prefix });
    const expected = bruteForce([{ items }], q, metric, 7, prefix);
    assert.deepEqual(result.hits.map((h) => h.id.toString('latin1')), expected.map((x) => x.id));
    for (const h of result.hits) {
      assert.ok(h.payload!.subarray(0, 5).equals(prefix));
      const natural = metric === 'L2' ? h.distance : metric === 'IP' ? -h.distance : 1 - h.distance;
      assert.equal(h.score, natural);
    }
  }
  const none = await scoreSegments(parseSegments(value), q, 'L2', 7, { ...noYield, filterPayloadPrefix: Buffer.from('nothing') });
  assert.deepEqual(none.hits, []);
});

test('scoreSegments skips batches of another shape and checks the query against the declared one', async () => {
  const rnd = new Random(10);
  const first = randomItems(rnd, 'float32', 4, 3);
  const other = randomItems(rnd, 'float32', 5, 2);
  const value = Buffer.concat([encodeDeleteBatch([Buffer.from('nobody')]), encodeItemBatch({ type: 'float32', dim: 4, items: first }), encodeItemBatch({ type: 'float32', dim: 5, items: other })]);
  assert.deepEqual(listShape(value), { type: 'float32', dim: 4 });
  const result = await scoreSegments(parseSegments(value), randomQuery(rnd, 4), 'IP', 10, noYield);
  assert.equal(result.hits.length, 3);
  assert.equal(result.skippedShape, 2);
  await assert.rejects(scoreSegments(parseSegments(value), randomQuery(rnd, 5), 'IP', 10, noYield), /query has 5 dimensions, the list has 4/);
  await assert.rejects(scoreSegments(parseSegments(value), new Float32Array(4), 'COSINE', 10, noYield), /zero norm/);
  assert.deepEqual((await scoreSegments(parseSegments(encodeDeleteBatch([Buffer.from('x')])), new Float32Array(3), 'L2', 1, noYield)).hits, []);
});

test('a large search with no time budget yields many times and returns the same result', async () => {
  const rnd = new Random(11);
  const dim = 32;
  const parts = [0, 1, 2, 3].map((p) => ({ items: randomItems(rnd, 'float16', dim, 5000, { prefix: `p${p}` }) }));
  const batches = parseSegments(encodeParts('float16', dim, parts));
  const q = randomQuery(rnd, dim);
  const reference = await scoreSegments(batches, q, 'COSINE', 20, noYield);
  assert.equal(reference.yields, 0);
  let yields = 0;
  const result = await scoreSegments(batches, q, 'COSINE', 20, {
    budgetMs: 0,
    yieldFn: () => {
      yields++;
      return new Promise((resolve) => setImmediate(resolve));
    },
  });
  assert.ok(yields >= 10, `yielded ${yields} times`);
  assert.equal(result.yields, yields);
  assert.equal(result.scanned, 20_000);
  assert.deepEqual(result.hits, reference.hits);

  // A fake clock that advances 1 ms per reading: a 5 ms budget yields every few checks.
  let now = 0;
  let fakeYields = 0;
  const timed = await scoreSegments(batches, q, 'COSINE', 20, { budgetMs: 5, clock: () => (now += 1), yieldFn: async () => void fakeYields++ });
  assert.deepEqual(timed.hits, reference.hits);
  assert.ok(fakeYields > 0 && fakeYields < yields, `${fakeYields} yields with a 5 ms budget`);
});
