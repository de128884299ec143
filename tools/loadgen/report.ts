/**
 * Reports of `ragkv bench`: one JSON file per run under the output directory, a Markdown table
 * of ragkv / peer ratios, and a hand-written SVG chart (throughput per workload and target,
 * and latency percentiles). The chart is copied elsewhere (docs/bench-loadgen.svg, for the
 * docs to link) only when the caller names the copy.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { RunMeasurement } from './multiproc.js';

export interface MachineInfo {
  nproc: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  os: string;
  redis: string | null;
  etcd: string | null;
}

export interface BenchReport {
  tool: 'ragkv bench';
  /** ISO time the run started. */
  startedAt: string;
  command: string;
  machine: MachineInfo;
  /** Each server that was benchmarked: how it ran and how durable its writes were. */
  targets: { name: string; describe: string }[];
  runs: RunMeasurement[];
  /** Runs that failed, with why. */
  failures: { target: string; workload: string; error: string }[];
}

function firstLine(cmd: string, args: string[]): string | null {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0]!.trim();
  } catch {
    return null;
  }
}

/** Facts about this machine for the report. */
export function machineInfo(): MachineInfo {
  let cpuModel = os.cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^Model name:\s*(.+)$/m.exec(execFileSync('lscpu', { encoding: 'utf8' }));
    if (m) cpuModel = m[1]!.trim();
  } catch {
    // lscpu missing: keep os.cpus()
  }
  let osName = `${os.type()} ${os.release()}`;
  try {
    const m = /^PRETTY_NAME="?([^"\n]+)"?$/m.exec(readFileSync('/etc/os-release', 'utf8'));
    if (m) osName = `${m[1]} (${os.release()})`;
  } catch {
    // not Linux
  }
  const redis = firstLine('redis-server', ['--version']);
  const etcd = firstLine('etcd', ['--version']);
  return {
    nproc: os.availableParallelism(),
    cpuModel,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    os: osName,
    redis: redis ? (/v=(\S+)/.exec(redis)?.[1] ?? redis) : null,
    etcd: etcd ? (/Version:\s*(\S+)/.exec(etcd)?.[1] ?? etcd) : null,
  };
}

// ---------------------------------------------------------------- formatting

/** Microseconds as milliseconds with sensible precision. */
export function fmtMs(us: number): string {
  if (!Number.isFinite(us)) return 'n/a';
  const ms = us / 1000;
  return ms < 1 ? ms.toFixed(3) : ms < 10 ? ms.toFixed(2) : ms.toFixed(1);
}

function fmtInt(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a';
}

/** a / b as `1.23x`, n/a when undefined. */
export function fmtRatio(a: number, b: number): string {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return 'n/a';
  return `${(a / b).toFixed(2)}x`;
}

const isOurs = (target: string): boolean => target.startsWith('ragkv');

/** Workloads in first-seen order, each with its runs in first-seen target order. */
function byWorkload(runs: RunMeasurement[]): Map<string, RunMeasurement[]> {
  const out = new Map<string, RunMeasurement[]>();
  for (const r of runs) {
    const list = out.get(r.workload) ?? [];
    list.push(r);
    out.set(r.workload, list);
  }
  return out;
}

/**
 * The side-by-side table. Ratios compare the first ragkv target of each workload ("ours")
 * with each peer: throughput ours / peer (> 1: ragkv faster), latency ours / peer (< 1: ragkv
 * lower).
 */
export function markdownTable(runs: RunMeasurement[]): string {
  const lines = [
    '| workload | target | ops/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | ours/peer ops/s | ours/peer p50 | ours/peer p99 |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const [workload, list] of byWorkload(runs)) {
    const ours = list.find((r) => isOurs(r.target));
    for (const r of list) {
      const l = r.latency.all;
      const peer = ours && !isOurs(r.target);
      const errors = r.errors === 0 ? '0' : `${r.errors} (${Object.entries(r.errorsByKind).map(([k, n]) => `${k}: ${n}`).join(', ')})`;
      lines.push(
        `| ${workload} | ${r.target} | ${fmtInt(r.throughputOpsPerS)} | ${fmtMs(l.p50Us)} | ${fmtMs(l.p90Us)} | ${fmtMs(l.p99Us)} | ${fmtMs(l.p999Us)} | ${fmtMs(l.maxUs)} | ${errors} | ` +
          (peer
            ? `${fmtRatio(ours.throughputOpsPerS, r.throughputOpsPerS)} | ${fmtRatio(ours.latency.all.p50Us, l.p50Us)} | ${fmtRatio(ours.latency.all.p99Us, l.p99Us)} |`
            : '— | — | — |'),
      );
    }
  }
  return lines.join('\n') + '\n';
}

/** Per-operation-type latencies, one row per workload, target and operation type. */
export function markdownOpTable(runs: RunMeasurement[]): string {
  const lines = ['| workload | target | op | count | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |', '|---|---|---|---:|---:|---:|---:|---:|---:|'];
  for (const r of runs) {
    for (const [op, l] of Object.entries(r.latency.byOp)) {
      lines.push(`| ${r.workload} | ${r.target} | ${op} | ${fmtInt(l.count)} | ${fmtMs(l.p50Us)} | ${fmtMs(l.p90Us)} | ${fmtMs(l.p99Us)} | ${fmtMs(l.p999Us)} | ${fmtMs(l.maxUs)} |`);
    }
  }
  return lines.join('\n') + '\n';
}

/** CPU, verification and bottleneck facts per run. */
export function markdownRunNotes(runs: RunMeasurement[]): string {
  const lines = [
    '| workload | target | processes x concurrency | client CPU s (per process: core share / event-loop use) | server CPU s (cores) | verify mismatches | load generator bottleneck |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const r of runs) {
    const server = r.serverCpuS === null || !r.serverWindowS ? 'n/a' : `${r.serverCpuS.toFixed(1)} (${(r.serverCpuS / r.serverWindowS).toFixed(2)})`;
    const verify = r.verify ? `${r.verify.mismatches} of ${fmtInt(r.verify.checkedValues)}` : 'not verified';
    const bottleneck = r.bottleneck.reasons.length === 0 ? 'no' : `${r.bottleneck.loadGenerator ? 'YES' : 'no'}: ${r.bottleneck.reasons.join('; ')}`;
    const mode = r.mode === 'open' ? `, open loop ${fmtInt(r.ratePerSec ?? 0)}/s` : '';
    lines.push(
      `| ${r.workload} | ${r.target} | ${r.processes} x ${r.concurrencyPerProcess}${mode} | ${r.clientCpuS.toFixed(1)} (${r.clientCpuShare.map((s, i) => `${s.toFixed(2)}/${(r.clientEventLoopUtilization[i] ?? NaN).toFixed(2)}`).join(', ')}) | ${server} | ${verify} | ${bottleneck} |`,
    );
  }
  return lines.join('\n') + '\n';
}

/** The full Markdown summary of a report. */
export function markdownReport(report: BenchReport): string {
  const m = report.machine;
  const parts = [
    `# ragkv bench, ${report.startedAt}`,
    '',
    `Command: \`${report.command}\``,
    '',
    `Machine: ${m.nproc} cores (${m.cpuModel}), ${m.memoryGiB} GiB, ${m.os}, Node ${m.node}, Redis ${m.redis ?? 'n/a'}, etcd ${m.etcd ?? 'n/a'}`,
    '',
    '## Targets',
    '',
    ...report.targets.map((t) => `- **${t.name}**: ${t.describe}`),
    '',
    '## Results',
    '',
    markdownTable(report.runs),
    '## Latency by operation',
    '',
    markdownOpTable(report.runs),
    '## CPU, verification, bottleneck',
    '',
    markdownRunNotes(report.runs),
  ];
  if (report.failures.length > 0) {
    parts.push('## Failed runs', '', ...report.failures.map((f) => `- ${f.workload} on ${f.target}: ${f.error.split('\n')[0]}`), '');
  }
  return parts.join('\n');
}

// ---------------------------------------------------------------- SVG

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#17becf'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Round numbers for a linear axis from 0 to at least `max`. */
export function niceTicks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let v = 0; v < max + step * 0.999; v += step) ticks.push(v);
  return ticks;
}

/**
 * Two panels: throughput bars grouped by workload (one bar per target), and latency on a log
 * axis (bar to p99, darker bar to p50, a tick at p99.9) in the same grouping.
 */
export function svgChart(runs: RunMeasurement[], title: string): string {
  const groups = [...byWorkload(runs)];
  const targets = [...new Set(runs.map((r) => r.target))];
  const color = (t: string): string => PALETTE[targets.indexOf(t) % PALETTE.length]!;
  const width = 960;
  const left = 80;
  const right = 20;
  const panelH = 260;
  const top1 = 70;
  const top2 = top1 + panelH + 80;
  const height = top2 + panelH + 60;
  const plotW = width - left - right;
  const groupW = plotW / Math.max(1, groups.length);
  const barW = Math.min(48, (groupW * 0.8) / Math.max(1, targets.length));
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="16" font-weight="bold">${esc(title)}</text>`,
  );
  // Legend.
  let lx = left;
  for (const t of targets) {
    out.push(`<rect x="${lx}" y="36" width="12" height="12" fill="${color(t)}"/><text x="${lx + 16}" y="46">${esc(t)}</text>`);
    lx += 30 + t.length * 7;
  }
  const barX = (gi: number, ti: number, n: number): number => left + gi * groupW + groupW / 2 - (n * barW) / 2 + ti * barW;

  // Panel 1: throughput.
  const maxOps = Math.max(1, ...runs.map((r) => r.throughputOpsPerS));
  const ticks = niceTicks(maxOps);
  const top = ticks[ticks.length - 1]!;
  const y1 = (v: number): number => top1 + panelH - (v / top) * panelH;
  out.push(`<text x="${left}" y="${top1 - 8}" font-weight="bold">Throughput (operations per second, higher is better)</text>`);
  for (const t of ticks) {
    out.push(`<line x1="${left}" x2="${width - right}" y1="${y1(t)}" y2="${y1(t)}" stroke="#ddd"/>`);
    out.push(`<text x="${left - 6}" y="${y1(t) + 4}" text-anchor="end">${esc(fmtInt(t))}</text>`);
  }
  for (const [gi, [workload, list]] of groups.entries()) {
    for (const r of list) {
      const ti = list.indexOf(r);
      const x = barX(gi, ti, list.length);
      const y = y1(r.throughputOpsPerS);
      out.push(`<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(top1 + panelH - y).toFixed(1)}" fill="${color(r.target)}"><title>${esc(`${workload} ${r.target}: ${fmtInt(r.throughputOpsPerS)} ops/s`)}</title></rect>`);
      out.push(`<text x="${(x + barW / 2 - 1).toFixed(1)}" y="${(y - 4).toFixed(1)}" text-anchor="middle" font-size="10">${esc(compact(r.throughputOpsPerS))}</text>`);
    }
    out.push(`<text x="${left + gi * groupW + groupW / 2}" y="${top1 + panelH + 18}" text-anchor="middle" font-weight="bold">${esc(workload)}</text>`);
  }
  out.push(`<line x1="${left}" x2="${width - right}" y1="${top1 + panelH}" y2="${top1 + panelH}" stroke="#333"/>`);

  // Panel 2: latency, log scale in microseconds.
  const lat = runs.flatMap((r) => [r.latency.all.p50Us, r.latency.all.p999Us, r.latency.all.p99Us]).filter((v) => Number.isFinite(v) && v > 0);
  const lo = 10 ** Math.floor(Math.log10(Math.max(1, Math.min(...lat, 1e9))));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(10, ...lat)));
  const y2 = (us: number): number => top2 + panelH - ((Math.log10(Math.max(lo, us)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * panelH;
  out.push(`<text x="${left}" y="${top2 - 8}" font-weight="bold">Latency, log scale (light bar: p99, dark bar: p50, black tick: p99.9; lower is better)</text>`);
  for (let v = lo; v <= hi * 1.0001; v *= 10) {
    out.push(`<line x1="${left}" x2="${width - right}" y1="${y2(v)}" y2="${y2(v)}" stroke="#ddd"/>`);
    out.push(`<text x="${left - 6}" y="${y2(v) + 4}" text-anchor="end">${esc(v >= 1e6 ? `${v / 1e6} s` : v >= 1000 ? `${v / 1000} ms` : `${v} µs`)}</text>`);
  }
  for (const [gi, [workload, list]] of groups.entries()) {
    for (const r of list) {
      const ti = list.indexOf(r);
      const x = barX(gi, ti, list.length);
      const base = top2 + panelH;
      const l = r.latency.all;
      if (!Number.isFinite(l.p50Us)) continue;
      const w = (barW - 2).toFixed(1);
      out.push(`<rect x="${x.toFixed(1)}" y="${y2(l.p99Us).toFixed(1)}" width="${w}" height="${(base - y2(l.p99Us)).toFixed(1)}" fill="${color(r.target)}" fill-opacity="0.35"><title>${esc(`${workload} ${r.target}: p99 ${fmtMs(l.p99Us)} ms`)}</title></rect>`);
      out.push(`<rect x="${x.toFixed(1)}" y="${y2(l.p50Us).toFixed(1)}" width="${w}" height="${(base - y2(l.p50Us)).toFixed(1)}" fill="${color(r.target)}"><title>${esc(`${workload} ${r.target}: p50 ${fmtMs(l.p50Us)} ms`)}</title></rect>`);
      out.push(`<line x1="${x.toFixed(1)}" x2="${(x + barW - 2).toFixed(1)}" y1="${y2(l.p999Us).toFixed(1)}" y2="${y2(l.p999Us).toFixed(1)}" stroke="black" stroke-width="2"><title>${esc(`${workload} ${r.target}: p99.9 ${fmtMs(l.p999Us)} ms`)}</title></line>`);
    }
    out.push(`<text x="${left + gi * groupW + groupW / 2}" y="${top2 + panelH + 18}" text-anchor="middle" font-weight="bold">${esc(workload)}</text>`);
  }
  out.push(`<line x1="${left}" x2="${width - right}" y1="${top2 + panelH}" y2="${top2 + panelH}" stroke="#333"/>`);
  out.push(`<text x="${left}" y="${height - 14}" font-size="10" fill="#555">${esc('ragkv bench: see docs/benchmarks.md for the command, machine and durability of each target')}</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}

function compact(n: number): string {
  if (!Number.isFinite(n)) return 'n/a';
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e4) return `${Math.round(n / 1e3)}k`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(Math.round(n));
}

/** File-name-safe stamp of an ISO time: 2026-11-21T05-34-58. */
export function fileStamp(iso: string): string {
  return iso.slice(0, 19).replace(/:/g, '-');
}

/**
 * Writes `loadgen-<stamp>.json`, `.md` and `.svg` under `outDir`, and nothing else unless
 * `chartCopyPath` is given: then the SVG is also copied there (when there is a run to chart).
 * Returns the paths written.
 */
export function writeReport(report: BenchReport, outDir: string, chartCopyPath: string | null = null): { json: string; md: string; svg: string; chartCopy: string | null } {
  mkdirSync(outDir, { recursive: true });
  const base = path.join(outDir, `loadgen-${fileStamp(report.startedAt)}`);
  const json = `${base}.json`;
  const md = `${base}.md`;
  const svg = `${base}.svg`;
  writeFileSync(json, JSON.stringify(report, null, 2) + '\n');
  writeFileSync(md, markdownReport(report));
  writeFileSync(svg, svgChart(report.runs, `ragkv bench ${report.startedAt.slice(0, 10)}: ${report.machine.nproc} cores, ${report.machine.cpuModel}`));
  let chartCopy: string | null = null;
  if (chartCopyPath !== null && report.runs.length > 0) {
    mkdirSync(path.dirname(chartCopyPath), { recursive: true });
    copyFileSync(svg, chartCopyPath);
    chartCopy = chartCopyPath;
  }
  return { json, md, svg, chartCopy };
}
