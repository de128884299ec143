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
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, type WriteStream } from 'node:fs';
import http from 'node:http';
import { createServer } from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ArgvReader } from '../common/argv.js';
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
  -h, --help               this help

A member that exits once the cluster is up (kill -9, a crash) is restarted on the same data
and ports while the others keep serving; stderr and the JSON log say what happened, with the
new pid. Ctrl-C or SIGTERM stops every member cleanly, one being restarted included.
Exit codes: 0 stopped cleanly, 1 a member could not start, was left down after repeated
exits, or did not stop cleanly, 2 usage error.
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
  const seeds = plan.map((p) => `${localClusterHost}:${p.peer}`).join(',');
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
    '--seeds', seeds,
    '--expect-members', String(plan.length),
    ...extra,
  ];
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

interface ClusterView {
  members?: { id: string; status: string }[];
}

/** The ids a member's `/cluster` shows as alive. */
export async function aliveMembers(adminPort: number): Promise<string[]> {
  const view = (await getJson(`http://${localClusterHost}:${adminPort}/cluster`)) as ClusterView;
  return (view.members ?? []).filter((m) => m.status === 'alive').map((m) => m.id);
}

/** A running member: its child process, ports as bound, and how it ended. */
interface Member {
  plan: MemberPlan;
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

function spawnMember(plan: MemberPlan, all: readonly MemberPlan[], args: LocalClusterArgs, logger: Logger): Member {
  mkdirSync(plan.dataDir, { recursive: true });
  const extra = [...(args.durability ? ['--durability', args.durability] : []), '--log-level', args.logLevel, ...args.memberArgs];
  const startArgs = memberStartArgs(plan, all, extra);
  // Own process group (detached): a terminal Ctrl-C reaches only this process, which then
  // sends each member one SIGTERM. Not unref'd: this process waits for every member.
  // The IPC channel is the member's lifeline: if this process dies (even by SIGKILL), the
  // channel closes and the member stops itself instead of running on orphaned.
  const child = spawn(process.execPath, [ragkvBin(), ...startArgs], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], detached: true });
  child.channel?.unref();
  const log: WriteStream = createWriteStream(plan.log, { flags: 'a' });
  const member: Member = {
    plan,
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
function banner(members: readonly Member[], args: LocalClusterArgs): string {
  const h = localClusterHost;
  const first = members[0]!;
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
    `  curl http://${h}:${first.ports.admin}/cluster     (members, states, ring ownership)`,
    `  gRPC ${h}:${first.ports.grpc}, service ragkv.v1.RawKV (proto/ragkv/v1/rawkv.proto)`,
    ...(members.length > 1 ? [`Try a failure: kill -9 ${members[1]!.pid} (${members[1]!.plan.id}); the others keep serving, and it is restarted on its data and ports.`] : []),
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

/** Runs `ragkv local-cluster`; resolves to the exit code. */
export async function localClusterMain(argv: string[]): Promise<number> {
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
  /** The current process of each member (a restart replaces its entry). */
  const members: Member[] = [];

  // Kill members left behind if this process dies abnormally (an exception, process.exit).
  const killAll = (): void => {
    for (const m of members) if (!m.hasExited) m.child.kill('SIGKILL');
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
  try {
    for (const p of plan) members.push(spawnMember(p, plan, args, logger));
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
    logger.info(
      {
        durability: members[0]!.durability,
        dataDir: args.dataDir,
        members: members.map((m) => ({ id: m.plan.id, pid: m.pid, host: localClusterHost, ...m.ports, dataDir: m.plan.dataDir, log: m.plan.log })),
      },
      'cluster ready',
    );
    process.stderr.write(banner(members, args));

    // From here on a member that exits is restarted; the cluster ends on a signal, or when
    // every member has been left down.
    let resolveAllDown: () => void = () => {};
    const allDown = new Promise<void>((resolve) => (resolveAllDown = resolve));
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
              `${leftDown.length < members.length ? '; the other members keep serving' : ''}. Its last output (${m.plan.log}):\n${m.tail.slice(-5).join('\n')}\n`,
          );
          if (leftDown.length === members.length) resolveAllDown();
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
        const next = spawnMember(again, plan, args, logger);
        members[i] = next;
        void next.listening.then(
          () => {
            if (stopping) return;
            logger.info({ member: next.plan.id, pid: next.pid, host: localClusterHost, ...next.ports, restartsInRow: decision.restartsInRow }, 'member restarted');
            process.stderr.write(`ragkv local-cluster: member ${next.plan.id} is serving again (pid ${next.pid}, RESP ${next.ports.resp})\n`);
          },
          () => {}, // exited before listening: the loop sees the exit
        );
      }
    };
    for (let i = 0; i < members.length; i++) {
      supervise(i).catch((err: unknown) => {
        // A restart that cannot even be spawned (its data directory is gone): say so, keep the others.
        const message = err instanceof Error ? err.message : String(err);
        leftDown.push(members[i]!.plan.id);
        logger.error({ member: members[i]!.plan.id, err: message }, 'cannot restart member; leaving it down');
        process.stderr.write(`ragkv local-cluster: cannot restart member ${members[i]!.plan.id}: ${message}; leaving it down\n`);
        if (leftDown.length === members.length) resolveAllDown();
      });
    }
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
  const unclean = await stopMembers(members, args.stopTimeoutMs, logger);
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
