/**
 * One RESP client connection: reads, parses, runs commands and writes replies in order.
 *
 * - All replies produced from one read go out in ONE `socket.write`.
 * - Reads run synchronously and write straight into the batch's output buffer (no promise
 *   per command). Writes return promises; each takes a slot in an ordered queue, and its
 *   reply is encoded when every earlier reply has been.
 * - A command that is not a concurrent write waits (the parser keeps the rest of the input)
 *   until no write of the connection is in flight: replies stay in order and a read sees the
 *   connection's own earlier writes.
 * - Backpressure: when `socket.write()` returns false, reading stops until `drain`; reading
 *   also stops while `pipelineInFlightMax` writes are in flight. A batch whose output would
 *   take the unsent bytes over `outputBufferBytesMax` disconnects the client. After each write
 *   the socket's unsent bytes are counted in the server's OutputBudget (one number per batch,
 *   nothing per request): past `outputBuffersTotalBytesMax` the client holding the most goes.
 * - A connection the server closes (QUIT, protocol error) ends its side after the last reply,
 *   then drops further input and is destroyed after `closeLingerMsMax` if still open.
 */
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { type ErrorCode, KvError } from '../../common/errors.js';
import type { Limits } from '../../common/limits.js';
import type { Consistency, KvApi } from '../../coordinator/api.js';
import type { Session } from '../../coordinator/session.js';
import { type CommandSpec, arityError, lookupCommand, unknownCommandError } from './commands.js';
import type { Client, ServerContext } from './context.js';
import { namespaceOfDb } from './databases.js';
import { endLingering } from './linger.js';
import type { OutputHolder } from './output-budget.js';
import { RespParser, RespProtocolError } from './protocol.js';
import { type Encoder, ReplyWriter } from './reply.js';


/** One reply in the ordered queue: a write in flight, its result, or a queued error. */
interface Slot {
  done: boolean;
  value: unknown;
  encode: Encoder<unknown> | null;
  /** Error line to send instead of a value. */
  error: string | null;
  /** Protocol of the connection when the command ran (HELLO may switch it later). */
  resp3: boolean;
}

/**
 * The RESP prefix of each error code, Redis-style. Every code is listed (the compiler checks),
 * so a new code must choose its prefix. Retryable ones are TRYAGAIN; a full disk has its own
 * (waiting helps only once someone frees space), and so does a clock out of bounds.
 */
const respPrefix: Readonly<Record<ErrorCode, string>> = {
  KEY_TOO_LARGE: 'ERR',
  VALUE_TOO_LARGE: 'ERR',
  FIELD_TOO_LARGE: 'ERR',
  BATCH_TOO_LARGE: 'ERR',
  INVALID_ARGUMENT: 'ERR',
  NOT_FOUND: 'ERR',
  WRONG_TYPE: 'WRONGTYPE',
  OVERLOADED: 'TRYAGAIN',
  DISK_FULL: 'DISKFULL',
  UNAVAILABLE: 'TRYAGAIN',
  QUORUM_NOT_MET: 'TRYAGAIN',
  CLOCK_SKEW: 'CLOCKSKEW',
  STALE_EPOCH: 'TRYAGAIN',
  PROTOCOL: 'ERR',
  LIMIT_EXCEEDED: 'ERR',
  INTERNAL: 'ERR',
};

/** Maps an engine error to a RESP error line, prefix first. */
export function errorLine(e: KvError): string {
  return `${respPrefix[e.code]} ${e.message}`;
}

export class Connection implements Client, OutputHolder {
  readonly id: number;
  readonly server: ServerContext;
  /** The store as this connection sees it: the server's, at this connection's consistency. */
  kv: KvApi;
  /** Levels set by RAGKV.CONSISTENCY; unset ones are the node's defaults. */
  consistency: Partial<Consistency> = {};
  /** Read-your-writes and monotonic reads for this connection, at every level (see coordinator/session.ts). */
  private readonly session: Session;
  readonly limits: Limits;
  /** The output of the current batch; handlers write replies here. */
  readonly w = new ReplyWriter();
  ns = 'default';
  db = 0;
  name: string | null = null;
  /** This connection's unsent bytes as the server's OutputBudget last counted them. */
  outputCounted = 0;

  private readonly socket: Socket;
  private readonly parser: RespParser;
  private readonly createdMs = Date.now();
  private lastCommandMs = Date.now();
  private lastCommandName = 'NULL';
  private readonly slots: Slot[] = [];
  private slotHead = 0;
  /** A parsed command waiting for in-flight writes to finish. */
  private held: Buffer[] | null = null;
  private processing = false;
  private waitingDrain = false;
  private readingPaused = false;
  private flushScheduled = false;
  /** No more commands run (QUIT, protocol error); the socket ends once replies are out. */
  private closing = false;
  /** The client ended its side; the socket ends once every reply is out. */
  private inputEnded = false;
  /** Our side is ended (every reply is out). */
  private outputEnded = false;
  /** Closed by the server and ended: input is dropped, the socket is destroyed after closeLingerMsMax. */
  private lingering = false;
  private closed = false;
  /** Set during a command by `fail` or `defer`, read by the metrics call after it. */
  private commandError: string | undefined = undefined;
  private commandDeferred = false;
  /** The running command is a write (its deferred reply counts in `writesInFlight`). */
  private runningWrite = false;
  /** Writes of this connection not yet acknowledged: reads wait for them (read-your-writes). */
  private writesInFlight = 0;
  /** The running command is a write that reads the key's state first (EXPIRE, VADD, SET NX). */
  private runningSerialWrite = false;
  /** Such writes in flight: every later command waits for them (they decide on the state before). */
  private serialWritesInFlight = 0;

  constructor(id: number, socket: Socket, server: ServerContext) {
    this.id = id;
    this.socket = socket;
    this.server = server;
    this.session = server.kv.newSession();
    this.kv = server.kv.withSession(this.session);
    this.limits = server.limits;
    this.parser = new RespParser(server.limits);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.onDrain());
    socket.on('end', () => this.onEnd());
  }

  /** Writes in flight or done but not yet encoded. */
  private get slotCount(): number {
    return this.slots.length - this.slotHead;
  }

  // ------------------------------------------------------------------ handler API

  /** Replies an error in command order (queued behind writes still in flight). */
  fail(line: string, code = 'ERR'): void {
    this.commandError = code;
    if (this.slotCount === 0) this.w.error(line);
    else this.slots.push({ done: true, value: undefined, encode: null, error: line, resp3: this.w.resp3 });
  }

  /** Replies the result of `promise` (encoded by `encode`) once earlier replies are out. */
  defer<T>(promise: Promise<T>, encode: Encoder<T>): void {
    const slot: Slot = { done: false, value: undefined, encode: encode as Encoder<unknown>, error: null, resp3: this.w.resp3 };
    this.slots.push(slot);
    const isWrite = this.runningWrite;
    if (isWrite) this.writesInFlight++;
    const isSerial = this.runningSerialWrite;
    if (isSerial) this.serialWritesInFlight++;
    this.commandDeferred = true;
    const name = this.lastCommandName;
    const startMs = performance.now();
    promise.then(
      (value) => {
        if (isWrite) this.writesInFlight--;
        if (isSerial) this.serialWritesInFlight--;
        slot.done = true;
        slot.value = value;
        this.server.metrics.observe('resp', name, (performance.now() - startMs) / 1000);
        this.scheduleFlush();
      },
      (e: unknown) => {
        if (isWrite) this.writesInFlight--;
        if (isSerial) this.serialWritesInFlight--;
        slot.done = true;
        slot.error = this.errorOf(e);
        this.server.metrics.observe('resp', name, (performance.now() - startMs) / 1000, codeOf(e));
        this.scheduleFlush();
      },
    );
  }

  /** SELECT */
  select(db: number): void {
    this.db = db;
    this.ns = namespaceOfDb(db);
  }

  /** QUIT: the reply already written is the last one. */
  quit(): void {
    this.closing = true;
  }

  /** RESET: back to RESP2, database 0, no name. */
  reset(): void {
    this.w.resp3 = false;
    this.select(0);
    this.name = null;
    this.setConsistency({});
  }

  /** RAGKV.CONSISTENCY: reads and writes of this connection wait for these levels. */
  setConsistency(levels: Partial<Consistency>): void {
    this.consistency = levels;
    const base = levels.read || levels.write ? this.server.kv.withConsistency(levels) : this.server.kv;
    this.kv = base.withSession(this.session);
  }

  /** One line of CLIENT LIST / CLIENT INFO. */
  clientInfoLine(): string {
    const now = Date.now();
    const s = this.socket;
    return (
      `id=${this.id} addr=${s.remoteAddress}:${s.remotePort} laddr=${s.localAddress}:${s.localPort} ` +
      `name=${this.name ?? ''} age=${Math.floor((now - this.createdMs) / 1000)} ` +
      `idle=${Math.floor((now - this.lastCommandMs) / 1000)} flags=N db=${this.db} ` +
      `qbuf=${this.parser.bufferedBytes} obl=${this.w.length} omem=${s.writableLength} ` +
      `cmd=${this.lastCommandName} user=default resp=${this.w.resp3 ? 3 : 2}\n`
    );
  }

  // ------------------------------------------------------------------ socket events

  private onData(chunk: Buffer): void {
    if (this.closing || this.closed) return;
    this.parser.feed(chunk);
    this.process();
  }

  private onDrain(): void {
    this.waitingDrain = false;
    if (this.outputCounted !== 0) this.server.output.count(this, this.socket.writableLength);
    this.process();
  }

  private onEnd(): void {
    this.inputEnded = true;
    this.process();
  }

  /** Closes the connection at once (server shutdown). */
  destroy(): void {
    this.closing = true;
    this.socket.destroy();
  }

  /** Called by the server when the socket has closed. */
  onClose(): void {
    this.closed = true;
    this.session.release();
    this.held = null;
    this.server.output.release(this);
  }

  /** Unsent reply bytes of the socket (for the OutputBudget); none once it is going away. */
  outputPending(): number {
    return this.closed || this.socket.destroyed ? 0 : this.socket.writableLength;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.closed) return;
    this.flushScheduled = true;
    // After the current microtasks: writes committed together leave in one socket write.
    process.nextTick(flushTick, this);
  }

  /** @internal the nextTick callback of scheduleFlush. */
  flushTick(): void {
    this.flushScheduled = false;
    this.process();
  }

  // ------------------------------------------------------------------ the loop

  /** Runs every command it may, then writes the batch's replies in one write. */
  private process(): void {
    if (this.processing || this.closed) return;
    this.processing = true;
    const server = this.server;
    const metrics = server.metrics;
    const inFlightMax = this.limits.pipelineInFlightMax;
    // Room left for this batch's output: checked per command, so one read cannot
    // build an unbounded reply.
    const outputRoom = this.limits.outputBufferBytesMax - this.socket.writableLength;
    let t = performance.now();
    this.lastCommandMs = Date.now();
    try {
      // Writes finished since the last batch go first: they precede every command below.
      this.drainSlots();
      while (!this.closing && !this.waitingDrain) {
        let args = this.held;
        if (args === null) {
          try {
            args = this.parser.next();
          } catch (e) {
            if (!(e instanceof RespProtocolError)) throw e;
            this.protocolError(e);
            break;
          }
          if (args === null) break;
        }
        const spec = lookupCommand(args[0]!);
        const inFlight = this.slotCount;
        // Writes may overlap earlier writes; an async read (it always replies through a slot)
        // may overlap earlier reads but waits for writes; everything else waits for all.
        // A conditional write (EXPIRE, VADD, SET NX) waits for everything before it, so that
        // it decides on state that includes the connection's own earlier writes.
        // And while one is in flight, later writes wait too: they must not land before its read.
        const concurrent = spec !== undefined && spec.concurrent && (spec.conditional === null || !spec.conditional(args));
        const mayStart = spec !== undefined && ((concurrent && this.serialWritesInFlight === 0) || (spec.asyncRead && this.writesInFlight === 0));
        if (inFlight > 0 && (inFlight >= inFlightMax || (spec !== undefined && !mayStart))) {
          this.held = args;
          break;
        }
        this.held = null;
        this.runningSerialWrite = spec !== undefined && spec.writes && !concurrent;
        this.run(spec, args);
        server.stats.commandsProcessed++;
        if (!this.commandDeferred) {
          const now = performance.now();
          metrics.observe('resp', spec === undefined ? 'unknown' : spec.name, (now - t) / 1000, this.commandError);
          t = now;
        }
        if (this.w.length > outputRoom) {
          this.disconnect('outputBufferBytesMax');
          return;
        }
      }
      this.drainSlots();
      this.flush();
    } finally {
      this.processing = false;
    }
    this.updateReading();
  }

  private run(spec: CommandSpec | undefined, args: Buffer[]): void {
    this.commandError = undefined;
    this.commandDeferred = false;
    if (spec === undefined) {
      this.lastCommandName = 'unknown';
      this.fail(unknownCommandError(args));
      return;
    }
    this.lastCommandName = spec.name;
    this.runningWrite = spec.writes;
    const n = args.length;
    if (spec.arity > 0 ? n !== spec.arity : n < -spec.arity) {
      this.fail(arityError(spec.name));
      return;
    }
    try {
      spec.run(this, args);
    } catch (e) {
      this.fail(this.errorOf(e), codeOf(e));
    }
  }

  // Turns a thrown value into an error line; programmer errors are logged loudly.
  private errorOf(e: unknown): string {
    if (e instanceof KvError) return errorLine(e);
    this.server.logger.error({ err: e, client: this.id, command: this.lastCommandName }, 'RESP command failed');
    return `ERR internal error: ${e instanceof Error ? e.message : String(e)}`;
  }

  // Encodes finished slots at the head of the queue into the output, in order.
  private drainSlots(): void {
    const slots = this.slots;
    const w = this.w;
    while (this.slotHead < slots.length) {
      const slot = slots[this.slotHead]!;
      if (!slot.done) break;
      this.slotHead++;
      if (slot.error !== null) {
        w.error(slot.error);
      } else {
        const resp3 = w.resp3;
        w.resp3 = slot.resp3;
        slot.encode!(w, slot.value);
        w.resp3 = resp3;
      }
    }
    if (this.slotHead === slots.length) {
      slots.length = 0;
      this.slotHead = 0;
    }
  }

  private flush(): void {
    const socket = this.socket;
    // Every command has run (none held, none waiting for drain) and every reply is encoded.
    const done =
      this.slotCount === 0 && (this.closing || (this.inputEnded && this.held === null && !this.waitingDrain));
    if (this.w.length > 0) {
      if (this.w.length + socket.writableLength > this.limits.outputBufferBytesMax) {
        this.disconnect('outputBufferBytesMax');
        return;
      }
      if (!socket.writable) {
        this.w.clear();
        return;
      }
      if (!socket.write(this.w.take())) this.waitingDrain = true;
      // A client that never reads never drains: the total across clients bounds them all.
      const pending = socket.writableLength;
      if (pending !== this.outputCounted) {
        this.server.output.count(this, pending);
        if (this.closed) return;
      }
    }
    if (done) this.endOutput();
  }

  /**
   * Ends our side once every reply is out. After the client's end that closes the socket;
   * a close by the server (QUIT, protocol error) cannot wait on the client, which may send
   * on and never read: it lingers at most `closeLingerMsMax`.
   */
  private endOutput(): void {
    if (this.outputEnded) return;
    this.outputEnded = true;
    if (this.closing) {
      this.lingering = true;
      endLingering(this.socket, this.limits.closeLingerMsMax, this.server.logger, this.id);
    } else if (this.socket.writable) {
      this.socket.end();
    }
  }

  private updateReading(): void {
    // A lingering socket reads (and drops) its input so that the client's end can arrive.
    if (this.closed || this.lingering) return;
    const read =
      !this.closing && !this.waitingDrain && this.held === null && this.slotCount < this.limits.pipelineInFlightMax;
    if (read && this.readingPaused) {
      this.readingPaused = false;
      this.socket.resume();
    } else if (!read && !this.readingPaused) {
      this.readingPaused = true;
      this.socket.pause();
    }
  }

  private protocolError(e: RespProtocolError): void {
    // Replied in order after writes in flight; then the connection closes.
    this.fail(`ERR ${e.message}`, 'PROTOCOL');
    this.closing = true;
    this.held = null;
    const reason = e.limit ?? 'protocol';
    this.server.metrics.disconnected('resp', reason);
    this.server.logger.warn({ client: this.id, reason, message: e.message }, 'closing RESP client after bad input');
  }

  /** Disconnects the client at once, over the limit named by `reason`. */
  disconnect(reason: string): void {
    if (this.closed) return;
    const server = this.server;
    server.metrics.disconnected('resp', reason);
    server.logger.warn(
      {
        client: this.id,
        reason,
        pendingBytes: this.w.length + this.socket.writableLength,
        allClientsPendingBytes: server.output.bytes,
      },
      `disconnecting RESP client: over limit '${reason}'`,
    );
    this.w.clear();
    this.closing = true;
    this.closed = true;
    server.output.release(this);
    this.socket.destroy();
  }
}

function flushTick(c: Connection): void {
  c.flushTick();
}

function codeOf(e: unknown): string {
  return e instanceof KvError ? e.code : 'INTERNAL';
}
