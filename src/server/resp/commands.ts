/**
 * The RESP command table: name lookup without allocating, arity, and one handler per command.
 * Replies and error texts follow Redis 7. A handler either writes its reply synchronously
 * (reads) or hands a promise to `c.defer` (writes); errors go through `c.fail`, which keeps
 * them in command order behind writes still in flight.
 */
import type {
  Consistency,
  ExpireCondition,
  KvPair,
  PruneResult,
  MaybePromise,
  ScanPage,
  SetOptions,
  SetResult,
  VectorItem,
  VectorSearchRequest,
  VectorSearchResult,
} from '../../coordinator/api.js';
import {
  type ElementType,
  type Metric,
  type VectorItemInput,
  FLOAT16_TABLE,
  SEARCH_K_MAX,
  alignedCopy,
  float32FromBytes,
  VECTOR_DIM_MAX,
  elementBytes,
  parseMetric,
  globMatch,
} from '../../compute/index.js';
import { clusterCommand, clusterModeCommand } from './cluster.js';
import type { Client as Connection } from './context.js';
import type { Encoder } from './reply.js';
import { databaseCount, redisVersion } from './databases.js';
import { infoText } from './info.js';
import { argInteger } from './protocol.js';
import { replies, type ReplyWriter } from './reply.js';

export interface CommandSpec {
  /** Lower-case name: used in error texts, metrics and COMMAND. */
  readonly name: string;
  /** Redis arity: n means exactly n arguments (name included), -n at least n. */
  readonly arity: number;
  /**
   * True for writes that may start while earlier writes of the connection are in flight;
   * such a handler replies only through `defer` or `fail`. Every other command waits until
   * the connection has no write in flight, so reads see the connection's own writes.
   */
  readonly concurrent: boolean;
  /**
   * For a concurrent write: true when these arguments make it read the key's state first
   * (SET NX/XX/GET). Then it waits for the connection's earlier writes, like a conditional
   * write, so that it decides on state that includes them (a pipelined SET then SET NX).
   */
  readonly conditional: ((args: Buffer[]) => boolean) | null;
  /** A write (its deferred reply counts as a write in flight: later reads wait for it). */
  readonly writes: boolean;
  /**
   * True for reads that always reply through `defer` (or `fail`): they may start while
   * earlier reads of the connection are in flight, but still wait for its writes.
   */
  readonly asyncRead: boolean;
  readonly flags: readonly string[];
  readonly firstKey: number;
  readonly lastKey: number;
  readonly keyStep: number;
  readonly run: (c: Connection, args: Buffer[]) => void;
}

export const errors = Object.freeze({
  notInteger: 'ERR value is not an integer or out of range',
  syntax: 'ERR syntax error',
  invalidCursor: 'ERR invalid cursor',
  dbIndex: 'ERR DB index is out of range',
  clientName: 'ERR Client names cannot contain spaces, newlines or special characters.',
});

/** `ERR wrong number of arguments for 'get' command` */
export function arityError(name: string): string {
  return `ERR wrong number of arguments for '${name}' command`;
}

/** Redis' unknown-command error, with up to 128 bytes of the arguments. */
export function unknownCommandError(args: Buffer[]): string {
  let list = '';
  for (let i = 1; i < args.length && list.length < 128; i++) {
    list += `'${args[i]!.toString('latin1').slice(0, 128 - list.length)}' `;
  }
  return `ERR unknown command '${args[0]!.toString('latin1').slice(0, 128)}', with args beginning with: ${list}`;
}

function unknownSubcommand(sub: Buffer, command: string): string {
  return `ERR unknown subcommand '${sub.toString('latin1').slice(0, 128)}'. Try ${command.toUpperCase()} HELP.`;
}

/** True when `arg` equals the lower-case ASCII `lower`, ignoring ASCII case. */
export function eqi(arg: Buffer, lower: string): boolean {
  const n = arg.length;
  if (n !== lower.length) return false;
  for (let i = 0; i < n; i++) {
    let b = arg[i]!;
    if (b >= 65 && b <= 90) b += 32;
    if (b !== lower.charCodeAt(i)) return false;
  }
  return true;
}

// ---------------------------------------------------------------- reply encoders (no closures)

function encodeOk(w: ReplyWriter): void {
  w.raw(replies.ok);
}
function encodeInteger(w: ReplyWriter, n: number): void {
  w.integer(n);
}
function encodeBoolean(w: ReplyWriter, b: boolean): void {
  w.raw(b ? replies.one : replies.zero);
}
function encodeSet(w: ReplyWriter, r: SetResult): void {
  if (r.old !== undefined) w.bulk(r.old);
  else if (r.written) w.raw(replies.ok);
  else w.nil();
}

/** Replies `value` now, or in order once it resolves when replicas elsewhere must answer. */
function answer<T>(c: Connection, value: MaybePromise<T>, encode: Encoder<T>): void {
  if (value instanceof Promise) c.defer(value, encode);
  else encode(c.w, value);
}

function encodeBulk(w: ReplyWriter, v: Buffer | null): void {
  w.bulk(v);
}
function encodeBulkArray(w: ReplyWriter, v: readonly (Buffer | null)[]): void {
  w.bulkArray(v);
}
function encodeTtlSeconds(w: ReplyWriter, ms: number): void {
  w.integer(ms < 0 ? ms : Math.floor((ms + 500) / 1000));
}
function encodeSimple(w: ReplyWriter, text: string): void {
  w.simple(text);
}
function encodePairsMap(w: ReplyWriter, pairs: KvPair[]): void {
  w.mapHeader(pairs.length);
  for (const p of pairs) {
    w.bulk(p.key);
    w.bulk(p.value);
  }
}
function encodeScanPage(w: ReplyWriter, page: { cursor: string; keys: Buffer[] }): void {
  w.arrayHeader(2);
  w.bulkString(page.cursor);
  w.bulkArray(page.keys);
}

/** Combines values that may be promises: a plain value when none is one. */
function all<T, R>(values: MaybePromise<T>[], combine: (values: T[]) => R): MaybePromise<R> {
  if (values.some((v) => v instanceof Promise)) return Promise.all(values).then(combine);
  return combine(values as T[]);
}

// ---------------------------------------------------------------- strings

function get(c: Connection, args: Buffer[]): void {
  const later = c.kv.readValue(c.ns, args[1]!, c.w);
  if (later) c.defer(later, encodeBulk);
}

function set(c: Connection, args: Buffer[]): void {
  const options: SetOptions = {};
  let expiry = '';
  let expiryArg: Buffer | undefined;
  for (let i = 3; i < args.length; i++) {
    const a = args[i]!;
    if (eqi(a, 'nx') && options.condition !== 'XX') options.condition = 'NX';
    else if (eqi(a, 'xx') && options.condition !== 'NX') options.condition = 'XX';
    else if (eqi(a, 'get')) options.returnOld = true;
    else if (eqi(a, 'keepttl') && expiry === '') {
      options.keepTtl = true;
      expiry = 'keepttl';
    } else if ((eqi(a, 'ex') || eqi(a, 'px') || eqi(a, 'exat') || eqi(a, 'pxat')) && expiry === '' && i + 1 < args.length) {
      expiry = a.toString('latin1').toLowerCase();
      expiryArg = args[++i];
    } else {
      c.fail(errors.syntax);
      return;
    }
  }
  if (expiryArg !== undefined) {
    const n = argInteger(expiryArg);
    if (n === null) {
      c.fail(errors.notInteger);
      return;
    }
    const ms = expiry === 'ex' || expiry === 'exat' ? n * 1000 : n;
    if (n <= 0 || ms > Number.MAX_SAFE_INTEGER) {
      c.fail("ERR invalid expire time in 'set' command");
      return;
    }
    if (expiry === 'ex' || expiry === 'px') options.ttlMs = ms;
    else options.expireAtMs = ms;
  }
  c.defer(c.kv.set(c.ns, args[1]!, args[2]!, options), encodeSet);
}

function del(c: Connection, args: Buffer[]): void {
  c.defer(c.kv.del(c.ns, args.slice(1)), encodeInteger);
}

function exists(c: Connection, args: Buffer[]): void {
  let n = 0;
  const found: MaybePromise<boolean>[] = [];
  for (let i = 1; i < args.length; i++) found.push(c.kv.exists(c.ns, args[i]!));
  answer(c, all(found, (f) => f.reduce((acc, x) => acc + (x ? 1 : 0), n)), encodeInteger);
}

function mget(c: Connection, args: Buffer[]): void {
  answer(c, c.kv.getMany(c.ns, args.slice(1)), encodeBulkArray);
}

function mset(c: Connection, args: Buffer[]): void {
  if (args.length % 2 === 0) {
    c.fail(arityError('mset'));
    return;
  }
  c.defer(c.kv.setMany(c.ns, toPairs(args, 1)), encodeOk);
}

function toPairs(args: Buffer[], from: number): KvPair[] {
  const pairs: KvPair[] = [];
  for (let i = from; i + 1 < args.length; i += 2) pairs.push({ key: args[i]!, value: args[i + 1]! });
  return pairs;
}

function append(c: Connection, args: Buffer[]): void {
  c.defer(c.kv.append(c.ns, args[1]!, args[2]!), encodeInteger);
}

function getrange(c: Connection, args: Buffer[]): void {
  const start = argInteger(args[2]!);
  const end = argInteger(args[3]!);
  if (start === null || end === null) {
    c.fail(errors.notInteger);
    return;
  }
  answer(c, c.kv.getRange(c.ns, args[1]!, start, end), encodeBulk);
}

function strlen(c: Connection, args: Buffer[]): void {
  answer(c, c.kv.strlen(c.ns, args[1]!), encodeInteger);
}

function type(c: Connection, args: Buffer[]): void {
  answer(c, typeOf(c, args[1]!), encodeSimple);
}

/** Redis TYPE of a key: `hash` when it has fields, else `string` or `none`. */
function typeOf(c: Connection, key: Buffer): MaybePromise<string> {
  return all<number | boolean, string>([c.kv.hlen(c.ns, key), c.kv.exists(c.ns, key)], ([fields, exists]) =>
    (fields as number) > 0 ? 'hash' : exists ? 'string' : 'none',
  );
}

// ---------------------------------------------------------------- expiry

type ExpireUnit = 'expire' | 'pexpire' | 'expireat' | 'pexpireat';

function expireGeneric(c: Connection, args: Buffer[], unit: ExpireUnit): void {
  let condition: ExpireCondition | undefined;
  let nx = false;
  let xx = false;
  let gt = false;
  let lt = false;
  for (let i = 3; i < args.length; i++) {
    const a = args[i]!;
    if (eqi(a, 'nx')) nx = true;
    else if (eqi(a, 'xx')) xx = true;
    else if (eqi(a, 'gt')) gt = true;
    else if (eqi(a, 'lt')) lt = true;
    else {
      c.fail(`ERR Unsupported option ${a.toString('latin1')}`);
      return;
    }
  }
  if (nx && (xx || gt || lt)) {
    c.fail('ERR NX and XX, GT or LT options at the same time are not compatible');
    return;
  }
  if (gt && lt) {
    c.fail('ERR GT and LT options at the same time are not compatible');
    return;
  }
  if (nx) condition = 'NX';
  else if (xx) condition = 'XX';
  if (gt) condition = 'GT';
  else if (lt) condition = 'LT';
  // XX combined with GT/LT: GT/LT only apply to keys with an expiry, which implies XX.
  const n = argInteger(args[2]!);
  if (n === null) {
    c.fail(errors.notInteger);
    return;
  }
  const ms = unit === 'expire' || unit === 'expireat' ? n * 1000 : n;
  const atMs = unit === 'expire' || unit === 'pexpire' ? ms + Date.now() : ms;
  if (!Number.isSafeInteger(atMs) || Math.abs(ms) > Number.MAX_SAFE_INTEGER) {
    c.fail(`ERR invalid expire time in '${unit}' command`);
    return;
  }
  c.defer(c.kv.expireAt(c.ns, args[1]!, atMs, condition), encodeBoolean);
}

function ttl(c: Connection, args: Buffer[]): void {
  answer(c, c.kv.ttlMs(c.ns, args[1]!), encodeTtlSeconds);
}

function pttl(c: Connection, args: Buffer[]): void {
  answer(c, c.kv.ttlMs(c.ns, args[1]!), encodeInteger);
}

function persist(c: Connection, args: Buffer[]): void {
  // KvApi answers false when there was no expiry to remove: Redis' 0.
  c.defer(c.kv.expireAt(c.ns, args[1]!, null), encodeBoolean);
}

// ---------------------------------------------------------------- hashes

function hsetGeneric(c: Connection, args: Buffer[], name: string): void {
  if (args.length % 2 !== 0) {
    c.fail(arityError(name));
    return;
  }
  const p = c.kv.hset(c.ns, args[1]!, toPairs(args, 2));
  if (name === 'hset') c.defer(p, encodeInteger);
  else c.defer(p, encodeOk);
}

function hget(c: Connection, args: Buffer[]): void {
  answer(c, c.kv.hget(c.ns, args[1]!, args[2]!), encodeBulk);
}

function hmget(c: Connection, args: Buffer[]): void {
  answer(c, c.kv.hmget(c.ns, args[1]!, args.slice(2)), encodeBulkArray);
}

function hgetall(c: Connection, args: Buffer[]): void {
  answer(c, c.kv.hgetall(c.ns, args[1]!), encodePairsMap);
}

function hdel(c: Connection, args: Buffer[]): void {
  c.defer(c.kv.hdel(c.ns, args[1]!, args.slice(2)), encodeInteger);
}

function hlen(c: Connection, args: Buffer[]): void {
  answer(c, c.kv.hlen(c.ns, args[1]!), encodeInteger);
}

function hexists(c: Connection, args: Buffer[]): void {
  answer(c, c.kv.hexists(c.ns, args[1]!, args[2]!), encodeBoolean);
}

// ---------------------------------------------------------------- keyspace

function scan(c: Connection, args: Buffer[]): void {
  const cursor = c.server.cursors.load(c.ns, args[1]!);
  if (cursor === undefined) {
    c.fail(errors.invalidCursor);
    return;
  }
  let count = 10;
  let match: Buffer | undefined;
  let typeFilter: Buffer | undefined;
  for (let i = 2; i < args.length; i++) {
    const a = args[i]!;
    if (i + 1 >= args.length) {
      c.fail(errors.syntax);
      return;
    }
    if (eqi(a, 'count')) {
      const n = argInteger(args[++i]!);
      if (n === null) {
        c.fail(errors.notInteger);
        return;
      }
      if (n < 1) {
        c.fail(errors.syntax);
        return;
      }
      count = n;
    } else if (eqi(a, 'match')) {
      match = args[++i]!;
    } else if (eqi(a, 'type')) {
      typeFilter = args[++i]!;
    } else {
      c.fail(errors.syntax);
      return;
    }
  }
  const ns = c.ns;
  const finish = (p: ScanPage): MaybePromise<{ cursor: string; keys: Buffer[] }> => {
    const cursor = p.next === null ? '0' : c.server.cursors.save(ns, p.next);
    if (typeFilter === undefined) return { cursor, keys: p.keys };
    const wantHash = eqi(typeFilter, 'hash');
    const wantString = eqi(typeFilter, 'string');
    return all(
      p.keys.map((k) => c.kv.hlen(ns, k)),
      (fields) => ({ cursor, keys: p.keys.filter((_, i) => (fields[i]! > 0 ? wantHash : wantString)) }),
    );
  };
  const page = c.kv.scan(ns, {
    cursor,
    count: Math.min(count, c.limits.scanLimitMax),
    ...(match !== undefined && !(match.length === 1 && match[0] === 42) ? { match } : {}),
  });
  answer(c, page instanceof Promise ? page.then(finish) : finish(page), encodeScanPage);
}

function dbsize(c: Connection): void {
  c.w.integer(c.kv.dbsize(c.ns));
}

// ---------------------------------------------------------------- connection

function ping(c: Connection, args: Buffer[]): void {
  if (args.length > 2) c.fail(arityError('ping'));
  else if (args.length === 2) c.w.bulk(args[1]!);
  else c.w.raw(replies.pong);
}

function echo(c: Connection, args: Buffer[]): void {
  c.w.bulk(args[1]!);
}

function select(c: Connection, args: Buffer[]): void {
  const n = argInteger(args[1]!);
  if (n === null) c.fail(errors.notInteger);
  else if (n < 0 || n >= databaseCount) c.fail(errors.dbIndex);
  else {
    c.select(n);
    c.w.raw(replies.ok);
  }
}


function quit(c: Connection): void {
  c.w.raw(replies.ok);
  c.quit();
}

function reset(c: Connection): void {
  c.reset();
  c.w.raw(replies.reset);
}

function hello(c: Connection, args: Buffer[]): void {
  let proto = c.w.resp3 ? 3 : 2;
  let name: Buffer | undefined;
  if (args.length >= 2) {
    const v = argInteger(args[1]!);
    if (v === null) {
      c.fail('ERR Protocol version is not an integer or out of range');
      return;
    }
    if (v !== 2 && v !== 3) {
      c.fail('NOPROTO unsupported protocol version');
      return;
    }
    proto = v;
    for (let i = 2; i < args.length; i++) {
      const a = args[i]!;
      const more = args.length - i - 1;
      // No authentication in ragkv: credentials are accepted and ignored, like a nopass user.
      if (eqi(a, 'auth') && more >= 2) i += 2;
      else if (eqi(a, 'setname') && more >= 1) name = args[++i]!;
      else {
        c.fail(`ERR Syntax error in HELLO option '${a.toString('latin1')}'`);
        return;
      }
    }
  }
  if (name !== undefined && !validClientName(name)) {
    c.fail(errors.clientName);
    return;
  }
  if (name !== undefined) c.name = name.length === 0 ? null : name.toString('latin1');
  c.w.resp3 = proto === 3;
  const w = c.w;
  w.mapHeader(7);
  w.bulkString('server');
  w.bulkString('redis');
  w.bulkString('version');
  w.bulkString(redisVersion);
  w.bulkString('proto');
  w.integer(proto);
  w.bulkString('id');
  w.integer(c.id);
  w.bulkString('mode');
  w.bulkString(c.server.topology ? 'cluster' : 'standalone');
  w.bulkString('role');
  w.bulkString('master');
  w.bulkString('modules');
  w.arrayHeader(0);
}


function validClientName(name: Buffer): boolean {
  for (let i = 0; i < name.length; i++) {
    const b = name[i]!;
    if (b < 33 || b > 126) return false;
  }
  return true;
}

function client(c: Connection, args: Buffer[]): void {
  const sub = args[1]!;
  const n = args.length;
  if (eqi(sub, 'setname')) {
    if (n !== 3) return c.fail(arityError('client|setname'));
    if (!validClientName(args[2]!)) return c.fail(errors.clientName);
    c.name = args[2]!.length === 0 ? null : args[2]!.toString('latin1');
    c.w.raw(replies.ok);
  } else if (eqi(sub, 'getname')) {
    if (n !== 2) return c.fail(arityError('client|getname'));
    if (c.name === null) c.w.nil();
    else c.w.bulkString(c.name);
  } else if (eqi(sub, 'id')) {
    if (n !== 2) return c.fail(arityError('client|id'));
    c.w.integer(c.id);
  } else if (eqi(sub, 'info')) {
    if (n !== 2) return c.fail(arityError('client|info'));
    c.w.verbatim(c.clientInfoLine());
  } else if (eqi(sub, 'list')) {
    let text = '';
    for (const other of c.server.clients) text += other.clientInfoLine();
    c.w.verbatim(text);
  } else if (eqi(sub, 'setinfo')) {
    if (n !== 4) return c.fail(arityError('client|setinfo'));
    if (!eqi(args[2]!, 'lib-name') && !eqi(args[2]!, 'lib-ver')) {
      return c.fail(`ERR Unrecognized option '${args[2]!.toString('latin1')}'`);
    }
    c.w.raw(replies.ok);
  } else {
    c.fail(unknownSubcommand(sub, 'client'));
  }
}

function command(c: Connection, args: Buffer[]): void {
  const w = c.w;
  if (args.length === 1) {
    w.arrayHeader(commandTable.length);
    for (const spec of commandTable) writeCommandInfo(w, spec);
    return;
  }
  const sub = args[1]!;
  if (eqi(sub, 'count')) {
    w.integer(commandTable.length);
  } else if (eqi(sub, 'docs')) {
    // Enough for redis-cli's hints loader: no docs.
    w.raw(w.resp3 ? replies.emptyMap3 : replies.emptyArray);
  } else if (eqi(sub, 'info')) {
    w.arrayHeader(args.length - 2);
    for (let i = 2; i < args.length; i++) {
      const spec = lookupCommand(args[i]!);
      if (spec === undefined) w.nilArray();
      else writeCommandInfo(w, spec);
    }
  } else if (eqi(sub, 'list')) {
    w.arrayHeader(commandTable.length);
    for (const spec of commandTable) w.bulkString(spec.name);
  } else {
    c.fail(unknownSubcommand(sub, 'command'));
  }
}

function writeCommandInfo(w: ReplyWriter, spec: CommandSpec): void {
  w.arrayHeader(10);
  w.bulkString(spec.name);
  w.integer(spec.arity);
  w.setHeader(spec.flags.length);
  for (const f of spec.flags) w.simple(f);
  w.integer(spec.firstKey);
  w.integer(spec.lastKey);
  w.integer(spec.keyStep);
  w.setHeader(0); // ACL categories
  w.setHeader(0); // tips
  w.arrayHeader(0); // key specs
  w.arrayHeader(0); // subcommands
}

function config(c: Connection, args: Buffer[]): void {
  const sub = args[1]!;
  if (eqi(sub, 'get')) {
    if (args.length < 3) return c.fail(arityError('config|get'));
    const values = configValues(c);
    const found: [string, string][] = [];
    for (const [name, value] of values) {
      for (let i = 2; i < args.length; i++) {
        if (globMatch(Buffer.from(args[i]!.toString('latin1').toLowerCase(), 'latin1'), Buffer.from(name, 'latin1'))) {
          found.push([name, value]);
          break;
        }
      }
    }
    c.w.mapHeader(found.length);
    for (const [name, value] of found) {
      c.w.bulkString(name);
      c.w.bulkString(value);
    }
  } else if (eqi(sub, 'resetstat')) {
    c.w.raw(replies.ok);
  } else if (eqi(sub, 'set')) {
    c.fail('ERR CONFIG SET is not supported by ragkv: set limits in the config file, by flag or RAGKV_* variable');
  } else {
    c.fail(unknownSubcommand(sub, 'config'));
  }
}

function configValues(c: Connection): [string, string][] {
  const l = c.limits;
  return [
    ['save', ''],
    ['appendonly', 'no'],
    ['databases', String(databaseCount)],
    ['maxclients', String(l.connectionsMax)],
    ['maxmemory', '0'],
    ['proto-max-bulk-len', String(l.respBulkBytesMax)],
    ['client-query-buffer-limit', String(l.queryBufferBytesMax)],
    ['timeout', '0'],
  ];
}


/**
 * RAGKV.CONSISTENCY [READ ONE|QUORUM|ALL] [WRITE ONE|QUORUM|ALL]: sets how many replicas
 * this connection's reads and writes wait for; replies the levels in force either way.
 */
function consistency(c: Connection, args: Buffer[]): void {
  const next: Partial<Consistency> = { ...c.consistency };
  for (let i = 1; i < args.length; i += 2) {
    const which = args[i]!;
    const levelArg = args[i + 1];
    if (levelArg === undefined) {
      c.fail(errors.syntax);
      return;
    }
    const level = eqi(levelArg, 'one') ? 'ONE' : eqi(levelArg, 'quorum') ? 'QUORUM' : eqi(levelArg, 'all') ? 'ALL' : null;
    if (level === null) {
      c.fail(`ERR consistency level must be ONE, QUORUM or ALL, got '${levelArg.toString('latin1').slice(0, 32)}'`);
      return;
    }
    if (eqi(which, 'read')) next.read = level;
    else if (eqi(which, 'write')) next.write = level;
    else {
      c.fail(errors.syntax);
      return;
    }
  }
  if (args.length > 1) c.setConsistency(next);
  c.w.arrayHeader(4);
  c.w.bulkString('read');
  c.w.bulkString(next.read ?? 'default');
  c.w.bulkString('write');
  c.w.bulkString(next.write ?? 'default');
}

/** RAGKV.COMPACT [key ...]: prunes the named lists and everything queued, on this node. */
function compact(c: Connection, args: Buffer[]): void {
  c.defer(c.kv.compact(c.ns, args.slice(1).map((a) => Buffer.from(a))), encodePruneResult);
}

function encodePruneResult(w: ReplyWriter, r: PruneResult): void {
  w.arrayHeader(4);
  w.bulkString('records');
  w.integer(r.records);
  w.bulkString('bytes_freed');
  w.integer(r.bytesFreed);
}

// ---------------------------------------------------------------- vector lists

const elementTypes: readonly ElementType[] = ['float32', 'float16', 'int8', 'uint8'];

function elementTypeOf(arg: Buffer): ElementType | null {
  for (const t of elementTypes) if (eqi(arg, t)) return t;
  return null;
}

/** A vector blob (little-endian elements of `type`) as the encoder's input. */
function vectorOf(blob: Buffer, type: ElementType, dim: number): Float32Array | Int8Array | Uint8Array | number[] {
  // A fresh ArrayBuffer: aligned, and not a view of the read buffer or Node's pool.
  const copy = alignedCopy(blob);
  switch (type) {
    case 'float32':
      return new Float32Array(copy, 0, dim);
    case 'float16': {
      const halves = new Uint16Array(copy, 0, dim);
      const out = new Array<number>(dim);
      for (let i = 0; i < dim; i++) out[i] = FLOAT16_TABLE[halves[i]!]!;
      return out;
    }
    case 'int8':
      return new Int8Array(copy, 0, dim);
    case 'uint8':
      return new Uint8Array(copy, 0, dim);
  }
}

/** VADD key type dim ITEM id vector [PAYLOAD bytes] [ITEM ...]: one append; replies the live count. */
function vadd(c: Connection, args: Buffer[]): void {
  const type = elementTypeOf(args[2]!);
  if (type === null) {
    c.fail(`ERR element type must be float32, float16, int8 or uint8, got '${args[2]!.toString('latin1').slice(0, 32)}'`);
    return;
  }
  const dim = argInteger(args[3]!);
  if (dim === null || dim < 1 || dim > VECTOR_DIM_MAX) {
    c.fail(`ERR dimension must be an integer from 1 to ${VECTOR_DIM_MAX}`);
    return;
  }
  const items: VectorItemInput[] = [];
  for (let i = 4; i < args.length; ) {
    if (!eqi(args[i]!, 'item') || i + 2 >= args.length) {
      c.fail(errors.syntax);
      return;
    }
    const id = args[i + 1]!;
    const blob = args[i + 2]!;
    const want = dim * elementBytes[type];
    if (blob.length !== want) {
      c.fail(`ERR vector of item '${id.toString('utf8').slice(0, 64)}' is ${blob.length} bytes; ${type} of dimension ${dim} needs ${want}`);
      return;
    }
    i += 3;
    let payload: Buffer | undefined;
    if (i + 1 < args.length && eqi(args[i]!, 'payload')) {
      payload = Buffer.from(args[i + 1]!);
      i += 2;
    }
    items.push({ id: Buffer.from(id), vector: vectorOf(blob, type, dim), ...(payload ? { payload } : {}) });
  }
  if (items.length === 0) {
    c.fail(arityError('vadd'));
    return;
  }
  c.defer(c.kv.vadd(c.ns, args[1]!, { type, dim, items }), encodeInteger);
}

function vdel(c: Connection, args: Buffer[]): void {
  c.defer(c.kv.vdel(c.ns, args[1]!, args.slice(2).map((a) => Buffer.from(a))), encodeInteger);
}

function vcard(c: Connection, args: Buffer[]): void {
  answer(c, c.kv.vcard(c.ns, args[1]!), encodeInteger);
}

function encodeItems(w: ReplyWriter, items: VectorItem[]): void {
  w.arrayHeader(items.length);
  for (const it of items) {
    const n = 1 + (it.vector ? 1 : 0) + (it.payload !== undefined ? 1 : 0);
    w.arrayHeader(n);
    w.bulk(it.id);
    if (it.vector) w.bulk(Buffer.from(Float32Array.from(it.vector).buffer));
    if (it.payload !== undefined) w.bulk(it.payload);
  }
}

/** VRANGE key start stop [WITHVECTORS] [WITHPAYLOADS]: items start..stop (vectors as float32 blobs). */
function vrange(c: Connection, args: Buffer[]): void {
  const start = argInteger(args[2]!);
  const stop = argInteger(args[3]!);
  if (start === null || stop === null) {
    c.fail(errors.notInteger);
    return;
  }
  const options = { withVectors: false, withPayloads: false };
  for (let i = 4; i < args.length; i++) {
    if (eqi(args[i]!, 'withvectors')) options.withVectors = true;
    else if (eqi(args[i]!, 'withpayloads')) options.withPayloads = true;
    else {
      c.fail(errors.syntax);
      return;
    }
  }
  answer(c, c.kv.vrange(c.ns, args[1]!, start, stop, options), encodeItems);
}

function encodeSearch(w: ReplyWriter, r: VectorSearchResult): void {
  w.mapHeader(3);
  w.bulkString('results');
  w.arrayHeader(r.hits.length);
  for (const h of r.hits) {
    w.arrayHeader(h.payload !== undefined ? 4 : 3);
    w.bulk(h.key);
    w.bulk(h.id);
    w.bulkString(String(h.score));
    if (h.payload !== undefined) w.bulk(h.payload);
  }
  w.bulkString('degraded');
  w.integer(r.degraded ? 1 : 0);
  w.bulkString('skipped');
  w.bulkArray(r.skippedKeys);
}

/**
 * VSEARCH k metric query KEYS n key... [FILTER field value] [PREFIX bytes] [WITHPAYLOADS] [ALLCOPIES]:
 * the k nearest items over the lists, scored at the replicas, each id once (at its best) unless
 * ALLCOPIES asks for every list's copy. `query` is float32 LE.
 */
function vsearch(c: Connection, args: Buffer[]): void {
  const k = argInteger(args[1]!);
  if (k === null || k < 1 || k > SEARCH_K_MAX) {
    c.fail(`ERR k must be an integer from 1 to ${SEARCH_K_MAX}`);
    return;
  }
  let metric: Metric;
  try {
    metric = parseMetric(args[2]!.toString('latin1'));
  } catch {
    c.fail(`ERR metric must be L2, IP or COSINE, got '${args[2]!.toString('latin1').slice(0, 32)}'`);
    return;
  }
  const q = args[3]!;
  if (q.length === 0 || q.length % 4 !== 0) {
    c.fail(`ERR query must be float32 little-endian bytes (a multiple of 4), got ${q.length} bytes`);
    return;
  }
  const query = float32FromBytes(q);
  if (!eqi(args[4] ?? Buffer.alloc(0), 'keys')) {
    c.fail(errors.syntax);
    return;
  }
  const n = argInteger(args[5] ?? Buffer.alloc(0));
  if (n === null || n < 1 || 6 + n > args.length) {
    c.fail('ERR KEYS needs a count followed by that many keys');
    return;
  }
  const request: VectorSearchRequest = { keys: args.slice(6, 6 + n).map((a) => Buffer.from(a)), query, k, metric };
  for (let i = 6 + n; i < args.length; i++) {
    if (eqi(args[i]!, 'filter') && i + 2 < args.length) {
      request.filter = { field: Buffer.from(args[i + 1]!), value: Buffer.from(args[i + 2]!) };
      i += 2;
    } else if (eqi(args[i]!, 'prefix') && i + 1 < args.length) {
      request.payloadPrefix = Buffer.from(args[++i]!);
    } else if (eqi(args[i]!, 'withpayloads')) {
      request.withPayloads = true;
    } else if (eqi(args[i]!, 'allcopies')) {
      request.allCopies = true;
    } else {
      c.fail(errors.syntax);
      return;
    }
  }
  c.defer(c.kv.vsearch(c.ns, request), encodeSearch);
}

function encodeRows(w: ReplyWriter, rows: (Buffer | null)[][]): void {
  w.arrayHeader(rows.length);
  for (const row of rows) w.bulkArray(row);
}

/** MHMGET numkeys key... field...: the named fields of many keys (field projection). */
function mhmget(c: Connection, args: Buffer[]): void {
  const n = argInteger(args[1]!);
  if (n === null || n < 1 || 2 + n >= args.length) {
    c.fail('ERR numkeys must be at least 1 and be followed by that many keys and at least one field');
    return;
  }
  answer(c, c.kv.hmgetMany(c.ns, args.slice(2, 2 + n), args.slice(2 + n)), encodeRows);
}

function info(c: Connection, args: Buffer[]): void {
  const sections: string[] = [];
  for (let i = 1; i < args.length; i++) sections.push(args[i]!.toString('latin1').toLowerCase());
  c.w.verbatim(infoText(c, sections));
}

// ---------------------------------------------------------------- table

interface Def {
  arity: number;
  concurrent?: boolean;
  conditional?: (args: Buffer[]) => boolean;
  asyncRead?: boolean;
  flags: string[];
  keys?: [number, number, number];
  run: (c: Connection, args: Buffer[]) => void;
}

const r = ['readonly', 'fast'];
const wr = ['write', 'denyoom'];
const k1: [number, number, number] = [1, 1, 1];
const kAll: [number, number, number] = [1, -1, 1];

const defs: Record<string, Def> = {
  get: { arity: 2, flags: r, keys: k1, run: get },
  set: { arity: -3, concurrent: true, conditional: setReadsFirst, flags: wr, keys: k1, run: set },
  del: { arity: -2, concurrent: true, flags: ['write'], keys: kAll, run: del },
  unlink: { arity: -2, concurrent: true, flags: ['write', 'fast'], keys: kAll, run: del },
  exists: { arity: -2, flags: r, keys: kAll, run: exists },
  mget: { arity: -2, flags: r, keys: kAll, run: mget },
  mset: { arity: -3, concurrent: true, flags: wr, keys: [1, -1, 2], run: mset },
  append: { arity: 3, concurrent: true, flags: wr, keys: k1, run: append },
  getrange: { arity: 4, flags: ['readonly'], keys: k1, run: getrange },
  strlen: { arity: 2, flags: r, keys: k1, run: strlen },
  type: { arity: 2, flags: r, keys: k1, run: type },
  expire: { arity: -3, flags: ['write', 'fast'], keys: k1, run: (c, a) => expireGeneric(c, a, 'expire') },
  pexpire: { arity: -3, flags: ['write', 'fast'], keys: k1, run: (c, a) => expireGeneric(c, a, 'pexpire') },
  expireat: { arity: -3, flags: ['write', 'fast'], keys: k1, run: (c, a) => expireGeneric(c, a, 'expireat') },
  pexpireat: { arity: -3, flags: ['write', 'fast'], keys: k1, run: (c, a) => expireGeneric(c, a, 'pexpireat') },
  ttl: { arity: 2, flags: r, keys: k1, run: ttl },
  pttl: { arity: 2, flags: r, keys: k1, run: pttl },
  persist: { arity: 2, flags: ['write', 'fast'], keys: k1, run: persist },
  hset: { arity: -4, concurrent: true, flags: wr, keys: k1, run: (c, a) => hsetGeneric(c, a, 'hset') },
  hmset: { arity: -4, concurrent: true, flags: wr, keys: k1, run: (c, a) => hsetGeneric(c, a, 'hmset') },
  hget: { arity: 3, flags: r, keys: k1, run: hget },
  hmget: { arity: -3, flags: r, keys: k1, run: hmget },
  hgetall: { arity: 2, flags: ['readonly'], keys: k1, run: hgetall },
  hdel: { arity: -3, concurrent: true, flags: ['write', 'fast'], keys: k1, run: hdel },
  hlen: { arity: 2, flags: r, keys: k1, run: hlen },
  hexists: { arity: 3, flags: r, keys: k1, run: hexists },
  scan: { arity: -2, flags: ['readonly'], run: scan },
  dbsize: { arity: 1, flags: r, run: dbsize },
  ping: { arity: -1, flags: ['fast'], run: ping },
  echo: { arity: 2, flags: ['fast'], run: echo },
  info: { arity: -1, flags: ['loading', 'stale'], run: info },
  hello: { arity: -1, flags: ['noscript', 'loading', 'stale', 'fast', 'no_auth'], run: hello },
  client: { arity: -2, flags: ['noscript', 'loading', 'stale'], run: client },
  command: { arity: -1, flags: ['loading', 'stale'], run: command },
  select: { arity: 2, flags: ['loading', 'stale', 'fast'], run: select },
  config: { arity: -2, flags: ['admin', 'noscript', 'loading', 'stale'], run: config },
  quit: { arity: -1, flags: ['noscript', 'loading', 'stale', 'fast', 'no_auth'], run: quit },
  reset: { arity: 1, flags: ['noscript', 'loading', 'stale', 'fast', 'no_auth'], run: reset },
  cluster: { arity: -2, flags: ['loading', 'stale'], run: clusterCommand },
  readonly: { arity: 1, flags: ['loading', 'stale', 'fast'], run: clusterModeCommand },
  readwrite: { arity: 1, flags: ['loading', 'stale', 'fast'], run: clusterModeCommand },
  asking: { arity: 1, flags: ['fast'], run: clusterModeCommand },
  'ragkv.consistency': { arity: -1, flags: ['fast'], run: consistency },
  'ragkv.compact': { arity: -1, concurrent: true, flags: ['write'], keys: kAll, run: compact },
  vadd: { arity: -7, flags: wr, keys: k1, run: vadd },
  vdel: { arity: -3, flags: ['write'], keys: k1, run: vdel },
  vcard: { arity: 2, flags: r, keys: k1, run: vcard },
  vrange: { arity: -4, flags: ['readonly'], keys: k1, run: vrange },
  vsearch: { arity: -7, asyncRead: true, flags: ['readonly'], run: vsearch },
  mhmget: { arity: -4, flags: ['readonly'], run: mhmget },
};

/** SET with NX, XX or GET decides from the key's current state. */
function setReadsFirst(args: Buffer[]): boolean {
  for (let i = 3; i < args.length; i++) {
    const a = args[i]!;
    if (a.length <= 3 && (eqi(a, 'nx') || eqi(a, 'xx') || eqi(a, 'get'))) return true;
  }
  return false;
}

/** Every command, in table order. */
export const commandTable: readonly CommandSpec[] = Object.entries(defs).map(([name, d]) => ({
  name,
  arity: d.arity,
  concurrent: d.concurrent === true,
  conditional: d.conditional ?? null,
  writes: d.flags.includes('write'),
  asyncRead: d.asyncRead === true,
  flags: d.flags,
  firstKey: d.keys?.[0] ?? 0,
  lastKey: d.keys?.[1] ?? 0,
  keyStep: d.keys?.[2] ?? 0,
  run: d.run,
}));

// FNV-1a over the lower-cased name bytes: a command name is looked up without a string.
function hashName(bytes: Buffer): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) {
    let b = bytes[i]!;
    if (b >= 65 && b <= 90) b += 32;
    h = Math.imul(h ^ b, 16777619);
  }
  return h >>> 0;
}

/** Longest command name in the table (module names like `ragkv.consistency` included). */
const commandNameBytesMax = Math.max(...commandTable.map((c) => c.name.length));

const byHash = new Map<number, CommandSpec>();
for (const spec of commandTable) {
  const h = hashName(Buffer.from(spec.name));
  if (byHash.has(h)) throw new Error(`command name hash collision: ${spec.name}`);
  byHash.set(h, spec);
}

/** The command named by `name` (any ASCII case), or undefined. Allocates nothing. */
export function lookupCommand(name: Buffer): CommandSpec | undefined {
  if (name.length > commandNameBytesMax) return undefined;
  const spec = byHash.get(hashName(name));
  return spec !== undefined && eqi(name, spec.name) ? spec : undefined;
}
