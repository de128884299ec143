/**
 * `npm run bench:resp`: redis-benchmark against ragkv and against a Redis server started
 * here, with the same flags in one run.
 *
 * For each target: start the server on a free port in a temp dir, prefill the keyspace
 * (so every GET hits an existing key), then for each pipeline depth run
 *   redis-benchmark -h 127.0.0.1 -p PORT -t set -d SIZE -c CLIENTS -r KEYSPACE -n N -P P
 * and the same with -t get (SET before GET). Reports ops/s and p50/p99 latency, the server's
 * CPU use and the machine's, a Markdown table on stdout and JSON in bench-results/.
 *
 * Not a test; never run in CI. `--help` lists the options.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  TICKS_PER_SEC,
  positiveOption,
  commandVersion,
  machineBusyTicks,
  machineUserTicks,
  procCpuTicks,
  procUserTicks,
  fmtInt,
  fmtNum,
  fmtRatio,
  freePort,
  machineInfo,
  machineLine,
  makeTempDir,
  markdownTable,
  note,
  phase,
  removeDir,
  repoRoot,
  waitForPort,
  waitForQuiet,
  writeResults,
} from './common.js';

const HELP = `usage: npm run bench:resp -- [options]

  --requests N            requests per test at -P 1 (default 300000; --quick: 50000)
  --requests-pipelined N  requests per test at -P > 1 (default 1000000; --quick: 150000)
                          The defaults give ragkv SET (the slowest test) 10-30 s on a 2-core machine;
                          Redis finishes the same N in a few seconds.
  --quick                 small N, for checking that the benchmark works
  --clients C             redis-benchmark -c (default 50)
  --size BYTES            value size, redis-benchmark -d (default 1024)
  --keyspace K            redis-benchmark -r, and keys prefilled (default 100000)
  --pipelines LIST        pipeline depths, redis-benchmark -P (default 1,16)
  --targets LIST          any of ragkv-fsync, ragkv-commit, redis, redis-aof
                          (default ragkv-fsync,ragkv-commit,redis)
  --ragkv-port PORT       benchmark an already running ragkv on PORT instead of starting one
                          (target "ragkv-external"; durability is whatever it runs with)
  --startup-timeout MS    how long a server may take to accept connections (default 30000)
  --wait-quiet S          before each test, wait up to S seconds for other work on the machine
                          to stop (below 15% of a core) (default 60; 0 = don't wait)
  --keep                  keep the temp data dirs and server logs
  --help
`;

type TargetName = 'ragkv-fsync' | 'ragkv-commit' | 'ragkv-external' | 'redis' | 'redis-aof';

const TARGET_LABEL: Record<TargetName, string> = {
  'ragkv-fsync': 'ragkv --durability fsync (default: ack after the commit batch is fsynced)',
  'ragkv-commit': 'ragkv --durability commit (ack after LMDB commit, fsync left to the OS)',
  'ragkv-external': 'ragkv already running (durability as configured there)',
  redis: "Redis --save '' --appendonly no (no persistence at all)",
  'redis-aof': 'Redis --save \'\' --appendonly yes --appendfsync everysec (fsync once a second)',
};

interface BenchRow {
  target: TargetName;
  test: 'SET' | 'GET';
  pipeline: number;
  requests: number;
  seconds: number;
  opsPerSec: number;
  avgMs: number;
  minMs: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
  /** CPU used by the server process during the test, % of one core. */
  serverCpuPct: number | null;
  /** CPU used by redis-benchmark (sampled every 100 ms, so slightly low), % of one core. */
  clientCpuPct: number | null;
  /** Whole-machine CPU busy during the test, % of one core (nproc*100 = saturated). */
  machineCpuPct: number | null;
  /** machine - server - redis-benchmark: other work on the machine (and unattributed kernel time). */
  otherCpuPct: number | null;
  /** User-mode CPU of other programs (not server, redis-benchmark or this one): the noise signal. */
  otherUserCpuPct: number | null;
  /** CPU used by the rest of the machine during 1 s of quiet just before the test. */
  backgroundCpuPct: number | null;
  /** Runs of this test; it is run again when other work disturbed it. */
  attempts: number;
}

/** User-mode CPU (% of one core) of other programs during a test above which it counts as disturbed. */
const NOISY_PCT = 25;

// ---------------------------------------------------------------- servers

interface Server {
  target: TargetName;
  port: number;
  pid: number | undefined;
  stop(): Promise<void>;
  logFile: string | null;
}

function tail(file: string | null, lines = 20): string {
  if (!file || !existsSync(file)) return '';
  return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
}

async function startProcess(
  target: TargetName,
  cmd: string,
  args: string[],
  port: number,
  dir: string,
  startupTimeoutMs: number,
): Promise<Server> {
  const logFile = path.join(dir, 'server.log');
  const log = createWriteStream(logFile);
  note(`  $ ${cmd} ${args.map((a) => (a === '' ? "''" : a)).join(' ')}`);
  const child: ChildProcess = spawn(cmd, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  let exited = false;
  let exitInfo = '';
  const exitPromise = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = true;
      exitInfo = signal ? `signal ${signal}` : `code ${code}`;
      resolve();
    });
    child.once('error', (err) => {
      exited = true;
      exitInfo = err.message;
      resolve();
    });
  });
  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => {
        if (!exited) {
          note(`  ${target} did not exit within 10 s of SIGTERM; sending SIGKILL`);
          child.kill('SIGKILL');
        }
      }, 10_000);
      await exitPromise;
      clearTimeout(timer);
    }
    await new Promise<void>((r) => log.end(r));
  };
  try {
    await waitForPort(port, startupTimeoutMs, () => !exited);
  } catch (err) {
    await stop();
    throw new Error(
      `${target} did not start (${(err as Error).message}${exitInfo ? `; exited with ${exitInfo}` : ''}). Log tail:\n${tail(logFile)}`,
    );
  }
  return { target, port, pid: child.pid, stop, logFile };
}

async function startTarget(target: TargetName, dir: string, startupTimeoutMs: number, externalPort: number | null): Promise<Server> {
  if (target === 'ragkv-external') {
    if (externalPort === null) throw new Error('ragkv-external needs --ragkv-port');
    await waitForPort(externalPort, startupTimeoutMs);
    return { target, port: externalPort, pid: undefined, stop: async () => {}, logFile: null };
  }
  const port = await freePort();
  if (target === 'redis' || target === 'redis-aof') {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--daemonize', 'no', '--logfile', ''];
    if (target === 'redis') args.push('--appendonly', 'no');
    else args.push('--appendonly', 'yes', '--appendfsync', 'everysec');
    return startProcess(target, 'redis-server', args, port, dir, startupTimeoutMs);
  }
  const durability = target === 'ragkv-fsync' ? 'fsync' : 'commit';
  const args = [
    path.join(repoRoot, 'bin', 'ragkv.js'),
    'start',
    '--data',
    dir,
    '--resp-port',
    String(port),
    '--grpc-port',
    '0',
    '--admin-port',
    '0',
    '--durability',
    durability,
  ];
  return startProcess(target, process.execPath, args, port, dir, startupTimeoutMs);
}

// ---------------------------------------------------------------- prefill over RESP

function bulk(b: Buffer | string): Buffer {
  const buf = typeof b === 'string' ? Buffer.from(b) : b;
  return Buffer.concat([Buffer.from(`$${buf.length}\r\n`), buf, Buffer.from('\r\n')]);
}

/** Key names exactly as redis-benchmark -r writes them: key:__rand_int__ -> key:%012d. */
function benchKey(i: number): string {
  return `key:${String(i).padStart(12, '0')}`;
}

/** SETs key:000000000000 .. key:(keyspace-1) to `size` bytes of 'x', pipelined, checking every reply. */
async function prefill(port: number, keyspace: number, size: number): Promise<void> {
  const sock = net.connect({ port, host: '127.0.0.1' });
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  const value = bulk(Buffer.alloc(size, 'x'));
  const head = Buffer.from('*3\r\n$3\r\nSET\r\n');
  let pending = '';
  let replies = 0;
  let firstError: string | null = null;
  let wake: (() => void) | null = null;
  let sockError: Error | null = null;
  sock.on('data', (chunk: Buffer) => {
    pending += chunk.toString('latin1');
    let idx: number;
    while ((idx = pending.indexOf('\r\n')) >= 0) {
      const line = pending.slice(0, idx);
      pending = pending.slice(idx + 2);
      replies++;
      if (line[0] === '-' && firstError === null) firstError = line;
      else if (line !== '+OK' && line[0] !== '-' && firstError === null) firstError = `unexpected reply ${JSON.stringify(line.slice(0, 80))}`;
    }
    wake?.();
  });
  sock.on('error', (err) => {
    sockError = err;
    wake?.();
  });
  sock.on('close', () => {
    sockError ??= new Error(`prefill: the server closed the connection after ${replies} replies`);
    wake?.();
  });
  const window = 4000;
  const chunk = 500;
  let sent = 0;
  while (replies < keyspace) {
    if (sockError) throw sockError;
    if (firstError) throw new Error(`prefill: server replied ${firstError}`);
    if (sent < keyspace && sent - replies < window) {
      const parts: Buffer[] = [];
      const end = Math.min(keyspace, sent + chunk);
      for (let i = sent; i < end; i++) parts.push(head, bulk(benchKey(i)), value);
      sent = end;
      if (!sock.write(Buffer.concat(parts))) await new Promise((r) => sock.once('drain', r));
      continue;
    }
    await new Promise<void>((r) => (wake = r));
    wake = null;
  }
  if (firstError) throw new Error(`prefill: server replied ${firstError}`);
  sock.removeAllListeners('close');
  sock.end();
}

// ---------------------------------------------------------------- redis-benchmark

function parseSummary(out: string): Pick<BenchRow, 'opsPerSec' | 'avgMs' | 'minMs' | 'p50Ms' | 'p95Ms' | 'p99Ms' | 'maxMs'> {
  const rps = /throughput summary:\s*([\d.]+) requests per second/.exec(out);
  const lat = /avg\s+min\s+p50\s+p95\s+p99\s+max\s*\n\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)/.exec(out);
  if (!rps || !lat) throw new Error(`could not parse redis-benchmark output:\n${out.slice(-2000)}`);
  const n = lat.slice(1).map(Number);
  return { opsPerSec: Number(rps[1]), avgMs: n[0]!, minMs: n[1]!, p50Ms: n[2]!, p95Ms: n[3]!, p99Ms: n[4]!, maxMs: n[5]! };
}

async function runRedisBenchmark(
  server: Server,
  test: 'SET' | 'GET',
  pipeline: number,
  requests: number,
  opts: { clients: number; size: number; keyspace: number; waitQuietSeconds: number },
): Promise<BenchRow> {
  const args = [
    '-h', '127.0.0.1', '-p', String(server.port),
    '-t', test.toLowerCase(),
    '-d', String(opts.size), '-c', String(opts.clients), '-r', String(opts.keyspace),
    '-n', String(requests), '-P', String(pipeline),
  ];
  const background = await waitForQuiet(opts.waitQuietSeconds);
  const done = phase(`${server.target}: redis-benchmark ${args.join(' ')}`);
  const tty = process.stderr.isTTY;
  const child = spawn('redis-benchmark', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let errOut = '';
  let lastProgress = '';
  let lastPrinted = performance.now();
  child.stdout.setEncoding('latin1');
  child.stdout.on('data', (s: string) => {
    out += s;
    // progress lines look like "SET: rps=104800.0 (overall: 104800.0) avg_msec=0.250 (overall: 0.251)\r"
    const all = [...out.slice(-600).matchAll(/[A-Z_]+: rps=[\d.]+ \(overall: [\d.]+\) avg_msec=[\d.]+ \(overall: [\d.]+\)/g)];
    if (all.length) lastProgress = all[all.length - 1]![0];
    if (out.length > 1 << 20) out = out.slice(-(1 << 16));
    const now = performance.now();
    if (lastProgress && tty) process.stderr.write(`\r          ${lastProgress.slice(0, 110).padEnd(110)}`);
    else if (lastProgress && now - lastPrinted > 5000) {
      note(`  ${lastProgress}`);
      lastPrinted = now;
    }
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => (errOut += s));

  const snapshot = () => ({
    server: procCpuTicks(server.pid),
    serverUser: procUserTicks(server.pid),
    machine: machineBusyTicks(),
    machineUser: machineUserTicks(),
    own: process.cpuUsage(),
    t: performance.now(),
  });
  const cpu0 = snapshot();
  let clientTicks: number | null = null;
  let clientUserTicks: number | null = null;
  const sampler = setInterval(() => {
    const t = procCpuTicks(child.pid);
    const u = procUserTicks(child.pid);
    if (t !== null) clientTicks = t;
    if (u !== null) clientUserTicks = u;
  }, 100);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('exit', (c) => resolve(c));
    child.once('error', reject);
  });
  clearInterval(sampler);
  const cpu1 = snapshot();
  if (tty && lastProgress) process.stderr.write('\r' + ' '.repeat(122) + '\r');
  if (code !== 0) throw new Error(`redis-benchmark exited with ${code}: ${errOut.trim()}\n${out.slice(-1000)}`);
  const seconds = (cpu1.t - cpu0.t) / 1000;
  const pct = (a: number | null, b: number | null) =>
    a === null || b === null ? null : Math.round(((b - a) / TICKS_PER_SEC / seconds) * 100);
  const parsed = parseSummary(out.replace(/\r/g, '\n'));
  const row: BenchRow = {
    target: server.target,
    test,
    pipeline,
    requests,
    seconds,
    ...parsed,
    serverCpuPct: pct(cpu0.server, cpu1.server),
    clientCpuPct: clientTicks === null ? null : Math.round((clientTicks / TICKS_PER_SEC / seconds) * 100),
    machineCpuPct: pct(cpu0.machine, cpu1.machine),
    otherCpuPct: null,
    otherUserCpuPct: null,
    backgroundCpuPct: background,
    attempts: 1,
  };
  if (row.machineCpuPct !== null && row.serverCpuPct !== null && row.clientCpuPct !== null) {
    row.otherCpuPct = Math.max(0, row.machineCpuPct - row.serverCpuPct - row.clientCpuPct);
  }
  const machineUser = pct(cpu0.machineUser, cpu1.machineUser);
  const serverUser = pct(cpu0.serverUser, cpu1.serverUser);
  if (machineUser !== null && serverUser !== null && clientUserTicks !== null) {
    const ownUser = (process.cpuUsage(cpu0.own).user / 1e6 / seconds) * 100;
    const clientUser = (clientUserTicks / TICKS_PER_SEC / seconds) * 100;
    row.otherUserCpuPct = Math.max(0, Math.round(machineUser - serverUser - clientUser - ownUser));
  }
  done(
    `${fmtInt(row.opsPerSec)} ops/s, p50 ${row.p50Ms} ms, p99 ${row.p99Ms} ms; CPU server ${row.serverCpuPct ?? '?'}%, ` +
      `redis-benchmark ~${row.clientCpuPct ?? '?'}%, machine ${row.machineCpuPct ?? '?'}% of ${machineInfo().nproc * 100}%` +
      (row.backgroundCpuPct !== null && row.backgroundCpuPct > 20 ? ` (the machine was ${row.backgroundCpuPct}% busy with other work just before)` : ''),
  );
  return row;
}

// ---------------------------------------------------------------- report

function comparisonTable(rows: BenchRow[], ragkv: TargetName, redis: TargetName, pipelines: number[]): string {
  const out: string[][] = [];
  for (const p of pipelines) {
    for (const test of ['SET', 'GET'] as const) {
      const a = rows.find((r) => r.target === ragkv && r.test === test && r.pipeline === p);
      const b = rows.find((r) => r.target === redis && r.test === test && r.pipeline === p);
      if (!a && !b) continue;
      out.push([
        test,
        String(p),
        a ? fmtInt(a.opsPerSec) : 'n/a',
        b ? fmtInt(b.opsPerSec) : 'n/a',
        a && b ? fmtRatio(a.opsPerSec, b.opsPerSec) : 'n/a',
        a ? `${fmtNum(a.p50Ms, 3)} / ${fmtNum(a.p99Ms, 3)}` : 'n/a',
        b ? `${fmtNum(b.p50Ms, 3)} / ${fmtNum(b.p99Ms, 3)}` : 'n/a',
      ]);
    }
  }
  return markdownTable(['test', 'P', 'ragkv ops/s', 'Redis ops/s', 'ragkv/Redis', 'ragkv p50 / p99 ms', 'Redis p50 / p99 ms'], out, 1);
}

function cpuTable(rows: BenchRow[], nproc: number): string {
  return markdownTable(
    ['target', 'test', 'P', 'runs', 'ops/s', 'server CPU %', 'redis-benchmark CPU %', `machine CPU % (of ${nproc * 100})`, 'other %', "others' user %", 'other % 1 s before'],
    rows.map((r) => [
      r.target,
      r.test,
      String(r.pipeline),
      String(r.attempts),
      fmtInt(r.opsPerSec),
      r.serverCpuPct === null ? 'n/a' : String(r.serverCpuPct),
      r.clientCpuPct === null ? 'n/a' : `~${r.clientCpuPct}`,
      r.machineCpuPct === null ? 'n/a' : String(r.machineCpuPct),
      r.otherCpuPct === null ? 'n/a' : `~${r.otherCpuPct}`,
      r.otherUserCpuPct === null ? 'n/a' : `~${r.otherUserCpuPct}`,
      r.backgroundCpuPct === null ? 'n/a' : String(r.backgroundCpuPct),
    ]),
    2,
  );
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      requests: { type: 'string' },
      'requests-pipelined': { type: 'string' },
      quick: { type: 'boolean', default: false },
      clients: { type: 'string', default: '50' },
      size: { type: 'string', default: '1024' },
      keyspace: { type: 'string', default: '100000' },
      pipelines: { type: 'string', default: '1,16' },
      targets: { type: 'string', default: 'ragkv-fsync,ragkv-commit,redis' },
      'ragkv-port': { type: 'string' },
      'startup-timeout': { type: 'string', default: '30000' },
      keep: { type: 'boolean', default: false },
      'wait-quiet': { type: 'string', default: '60' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const int = (name: string, s: string | undefined, dflt: number): number => positiveOption(name, s, dflt, true);
  const requests = int('requests', values.requests, values.quick ? 50_000 : 300_000);
  const requestsPipelined = int('requests-pipelined', values['requests-pipelined'], values.quick ? 150_000 : 1_000_000);
  const clients = int('clients', values.clients, 50);
  const size = int('size', values.size, 1024);
  const keyspace = int('keyspace', values.keyspace, 100_000);
  const waitQuietSeconds = values['wait-quiet'] === '0' ? 0 : int('wait-quiet', values['wait-quiet'], 60);
  const startupTimeoutMs = int('startup-timeout', values['startup-timeout'], 30_000);
  const pipelines = values.pipelines!.split(',').map((p) => int('pipelines', p.trim(), 1));
  const externalPort = values['ragkv-port'] === undefined ? null : int('ragkv-port', values['ragkv-port'], 0);
  let targets = values.targets!.split(',').map((t) => t.trim()) as TargetName[];
  for (const t of targets) {
    if (!(t in TARGET_LABEL)) throw new Error(`unknown target '${t}'; see --help`);
  }
  if (externalPort !== null) targets = ['ragkv-external', ...targets.filter((t) => !t.startsWith('ragkv'))];

  const benchVersion = commandVersion('redis-benchmark');
  if (!benchVersion) {
    process.stderr.write('redis-benchmark not found. Install it: sudo apt-get install -y redis-tools (or redis-server)\n');
    return 1;
  }
  const serverVersion = commandVersion('redis-server');
  if (targets.some((t) => t.startsWith('redis')) && !serverVersion) {
    process.stderr.write('redis-server not found. Install it: sudo apt-get install -y redis-server\n');
    return 1;
  }
  if (targets.some((t) => t === 'ragkv-fsync' || t === 'ragkv-commit') && !existsSync(path.join(repoRoot, 'dist', 'src', 'cli', 'main.js'))) {
    process.stderr.write('ragkv is not built (dist/src/cli/main.js missing): run `npx tsc -p .` first, or pass --targets redis\n');
    return 1;
  }

  const machine = machineInfo();
  note(`machine: ${machineLine(machine)}`);
  note(`tools: ${benchVersion}; ${serverVersion ?? 'redis-server not used'}`);
  note(
    `plan: targets ${targets.join(', ')}; P in {${pipelines.join(', ')}}; SET then GET; ` +
      `-n ${requests} at P=1, ${requestsPipelined} at P>1; -c ${clients} -d ${size} -r ${keyspace}`,
  );
  if (machine.nproc <= 2) {
    note(`note: only ${machine.nproc} CPUs; redis-benchmark itself needs about one core, so the server gets at most the other one`);
  }

  const rows: BenchRow[] = [];
  const failures: string[] = [];
  const startedAll = performance.now();
  for (const target of targets) {
    const dir = makeTempDir(target);
    const doneStart = phase(`${target}: start (${TARGET_LABEL[target]}), data in ${dir}`);
    let server: Server;
    try {
      server = await startTarget(target, dir, startupTimeoutMs, externalPort);
    } catch (err) {
      // one target failing to start should not cost the others their run
      const message = (err as Error).message;
      note(`${target}: FAILED to start: ${message}`);
      failures.push(`${target}: failed to start: ${message.split('\n')[0]}`);
      if (!values.keep) removeDir(dir);
      continue;
    }
    doneStart(`listening on port ${server.port}, pid ${server.pid ?? 'external'}`);
    try {
      const donePrefill = phase(`${target}: prefill ${fmtInt(keyspace)} keys of ${size} bytes (pipelined SET)`);
      await prefill(server.port, keyspace, size);
      donePrefill();
      for (const p of pipelines) {
        const n = p === 1 ? requests : requestsPipelined;
        for (const test of ['SET', 'GET'] as const) {
          // a test during which other work took a lot of CPU is run again (at most 3 runs)
          for (let attempt = 1; ; attempt++) {
            const row = await runRedisBenchmark(server, test, p, n, { clients, size, keyspace, waitQuietSeconds });
            row.attempts = attempt;
            if ((row.otherUserCpuPct ?? 0) > NOISY_PCT && attempt < 3) {
              note(`  other programs used ~${row.otherUserCpuPct}% of a core during this test; running it again`);
              continue;
            }
            rows.push(row);
            break;
          }
        }
      }
    } catch (err) {
      const message = (err as Error).message;
      note(`${target}: FAILED: ${message}`);
      failures.push(`${target}: ${message.split('\n')[0]}`);
    } finally {
      const doneStop = phase(`${target}: stop`);
      await server.stop();
      doneStop();
      if (values.keep) note(`  kept ${dir}`);
      else removeDir(dir);
    }
  }
  const totalSeconds = (performance.now() - startedAll) / 1000;

  // ---- report
  const lines: string[] = [];
  lines.push(`## RESP benchmark: ragkv vs Redis (redis-benchmark)`, '');
  lines.push(`- date: ${machine.date}; total run time ${totalSeconds.toFixed(0)} s`);
  lines.push(`- machine: ${machineLine(machine)}`);
  lines.push(`- ${benchVersion}; ${serverVersion ?? ''}`);
  lines.push(
    `- command per test: \`redis-benchmark -h 127.0.0.1 -p PORT -t set|get -d ${size} -c ${clients} -r ${keyspace} -n N -P P\`` +
      ` with N = ${requests} at P=1 and ${requestsPipelined} at P>1; SET runs before GET; ${fmtInt(keyspace)} keys prefilled, so every GET hits`,
  );
  lines.push(`- redis-benchmark runs on the same machine and uses about one core itself (see the CPU table): with ${machine.nproc} CPUs the server gets at most the rest.`);
  lines.push(`- durability:`);
  for (const t of targets) lines.push(`  - \`${t}\`: ${TARGET_LABEL[t]}`);
  if (targets.includes('redis')) {
    lines.push(
      `  - Redis here never touches the disk. The closest Redis setting to ragkv --durability fsync is \`--appendonly yes --appendfsync always\`; ` +
        `\`--appendfsync everysec\` (target \`redis-aof\`) may lose the last second of writes.`,
    );
  }
  lines.push('');
  const redisTarget: TargetName | undefined = targets.includes('redis') ? 'redis' : targets.includes('redis-aof') ? 'redis-aof' : undefined;
  const ragkvTargets = targets.filter((t) => t.startsWith('ragkv'));
  if (redisTarget && ragkvTargets.length) {
    for (const rt of ragkvTargets) {
      lines.push(`### ${TARGET_LABEL[rt]} vs ${TARGET_LABEL[redisTarget]}`, '');
      lines.push(comparisonTable(rows, rt, redisTarget, pipelines), '');
    }
  } else {
    lines.push(`### Results`, '');
    lines.push(
      markdownTable(
        ['target', 'test', 'P', 'ops/s', 'p50 ms', 'p99 ms', 'avg ms', 'max ms'],
        rows.map((r) => [r.target, r.test, String(r.pipeline), fmtInt(r.opsPerSec), fmtNum(r.p50Ms, 3), fmtNum(r.p99Ms, 3), fmtNum(r.avgMs, 3), fmtNum(r.maxMs, 3)]),
        2,
      ),
      '',
    );
  }
  if (failures.length) {
    lines.push(`### Failures`, '', ...failures.map((f) => `- ${f}`), '');
  }
  lines.push(`### CPU during each test (% of one core)`, '');
  lines.push(cpuTable(rows, machine.nproc), '');
  lines.push(
    `"other" = machine - server - redis-benchmark: kernel network time not charged to either process, plus anything else running; ` +
      `"others' user" is the user-mode CPU of other programs only; a test during which it exceeds ${NOISY_PCT}% is run again (up to 3 runs). ` +
      `"other 1 s before" is the machine's load while this program sat idle just before the test: well above 0 means other work shared the CPUs and the figures are noisy.`,
    '',
  );
  const clientBound = rows.filter((r) => (r.clientCpuPct ?? 0) >= 85);
  if (clientBound.length) {
    lines.push(
      `**Client-bound:** redis-benchmark used about a full core in ${clientBound.map((r) => `${r.target} ${r.test} P=${r.pipeline}`).join(', ')}: ` +
        `there the client, not the server, set the pace, so the server could do more than shown.`,
      '',
    );
  }
  const noisy = rows.filter((r) => (r.otherUserCpuPct ?? 0) > NOISY_PCT);
  if (noisy.length) {
    lines.push(
      `**Warning:** other programs were using the machine during ${noisy.length} of ${rows.length} tests ` +
        `(${noisy.map((r) => `${r.target} ${r.test} P=${r.pipeline}`).join(', ')}): re-run on a quiet machine for figures to rely on.`,
      '',
    );
  }
  const file = writeResults('resp', {
    kind: 'bench:resp',
    machine,
    tools: { redisBenchmark: benchVersion, redisServer: serverVersion },
    options: { requests, requestsPipelined, clients, size, keyspace, pipelines, targets },
    targets: Object.fromEntries(targets.map((t) => [t, TARGET_LABEL[t]])),
    rows,
    failures,
  });
  lines.push(`JSON: ${path.relative(repoRoot, file)}`);
  process.stdout.write(`\n${lines.join('\n')}\n`);
  return failures.length ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench:resp failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
