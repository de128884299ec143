/**
 * `ragkv bench` as a real process, on a tiny run against a ragkv node it starts itself: what
 * it writes, and where. Results go under --out; the tracked docs/bench-loadgen.svg changes
 * only when a run is asked to copy its chart there (--copy-chart).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempDir } from './helpers/tmp.js';

// Compiled to dist/test/: the repository root is two levels up.
const root = fileURLToPath(new URL('../../', import.meta.url));
const bin = path.join(root, 'bin', 'ragkv.js');
const docsChart = path.join(root, 'docs', 'bench-loadgen.svg');

const tmp = tempDir('ragkv-bench-cli-');
after(() => tmp.cleanup());

/** A run of a few hundred operations on one ragkv process: seconds, no Debian packages. */
const tinyRun = ['--targets', 'ragkv-resp', '--workload', 'ycsb-c', '--records', '50', '--ops', '200', '--warmup', '0', '--concurrency', '2', '--ragkv-arg=--durability=none'];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment without RAGKV_* variables (they would configure the ragkv it starts). */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RAGKV_')));
}

/** Runs `node bin/ragkv.js bench ...args` to completion. */
function bench(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, 'bench', ...args], { cwd: tmp.path, stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv() });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The tracked chart's bytes and mtime now; `check()` asserts both are unchanged (and puts the bytes back if not). */
function watchDocsChart(): { check(): void } {
  const bytes = readFileSync(docsChart);
  const mtimeMs = statSync(docsChart).mtimeMs;
  return {
    check() {
      const now = readFileSync(docsChart);
      const nowMtimeMs = statSync(docsChart).mtimeMs;
      if (!now.equals(bytes)) writeFileSync(docsChart, bytes); // a tracked file: leave the checkout as it was
      assert.ok(now.equals(bytes), 'docs/bench-loadgen.svg was rewritten');
      assert.equal(nowMtimeMs, mtimeMs, 'docs/bench-loadgen.svg was written');
    },
  };
}

/** The report files of one run under `dir`: exactly loadgen-<stamp>.json, .md and .svg. */
function reportFiles(dir: string): { json: string; md: string; svg: string } {
  const files = readdirSync(dir).sort();
  assert.equal(files.length, 3, `files under ${dir}: ${files.join(', ')}`);
  const [json, md, svg] = files.map((f) => path.join(dir, f)) as [string, string, string];
  assert.match(path.basename(json), /^loadgen-[0-9T-]+\.json$/);
  assert.equal(md, json.replace(/\.json$/, '.md'));
  assert.equal(svg, json.replace(/\.json$/, '.svg'));
  return { json, md, svg };
}

describe('ragkv bench: where results go', { timeout: 180_000 }, () => {
  it('with --out, writes only under --out: docs/bench-loadgen.svg is not touched', async () => {
    const docs = watchDocsChart();
    const out = path.join(tmp.path, 'out');
    let run: Run;
    try {
      run = await bench([...tinyRun, '--out', out]);
    } finally {
      docs.check();
    }
    assert.equal(run.code, 0, run.stderr);
    const files = reportFiles(out);
    const report = JSON.parse(readFileSync(files.json, 'utf8')) as { runs: { workload: string; ops: number }[] };
    assert.deepEqual(report.runs.map((r) => r.workload), ['ycsb-c']);
    assert.match(readFileSync(files.svg, 'utf8'), /^<svg /);
    assert.doesNotMatch(run.stderr, /docs|bench-loadgen\.svg/, 'the results listed are under --out only');
    assert.ok(run.stderr.includes(files.svg), `the chart's path is listed: ${run.stderr}`);
  });

  it('--copy-chart FILE also copies the chart to FILE (how the docs chart is refreshed)', async () => {
    const docs = watchDocsChart();
    const out = path.join(tmp.path, 'out-copy');
    const copy = path.join(tmp.path, 'docs-copy', 'chart.svg');
    let run: Run;
    try {
      run = await bench([...tinyRun, '--out', out, '--copy-chart', copy]);
    } finally {
      docs.check();
    }
    assert.equal(run.code, 0, run.stderr);
    const files = reportFiles(out);
    assert.ok(readFileSync(copy).equals(readFileSync(files.svg)), 'the copy is the chart of this run');
    assert.ok(run.stderr.includes(copy), `the copy's path is listed: ${run.stderr}`);
  });
});
