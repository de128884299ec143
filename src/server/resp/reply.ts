/**
 * RESP reply encoder: one growing output buffer per socket read batch, so all replies of a
 * batch leave in one `socket.write`. Writes RESP2 or RESP3 depending on `resp3`.
 */

const CR = 13;
const LF = 10;

/** Replies that never change, written by copy instead of being encoded. */
export const replies = Object.freeze({
  ok: Buffer.from('+OK\r\n'),
  pong: Buffer.from('+PONG\r\n'),
  queued: Buffer.from('+QUEUED\r\n'),
  reset: Buffer.from('+RESET\r\n'),
  nullBulk2: Buffer.from('$-1\r\n'),
  nullArray2: Buffer.from('*-1\r\n'),
  null3: Buffer.from('_\r\n'),
  zero: Buffer.from(':0\r\n'),
  one: Buffer.from(':1\r\n'),
  emptyArray: Buffer.from('*0\r\n'),
  emptyMap3: Buffer.from('%0\r\n'),
  emptyBulk: Buffer.from('$0\r\n\r\n'),
  crlf: Buffer.from('\r\n'),
});

const initialBytes = 16 * 1024;
/** Batches smaller than this are copied out so the writer keeps its buffer. */
const copyOutBytesMax = 4 * 1024;

/** Number of decimal digits of a non-negative safe integer. */
function digitCount(n: number): number {
  let d = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    d++;
  }
  return d;
}

/** Encodes replies into one growing buffer; `take()` hands the bytes to the socket. */
export class ReplyWriter {
  /** Set by HELLO 3 / RESET on the owning connection. */
  resp3 = false;
  private buf: Buffer;
  private pos = 0;

  constructor(bytes = initialBytes) {
    this.buf = Buffer.allocUnsafe(bytes);
  }

  /** Bytes encoded and not yet taken. */
  get length(): number {
    return this.pos;
  }

  /** Returns the encoded bytes (a buffer the caller may keep) and starts empty. */
  take(): Buffer {
    const n = this.pos;
    this.pos = 0;
    if (n <= copyOutBytesMax) {
      // Small: copy into a pooled slice and keep our buffer for the next batch.
      const out = Buffer.allocUnsafe(n);
      this.buf.copy(out, 0, 0, n);
      return out;
    }
    // Large: hand the buffer itself to the socket, which keeps it until written.
    const out = this.buf.subarray(0, n);
    this.buf = Buffer.allocUnsafe(initialBytes);
    return out;
  }

  /** Drops everything encoded (used when the connection is being closed). */
  clear(): void {
    this.pos = 0;
  }

  private ensure(extra: number): void {
    const need = this.pos + extra;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** Writes pre-encoded bytes. */
  raw(bytes: Buffer): void {
    this.ensure(bytes.length);
    bytes.copy(this.buf, this.pos);
    this.pos += bytes.length;
  }

  // Writes `prefix` + decimal n + CRLF; n is a safe integer.
  private header(prefix: number, n: number): void {
    this.ensure(24);
    const buf = this.buf;
    buf[this.pos++] = prefix;
    if (n < 0) {
      buf[this.pos++] = 45; // '-'
      n = -n;
    }
    const digits = digitCount(n);
    let i = this.pos + digits - 1;
    do {
      buf[i--] = 48 + (n % 10);
      n = Math.floor(n / 10);
    } while (n > 0);
    this.pos += digits;
    buf[this.pos++] = CR;
    buf[this.pos++] = LF;
  }

  // Writes a string as latin1/utf8 bytes followed by CRLF, after a one-byte prefix.
  private line(prefix: number, text: string): void {
    const bytes = Buffer.byteLength(text);
    this.ensure(bytes + 3);
    this.buf[this.pos++] = prefix;
    this.pos += this.buf.write(text, this.pos);
    this.buf[this.pos++] = CR;
    this.buf[this.pos++] = LF;
  }

  /** `+text` (text must not contain CR or LF). */
  simple(text: string): void {
    this.line(43, text);
  }

  /** `-text`: an error line; CR/LF in the text become spaces. */
  error(text: string): void {
    this.line(45, text.replace(/[\r\n]+/g, ' '));
  }

  /** `:n` */
  integer(n: number): void {
    if (n === 0) this.raw(replies.zero);
    else if (n === 1) this.raw(replies.one);
    else this.header(58, n);
  }

  /** `$len` bulk string, or the protocol's null for `null`. */
  bulk(value: Buffer | null): void {
    if (value === null) {
      this.nil();
      return;
    }
    const n = value.length;
    this.ensure(n + 24);
    this.header(36, n);
    value.copy(this.buf, this.pos);
    this.pos += n;
    this.buf[this.pos++] = CR;
    this.buf[this.pos++] = LF;
  }

  /** A bulk string from text (UTF-8). */
  bulkString(text: string): void {
    const n = Buffer.byteLength(text);
    this.ensure(n + 24);
    this.header(36, n);
    this.pos += this.buf.write(text, this.pos);
    this.buf[this.pos++] = CR;
    this.buf[this.pos++] = LF;
  }

  /** Null: `$-1` in RESP2, `_` in RESP3. */
  nil(): void {
    this.raw(this.resp3 ? replies.null3 : replies.nullBulk2);
  }

  /** Null array: `*-1` in RESP2, `_` in RESP3. */
  nilArray(): void {
    this.raw(this.resp3 ? replies.null3 : replies.nullArray2);
  }

  /** `*n` array header. */
  arrayHeader(n: number): void {
    this.header(42, n);
  }

  /** Map of n pairs: `%n` in RESP3, a flat array of 2n elements in RESP2. */
  mapHeader(n: number): void {
    if (this.resp3) this.header(37, n);
    else this.header(42, 2 * n);
  }

  /** Set of n elements: `~n` in RESP3, an array in RESP2. */
  setHeader(n: number): void {
    this.header(this.resp3 ? 126 : 42, n);
  }

  /** Text reply: a verbatim string `=` (format txt) in RESP3, a bulk string in RESP2. */
  verbatim(text: string): void {
    if (!this.resp3) {
      this.bulkString(text);
      return;
    }
    const n = Buffer.byteLength(text) + 4;
    this.ensure(n + 24);
    this.header(61, n);
    this.pos += this.buf.write('txt:', this.pos, 'latin1');
    this.pos += this.buf.write(text, this.pos);
    this.buf[this.pos++] = CR;
    this.buf[this.pos++] = LF;
  }

  /** Array of bulk strings (nulls allowed). */
  bulkArray(values: readonly (Buffer | null)[]): void {
    this.arrayHeader(values.length);
    for (let i = 0; i < values.length; i++) this.bulk(values[i] ?? null);
  }
}

/** Encodes a deferred result into the reply; module-level functions, so no closure per command. */
export type Encoder<T> = (w: ReplyWriter, value: T) => void;
