/**
 * `ragkv bench`: runs workloads against ragkv and its peers (Redis, etcd), one target at a
 * time: starts the target's servers (installing Debian packages when missing), loads the data
 * set, runs each workload, stops the servers; then writes JSON, Markdown and SVG reports under
 * `--out` and nowhere else (the tracked docs/bench-loadgen.svg only with `--copy-chart`).
 * With `--endpoint` it drives an already running server instead.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ArgvReader } from '../../src/common/argv.js';
import { ALL_WORKLOAD_NAMES } from '../loadgen/workloads.js';
import type { RunMeasurement } from '../loadgen/multiproc.js';
import type { BenchReport } from '../loadgen/report.js';
import type { TargetKind, TargetSpec } from '../loadgen/targets/spec.js';
import type { PeerKind } from '../loadgen/peers/types.js';

/** Target names accepted by --targets and the peer each one starts. */
export const BENCH_TARGETS: Record<string, { peer: PeerKind; pick?: 'resp' | 'grpc' }> = {
  'ragkv-resp': { peer: 'ragkv', pick: 'resp' },
  'ragkv-grpc': { peer: 'ragkv', pick: 'grpc' },
  'ragkv-cluster': { peer: 'ragkv-cluster', pick: 'resp' },
  redis: { peer: 'redis' },
  'redis-replicated': { peer: 'redis-replicated' },
  'redis-always': { peer: 'redis-always' },
  etcd: { peer: 'etcd' },
};
const TARGET_KINDS: readonly TargetKind[] = ['ragkv-resp', 'ragkv-grpc', 'redis', 'etcd'];

export interface BenchArgs {
  workloads: string[];
  targets: string[];
  endpoints: string[] | null;
  targetKind: TargetKind | null;
  concurrency: number;
  ratePerSec: number | null;
  durationMs: number | undefined;
  ops: number | undefined;
  warmupMs: number;
  records: number;
  processes: number;
  seed: number;
  verify: boolean;
  outDir: string;
  /** Also copy the chart here (e.g. docs/bench-loadgen.svg); null: only under outDir. */
  copyChart: string | null;
  workDir: string | null;
  ragkvArgs: string[];
}

export class UsageError extends Error {}

export function benchHelp(): string {
  return `ragkv bench: YCSB and RAG workloads against ragkv, Redis and etcd, side by side

Usage:
  ragkv bench [options]            start each target in turn, run, stop it
  ragkv bench --endpoint host:port --target-kind redis [options]   use a running server
  npm run bench -- [options]

Options:
  --workload LIST      comma-separated, default ycsb-b,ycsb-c,rag-1; any of
                       ${ALL_WORKLOAD_NAMES.join(', ')}
  --targets LIST       comma-separated, default ragkv-resp,redis,etcd; any of
                       ${Object.keys(BENCH_TARGETS).join(', ')}
  --endpoint LIST      host:port of a running server (several for etcd members or a Redis
                       primary followed by replicas); replaces --targets
  --target-kind KIND   with --endpoint: ${TARGET_KINDS.join(', ')}
  --concurrency N      per load process: closed-loop workers, or the bound on outstanding
                       operations in open loop (default 16)
  --rate N             open loop at N operations/s in total (latency from the intended send time)
  --duration D         measured time per workload, e.g. 20s, 500ms, 2m (default 10s)
  --ops N              measured operations per workload instead of (or as well as) --duration
  --warmup D           warm-up before measuring, not recorded (default 2s)
  --records N          data set size: YCSB records, RAG-1 chunks, RAG-2 values (default 100000)
  --processes K        load-generator processes, each with its own connection (default 1)
  --seed N             seed of data sets and operation sequences (default 1)
  --verify             check every value read against its checksum of key and version
  --out DIR            result directory (default bench-results); nothing is written elsewhere
                       unless --copy-chart says so
  --copy-chart FILE    also copy the chart to FILE, e.g. docs/bench-loadgen.svg to refresh
                       the chart the docs show
  --work-dir DIR       where started servers keep their data (default: a temporary directory)
  --ragkv-arg ARG      extra flag for 'ragkv start' (repeatable), e.g. --ragkv-arg=--durability=commit
  -h, --help           this help

Results: <out>/loadgen-<time>.json, .md (tables) and .svg (chart); the table is also printed.
`;
}

/** Parses `10s`, `500ms`, `2m`, or a bare number of seconds, into milliseconds. */
export function parseDurationMs(text: string, name: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!m) throw new UsageError(`${name} '${text}' is not a duration like 20s, 500ms or 2m`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return unit === 'ms' ? n : unit === 's' ? n * 1000 : n * 60_000;
}

function positiveInt(text: string, name: string, min = 1): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`${name} must be an integer >= ${min}, got '${text}'`);
  return n;
}

function list(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** Parses the arguments after `ragkv bench`; throws UsageError with a precise message. */
export function parseBenchArgs(argv: string[]): BenchArgs {
  const a: BenchArgs = {
    workloads: ['ycsb-b', 'ycsb-c', 'rag-1'],
    targets: ['ragkv-resp', 'redis', 'etcd'],
    endpoints: null,
    targetKind: null,
    concurrency: 16,
    ratePerSec: null,
    durationMs: undefined,
    ops: undefined,
    warmupMs: 2000,
    records: 100_000,
    processes: 1,
    seed: 1,
    verify: false,
    outDir: 'bench-results',
    copyChart: null,
    workDir: null,
    ragkvArgs: [],
  };
  const r = new ArgvReader(argv, (message) => new UsageError(message));
  const take = (): string => r.value();
  while (r.next()) {
    switch (r.name) {
      case '--workload':
      case '--workloads':
        a.workloads = list(take());
        for (const w of a.workloads) {
          if (!ALL_WORKLOAD_NAMES.includes(w)) throw new UsageError(`unknown workload '${w}'; one of ${ALL_WORKLOAD_NAMES.join(', ')}`);
        }
        break;
      case '--targets':
      case '--target':
        a.targets = list(take());
        for (const t of a.targets) {
          if (!(t in BENCH_TARGETS)) throw new UsageError(`unknown target '${t}'; one of ${Object.keys(BENCH_TARGETS).join(', ')}`);
        }
        break;
      case '--endpoint':
      case '--endpoints':
        a.endpoints = list(take());
        break;
      case '--target-kind': {
        const k = take();
        if (!(TARGET_KINDS as readonly string[]).includes(k)) throw new UsageError(`unknown --target-kind '${k}'; one of ${TARGET_KINDS.join(', ')}`);
        a.targetKind = k as TargetKind;
        break;
      }
      case '--concurrency':
        a.concurrency = positiveInt(take(), '--concurrency');
        break;
      case '--rate': {
        const text = take();
        const r = Number(text);
        if (!(r > 0) || !Number.isFinite(r)) throw new UsageError(`--rate must be a positive number of operations per second, got '${text}'`);
        a.ratePerSec = r;
        break;
      }
      case '--duration':
        a.durationMs = parseDurationMs(take(), '--duration');
        if (!(a.durationMs > 0)) throw new UsageError('--duration must be more than 0');
        break;
      case '--ops':
        a.ops = positiveInt(take(), '--ops');
        break;
      case '--warmup':
        a.warmupMs = parseDurationMs(take(), '--warmup');
        break;
      case '--records':
        a.records = positiveInt(take(), '--records');
        break;
      case '--processes':
        a.processes = positiveInt(take(), '--processes');
        break;
      case '--seed':
        a.seed = positiveInt(take(), '--seed', 0);
        break;
      case '--verify':
        a.verify = true;
        break;
      case '--out':
        a.outDir = take();
        break;
      case '--copy-chart':
        a.copyChart = take();
        break;
      case '--work-dir':
        a.workDir = take();
        break;
      case '--ragkv-arg':
        a.ragkvArgs.push(r.value(true)); // passed through: may itself look like an option
        break;
      default:
        throw new UsageError(`unknown option '${r.raw}' (see ragkv bench --help)`);
    }
  }
  if (a.workloads.length === 0) throw new UsageError('--workload needs at least one workload');
  if (a.durationMs === undefined && a.ops === undefined) a.durationMs = 10_000;
  if (a.endpoints !== null) {
    if (a.endpoints.length === 0) throw new UsageError('--endpoint needs host:port');
    if (a.targetKind === null) throw new UsageError(`--endpoint needs --target-kind (${TARGET_KINDS.join(', ')})`);
  } else if (a.targetKind !== null) {
    throw new UsageError('--target-kind goes with --endpoint');
  }
  if (a.ops !== undefined && a.ops < a.processes) throw new UsageError(`--ops ${a.ops} is fewer than one operation per process (--processes ${a.processes})`);
  return a;
}

/** Which initial data set a workload needs: workloads sharing one need to load it once per target. */
function dataSet(workload: string): string {
  return workload.startsWith('ycsb-') ? 'ycsb' : workload.replace(/-uniform$/, '');
}

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

/** Entry point of `ragkv bench`; resolves to the exit code. */
export async function benchMain(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(benchHelp());
    return 0;
  }
  let args: BenchArgs;
  try {
    args = parseBenchArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`ragkv bench: ${err.message}\n`);
    return 2;
  }
  // Loaded here: --help and usage errors need none of this.
  const { runMultiProcess } = await import('../loadgen/multiproc.js');
  const { ProgressLine } = await import('../loadgen/progress.js');
  const { machineInfo, markdownTable, writeReport } = await import('../loadgen/report.js');

  const report: BenchReport = {
    tool: 'ragkv bench',
    startedAt: new Date().toISOString(),
    command: `ragkv bench ${argv.join(' ')}`.trim(),
    machine: machineInfo(),
    targets: [],
    runs: [],
    failures: [],
  };
  const ownWorkDir = args.workDir === null;
  const workDir = args.workDir ?? mkdtempSync(path.join(os.tmpdir(), 'ragkv-bench-'));

  let interrupted = false;
  const onSignal = (): void => {
    if (interrupted) process.exit(130);
    interrupted = true;
    log('ragkv bench: interrupted; stopping the servers it started (again to exit at once)');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  type Job = { name: string; start: () => Promise<{ spec: TargetSpec; describe: string; serverPids: number[]; stop: () => Promise<void> }> };
  const jobs: Job[] = [];
  if (args.endpoints) {
    const spec: TargetSpec = { kind: args.targetKind!, endpoints: args.endpoints, name: `${args.targetKind}@${args.endpoints[0]}` };
    jobs.push({ name: spec.name, start: async () => ({ spec, describe: `already running at ${args.endpoints!.join(', ')} (started outside ragkv bench)`, serverPids: [], stop: async () => {} }) });
  } else {
    const { startPeer } = await import('../loadgen/peers/index.js');
    for (const t of args.targets) {
      const { peer, pick } = BENCH_TARGETS[t]!;
      jobs.push({
        name: t,
        start: async () => {
          const handle = await startPeer(peer, { workDir: path.join(workDir, t), log, ragkvArgs: args.ragkvArgs });
          let spec = handle.spec;
          if (pick) {
            if (!handle.specs) throw new Error(`peer ${peer} has no ${pick} target`);
            spec = handle.specs[pick];
          }
          return { spec: { ...spec, name: t }, describe: handle.describe, serverPids: handle.serverPids, stop: () => handle.stop() };
        },
      });
    }
  }

  const expectedInserts =
    args.ops !== undefined ? Math.ceil(args.ops * 0.05 * 2) : args.ratePerSec !== null && args.durationMs ? Math.ceil((args.ratePerSec * (args.durationMs + args.warmupMs) / 1000) * 0.05 * 2) : undefined;

  for (const job of jobs) {
    if (interrupted) break;
    log(`== ${job.name}: starting`);
    let started: Awaited<ReturnType<Job['start']>>;
    try {
      started = await job.start();
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      log(`== ${job.name}: could not start: ${message}`);
      for (const w of args.workloads) report.failures.push({ target: job.name, workload: w, error: `start failed: ${message}` });
      continue;
    }
    const loaded = new Set<string>();
    let describeTarget = started.describe;
    try {
      for (const workload of args.workloads) {
        if (interrupted) break;
        const needsLoad = !loaded.has(dataSet(workload));
        const progress = new ProgressLine({ label: `${job.name} ${workload}`, ...(args.durationMs !== undefined ? { totalMs: args.durationMs } : {}), ...(args.ops !== undefined ? { totalOps: args.ops } : {}) });
        try {
          const params = { records: args.records, seed: args.seed, verify: args.verify, ...(expectedInserts !== undefined ? { expectedInserts } : {}) };
          const m: RunMeasurement = await runMultiProcess({
            spec: started.spec,
            workload,
            params,
            processes: args.processes,
            concurrency: args.concurrency,
            ratePerSec: args.ratePerSec,
            ...(args.durationMs !== undefined ? { durationMs: args.durationMs } : {}),
            ...(args.ops !== undefined ? { ops: args.ops } : {}),
            warmupMs: args.warmupMs,
            load: needsLoad,
            serverPids: started.serverPids,
            onProgress: (p) => progress.update(p),
          });
          loaded.add(dataSet(workload));
          describeTarget = `${started.describe}. Client: ${m.targetDescribe}`;
          const l = m.latency.all;
          progress.finish(
            `${job.name} ${workload}: ${Math.round(m.throughputOpsPerS).toLocaleString('en-US')} ops/s, p50 ${(l.p50Us / 1000).toFixed(3)} ms, p99 ${(l.p99Us / 1000).toFixed(3)} ms, errors ${m.errors}` +
              (m.load ? `; loaded ${m.load.ops} in ${m.load.seconds.toFixed(1)}s${m.load.errors ? ` (${m.load.errors} errors)` : ''}` : '') +
              (m.verify ? `; verify: ${m.verify.mismatches} mismatches of ${m.verify.checkedValues}` : '') +
              (m.bottleneck.reasons.length ? `; NOTE: ${m.bottleneck.reasons.join('; ')}` : ''),
          );
          report.runs.push(m);
        } catch (err) {
          progress.finish();
          const message = err instanceof Error ? err.message : String(err);
          log(`== ${job.name} ${workload}: failed: ${message}`);
          report.failures.push({ target: job.name, workload, error: message });
        }
      }
    } finally {
      report.targets.push({ name: job.name, describe: describeTarget });
      log(`== ${job.name}: stopping`);
      await started.stop().catch((err: unknown) => log(`== ${job.name}: stop failed: ${err instanceof Error ? err.message : String(err)}`));
    }
  }
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  if (ownWorkDir) rmSync(workDir, { recursive: true, force: true });

  const files = writeReport(report, path.resolve(args.outDir), args.copyChart === null ? null : path.resolve(args.copyChart));
  process.stdout.write(markdownTable(report.runs));
  log(`results: ${files.json}\n         ${files.md}\n         ${files.svg}${files.chartCopy ? `\n         ${files.chartCopy} (copy of the chart)` : ''}`);
  if (args.copyChart !== null && files.chartCopy === null) log(`no run succeeded: the chart was not copied to ${args.copyChart}`);
  if (report.failures.length > 0) {
    log(`${report.failures.length} run(s) failed:`);
    for (const f of report.failures) log(`  ${f.workload} on ${f.target}: ${f.error.split('\n')[0]}`);
  }
  return report.failures.length > 0 || interrupted ? 1 : 0;
}
