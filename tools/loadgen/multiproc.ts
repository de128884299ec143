/**
 * Runs a workload in K child processes (`child_process.fork` of this module), each with its own
 * target connection, so that the load generator is not limited to one core. The parent tells
 * all children to load, waits for all, tells all to run, and merges what they send back:
 * histograms (HdrHistogram encodings), counts, client CPU (process.cpuUsage over each child's
 * measured window). Server CPU comes from /proc/<pid>/stat of the server processes, sampled
 * when every child has finished its warm-up and when every child has finished measuring.
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { Driver, type DriverOptions, type DriverResult, type ScheduleStats } from './driver.js';
import { LatencyHistogram, mergeHistograms, type LatencySummary } from './histogram.js';
import { createTargetFactory } from './targets/index.js';
import type { TargetSpec } from './targets/spec.js';
import type { Target } from './target.js';
import { createWorkload, type VerifyCounts, type WorkloadParams } from './workloads.js';

/** A child process using more than this share of one core counts as saturated. */
export const CLIENT_CPU_SATURATED = 0.85;
/** Open loop: more than this share of sends late with a free slot means the client fell behind. */
export const CLIENT_LATE_SHARE_MAX = 0.01;
/** Concurrency of each process's load phase. */
export const LOAD_CONCURRENCY = 16;

/** Everything one measured run needs. */
export interface RunConfig {
  spec: TargetSpec;
  workload: string;
  params: Omit<WorkloadParams, 'processIndex' | 'processCount'>;
  processes: number;
  /** Per process: closed-loop workers or open-loop outstanding bound. */
  concurrency: number;
  /** Total open-loop rate over all processes; null: closed loop. */
  ratePerSec: number | null;
  durationMs?: number;
  /** Total measured operations over all processes. */
  ops?: number;
  warmupMs: number;
  /** Run the load phase first (skip when this target already holds the data set). */
  load: boolean;
  /** Server processes to measure CPU of. */
  serverPids: number[];
  /** Progress: measured ops completed so far (all processes), and the phase. */
  onProgress?: (p: { phase: 'load' | 'warmup' | 'measure' | 'drain'; completed: number; loadCompleted: number; loadTotal: number }) => void;
}

/** The merged outcome of one workload on one target. */
export interface RunMeasurement {
  target: string;
  targetDescribe: string;
  workload: string;
  workloadDescription: string;
  mode: 'closed' | 'open';
  processes: number;
  concurrencyPerProcess: number;
  ratePerSec: number | null;
  measuredS: number;
  ops: number;
  throughputOpsPerS: number;
  errors: number;
  errorsByKind: Record<string, number>;
  latency: { all: LatencySummary; byOp: Record<string, LatencySummary> };
  /** HdrHistogram compressed encodings per op type, to re-analyse a run later. */
  histograms: Record<string, string>;
  verify: VerifyCounts | null;
  clientCpuS: number;
  /** Each process's CPU seconds per second of its measured window (1 = one core; includes GC and I/O threads). */
  clientCpuShare: number[];
  /** Each process's event-loop utilization over its measured window (1 = the JS thread never idled). */
  clientEventLoopUtilization: number[];
  serverCpuS: number | null;
  serverWindowS: number | null;
  schedule: ScheduleStats | null;
  load: { ops: number; seconds: number; errors: number; errorsByKind: Record<string, number> } | null;
  bottleneck: { loadGenerator: boolean; reasons: string[] };
}

// ---------------------------------------------------------------- messages

type ParentMessage =
  | { cmd: 'init'; config: ChildConfig }
  | { cmd: 'load' }
  | { cmd: 'run' };

interface ChildConfig {
  spec: TargetSpec;
  workload: string;
  params: WorkloadParams;
  driver: Omit<DriverOptions, 'onPhase'>;
  /** Run the load phase (false: the target already holds this data set). */
  load: boolean;
}

interface SerializedDriverResult extends Omit<DriverResult, 'histograms'> {
  histograms: Record<string, string>;
}

type ChildMessage =
  | { type: 'ready'; describe: string; workloadDescription: string; loadTotal: number }
  | { type: 'progress'; completed: number; loadCompleted: number }
  | { type: 'loaded'; result: SerializedDriverResult | null }
  | { type: 'phase'; phase: 'measure' | 'drain' }
  | { type: 'result'; result: SerializedDriverResult; cpuS: number; eventLoopUtilization: number; verify: VerifyCounts }
  | { type: 'error'; message: string };

const CHILD_FLAG = '--ragkv-loadgen-child';
/** How long a child may take to close its connection and exit after sending its result. */
const CHILD_EXIT_GRACE_MS = 5000;

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
const PROGRESS_EVERY_MS = 250;

function serialize(r: DriverResult): SerializedDriverResult {
  const histograms: Record<string, string> = {};
  for (const [type, h] of r.histograms) histograms[type] = h.encode();
  return { ...r, histograms };
}

// ---------------------------------------------------------------- child side

async function childMain(): Promise<void> {
  const send = (m: ChildMessage): Promise<void> =>
    new Promise((resolve, reject) => process.send!(m, undefined, {}, (err) => (err ? reject(err) : resolve())));
  // Progress and phase notes are best effort: a parent that went away ends the child anyway.
  const note = (m: ChildMessage): void => void send(m).catch(() => {});
  let target: Target | null = null;
  try {
    const config = await nextMessage<'init'>('init');
    const c = config.config;
    target = await createTargetFactory(c.spec).create();
    const workload = createWorkload(c.workload, c.params);
    await send({ type: 'ready', describe: target.describe(), workloadDescription: workload.description, loadTotal: workload.loadCount });

    await nextMessage('load');
    let loadResult: SerializedDriverResult | null = null;
    if (c.load && workload.loadCount > 0) {
      const driver = new Driver(target, workload.loadSource(), { concurrency: LOAD_CONCURRENCY, ops: workload.loadCount });
      const timer = setInterval(() => note({ type: 'progress', completed: 0, loadCompleted: driver.live.completed }), PROGRESS_EVERY_MS);
      try {
        loadResult = serialize(await driver.run());
      } finally {
        clearInterval(timer);
      }
    }
    await send({ type: 'loaded', result: loadResult });

    await nextMessage('run');
    let cpuStart = process.cpuUsage();
    let cpuEnd: NodeJS.CpuUsage | null = null;
    let eluStart = performance.eventLoopUtilization();
    let elu: number | null = null;
    const driver = new Driver(target, workload, {
      ...c.driver,
      onPhase: (phase) => {
        if (phase === 'measure') {
          cpuStart = process.cpuUsage();
          eluStart = performance.eventLoopUtilization();
        } else {
          cpuEnd = process.cpuUsage(cpuStart);
          elu = performance.eventLoopUtilization(eluStart).utilization;
        }
        note({ type: 'phase', phase });
      },
    });
    const timer = setInterval(() => note({ type: 'progress', completed: driver.live.completed, loadCompleted: 0 }), PROGRESS_EVERY_MS);
    let result: DriverResult;
    try {
      result = await driver.run();
    } finally {
      clearInterval(timer);
    }
    const cpu: NodeJS.CpuUsage = cpuEnd ?? process.cpuUsage(cpuStart);
    await send({ type: 'result', result: serialize(result), cpuS: (cpu.user + cpu.system) / 1e6,
      eventLoopUtilization: elu ?? performance.eventLoopUtilization(eluStart).utilization,
      verify: workload.verifyCounts,
    });
  } catch (err) {
    await send({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) }).catch(() => {});
  } finally {
    await target?.close().catch(() => {});
    process.disconnect?.();
  }
}

function nextMessage<C extends ParentMessage['cmd']>(cmd: C): Promise<Extract<ParentMessage, { cmd: C }>> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: ParentMessage): void => {
      process.off('message', onMessage);
      process.off('disconnect', onDisconnect);
      if (m.cmd === cmd) resolve(m as Extract<ParentMessage, { cmd: C }>);
      else reject(new Error(`expected '${cmd}' from the parent, got '${m.cmd}'`));
    };
    const onDisconnect = (): void => reject(new Error('parent went away'));
    process.on('message', onMessage);
    process.once('disconnect', onDisconnect);
  });
}

if (process.argv.includes(CHILD_FLAG) && process.send) void childMain();

// ---------------------------------------------------------------- parent side

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat; null if unreadable. */
export function procCpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    if (!Number.isFinite(utime) || !Number.isFinite(stime)) return null;
    return (utime + stime) / clockTicksPerSecond();
  } catch {
    return null;
  }
}

let clockTicks: number | null = null;
function clockTicksPerSecond(): number {
  if (clockTicks === null) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

function serverCpu(pids: number[]): number | null {
  let total = 0;
  for (const pid of pids) {
    const s = procCpuSeconds(pid);
    if (s === null) return null;
    total += s;
  }
  return total;
}

interface ChildHandle {
  proc: ChildProcess;
  messages: ChildMessage[];
  waiters: ((m: ChildMessage) => void)[];
  exited: Promise<void>;
  lastCompleted: number;
  lastLoadCompleted: number;
  phase: 'warmup' | 'measure' | 'drain';
  stderrTail: string;
}

function spawnChild(): ChildHandle {
  const proc = fork(fileURLToPath(import.meta.url), [CHILD_FLAG], { stdio: ['ignore', 'inherit', 'pipe', 'ipc'], serialization: 'advanced' });
  const h: ChildHandle = {
    proc,
    messages: [],
    waiters: [],
    exited: new Promise((resolve) => proc.once('exit', () => resolve())),
    lastCompleted: 0,
    lastLoadCompleted: 0,
    phase: 'warmup',
    stderrTail: '',
  };
  proc.stderr!.on('data', (d: Buffer) => {
    h.stderrTail = (h.stderrTail + d.toString()).slice(-4000);
  });
  proc.on('message', (m: ChildMessage) => {
    if (m.type === 'progress') {
      h.lastCompleted = Math.max(h.lastCompleted, m.completed);
      h.lastLoadCompleted = Math.max(h.lastLoadCompleted, m.loadCompleted);
      return;
    }
    const w = h.waiters.shift();
    if (w) w(m);
    else h.messages.push(m);
  });
  void h.exited.then(() => {
    for (const w of h.waiters.splice(0)) w({ type: 'error', message: `load process ${proc.pid} exited early${h.stderrTail ? `: ${h.stderrTail}` : ''}` });
  });
  return h;
}

/** The next non-progress message of a child; an `error` message (or an early exit) rejects. */
async function expect<T extends ChildMessage['type']>(h: ChildHandle, type: T): Promise<Extract<ChildMessage, { type: T }>> {
  const m =
    h.messages.shift() ??
    (h.proc.exitCode !== null || h.proc.signalCode !== null
      ? ({ type: 'error', message: `load process ${h.proc.pid} has exited${h.stderrTail ? `: ${h.stderrTail}` : ''}` } as ChildMessage)
      : await new Promise<ChildMessage>((resolve) => h.waiters.push(resolve)));
  if (m.type === 'error') throw new Error(`load process ${h.proc.pid}: ${m.message}`);
  if (m.type !== type) throw new Error(`load process ${h.proc.pid}: expected '${type}', got '${m.type}'`);
  return m as Extract<ChildMessage, { type: T }>;
}

/** Waits for a `phase` message of each child (others' messages stay queued). */
async function allReachPhase(children: ChildHandle[], phase: 'measure' | 'drain'): Promise<void> {
  await Promise.all(
    children.map(async (h) => {
      while (h.phase !== phase) {
        const m = await expect(h, 'phase');
        h.phase = m.phase;
      }
    }),
  );
}

/** Splits `total` into `parts` integers that differ by at most one. */
export function split(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

/** Runs one workload on one target with `processes` load processes; see RunMeasurement. */
export async function runMultiProcess(config: RunConfig): Promise<RunMeasurement> {
  const k = config.processes;
  if (!Number.isSafeInteger(k) || k < 1) throw new RangeError(`'processes' must be a positive integer, got ${k}`);
  const opsSplit = config.ops === undefined ? null : split(config.ops, k);
  if (opsSplit && opsSplit.some((n) => n === 0)) throw new RangeError(`--ops ${config.ops} is fewer than one operation per process (${k})`);
  const children = Array.from({ length: k }, () => spawnChild());
  let progressTimer: NodeJS.Timeout | null = null;
  try {
    let phase: 'load' | 'warmup' | 'measure' | 'drain' = 'load';
    for (const [i, h] of children.entries()) {
      const driver: ChildConfig['driver'] = { concurrency: config.concurrency, warmupMs: config.warmupMs };
      if (config.ratePerSec !== null) driver.ratePerSec = config.ratePerSec / k;
      if (config.durationMs !== undefined) driver.durationMs = config.durationMs;
      if (opsSplit) driver.ops = opsSplit[i]!;
      h.proc.send({ cmd: 'init', config: { spec: config.spec, workload: config.workload, params: { ...config.params, processIndex: i, processCount: k }, driver, load: config.load } } satisfies ParentMessage);
    }
    const ready = await Promise.all(children.map((h) => expect(h, 'ready')));
    const loadTotal = config.load ? ready.reduce((s, r) => s + r.loadTotal, 0) : 0;
    progressTimer = setInterval(() => {
      config.onProgress?.({
        phase,
        completed: children.reduce((s, h) => s + h.lastCompleted, 0),
        loadCompleted: children.reduce((s, h) => s + h.lastLoadCompleted, 0),
        loadTotal,
      });
    }, PROGRESS_EVERY_MS);

    let load: RunMeasurement['load'] = null;
    const loadStart = performance.now();
    for (const h of children) h.proc.send({ cmd: 'load' } satisfies ParentMessage);
    const loaded = await Promise.all(children.map((h) => expect(h, 'loaded')));
    if (config.load) {
      const seconds = (performance.now() - loadStart) / 1000;
      const errorsByKind: Record<string, number> = {};
      let ops = 0;
      let errors = 0;
      for (const l of loaded) {
        if (!l.result) continue;
        ops += l.result.ops;
        errors += l.result.errors;
        for (const [kind, n] of Object.entries(l.result.errorsByKind)) errorsByKind[kind] = (errorsByKind[kind] ?? 0) + n;
      }
      load = { ops, seconds, errors, errorsByKind };
    }

    phase = 'warmup';
    for (const h of children) h.proc.send({ cmd: 'run' } satisfies ParentMessage);
    await allReachPhase(children, 'measure');
    phase = 'measure';
    const serverBefore = serverCpu(config.serverPids);
    const windowStart = performance.now();
    await allReachPhase(children, 'drain');
    phase = 'drain';
    const serverAfter = serverCpu(config.serverPids);
    const windowS = (performance.now() - windowStart) / 1000;
    const results = await Promise.all(children.map((h) => expect(h, 'result')));
    // Children exit once their connection is closed; one that lingers is killed below.
    await Promise.race([Promise.all(children.map((h) => h.exited)), delay(CHILD_EXIT_GRACE_MS)]);

    return merge(config, ready[0]!.describe, ready[0]!.workloadDescription, results, load, {
      serverCpuS: serverBefore !== null && serverAfter !== null ? serverAfter - serverBefore : null,
      windowS,
    });
  } finally {
    if (progressTimer) clearInterval(progressTimer);
    for (const h of children) {
      if (h.proc.exitCode === null && h.proc.signalCode === null) h.proc.kill('SIGKILL');
    }
    await Promise.all(children.map((h) => h.exited));
  }
}

function merge(
  config: RunConfig,
  targetDescribe: string,
  workloadDescription: string,
  results: Extract<ChildMessage, { type: 'result' }>[],
  load: RunMeasurement['load'],
  server: { serverCpuS: number | null; windowS: number },
): RunMeasurement {
  const byType = new Map<string, LatencyHistogram>();
  const errorsByKind: Record<string, number> = {};
  let ops = 0;
  let errors = 0;
  let throughput = 0;
  let measuredS = 0;
  let clientCpuS = 0;
  const clientCpuShare: number[] = [];
  const clientElu: number[] = [];
  const verify: VerifyCounts = { checkedValues: 0, mismatches: 0, byReason: {} };
  let schedule: ScheduleStats | null = null;
  for (const { result: r, cpuS, eventLoopUtilization, verify: v } of results) {
    clientElu.push(eventLoopUtilization);
    ops += r.ops;
    errors += r.errors;
    const s = r.measuredMs / 1000;
    if (s > 0) throughput += r.ops / s;
    measuredS = Math.max(measuredS, s);
    clientCpuS += cpuS;
    clientCpuShare.push(s > 0 ? cpuS / s : 0);
    for (const [kind, n] of Object.entries(r.errorsByKind)) errorsByKind[kind] = (errorsByKind[kind] ?? 0) + n;
    for (const [type, encoded] of Object.entries(r.histograms)) {
      const h = LatencyHistogram.decode(encoded);
      const into = byType.get(type);
      if (into) into.merge(h);
      else byType.set(type, h);
    }
    verify.checkedValues += v.checkedValues;
    verify.mismatches += v.mismatches;
    for (const [reason, n] of Object.entries(v.byReason)) verify.byReason[reason] = (verify.byReason[reason] ?? 0) + n;
    if (r.schedule) {
      schedule ??= { sent: 0, waitedForSlot: 0, clientLate: 0, maxLagMs: 0, unsent: 0 };
      schedule.sent += r.schedule.sent;
      schedule.waitedForSlot += r.schedule.waitedForSlot;
      schedule.clientLate += r.schedule.clientLate;
      schedule.unsent += r.schedule.unsent;
      schedule.maxLagMs = Math.max(schedule.maxLagMs, r.schedule.maxLagMs);
    }
  }
  const reasons: string[] = [];
  const saturated = clientCpuShare.filter((share, i) => share > CLIENT_CPU_SATURATED || clientElu[i]! > CLIENT_CPU_SATURATED).length;
  if (saturated > 0) {
    reasons.push(
      `${saturated} of ${clientCpuShare.length} load processes used > ${Math.round(CLIENT_CPU_SATURATED * 100)}% of a core or of their event loop ` +
        `(CPU ${clientCpuShare.map((x) => x.toFixed(2)).join(', ')}; event loop ${clientElu.map((x) => x.toFixed(2)).join(', ')})`,
    );
  }
  if (schedule && schedule.sent > 0 && schedule.clientLate / schedule.sent > CLIENT_LATE_SHARE_MAX) {
    reasons.push(`the open-loop schedule fell behind on the client: ${schedule.clientLate} of ${schedule.sent} sends > 5 ms late with a free slot`);
  }
  const cores = os.availableParallelism();
  if (server.serverCpuS !== null && server.windowS > 0) {
    const used = clientCpuS / measuredS + server.serverCpuS / server.windowS;
    if (used > cores * 0.9) reasons.push(`the machine's ${cores} cores were saturated (client + server ${used.toFixed(2)} cores)`);
  }
  const byOp: Record<string, LatencySummary> = {};
  const histograms: Record<string, string> = {};
  for (const [type, h] of [...byType].sort(([a], [b]) => a.localeCompare(b))) {
    byOp[type] = h.summary();
    histograms[type] = h.encode();
  }
  return {
    target: config.spec.name,
    targetDescribe,
    workload: config.workload,
    workloadDescription,
    mode: config.ratePerSec === null ? 'closed' : 'open',
    processes: config.processes,
    concurrencyPerProcess: config.concurrency,
    ratePerSec: config.ratePerSec,
    measuredS,
    ops,
    throughputOpsPerS: throughput,
    errors,
    errorsByKind,
    latency: { all: mergeHistograms(byType.values()).summary(), byOp },
    histograms,
    verify: config.params.verify ? verify : null,
    clientCpuS,
    clientCpuShare,
    clientEventLoopUtilization: clientElu,
    serverCpuS: server.serverCpuS,
    serverWindowS: server.windowS,
    schedule,
    load,
    // Only the first two reasons are about the load generator itself; a saturated machine is
    // reported too, since on 2 cores client and server compete.
    bottleneck: { loadGenerator: saturated > 0 || reasons.some((r) => r.startsWith('the open-loop')), reasons },
  };
}
