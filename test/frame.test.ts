/**
 * Internode frame codec, without sockets: the same stream split at every offset, byte by byte
 * and in seeded random chunk sizes decodes to the same frames; a declared length over the
 * limit is refused from the length field alone; handshakes name what is wrong.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Random } from '../src/common/random.js';
import {
  FRAME_HEADER_BYTES,
  FrameDecoder,
  FrameError,
  FrameKind,
  HANDSHAKE_MAGIC,
  PROTOCOL_VERSION,
  checkHandshake,
  encodeFrame,
  encodeFrameHeader,
  encodeHandshake,
  type Frame,
} from '../src/cluster/frame.js';

const limit = 64 * 1024;

interface Expected {
  kind: FrameKind;
  id: number;
  channel: number;
  payload: Buffer;
}

const big = Buffer.alloc(20_000);
for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
const frames: Expected[] = [
  { kind: FrameKind.handshake, id: 0, channel: 0, payload: encodeHandshake({ cluster: 'c', nodeId: 'n1', nonce: Buffer.alloc(32) }) },
  { kind: FrameKind.request, id: 1, channel: 1, payload: Buffer.from('hello') },
  { kind: FrameKind.reply, id: 1, channel: 0, payload: Buffer.alloc(0) },
  { kind: FrameKind.oneWay, id: 0, channel: 0xffff, payload: Buffer.from([0, 0, 0, 0xff, 13, 10]) },
  { kind: FrameKind.request, id: 0xffffffff, channel: 2, payload: big },
  { kind: FrameKind.errorReply, id: 7, channel: 3, payload: Buffer.from('boom') },
  { kind: FrameKind.fatal, id: 0, channel: 0, payload: Buffer.from('bye') },
];
const stream = Buffer.concat(frames.map((f) => encodeFrame(f.kind, f.id, f.channel, f.payload)));

function show(f: Frame | Expected): string {
  return `${f.kind}/${f.id}/${f.channel}/${f.payload.toString('hex')}`;
}

function decodeChunks(chunks: Buffer[], decoder = new FrameDecoder(limit)): string[] {
  const out: string[] = [];
  for (const chunk of chunks) {
    decoder.push(chunk);
    for (let f = decoder.next(); f !== null; f = decoder.next()) out.push(show(f));
  }
  assert.equal(decoder.bufferedBytes, 0);
  return out;
}

const expected = frames.map(show);

describe('frame codec', () => {
  it('decodes the stream in one chunk', () => {
    assert.deepEqual(decodeChunks([stream]), expected);
  });

  it('decodes the stream split in two at every offset', () => {
    for (let i = 0; i <= stream.length; i++) {
      assert.deepEqual(decodeChunks([stream.subarray(0, i), stream.subarray(i)]), expected, `split at ${i}`);
    }
  });

  it('decodes the stream byte by byte', () => {
    const chunks: Buffer[] = [];
    for (let i = 0; i < stream.length; i++) chunks.push(stream.subarray(i, i + 1));
    assert.deepEqual(decodeChunks(chunks), expected);
  });

  it('decodes the stream in seeded random chunk sizes', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const random = new Random(seed);
      const chunks: Buffer[] = [];
      for (let at = 0; at < stream.length; ) {
        const n = random.intBetween(1, seed % 2 === 0 ? 64 : 8192);
        chunks.push(stream.subarray(at, at + n));
        at += n;
      }
      assert.deepEqual(decodeChunks(chunks), expected, `seed ${seed}`);
    }
  });

  it('returns null until a frame is complete and keeps the leftover', () => {
    const decoder = new FrameDecoder(limit);
    const one = encodeFrame(FrameKind.request, 5, 1, Buffer.from('abc'));
    decoder.push(Buffer.concat([one, one.subarray(0, 6)]));
    assert.equal(show(decoder.next()!), show({ kind: FrameKind.request, id: 5, channel: 1, payload: Buffer.from('abc') }));
    assert.equal(decoder.next(), null);
    assert.equal(decoder.bufferedBytes, 6);
    decoder.push(one.subarray(6));
    assert.equal(decoder.next()!.payload.toString(), 'abc');
    assert.equal(decoder.next(), null);
  });

  it('header and whole-frame encodings agree', () => {
    const payload = Buffer.from('payload');
    assert.deepEqual(
      Buffer.concat([encodeFrameHeader(FrameKind.oneWay, 9, 4, payload.length), payload]),
      encodeFrame(FrameKind.oneWay, 9, 4, payload),
    );
    assert.equal(encodeFrame(FrameKind.reply, 1, 0, Buffer.alloc(0)).length, FRAME_HEADER_BYTES);
  });

  it('refuses a declared length over the limit from the 4-byte length alone', () => {
    const decoder = new FrameDecoder(limit);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(1024 * 1024 * 1024, 0);
    decoder.push(header);
    assert.throws(() => decoder.next(), (err: unknown) => {
      assert.ok(err instanceof FrameError);
      assert.match(err.message, /frame of 1073741828 bytes is over limit 'peerFrameBytesMax' \(65536\)/);
      return true;
    });
    // Stays failed, and keeps nothing.
    decoder.push(Buffer.alloc(100));
    assert.throws(() => decoder.next(), FrameError);
    assert.equal(decoder.bufferedBytes, 0);
  });

  it('refuses an over-limit length split across chunks, and names the limit it was given', () => {
    const decoder = new FrameDecoder(1024, 'handshake frame size');
    const header = Buffer.alloc(4);
    header.writeUInt32BE(2000, 0);
    decoder.push(header.subarray(0, 2));
    assert.equal(decoder.next(), null);
    decoder.push(header.subarray(2));
    assert.throws(() => decoder.next(), /frame of 2004 bytes is over limit 'handshake frame size' \(1024\)/);
  });

  it('accepts a frame of exactly the limit and refuses one byte more', () => {
    const payloadBytes = limit - FRAME_HEADER_BYTES;
    const ok = new FrameDecoder(limit);
    ok.push(encodeFrame(FrameKind.oneWay, 0, 1, Buffer.alloc(payloadBytes, 1)));
    assert.equal(ok.next()!.payload.length, payloadBytes);
    const over = new FrameDecoder(limit);
    over.push(encodeFrameHeader(FrameKind.oneWay, 0, 1, payloadBytes + 1));
    assert.throws(() => over.next(), FrameError);
  });

  it('setLimit raises the limit (after the handshake)', () => {
    const decoder = new FrameDecoder(1024, 'handshake frame size');
    decoder.setLimit(limit, 'peerFrameBytesMax');
    decoder.push(encodeFrame(FrameKind.request, 1, 1, big));
    assert.equal(decoder.next()!.payload.length, big.length);
  });

  it('refuses a length shorter than the header and an unknown kind', () => {
    const short = new FrameDecoder(limit);
    short.push(Buffer.from([0, 0, 0, 3, 1, 2, 3]));
    assert.throws(() => short.next(), /frame length 3 is shorter than the 7-byte header/);
    const kind = new FrameDecoder(limit);
    const frame = encodeFrame(FrameKind.request, 1, 1, Buffer.from('x'));
    frame[4] = 42;
    kind.push(frame);
    assert.throws(() => kind.next(), /unknown frame kind 42/);
    // The same, with the header split so the slow path checks it.
    const split = new FrameDecoder(limit);
    split.push(frame.subarray(0, 3));
    assert.equal(split.next(), null);
    split.push(frame.subarray(3));
    assert.throws(() => split.next(), /unknown frame kind 42/);
  });
});

describe('handshake', () => {
  it('round-trips a node id in the same cluster', () => {
    const nonce = Buffer.alloc(32, 7);
    assert.deepEqual(checkHandshake(encodeHandshake({ cluster: 'prod', nodeId: 'n-é1', nonce }), 'prod'), { ok: true, nodeId: 'n-é1', nonce, proof: Buffer.alloc(0) });
    const proof = Buffer.alloc(32, 9);
    assert.deepEqual(checkHandshake(encodeHandshake({ cluster: 'prod', nodeId: 'n2', nonce, proof }), 'prod'), { ok: true, nodeId: 'n2', nonce, proof });
  });

  it('names both clusters when they differ', () => {
    assert.deepEqual(checkHandshake(encodeHandshake({ cluster: 'x', nodeId: 'a', nonce: Buffer.alloc(32) }), 'y'), {
      ok: false,
      reason: "peer is in cluster 'x', this node is in cluster 'y'",
    });
  });

  it('refuses another protocol version and a wrong magic', () => {
    const v2 = checkHandshake(encodeHandshake({ cluster: 'c', nodeId: 'a', nonce: Buffer.alloc(32) }, PROTOCOL_VERSION + 1), 'c');
    assert.deepEqual(v2, { ok: false, reason: `peer speaks internode protocol version ${PROTOCOL_VERSION + 1}, this node speaks version ${PROTOCOL_VERSION}` });
    const magic = checkHandshake(encodeHandshake({ cluster: 'c', nodeId: 'a', nonce: Buffer.alloc(32) }, PROTOCOL_VERSION, 0x48545450), 'c');
    assert.equal(magic.ok, false);
    assert.match((magic as { reason: string }).reason, new RegExp(`magic 0x48545450, expected 0x${HANDSHAKE_MAGIC.toString(16)}`));
  });

  it('refuses every truncation and trailing bytes', () => {
    const good = encodeHandshake({ cluster: 'cluster', nodeId: 'node', nonce: Buffer.alloc(32) });
    for (let n = 0; n < good.length; n++) {
      const check = checkHandshake(good.subarray(0, n), 'cluster');
      assert.equal(check.ok, false, `truncated to ${n}`);
      assert.match((check as { reason: string }).reason, /malformed handshake/);
    }
    assert.match((checkHandshake(Buffer.concat([good, Buffer.from([0])]), 'cluster') as { reason: string }).reason, /trailing/);
  });
});
