/**
 * Redis Cluster clients against ragkv. First the CLUSTER replies of a RESP server over real
 * placement tables (in-process: exact RESP2/RESP3 bytes, every stage of a join, members
 * without a known address); then real member processes: the replies themselves, ioredis
 * `Cluster` through one member while a 4th member joins and leaves under load, node-redis
 * `createCluster`; and a single node, which has cluster support disabled.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Cluster, type ClusterOptions } from 'ioredis';
import { createCluster } from 'redis';
import { PlacementTable } from '../src/cluster/placement/table.js';
import { makeLimits } from '../src/common/limits.js';
import { keySlot, slotCount } from '../src/common/slots.js';
import { openLocalKv } from '../src/coordinator/index.js';
import { noMetrics } from '../src/server/metrics.js';
import { type RespServer, type RespTopology, startRespServer } from '../src/server/resp/index.js';
import { ProcessCluster, waitFor } from './helpers/cluster.js';
import { startNodeProcess, stopGracefully } from './helpers/process.js';
import { encodeCommand } from './helpers/resp.js';
import { tempDir } from './helpers/tmp.js';

// ---------------------------------------------------------------- a typed RESP reader

type Reply =
  | { t: 'simple' | 'error' | 'bulk' | 'verbatim'; v: string }
  | { t: 'int'; v: number }
  | { t: 'null' }
  | { t: 'array' | 'set'; v: Reply[] }
  | { t: 'map'; v: [Reply, Reply][] };

function parseReply(buf: Buffer, at: number): [Reply, number] {
  const eol = buf.indexOf('\r\n', at);
  if (eol < 0) throw new Error(`incomplete reply at ${at}`);
  const type = String.fromCharCode(buf[at]!);
  const line = buf.toString('latin1', at + 1, eol);
  let pos = eol + 2;
  switch (type) {
    case '+':
      return [{ t: 'simple', v: line }, pos];
    case '-':
      return [{ t: 'error', v: line }, pos];
    case ':':
      return [{ t: 'int', v: Number(line) }, pos];
    case '_':
      return [{ t: 'null' }, pos];
    case '$':
    case '=': {
      const n = Number(line);
      if (n < 0) return [{ t: 'null' }, pos];
      return [{ t: type === '$' ? 'bulk' : 'verbatim', v: buf.toString('utf8', pos, pos + n) }, pos + n + 2];
    }
    case '*':
    case '~':
    case '%': {
      const n = Number(line);
      if (n < 0) return [{ t: 'null' }, pos];
      const items: Reply[] = [];
      for (let i = 0; i < (type === '%' ? 2 * n : n); i++) {
        const [r, next] = parseReply(buf, pos);
        items.push(r);
        pos = next;
      }
      if (type !== '%') return [{ t: type === '*' ? 'array' : 'set', v: items }, pos];
      const pairs: [Reply, Reply][] = [];
      for (let i = 0; i < items.length; i += 2) pairs.push([items[i]!, items[i + 1]!]);
      return [{ t: 'map', v: pairs }, pos];
    }
    default:
      throw new Error(`unknown reply type '${type}' at ${at}`);
  }
}

/**
 * Sends the commands on a fresh connection (after HELLO 3 when `resp3`) and resolves with
 * their raw reply bytes once the ECHO sent after them has come back (the event that ends it).
 */
async function rawReplies(host: string, port: number, resp3: boolean, commands: string[][]): Promise<Buffer> {
  const marker = `end-of-replies-${Math.random().toString(36).slice(2)}`;
  const tail = Buffer.from(`$${marker.length}\r\n${marker}\r\n`);
  const socket = netConnect(port, host);
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    const all = await new Promise<Buffer>((resolve, reject) => {
      socket.on('error', reject);
      socket.on('close', () => reject(new Error(`closed before the replies were complete: ${Buffer.concat(chunks).toString('latin1').slice(0, 500)}`)));
      socket.on('data', (d: Buffer) => {
        chunks.push(d);
        total += d.length;
        const last = chunks.length === 1 || d.length >= tail.length ? d : Buffer.concat(chunks.slice(-2));
        if (total >= tail.length && last.subarray(last.length - tail.length).equals(tail)) resolve(Buffer.concat(chunks));
      });
      socket.write(Buffer.concat([...(resp3 ? [encodeCommand('HELLO', '3')] : []), ...commands.map((c) => encodeCommand(...c)), encodeCommand('ECHO', marker)]));
    });
    let pos = 0;
    if (resp3) pos = parseReply(all, 0)[1];
    return all.subarray(pos, all.length - tail.length);
  } finally {
    socket.destroy();
  }
}

/** The parsed replies of `commands`. */
async function send(host: string, port: number, resp3: boolean, ...commands: string[][]): Promise<Reply[]> {
  const bytes = await rawReplies(host, port, resp3, commands);
  const out: Reply[] = [];
  for (let pos = 0; pos < bytes.length; ) {
    const [r, next] = parseReply(bytes, pos);
    out.push(r);
    pos = next;
  }
  assert.equal(out.length, commands.length);
  return out;
}

async function one(host: string, port: number, resp3: boolean, ...command: string[]): Promise<Reply> {
  return (await send(host, port, resp3, command))[0]!;
}

function str(r: Reply): string {
  assert.ok(r.t === 'bulk' || r.t === 'verbatim' || r.t === 'simple' || r.t === 'error', `a string reply, got ${JSON.stringify(r).slice(0, 200)}`);
  return r.t === 'verbatim' ? r.v.replace(/^txt:/, '') : r.v;
}

function int(r: Reply): number {
  assert.equal(r.t, 'int', JSON.stringify(r).slice(0, 200));
  return (r as { v: number }).v;
}

function list(r: Reply, t: 'array' | 'map' = 'array'): Reply[] {
  assert.equal(r.t, t, JSON.stringify(r).slice(0, 200));
  return t === 'map' ? (r as { v: [Reply, Reply][] }).v.flat() : (r as { v: Reply[] }).v;
}

/** A RESP2 flat array or a RESP3 map as [key, value] pairs. */
function pairs(r: Reply, resp3: boolean): [string, Reply][] {
  const flat = list(r, resp3 ? 'map' : 'array');
  const out: [string, Reply][] = [];
  for (let i = 0; i < flat.length; i += 2) out.push([str(flat[i]!), flat[i + 1]!]);
  return out;
}

interface SlotNode {
  host: string;
  port: number;
  id: string;
  hostname: string;
}
interface SlotRange {
  start: number;
  end: number;
  nodes: SlotNode[];
}

/** CLUSTER SLOTS as plain values, checking the shape of each node entry on the way. */
function slotsOf(r: Reply, resp3: boolean): SlotRange[] {
  return list(r).map((range) => {
    const items = list(range);
    assert.ok(items.length >= 3, 'a range has its start, its end and at least its master');
    return {
      start: int(items[0]!),
      end: int(items[1]!),
      nodes: items.slice(2).map((n) => {
        const [host, port, id, meta, ...rest] = list(n);
        assert.equal(rest.length, 0, 'a node entry is [endpoint, port, id, metadata]');
        const m = new Map(pairs(meta!, resp3));
        assert.deepEqual([...m.keys()], ['hostname']);
        return { host: str(host!), port: int(port!), id: str(id!), hostname: str(m.get('hostname')!) };
      }),
    };
  });
}

/** Checks that `ranges` list each slot at most once, in order, maximal, with exactly the holders `expected(slot)`. */
function assertSlots(ranges: SlotRange[], expected: (slot: number) => string[]): void {
  let next = 0;
  let prev: SlotRange | null = null;
  for (const r of ranges) {
    assert.ok(r.start >= next && r.end >= r.start && r.end < slotCount, `range ${r.start}-${r.end} after slot ${next - 1}`);
    for (let s = next; s < r.start; s++) assert.deepEqual(expected(s), [], `slot ${s} is left out only when none of its holders is known`);
    const names = r.nodes.map((n) => n.hostname);
    for (let s = r.start; s <= r.end; s++) assert.deepEqual(names, expected(s), `holders of slot ${s}`);
    if (prev && prev.end === r.start - 1) {
      assert.notDeepEqual(prev.nodes.map((n) => n.hostname), names, `ranges ${prev.start}-${prev.end} and ${r.start}-${r.end} should be one`);
    }
    prev = r;
    next = r.end + 1;
  }
  for (let s = next; s < slotCount; s++) assert.deepEqual(expected(s), [], `slot ${s} is left out only when none of its holders is known`);
}

function sha1(text: string): string {
  return createHash('sha1').update(text).digest('hex');
}

interface NodeLine {
  id: string;
  address: string;
  hostname: string;
  flags: string[];
  master: string;
  epoch: number;
  link: string;
  slots: string[];
}

/** CLUSTER NODES text as lines, checking each line's fields. */
function nodesOf(text: string): NodeLine[] {
  assert.ok(text.endsWith('\n'));
  return text
    .slice(0, -1)
    .split('\n')
    .map((line) => {
      const [id, at, flags, master, ping, pong, epoch, link, ...slots] = line.split(' ');
      assert.match(id!, /^[0-9a-f]{40}$/);
      const m = /^(.+):(\d+)@(\d+),(.+)$/.exec(at!);
      assert.ok(m, `address field '${at}'`);
      assert.equal(ping, '0');
      assert.equal(pong, '0');
      for (const s of slots) assert.match(s, /^\d+(-\d+)?$/);
      return { id: id!, address: `${m[1]}:${m[2]}`, hostname: m[4]!, flags: flags!.split(','), master: master!, epoch: Number(epoch), link: link!, slots };
    });
}

function infoFields(text: string): Map<string, string> {
  assert.ok(text.endsWith('\r\n'), 'lines end with CRLF');
  return new Map(
    text
      .split('\r\n')
      .filter((l) => l !== '')
      .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)] as [string, string]),
  );
}

// ---------------------------------------------------------------- in-process: replies over real tables

describe('CLUSTER replies from placement tables (in-process server)', () => {
  const dir = tempDir();
  let closeKv: () => Promise<void>;
  let server: RespServer;
  const host = '127.0.0.1';
  const known = new Map<string, string>();
  const resetAddresses = () => {
    known.clear();
    for (let i = 1; i <= 4; i++) known.set(`n${i}`, `127.0.0.1:${7000 + i}`);
  };
  let table: PlacementTable | null = null;
  const topology: RespTopology = { self: 'n1', table: () => table, clientAddress: (id) => known.get(id) };
  const t0 = PlacementTable.initial([{ id: 'n1' }, { id: 'n2' }, { id: 'n3' }], 3, 'n1');
  const joinWriteBoth = t0.begin('join', 'n4', 'n1');
  const joinReadNew = joinWriteBoth.advance('n1');
  const t1 = joinReadNew.advance('n1');
  const q = (resp3: boolean, ...command: string[]) => one(host, server.port, resp3, ...command);
  /** Holders of a slot by `lists`, less the members without an address. */
  const holders = (lists: readonly (readonly string[])[]) => (s: number) => lists[s]!.filter((id) => known.has(id));

  before(async () => {
    const local = await openLocalKv({ path: dir.path, durability: 'none' });
    closeKv = () => local.close();
    server = await startRespServer({ kv: local.kv, limits: makeLimits(), host, port: 0, logger: { info() {}, warn() {}, error() {}, debug() {} }, metrics: noMetrics, topology });
  });
  after(async () => {
    await server?.close();
    await closeKv?.();
    dir.cleanup();
  });

  it('before the cluster has formed: no slots, cluster_state:fail, this member alone in NODES, MYID its sha1', async () => {
    resetAddresses();
    table = null;
    for (const resp3 of [false, true]) {
      assert.deepEqual(await q(resp3, 'CLUSTER', 'SLOTS'), { t: 'array', v: [] });
      const info = infoFields(str(await q(resp3, 'CLUSTER', 'INFO')));
      assert.equal(info.get('cluster_state'), 'fail');
      assert.equal(info.get('cluster_slots_assigned'), '0');
      assert.equal(info.get('cluster_size'), '0');
      assert.equal(info.get('cluster_known_nodes'), '1');
      const nodes = nodesOf(str(await q(resp3, 'CLUSTER', 'NODES')));
      assert.deepEqual(nodes.map((n) => [n.id, n.flags, n.slots]), [[sha1('n1'), ['myself', 'master'], []]]);
      assert.deepEqual(await q(resp3, 'CLUSTER', 'MYID'), { t: 'bulk', v: sha1('n1') });
    }
  });

  it('a stable table: SLOTS lists every slot once with its owners (first = master) in maximal ranges; NODES and SHARDS give each member the slots it is first for', async () => {
    resetAddresses();
    table = t0;
    for (const resp3 of [false, true]) {
      const ranges = slotsOf(await q(resp3, 'CLUSTER', 'SLOTS'), resp3);
      assertSlots(ranges, holders(t0.owners));
      assert.equal(ranges[0]!.start, 0);
      assert.equal(ranges.at(-1)!.end, slotCount - 1);
      for (const r of ranges) {
        assert.equal(r.nodes.length, 3);
        for (const n of r.nodes) {
          assert.equal(n.id, sha1(n.hostname));
          assert.equal(`${n.host}:${n.port}`, known.get(n.hostname));
        }
      }
    }
    // NODES: every member a master of the slots it is first for, in ranges.
    const lines = nodesOf(str(await q(false, 'CLUSTER', 'NODES')));
    assert.deepEqual(lines.map((l) => l.hostname), ['n1', 'n2', 'n3']);
    const firstOf = new Map<string, number>();
    for (const l of lines) {
      assert.equal(l.id, sha1(l.hostname));
      assert.equal(l.address, known.get(l.hostname));
      assert.deepEqual(l.flags, l.hostname === 'n1' ? ['myself', 'master'] : ['master']);
      assert.equal(l.master, '-');
      assert.equal(l.epoch, t0.epoch);
      assert.equal(l.link, 'connected');
      for (const s of l.slots) {
        const [a, b = a] = s.split('-').map(Number) as [number, number?];
        for (let slot = a; slot <= b!; slot++) {
          assert.equal(t0.owners[slot]![0], l.hostname, `slot ${slot} is listed for its first owner`);
          assert.ok(!firstOf.has(`${slot}`), `slot ${slot} listed once`);
          firstOf.set(`${slot}`, 1);
        }
      }
    }
    assert.equal(firstOf.size, slotCount);
    // SHARDS: one per member, its slots (pairs) as in NODES, itself master, then replicas.
    for (const resp3 of [false, true]) {
      const shards = list(await q(resp3, 'CLUSTER', 'SHARDS'));
      assert.equal(shards.length, 3);
      shards.forEach((shard, i) => {
        const fields = pairs(shard, resp3);
        assert.deepEqual(fields.map(([k]) => k), ['slots', 'nodes']);
        const slots = list(fields[0]![1]).map(int);
        const expected = lines[i]!.slots.flatMap((s) => {
          const [a, b = a] = s.split('-');
          return [Number(a), Number(b)];
        });
        assert.deepEqual(slots, expected);
        const nodes = list(fields[1]![1]).map((n) => new Map(pairs(n, resp3)));
        assert.equal(nodes.length, 3);
        for (const [j, n] of nodes.entries()) {
          assert.deepEqual([...n.keys()], ['id', 'port', 'ip', 'endpoint', 'hostname', 'role', 'replication-offset', 'health']);
          const name = str(n.get('hostname')!);
          assert.equal(str(n.get('id')!), sha1(name));
          assert.equal(`${str(n.get('ip')!)}:${int(n.get('port')!)}`, known.get(name));
          assert.equal(str(n.get('endpoint')!), str(n.get('ip')!));
          assert.equal(str(n.get('role')!), j === 0 ? 'master' : 'replica');
          assert.equal(str(n.get('health')!), 'online');
          assert.equal(int(n.get('replication-offset')!), 0);
        }
        assert.equal(str(nodes[0]!.get('hostname')!), lines[i]!.hostname);
      });
    }
    const info = infoFields(str(await q(true, 'CLUSTER', 'INFO')));
    assert.equal(info.get('cluster_state'), 'ok');
    assert.equal(info.get('cluster_slots_assigned'), String(slotCount));
    assert.equal(info.get('cluster_slots_ok'), String(slotCount));
    assert.equal(info.get('cluster_slots_fail'), '0');
    assert.equal(info.get('cluster_known_nodes'), '3');
    assert.equal(info.get('cluster_size'), '3');
    assert.equal(info.get('cluster_current_epoch'), String(t0.epoch));
    assert.equal(info.get('cluster_my_epoch'), String(t0.epoch));
    assert.equal(info.get('ragkv_placement_change'), 'none');
  });

  it('a join in flight: SLOTS follows the read sets (old owners at write-both, the target at read-new); the newcomer is a slotless master until then', async () => {
    resetAddresses();
    table = joinWriteBoth;
    let ranges = slotsOf(await q(false, 'CLUSTER', 'SLOTS'), false);
    assertSlots(ranges, holders(t0.owners));
    assert.ok(!ranges.some((r) => r.nodes.some((n) => n.hostname === 'n4')), 'n4 is read nowhere yet');
    let lines = nodesOf(str(await q(false, 'CLUSTER', 'NODES')));
    assert.deepEqual(lines.map((l) => [l.hostname, l.slots.length > 0]), [['n1', true], ['n2', true], ['n3', true], ['n4', false]]);
    let info = infoFields(str(await q(false, 'CLUSTER', 'INFO')));
    assert.equal(info.get('ragkv_placement_change'), 'join n4 write-both');
    assert.equal(info.get('cluster_known_nodes'), '4');
    assert.equal(info.get('cluster_size'), '3');
    assert.equal(info.get('cluster_current_epoch'), String(joinWriteBoth.epoch));

    table = joinReadNew;
    ranges = slotsOf(await q(true, 'CLUSTER', 'SLOTS'), true);
    assertSlots(ranges, holders(joinReadNew.change!.target));
    assert.ok(ranges.some((r) => r.nodes[0]!.hostname === 'n4'), 'n4 is master of some slots once reads moved');
    info = infoFields(str(await q(false, 'CLUSTER', 'INFO')));
    assert.equal(info.get('ragkv_placement_change'), 'join n4 read-new');
    assert.equal(info.get('cluster_size'), '4');

    table = t1;
    assertSlots(slotsOf(await q(false, 'CLUSTER', 'SLOTS'), false), holders(t1.owners));
    lines = nodesOf(str(await q(false, 'CLUSTER', 'NODES')));
    assert.ok(lines.every((l) => l.slots.length > 0 && l.epoch === t1.epoch));
  });

  it('members without a known client address are left out; a slot stays listed while one of its holders is known', async () => {
    resetAddresses();
    table = t1;
    known.delete('n2');
    const ranges = slotsOf(await q(false, 'CLUSTER', 'SLOTS'), false);
    assertSlots(ranges, holders(t1.owners));
    assert.equal(ranges.reduce((n, r) => n + r.end - r.start + 1, 0), slotCount, 'every slot still has a known holder');
    assert.ok(!ranges.some((r) => r.nodes.some((n) => n.hostname === 'n2')));
    assert.deepEqual(nodesOf(str(await q(false, 'CLUSTER', 'NODES'))).map((l) => l.hostname), ['n1', 'n3', 'n4']);
    assert.equal(infoFields(str(await q(false, 'CLUSTER', 'INFO'))).get('cluster_known_nodes'), '3');

    // Only n1 known: one range of every slot, n1 alone; then no one known: no slot listed.
    table = t0;
    known.delete('n3');
    known.delete('n4');
    assert.deepEqual(slotsOf(await q(false, 'CLUSTER', 'SLOTS'), false), [
      { start: 0, end: slotCount - 1, nodes: [{ host: '127.0.0.1', port: 7001, id: sha1('n1'), hostname: 'n1' }] },
    ]);
    known.delete('n1');
    assert.deepEqual(await q(false, 'CLUSTER', 'SLOTS'), { t: 'array', v: [] });
    const info = infoFields(str(await q(false, 'CLUSTER', 'INFO')));
    assert.equal(info.get('cluster_slots_assigned'), String(slotCount));
    assert.equal(info.get('cluster_slots_ok'), '0');
    assert.equal(info.get('cluster_slots_fail'), String(slotCount));
    assert.equal(str(await q(false, 'CLUSTER', 'NODES')), '');
  });

  it('exact bytes of SLOTS, SHARDS, NODES in RESP2 and RESP3 (Redis 7 shapes)', async () => {
    resetAddresses();
    known.delete('n2');
    known.delete('n3');
    table = t0;
    const id = sha1('n1');
    const node2 = `*4\r\n$9\r\n127.0.0.1\r\n:7001\r\n$40\r\n${id}\r\n*2\r\n$8\r\nhostname\r\n$2\r\nn1\r\n`;
    const node3 = `*4\r\n$9\r\n127.0.0.1\r\n:7001\r\n$40\r\n${id}\r\n%1\r\n$8\r\nhostname\r\n$2\r\nn1\r\n`;
    const slots = (resp3: boolean) => rawReplies(host, server.port, resp3, [['CLUSTER', 'SLOTS']]).then((b) => b.toString('latin1'));
    assert.equal(await slots(false), `*1\r\n*3\r\n:0\r\n:16383\r\n${node2}`);
    assert.equal(await slots(true), `*1\r\n*3\r\n:0\r\n:16383\r\n${node3}`);
    const fields = `$2\r\nid\r\n$40\r\n${id}\r\n$4\r\nport\r\n:7001\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$8\r\nhostname\r\n$2\r\nn1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n:0\r\n$6\r\nhealth\r\n$6\r\nonline\r\n`;
    const shards = (resp3: boolean) => rawReplies(host, server.port, resp3, [['CLUSTER', 'SHARDS']]).then((b) => b.toString('latin1'));
    assert.equal(await shards(false), `*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16383\r\n$5\r\nnodes\r\n*1\r\n*16\r\n${fields}`);
    assert.equal(await shards(true), `*1\r\n%2\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16383\r\n$5\r\nnodes\r\n*1\r\n%8\r\n${fields}`);
    const line = `${id} 127.0.0.1:7001@0,n1 myself,master - 0 0 ${t0.epoch} connected 0-16383\n`;
    const nodes = (resp3: boolean) => rawReplies(host, server.port, resp3, [['CLUSTER', 'NODES']]).then((b) => b.toString('latin1'));
    assert.equal(await nodes(false), `$${line.length}\r\n${line}\r\n`);
    assert.equal(await nodes(true), `=${line.length + 4}\r\ntxt:${line}\r\n`);
    const info = await rawReplies(host, server.port, true, [['CLUSTER', 'INFO']]).then((b) => b.toString('latin1'));
    assert.match(info, /^=\d+\r\ntxt:cluster_state:ok\r\ncluster_slots_assigned:16384\r\n/);
  });

  it('errors, KEYSLOT, MYID, READONLY/READWRITE/ASKING, HELP, HELLO mode and INFO on a member', async () => {
    resetAddresses();
    table = t0;
    const r = await send(
      host,
      server.port,
      false,
      ['CLUSTER'],
      ['CLUSTER', 'SLOTS', 'x'],
      ['CLUSTER', 'KEYSLOT'],
      ['CLUSTER', 'Bogus'],
      ['READONLY', 'x'],
      ['CLUSTER', 'KEYSLOT', 'foo'],
      ['cluster', 'keyslot', '{user1000}.following'],
      ['READONLY'],
      ['READWRITE'],
      ['ASKING'],
      ['CLUSTER', 'HELP'],
      ['INFO', 'cluster'],
      ['INFO', 'server'],
    );
    assert.deepEqual(r.slice(0, 5), [
      { t: 'error', v: "ERR wrong number of arguments for 'cluster' command" },
      { t: 'error', v: "ERR wrong number of arguments for 'cluster|slots' command" },
      { t: 'error', v: "ERR wrong number of arguments for 'cluster|keyslot' command" },
      { t: 'error', v: "ERR unknown subcommand 'Bogus'. Try CLUSTER HELP." },
      { t: 'error', v: "ERR wrong number of arguments for 'readonly' command" },
    ]);
    assert.deepEqual(r.slice(5, 10), [
      { t: 'int', v: 12182 },
      { t: 'int', v: keySlot(Buffer.from('user1000')) },
      { t: 'simple', v: 'OK' },
      { t: 'simple', v: 'OK' },
      { t: 'simple', v: 'OK' },
    ]);
    const help = list(r[10]!);
    assert.ok(help.every((h) => h.t === 'simple'));
    assert.match(str(help[0]!), /^CLUSTER <subcommand>/);
    assert.equal(str(r[11]!), '# Cluster\r\ncluster_enabled:1\r\n');
    assert.match(str(r[12]!), /\r\nredis_mode:cluster\r\n/);
    const [hello] = await send(host, server.port, false, ['HELLO', '3']);
    const fields = new Map(pairs(hello!, true));
    assert.equal(str(fields.get('mode')!), 'cluster');
  });
});

// ---------------------------------------------------------------- real member processes

/** Loopback addresses of this file's members (other process tests use other ones). */
const hosts = ['127.0.0.81', '127.0.0.82', '127.0.0.83'];

describe('Redis cluster clients against member processes', { timeout: 600_000 }, () => {
  let cluster: ProcessCluster;
  /** `host:port` RESP address of member i. */
  const address = (i: number) => `${cluster.host(i)}:${cluster.member(i).ports.resp}`;

  before(async () => {
    // Reads at QUORUM: a cluster client reads a key through whichever member it routes the
    // read to (a replica, with scaleReads), not the connection that wrote it, so
    // read-your-writes across its connections needs R + W > N (sessions are per connection).
    cluster = await ProcessCluster.start({ hosts, extraArgs: ['--read-consistency', 'QUORUM'], startTimeoutMs: 60_000 });
    await clientAddressesKnown([0, 1, 2]);
  });

  /** Waits until every running member knows the client (RESP) address of each of `members` (gossiped after they bind it). */
  async function clientAddressesKnown(members: number[]): Promise<void> {
    let last = '';
    await waitFor(
      'every member to know the client addresses',
      async () => {
        const seen = (await cluster.statuses()).filter((s) => s !== null);
        last = seen.map((s) => `${s.self}: ${s.members.map((m) => `${m.id}=${m.client || '?'}`).join(' ')}`).join('; ');
        return seen.every((s) => members.every((i) => s.members.find((m) => m.id === cluster.id(i))?.client === address(i)));
      },
      { timeoutMs: 30_000, intervalMs: 100, describe: () => last },
    );
  }
  after(async () => {
    await cluster?.destroy();
  });

  it('CLUSTER SLOTS/NODES/SHARDS/INFO/MYID/KEYSLOT, READONLY/READWRITE/ASKING and INFO over RESP', { timeout: 120_000 }, async () => {
    const addresses = new Map([0, 1, 2].map((i) => [cluster.id(i), address(i)]));
    const epoch = (await cluster.status(0)).placement!.epoch;
    for (const i of [0, 1, 2]) {
      const at = [cluster.host(i), cluster.member(i).ports.resp] as const;
      const [slots, myid, myidAgain, nodes, shards, info, infoCluster, k1, k2, k3, k4, ro, rw, asking] = await send(
        ...at,
        false,
        ['CLUSTER', 'SLOTS'],
        ['CLUSTER', 'MYID'],
        ['CLUSTER', 'MYID'],
        ['CLUSTER', 'NODES'],
        ['CLUSTER', 'SHARDS'],
        ['CLUSTER', 'INFO'],
        ['INFO', 'cluster'],
        ['CLUSTER', 'KEYSLOT', 'foo'],
        ['CLUSTER', 'KEYSLOT', 'bar'],
        ['CLUSTER', 'KEYSLOT', '{user1000}.following'],
        ['CLUSTER', 'KEYSLOT', 'user1000'],
        ['READONLY'],
        ['READWRITE'],
        ['ASKING'],
      );
      // SLOTS: 0..16383 exactly once, 3 holders per range, each at its member's RESP address.
      const ranges = slotsOf(slots!, false);
      let next = 0;
      for (const r of ranges) {
        assert.equal(r.start, next, `slot ranges follow each other (via ${cluster.id(i)})`);
        next = r.end + 1;
        assert.equal(r.nodes.length, 3);
        assert.equal(new Set(r.nodes.map((n) => n.hostname)).size, 3);
        for (const n of r.nodes) {
          assert.equal(`${n.host}:${n.port}`, addresses.get(n.hostname), `${n.hostname}'s RESP address`);
          assert.equal(n.id, sha1(n.hostname));
        }
      }
      assert.equal(next, slotCount);
      assert.equal(new Set(ranges.map((r) => r.nodes[0]!.hostname)).size, 3, 'each member is master of some slots');
      // MYID: stable, the id of this member, the `myself` line of NODES.
      assert.equal(str(myid!), str(myidAgain!));
      assert.equal(str(myid!), sha1(cluster.id(i)));
      const lines = nodesOf(str(nodes!));
      assert.equal(lines.length, 3);
      const myself = lines.filter((l) => l.flags.includes('myself'));
      assert.equal(myself.length, 1);
      assert.equal(myself[0]!.id, str(myid!));
      assert.equal(myself[0]!.address, address(i));
      for (const l of lines) {
        assert.equal(l.address, addresses.get(l.hostname));
        assert.equal(l.epoch, epoch);
      }
      // SHARDS: one per member, their slot pairs covering every slot once.
      const shardList = list(shards!).map((s) => new Map(pairs(s, false)));
      assert.equal(shardList.length, 3);
      let covered = 0;
      for (const s of shardList) {
        const p = list(s.get('slots')!).map(int);
        for (let j = 0; j < p.length; j += 2) covered += p[j + 1]! - p[j]! + 1;
        const members = list(s.get('nodes')!).map((n) => new Map(pairs(n, false)));
        assert.equal(str(members[0]!.get('role')!), 'master');
        assert.ok(members.slice(1).every((n) => str(n.get('role')!) === 'replica'));
        assert.equal(members.length, 3, 'with 3 replicas per slot every other member is a replica');
      }
      assert.equal(covered, slotCount);
      const fields = infoFields(str(info!));
      assert.equal(fields.get('cluster_state'), 'ok');
      assert.equal(fields.get('cluster_slots_assigned'), String(slotCount));
      assert.equal(fields.get('cluster_slots_ok'), String(slotCount));
      assert.equal(fields.get('cluster_known_nodes'), '3');
      assert.equal(fields.get('cluster_size'), '3');
      assert.equal(fields.get('cluster_current_epoch'), String(epoch));
      assert.equal(fields.get('ragkv_member_id'), cluster.id(i));
      assert.match(str(infoCluster!), /^# Cluster\r\ncluster_enabled:1\r\n/);
      // Redis' own slot values.
      assert.equal(int(k1!), 12182);
      assert.equal(int(k2!), 5061);
      assert.equal(int(k3!), int(k4!));
      assert.deepEqual([ro, rw, asking], [{ t: 'simple', v: 'OK' }, { t: 'simple', v: 'OK' }, { t: 'simple', v: 'OK' }]);
    }
    // RESP3: the metadata is a map, NODES a verbatim string.
    const [slots3, nodes3] = await send(cluster.host(1), cluster.member(1).ports.resp, true, ['CLUSTER', 'SLOTS'], ['CLUSTER', 'NODES']);
    assert.equal(slotsOf(slots3!, true).reduce((n, r) => n + r.end - r.start + 1, 0), slotCount);
    assert.equal(nodes3!.t, 'verbatim');
  });

  it('node-redis createCluster from one root node: 3 masters, SET/GET across the keyspace, MGET per slot (RESP2 and RESP3)', { timeout: 120_000 }, async () => {
    const expected = new Set([0, 1, 2].map(address));
    for (const RESP of [2, 3] as const) {
      const client = createCluster({
        rootNodes: [{ socket: { host: cluster.host(1), port: cluster.member(1).ports.resp } }],
        defaults: { socket: { connectTimeout: 30_000, reconnectStrategy: false } },
        RESP,
      });
      const errors: string[] = [];
      client.on('error', (err: Error) => errors.push(err.message));
      await client.connect();
      try {
        assert.equal(client.masters.length, 3);
        assert.deepEqual(new Set(client.masters.map((m) => m.address)), expected);
        for (let s = 0; s < slotCount; s += 997) assert.ok(expected.has(client.getSlotMaster(s).address), `slot ${s} has a master`);
        const keys = Array.from({ length: 300 }, (_, i) => `nr${RESP}:key:${i}`);
        assert.ok(new Set(keys.map((k) => client.getSlotMaster(keySlot(Buffer.from(k))).address)).size === 3, 'the keys span every master');
        await Promise.all(keys.map((k) => client.set(k, `v-${k}`)));
        assert.deepEqual(await Promise.all(keys.map((k) => client.get(k))), keys.map((k) => `v-${k}`));
        // MGET: the keys of one slot (a hash tag) together, for 40 tags.
        for (let tag = 0; tag < 40; tag++) {
          const group = Array.from({ length: 5 }, (_, j) => `{nr${RESP}-tag${tag}}:${j}`);
          await Promise.all(group.map((k) => client.set(k, `g-${k}`)));
          assert.deepEqual(await client.mGet(group), group.map((k) => `g-${k}`));
        }
        assert.deepEqual(errors, []);
      } finally {
        client.destroy();
      }
    }
  });

  it('ioredis Cluster through one member (and with scaleReads all): a 4th member joins and leaves under load, no command fails, every acknowledged key reads back', { timeout: 400_000 }, async () => {
    const seed = [{ host: cluster.host(0), port: cluster.member(0).ports.resp }];
    const options = (scaleReads: 'master' | 'all'): ClusterOptions => ({
      scaleReads,
      slotsRefreshInterval: 1000,
      // CLUSTER SLOTS of a ragkv cluster is long (primaries are spread slot by slot).
      slotsRefreshTimeout: 20_000,
      redisOptions: { commandTimeout: 60_000 },
    });
    const clients = { master: new Cluster(seed, options('master')), all: new Cluster(seed, options('all')) };
    const clientErrors: string[] = [];
    for (const c of Object.values(clients)) c.on('error', (err: Error) => clientErrors.push(err.message));
    try {
      await Promise.all(Object.values(clients).map((c) => new Promise<void>((resolve, reject) => {
        c.once('ready', resolve);
        c.once('end', () => reject(new Error('the cluster client ended before it was ready')));
      })));
      const mastersAre = async (members: number[]) => {
        const want = new Set(members.map(address));
        let last = '';
        await waitFor(
          `ioredis clients to route to ${members.map((i) => cluster.id(i)).join(',')}`,
          async () => {
            const ok = await Promise.all(
              Object.values(clients).map(async (c) => {
                await new Promise<void>((resolve, reject) => c.refreshSlotsCache((err) => (err ? reject(err) : resolve())));
                // Every slot mapped to 3 of the wanted members; the masters of the map and the pool are those members.
                const masters = new Set<string>();
                let mapped = 0;
                for (let s = 0; s < slotCount; s++) {
                  const keys = c.slots[s];
                  if (keys === undefined || keys.length !== 3 || !keys.every((k) => want.has(k))) continue;
                  mapped++;
                  masters.add(keys[0]!);
                }
                const pool = new Set(c.nodes('master').map((r) => `${r.options.host}:${r.options.port}`));
                last = `${mapped} slots mapped to them, masters in the slot map ${[...masters].join(' ')}, pool ${[...pool].join(' ')}`;
                return mapped === slotCount && masters.size === want.size && pool.size === want.size && [...pool].every((k) => want.has(k));
              }),
            );
            return ok.every(Boolean);
          },
          { timeoutMs: 60_000, intervalMs: 200, describe: () => last },
        );
      };
      await mastersAre([0, 1, 2]);

      // 500 keys per client, written and read back.
      const acked = { master: new Map<string, string>(), all: new Map<string, string>() };
      for (const [name, c] of Object.entries(clients) as [keyof typeof clients, Cluster][]) {
        const keys = Array.from({ length: 500 }, (_, i) => `io-${name}:pre:${i}`);
        for (let i = 0; i < keys.length; i += 50) {
          const batch = keys.slice(i, i + 50);
          const res = await Promise.all(batch.map((k) => c.set(k, `p-${k}`)));
          assert.ok(res.every((r) => r === 'OK'));
          for (const k of batch) acked[name].set(k, `p-${k}`);
        }
        assert.deepEqual(await Promise.all(keys.map((k) => c.get(k))), keys.map((k) => `p-${k}`));
      }

      // Load: each client writes new keys and reads back keys it wrote, until stopped.
      const failures: string[] = [];
      const missing: string[] = [];
      let ops = 0;
      let stopped = false;
      const loop = async (name: keyof typeof clients, worker: number) => {
        const c = clients[name];
        const mine = [...acked[name].keys()];
        for (let seq = 0; !stopped; seq++) {
          const key = `io-${name}:load:${worker}:${seq}`;
          try {
            await c.set(key, `l-${seq}`);
            acked[name].set(key, `l-${seq}`);
            mine.push(key);
          } catch (err) {
            failures.push(`${name} SET ${key}: ${(err as Error).message}`);
          }
          const probe = mine[(seq * 7919 + worker) % mine.length]!;
          try {
            const got = await c.get(probe);
            if (got !== acked[name].get(probe)) missing.push(`${name} ${probe}: ${got}`);
          } catch (err) {
            failures.push(`${name} GET ${probe}: ${(err as Error).message}`);
          }
          ops++;
        }
      };
      const loops = (['master', 'all'] as const).flatMap((name) => [0, 1].map((w) => loop(name, w)));

      // Join: a 4th member; the clients' slot maps then name 4 masters.
      const n4 = await cluster.addMember('127.0.0.84');
      let opsBefore = ops;
      await cluster.startMember(n4, 60_000);
      await cluster.waitPlacementSettled(180_000);
      await clientAddressesKnown([0, 1, 2, n4]);
      await mastersAre([0, 1, 2, n4]);
      assert.ok(ops > opsBefore, 'the clients kept working through the join');

      // Leave: the 4th member streams out and stops; the slot maps are back to 3 masters.
      opsBefore = ops;
      const left = await cluster.post(n4, '/cluster/leave', 180_000);
      assert.equal(left.status, 200, left.body);
      await cluster.waitExit(n4);
      await cluster.waitPlacementSettled(180_000, [0, 1, 2]);
      await mastersAre([0, 1, 2]);
      assert.ok(ops > opsBefore, 'the clients kept working through the leave');
      stopped = true;
      await Promise.all(loops);

      assert.deepEqual(failures, [], 'no command failed');
      assert.deepEqual(missing, [], 'every read of an acknowledged key saw it');
      // Every acknowledged key reads back through the client that wrote it.
      for (const [name, c] of Object.entries(clients) as [keyof typeof clients, Cluster][]) {
        const keys = [...acked[name].keys()];
        assert.ok(keys.length > 500, `${name}: keys were written under load`);
        const wrong: string[] = [];
        for (let i = 0; i < keys.length; i += 100) {
          const batch = keys.slice(i, i + 100);
          const got = await Promise.all(batch.map((k) => c.get(k)));
          batch.forEach((k, j) => {
            if (got[j] !== acked[name].get(k)) wrong.push(`${k}=${got[j]}`);
          });
        }
        assert.deepEqual(wrong, [], `${name}: every acknowledged key reads back`);
      }
    } finally {
      for (const c of Object.values(clients)) c.disconnect();
    }
  });
});

// ---------------------------------------------------------------- a single node

describe('a single node (no --node-id)', () => {
  it('has cluster support disabled (CLUSTER KEYSLOT still answers) and cluster_enabled:0', { timeout: 60_000 }, async () => {
    const dir = tempDir();
    const node = await startNodeProcess(dir.path, ['--durability', 'none'], 30_000);
    try {
      const r = await send('127.0.0.1', node.ports.resp, false, ['CLUSTER', 'SLOTS'], ['CLUSTER', 'NODES'], ['CLUSTER', 'INFO'], ['CLUSTER', 'MYID'], ['READONLY'], ['READWRITE'], ['ASKING'], ['CLUSTER', 'KEYSLOT', 'foo'], ['INFO', 'cluster'], ['CLUSTER', 'NOPE'], ['INFO', 'server']);
      const disabled = { t: 'error', v: 'ERR This instance has cluster support disabled' };
      assert.deepEqual(r.slice(0, 7), Array(7).fill(disabled));
      assert.deepEqual(r[7], { t: 'int', v: 12182 });
      assert.equal(str(r[8]!), '# Cluster\r\ncluster_enabled:0\r\n');
      assert.deepEqual(r[9], { t: 'error', v: "ERR unknown subcommand 'NOPE'. Try CLUSTER HELP." });
      assert.match(str(r[10]!), /\r\nredis_mode:standalone\r\n/);
    } finally {
      await stopGracefully(node);
      dir.cleanup();
    }
  });
});
