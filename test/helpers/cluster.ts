/**
 * Real-process clusters for fault tests: N `ragkv start --node-id` processes, each bound to
 * its own loopback address (127.0.0.x; Linux routes all of 127/8 to lo) with its own temp
 * data directory and a fixed peer port, so that a member can be killed with SIGKILL and
 * restarted on the same data, address and peer port.
 *
 * Waiting is done by polling a condition with a deadline (the /cluster admin route, a
 * log line), never by sleeping a fixed time.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { get, request } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { binPath, kill9, type NodeProcess } from './process.js';
import { tempDir } from './tmp.js';

export interface MemberPorts {
  resp: number;
  grpc: number;
  admin: number;
  peer: number;
}

/** One running `ragkv start` process of a cluster. */
export interface MemberProcess extends Omit<NodeProcess, 'ports' | 'logs'> {
  ports: MemberPorts;
  /** The last log lines (stdout and stderr), for failure messages. */
  tail: string[];
}

/** What GET /cluster answers (the parts the tests read). */
export interface ClusterStatus {
  self: string;
  members: { id: string; address: string; status: string; incarnation: number; inTable: boolean; slots: number; client: string }[];
  placement: {
    epoch: number;
    change: { kind: string; member: string; stage: string; moving: number } | null;
    stream: { keys: number; bytes: number; done: boolean };
    counters: { streamedKeys: number; droppedKeys: number; staleRefusals: number };
    awaitingRestore: boolean;
  } | null;
  hints: { pending: number; delivered: number };
  coordinator: { readRepairs: number; hintsStored: number; sloppyWrites: number };
}

export interface MemberSpec {
  id: string;
  host: string;
  peerPort: number;
  dataDir: string;
  /** Group id the process runs as (root only): lets iptables' owner match tell members apart. */
  gid?: number;
  /** Shifts the member's wall clock with Debian's libfaketime, e.g. '+2h' or '-0.3' (seconds). */
  clockOffset?: string;
}

/** Where Debian's faketime package puts its library. */
const libFaketimePaths = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/faketime/libfaketime.so.1'];

/**
 * The environment that runs a process under libfaketime with its wall clock shifted by
 * `offset` (timers keep the real monotonic clock). Preloaded into the node process itself,
 * not through the faketime wrapper, so that signals reach it.
 */
export function fakeTimeEnv(offset: string): NodeJS.ProcessEnv {
  const lib = libFaketimePaths.find((p) => existsSync(p));
  if (!lib) throw new Error(`libfaketime not found (apt-get install faketime); looked in ${libFaketimePaths.join(', ')}`);
  return { LD_PRELOAD: lib, FAKETIME: offset, FAKETIME_DONT_FAKE_MONOTONIC: '1', FAKETIME_NO_CACHE: '1' };
}

/** A port that was free on `host` a moment ago (bind port 0, read it, close). */
export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * Polls `check` until it returns something other than undefined/false, or throws once
 * `timeoutMs` have passed (with `describe()` of the last observation in the message).
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  options: { timeoutMs: number; intervalMs?: number; describe?: () => string },
): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  const interval = options.intervalMs ?? 50;
  let lastError: unknown = null;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
      lastError = null;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const seen = options.describe ? `; last seen: ${options.describe()}` : '';
      const err = lastError ? `; last error: ${lastError instanceof Error ? lastError.message : String(lastError)}` : '';
      throw new Error(`timed out after ${options.timeoutMs} ms waiting for ${what}${seen}${err}`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** GET a JSON document over HTTP with a deadline. */
export function getJson<T>(host: string, port: number, path: string, timeoutMs = 2000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const req = get({ host, port, path, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`GET ${path}: HTTP ${res.statusCode}: ${body}`));
        try {
          resolve(JSON.parse(body) as T);
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${host}:${port}${path} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/**
 * Starts one member and resolves once its structured log says it is listening (the log
 * line is the event). `seeds` are `host:port` peer addresses.
 */
export async function startMemberProcess(spec: MemberSpec, seeds: string[], extraArgs: string[] = [], timeoutMs = 20_000): Promise<MemberProcess> {
  mkdirSync(spec.dataDir, { recursive: true });
  const args = [
    binPath, 'start',
    '--node-id', spec.id,
    '--host', spec.host,
    '--data', spec.dataDir,
    '--resp-port', '0', '--grpc-port', '0', '--admin-port', '0',
    '--peer-port', String(spec.peerPort),
    ...(seeds.length ? ['--seeds', seeds.join(',')] : []),
    ...extraArgs,
  ];
  const proc = spawn(process.execPath, args, {
    // The IPC channel: a member whose test process dies stops itself instead of leaking.
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    env: { ...process.env, ...(spec.clockOffset ? fakeTimeEnv(spec.clockOffset) : {}) },
    ...(spec.gid !== undefined ? { gid: spec.gid } : {}),
  });
  proc.channel?.unref();
  const exited = new Promise<number | string>((resolve) => proc.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  const tail: string[] = [];
  const keep = (line: string) => {
    tail.push(line);
    if (tail.length > 200) tail.shift();
  };
  createInterface({ input: proc.stderr! }).on('line', keep);
  const lines = createInterface({ input: proc.stdout! });
  const ports = await new Promise<MemberPorts>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`member ${spec.id} did not start within ${timeoutMs} ms:\n${tail.join('\n')}`));
    }, timeoutMs);
    // Every line is kept (and stdout drained, so the child never blocks on a full pipe).
    lines.on('line', (line) => {
      keep(line);
      try {
        const rec = JSON.parse(line) as { msg?: string; resp?: number; grpc?: number; admin?: number; peer?: number };
        if (rec.msg === 'listening' && rec.resp) {
          clearTimeout(timer);
          resolve({ resp: rec.resp, grpc: rec.grpc!, admin: rec.admin!, peer: rec.peer! });
        }
      } catch {
        // not a log line (the banner)
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`member ${spec.id} exited (${code}) before listening:\n${tail.join('\n')}`));
    });
  });
  return { proc, ports, exited, tail };
}

export interface ClusterOptions {
  /** One loopback address per member, e.g. ['127.0.0.11', '127.0.0.12', '127.0.0.13']. */
  hosts: string[];
  /** Member ids (default n1..nN). */
  ids?: string[];
  /** Per-member group id (see MemberSpec.gid). */
  gids?: (number | undefined)[];
  /** Per-member wall clock offset (see MemberSpec.clockOffset). */
  clockOffsets?: (string | undefined)[];
  extraArgs?: string[];
  startTimeoutMs?: number;
}

/** A cluster of real member processes in one temp directory. */
export class ProcessCluster {
  readonly specs: MemberSpec[];
  /** The running process of each member; null while it is down. */
  readonly procs: (MemberProcess | null)[];
  private readonly tails: string[][];
  private readonly dir: { path: string; cleanup(): void };
  private readonly extraArgs: string[];

  private constructor(specs: MemberSpec[], dir: { path: string; cleanup(): void }, extraArgs: string[]) {
    this.specs = specs;
    this.dir = dir;
    this.extraArgs = extraArgs;
    this.procs = specs.map(() => null);
    this.tails = specs.map(() => []);
  }

  /**
   * Starts every member (concurrently; each one seeds from all the others) and waits until
   * every member's /cluster shows every member alive. On failure everything is torn down.
   */
  static async start(options: ClusterOptions): Promise<ProcessCluster> {
    const dir = tempDir('ragkv-cluster-');
    const specs: MemberSpec[] = [];
    for (let i = 0; i < options.hosts.length; i++) {
      const host = options.hosts[i]!;
      const gid = options.gids?.[i];
      const clockOffset = options.clockOffsets?.[i];
      specs.push({
        ...(clockOffset ? { clockOffset } : {}),
        id: options.ids?.[i] ?? `n${i + 1}`,
        host,
        peerPort: await freePort(host),
        dataDir: join(dir.path, `n${i + 1}`),
        ...(gid !== undefined ? { gid } : {}),
      });
    }
    // All members form the first placement table together (PlacementTable.initial of them all).
    const cluster = new ProcessCluster(specs, dir, ['--expect-members', String(specs.length), ...(options.extraArgs ?? [])]);
    try {
      await Promise.all(specs.map((_, i) => cluster.startMember(i, options.startTimeoutMs)));
      await cluster.waitAllAlive(30_000);
      await cluster.waitPlacementSettled(30_000);
      return cluster;
    } catch (err) {
      await cluster.destroy();
      throw err;
    }
  }

  get size(): number {
    return this.specs.length;
  }

  /** The running process of member i (throws when it is down). */
  member(i: number): MemberProcess {
    const p = this.procs[i];
    if (!p) throw new Error(`member ${this.specs[i]!.id} is not running`);
    return p;
  }

  host(i: number): string {
    return this.specs[i]!.host;
  }

  id(i: number): string {
    return this.specs[i]!.id;
  }

  isRunning(i: number): boolean {
    return this.procs[i] !== null;
  }

  private seedsFor(i: number): string[] {
    return this.specs.filter((_, j) => j !== i).map((s) => `${s.host}:${s.peerPort}`);
  }

  /** Starts (or restarts) member i on its data directory, address and peer port. */
  async startMember(i: number, timeoutMs?: number): Promise<MemberProcess> {
    if (this.procs[i]) throw new Error(`member ${this.specs[i]!.id} is already running`);
    const p = await startMemberProcess(this.specs[i]!, this.seedsFor(i), this.extraArgs, timeoutMs);
    this.procs[i] = p;
    this.tails[i] = p.tail;
    return p;
  }

  /** Adds a member on `host` (not started yet: startMember(index) joins it through the others); its index. */
  async addMember(host: string, id = `n${this.specs.length + 1}`): Promise<number> {
    this.specs.push({ id, host, peerPort: await freePort(host), dataDir: join(this.dir.path, id) });
    this.procs.push(null);
    this.tails.push([]);
    return this.specs.length - 1;
  }

  /** Deletes member i's data directory (it must be down): a lost disk. */
  wipe(i: number): void {
    if (this.procs[i]) throw new Error(`member ${this.specs[i]!.id} is running`);
    rmSync(this.specs[i]!.dataDir, { recursive: true, force: true });
  }

  /** POSTs to member i's admin port; resolves with the status and body (operations wait until done). */
  post(i: number, path: string, timeoutMs = 120_000): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request({ host: this.host(i), port: this.member(i).ports.admin, path, method: 'POST', timeout: timeoutMs }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('timeout', () => req.destroy(new Error(`POST ${path} timed out after ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end();
    });
  }

  /** Forgets member i's process after it exited by itself (a member that left stops). */
  async waitExit(i: number): Promise<number | string> {
    const p = this.member(i);
    const code = await p.exited;
    this.procs[i] = null;
    return code;
  }

  /** SIGKILL member i and wait for the exit. */
  async kill9(i: number): Promise<void> {
    const p = this.member(i);
    this.procs[i] = null;
    await kill9({ proc: p.proc, exited: p.exited, ports: p.ports });
  }

  /** /cluster of member i. */
  status(i: number, timeoutMs = 2000): Promise<ClusterStatus> {
    return getJson<ClusterStatus>(this.host(i), this.member(i).ports.admin, '/cluster', timeoutMs);
  }

  /** /cluster of every running member (index-aligned; null for members that are down). */
  async statuses(): Promise<(ClusterStatus | null)[]> {
    return Promise.all(this.procs.map((p, i) => (p ? this.status(i) : Promise.resolve(null))));
  }

  /** Polls until every member in `observers` sees every member in `subjects` with `status`. */
  async waitStatus(observers: number[], subjects: number[], status: string, timeoutMs: number): Promise<void> {
    let last = '';
    await waitFor(
      `${observers.map((o) => this.id(o)).join(',')} to see ${subjects.map((s) => this.id(s)).join(',')} ${status}`,
      async () => {
        const seen = await Promise.all(observers.map((o) => this.status(o, 1000)));
        last = seen.map((s, k) => `${this.id(observers[k]!)}: ${s.members.map((m) => `${m.id}=${m.status}`).join(' ')}`).join('; ');
        return seen.every((s) => subjects.every((j) => memberStatus(s, this.id(j)) === status));
      },
      { timeoutMs, describe: () => last },
    );
  }

  /**
   * Polls until every running member has the same placement epoch, no change in flight, and
   * `members` (default: every member) in its table.
   */
  async waitPlacementSettled(timeoutMs: number, members: number[] = this.specs.map((_, i) => i)): Promise<number> {
    let last = '';
    return waitFor(
      'every running member on one settled placement table',
      async () => {
        const seen = (await this.statuses()).filter((s): s is ClusterStatus => s !== null);
        last = seen.map((s) => `${s.self}: epoch ${s.placement?.epoch ?? 0}${s.placement?.change ? ` (${s.placement.change.kind} ${s.placement.change.stage})` : ''}`).join('; ');
        const epochs = new Set(seen.map((s) => s.placement?.epoch ?? 0));
        const ok =
          epochs.size === 1 &&
          !epochs.has(0) &&
          seen.every((s) => !s.placement?.change && members.every((j) => s.members.find((m) => m.id === this.id(j))?.inTable));
        return ok ? seen[0]!.placement!.epoch : undefined;
      },
      { timeoutMs, intervalMs: 100, describe: () => last },
    );
  }

  /** Polls until every running member sees every member alive. */
  async waitAllAlive(timeoutMs: number): Promise<void> {
    const all = this.specs.map((_, i) => i);
    await this.waitStatus(all.filter((i) => this.isRunning(i)), all, 'alive', timeoutMs);
  }

  /** Polls until no running member holds a pending hint; returns the hints delivered, summed. */
  async waitHintsDrained(timeoutMs: number): Promise<number> {
    let last = '';
    return waitFor(
      'hints pending == 0 on every member',
      async () => {
        const seen = (await this.statuses()).filter((s): s is ClusterStatus => s !== null);
        last = seen.map((s) => `${s.self}: pending ${s.hints.pending}, delivered ${s.hints.delivered}`).join('; ');
        return seen.every((s) => s.hints.pending === 0) ? seen.reduce((n, s) => n + s.hints.delivered, 0) : undefined;
      },
      { timeoutMs, intervalMs: 100, describe: () => last },
    );
  }

  /** SIGTERM every running member; resolves with their exit codes (SIGKILL after `timeoutMs`). */
  async stop(timeoutMs = 10_000): Promise<(number | string)[]> {
    const running = this.procs.map((p, i) => [p, i] as const).filter((x): x is [MemberProcess, number] => x[0] !== null);
    return Promise.all(
      running.map(async ([p, i]) => {
        this.procs[i] = null;
        if (p.proc.exitCode !== null || p.proc.signalCode !== null) return p.exited;
        p.proc.kill('SIGTERM');
        const timer = setTimeout(() => p.proc.kill('SIGKILL'), timeoutMs);
        try {
          return await p.exited;
        } finally {
          clearTimeout(timer);
        }
      }),
    );
  }

  /** SIGKILL whatever still runs and remove the data: for `finally`, never throws. */
  async destroy(): Promise<void> {
    await Promise.all(
      this.procs.map(async (p, i) => {
        this.procs[i] = null;
        if (p) await kill9({ proc: p.proc, exited: p.exited, ports: p.ports }).catch(() => {});
      }),
    );
    this.dir.cleanup();
  }

  /** Last log lines of member i (of its latest process, running or not), for failure messages. */
  logTail(i: number, lines = 30): string {
    return (this.tails[i] ?? []).slice(-lines).join('\n');
  }
}

/** Status of member `subject` in one member's /cluster ('unknown' when not listed). */
export function memberStatus(s: ClusterStatus, subject: string): string {
  return s.members.find((m) => m.id === subject)?.status ?? 'unknown';
}
