/**
 * RESP request parser: no sockets. `feed()` takes the bytes of one read, `next()` returns one
 * complete command (its arguments as Buffers) or null when more bytes are needed; leftovers are
 * kept. Declared lengths are checked against the limits before anything is allocated for them.
 *
 * Arguments are `subarray` views: over the read chunk itself when a command is complete in
 * one chunk (no copy), else over a staging buffer. Bytes a view covers are never overwritten,
 * so a caller may keep an argument (e.g. a key handed to an asynchronous write).
 */
import type { Limits } from '../../common/limits.js';

const CR = 13;
const LF = 10;
const STAR = 42; // '*'
const DOLLAR = 36; // '$'
/** `*` or `$`, up to 20 digits (int64) and a sign: a longer header line is malformed. */
const headerBytesMax = 24;
const stagingBytesMin = 1024;
const empty = Buffer.alloc(0);

export type ParserLimits = Pick<
  Limits,
  'respArrayLengthMax' | 'respBulkBytesMax' | 'respInlineBytesMax' | 'queryBufferBytesMax'
>;

/** Malformed or over-limit input. The connection replies `-ERR <message>` and closes. */
export class RespProtocolError extends Error {
  /** The limit that was exceeded, when that is the reason (for metrics). */
  readonly limit: string | undefined;
  constructor(message: string, limit?: string) {
    super(message);
    this.name = 'RespProtocolError';
    this.limit = limit;
  }
}

const int64MaxDigits = '9223372036854775807';
const int64MinDigits = '9223372036854775808';

/** Parses a decimal integer in buf[start, end) like Redis' string2ll; null if not one. */
export function parseInteger(buf: Buffer, start: number, end: number): number | null {
  const len = end - start;
  if (len <= 0 || len > 20) return null;
  let i = start;
  let negative = false;
  if (buf[i] === 45) {
    negative = true;
    i++;
    if (i === end) return null;
  }
  // Like string2ll: "0" alone, otherwise the first digit is 1-9 (no "01", "-0", "+1").
  if (buf[i] === 48) return i + 1 === end && !negative ? 0 : null;
  const digits = end - i;
  if (digits > 19) return null;
  let value = 0;
  let cmp = 0; // compares the digits with int64's limit while reading them
  const limit = negative ? int64MinDigits : int64MaxDigits;
  for (let j = 0; i < end; i++, j++) {
    const d = buf[i]! - 48;
    if (d < 0 || d > 9) return null;
    if (cmp === 0 && digits === 19) cmp = d - (limit.charCodeAt(j) - 48);
    value = value * 10 + d;
  }
  // int64 range; doubles lose precision above 2^53, such values only ever get clamped.
  if (cmp > 0) return null;
  if (digits > 15) value = Number(buf.toString('latin1', end - digits, end)); // rounds once, not per digit
  return negative ? -value : value;
}

/** Parses an argument as an integer; null if it is not one (the caller replies the error). */
export function argInteger(arg: Buffer): number | null {
  return parseInteger(arg, 0, arg.length);
}

/** Incremental RESP2/RESP3 request parser for one connection. */
export class RespParser {
  private readonly limits: ParserLimits;
  private buf: Buffer = empty;
  private pos = 0;
  private end = 0;
  /** True when `buf` is our staging buffer, so bytes may be appended after `end`. */
  private staged = false;
  /** Arguments of the array command being parsed; null between commands. */
  private args: Buffer[] | null = null;
  /** Declared element count of `args`; the array grows as elements arrive, not up front. */
  private argCount = 0;
  /** Length of the bulk string whose body comes next; -1 while expecting its `$` header. */
  private bulkLen = -1;
  /** Bytes of the current command already consumed into `args`. */
  private commandBytes = 0;

  constructor(limits: ParserLimits) {
    this.limits = limits;
  }

  /** Bytes received but not yet returned as complete commands (the query buffer). */
  get bufferedBytes(): number {
    return this.commandBytes + (this.end - this.pos);
  }

  /** Adds the bytes of one read; call `next()` until it returns null. */
  feed(chunk: Buffer): void {
    if (chunk.length === 0) return;
    const rest = this.end - this.pos;
    if (rest === 0) {
      this.buf = chunk;
      this.pos = 0;
      this.end = chunk.length;
      this.staged = false;
      return;
    }
    if (this.staged && this.buf.length - this.end >= chunk.length) {
      chunk.copy(this.buf, this.end);
      this.end += chunk.length;
      return;
    }
    const need = rest + chunk.length;
    // A bulk body in progress has a known size (already checked): stage it in one piece.
    const want = this.bulkLen >= 0 ? this.bulkLen + 2 : 2 * need;
    const size = Math.max(need, want, stagingBytesMin);
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, this.pos, this.end);
    chunk.copy(next, rest);
    // The old buffer is never written again: views handed out over it stay valid.
    this.buf = next;
    this.pos = 0;
    this.end = need;
    this.staged = true;
  }

  /** The next complete command, or null if more bytes are needed. Throws RespProtocolError. */
  next(): Buffer[] | null {
    for (;;) {
      if (this.args === null) {
        if (this.pos >= this.end) return null;
        if (this.buf[this.pos] !== STAR) {
          const inline = this.inline();
          if (inline === null) return null;
          if (inline.length === 0) continue; // empty line: ignored, like Redis
          return inline;
        }
        const start = this.pos;
        const count = this.headerLine('multibulk');
        if (count === null) return null;
        if (count <= 0) continue; // `*0` and `*-1` are ignored, like Redis
        if (count > this.limits.respArrayLengthMax) {
          throw new RespProtocolError(
            `Protocol error: array length is ${count}, over limit 'respArrayLengthMax' (${this.limits.respArrayLengthMax})`,
            'respArrayLengthMax',
          );
        }
        this.args = [];
        this.argCount = count;
        this.commandBytes = this.pos - start;
        this.bulkLen = -1;
      }
      const args = this.args;
      while (args.length < this.argCount) {
        if (this.bulkLen < 0) {
          if (this.pos >= this.end) return this.incomplete();
          const type = this.buf[this.pos]!;
          if (type !== DOLLAR) {
            throw new RespProtocolError(`Protocol error: expected '$', got '${printable(type)}'`);
          }
          const start = this.pos;
          const len = this.headerLine('bulk');
          if (len === null) return this.incomplete();
          if (len < 0) throw new RespProtocolError('Protocol error: invalid bulk length');
          if (len > this.limits.respBulkBytesMax) {
            throw new RespProtocolError(
              `Protocol error: bulk string is ${len} bytes, over limit 'respBulkBytesMax' (${this.limits.respBulkBytesMax})`,
              'respBulkBytesMax',
            );
          }
          this.commandBytes += this.pos - start;
          this.checkQueryBuffer(this.commandBytes + len + 2);
          this.bulkLen = len;
        }
        const len = this.bulkLen;
        if (this.end - this.pos < len + 2) return this.incomplete();
        const bodyEnd = this.pos + len;
        if (this.buf[bodyEnd] !== CR || this.buf[bodyEnd + 1] !== LF) {
          throw new RespProtocolError('Protocol error: expected CRLF after bulk string');
        }
        args.push(this.buf.subarray(this.pos, bodyEnd));
        this.pos = bodyEnd + 2;
        this.commandBytes += len + 2;
        this.bulkLen = -1;
      }
      this.args = null;
      this.commandBytes = 0;
      return args;
    }
  }

  private incomplete(): null {
    this.checkQueryBuffer(this.bufferedBytes);
    return null;
  }

  private checkQueryBuffer(bytes: number): void {
    if (bytes > this.limits.queryBufferBytesMax) {
      throw new RespProtocolError(
        `query buffer is ${bytes} bytes, over limit 'queryBufferBytesMax' (${this.limits.queryBufferBytesMax})`,
        'queryBufferBytesMax',
      );
    }
  }

  // Parses `*<n>\r\n` or `$<n>\r\n` at pos; null if the line is not complete yet.
  private headerLine(what: 'multibulk' | 'bulk'): number | null {
    const buf = this.buf;
    const start = this.pos + 1;
    const limit = Math.min(this.end, this.pos + headerBytesMax);
    let cr = start;
    while (cr < limit && buf[cr] !== CR) cr++;
    if (cr === limit) {
      if (limit === this.end && this.end - this.pos < headerBytesMax) return null;
      throw new RespProtocolError(`Protocol error: too big ${what === 'multibulk' ? 'mbulk' : 'bulk'} count string`);
    }
    if (cr + 1 >= this.end) return null;
    if (buf[cr + 1] !== LF) throw new RespProtocolError(`Protocol error: expected CRLF after ${what} length`);
    const n = parseInteger(buf, start, cr);
    if (n === null) throw new RespProtocolError(`Protocol error: invalid ${what} length`);
    this.pos = cr + 2;
    return n;
  }

  // Parses one inline command line (telnet style); null if the line is not complete yet.
  private inline(): Buffer[] | null {
    const buf = this.buf;
    const max = this.limits.respInlineBytesMax;
    const limit = Math.min(this.end, this.pos + max + 2); // room for the CRLF
    let lf = this.pos;
    while (lf < limit && buf[lf] !== LF) lf++;
    let lineEnd = lf;
    if (lf < limit && lineEnd > this.pos && buf[lineEnd - 1] === CR) lineEnd--;
    if (lf === limit || lineEnd - this.pos > max) {
      if (lf === limit && this.end - this.pos <= max + 1) {
        this.checkQueryBuffer(this.end - this.pos);
        return null;
      }
      throw new RespProtocolError(
        `Protocol error: inline command is over limit 'respInlineBytesMax' (${max} bytes)`,
        'respInlineBytesMax',
      );
    }
    const args = splitInline(buf, this.pos, lineEnd);
    this.pos = lf + 1;
    return args;
  }
}

function printable(byte: number): string {
  return byte >= 33 && byte <= 126 ? String.fromCharCode(byte) : `\\x${byte.toString(16).padStart(2, '0')}`;
}

function isSpace(c: number): boolean {
  return c === 32 || c === 9 || c === 10 || c === 13 || c === 11 || c === 12;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/**
 * Splits an inline command line like Redis' sdssplitargs: spaces separate arguments,
 * "double quotes" allow \n \r \t \b \a \\ \" and \xHH escapes, 'single quotes' allow \'.
 */
export function splitInline(buf: Buffer, start: number, end: number): Buffer[] {
  const args: Buffer[] = [];
  let i = start;
  for (;;) {
    while (i < end && isSpace(buf[i]!)) i++;
    if (i >= end) return args;
    const c = buf[i]!;
    if (c !== 34 && c !== 39) {
      const s = i;
      while (i < end && !isSpace(buf[i]!) && buf[i] !== 34 && buf[i] !== 39) i++;
      if (i < end && !isSpace(buf[i]!)) {
        throw new RespProtocolError('Protocol error: unbalanced quotes in request');
      }
      args.push(buf.subarray(s, i));
      continue;
    }
    const bytes: number[] = [];
    i++;
    let closed = false;
    while (i < end) {
      const b = buf[i]!;
      if (c === 34 && b === 92 && i + 3 < end && buf[i + 1] === 120) {
        const hi = hexValue(buf[i + 2]!);
        const lo = hexValue(buf[i + 3]!);
        if (hi >= 0 && lo >= 0) {
          bytes.push(hi * 16 + lo);
          i += 4;
          continue;
        }
      }
      if (b === 92 && i + 1 < end) {
        const e = buf[i + 1]!;
        if (c === 39) {
          if (e === 39) {
            bytes.push(39);
            i += 2;
            continue;
          }
        } else {
          const mapped =
            e === 110 ? 10 : e === 114 ? 13 : e === 116 ? 9 : e === 98 ? 8 : e === 97 ? 7 : e;
          bytes.push(mapped);
          i += 2;
          continue;
        }
      }
      if (b === c) {
        closed = true;
        i++;
        break;
      }
      bytes.push(b);
      i++;
    }
    // A closing quote must be followed by a space or the end of the line.
    if (!closed || (i < end && !isSpace(buf[i]!))) {
      throw new RespProtocolError('Protocol error: unbalanced quotes in request');
    }
    args.push(Buffer.from(bytes));
  }
}
