/**
 * The RESP server against the real engine (openLocalKv on a temp dir), driven by ioredis,
 * by redis-cli and by raw sockets (exact bytes: RESP3, ordering, inline commands).
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import pino from 'pino';
import { makeLimits } from '../src/common/limits.js';
import { openLocalKv } from '../src/coordinator/index.js';
import { noMetrics } from '../src/server/metrics.js';
import { type RespServer, startRespServer } from '../src/server/resp/index.js';
import { startNodeProcess, stopGracefully } from './helpers/process.js';
import { RawClient, encodeCommand } from './helpers/resp.js';

const run = promisify(execFile);
const redisCliPath = '/usr/bin/redis-cli';


let dir: string;
let closeKv: () => Promise<void>;
let server: RespServer;
let port: number;
const clients: Redis[] = [];

function client(): Redis {
  const c = new Redis({ port, host: '127.0.0.1', retryStrategy: () => null, maxRetriesPerRequest: 0 });
  clients.push(c);
  return c;
}

async function redisCli(...args: string[]): Promise<string> {
  const { stdout } = await run(redisCliPath, ['-p', String(port), ...args]);
  return stdout;
}

/** Field names of an INFO text that occur more than once, with their counts (none: {}). */
function repeatedInfoFields(info: string): Record<string, number> {
  const counts = new Map<string, number>();
  for (const line of info.split('\r\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const name = line.slice(0, line.indexOf(':'));
    assert.ok(name.length > 0, `INFO line without a field name: ${JSON.stringify(line)}`);
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  assert.ok(counts.size > 10, `INFO has fields: ${info}`);
  return Object.fromEntries([...counts].filter(([, n]) => n > 1));
}

/** Runs redis-cli with `input` on stdin; resolves with its stdout when it exits. */
function redisCliStdin(input: string | Buffer, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(redisCliPath, ['-p', String(port), ...args]);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`redis-cli exited ${code}: ${out}`))));
    child.stdin.end(input);
  });
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ragkv-resp-server-'));
  const opened = await openLocalKv({ path: dir, durability: 'commit' });
  closeKv = opened.close;
  server = await startRespServer({
    kv: opened.kv,
    limits: makeLimits(),
    host: '127.0.0.1',
    port: 0,
    logger: pino({ level: 'silent' }),
    metrics: noMetrics,
    // uptime_in_seconds is also a built-in field: the extra replaces its value, not a second line.
    info: () => ({ ragkv_durability: 'commit', uptime_in_seconds: 12345 }),
  });
  port = server.port;
});

after(async () => {
  await Promise.all(clients.map((c) => c.quit().catch(() => c.disconnect())));
  await server.close();
  await closeKv();
  await rm(dir, { recursive: true, force: true });
});

describe('strings', () => {
  it('SET and GET, with NX, XX, GET and KEEPTTL', async () => {
    const r = client();
    assert.equal(await r.set('s:a', 'one'), 'OK');
    assert.equal(await r.get('s:a'), 'one');
    assert.equal(await r.get('s:missing'), null);
    assert.equal(await r.set('s:a', 'two', 'NX'), null);
    assert.equal(await r.set('s:new', 'x', 'XX'), null);
    assert.equal(await r.exists('s:new'), 0);
    assert.equal(await r.set('s:a', 'three', 'XX'), 'OK');
    assert.equal(await r.set('s:a', 'four', 'GET'), 'three');
    assert.equal(await r.set('s:fresh', 'v', 'NX', 'GET'), null);
    assert.equal(await r.get('s:fresh'), 'v');
    assert.equal(await r.set('s:a', 'five', 'EX', 100), 'OK');
    assert.equal(await r.set('s:a', 'six', 'KEEPTTL'), 'OK');
    const ttl = await r.ttl('s:a');
    assert.ok(ttl > 98 && ttl <= 100, `ttl ${ttl}`);
    assert.equal(await r.set('s:a', 'seven'), 'OK');
    assert.equal(await r.ttl('s:a'), -1, 'a plain SET clears the expiry');
    const binary = Buffer.from([0, 1, 13, 10, 255]);
    assert.equal(await r.set(Buffer.from([1, 2, 3]), binary), 'OK');
    assert.deepEqual(await r.getBuffer(Buffer.from([1, 2, 3])), binary);
  });

  it('SET expiry options and their errors, like Redis', async () => {
    const r = client();
    assert.equal(await r.set('s:px', 'v', 'PX', 100_000), 'OK');
    const pttl = await r.pttl('s:px');
    assert.ok(pttl > 98_000 && pttl <= 100_000, `pttl ${pttl}`);
    const at = Math.floor(Date.now() / 1000) + 1000;
    assert.equal(await r.set('s:exat', 'v', 'EXAT', at), 'OK');
    const ttl = await r.ttl('s:exat');
    assert.ok(ttl > 990 && ttl <= 1000, `ttl ${ttl}`);
    assert.equal(await r.set('s:pxat', 'v', 'PXAT', Date.now() + 50_000), 'OK');
    assert.ok((await r.pttl('s:pxat')) > 45_000);
    // An absolute time in the past stores an already expired key.
    assert.equal(await r.set('s:past', 'v', 'PXAT', Date.now() - 1000), 'OK');
    assert.equal(await r.get('s:past'), null);
    assert.equal(await r.exists('s:past'), 0);
    await assert.rejects(r.set('s:e', 'v', 'EX', 0), { message: "ERR invalid expire time in 'set' command" });
    await assert.rejects(r.set('s:e', 'v', 'PX', -5), { message: "ERR invalid expire time in 'set' command" });
    await assert.rejects(r.set('s:e', 'v', 'EX', 'soon'), { message: 'ERR value is not an integer or out of range' });
    await assert.rejects(r.call('SET', 's:e', 'v', 'NX', 'XX'), { message: 'ERR syntax error' });
    await assert.rejects(r.call('SET', 's:e', 'v', 'EX', '1', 'PX', '1'), { message: 'ERR syntax error' });
    await assert.rejects(r.call('SET', 's:e', 'v', 'KEEPTTL', 'EX', '1'), { message: 'ERR syntax error' });
    await assert.rejects(r.call('SET', 's:e', 'v', 'EX'), { message: 'ERR syntax error' });
    await assert.rejects(r.call('SET', 's:e'), { message: "ERR wrong number of arguments for 'set' command" });
    assert.equal(await r.exists('s:e'), 0, 'failed SETs wrote nothing');
  });

  it('DEL, UNLINK and EXISTS (which counts repeats)', async () => {
    const r = client();
    await r.mset('d:1', 'a', 'd:2', 'b', 'd:3', 'c');
    assert.equal(await r.exists('d:1', 'd:1', 'd:2', 'd:none'), 3);
    assert.equal(await r.del('d:1', 'd:none'), 1);
    assert.equal(await r.unlink('d:2', 'd:3', 'd:2'), 2);
    assert.equal(await r.exists('d:1', 'd:2', 'd:3'), 0);
    await assert.rejects(r.call('DEL'), { message: "ERR wrong number of arguments for 'del' command" });
  });

  it('MSET and MGET', async () => {
    const r = client();
    assert.equal(await r.mset('m:a', '1', 'm:b', '2'), 'OK');
    assert.deepEqual(await r.mget('m:a', 'm:none', 'm:b'), ['1', null, '2']);
    await assert.rejects(r.call('MSET', 'm:a', '1', 'm:b'), { message: "ERR wrong number of arguments for 'mset' command" });
    assert.equal(await r.get('m:b'), '2');
  });

  it('APPEND, GETRANGE and STRLEN', async () => {
    const r = client();
    assert.equal(await r.append('ap', 'Hello'), 5);
    assert.equal(await r.append('ap', ' World'), 11);
    assert.equal(await r.get('ap'), 'Hello World');
    assert.equal(await r.strlen('ap'), 11);
    assert.equal(await r.strlen('ap:none'), 0);
    assert.equal(await r.getrange('ap', 0, 4), 'Hello');
    assert.equal(await r.getrange('ap', -5, -1), 'World');
    assert.equal(await r.getrange('ap', 20, 30), '');
    assert.equal(await r.getrange('ap:none', 0, -1), '');
    await assert.rejects(r.call('GETRANGE', 'ap', 'x', '1'), { message: 'ERR value is not an integer or out of range' });
  });
});

describe('expiry', () => {
  it('EXPIRE and PEXPIRE with NX, XX, GT and LT', async () => {
    const r = client();
    await r.set('e:k', 'v');
    assert.equal(await r.expire('e:none', 100), 0);
    assert.equal(await r.call('EXPIRE', 'e:k', '100', 'XX'), 0, 'XX: no expiry yet');
    assert.equal(await r.call('EXPIRE', 'e:k', '100', 'NX'), 1);
    assert.equal(await r.call('EXPIRE', 'e:k', '200', 'NX'), 0, 'NX: has an expiry');
    assert.equal(await r.call('EXPIRE', 'e:k', '50', 'GT'), 0);
    assert.equal(await r.call('EXPIRE', 'e:k', '300', 'GT'), 1);
    assert.equal(await r.call('PEXPIRE', 'e:k', '400000', 'LT'), 0);
    assert.equal(await r.call('PEXPIRE', 'e:k', '150000', 'LT'), 1);
    const pttl = await r.pttl('e:k');
    assert.ok(pttl > 148_000 && pttl <= 150_000, `pttl ${pttl}`);
    assert.equal(await r.ttl('e:k'), 150);
    await assert.rejects(r.call('EXPIRE', 'e:k', '10', 'NX', 'XX'), {
      message: 'ERR NX and XX, GT or LT options at the same time are not compatible',
    });
    await assert.rejects(r.call('EXPIRE', 'e:k', '10', 'GT', 'LT'), {
      message: 'ERR GT and LT options at the same time are not compatible',
    });
    await assert.rejects(r.call('EXPIRE', 'e:k', '10', 'SOON'), { message: 'ERR Unsupported option SOON' });
    await assert.rejects(r.call('EXPIRE', 'e:k', 'ten'), { message: 'ERR value is not an integer or out of range' });
    await assert.rejects(r.call('EXPIRE', 'e:k', '9223372036854775807'), {
      message: "ERR invalid expire time in 'expire' command",
    });
    assert.equal(await r.ttl('e:k'), 150, 'failed EXPIREs changed nothing');
  });

  it('EXPIREAT, PEXPIREAT, TTL, PTTL and PERSIST', async () => {
    const r = client();
    await r.set('e:at', 'v');
    assert.equal(await r.ttl('e:at'), -1);
    assert.equal(await r.ttl('e:none'), -2);
    assert.equal(await r.pttl('e:none'), -2);
    assert.equal(await r.expireat('e:at', Math.floor(Date.now() / 1000) + 500), 1);
    const ttl = await r.ttl('e:at');
    assert.ok(ttl > 495 && ttl <= 500, `ttl ${ttl}`);
    assert.equal(await r.pexpireat('e:at', Date.now() + 60_000), 1);
    assert.ok((await r.pttl('e:at')) > 55_000);
    assert.equal(await r.persist('e:at'), 1);
    assert.equal(await r.persist('e:at'), 0, 'no expiry left to remove');
    assert.equal(await r.persist('e:none'), 0);
    assert.equal(await r.ttl('e:at'), -1);
  });

  it('an expiry in the past deletes the key, as in Redis', async () => {
    const r = client();
    await r.mset('e:p1', 'v', 'e:p2', 'v', 'e:p3', 'v');
    assert.equal(await r.expire('e:p1', -1), 1);
    assert.equal(await r.pexpireat('e:p2', Date.now() - 10), 1);
    assert.equal(await r.expireat('e:p3', 1), 1);
    assert.equal(await r.exists('e:p1', 'e:p2', 'e:p3'), 0);
    assert.equal(await r.ttl('e:p1'), -2);
  });
});

describe('hashes', () => {
  it('HSET, HMSET, HGET, HMGET, HGETALL, HDEL, HLEN, HEXISTS', async () => {
    const r = client();
    assert.equal(await r.hset('h:doc', 'title', 'RAG', 'lang', 'en'), 2);
    assert.equal(await r.hset('h:doc', 'title', 'RAG 2', 'tags', 'a,b'), 1);
    assert.equal(await r.hmset('h:doc', 'summary', 's'), 'OK');
    assert.equal(await r.hget('h:doc', 'title'), 'RAG 2');
    assert.equal(await r.hget('h:doc', 'none'), null);
    assert.deepEqual(await r.hmget('h:doc', 'lang', 'none', 'tags'), ['en', null, 'a,b']);
    assert.deepEqual(await r.hgetall('h:doc'), { title: 'RAG 2', lang: 'en', tags: 'a,b', summary: 's' });
    assert.deepEqual(await r.hgetall('h:none'), {});
    assert.equal(await r.hlen('h:doc'), 4);
    assert.equal(await r.hexists('h:doc', 'lang'), 1);
    assert.equal(await r.hexists('h:doc', 'none'), 0);
    assert.equal(await r.hdel('h:doc', 'lang', 'none', 'lang'), 1);
    assert.equal(await r.hlen('h:doc'), 3);
    assert.equal(await r.hexists('h:doc', 'lang'), 0);
    await assert.rejects(r.call('HSET', 'h:doc', 'f'), { message: "ERR wrong number of arguments for 'hset' command" });
    await assert.rejects(r.call('HMSET', 'h:doc', 'f', 'v', 'g'), {
      message: "ERR wrong number of arguments for 'hmset' command",
    });
    assert.equal(await r.call('TYPE', 'h:doc'), 'hash');
  });
});

describe('keyspace', () => {
  const keyCount = 300;

  before(async () => {
    const r = client();
    await r.select(2);
    const args: string[] = [];
    for (let i = 0; i < keyCount; i++) args.push(i % 3 === 0 ? `user:${i}` : `doc:${i}`, String(i));
    await r.mset(...args);
    await r.hset('hash:1', 'f', 'v');
  });

  async function scanAll(r: Redis, ...options: (string | number)[]): Promise<string[]> {
    const seen: string[] = [];
    let cursor = '0';
    let calls = 0;
    do {
      const [next, keys] = await r.scan(cursor, ...(options as ['COUNT', number]));
      seen.push(...keys);
      cursor = next;
      assert.ok(++calls < 10_000);
    } while (cursor !== '0');
    return seen;
  }

  it('SCAN visits every key exactly once, with COUNT and MATCH', async () => {
    const r = client();
    await r.select(2);
    const all = await scanAll(r, 'COUNT', 7);
    assert.equal(all.length, keyCount + 1);
    assert.equal(new Set(all).size, keyCount + 1);
    const users = await scanAll(r, 'MATCH', 'user:*', 'COUNT', 11);
    assert.deepEqual(new Set(users), new Set(Array.from({ length: keyCount / 3 }, (_, i) => `user:${i * 3}`)));
    assert.equal(users.length, keyCount / 3);
    assert.deepEqual(await scanAll(r, 'TYPE', 'hash', 'COUNT', 1000), ['hash:1']);
    assert.equal((await scanAll(r, 'TYPE', 'string', 'COUNT', 1000)).length, keyCount);
  });

  it('SCAN cursors are integers that ioredis scanStream and redis-cli --scan follow', async () => {
    const r = client();
    await r.select(2);
    const [cursor] = await r.scan('0', 'COUNT', 5);
    assert.match(cursor, /^[1-9][0-9]*$/);
    const streamed: string[] = [];
    for await (const keys of r.scanStream({ match: 'doc:*', count: 13 })) streamed.push(...(keys as string[]));
    assert.equal(streamed.length, (keyCount * 2) / 3);
    assert.equal(new Set(streamed).size, streamed.length);
    const cli = (await redisCli('-n', '2', '--scan', '--pattern', 'user:*')).trim().split('\n');
    assert.equal(cli.length, keyCount / 3);
    assert.equal(new Set(cli).size, keyCount / 3);
  });

  it('SCAN errors like Redis', async () => {
    const r = client();
    await assert.rejects(r.scan('abc'), { message: 'ERR invalid cursor' });
    await assert.rejects(r.scan('987654321987'), { message: 'ERR invalid cursor' });
    await assert.rejects(r.call('SCAN', '0', 'COUNT', '0'), { message: 'ERR syntax error' });
    await assert.rejects(r.call('SCAN', '0', 'COUNT', 'x'), { message: 'ERR value is not an integer or out of range' });
    await assert.rejects(r.call('SCAN', '0', 'COUNT'), { message: 'ERR syntax error' });
    await assert.rejects(r.call('SCAN', '0', 'SORT', '1'), { message: 'ERR syntax error' });
  });

  it('a cursor belongs to its database', async () => {
    const r = client();
    await r.select(2);
    const [cursor] = await r.scan('0', 'COUNT', 3);
    await r.select(0);
    await assert.rejects(r.scan(cursor), { message: 'ERR invalid cursor' });
  });

  it('SELECT maps databases to separate namespaces', async () => {
    const r = client();
    assert.equal(await r.select(5), 'OK');
    await r.set('sel:k', 'five');
    assert.equal(await r.dbsize(), 1);
    await r.select(0);
    assert.equal(await r.get('sel:k'), null);
    await r.set('sel:k', 'zero');
    await r.select(15);
    assert.equal(await r.get('sel:k'), null);
    await r.select(5);
    assert.equal(await r.get('sel:k'), 'five');
    await assert.rejects(r.select(16), { message: 'ERR DB index is out of range' });
    await assert.rejects(r.call('SELECT', '-1'), { message: 'ERR DB index is out of range' });
    await assert.rejects(r.call('SELECT', 'one'), { message: 'ERR value is not an integer or out of range' });
    assert.equal(await r.get('sel:k'), 'five', 'a failed SELECT keeps the database');
    const info = await r.info('keyspace');
    assert.match(info, /^db2:keys=301,expires=0,avg_ttl=0\r$/m);
    assert.match(info, /^db5:keys=1,/m);
  });

  it('DBSIZE counts the selected database', async () => {
    const r = client();
    await r.select(2);
    assert.equal(await r.dbsize(), keyCount + 1);
    await r.select(9);
    assert.equal(await r.dbsize(), 0);
  });
});

describe('connection and server commands', () => {
  it('PING, ECHO and unknown commands', async () => {
    const r = client();
    assert.equal(await r.ping(), 'PONG');
    assert.equal(await r.ping('hi'), 'hi');
    assert.equal(await r.echo('hello'), 'hello');
    await assert.rejects(r.call('PING', 'a', 'b'), { message: "ERR wrong number of arguments for 'ping' command" });
    await assert.rejects(r.call('ECHO'), { message: "ERR wrong number of arguments for 'echo' command" });
    await assert.rejects(r.call('FOO', 'a', 'b'), {
      message: "ERR unknown command 'FOO', with args beginning with: 'a' 'b' ",
    });
    await assert.rejects(r.call('nope'), { message: "ERR unknown command 'nope', with args beginning with: " });
    assert.equal(await r.call('pInG'), 'PONG', 'names are case-insensitive');
  });

  it('INFO has Redis-style sections and the extra fields', async () => {
    const r = client();
    const info = await r.info();
    for (const line of ['# Server', 'redis_version:7.0.0', 'ragkv_durability:commit', '# Clients', '# Keyspace']) {
      assert.ok(info.includes(line), line);
    }
    assert.match(info, /^ragkv_version:\d+\.\d+\.\d+\r$/m);
    assert.match(info, /^connected_clients:[1-9]\d*\r$/m);
    assert.match(info, new RegExp(`^tcp_port:${port}\\r$`, 'm'));
    const server = await r.info('server');
    assert.ok(server.startsWith('# Server\r\n'));
    assert.ok(!server.includes('# Clients'));
  });

  it('INFO names each field once; an extra field with a built-in name replaces its value', async () => {
    const r = client();
    const info = (await r.call('INFO', 'everything')) as string;
    assert.deepEqual(repeatedInfoFields(info), {});
    assert.match(info, /^uptime_in_seconds:12345\r$/m);
  });

  it('CLIENT SETNAME, GETNAME, ID, INFO, LIST and SETINFO', async () => {
    const r = client();
    assert.equal(await r.client('GETNAME'), null);
    assert.equal(await r.client('SETNAME', 'worker-1'), 'OK');
    assert.equal(await r.client('GETNAME'), 'worker-1');
    const id = await r.client('ID');
    assert.ok(Number.isInteger(id) && (id as number) > 0);
    const info = (await r.client('INFO')) as string;
    assert.match(info, new RegExp(`^id=${id} addr=127\\.0\\.0\\.1:\\d+ .*name=worker-1 .*db=0 .*resp=2\\n$`));
    const list = (await r.call('CLIENT', 'LIST')) as string;
    assert.ok(list.includes('name=worker-1'));
    assert.equal(await r.call('CLIENT', 'SETINFO', 'LIB-NAME', 'x'), 'OK');
    await assert.rejects(r.client('SETNAME', 'has space'), {
      message: 'ERR Client names cannot contain spaces, newlines or special characters.',
    });
    await assert.rejects(r.call('CLIENT', 'SETNAME'), {
      message: "ERR wrong number of arguments for 'client|setname' command",
    });
    await assert.rejects(r.call('CLIENT', 'FLY'), { message: "ERR unknown subcommand 'FLY'. Try CLIENT HELP." });
  });

  it('COMMAND, COMMAND COUNT, COMMAND DOCS, COMMAND INFO and CONFIG GET', async () => {
    const r = client();
    const all = (await r.call('COMMAND')) as unknown[][];
    const count = (await r.call('COMMAND', 'COUNT')) as number;
    assert.equal(all.length, count);
    const get = all.find((c) => c[0] === 'get');
    assert.deepEqual(get?.slice(0, 6), ['get', 2, ['readonly', 'fast'], 1, 1, 1]);
    assert.deepEqual(await r.call('COMMAND', 'DOCS'), []);
    const info = (await r.call('COMMAND', 'INFO', 'set', 'nope')) as unknown[];
    assert.equal((info[0] as unknown[])[0], 'set');
    assert.equal(info[1], null);
    assert.deepEqual(await r.config('GET', 'save'), ['save', '']);
    assert.deepEqual(await r.config('GET', 'appendonly'), ['appendonly', 'no']);
    assert.deepEqual(await r.config('GET', 'databases'), ['databases', '16']);
    assert.deepEqual(await r.config('GET', 'nothing*'), []);
    await assert.rejects(r.call('CONFIG', 'GET'), { message: "ERR wrong number of arguments for 'config|get' command" });
  });

  it('HELLO switches protocol (raw RESP3 bytes) and RESET switches back', async () => {
    const c = await RawClient.connect(port);
    c.send(
      Buffer.concat([
        encodeCommand('HSET', 'r3:h', 'f', 'v'),
        encodeCommand('HELLO', '3', 'SETNAME', 'r3'),
        encodeCommand('HGETALL', 'r3:h'),
        encodeCommand('GET', 'r3:none'),
        encodeCommand('MGET', 'r3:none'),
        encodeCommand('CONFIG', 'GET', 'save'),
        encodeCommand('COMMAND', 'DOCS'),
        encodeCommand('CLIENT', 'GETNAME'),
        encodeCommand('RESET'),
        encodeCommand('GET', 'r3:none'),
        encodeCommand('HELLO', '4'),
        encodeCommand('HELLO', 'x'),
        encodeCommand('PING'),
      ]),
    );
    const tail = '+PONG\r\n';
    let text = await c.readBytes(1);
    while (!text.endsWith(tail)) text = await c.readBytes(text.length + 1);
    const hello =
      '%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n$5\r\nproto\r\n:3\r\n' +
      '$2\r\nid\r\n:ID\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n';
    const expected =
      ':1\r\n' +
      hello +
      '%1\r\n$1\r\nf\r\n$1\r\nv\r\n' + // HGETALL: a map
      '_\r\n' + // GET: RESP3 null
      '*1\r\n_\r\n' + // MGET
      '%1\r\n$4\r\nsave\r\n$0\r\n\r\n' + // CONFIG GET: a map
      '%0\r\n' + // COMMAND DOCS
      '$2\r\nr3\r\n' +
      '+RESET\r\n' +
      '$-1\r\n' + // back to RESP2
      '-NOPROTO unsupported protocol version\r\n' +
      '-ERR Protocol version is not an integer or out of range\r\n' +
      '+PONG\r\n';
    assert.equal(text.replace(/(\$2\r\nid\r\n):\d+\r\n/, '$1:ID\r\n'), expected);
    c.close();
  });

  it('QUIT replies OK and closes; pending replies come first', async () => {
    const c = await RawClient.connect(port);
    c.send(Buffer.concat([encodeCommand('SET', 'q:k', 'v'), encodeCommand('QUIT'), encodeCommand('GET', 'q:k')]));
    assert.equal(await c.readUntilClosed(), '+OK\r\n+OK\r\n');
  });

  it('a client that half-closes after sending gets every reply', async () => {
    const c = await RawClient.connect(port);
    c.socket.end(Buffer.concat([encodeCommand('SET', 'hc:k', 'v'), encodeCommand('GET', 'hc:k')]));
    assert.equal(await c.readUntilClosed(), '+OK\r\n$1\r\nv\r\n');
  });

  it('inline commands (telnet style)', async () => {
    const c = await RawClient.connect(port);
    c.send('SET inline:k "two words"\r\nGET inline:k\nPING\r\n');
    const expected = '+OK\r\n$9\r\ntwo words\r\n+PONG\r\n';
    assert.equal(await c.readBytes(expected.length), expected);
    c.close();
  });
});

describe('pipelining and ordering', () => {
  it('1000 pipelined commands reply in order', async () => {
    const r = client();
    const p = r.pipeline();
    for (let i = 0; i < 500; i++) {
      p.set(`p:${i % 50}`, `v${i}`);
      p.get(`p:${i % 50}`);
    }
    const results = await p.exec();
    assert.ok(results);
    assert.equal(results.length, 1000);
    for (let i = 0; i < 500; i++) {
      assert.deepEqual(results[2 * i], [null, 'OK']);
      assert.deepEqual(results[2 * i + 1], [null, `v${i}`], `read ${i} sees write ${i}`);
    }
  });

  it('writes and reads mixed in one socket write reply in command order and see earlier writes', async () => {
    const c = await RawClient.connect(port);
    const commands = [
      encodeCommand('SET', 'o:a', '1'),
      encodeCommand('GET', 'o:a'),
      encodeCommand('APPEND', 'o:a', '23'),
      encodeCommand('GET', 'o:a'),
      encodeCommand('SET', 'o:a', '', 'EX', '0'), // error in the middle, behind a write
      encodeCommand('HSET', 'o:h', 'f', 'x'),
      encodeCommand('NOPE'),
      encodeCommand('HGET', 'o:h', 'f'),
      encodeCommand('DEL', 'o:a'),
      encodeCommand('EXISTS', 'o:a'),
      encodeCommand('PING'),
    ];
    c.send(Buffer.concat(commands));
    const expected =
      '+OK\r\n$1\r\n1\r\n:3\r\n$3\r\n123\r\n' +
      "-ERR invalid expire time in 'set' command\r\n" +
      ':1\r\n' +
      "-ERR unknown command 'NOPE', with args beginning with: \r\n" +
      '$1\r\nx\r\n:1\r\n:0\r\n+PONG\r\n';
    assert.equal(await c.readBytes(expected.length), expected);
    c.close();
  });

  it('a pipeline of GETs of large values arrives complete and in order', async () => {
    const r = client();
    const values = Array.from({ length: 20 }, (_, i) => Buffer.alloc(100_000 + i, 97 + i));
    await r.mset(...values.flatMap((v, i) => [`big:${i}`, v]));
    const p = r.pipeline();
    for (let round = 0; round < 5; round++) for (let i = 0; i < values.length; i++) p.getBuffer(`big:${i}`);
    const results = await p.exec();
    assert.ok(results);
    results.forEach(([err, v], j) => {
      assert.equal(err, null);
      assert.deepEqual(v, values[j % values.length]);
    });
  });
});

describe('INFO of a real `ragkv start` process', () => {
  it('names each field once (uptime_in_seconds included)', { timeout: 60_000 }, async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'ragkv-info-'));
    const node = await startNodeProcess(dataDir, ['--durability', 'none']);
    const r = new Redis({ port: node.ports.resp, host: '127.0.0.1', retryStrategy: () => null, maxRetriesPerRequest: 0, lazyConnect: true });
    try {
      await r.connect();
      const info = (await r.call('INFO', 'everything')) as string;
      assert.deepEqual(repeatedInfoFields(info), {});
      assert.match(info, /^uptime_in_seconds:\d+\r$/m);
      assert.match(info, /^ragkv_durability:none\r$/m);
    } finally {
      r.disconnect();
      assert.equal(await stopGracefully(node), 0);
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('redis-cli', () => {
  it('runs single commands', async () => {
    assert.equal(await redisCli('SET', 'cli:k', 'hello world'), 'OK\n');
    assert.equal(await redisCli('GET', 'cli:k'), 'hello world\n');
    assert.equal(await redisCli('STRLEN', 'cli:k'), '11\n');
    assert.equal(await redisCli('PING'), 'PONG\n');
    assert.match(await redisCli('INFO', 'server'), /redis_version:7\.0\.0/);
    // -3: redis-cli speaks RESP3 (HELLO 3) and prints the HGETALL map as "field value".
    assert.equal(await redisCli('-3', 'HSET', 'cli:h', 'f', 'v'), '1\n');
    assert.equal(await redisCli('-3', 'HGETALL', 'cli:h'), 'f v\n');
  });

  it('runs commands read from stdin', async () => {
    const out = await redisCliStdin('SET cli:s 1\nAPPEND cli:s 23\nGET cli:s\nEXISTS cli:s cli:none\nFOO\n');
    assert.equal(out, "OK\n3\n123\n1\nERR unknown command 'FOO', with args beginning with: \n\n");
  });

  it('--pipe mass insertion reports no errors', async () => {
    const commands: Buffer[] = [];
    for (let i = 0; i < 2000; i++) commands.push(encodeCommand('SET', `pipe:${i}`, `value-${i}`));
    const out = await redisCliStdin(Buffer.concat(commands), '--pipe');
    assert.match(out, /errors: 0, replies: 2000/);
    const r = client();
    assert.equal(await r.get('pipe:1999'), 'value-1999');
  });
});
