/**
 * Redis Cluster's view of a ragkv cluster, so that cluster clients (ioredis `Cluster`,
 * node-redis `createCluster`, redis-cli -c, ...) work against it: CLUSTER SLOTS, SHARDS,
 * NODES, INFO, MYID and KEYSLOT answered from the placement table, READONLY, READWRITE and
 * ASKING accepted. Reply shapes are Redis 7's, in RESP2 and RESP3.
 *
 * The mapping: a slot's read set (its owners, or the change's target once reads moved to it)
 * lists its holders, the first one its "master", the others its "replicas". Every member is
 * a master (of the slots it is first for) and a replica (of others) at once, which Redis has
 * no word for, so:
 *   SLOTS   consecutive slots with identical holder lists form one range: master, replicas;
 *   NODES   every member is a master with the slots it is first for (no `slave` lines);
 *   SHARDS  one shard per member: the slots it is first for, itself as master, then as
 *           replicas the other members holding any of them (one node can be in many shards).
 * Any member coordinates any key (it forwards internally), so routing by this view is an
 * optimisation and MOVED/ASK are never sent. Node ids are sha1 of the member id (40 hex
 * characters, stable across restarts); the member id itself is the node's `hostname`.
 * Members whose client address is not known yet are left out (a slot stays listed while at
 * least one of its holders is known).
 */
import { createHash } from 'node:crypto';
import type { PlacementTable } from '../../cluster/placement/table.js';
import { keySlot, slotCount } from '../../common/slots.js';
import type { Client as Connection, RespTopology } from './context.js';
import { ReplyWriter, replies } from './reply.js';

/** What the RESP server of a cluster member knows of its cluster (absent on a single node). */
export type { RespTopology };

const disabled = 'ERR This instance has cluster support disabled';

/** One member as cluster clients see it. */
interface NodeView {
  /** ragkv member id. */
  member: string;
  /** Redis node id: 40 lower-case hex characters. */
  id: string;
  host: string;
  port: number;
  /** The member id as a Redis hostname (letters, digits, '-', '.', '_'). */
  hostname: string;
  /** SLOTS node entries, pre-encoded: [RESP2, RESP3]. */
  slotsEntry: [Buffer, Buffer];
}

interface SlotRange {
  start: number;
  end: number;
  /** Holders with a known address, master first. */
  nodes: readonly NodeView[];
}

/** The cluster as one table and one set of addresses show it (built once per such pair). */
interface TopologyView {
  /** Members with a known address: the table's, sorted by id, then this member if it is not in the table. */
  nodes: NodeView[];
  ranges: SlotRange[];
  /** Slots whose read set names at least one member. */
  assigned: number;
  /** Slots listed in `ranges`. */
  covered: number;
  /** Encoded CLUSTER SLOTS replies: [RESP2, RESP3], made when first asked. */
  slotsReply: [Buffer | null, Buffer | null];
  /** Per member: the slot ranges it is master of and the replicas of those slots (NODES, SHARDS); made when first asked. */
  shards: Map<string, { ranges: SlotRange[]; replicas: Set<NodeView> }> | null;
}

const nodeIds = new Map<string, string>();

/** The Redis node id of member `member`: sha1 of its id, hex. */
export function redisNodeId(member: string): string {
  let id = nodeIds.get(member);
  if (id === undefined) {
    id = createHash('sha1').update(member, 'utf8').digest('hex');
    if (nodeIds.size > 4096) nodeIds.clear();
    nodeIds.set(member, id);
  }
  return id;
}

function hostnameOf(member: string): string {
  return member.replace(/[^A-Za-z0-9._-]/g, '-');
}

/** `host:port` split at the last colon; null when it is not one. */
function parseAddress(address: string): { host: string; port: number } | null {
  const colon = address.lastIndexOf(':');
  if (colon <= 0) return null;
  const port = Number(address.slice(colon + 1));
  if (!Number.isInteger(port) || port <= 0 || port > 65535) return null;
  let host = address.slice(0, colon);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { host, port };
}

function encodeSlotsEntry(resp3: boolean, host: string, port: number, id: string, hostname: string): Buffer {
  const w = new ReplyWriter(256);
  w.resp3 = resp3;
  w.arrayHeader(4);
  w.bulkString(host);
  w.integer(port);
  w.bulkString(id);
  w.mapHeader(1);
  w.bulkString('hostname');
  w.bulkString(hostname);
  return w.take();
}

/** Views per table, for the addresses they were built with (a table is immutable). */
const views = new WeakMap<PlacementTable, { key: string; view: TopologyView }>();

function viewOf(topology: RespTopology, table: PlacementTable | null): TopologyView {
  const members = table ? table.members.map((m) => m.id) : [];
  if (!members.includes(topology.self)) members.push(topology.self);
  const known: { member: string; address: string }[] = [];
  for (const member of members) {
    const address = topology.clientAddress(member);
    if (address !== undefined) known.push({ member, address });
  }
  const key = `${topology.self}\n${known.map((k) => `${k.member}=${k.address}`).join('\n')}`;
  if (table) {
    const cached = views.get(table);
    if (cached && cached.key === key) return cached.view;
  }
  const byMember = new Map<string, NodeView>();
  const nodes: NodeView[] = [];
  for (const { member, address } of known) {
    const at = parseAddress(address);
    if (!at) continue;
    const id = redisNodeId(member);
    const hostname = hostnameOf(member);
    const node: NodeView = {
      member,
      id,
      host: at.host,
      port: at.port,
      hostname,
      slotsEntry: [encodeSlotsEntry(false, at.host, at.port, id, hostname), encodeSlotsEntry(true, at.host, at.port, id, hostname)],
    };
    byMember.set(member, node);
    nodes.push(node);
  }
  const ranges: SlotRange[] = [];
  let assigned = 0;
  let covered = 0;
  if (table) {
    let current: SlotRange | null = null;
    for (let s = 0; s < slotCount; s++) {
      const holders = table.readSet(s);
      if (holders.length > 0) assigned++;
      const listed: NodeView[] = [];
      for (const member of holders) {
        const node = byMember.get(member);
        if (node) listed.push(node);
      }
      if (listed.length === 0) {
        current = null;
        continue;
      }
      covered++;
      if (current && current.end === s - 1 && sameNodes(current.nodes, listed)) current.end = s;
      else {
        current = { start: s, end: s, nodes: listed };
        ranges.push(current);
      }
    }
  }
  const view: TopologyView = { nodes, ranges, assigned, covered, slotsReply: [null, null], shards: null };
  if (table) views.set(table, { key, view });
  return view;
}

function sameNodes(a: readonly NodeView[], b: readonly NodeView[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Per node: the slot ranges it is master of (ranges differing only in their replicas joined)
 * and the other holders of those slots, in order of first appearance.
 */
function shardsOf(view: TopologyView): NonNullable<TopologyView['shards']> {
  if (view.shards) return view.shards;
  const out: NonNullable<TopologyView['shards']> = new Map(view.nodes.map((n) => [n.member, { ranges: [], replicas: new Set() }]));
  for (const r of view.ranges) {
    const shard = out.get(r.nodes[0]!.member)!;
    const last = shard.ranges[shard.ranges.length - 1];
    if (last && last.end === r.start - 1) shard.ranges[shard.ranges.length - 1] = { ...last, end: r.end };
    else shard.ranges.push(r);
    for (let i = 1; i < r.nodes.length; i++) shard.replicas.add(r.nodes[i]!);
  }
  view.shards = out;
  return out;
}

// ---------------------------------------------------------------- subcommands

function slots(c: Connection, view: TopologyView): void {
  const resp3 = c.w.resp3 ? 1 : 0;
  let reply = view.slotsReply[resp3];
  if (reply === null) {
    const w = new ReplyWriter(64 * 1024);
    w.resp3 = resp3 === 1;
    w.arrayHeader(view.ranges.length);
    for (const r of view.ranges) {
      w.arrayHeader(2 + r.nodes.length);
      w.integer(r.start);
      w.integer(r.end);
      for (const n of r.nodes) w.raw(n.slotsEntry[resp3]!);
    }
    reply = view.slotsReply[resp3] = w.take();
  }
  c.w.raw(reply);
}

function shards(c: Connection, view: TopologyView): void {
  const w = c.w;
  const all = shardsOf(view);
  w.arrayHeader(view.nodes.length);
  for (const master of view.nodes) {
    const { ranges: own, replicas } = all.get(master.member)!;
    w.mapHeader(2);
    w.bulkString('slots');
    w.arrayHeader(own.length * 2);
    for (const r of own) {
      w.integer(r.start);
      w.integer(r.end);
    }
    w.bulkString('nodes');
    w.arrayHeader(1 + replicas.size);
    shardNode(w, master, 'master');
    for (const n of replicas) shardNode(w, n, 'replica');
  }
}

function shardNode(w: ReplyWriter, n: NodeView, role: string): void {
  w.mapHeader(8);
  w.bulkString('id');
  w.bulkString(n.id);
  w.bulkString('port');
  w.integer(n.port);
  w.bulkString('ip');
  w.bulkString(n.host);
  w.bulkString('endpoint');
  w.bulkString(n.host);
  w.bulkString('hostname');
  w.bulkString(n.hostname);
  w.bulkString('role');
  w.bulkString(role);
  w.bulkString('replication-offset');
  w.integer(0);
  w.bulkString('health');
  w.bulkString('online');
}

/** `<id> <ip:port@cport,hostname> <flags> <master> <ping-sent> <pong-recv> <config-epoch> <link-state> <slot> ...` per node. */
function nodes(c: Connection, topology: RespTopology, table: PlacementTable | null, view: TopologyView): void {
  const all = shardsOf(view);
  const epoch = table?.epoch ?? 0;
  let text = '';
  for (const n of view.nodes) {
    // No cluster bus: its port is 0.
    text += `${n.id} ${n.host}:${n.port}@0,${n.hostname} ${n.member === topology.self ? 'myself,master' : 'master'} - 0 0 ${epoch} connected`;
    for (const r of all.get(n.member)!.ranges) text += r.start === r.end ? ` ${r.start}` : ` ${r.start}-${r.end}`;
    text += '\n';
  }
  c.w.verbatim(text);
}

function info(c: Connection, topology: RespTopology, table: PlacementTable | null, view: TopologyView): void {
  const epoch = table?.epoch ?? 0;
  const change = table?.change;
  const size = new Set(view.ranges.map((r) => r.nodes[0])).size;
  const lines = [
    `cluster_state:${table ? 'ok' : 'fail'}`,
    `cluster_slots_assigned:${view.assigned}`,
    `cluster_slots_ok:${view.covered}`,
    'cluster_slots_pfail:0',
    `cluster_slots_fail:${view.assigned - view.covered}`,
    `cluster_known_nodes:${view.nodes.length}`,
    `cluster_size:${size}`,
    `cluster_current_epoch:${epoch}`,
    `cluster_my_epoch:${epoch}`,
    'cluster_stats_messages_sent:0',
    'cluster_stats_messages_received:0',
    'total_cluster_links_buffer_limit_exceeded:0',
    `ragkv_member_id:${topology.self.replace(/[\r\n]+/g, ' ')}`,
    `ragkv_replicas:${table?.replicas ?? 0}`,
    `ragkv_placement_change:${change ? `${change.kind} ${change.member} ${change.stage}`.replace(/[\r\n]+/g, ' ') : 'none'}`,
  ];
  c.w.verbatim(`${lines.join('\r\n')}\r\n`);
}

const help = [
  'CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:',
  'INFO',
  '    Return information about the cluster.',
  'KEYSLOT <key>',
  '    Return the hash slot for <key>.',
  'MYID',
  '    Return the node id.',
  'NODES',
  '    Return cluster configuration seen by node. Output format:',
  '    <id> <ip:port@bus-port[,hostname]> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...',
  'SHARDS',
  '    Return information about slot range mappings and the nodes associated with them.',
  'SLOTS',
  '    Return information about slots range mappings. Each range is made of:',
  '    start, end, master and replicas IP addresses, ports and ids',
  'HELP',
  '    Prints this help.',
];

/** Arity of each subcommand (Redis' `cluster|<name>`, the name counted). */
const subcommands: Readonly<Record<string, number>> = { help: 2, info: 2, keyslot: 3, myid: 2, nodes: 2, shards: 2, slots: 2 };

/** CLUSTER <subcommand> ... */
export function clusterCommand(c: Connection, args: Buffer[]): void {
  const sub = args[1]!.toString('latin1').toLowerCase();
  const arity = Object.hasOwn(subcommands, sub) ? subcommands[sub] : undefined;
  if (arity === undefined) {
    c.fail(`ERR unknown subcommand '${args[1]!.toString('latin1').slice(0, 128)}'. Try CLUSTER HELP.`);
    return;
  }
  if (args.length !== arity) {
    c.fail(`ERR wrong number of arguments for 'cluster|${sub}' command`);
    return;
  }
  // The slot function is the same everywhere: KEYSLOT answers on a single node too.
  if (sub === 'keyslot') {
    c.w.integer(keySlot(args[2]!));
    return;
  }
  const topology = c.server.topology;
  if (!topology) {
    c.fail(disabled);
    return;
  }
  switch (sub) {
    case 'help':
      c.w.arrayHeader(help.length);
      for (const line of help) c.w.simple(line);
      return;
    case 'myid':
      c.w.bulkString(redisNodeId(topology.self));
      return;
  }
  const table = topology.table();
  const view = viewOf(topology, table);
  switch (sub) {
    case 'slots':
      return slots(c, view);
    case 'shards':
      return shards(c, view);
    case 'nodes':
      return nodes(c, topology, table, view);
    case 'info':
      return info(c, topology, table, view);
  }
}

/** READONLY, READWRITE, ASKING: +OK on a cluster member (any member answers any key). */
export function clusterModeCommand(c: Connection): void {
  if (c.server.topology) c.w.raw(replies.ok);
  else c.fail(disabled);
}
