/**
 * `ragkv local-cluster`: a cluster of `--members` (default 3) ragkv members on loopback for
 * trying ragkv out (`npm start`). Each member is a child process `ragkv start --node-id n<i>`
 * with its LMDB data under `<data>/n<i>` and its logs (stdout and stderr) in `<data>/n<i>.log`,
 * so a member's data directory holds only LMDB files.
 *
 * Ready when every member has logged `listening` and every member's `/cluster` shows all
 * members alive (bounded by `--ready-timeout`). Then it logs one JSON line
 * `{"msg":"cluster ready","members":[{id,pid,resp,grpc,admin,peer,dataDir,log}]}` on stdout
 * (the parseable twin of the banner) and prints the banner on stderr, like `ragkv start`.
 *
 * A member that exits on its own once the cluster is ready (`kill -9`, a crash) is restarted on
 * the same data directory and ports while the others keep serving, so failover can be tried
 * by hand. Each restart is logged (`member exited unexpectedly; restarting it`, then
 * `member restarted` with the new pid) and told on stderr. The delay doubles with each restart
 * in a row (`--restart-delay`, up to 30 s); after `--restarts-max` restarts in a row that each
 * exited within 30 s, the member is left down and this says so (RestartPolicy). A member that
 * cannot start before the cluster is ready fails the start instead (exit 1).
 *
 * SIGINT/SIGTERM: SIGTERM to every member, wait for them (SIGKILL after `--stop-timeout`),
 * exit 0 when all stopped cleanly. A member still starting (a restart) is let finish starting
 * first, so it closes cleanly too; a pending restart is cancelled. Members run in their own
 * process group, so a Ctrl-C in the terminal reaches only this process and each member gets
 * exactly one signal (a second one would make `ragkv start` exit without a clean close).
 *
 * Growing and shrinking: a control endpoint on loopback (`--control-port`, default a free port),
 * named with this pid and the members in `<data>/local-cluster.json` (removed on exit), which
 * `ragkv local-cluster add|remove` read. `POST /members` starts the next member n<k> on free
 * ports, joining through the members serving (no --expect-members) and supervised like the
 * others; it answers once the cluster has settled with it in the placement table.
 * `DELETE /members/<id>` posts `/cluster/leave` to that member, waits for its answer and its
 * exit, and stops supervising it (no restart). Operations run one at a time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync, type WriteStream } from 'node:fs';
import http from 'node:http';
import { createServer } from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ArgvReader } from '../common/argv.js';
import { httpRequest, splitHostPort } from './cluster.js';
import { durabilityModes, logLevels } from '../node/config.js';
import { createLogger, type Logger } from '../node/logger.js';
import { RestartPolicy, type RestartPolicyOptions } from './restart-policy.js';

export interface LocalClusterArgs {
  dataDir: string;
  members: number;
  /** Member i (1-based) gets base + i - 1; 0 picks free ports. */
  baseRespPort: number;
  baseGrpcPort: number;
  baseAdminPort: number;
  basePeerPort: number;
  durability: string | null;
  logLevel: string;
  readyTimeoutMs: number;
  stopTimeoutMs: number;
  /** Delay before restarting a member that exited (doubles with each restart in a row). */
  restartDelayMs: number;
  /** Restarts in a row that each exit within `restartStableMs` before a member is left down. */
  restartsMax: number;
  /** Extra `ragkv start` flags for every member (after `--`). */
  memberArgs: string[];
  /** Port of the control endpoint (`ragkv local-cluster add|remove`); 0 picks a free one. */
  controlPort: number;
}

export class LocalClusterUsageError extends Error {}

export const localClusterDefaults = {
  dataDir: './data',
  members: 3,
  baseRespPort: 6380,
  baseGrpcPort: 50051,
  baseAdminPort: 9180,
  basePeerPort: 7380,
  logLevel: 'info',
  readyTimeoutMs: 60_000,
  stopTimeoutMs: 20_000,
  restartDelayMs: 500,
  /** The restart delay stops doubling here. */
  restartDelayMaxMs: 30_000,
  restartsMax: 5,
  /** A member that ran this long before exiting was fine: its restarts in a row count from 0 again. */
  restartStableMs: 30_000,
} as const;

/** The loopback address every member binds and advertises. */
export const localClusterHost = '127.0.0.1';

export function localClusterHelp(): string {
  const d = localClusterDefaults;
  return `ragkv local-cluster: a cluster of ragkv members on loopback (what 'npm start' runs)

Usage:
  ragkv local-cluster [options] [-- <ragkv start flags for every member>]
  ragkv local-cluster add [--data <dir>]          add a member to the one running with data in <dir>
  ragkv local-cluster remove <id> [--data <dir>]  a member leaves it (streams its slots out, then stops)

Member i (n1, n2, ...) runs 'ragkv start --node-id n<i>' with data in <data>/n<i>, logs in
<data>/n<i>.log, and ports base+i-1; every member seeds through all peer ports. Any member
serves any key (it coordinates the replicas: N=3, writes wait for 2, reads for 1, unless
--replicas / --write-consistency / --read-consistency follow '--').

Options:
  --data <dir>             parent of the members' data directories (default ${d.dataDir})
  --members <n>            number of members (default ${d.members})
  --base-resp-port <port>  RESP port of n1 (default ${d.baseRespPort}); 0 picks free ports
  --base-grpc-port <port>  gRPC port of n1 (default ${d.baseGrpcPort}); 0 picks free ports
  --base-admin-port <port> admin port of n1 (default ${d.baseAdminPort}); 0 picks free ports
  --base-peer-port <port>  internode port of n1 (default ${d.basePeerPort}); 0 picks free ports
  --durability ${durabilityModes.join('|')}   for every member (default: ragkv start's, fsync)
  --log-level <level>      members' log level (default ${d.logLevel})
  --ready-timeout <ms>     how long to wait for the members to see each other (default ${d.readyTimeoutMs})
  --stop-timeout <ms>      on stop, SIGKILL members still running after this (default ${d.stopTimeoutMs})
  --restart-delay <ms>     wait before restarting a member that exited; doubles with each
                           restart in a row, up to ${d.restartDelayMaxMs / 1000} s (default ${d.restartDelayMs})
  --restarts-max <n>       leave a member down after n restarts in a row that each exited
                           within ${d.restartStableMs / 1000} s of starting (default ${d.restartsMax}; 0: never restart)
  --control-port <port>    port of the control endpoint on ${localClusterHost} (default 0: a free one)
  -h, --help               this help

A member that exits once the cluster is up (kill -9, a crash) is restarted on the same data
and ports while the others keep serving; stderr and the JSON log say what happened, with the
new pid. Ctrl-C or SIGTERM stops every member cleanly, one being restarted included.

Grow and shrink it while it runs: it serves a control endpoint on ${localClusterHost} and writes
<data>/local-cluster.json (its pid, the control address, the members; removed when it stops),
which 'add' and 'remove' read. 'ragkv local-cluster add' starts the next member n<k> (the first
id with no data directory under <data>) on free ports: it joins through the running members,
streams its hash slots and is supervised like the others; the command returns once the cluster
has settled with it (bounded by --ready-timeout). 'ragkv local-cluster remove <id>' makes that
member leave: it streams its slots to the others and exits, and is not restarted (its data
directory stays). The last member cannot be removed. Watch a change with
'ragkv cluster status --admin 127.0.0.1:<admin port>'.

Exit codes: 0 stopped cleanly, 1 a member could not start, was left down after repeated
exits, or did not stop cleanly, 2 usage error. add and remove: 0 done, 1 failed or no local
cluster runs with that --data, 2 usage error.
`;
}

function intArg(text: string, name: string, min: number, max: number): number {
  const n = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new LocalClusterUsageError(`${name} must be an integer from ${min} to ${max}, got '${text}'`);
  return n;
}

/** Parses the arguments after `ragkv local-cluster`; throws LocalClusterUsageError. */
export function parseLocalClusterArgs(argv: readonly string[], cwd: string = process.cwd()): LocalClusterArgs {
  const d = localClusterDefaults;
  const a: LocalClusterArgs = {
    dataDir: path.resolve(cwd, d.dataDir),
    members: d.members,
    baseRespPort: d.baseRespPort,
    baseGrpcPort: d.baseGrpcPort,
    baseAdminPort: d.baseAdminPort,
    basePeerPort: d.basePeerPort,
    durability: null,
    logLevel: d.logLevel,
    readyTimeoutMs: d.readyTimeoutMs,
    stopTimeoutMs: d.stopTimeoutMs,
    restartDelayMs: d.restartDelayMs,
    restartsMax: d.restartsMax,
    memberArgs: [],
    controlPort: 0,
  };
  const r = new ArgvReader(argv, (message) => new LocalClusterUsageError(message));
  const take = (): string => r.value();
  while (r.next()) {
    const arg = r.name;
    if (arg === '--') {
      a.memberArgs = r.rest();
      break;
    }
    switch (arg) {
      case '--data':
        a.dataDir = path.resolve(cwd, take());
        break;
      case '--members':
        a.members = intArg(take(), '--members', 1, 64);
        break;
      case '--base-resp-port':
        a.baseRespPort = intArg(take(), arg, 0, 65535);
        break;
      case '--base-grpc-port':
        a.baseGrpcPort = intArg(take(), arg, 0, 65535);
        break;
      case '--base-admin-port':
        a.baseAdminPort = intArg(take(), arg, 0, 65535);
        break;
      case '--base-peer-port':
        a.basePeerPort = intArg(take(), arg, 0, 65535);
        break;
      case '--durability': {
        const v = take();
        if (!(durabilityModes as readonly string[]).includes(v)) throw new LocalClusterUsageError(`--durability must be one of ${durabilityModes.join(', ')}, got '${v}'`);
        a.durability = v;
        break;
      }
      case '--log-level': {
        const v = take();
        if (!logLevels.includes(v)) throw new LocalClusterUsageError(`--log-level must be one of ${logLevels.join(', ')}, got '${v}'`);
        a.logLevel = v;
        break;
      }
      case '--ready-timeout':
        a.readyTimeoutMs = intArg(take(), arg, 1, 3_600_000);
        break;
      case '--stop-timeout':
        a.stopTimeoutMs = intArg(take(), arg, 1, 3_600_000);
        break;
      case '--restart-delay':
        a.restartDelayMs = intArg(take(), arg, 0, d.restartDelayMaxMs);
        break;
      case '--restarts-max':
        a.restartsMax = intArg(take(), arg, 0, 1000);
        break;
      case '--control-port':
        a.controlPort = intArg(take(), arg, 0, 65535);
        break;
      default:
        throw new LocalClusterUsageError(`unknown option '${r.raw}' (see ragkv local-cluster --help)`);
    }
  }
  // Fixed ports: every member's ports must be valid and distinct across all four kinds.
  const seen = new Map<number, string>();
  for (const [kind, base] of [['resp', a.baseRespPort], ['grpc', a.baseGrpcPort], ['admin', a.baseAdminPort], ['peer', a.basePeerPort]] as const) {
    if (base === 0) continue;
    if (base + a.members - 1 > 65535) throw new LocalClusterUsageError(`--base-${kind}-port ${base} leaves no room for ${a.members} members (ports up to 65535)`);
    for (let i = 0; i < a.members; i++) {
      const port = base + i;
      const other = seen.get(port);
      if (other !== undefined) throw new LocalClusterUsageError(`port ${port} would be both the ${other} and the ${kind} port of a member; choose other --base-*-port values`);
      seen.set(port, `${kind} port of n${i + 1}`);
    }
  }
  const other = seen.get(a.controlPort);
  if (a.controlPort !== 0 && other !== undefined) throw new LocalClusterUsageError(`port ${a.controlPort} would be both the control port and the ${other}; choose another --control-port`);
  return a;
}

/** One member's planned ports (0: the member picks and reports it). */
export interface MemberPlan {
  id: string;
  dataDir: string;
  log: string;
  resp: number;
  grpc: number;
  admin: number;
  peer: number;
}

/** `count` distinct free loopback ports (bound together, then released for the members). */
export async function pickFreePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () =>
      new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
        const server = createServer();
        server.once('error', reject);
        server.listen(0, localClusterHost, () => resolve(server));
      }),
    ),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

/**
 * The members' ports and directories. Peer ports must be known before any member starts
 * (they are the seeds), so base 0 picks free ones here; RESP, gRPC and admin base 0 let each
 * member bind port 0 itself and report it in its `listening` line.
 */
export async function planMembers(a: Pick<LocalClusterArgs, 'dataDir' | 'members' | 'baseRespPort' | 'baseGrpcPort' | 'baseAdminPort' | 'basePeerPort'>): Promise<MemberPlan[]> {
  const peers = a.basePeerPort === 0 ? await pickFreePorts(a.members) : Array.from({ length: a.members }, (_, i) => a.basePeerPort + i);
  const at = (base: number, i: number): number => (base === 0 ? 0 : base + i);
  return Array.from({ length: a.members }, (_, i) => ({
    id: `n${i + 1}`,
    dataDir: path.join(a.dataDir, `n${i + 1}`),
    log: path.join(a.dataDir, `n${i + 1}.log`),
    resp: at(a.baseRespPort, i),
    grpc: at(a.baseGrpcPort, i),
    admin: at(a.baseAdminPort, i),
    peer: peers[i]!,
  }));
}

/** The `ragkv start` arguments of one member (after the bin path). */
export function memberStartArgs(m: MemberPlan, plan: readonly MemberPlan[], extra: readonly string[]): string[] {
  // Every member is a seed, so any one of them (n1 included) can restart and rejoin through the others.
  const seeds = plan.map((p) => `${localClusterHost}:${p.peer}`);
  return [...baseStartArgs(m, seeds), '--expect-members', String(plan.length), ...extra];
}

/**
 * The `ragkv start` arguments of a member added to a running cluster (`ragkv local-cluster
 * add`): it joins through `seeds` (peer addresses) and streams its hash slots; no
 * --expect-members, which only forms a new cluster.
 */
export function joinerStartArgs(m: MemberPlan, seeds: readonly string[], extra: readonly string[]): string[] {
  return [...baseStartArgs(m, seeds), ...extra];
}

function baseStartArgs(m: MemberPlan, seeds: readonly string[]): string[] {
  // prettier-ignore
  return [
    'start',
    '--node-id', m.id,
    '--data', m.dataDir,
    '--host', localClusterHost,
    '--resp-port', String(m.resp),
    '--grpc-port', String(m.grpc),
    '--admin-port', String(m.admin),
    '--peer-port', String(m.peer),
    '--seeds', seeds.join(','),
  ];
}

/** `<data>/local-cluster.json`: where `ragkv local-cluster add|remove` find a running local cluster. */
export function localClusterStatePath(dataDir: string): string {
  return path.join(dataDir, 'local-cluster.json');
}

/** What `<data>/local-cluster.json` holds while a local cluster runs (removed when it stops). */
export interface LocalClusterState {
  /** The `ragkv local-cluster` process. */
  pid: number;
  /** The control endpoint, `127.0.0.1:<port>`. */
  control: string;
  dataDir: string;
  /** The members it supervises (removed ones are gone; one left down has `running: false`). */
  members: { id: string; pid: number; running: boolean; resp: number; grpc: number; admin: number; peer: number; dataDir: string; log: string }[];
}

/** The first member id `n<k>` that is neither taken nor has a data directory under `dataDir`. */
export function nextMemberId(dataDir: string, taken: Iterable<string>): string {
  const used = new Set(taken);
  for (let k = 1; ; k++) {
    const id = `n${k}`;
    if (!used.has(id) && !existsSync(path.join(dataDir, id))) return id;
  }
}

/** bin/ragkv.js of this package. */
export function ragkvBin(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, 'bin', 'ragkv.js');
    if (existsSync(path.join(dir, 'package.json')) && existsSync(candidate)) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('bin/ragkv.js not found above the CLI module');
    dir = parent;
  }
}

/** GET a JSON document over HTTP; rejects on a non-200 answer or a connection error. */
export function getJson(url: string, timeoutMs = 2000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`${url} answered ${res.statusCode}: ${body.slice(0, 200)}`));
        try {
          resolve(JSON.parse(body));
        } catch (e) {
          reject(new Error(`${url} is not JSON: ${(e as Error).message}`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${url} did not answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

export interface ClusterView {
  placement?: { epoch: number; change: { kind: string; member: string; stage: string; moving?: number } | null } | null;
  members?: { id: string; status: string; inTable?: boolean; slots?: number }[];
}

/** The ids a member's `/cluster` shows as alive. */
export async function aliveMembers(adminPort: number): Promise<string[]> {
  const view = (await getJson(`http://${localClusterHost}:${adminPort}/cluster`)) as ClusterView;
  return (view.members ?? []).filter((m) => m.status === 'alive').map((m) => m.id);
}

/**
 * The placement epoch every member at `adminPorts` shows with no change in flight, `inTable`
 * in its table and `outOfTable` not (absent or `inTable: false`); null while that is not so
 * (or a member does not answer).
 */
export async function settledEpoch(adminPorts: readonly number[], inTable: readonly string[], outOfTable: readonly string[] = []): Promise<number | null> {
  const views = await Promise.all(adminPorts.map((port) => (getJson(`http://${localClusterHost}:${port}/cluster`) as Promise<ClusterView>).catch(() => null)));
  return settledEpochOf(views, inTable, outOfTable);
}

/** The same over `/cluster` views already fetched (null: a member that did not answer). */
export function settledEpochOf(views: readonly (ClusterView | null)[], inTable: readonly string[], outOfTable: readonly string[] = []): number | null {
  let epoch: number | null = null;
  for (const v of views) {
    const p = v?.placement;
    if (!v || !p || !p.epoch || p.change) return null;
    if (epoch !== null && p.epoch !== epoch) return null;
    epoch = p.epoch;
    const members = v.members ?? [];
    if (inTable.some((id) => !members.find((m) => m.id === id)?.inTable)) return null;
    if (outOfTable.some((id) => members.find((m) => m.id === id)?.inTable)) return null;
  }
  return epoch;
}

/** A running member: its child process, ports as bound, and how it ended. */
interface Member {
  plan: MemberPlan;
  /** Its `ragkv start` arguments, given its plan (a restart asks again: a joiner's seeds are the members of now). */
  argsFor: (plan: MemberPlan) => string[];
  child: ChildProcess;
  pid: number;
  ports: { resp: number; grpc: number; admin: number; peer: number };
  durability: string;
  /** Last output lines (for error messages). */
  tail: string[];
  /** When this process was spawned (Date.now()): how long it ran decides its restart. */
  startedAtMs: number;
  listening: Promise<void>;
  isListening: boolean;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  hasExited: boolean;
}

const tailLines = 20;

/** The `ragkv start` flags local-cluster gives every member besides its own. */
function memberExtraArgs(args: LocalClusterArgs): string[] {
  return [...(args.durability ? ['--durability', args.durability] : []), '--log-level', args.logLevel, ...args.memberArgs];
}

function spawnMember(plan: MemberPlan, argsFor: (plan: MemberPlan) => string[], args: LocalClusterArgs, logger: Logger): Member {
  mkdirSync(plan.dataDir, { recursive: true });
  const startArgs = argsFor(plan);
  // Own process group (detached): a terminal Ctrl-C reaches only this process, which then
  // sends each member one SIGTERM. Not unref'd: this process waits for every member.
  // The IPC channel is the member's lifeline: if this process dies (even by SIGKILL), the
  // channel closes and the member stops itself instead of running on orphaned.
  const child = spawn(process.execPath, [ragkvBin(), ...startArgs], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], detached: true });
  child.channel?.unref();
  const log: WriteStream = createWriteStream(plan.log, { flags: 'a' });
  const member: Member = {
    plan,
    argsFor,
    child,
    pid: child.pid ?? -1,
    ports: { resp: plan.resp, grpc: plan.grpc, admin: plan.admin, peer: plan.peer },
    durability: args.durability ?? 'fsync',
    tail: [],
    startedAtMs: Date.now(),
    listening: Promise.resolve(),
    isListening: false,
    exited: Promise.resolve({ code: null, signal: null }),
    hasExited: false,
  };
  let exitedWith: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  member.exited = new Promise((resolve) => {
    child.once('error', (err) => {
      member.tail.push(`cannot run: ${err.message}`);
      exitedWith ??= { code: 127, signal: null };
      member.hasExited = true;
      resolve(exitedWith);
    });
    // 'close': the process has exited and its output is fully read (the tail is complete).
    child.once('close', (code, signal) => {
      exitedWith ??= { code, signal };
      member.hasExited = true;
      log.end();
      resolve(exitedWith);
    });
  });
  let onListening: () => void = () => {};
  member.listening = new Promise<void>((resolve, reject) => {
    onListening = resolve;
    void member.exited.then(({ code, signal }) =>
      reject(new Error(`member ${plan.id} exited (${signal ?? `code ${code}`}) before listening; its last output:\n${member.tail.join('\n')}`)),
    );
  });
  member.listening.catch(() => {}); // observed by the caller; never unhandled
  const onLine = (line: string): void => {
    log.write(line + '\n');
    member.tail.push(line);
    if (member.tail.length > tailLines) member.tail.shift();
    if (!line.includes('"msg":"listening"')) return;
    try {
      const rec = JSON.parse(line) as { resp?: number; grpc?: number; admin?: number; peer?: number; durability?: string };
      if (rec.resp && rec.grpc && rec.admin && rec.peer) {
        member.ports = { resp: rec.resp, grpc: rec.grpc, admin: rec.admin, peer: rec.peer };
        member.durability = rec.durability ?? member.durability;
        member.isListening = true;
        onListening();
      }
    } catch {
      // not a JSON log line
    }
  };
  createInterface({ input: child.stdout! }).on('line', onLine);
  createInterface({ input: child.stderr! }).on('line', onLine);
  logger.info({ member: plan.id, memberPid: member.pid, log: plan.log, args: startArgs }, 'starting member');
  return member;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Rejects after `ms` with `message`; the timer is cleared by the returned cancel. */
function deadline(ms: number, message: () => string): { promise: Promise<never>; cancel: () => void } {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message())), ms);
  });
  promise.catch(() => {});
  return { promise, cancel: () => clearTimeout(timer) };
}

/** `path` relative to the working directory when below it, else absolute. */
function shortPath(file: string): string {
  const relative = path.relative(process.cwd(), file);
  return relative === '' || relative.startsWith('..') || path.isAbsolute(relative) ? file : relative;
}

/** The human banner (stderr). */
function banner(members: readonly Member[], args: LocalClusterArgs, control: string): string {
  const h = localClusterHost;
  const first = members[0]!;
  const bin = `node ${shortPath(ragkvBin())}`;
  const grow: [string, string][] = [
    [`${bin} local-cluster add --data ${shortPath(args.dataDir)}`, 'the next member joins and streams its slots'],
    [`${bin} local-cluster remove <id> --data ${shortPath(args.dataDir)}`, 'it streams its slots out, then stops'],
  ];
  const growWidth = Math.max(...grow.map(([c]) => c.length)) + 2;
  const rows = members.map(
    (m) =>
      `  ${m.plan.id.padEnd(4)} RESP ${String(m.ports.resp).padEnd(6)} gRPC ${String(m.ports.grpc).padEnd(6)} admin ${String(m.ports.admin).padEnd(6)} ` +
      `peer ${String(m.ports.peer).padEnd(6)} pid ${String(m.pid).padEnd(8)} log ${shortPath(m.plan.log)}`,
  );
  return [
    '',
    `ragkv local cluster: ${members.length} member(s) on ${h}, data under ${args.dataDir}, durability ${first.durability}`,
    ...rows,
    '',
    `Any member serves any key: it coordinates the replicas (the defaults: N=3 replicas, a write waits for 2, a read for 1).`,
    `  redis-cli -p ${first.ports.resp} set doc:1 hello`,
    ...(members.length > 1 ? [`  redis-cli -p ${members[members.length - 1]!.ports.resp} get doc:1`] : []),
    `  curl http://${h}:${first.ports.admin}/cluster     (members, states, slots, placement epoch)`,
    `  gRPC ${h}:${first.ports.grpc}, service ragkv.v1.RawKV (proto/ragkv/v1/rawkv.proto)`,
    ...(members.length > 1 ? [`Try a failure: kill -9 ${members[1]!.pid} (${members[1]!.plan.id}); the others keep serving, and it is restarted on its data and ports.`] : []),
    `Grow or shrink it while it runs (control endpoint ${control}, see ${shortPath(localClusterStatePath(args.dataDir))}):`,
    ...grow.map(([command, what]) => `  ${command.padEnd(growWidth)}(${what})`),
    'Press Ctrl-C to stop every member.',
    '',
  ].join('\n') + '\n';
}

/**
 * Waits until every member's /cluster shows all members alive. Polls (membership converges
 * through gossip; there is no single event to await across processes), bounded by the deadline.
 */
async function waitForMembership(members: readonly Member[], abort: Promise<never>): Promise<void> {
  const ids = members.map((m) => m.plan.id).sort();
  const converged = async (): Promise<boolean> => {
    for (const m of members) {
      const alive = await aliveMembers(m.ports.admin).catch(() => [] as string[]);
      if (ids.some((id) => !alive.includes(id))) return false;
    }
    return true;
  };
  for (;;) {
    if (await Promise.race([converged(), abort])) return;
    await Promise.race([delay(100), abort]);
  }
}

/** Runs `ragkv local-cluster`, or its `add` and `remove` commands; resolves to the exit code. */
export async function localClusterMain(argv: string[]): Promise<number> {
  if (argv[0] === 'add' || argv[0] === 'remove') return localClusterControlMain(argv[0], argv.slice(1));
  if (argv.includes('--help') || argv.includes('-h')) {
    const dash = argv.indexOf('--');
    const own = dash === -1 ? argv : argv.slice(0, dash);
    if (own.includes('--help') || own.includes('-h')) {
      process.stdout.write(localClusterHelp());
      return 0;
    }
  }
  let args: LocalClusterArgs;
  try {
    args = parseLocalClusterArgs(argv);
  } catch (err) {
    if (!(err instanceof LocalClusterUsageError)) throw err;
    process.stderr.write(`ragkv local-cluster: ${err.message}\n`);
    return 2;
  }
  const logger = createLogger('info');
  mkdirSync(args.dataDir, { recursive: true });
  const plan = await planMembers(args);
  const extra = memberExtraArgs(args);
  /** The current process of each member (a restart replaces its entry; an added member is appended). */
  const members: Member[] = [];
  /** Members that left with `local-cluster remove`: no longer supervised (their entry stays, exited). */
  const removed = new Set<string>();
  /** Members leaving now: resolves true once the leave is done (the exit that follows is no crash). */
  const leaving = new Map<string, Promise<boolean>>();
  /** The control endpoint (`local-cluster add|remove`), once listening. */
  let control: ControlServer | null = null;

  // <data>/local-cluster.json: how `local-cluster add|remove` find this process.
  const statePath = localClusterStatePath(args.dataDir);
  let stateWritten = false;
  const removeState = (): void => {
    if (!stateWritten) return;
    stateWritten = false;
    try {
      // Only our own: a later local cluster on the same data directory may have replaced it.
      if ((JSON.parse(readFileSync(statePath, 'utf8')) as { pid?: number }).pid === process.pid) unlinkSync(statePath);
    } catch {
      // gone already
    }
  };

  // Kill members left behind if this process dies abnormally (an exception, process.exit).
  const killAll = (): void => {
    for (const m of members) if (!m.hasExited) m.child.kill('SIGKILL');
    removeState();
  };
  process.once('exit', killAll);

  let stopping = false;
  let ready = false;
  let firstSignalAt = 0;
  let resolveStopRequest: (reason: string) => void = () => {};
  const stopRequested = new Promise<string>((resolve) => (resolveStopRequest = resolve));
  const onSignal = (signal: NodeJS.Signals): void => {
    if (!stopping) {
      stopping = true;
      firstSignalAt = Date.now();
      logger.info({ signal }, 'stopping the cluster (send the signal again to kill the members at once)');
      resolveStopRequest(signal);
      return;
    }
    // npm and a terminal can both deliver one Ctrl-C: repeats within a second are the same one.
    if (Date.now() - firstSignalAt < 1000) return;
    logger.warn({ signal }, 'second signal: killing the members');
    killAll();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let code = 0;
  let failure: string | null = null;
  /** Members left down after repeated exits. */
  const leftDown: string[] = [];
  /** The members supervised now: neither removed nor left down. */
  const activeMembers = (): Member[] => members.filter((m) => !removed.has(m.plan.id) && !leftDown.includes(m.plan.id));
  const describeMember = (m: Member) => ({ id: m.plan.id, pid: m.pid, host: localClusterHost, ...m.ports, dataDir: m.plan.dataDir, log: m.plan.log });
  const writeState = (): void => {
    if (!control || stopping) return;
    const state: LocalClusterState = {
      pid: process.pid,
      control: control.address,
      dataDir: args.dataDir,
      members: members
        .filter((m) => !removed.has(m.plan.id))
        .map((m) => ({ id: m.plan.id, pid: m.pid, running: !m.hasExited, ...m.ports, dataDir: m.plan.dataDir, log: m.plan.log })),
    };
    try {
      const tmp = `${statePath}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n');
      renameSync(tmp, statePath); // whole or not at all, for a reader
      stateWritten = true;
    } catch (err) {
      logger.warn({ err: err instanceof Error ? err.message : String(err), file: statePath }, 'cannot write the local cluster file');
    }
  };
  try {
    // Listening before any member starts: a taken --control-port fails the start at once.
    // Operations are refused (503) until the cluster is ready.
    let handlers: ControlHandlers | null = null;
    control = await startControlServer(args.controlPort, () => handlers).catch((err: unknown) => {
      throw new Error(`cannot serve the control endpoint on ${localClusterHost}:${args.controlPort}: ${err instanceof Error ? err.message : String(err)}`);
    });
    const argsForPlanned = (p: MemberPlan): string[] => memberStartArgs(p, plan, extra);
    for (const p of plan) members.push(spawnMember(p, argsForPlanned, args, logger));
    // Until the cluster is ready, a member that exits fails the start (unless we are stopping).
    const died = new Promise<never>((_, reject) => {
      for (const m of members) {
        void m.exited.then(({ code: c, signal }) => {
          if (!stopping && !ready) reject(new Error(`member ${m.plan.id} (pid ${m.pid}) exited unexpectedly (${signal ?? `code ${c}`}); its last output (${m.plan.log}):\n${m.tail.join('\n')}`));
        });
      }
    });
    died.catch(() => {});
    const stop = stopRequested.then((signal) => Promise.reject(new StopRequested(signal)));
    stop.catch(() => {});
    const timeout = deadline(args.readyTimeoutMs, () => `the members did not all see each other alive within ${args.readyTimeoutMs} ms (see ${members.map((m) => m.plan.log).join(', ')})`);
    try {
      const abort = Promise.race([died, stop, timeout.promise]);
      await Promise.race([Promise.all(members.map((m) => m.listening)), abort]);
      await waitForMembership(members, abort);
    } finally {
      timeout.cancel();
    }
    ready = true;

    // From here on a member that exits is restarted; the cluster ends on a signal, or when
    // every member has been left down.
    let resolveAllDown: () => void = () => {};
    const allDown = new Promise<void>((resolve) => (resolveAllDown = resolve));
    const checkAllDown = (): void => {
      if (activeMembers().length === 0) resolveAllDown();
    };
    const restartOptions: RestartPolicyOptions = {
      delayMs: args.restartDelayMs,
      delayMaxMs: localClusterDefaults.restartDelayMaxMs,
      restartsMax: args.restartsMax,
      stableMs: localClusterDefaults.restartStableMs,
    };
    // Restart delays under way: a stop cancels them (and clears their timers, so nothing waits).
    const pendingDelays = new Set<() => void>();
    void stopRequested.then(() => {
      for (const cancel of pendingDelays) cancel();
    });
    /** Resolves true after `ms`, or false as soon as a stop is requested. */
    const waitUnlessStopped = (ms: number): Promise<boolean> =>
      new Promise<boolean>((resolve) => {
        if (stopping) return resolve(false);
        const timer = setTimeout(() => {
          pendingDelays.delete(cancel);
          resolve(true);
        }, ms);
        const cancel = (): void => {
          clearTimeout(timer);
          pendingDelays.delete(cancel);
          resolve(false);
        };
        pendingDelays.add(cancel);
      });
    const supervise = async (i: number): Promise<void> => {
      const policy = new RestartPolicy(restartOptions);
      for (;;) {
        const m = members[i]!;
        const { code: c, signal } = await m.exited;
        if (stopping) return;
        const ranMs = Date.now() - m.startedAtMs;
        // A member that left (local-cluster remove) exits by itself: that is its end, not a crash.
        const leave = leaving.get(m.plan.id);
        if (leave && (await leave)) return;
        if (stopping || removed.has(m.plan.id)) return;
        const how = signal ?? `code ${c}`;
        const decision = policy.onExit(ranMs);
        const fields = { member: m.plan.id, memberPid: m.pid, code: c, signal, ranMs, log: m.plan.log };
        if (!decision.restart) {
          leftDown.push(m.plan.id);
          const why =
            args.restartsMax === 0
              ? 'restarts are off (--restarts-max 0)'
              : `each of its last ${decision.restartsInRow} restart(s) exited within ${localClusterDefaults.restartStableMs / 1000} s`;
          logger.error({ ...fields, restartsInRow: decision.restartsInRow, lastOutput: m.tail.slice(-5) }, 'member keeps exiting; leaving it down');
          process.stderr.write(
            `ragkv local-cluster: member ${m.plan.id} (pid ${m.pid}) exited (${how}) and ${why}: leaving it down` +
              `${activeMembers().length > 0 ? '; the other members keep serving' : ''}. Its last output (${m.plan.log}):\n${m.tail.slice(-5).join('\n')}\n`,
          );
          writeState();
          checkAllDown();
          return;
        }
        logger.warn({ ...fields, restartInMs: decision.delayMs, restartsInRow: decision.restartsInRow }, 'member exited unexpectedly; restarting it');
        process.stderr.write(
          `ragkv local-cluster: member ${m.plan.id} (pid ${m.pid}) exited unexpectedly (${how}) after ${(ranMs / 1000).toFixed(1)} s; ` +
            `restarting it in ${decision.delayMs} ms on the same data and ports (restart ${decision.restartsInRow} in a row, at most ${args.restartsMax})\n`,
        );
        if (!(await waitUnlessStopped(decision.delayMs)) || stopping) return;
        // The same ports as before, also those first picked by the member itself (base port 0).
        const again: MemberPlan = { ...m.plan, resp: m.ports.resp, grpc: m.ports.grpc, admin: m.ports.admin };
        const next = spawnMember(again, m.argsFor, args, logger);
        members[i] = next;
        void next.listening.then(
          () => {
            if (stopping) return;
            logger.info({ member: next.plan.id, pid: next.pid, host: localClusterHost, ...next.ports, restartsInRow: decision.restartsInRow }, 'member restarted');
            process.stderr.write(`ragkv local-cluster: member ${next.plan.id} is serving again (pid ${next.pid}, RESP ${next.ports.resp})\n`);
            writeState();
          },
          () => {}, // exited before listening: the loop sees the exit
        );
      }
    };
    const startSupervising = (i: number): void => {
      supervise(i).catch((err: unknown) => {
        // A restart that cannot even be spawned (its data directory is gone): say so, keep the others.
        const message = err instanceof Error ? err.message : String(err);
        leftDown.push(members[i]!.plan.id);
        logger.error({ member: members[i]!.plan.id, err: message }, 'cannot restart member; leaving it down');
        process.stderr.write(`ragkv local-cluster: cannot restart member ${members[i]!.plan.id}: ${message}; leaving it down\n`);
        writeState();
        checkAllDown();
      });
    };
    for (let i = 0; i < members.length; i++) startSupervising(i);

    /** Polls until the members at `admins()` show one settled placement (see settledEpoch); rejects with `abort`. */
    const waitSettled = async (admins: () => number[], inTable: string[], outOfTable: string[], abort: Promise<never>): Promise<number> => {
      for (;;) {
        const epoch = await Promise.race([settledEpoch(admins(), inTable, outOfTable), abort]);
        if (epoch !== null) return epoch;
        await Promise.race([delay(200), abort]);
      }
    };
    /** Peer addresses of the members serving now. */
    const servingPeers = (): string[] => activeMembers().filter((m) => m.isListening && !m.hasExited).map((m) => `${localClusterHost}:${m.ports.peer}`);
    const refuseWhileStopping = (): ControlAnswer | null => (stopping ? { status: 503, body: { error: 'the local cluster is stopping' } } : null);

    const addMember = async (): Promise<ControlAnswer> => {
      const refused = refuseWhileStopping();
      if (refused) return refused;
      const seeds = servingPeers();
      if (seeds.length === 0) return { status: 409, body: { error: 'no member is serving to join through' } };
      const id = nextMemberId(args.dataDir, members.map((m) => m.plan.id));
      const [resp, grpc, admin, peer] = (await pickFreePorts(4)) as [number, number, number, number];
      const p: MemberPlan = { id, dataDir: path.join(args.dataDir, id), log: path.join(args.dataDir, `${id}.log`), resp, grpc, admin, peer };
      // It joins through the members serving when it starts (a restart: those serving then),
      // itself included, like the first members.
      const argsFor = (q: MemberPlan): string[] => joinerStartArgs(q, [...new Set([...servingPeers(), `${localClusterHost}:${q.peer}`])], extra);
      const m = spawnMember(p, argsFor, args, logger);
      const i = members.push(m) - 1;
      logger.info({ member: id, memberPid: m.pid, seeds, log: p.log }, 'adding member');
      process.stderr.write(`ragkv local-cluster: adding member ${id} (pid ${m.pid}, log ${shortPath(p.log)}): it joins through ${seeds.join(', ')} and streams its slots\n`);
      const timeout = deadline(args.readyTimeoutMs, () => `member ${id} did not start within ${args.readyTimeoutMs} ms; its last output:\n${m.tail.join('\n')}`);
      try {
        await Promise.race([m.listening, stop, timeout.promise]);
      } catch (err) {
        timeout.cancel();
        // A stop closes it with the others, once it listens (stopMembers).
        if (err instanceof StopRequested) return { status: 503, body: { error: 'the local cluster is stopping' } };
        // It never served: not supervised, not kept.
        removed.add(id);
        if (!m.hasExited) m.child.kill('SIGKILL');
        await m.exited;
        const message = err instanceof Error ? err.message : String(err);
        logger.error({ member: id, err: message }, 'cannot add member');
        process.stderr.write(`ragkv local-cluster: cannot add member ${id}: ${message}\n`);
        return { status: 500, body: { error: message, log: p.log } };
      }
      startSupervising(i);
      writeState();
      const adminPorts = (): number[] => activeMembers().filter((a) => a.isListening && !a.hasExited).map((a) => a.ports.admin);
      let epoch: number;
      try {
        epoch = await waitSettled(adminPorts, activeMembers().map((a) => a.plan.id), [], Promise.race([stop, timeout.promise]));
      } catch (err) {
        if (err instanceof StopRequested) return { status: 503, body: { error: 'the local cluster is stopping' } };
        const message =
          `member ${id} runs (and is supervised) but the cluster did not settle with it in its placement table within ${args.readyTimeoutMs} ms; ` +
          `watch it with: ragkv cluster status --admin ${localClusterHost}:${members[i]!.ports.admin} (log ${p.log})`;
        logger.warn({ member: id }, 'member added; the cluster has not settled with it yet');
        process.stderr.write(`ragkv local-cluster: ${message}\n`);
        return { status: 504, body: { error: message, member: describeMember(members[i]!) } };
      } finally {
        timeout.cancel();
      }
      const now = members[i]!;
      const view = (await getJson(`http://${localClusterHost}:${now.ports.admin}/cluster`).catch(() => null)) as ClusterView | null;
      const slots = view?.members?.find((x) => x.id === id)?.slots ?? null;
      logger.info({ member: id, memberPid: now.pid, host: localClusterHost, ...now.ports, dataDir: p.dataDir, log: p.log, epoch, slots }, 'member added');
      process.stderr.write(`ragkv local-cluster: member ${id} joined (pid ${now.pid}, RESP ${now.ports.resp}, admin ${now.ports.admin}); placement epoch ${epoch}, ${slots ?? '?'} slot replicas\n`);
      return { status: 200, body: { added: describeMember(now), epoch, slots } };
    };

    const removeMember = async (id: string): Promise<ControlAnswer> => {
      const refused = refuseWhileStopping();
      if (refused) return refused;
      const i = members.findIndex((m) => m.plan.id === id);
      const known = members.filter((m) => !removed.has(m.plan.id)).map((m) => m.plan.id);
      if (i === -1 || removed.has(id)) return { status: 404, body: { error: `no member '${id}' in this local cluster (its members: ${known.join(', ')})` } };
      const others = activeMembers().filter((m) => m.plan.id !== id);
      if (leftDown.includes(id)) {
        const via = others[0] ? ` --admin ${localClusterHost}:${others[0].ports.admin}` : '';
        return { status: 409, body: { error: `member ${id} is down (left down after repeated exits), so it cannot leave; re-replicate its slots with: ragkv cluster remove ${id}${via}` } };
      }
      if (others.length === 0) return { status: 409, body: { error: `member ${id} is the last member; a cluster keeps at least one (Ctrl-C stops it)` } };
      const m = members[i]!;
      if (!m.isListening || m.hasExited) return { status: 409, body: { error: `member ${id} is restarting; try again once it serves` } };
      let settle: (left: boolean) => void = () => {};
      leaving.set(id, new Promise<boolean>((resolve) => (settle = resolve)));
      logger.info({ member: id, memberPid: m.pid }, 'member leaving');
      process.stderr.write(`ragkv local-cluster: member ${id} (pid ${m.pid}) is leaving: it streams its slots to the others, then exits\n`);
      let answer: { status: number; body: string };
      try {
        answer = await postAdmin(m.ports.admin, '/cluster/leave');
      } catch (err) {
        answer = { status: 0, body: err instanceof Error ? err.message : String(err) };
      }
      if (answer.status !== 200) {
        leaving.delete(id);
        settle(false);
        const message = `member ${id} did not leave: ${answer.status ? `its admin port answered ${answer.status}: ` : ''}${answer.body.trim()}`;
        logger.error({ member: id, status: answer.status, body: answer.body.trim() }, 'member did not leave');
        process.stderr.write(`ragkv local-cluster: ${message}\n`);
        return { status: 502, body: { error: message } };
      }
      // It left: stop supervising it before its exit is seen (no restart).
      removed.add(id);
      settle(true);
      // It exits by itself once it has left; a member that does not is stopped.
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), args.stopTimeoutMs)));
      if ((await Promise.race([m.exited, late])) === 'late') {
        logger.warn({ member: id, memberPid: m.pid }, 'member left but did not exit: SIGTERM');
        m.child.kill('SIGTERM');
        timer = setTimeout(() => m.child.kill('SIGKILL'), args.stopTimeoutMs);
      }
      const exit = await m.exited;
      clearTimeout(timer);
      writeState();
      // The others settle on a table without it (the leave answers once the change is done; this confirms every view).
      const remaining = others.map((o) => o.plan.id);
      const settleDeadline = deadline(args.readyTimeoutMs, () => 'not settled');
      const epoch = await waitSettled(() => activeMembers().filter((a) => a.isListening && !a.hasExited).map((a) => a.ports.admin), remaining, [id], Promise.race([stop, settleDeadline.promise])).catch(() => null);
      settleDeadline.cancel();
      logger.info({ member: id, memberPid: m.pid, code: exit.code, signal: exit.signal, epoch, members: remaining }, 'member removed');
      process.stderr.write(`ragkv local-cluster: member ${id} left the cluster and exited (${exit.signal ?? `code ${exit.code}`}); ${remaining.length} member(s) remain: ${remaining.join(', ')}\n`);
      return { status: 200, body: { removed: id, pid: m.pid, exit: exit.signal ?? exit.code, epoch, settled: epoch !== null, members: remaining } };
    };

    handlers = {
      add: addMember,
      remove: removeMember,
      list: () => ({ status: 200, body: { members: members.filter((m) => !removed.has(m.plan.id)).map((m) => ({ ...describeMember(m), running: !m.hasExited })) } }),
    };
    writeState();
    logger.info(
      {
        durability: members[0]!.durability,
        dataDir: args.dataDir,
        control: control.address,
        stateFile: statePath,
        members: members.map(describeMember),
      },
      'cluster ready',
    );
    process.stderr.write(banner(members, args, control.address));

    await Promise.race([stop, allDown]);
    failure = `every member was left down after repeated exits (${leftDown.join(', ')})`;
    logger.error({ members: leftDown }, 'every member is down; stopping');
    process.stderr.write(`ragkv local-cluster: ${failure}\n`);
    code = 1;
  } catch (err) {
    if (!(err instanceof StopRequested)) {
      failure = err instanceof Error ? err.message : String(err);
      logger.error({ err: failure }, 'cluster failed; stopping the other members');
      process.stderr.write(`ragkv local-cluster: ${failure}\n`);
      code = 1;
    }
  }
  stopping = true;
  removeState();
  const closing = control?.close();
  const unclean = await stopMembers(members, args.stopTimeoutMs, logger);
  await closing;
  if (unclean.length > 0 && failure === null) {
    process.stderr.write(`ragkv local-cluster: member(s) did not stop cleanly: ${unclean.join(', ')}\n`);
    code = 1;
  }
  if (leftDown.length > 0 && failure === null) {
    process.stderr.write(`ragkv local-cluster: member(s) left down after repeated exits: ${leftDown.join(', ')}\n`);
    code = 1;
  }
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  process.off('exit', killAll);
  logger.info({ code }, 'stopped');
  return code;
}

/** POSTs to a member's admin port (no timeout: operations answer once done, or the connection drops). */
function postAdmin(adminPort: number, route: string): Promise<{ status: number; body: string }> {
  return httpRequest(localClusterHost, adminPort, 'POST', route);
}

interface ControlAnswer {
  status: number;
  body: unknown;
}

interface ControlHandlers {
  add(): Promise<ControlAnswer>;
  remove(id: string): Promise<ControlAnswer>;
  list(): ControlAnswer;
}

interface ControlServer {
  /** `127.0.0.1:<port>` */
  address: string;
  /** Stops listening; an operation in flight is answered first (it sees the stop and answers 503). */
  close(): Promise<void>;
}

/**
 * The control endpoint of a running local cluster, on loopback: `GET /members`, `POST /members`
 * (add the next member), `DELETE /members/<id>` (it leaves). Operations run one at a time, in
 * the order they came; until `handlers()` gives some (the cluster is ready) they are refused.
 */
function startControlServer(port: number, handlers: () => ControlHandlers | null): Promise<ControlServer> {
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(op: () => Promise<T>): Promise<T> => {
    const run = queue.then(op, op);
    queue = run.catch(() => {});
    return run;
  };
  const server = http.createServer((req, res) => {
    req.resume();
    const send = (a: ControlAnswer): void => {
      const body = JSON.stringify(a.body) + '\n';
      // One request per connection: nothing keeps this process from exiting once it stops.
      res.writeHead(a.status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' });
      res.end(body);
    };
    const route = new URL(req.url ?? '/', 'http://control').pathname;
    const member = /^\/members\/([^/]+)$/.exec(route);
    let op: (() => Promise<ControlAnswer>) | null = null;
    if (route === '/members' && req.method === 'GET') op = async () => handlers()?.list() ?? { status: 503, body: { error: 'the local cluster is starting' } };
    else if (route === '/members' && req.method === 'POST') op = () => serial(async () => (await handlers()?.add()) ?? { status: 503, body: { error: 'the local cluster is starting' } });
    else if (member && req.method === 'DELETE') {
      const id = decodeURIComponent(member[1]!);
      op = () => serial(async () => (await handlers()?.remove(id)) ?? { status: 503, body: { error: 'the local cluster is starting' } });
    } else if (route === '/members' || member) return send({ status: 405, body: { error: `method ${req.method} not allowed on ${route}` } });
    else return send({ status: 404, body: { error: `not found: ${route} (routes: GET /members, POST /members, DELETE /members/<id>)` } });
    op().then(send, (err: unknown) => send({ status: 500, body: { error: err instanceof Error ? err.message : String(err) } }));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, localClusterHost, () => {
      server.off('error', reject);
      const address = `${localClusterHost}:${(server.address() as { port: number }).port}`;
      resolve({
        address,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeIdleConnections();
          }),
      });
    });
  });
}

class StopRequested extends Error {
  constructor(readonly signal: string) {
    super(`stop requested by ${signal}`);
  }
}

/**
 * SIGTERM to each member still running, SIGKILL after `graceMs`; returns the members that did
 * not exit 0. A member still starting (a restart) gets its signal once it listens, when
 * `ragkv start` closes cleanly; members that had already exited (and were handled) are skipped.
 */
async function stopMembers(members: readonly Member[], graceMs: number, logger: Logger): Promise<string[]> {
  const results = await Promise.all(
    members.map(async (m) => {
      if (m.hasExited) return null;
      let timer: NodeJS.Timeout | undefined;
      const killed = new Promise<'killed'>((resolve) => {
        timer = setTimeout(() => resolve('killed'), graceMs);
      });
      if (!m.isListening) await Promise.race([m.listening.catch(() => {}), killed]);
      if (!m.hasExited) m.child.kill('SIGTERM');
      const first = await Promise.race([m.exited, killed]);
      clearTimeout(timer);
      if (first === 'killed') {
        logger.warn({ member: m.plan.id, memberPid: m.pid, graceMs }, 'member did not stop in time: SIGKILL');
        m.child.kill('SIGKILL');
      }
      const { code, signal } = await m.exited;
      logger.info({ member: m.plan.id, memberPid: m.pid, code, signal }, 'member stopped');
      return code === 0 ? null : `${m.plan.id} (${signal ?? `code ${code}`})`;
    }),
  );
  return results.filter((r): r is string => r !== null);
}

/** The text of `ragkv local-cluster add|remove --help`. */
export function localClusterControlHelp(): string {
  return `ragkv local-cluster add|remove: grow or shrink a running local cluster

Usage:
  ragkv local-cluster add [--data <dir>]          start the next member n<k>: it joins and streams its slots
  ragkv local-cluster remove <id> [--data <dir>]  member <id> streams its slots to the others, then stops

--data is the running 'ragkv local-cluster --data' (default ${localClusterDefaults.dataDir}); its
local-cluster.json names the control endpoint. Both wait until the change is done, printing its
progress on stderr and the result on stdout. Exit codes: 0 done, 1 failed (or no local cluster
runs there), 2 usage error.
`;
}

/** Whether a process with this pid runs (one of another user's counts). */
function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** One request to the control endpoint (no timeout: it answers once the change is done). */
function callControl(control: string, method: 'POST' | 'DELETE', route: string): Promise<{ status: number; body: string }> {
  const [host, port] = splitHostPort(control);
  return httpRequest(host, port, method, route);
}

/**
 * `ragkv local-cluster add` / `remove <id>`: finds the local cluster running with data in
 * --data through its local-cluster.json and asks its control endpoint; prints the change's
 * progress (a member's /cluster) on stderr meanwhile, and the result on stdout.
 */
export async function localClusterControlMain(command: 'add' | 'remove', argv: string[]): Promise<number> {
  const name = `ragkv local-cluster ${command}`;
  let dataDir = path.resolve(localClusterDefaults.dataDir);
  let id: string | null = null;
  try {
    const r = new ArgvReader(argv, (message) => new LocalClusterUsageError(message));
    while (r.next()) {
      if (r.name === '--help' || r.name === '-h') {
        process.stdout.write(localClusterControlHelp());
        return 0;
      }
      if (r.name === '--data') dataDir = path.resolve(r.value());
      else if (command === 'remove' && id === null && !r.raw.startsWith('-')) id = r.raw;
      else throw new LocalClusterUsageError(`unexpected argument '${r.raw}'`);
    }
    if (command === 'remove' && id === null) throw new LocalClusterUsageError('give the id of the member to remove, e.g. ragkv local-cluster remove n4');
  } catch (err) {
    if (!(err instanceof LocalClusterUsageError)) throw err;
    process.stderr.write(`${name}: ${err.message}\n\n${localClusterControlHelp()}`);
    return 2;
  }
  const file = localClusterStatePath(dataDir);
  const startOne = `start one with 'npm start' or 'ragkv local-cluster --data ${dataDir}'`;
  let state: LocalClusterState;
  try {
    state = JSON.parse(readFileSync(file, 'utf8')) as LocalClusterState;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    process.stderr.write(
      e.code === 'ENOENT'
        ? `${name}: no local cluster is running with data in ${dataDir}: ${file} does not exist (${startOne}, or give its --data)\n`
        : `${name}: cannot read ${file}: ${e.message}\n`,
    );
    return 1;
  }
  if (!Number.isSafeInteger(state.pid) || typeof state.control !== 'string' || !Array.isArray(state.members)) {
    process.stderr.write(`${name}: ${file} is not a local cluster file (no pid, control and members)\n`);
    return 1;
  }
  if (!processRuns(state.pid)) {
    process.stderr.write(`${name}: no local cluster is running with data in ${dataDir}: ${file} names pid ${state.pid}, which is not running (a local cluster that was killed left it); ${startOne}\n`);
    return 1;
  }

  // Progress: the change in flight as a member that stays sees it.
  const watched = state.members.find((m) => m.running && m.id !== id);
  let lastProgress = '';
  const progress = setInterval(() => {
    if (!watched) return;
    (getJson(`http://${localClusterHost}:${watched.admin}/cluster`) as Promise<ClusterView>)
      .then((v) => {
        const c = v.placement?.change;
        const text = c ? `  ${c.kind} of ${c.member}: ${c.stage}${c.moving !== undefined ? `, ${c.moving} slot replicas moving` : ''} (epoch ${v.placement!.epoch})` : '';
        if (text && text !== lastProgress) process.stderr.write(text + '\n');
        lastProgress = text;
      })
      .catch(() => {});
  }, 1000);
  progress.unref();
  process.stderr.write(
    command === 'add'
      ? `${name}: asking the local cluster (pid ${state.pid}, control ${state.control}) for a new member; it joins through the others and streams its hash slots...\n`
      : `${name}: asking the local cluster (pid ${state.pid}, control ${state.control}) to remove ${id}; it streams its hash slots to the others, then stops...\n`,
  );
  let answer: { status: number; body: string };
  try {
    answer = await (command === 'add' ? callControl(state.control, 'POST', '/members') : callControl(state.control, 'DELETE', `/members/${encodeURIComponent(id!)}`));
  } catch (err) {
    process.stderr.write(`${name}: cannot reach the local cluster's control endpoint ${state.control} (from ${file}): ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  } finally {
    clearInterval(progress);
  }
  let body: { error?: string; added?: LocalClusterState['members'][number]; epoch?: number | null; slots?: number | null; removed?: string; members?: string[]; settled?: boolean };
  try {
    body = JSON.parse(answer.body) as typeof body;
  } catch {
    body = { error: answer.body.trim() };
  }
  if (answer.status !== 200) {
    process.stderr.write(`${name}: ${body.error ?? `the control endpoint answered ${answer.status}`}\n`);
    return 1;
  }
  if (command === 'add') {
    const m = body.added!;
    process.stdout.write(
      `member ${m.id} joined the local cluster (placement epoch ${body.epoch}, ${body.slots ?? '?'} slot replicas)\n` +
        `  ${m.id.padEnd(4)} RESP ${String(m.resp).padEnd(6)} gRPC ${String(m.grpc).padEnd(6)} admin ${String(m.admin).padEnd(6)} peer ${String(m.peer).padEnd(6)} pid ${String(m.pid).padEnd(8)} log ${shortPath(m.log)}\n` +
        `  redis-cli -p ${m.resp}      ragkv cluster status --admin ${localClusterHost}:${m.admin}\n`,
    );
  } else {
    process.stdout.write(
      `member ${body.removed} left the local cluster and stopped; members now: ${(body.members ?? []).join(', ')}` +
        `${body.settled ? ` (placement epoch ${body.epoch})` : ' (the others have not all settled on the new placement yet: ragkv cluster status)'}\n`,
    );
  }
  return 0;
}
