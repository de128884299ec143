/**
 * RESP parser and encoder, without sockets: the same stream split at every offset, byte by
 * byte and in seeded random chunk sizes must parse to the same commands; declared lengths over
 * a limit are refused from the header alone; malformed input names the problem.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { makeLimits } from '../src/common/limits.js';
import { RespParser, RespProtocolError, parseInteger, splitInline } from '../src/server/resp/protocol.js';
import { ReplyWriter } from '../src/server/resp/reply.js';

const limits = makeLimits();

function encodeCommand(args: (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = typeof a === 'string' ? Buffer.from(a) : a;
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** Feeds chunks and collects every command, as hex strings for easy comparison. */
function parseChunks(chunks: Buffer[], parser = new RespParser(limits)): string[][] {
  const out: string[][] = [];
  for (const chunk of chunks) {
    parser.feed(chunk);
    for (let cmd = parser.next(); cmd !== null; cmd = parser.next()) out.push(cmd.map((a) => a.toString('hex')));
  }
  return out;
}

function hexArgs(args: (string | Buffer)[]): string[] {
  return args.map((a) => (typeof a === 'string' ? Buffer.from(a) : a).toString('hex'));
}

/** Small seeded PRNG (mulberry32) so a failing chunking can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// A stream with binary values (CR, LF, '*', '$' inside bulks), empty bulks, ignored `*0`
// and `*-1`, blank lines, inline commands with quotes, and a 20 KB value.
const binary = Buffer.from([0, 13, 10, 42, 36, 13, 10, 255]);
const big = Buffer.alloc(20_000, 7);
const commands: (string | Buffer)[][] = [
  ['SET', 'k1', 'v1'],
  ['GET', 'k1'],
  ['SET', binary, binary],
  ['SET', 'empty', ''],
  ['MSET', 'a', '1', 'b', '2', 'c', '3'],
  ['SET', 'big', big],
  ['PING'],
];
const stream = Buffer.concat([
  encodeCommand(commands[0]!),
  encodeCommand(commands[1]!),
  Buffer.from('*0\r\n*-1\r\n'),
  encodeCommand(commands[2]!),
  Buffer.from('PING hello\r\n'),
  Buffer.from('\r\n'),
  encodeCommand(commands[3]!),
  Buffer.from('set "a b" \'c\\\'d\' "\\x41\\n"\n'),
  encodeCommand(commands[4]!),
  encodeCommand(commands[5]!),
  encodeCommand(commands[6]!),
]);
const expected: string[][] = [
  hexArgs(commands[0]!),
  hexArgs(commands[1]!),
  hexArgs(commands[2]!),
  hexArgs(['PING', 'hello']),
  hexArgs(commands[3]!),
  hexArgs(['set', 'a b', "c'd", 'A\n']),
  hexArgs(commands[4]!),
  hexArgs(commands[5]!),
  hexArgs(commands[6]!),
];

describe('RespParser', () => {
  it('parses the stream in one chunk', () => {
    assert.deepEqual(parseChunks([stream]), expected);
  });

  it('parses the stream split in two at every offset', () => {
    for (let i = 0; i <= stream.length; i++) {
      const got = parseChunks([stream.subarray(0, i), stream.subarray(i)]);
      assert.deepEqual(got, expected, `split at ${i}`);
    }
  });

  it('parses the stream split in three around every offset of the small commands', () => {
    // The 20 KB bulk makes a full O(n^2) sweep slow; the head of the stream holds every case.
    const head = stream.indexOf(encodeCommand(commands[5]!));
    for (let i = 0; i < head; i++) {
      for (let j = i; j < head; j += 7) {
        const got = parseChunks([stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)]);
        assert.deepEqual(got, expected, `split at ${i}, ${j}`);
      }
    }
  });

  it('parses the stream fed one byte at a time', () => {
    const chunks: Buffer[] = [];
    for (let i = 0; i < stream.length; i++) chunks.push(stream.subarray(i, i + 1));
    assert.deepEqual(parseChunks(chunks), expected);
  });

  it('parses the stream in random chunk sizes (seeded)', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const next = rng(seed);
      const chunks: Buffer[] = [];
      for (let i = 0; i < stream.length; ) {
        const n = 1 + Math.floor(next() * (next() < 0.5 ? 16 : 5_000));
        chunks.push(stream.subarray(i, i + n));
        i += n;
      }
      assert.deepEqual(parseChunks(chunks), expected, `seed ${seed}`);
    }
  });

  it('returns views over the read chunk (no copy) when a command is complete in it', () => {
    const chunk = encodeCommand(['GET', 'key']);
    const parser = new RespParser(limits);
    parser.feed(chunk);
    const cmd = parser.next();
    assert.ok(cmd);
    assert.equal(cmd[1]!.buffer, chunk.buffer);
    assert.equal(cmd[1]!.byteOffset, chunk.byteOffset + chunk.indexOf('key'));
    assert.equal(parser.bufferedBytes, 0);
  });

  it('keeps arguments already returned intact while later chunks arrive', () => {
    const parser = new RespParser(limits);
    const first = encodeCommand(['SET', 'k', 'value-one']);
    const second = encodeCommand(['SET', 'k', 'value-two']);
    const all = Buffer.concat([first, second]);
    // Split inside the second command so the parser stages its leftover.
    parser.feed(all.subarray(0, first.length + 5));
    const cmd1 = parser.next();
    assert.ok(cmd1);
    assert.equal(parser.next(), null);
    parser.feed(all.subarray(first.length + 5, first.length + 9));
    parser.feed(all.subarray(first.length + 9));
    const cmd2 = parser.next();
    assert.ok(cmd2);
    assert.equal(cmd1[2]!.toString(), 'value-one');
    assert.equal(cmd2[2]!.toString(), 'value-two');
  });

  it('counts partial commands as buffered query bytes', () => {
    const parser = new RespParser(limits);
    const cmd = encodeCommand(['SET', 'key', 'some value']);
    parser.feed(cmd.subarray(0, cmd.length - 3));
    assert.equal(parser.next(), null);
    assert.equal(parser.bufferedBytes, cmd.length - 3);
    parser.feed(cmd.subarray(cmd.length - 3));
    assert.ok(parser.next());
    assert.equal(parser.bufferedBytes, 0);
  });
});

describe('RespParser limits and malformed input', () => {
  function parseError(input: string | Buffer, overrides = {}): RespProtocolError {
    const parser = new RespParser(makeLimits(overrides));
    parser.feed(typeof input === 'string' ? Buffer.from(input) : input);
    try {
      while (parser.next() !== null);
    } catch (e) {
      assert.ok(e instanceof RespProtocolError, String(e));
      return e;
    }
    assert.fail(`no protocol error for ${JSON.stringify(String(input))}`);
  }

  it('refuses an array length over respArrayLengthMax from the header alone', () => {
    const e = parseError('*5\r\n', { respArrayLengthMax: 4 });
    assert.equal(e.message, "Protocol error: array length is 5, over limit 'respArrayLengthMax' (4)");
    assert.equal(e.limit, 'respArrayLengthMax');
    // Exactly at the limit is fine.
    const parser = new RespParser(makeLimits({ respArrayLengthMax: 4 }));
    parser.feed(encodeCommand(['MGET', 'a', 'b', 'c']));
    assert.equal(parser.next()?.length, 4);
  });

  it('refuses a bulk length over respBulkBytesMax before its body arrives', () => {
    const e = parseError('*2\r\n$3\r\nSET\r\n$2049\r\n', { valueBytesMax: 1024, respBulkBytesMax: 2048 });
    assert.equal(e.message, "Protocol error: bulk string is 2049 bytes, over limit 'respBulkBytesMax' (2048)");
    assert.equal(e.limit, 'respBulkBytesMax');
  });

  it('refuses an inline line over respInlineBytesMax, complete or not', () => {
    const max = 32;
    const message = `Protocol error: inline command is over limit 'respInlineBytesMax' (${max} bytes)`;
    assert.equal(parseError(`PING ${'x'.repeat(40)}\r\n`, { respInlineBytesMax: max }).message, message);
    assert.equal(parseError(`PING ${'x'.repeat(40)}`, { respInlineBytesMax: max }).message, message);
    // A line of exactly max bytes is accepted.
    const parser = new RespParser(makeLimits({ respInlineBytesMax: max }));
    parser.feed(Buffer.from(`ECHO ${'y'.repeat(max - 5)}\r\n`));
    assert.equal(parser.next()?.[1]?.length, max - 5);
  });

  it('refuses a command whose buffered bytes exceed queryBufferBytesMax', () => {
    const overrides = { valueBytesMax: 1000, respBulkBytesMax: 1000, queryBufferBytesMax: 2500 };
    const value = 'v'.repeat(1000);
    const cmd = encodeCommand(['MSET', 'a', value, 'b', value, 'c', value]);
    const e = parseError(cmd.subarray(0, 2400), overrides);
    assert.match(e.message, /^query buffer is \d+ bytes, over limit 'queryBufferBytesMax' \(2500\)$/);
    assert.equal(e.limit, 'queryBufferBytesMax');
  });

  it('names malformed input', () => {
    assert.equal(parseError('*1\r\n+PING\r\n').message, "Protocol error: expected '$', got '+'");
    assert.equal(parseError('*x\r\n').message, 'Protocol error: invalid multibulk length');
    assert.equal(parseError('*1\r\n$x\r\n').message, 'Protocol error: invalid bulk length');
    assert.equal(parseError('*1\r\n$-1\r\n').message, 'Protocol error: invalid bulk length');
    assert.equal(parseError('*1\r\n$4\r\nPINGxx').message, 'Protocol error: expected CRLF after bulk string');
    assert.equal(parseError('*1\rx').message, 'Protocol error: expected CRLF after multibulk length');
    assert.equal(parseError(`*${'1'.repeat(30)}`).message, 'Protocol error: too big mbulk count string');
    assert.equal(parseError(`*1\r\n$${'1'.repeat(30)}`).message, 'Protocol error: too big bulk count string');
    assert.equal(parseError('SET "a b\r\n').message, 'Protocol error: unbalanced quotes in request');
    assert.equal(parseError('SET "a"b\r\n').message, 'Protocol error: unbalanced quotes in request');
  });

  it('reports an error split across chunks the same as in one chunk', () => {
    const input = Buffer.from('*2\r\n$3\r\nGET\r\n$3\r\nabcXY');
    for (let i = 0; i <= input.length; i++) {
      const parser = new RespParser(limits);
      let error: unknown;
      try {
        parser.feed(input.subarray(0, i));
        while (parser.next() !== null);
        parser.feed(input.subarray(i));
        while (parser.next() !== null);
      } catch (e) {
        error = e;
      }
      assert.ok(error instanceof RespProtocolError, `split at ${i}`);
      assert.equal(error.message, 'Protocol error: expected CRLF after bulk string');
    }
  });
});

describe('parseInteger and splitInline', () => {
  const int = (s: string) => parseInteger(Buffer.from(s), 0, s.length);

  it('parses integers like Redis string2ll', () => {
    assert.equal(int('0'), 0);
    assert.equal(int('123'), 123);
    assert.equal(int('-45'), -45);
    assert.equal(int('9223372036854775807'), 9223372036854775807);
    for (const bad of ['', '-', '01', '-0', '+1', '1.5', ' 1', '1 ', 'abc', '99999999999999999999', '1e3']) {
      assert.equal(int(bad), null, bad);
    }
  });

  it('splits inline commands with quotes and escapes', () => {
    const split = (s: string) => splitInline(Buffer.from(s), 0, s.length).map((b) => b.toString('latin1'));
    assert.deepEqual(split('  set  key   value '), ['set', 'key', 'value']);
    assert.deepEqual(split('set "a\\tb\\x00" \'x y\''), ['set', 'a\tb\x00', 'x y']);
    assert.deepEqual(split('echo ""'), ['echo', '']);
    assert.deepEqual(split(''), []);
  });
});

describe('ReplyWriter', () => {
  function encode(resp3: boolean, f: (w: ReplyWriter) => void): string {
    const w = new ReplyWriter(8); // tiny start: every write exercises growth
    w.resp3 = resp3;
    f(w);
    return w.take().toString('latin1');
  }

  it('encodes scalars the same in RESP2 and RESP3', () => {
    for (const resp3 of [false, true]) {
      assert.equal(encode(resp3, (w) => w.simple('OK')), '+OK\r\n');
      assert.equal(encode(resp3, (w) => w.error('ERR bad\r\nthing')), '-ERR bad thing\r\n');
      assert.equal(encode(resp3, (w) => w.integer(0)), ':0\r\n');
      assert.equal(encode(resp3, (w) => w.integer(1)), ':1\r\n');
      assert.equal(encode(resp3, (w) => w.integer(-2)), ':-2\r\n');
      assert.equal(encode(resp3, (w) => w.integer(1234567890123)), ':1234567890123\r\n');
      assert.equal(encode(resp3, (w) => w.bulk(Buffer.from('a\r\nb'))), '$4\r\na\r\nb\r\n');
      assert.equal(encode(resp3, (w) => w.bulk(Buffer.alloc(0))), '$0\r\n\r\n');
      assert.equal(encode(resp3, (w) => w.bulkString('é')), '$2\r\n\xc3\xa9\r\n');
      assert.equal(encode(resp3, (w) => w.bulkArray([Buffer.from('x'), null])), resp3 ? '*2\r\n$1\r\nx\r\n_\r\n' : '*2\r\n$1\r\nx\r\n$-1\r\n');
    }
  });

  it('encodes nulls, maps, sets and verbatim text per protocol', () => {
    assert.equal(encode(false, (w) => w.nil()), '$-1\r\n');
    assert.equal(encode(true, (w) => w.nil()), '_\r\n');
    assert.equal(encode(false, (w) => w.nilArray()), '*-1\r\n');
    assert.equal(encode(true, (w) => w.nilArray()), '_\r\n');
    assert.equal(encode(false, (w) => w.mapHeader(2)), '*4\r\n');
    assert.equal(encode(true, (w) => w.mapHeader(2)), '%2\r\n');
    assert.equal(encode(false, (w) => w.setHeader(3)), '*3\r\n');
    assert.equal(encode(true, (w) => w.setHeader(3)), '~3\r\n');
    assert.equal(encode(false, (w) => w.verbatim('a:1\r\n')), '$5\r\na:1\r\n\r\n');
    assert.equal(encode(true, (w) => w.verbatim('a:1\r\n')), '=9\r\ntxt:a:1\r\n\r\n');
  });

  it('hands out batches that later encoding does not overwrite', () => {
    const w = new ReplyWriter(16);
    w.bulk(Buffer.from('first'));
    const small = w.take();
    const large = Buffer.alloc(10_000, 1);
    w.bulk(large);
    const big = w.take();
    w.bulk(Buffer.from('second'));
    w.bulk(Buffer.alloc(10_000, 2));
    assert.equal(small.toString(), '$5\r\nfirst\r\n');
    assert.equal(big.length, 10_000 + '$10000\r\n\r\n'.length);
    assert.ok(big.subarray(8, 10_008).every((b) => b === 1));
    assert.equal(w.length, '$6\r\nsecond\r\n'.length + 10_000 + '$10000\r\n\r\n'.length);
  });

  it('round-trips through the parser', () => {
    const w = new ReplyWriter();
    const values = [Buffer.from('GET'), Buffer.from([0, 13, 10]), Buffer.alloc(0)];
    w.bulkArray(values);
    const parser = new RespParser(limits);
    parser.feed(w.take());
    assert.deepEqual(parser.next(), values);
  });
});
