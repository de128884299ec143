/**
 * Helpers shared by the benchmark programs (bench/resp.ts, bench/storage.ts): progress lines,
 * a latency recorder with percentiles, Markdown tables, machine facts, temp dirs, ports and
 * result files. Benchmarks are not tests: nothing here is used by the server or by CI.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (tools/bench/*.ts compiles to dist/tools/bench/*.js). */
export const repoRoot: string = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

// ---------------------------------------------------------------- progress

const t0 = performance.now();

function stamp(): string {
  return `[${((performance.now() - t0) / 1000).toFixed(1).padStart(6)}s]`;
}

/** Prints a progress line (to stderr, so stdout holds only the results). */
export function note(message: string): void {
  process.stderr.write(`${stamp()} ${message}\n`);
}

/**
 * Starts a named phase: prints a line now and, when the returned function is called, a line
 * with the phase's own elapsed time and an optional summary.
 */
export function phase(name: string): (summary?: string) => number {
  const start = performance.now();
  note(`${name} ...`);
  return (summary?: string) => {
    const seconds = (performance.now() - start) / 1000;
    note(`${name} done in ${seconds.toFixed(1)}s${summary ? ` - ${summary}` : ''}`);
    return seconds;
  };
}

// ---------------------------------------------------------------- latency

export interface LatencySummary {
  count: number;
  meanUs: number;
  minUs: number;
  p50Us: number;
  p95Us: number;
  p99Us: number;
  maxUs: number;
}

/** Records durations (nanoseconds in, microseconds out); percentiles from a sorted copy. */
export class LatencyRecorder {
  private samples = new Float64Array(1024);
  private n = 0;

  /** Adds one duration in nanoseconds (e.g. a difference of process.hrtime.bigint()). */
  addNs(ns: number | bigint): void {
    if (this.n === this.samples.length) {
      const bigger = new Float64Array(this.samples.length * 2);
      bigger.set(this.samples);
      this.samples = bigger;
    }
    this.samples[this.n++] = Number(ns);
  }

  get count(): number {
    return this.n;
  }

  summary(): LatencySummary {
    const sorted = this.samples.slice(0, this.n).sort();
    const us = (ns: number) => ns / 1000;
    let total = 0;
    for (const s of sorted) total += s;
    const pick = (q: number) => {
      if (sorted.length === 0) return NaN;
      // nearest rank
      const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
      return us(sorted[rank - 1]!);
    };
    return {
      count: sorted.length,
      meanUs: sorted.length ? us(total / sorted.length) : NaN,
      minUs: sorted.length ? us(sorted[0]!) : NaN,
      p50Us: pick(0.5),
      p95Us: pick(0.95),
      p99Us: pick(0.99),
      maxUs: sorted.length ? us(sorted[sorted.length - 1]!) : NaN,
    };
  }
}

/** Nanoseconds since an arbitrary origin, as a number (safe for ~104 days of uptime). */
export function nowNs(): number {
  return Number(process.hrtime.bigint());
}

// ---------------------------------------------------------------- formatting

/** 123456.7 -> "123,457". */
export function fmtInt(n: number): string {
  if (!Number.isFinite(n)) return 'n/a';
  return Math.round(n).toLocaleString('en-US');
}

/** A number with `digits` decimals, or n/a. */
export function fmtNum(n: number | undefined, digits = 2): string {
  if (n === undefined || !Number.isFinite(n)) return 'n/a';
  return n.toFixed(digits);
}

/** Ratio a/b as "0.83x". */
export function fmtRatio(a: number, b: number): string {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return 'n/a';
  return `${(a / b).toFixed(2)}x`;
}

/** Bytes as "1 KiB", "64 MiB". */
export function fmtBytes(n: number): string {
  if (n >= 1024 * 1024 && n % (1024 * 1024) === 0) return `${n / (1024 * 1024)} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} B`;
}

/** A GitHub-flavoured Markdown table. */
export function markdownTable(headers: string[], rows: string[][], rightAlignFrom = 1): string {
  const widths = headers.map((h, i) => Math.max(h.length, 3, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (i >= rightAlignFrom ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' | ')} |`;
  const sep = `|${widths.map((w, i) => (i >= rightAlignFrom ? `${'-'.repeat(w + 1)}:` : `${'-'.repeat(w + 2)}`)).join('|')}|`;
  return [line(headers), sep, ...rows.map((r) => line(r))].join('\n');
}

// ---------------------------------------------------------------- machine

export interface MachineInfo {
  date: string;
  hostname: string;
  nproc: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  platform: string;
  kernel: string;
}

function tryExec(cmd: string, args: string[]): string | null {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

export function machineInfo(): MachineInfo {
  const lscpu = tryExec('lscpu', []);
  const model = lscpu?.split('\n').find((l) => l.startsWith('Model name:'))?.split(':')[1]?.trim();
  return {
    date: new Date().toISOString(),
    hostname: os.hostname(),
    nproc: os.availableParallelism(),
    cpuModel: model ?? os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    node: process.version,
    platform: `${os.platform()} ${os.arch()}`,
    kernel: os.release(),
  };
}

export function machineLine(m: MachineInfo): string {
  return `${m.nproc} CPU (${m.cpuModel}), ${m.memoryGiB} GiB RAM, Node ${m.node}, ${m.platform} ${m.kernel}`;
}

// ---------------------------------------------------------------- files, ports, processes

/** A fresh temp directory; remove it with removeDir. */
export function makeTempDir(prefix: string): string {
  return mkdtempSync(path.join(os.tmpdir(), `ragkv-bench-${prefix}-`));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Writes `data` as JSON to bench-results/<name>-<date>T<time>.json; returns the path. */
export function writeResults(name: string, data: unknown): string {
  const dir = path.join(repoRoot, 'bench-results');
  mkdirSync(dir, { recursive: true });
  const stampStr = new Date().toISOString().replace(/:/g, '-').replace(/\..*$/, '');
  const file = path.join(dir, `${name}-${stampStr}.json`);
  writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
  return file;
}

/** A TCP port that was free a moment ago (bind port 0 on loopback, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function tryConnect(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host });
    const done = (ok: boolean) => {
      sock.removeAllListeners();
      sock.destroy();
      resolve(ok);
    };
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
    sock.setTimeout(1000, () => done(false));
  });
}

/**
 * Polls until something accepts TCP connections on host:port. Throws after `timeoutMs`, or
 * as soon as `stillAlive()` says the process that should listen has gone.
 */
export async function waitForPort(
  port: number,
  timeoutMs: number,
  stillAlive: () => boolean = () => true,
  host = '127.0.0.1',
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await tryConnect(port, host)) return;
    if (!stillAlive()) throw new Error(`the process that should listen on port ${port} exited`);
    if (performance.now() > deadline) throw new Error(`nothing accepted connections on ${host}:${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** First line of `cmd --version`, or null when the command is missing. */
export function commandVersion(cmd: string, args: string[] = ['--version']): string | null {
  const out = tryExec(cmd, args);
  return out === null ? null : out.split('\n')[0]!;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Flushes dirty pages to disk (`sync`) and waits a moment, so that one phase's write-back
 * does not slow the next phase down. Returns the seconds it took.
 */
export async function settle(): Promise<number> {
  const start = performance.now();
  tryExec('sync', []);
  await sleep(250);
  return (performance.now() - start) / 1000;
}

// ---------------------------------------------------------------- CPU accounting (/proc)

/** USER_HZ on Linux: the unit of /proc CPU times. */
export const TICKS_PER_SEC = 100;

/** CPU time (user + system, all threads) of a process so far, in ticks; null if unknown. */
export function procCpuTicks(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // fields after the ")" of the command name; utime and stime are fields 14 and 15
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(rest[11]) + Number(rest[12]);
  } catch {
    return null;
  }
}

/** User-mode CPU time of a process so far, in ticks; null if unknown. */
export function procUserTicks(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[11]);
  } catch {
    return null;
  }
}

/**
 * User-mode CPU time of the whole machine so far (user + nice), in ticks. Other programs
 * (builds, tests) run mostly in user mode, while the kernel work a benchmark causes itself
 * (write-back, loopback networking) is system time: so this is the cleaner signal of
 * "someone else is using the machine".
 */
export function machineUserTicks(): number | null {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    return (f[0] ?? 0) + (f[1] ?? 0);
  } catch {
    return null;
  }
}

/** Busy CPU time of the whole machine so far (all CPUs, idle and iowait excluded), in ticks. */
export function machineBusyTicks(): number | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    return total - idle;
  } catch {
    return null;
  }
}

/**
 * CPU the rest of the machine uses while we sit idle for `ms`: % of one core. Other work on
 * a shared machine (builds, tests) makes benchmark figures noisy; this lets the output say so.
 */
export async function backgroundCpuPct(ms = 1000): Promise<number | null> {
  const a = machineBusyTicks();
  const own0 = process.cpuUsage();
  const t = performance.now();
  await sleep(ms);
  const b = machineBusyTicks();
  const own = process.cpuUsage(own0);
  if (a === null || b === null) return null;
  const seconds = (performance.now() - t) / 1000;
  const ownTicks = ((own.user + own.system) / 1e6) * TICKS_PER_SEC;
  return Math.max(0, Math.round(((b - a - ownTicks) / TICKS_PER_SEC / seconds) * 100));
}

export interface CpuUse {
  /** This process, all threads, % of one core. */
  ownPct: number;
  /** The whole machine, % of one core (nproc * 100 = saturated). */
  machinePct: number | null;
  /** machine - this process: kernel work (write-back, network) and other programs. */
  otherPct: number | null;
  /** User-mode CPU of everything but this process: other programs, the noise signal. */
  otherUserPct: number | null;
}

/** Measures the CPU used between the call and stop(): this process, the machine, and the rest. */
export function cpuMeter(): { stop(): CpuUse } {
  const own0 = process.cpuUsage();
  const m0 = machineBusyTicks();
  const u0 = machineUserTicks();
  const t0 = performance.now();
  return {
    stop() {
      const seconds = (performance.now() - t0) / 1000;
      const own = process.cpuUsage(own0);
      const ownPct = Math.round(((own.user + own.system) / 1e6 / seconds) * 100);
      const ownUserPct = (own.user / 1e6 / seconds) * 100;
      const m1 = machineBusyTicks();
      const u1 = machineUserTicks();
      const machinePct = m0 === null || m1 === null ? null : Math.round(((m1 - m0) / TICKS_PER_SEC / seconds) * 100);
      const machineUserPct = u0 === null || u1 === null ? null : ((u1 - u0) / TICKS_PER_SEC / seconds) * 100;
      return {
        ownPct,
        machinePct,
        otherPct: machinePct === null ? null : Math.max(0, machinePct - ownPct),
        otherUserPct: machineUserPct === null ? null : Math.max(0, Math.round(machineUserPct - ownUserPct)),
      };
    },
  };
}

/**
 * Waits (up to `maxSeconds`) until the rest of the machine uses less than `thresholdPct` of
 * one core, measured over 1 s windows. Returns the last measurement (null if unknown).
 */
export async function waitForQuiet(maxSeconds: number, thresholdPct = 15): Promise<number | null> {
  const deadline = performance.now() + maxSeconds * 1000;
  let bg = await backgroundCpuPct(1000);
  let said = false;
  while (bg !== null && bg >= thresholdPct && performance.now() < deadline) {
    if (!said) {
      note(`  the machine is ${bg}% busy with other work; waiting up to ${maxSeconds} s for it to go below ${thresholdPct}%`);
      said = true;
    }
    bg = await backgroundCpuPct(1000);
  }
  if (said) note(`  ${bg !== null && bg < thresholdPct ? 'quiet now' : 'still busy; going on'} (${bg}%)`);
  return bg;
}

/**
 * A positive numeric option `--name` given as text, or `dflt` when absent; with `integer`,
 * only whole numbers are accepted. Throws an error naming the option.
 */
export function positiveOption(name: string, text: string | undefined, dflt: number, integer = false): number {
  if (text === undefined) return dflt;
  const n = Number(text);
  if (integer ? !Number.isSafeInteger(n) || n <= 0 : !Number.isFinite(n) || n <= 0) {
    throw new Error(`--${name} must be a positive ${integer ? 'integer' : 'number'}, got ${text}`);
  }
  return n;
}
